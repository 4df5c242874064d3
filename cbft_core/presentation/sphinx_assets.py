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
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

__all__ = ["missing_local_files", "setup"]


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


def setup(app: Any) -> dict[str, Any]:
    """Register the hooks: at config-inited (MyST-NB and MathJax read these values later) and per page."""
    from .bibstyle import register

    register()  # the bibliography's author-year labels (bibtex_default_style: author_year)
    app.add_config_value("cbft_install_ref", "main", "env")  # read by cbft_core.presentation.launch
    app.connect("config-inited", _choose_sources)
    app.connect("html-page-context", _drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
