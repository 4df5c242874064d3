"""The chapters' first cell: install the book's library where it is missing (Colab).

What is installed: ``cbft_core[book]`` from the repository of ``repository: url:``
at the branch the book is built from, ``repository: branch:`` (``main``), both
in ``_config.yml``. Why the branch and not a release tag or a commit:

- the Colab and Binder buttons open the notebooks of that same branch
  (``.../blob/<branch>/notebooks/<chapter>.ipynb``), so the notebook a reader
  opens and the library its first cell installs come from one and the same
  revision — the branch's head at that moment. A tag would drift from the
  branch's notebooks as soon as either changes, and would need a manual tag
  step for every change (a tag named in the cell but never pushed is exactly
  what broke every Colab reader's first cell);
- a commit hash cannot be written into a committed notebook of that very
  commit, so it would need a build step that commits for itself;
- the branch exists on the published repository as it stands, with nothing
  to do by hand.

:func:`install_cell` derives the first code cell of every chapter from the
setting; ``python -m cbft_core.presentation.launch`` rewrites the chapters'
first cells after it changes (tests/test_chapters.py checks that they agree)
and tags them ``remove-cell``: the pages do not show the install cell, the
reader notebooks (which keep every code cell) do.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["install_ref", "install_spec", "install_cell", "read_config", "main"]


def read_config(repo: Path) -> dict[str, Any]:
    """The book's ``_config.yml`` as a dict."""
    import yaml

    return yaml.safe_load((repo / "_config.yml").read_text())


def install_ref(config: dict[str, Any]) -> str:
    """The git ref the chapters install from: the branch the book is built from (``repository.branch``)."""
    return str(config["repository"].get("branch") or "main")


def install_spec(config: dict[str, Any]) -> str:
    """The pip requirement of the chapters: ``cbft_core[book]`` from the repository at :func:`install_ref`."""
    url = config["repository"]["url"].rstrip("/").removesuffix(".git")
    return f"cbft_core[book] @ git+{url}@{install_ref(config)}"


def install_cell(config: dict[str, Any]) -> str:
    """The source of every chapter's first code cell."""
    return ("try:\n"
            "    import cbft_core\n"
            "except ImportError:  # Colab: install the book's library and what the chapters import\n"
            f'    %pip install -q "{install_spec(config)}"\n'
            "    import cbft_core")


def main(argv: list[str] | None = None) -> int:
    """Rewrite the first code cell of every chapter of ``_toc.yml`` from the setting (and tag it ``remove-cell``)."""
    import nbformat

    from .cell_tags import INSTALL_TAG
    from .cli import chapters

    repo = Path(argv[0] if argv else ".").resolve()
    cell = install_cell(read_config(repo))
    for path in chapters(repo):
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        tags = first.metadata.setdefault("tags", [])
        if first.source != cell or INSTALL_TAG not in tags:
            first.source = cell
            if INSTALL_TAG not in tags:
                tags.append(INSTALL_TAG)
            nbformat.write(nb, path)
            print(f"updated {path.relative_to(repo)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
