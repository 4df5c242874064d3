"""Every chapter page of the built book links to its reader notebook on Binder and on Colab.

The expected links are derived here from ``_config.yml`` (repository URL and
branch, launch-button settings) and from ``_toc.yml``, independently of the
theme that writes them; the pages' anchors are parsed from the HTML. The
notebook they open is the chapter's reader notebook, ``notebooks/<chapter>.ipynb``
(plain Markdown that Jupyter renders, ``python -m cbft_core notebooks``).
"""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conftest import REPO, toc_notebooks


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value for name, value in attrs if name == "href" and value]


def _hrefs(page: Path) -> list[str]:
    parser = _Links()
    parser.feed(page.read_text())
    return parser.hrefs


def _expected(notebook: Path) -> tuple[str, str]:
    """(Binder URL, Colab URL) of ``notebook`` as _config.yml says they must be."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    repo = config["repository"]
    parts = urlsplit(repo["url"])
    assert parts.netloc == "github.com", "launch links are checked for a GitHub repository"
    org, name = parts.path.strip("/").removesuffix(".git").split("/")
    branch = repo.get("branch", "main")
    path = f"notebooks/{notebook.name}"
    launch = config["launch_buttons"]
    ui = {"jupyterlab": "lab/tree", "classic": "tree"}[launch.get("notebook_interface", "classic")]
    binder = f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{org}/{name}/{branch}?urlpath={ui}/{path}"
    colab = f"{launch['colab_url'].rstrip('/')}/github/{org}/{name}/blob/{branch}/{path}"
    return binder, colab


def _chapters() -> list[Path]:
    notebooks = toc_notebooks()
    if not notebooks:
        pytest.skip("no notebook chapter in _toc.yml yet")
    return notebooks


def test_chapters_link_to_their_notebook_on_binder_and_colab(built_book: Path):
    for notebook in _chapters():
        rel = notebook.relative_to(REPO).with_suffix("")
        hrefs = _hrefs(built_book / f"{rel.as_posix()}.html")
        binder, colab = _expected(notebook)
        assert binder in hrefs, f"{rel}: no Binder link {binder}; launch links: " + str(
            [h for h in hrefs if "binder" in h or "colab" in h])
        assert colab in hrefs, f"{rel}: no Colab link {colab}"


def test_launch_links_name_committed_notebooks(built_book: Path):
    """The path in each launch link is a notebook in this repository (what GitHub will serve), and it is
    the chapter's reader notebook, never the MyST source."""
    for notebook in _chapters():
        rel = notebook.relative_to(REPO).with_suffix("")
        for href in _hrefs(built_book / f"{rel.as_posix()}.html"):
            if href.startswith("https://colab.research.google.com/github/"):
                target = href.split("/blob/", 1)[1].split("/", 1)[1]
            elif "mybinder.org/v2/gh/" in href:
                target = parse_qs(urlsplit(href).query)["urlpath"][0].split("/tree/", 1)[-1]
                target = target.removeprefix("tree/")
            else:
                continue
            assert (REPO / target).is_file(), f"{rel}: launch link {href} names a missing file {target}"
            assert target == f"notebooks/{notebook.name}", f"{rel}: launch link {href} does not open the reader notebook"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            pins[name.strip().lower()] = version.strip()
    return pins


def test_binder_environment_matches_the_pinned_one():
    """Binder reads binder/ (not the root); its pins must be the book's own, and it installs cbft_core."""
    root, binder = _pins(REPO / "requirements.txt"), _pins(REPO / "binder" / "requirements.txt")
    assert {"torch", "torchvision", "ipywidgets", "myst-nb"} <= binder.keys()
    for name, version in binder.items():
        assert root.get(name) == version, f"binder pins {name}=={version}, requirements.txt {root.get(name)}"
    post_build = REPO / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert "pip install" in post_build.read_text() and " -e ." in post_build.read_text()
