"""The book's browser JavaScript: local copies when fetched, public CDNs otherwise (cbft_core.presentation.sphinx_assets)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml
from myst_nb.core.config import ipywidgets_js_factory
from sphinx.builders.html._assets import _JavaScript
from sphinx.ext.mathjax import MATHJAX_URL

from cbft_core.presentation import sphinx_assets
from conftest import REPO

LOCAL_JS = {"setup.js": {}, "vendor/require.js": {}, "vendor/embed-amd.js": {}}


def _config(**overrides):
    values = dict(html_static_path=["static", "no-such-folder"], nb_ipywidgets_js=dict(LOCAL_JS),
                  mathjax_path="vendor/mathjax/tex-mml-chtml.js")
    values.update(overrides)
    return SimpleNamespace(**values)


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("//")


def test_local_scripts_are_kept_when_present(tmp_path: Path):
    _touch(tmp_path / "static", *LOCAL_JS, "vendor/mathjax/tex-mml-chtml.js")
    config = _config()
    sphinx_assets._choose_sources(SimpleNamespace(confdir=str(tmp_path)), config)
    assert config.nb_ipywidgets_js == LOCAL_JS
    assert config.mathjax_path == "vendor/mathjax/tex-mml-chtml.js"
    assert config.html_static_path == ["static"], "a static folder that does not exist is dropped"


def test_missing_copies_fall_back_to_the_cdns(tmp_path: Path):
    _touch(tmp_path / "static", "setup.js")  # committed file there, vendored ones not fetched
    config = _config()
    sphinx_assets._choose_sources(SimpleNamespace(confdir=str(tmp_path)), config)
    assert config.nb_ipywidgets_js == ipywidgets_js_factory()
    assert all(url.startswith("https://") for url in config.nb_ipywidgets_js)
    assert config.mathjax_path == MATHJAX_URL


def test_urls_are_never_missing(tmp_path: Path):
    urls = {"https://example.org/a.js": {}}
    assert sphinx_assets.missing_local_files(urls, []) == []
    assert sphinx_assets.missing_local_files(["a.js", "https://x/b.js"], [tmp_path]) == ["a.js"]


def test_repeated_inline_scripts_are_dropped():
    thebe = "const THEBE_JS_URL = 1"
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=thebe), _JavaScript("", body="other"),
               _JavaScript("", body=thebe), _JavaScript("_static/b.js", defer="defer")]
    context = {"script_files": scripts}
    sphinx_assets._drop_repeated_scripts(None, "page", "page.html", context, None)
    assert [(s.filename, s.attributes.get("body")) for s in context["script_files"]] == [
        ("_static/a.js", None), (None, thebe), ("", "other"), ("_static/b.js", None)]
    assert context["script_files"] is scripts, "the page's own list is edited in place"


def test_book_config_loads_widget_scripts_in_order_and_fetches_them():
    config = yaml.safe_load((REPO / "_config.yml").read_text())["sphinx"]["config"]
    names = list(config["nb_ipywidgets_js"])
    assert names == sorted(names), "keys must stay alphabetical: tools that sort YAML keys keep the order"
    assert names[-2:] == ["vendor/requirejs/require.js", "vendor/widgets-html-manager/embed-amd.js"]
    fetcher = (REPO / "scripts" / "vendor-js.sh").read_text()
    static = REPO / config["html_static_path"][0]
    for name in [*names, config["mathjax_path"]]:
        if name.startswith("vendor/"):
            assert name.removeprefix("vendor/") in fetcher, f"{name} is not fetched by scripts/vendor-js.sh"
        else:
            assert (static / name).is_file(), f"{name} is not a file of the book's static folder"


def test_launch_buttons_open_the_reader_notebook():
    """The theme's Binder and Colab links (built from the page's source) are pointed at the reader notebook;
    other buttons and groups are left alone."""
    colab = "https://colab.research.google.com/github/o/r/blob/main/book/05_cbft.ipynb"
    binder = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/05_cbft.ipynb"
    buttons = [{"label": "download-buttons", "buttons": [{"url": "_sources/book/05_cbft.ipynb"}]},
               {"label": "launch-buttons", "buttons": [{"url": binder}, {"url": colab},
                                                       {"type": "javascript", "javascript": "initThebeSBT()"}]}]
    assert sphinx_assets.redirect_launch_buttons(buttons, "book/05_cbft.ipynb", "notebooks/05_cbft.ipynb") == 2
    launch = buttons[1]["buttons"]
    assert launch[0]["url"] == "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/notebooks/05_cbft.ipynb"
    assert launch[1]["url"] == "https://colab.research.google.com/github/o/r/blob/main/notebooks/05_cbft.ipynb"
    assert buttons[0]["buttons"][0]["url"] == "_sources/book/05_cbft.ipynb"
