"""Sphinx extension of the book: browser JavaScript from the book itself, or from CDNs.

``_config.yml`` points MyST-NB's ``nb_ipywidgets_js`` (require.js and the
widget manager's ``embed-amd.js``) and Sphinx's ``mathjax_path`` at local
copies under ``html_static_path``. They are fetched from npm when the
environment is set up (``scripts/vendor-js.sh``) and are not part of the
repository. Where they are missing (no npm), this extension drops the static
folders that do not exist and restores the public CDN defaults, so the book
still builds without warnings and its pages still work online.

It also drops repeated inline scripts from each page: sphinx-thebe registers
its inline configuration (``const THEBE_JS_URL = ...``) in a way Sphinx 7
includes twice, and the second copy is a JavaScript error on every page.

And it points the launch buttons at the reader notebooks: sphinx-book-theme
builds its Binder and Colab links from the page's source path
(``book/05_cbft.ipynb``) in its ``html-page-context`` handler (priority 501);
a later handler here (:func:`redirect_launch_buttons`) replaces that path in
those links with the chapter's reader notebook (``notebooks/05_cbft.ipynb``,
:mod:`cbft_core.presentation.reader`), whose Markdown Jupyter can render.
A chapter without a reader notebook keeps its link.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

__all__ = ["missing_local_files", "redirect_launch_buttons", "setup"]


def missing_local_files(names: Iterable[str], static_dirs: Iterable[Path]) -> list[str]:
    """The ``names`` (paths relative to a static folder; URLs are skipped) found in none of ``static_dirs``."""
    dirs = list(static_dirs)
    return [name for name in names
            if "://" not in name and not any((folder / name).is_file() for folder in dirs)]


def _choose_sources(app: Any, config: Any) -> None:
    from myst_nb.core.config import ipywidgets_js_factory
    from sphinx.ext.mathjax import MATHJAX_URL
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    confdir = Path(app.confdir)
    config.html_static_path = [entry for entry in config.html_static_path if (confdir / entry).is_dir()]
    static_dirs = [confdir / entry for entry in config.html_static_path]
    hint = "(run scripts/ensure-env.sh with npm available to serve local copies)"
    missing = missing_local_files(config.nb_ipywidgets_js, static_dirs)
    if missing:
        log.info("widget scripts %s not in html_static_path: loading them from public CDNs %s",
                 ", ".join(missing), hint)
        config.nb_ipywidgets_js = ipywidgets_js_factory()
    if config.mathjax_path and missing_local_files([config.mathjax_path], static_dirs):
        log.info("%s not in html_static_path: loading MathJax from a public CDN %s", config.mathjax_path, hint)
        config.mathjax_path = MATHJAX_URL


def _drop_repeated_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    kept = []
    for script in scripts:
        # A script added with no file has filename None or "" depending on the path it took.
        key = (getattr(script, "filename", script) or "", getattr(script, "priority", None),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def redirect_launch_buttons(buttons: list[dict[str, Any]], source: str, reader: str) -> int:
    """Replace the notebook path ``source`` by ``reader`` (both relative to the repository) in the
    Binder and Colab links of the theme's launch group; returns how many links changed."""
    changed = 0
    for group in buttons:
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            url = button.get("url")
            if not url:
                continue
            new = url
            if "/blob/" in url and url.endswith(f"/{source}"):  # Colab: .../blob/<branch>/<path>
                new = url[: -len(source)] + reader
            elif f"tree/{source}" in url:                      # Binder: ...?urlpath=lab/tree/<path>
                new = url.replace(f"tree/{source}", f"tree/{reader}")
            if new != url:
                button["url"] = new
                changed += 1
    return changed


def _launch_reader_notebooks(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    from .reader import READER_DIR

    buttons = context.get("header_buttons")
    if not buttons:
        return
    book = str(app.config.html_theme_options.get("path_to_docs", "") or "").strip("/")
    source = "/".join(filter(None, [book, f"{pagename}.ipynb"]))
    reader = f"{READER_DIR}/{Path(pagename).name}.ipynb"
    repo = Path(app.srcdir).joinpath(*[".."] * len(Path(book).parts))  # the book's folder is `book` of the repo
    if (repo / reader).is_file():
        redirect_launch_buttons(buttons, source, reader)


def setup(app: Any) -> dict[str, Any]:
    """Register the hooks: at config-inited (MyST-NB and MathJax read these values later) and per page."""
    from .bibstyle import register

    register()  # the bibliography's author-year labels (bibtex_default_style: author_year)
    app.connect("config-inited", _choose_sources)
    app.connect("html-page-context", _drop_repeated_scripts)
    app.connect("html-page-context", _launch_reader_notebooks, priority=600)  # after the theme's (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
