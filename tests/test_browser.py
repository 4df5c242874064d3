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


# --- phones: figures, tables, equations at 400 px (and 1300 px) ----------------------------------------

MIN_TEXT_PX = 9.0
WIDTHS = (400, 1300)
_IMAGES = """() => [...document.querySelectorAll('article img')].map(img => {
    const box = img.getBoundingClientRect();
    return {src: img.currentSrc || img.src, natural: img.naturalWidth, shown: box.width, left: box.left,
            right: box.right};
}).filter(i => i.shown > 0 && i.natural > 0)"""
_FETCH_B64 = """async src => { const data = new Uint8Array(await (await fetch(src)).arrayBuffer());
    let text = ''; for (let k = 0; k < data.length; k += 8192) text += String.fromCharCode(...data.subarray(k, k + 8192));
    return btoa(text); }"""


def _png_text(data: bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG (empty for any other image)."""
    import struct

    chunks: dict[str, str] = {}
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return chunks
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt" and b"\x00" in body:
            key, value = body.split(b"\x00", 1)
            chunks[key.decode("latin-1")] = value.decode("latin-1")
        if kind == b"IEND":
            break
        pos += 12 + length
    return chunks


def _chapter_pages() -> list[str]:
    return [name for name in toc_files() if (REPO / f"{name}.ipynb").is_file()]


def test_figures_are_legible_at_400_and_1300_px(built_book: Path, served_book: str):
    """Every figure's smallest text, as drawn on screen (its size in the PNG, which the library records in
    the PNG, times the displayed / natural width), is at least 9 px at 400 px and at 1300 px."""
    _require_browser()
    import base64

    from playwright.sync_api import sync_playwright

    from cbft_core.presentation import plots

    external: list[str] = []
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name in _chapter_pages():
                for width in WIDTHS:
                    page = _open(browser, served_book, name, width, external)
                    page.wait_for_timeout(1000)  # the explorer's frames appear once the widgets render
                    for k, img in enumerate(page.evaluate(_IMAGES)):
                        where = f"{name} at {width} px, figure {k + 1}"
                        if img["left"] < -1 or img["right"] > width + 1:
                            problems.append(f"{where}: leaves the window ({img['left']:.0f}–{img['right']:.0f} px)")
                        info = _png_text(base64.b64decode(page.evaluate(_FETCH_B64, img["src"])))
                        if plots.FONT_KEY not in info or plots.DPI_KEY not in info:
                            problems.append(f"{where}: its PNG does not record its text size (drawn before "
                                            "cbft_core recorded it: re-execute the chapter)")
                            continue
                        pt, dpi = float(info[plots.FONT_KEY]), float(info[plots.DPI_KEY])
                        px = pt * dpi / 72 * img["shown"] / img["natural"]
                        if px < MIN_TEXT_PX:
                            problems.append(f"{where}: smallest text {px:.1f} px ({pt:g} pt at {dpi:g} dpi, "
                                            f"{img['natural']} px wide shown at {img['shown']:.0f} px)")
                    page.close()
        finally:
            browser.close()
    assert not problems, f"{len(problems)} figure(s) too small to read:\n" + "\n".join(problems[:20])


_TABLES = """() => [...document.querySelectorAll('article table')].map(t => {
    const heads = [...t.querySelectorAll('thead th')].map(th => th.textContent.trim().toLowerCase());
    const col = heads.indexOf('verdict');
    const cells = col < 0 ? [] : [...t.querySelectorAll('tbody tr')].map(r => r.children[col]).filter(Boolean);
    return {scroll: t.scrollWidth, client: t.clientWidth, right: t.getBoundingClientRect().right,
            verdicts: cells.map(c => { const b = c.getBoundingClientRect();
                return {left: b.left, right: b.right, width: b.width, text: c.textContent.trim()}; })};
})"""


def test_tables_show_the_verdict_without_scrolling(built_book: Path, served_book: str):
    """At 400 and 1300 px no table of a chapter scrolls sideways, and every verdict cell is on screen."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    problems: list[str] = []
    verdicts = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name in _chapter_pages():
                for width in WIDTHS:
                    page = _open(browser, served_book, name, width, external)
                    for k, table in enumerate(page.evaluate(_TABLES)):
                        where = f"{name} at {width} px, table {k + 1}"
                        if table["scroll"] > table["client"] + 1 or table["right"] > width + 1:
                            problems.append(f"{where}: scrolls sideways ({table['scroll']} px in {table['client']})")
                        for cell in table["verdicts"]:
                            verdicts += 1
                            if cell["width"] <= 0 or cell["left"] < 0 or cell["right"] > width + 1:
                                problems.append(f"{where}: verdict {cell['text']!r} off screen "
                                                f"({cell['left']:.0f}–{cell['right']:.0f} px)")
                    page.close()
        finally:
            browser.close()
    assert verdicts > 0, "no claims table with a verdict column in any chapter"
    assert not problems, "\n".join(problems[:20])


_EQUATIONS = """() => [...document.querySelectorAll('article mjx-container[display="true"]')].map(el => {
    const box = el.getBoundingClientRect();
    let clipped = false;
    for (let a = el.parentElement; a && a.tagName !== 'ARTICLE'; a = a.parentElement) {
        const style = getComputedStyle(a);
        if (['hidden', 'clip'].includes(style.overflowX)) {
            const outer = a.getBoundingClientRect();
            if (box.right > outer.right + 1 || box.left < outer.left - 1) clipped = true;
        }
    }
    return {tex: (el.getAttribute('aria-label') || el.textContent).slice(0, 40), right: box.right,
            scroll: el.scrollWidth, client: el.clientWidth, overflow: getComputedStyle(el).overflowX, clipped,
            marked: el.classList.contains('cbft-scrolls'), scale: parseFloat(el.dataset.cbftScale || '1')};
})"""


def test_display_equations_are_never_cut_off(built_book: Path, served_book: str):
    """At 400 and 1300 px each display equation fits the text column, typeset smaller if need be (a phone
    hides scroll bars, so an equation that merely scrolls looks cut off); one that cannot fit even at
    70 % scrolls inside itself with a marked edge. None runs past the window or is clipped."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    if not (REPO / "book" / "_static" / "vendor" / "mathjax" / "tex-mml-chtml.js").is_file():
        pytest.skip("MathJax was not fetched from npm: the pages typeset from a CDN this test blocks")
    external: list[str] = []
    problems: list[str] = []
    seen = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name in _chapter_pages():
                for width in WIDTHS:
                    page = _open(browser, served_book, name, width, external)
                    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise ? "
                                  "MathJax.startup.promise.then(() => true) : true")
                    page.wait_for_timeout(300)  # cbft-layout.js fits the equations once they are typeset
                    for eq in page.evaluate(_EQUATIONS):
                        seen += 1
                        where = f"{name} at {width} px, equation {eq['tex']!r}"
                        scrolls = eq["overflow"] in ("auto", "scroll")
                        if eq["right"] > width + 1 and not scrolls:
                            problems.append(f"{where}: runs {eq['right'] - width:.0f} px past the window")
                        if eq["scroll"] > eq["client"] + 1 and not (scrolls and eq["marked"] and eq["scale"] <= 0.71):
                            problems.append(f"{where}: {eq['scroll']} px wide in a {eq['client']} px column, "
                                            f"shown at {eq['scale']:.0%}: cut off at the edge")
                        if eq["clipped"]:
                            problems.append(f"{where}: clipped by an enclosing block")
                    page.close()
        finally:
            browser.close()
    assert seen > 0, "no typeset display equation found (MathJax did not run?)"
    assert not problems, "\n".join(problems[:20])
