"""The barrier explorer works in the static book, in a browser, with no kernel and no network.

The built book (``built_book``: committed outputs, execution off) is served on
127.0.0.1 and opened in headless Debian Chromium through Playwright. Every
request that does not go to that server is aborted and recorded: the page must
need none, so the widget manager, require.js and MathJax must come from the
book's own static files. Moving a slider (keyboard on its handle, then a click
on its track) must switch the frame on show, which only the jslinks in the
saved widget state can do.
"""
from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, toc_files

CHAPTER = "book/01_mode_connectivity"
CHROMIUM = os.environ.get("CBFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_WIDGET_JS = "_static/vendor/widgets-html-manager/embed-amd.js"
TIMEOUT_MS = 30_000


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (base-class signature)
        pass


@pytest.fixture(scope="module")
def served_book(built_book: Path) -> Iterator[str]:
    """The built book over HTTP on a free port of 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _require_browser() -> None:
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package "
                    "(scripts/run-tests does so as root) or set CBFT_CHROMIUM")


def _require_chapter(built_book: Path) -> Path:
    if CHAPTER not in toc_files():
        pytest.skip(f"{CHAPTER} is not in _toc.yml yet")
    page = built_book / f"{CHAPTER}.html"
    html = page.read_text()
    assert 'type="application/vnd.jupyter.widget-state+json"' in html, (
        f"{CHAPTER}.ipynb carries no widget state: execute it with nbclient/papermill "
        "(store_widget_state, the default) and commit the result"
    )
    if LOCAL_WIDGET_JS not in html:
        vendored = REPO / "book" / "_static" / "vendor" / "widgets-html-manager" / "embed-amd.js"
        assert not vendored.exists(), "the widget scripts are vendored but the page loads them from elsewhere"
        pytest.skip("the widget JavaScript was not fetched from npm (no npm when the environment "
                    "was set up), so the page loads it from public CDNs")
    return page


def test_explorer_moves_offline(built_book: Path, served_book: str):
    _require_browser()
    _require_chapter(built_book)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def route(route_) -> None:
        if route_.request.url.startswith(served_book):
            route_.continue_()
        else:
            external.append(route_.request.url)
            route_.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.route("**/*", route)
            page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(served_book + f"{CHAPTER}.html", wait_until="load")

            explorer = page.locator(".widget-vbox").filter(has=page.locator(".widget-image")).filter(
                has=page.locator(".widget-slider")).first
            try:
                explorer.locator(".widget-image").first.wait_for(state="attached")
            except PlaywrightTimeout:
                pytest.fail(f"the explorer did not render; outside requests {external[:3]}, "
                            f"failed {failed[:3]}, errors {errors[:3]}")
            sliders = explorer.locator(".widget-slider")
            assert sliders.count() >= 1, "the explorer has no slider"
            frame = explorer.locator(".widget-image:visible")

            def shown() -> tuple[str, bytes]:
                assert frame.count() == 1, f"{frame.count()} frames on show, expected exactly one"
                return frame.get_attribute("src"), frame.screenshot()

            explorer.scroll_into_view_if_needed()
            start_src, start_png = shown()

            # Keyboard: one step on the last slider's handle, away from the end it may be at.
            handle = sliders.last.locator(".noUi-handle")
            readout = sliders.last.locator(".widget-readout")
            before = readout.inner_text()
            at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
            handle.focus()
            page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
            page.wait_for_function("([el, old]) => el.innerText !== old",
                                   arg=[readout.element_handle(), before])
            key_src, key_png = shown()
            assert key_src != start_src, "an arrow key on the slider handle did not switch the frame"
            assert key_png != start_png, "the new frame looks the same as the old one"

            # Mouse: a click on the first slider's track, at the end away from its handle.
            track = sliders.first.locator(".noUi-target")
            box = track.bounding_box()
            knob = sliders.first.locator(".noUi-handle").bounding_box()
            right = knob["x"] + knob["width"] / 2 < box["x"] + box["width"] / 2
            readout = sliders.first.locator(".widget-readout")
            before = readout.inner_text()
            track.click(position={"x": box["width"] - 2 if right else 2, "y": box["height"] / 2})
            page.wait_for_function("([el, old]) => el.innerText !== old",
                                   arg=[readout.element_handle(), before])
            click_src, click_png = shown()
            assert click_src not in (start_src, key_src), "a click on the slider track did not switch the frame"
            assert click_png not in (start_png, key_png), "the new frame looks the same as an earlier one"

            explorer.scroll_into_view_if_needed()
            page.screenshot(path=str(built_book.parent / "browser-explorer.png"))
        finally:
            browser.close()

    assert external == [], f"the page asked for {len(external)} resources outside the book: {external[:5]}"
    assert failed == [], f"requests that failed on the book's own server: {failed[:5]}"
    assert errors == [], f"JavaScript errors on the page: {errors[:3]}"


def _open(browser, served_book: str, name: str, width: int, external: list[str]):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(served_book)
               else (external.append(r.request.url), r.abort()))
    page.goto(served_book + f"{name}.html", wait_until="load")
    page.wait_for_timeout(500)  # widgets render after load
    return page


# Elements of the article that scroll sideways, with their scrolled and visible widths.
_SCROLLERS = """() => [...document.querySelectorAll('article *')].filter(el =>
    ['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth + 8)
    .map(el => `${el.tagName}.${el.className.slice(0, 30)} ${el.scrollWidth}/${el.clientWidth}`)"""


def test_no_horizontal_scrolling(built_book: Path, served_book: str):
    """At 1300 px nothing scrolls sideways; at 400 px the page itself does not (a wide table may, inside)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name in toc_files():
                for width in (1300, 400):
                    page = _open(browser, served_book, name, width, external)
                    page_width = page.evaluate("document.documentElement.scrollWidth")
                    assert page_width <= width, f"{name} at {width} px: the page is {page_width} px wide"
                    if width == 1300:
                        scrollers = [s for s in page.evaluate(_SCROLLERS) if not s.startswith("MJX")]
                        assert not scrollers, f"{name} at 1300 px: blocks scroll sideways: {scrollers[:4]}"
                    page.close()
        finally:
            browser.close()


def test_explorer_sliders_usable_at_400px(built_book: Path, served_book: str):
    _require_browser()
    _require_chapter(built_book)
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _open(browser, served_book, CHAPTER, 400, external)
            tracks = page.locator(".widget-slider .noUi-target")
            tracks.first.wait_for(state="attached")
            widths = [tracks.nth(k).bounding_box()["width"] for k in range(tracks.count())]
            assert widths and min(widths) >= 120, f"slider tracks at 400 px: {widths} px"
            image = page.locator(".widget-image:visible").first.bounding_box()
            assert image["x"] >= 0 and image["x"] + image["width"] <= 400, "the explorer frame leaves the page"
        finally:
            browser.close()


KERNEL_WIDGETS = {"book/01_mode_connectivity": 1, "book/02_spurious_data": 1}


def test_kernel_widgets_say_they_need_a_kernel(built_book: Path, served_book: str):
    """A widget that only works with a kernel comes right after a visible note saying so."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, count in KERNEL_WIDGETS.items():
                if name not in toc_files():
                    continue
                page = _open(browser, served_book, name, 1300, external)
                notes = page.locator(".cbft-needs-kernel")
                assert notes.count() == count, f"{name}: {notes.count()} kernel notes, expected {count}"
                for k in range(count):
                    note = notes.nth(k)
                    assert note.is_visible() and "kernel" in note.inner_text().lower()
                    # the first code cell after the note holds the widget
                    follows = note.evaluate("""n => { const all = [...document.querySelectorAll('div.cell')];
                        const after = all.find(c => n.compareDocumentPosition(c) & Node.DOCUMENT_POSITION_FOLLOWING);
                        return after ? after.querySelectorAll('.widget-vbox, .jupyter-widgets').length : 0; }""")
                    assert follows > 0, f"{name}: no widget right after the kernel note"
                page.close()
        finally:
            browser.close()
    assert external == [], f"outside requests: {external[:3]}"
