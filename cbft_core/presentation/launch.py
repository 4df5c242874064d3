"""The chapters' first cell: install the book's library, pinned, where it is missing (Colab).

One setting decides what is installed: ``cbft_install_ref`` (a release tag or
commit) under ``sphinx: config:`` in ``_config.yml``, with the repository URL
of ``repository: url:``. :func:`install_cell` derives the first cell of every
chapter from them; ``python -m cbft_core.presentation.launch`` rewrites the
chapters' first cells after the setting changes (tests/test_launch_links.py
checks that they agree).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["install_spec", "install_cell", "read_config", "main"]


def read_config(repo: Path) -> dict[str, Any]:
    """The book's ``_config.yml`` as a dict."""
    import yaml

    return yaml.safe_load((repo / "_config.yml").read_text())


def install_spec(config: dict[str, Any]) -> str:
    """The pip requirement of the chapters: ``cbft_core[book]`` from the repository at the pinned ref."""
    url = config["repository"]["url"].rstrip("/").removesuffix(".git")
    ref = config["sphinx"]["config"]["cbft_install_ref"]
    return f"cbft_core[book] @ git+{url}@{ref}"


def install_cell(config: dict[str, Any]) -> str:
    """The source of every chapter's first code cell."""
    return ("try:\n"
            "    import cbft_core\n"
            "except ImportError:  # Colab: install the book's library and what the chapters import\n"
            f'    %pip install -q "{install_spec(config)}"\n'
            "    import cbft_core")


def main(argv: list[str] | None = None) -> int:
    """Rewrite the first code cell of every chapter of ``_toc.yml`` from the setting."""
    import nbformat

    from .cli import chapters

    repo = Path(argv[0] if argv else ".").resolve()
    cell = install_cell(read_config(repo))
    for path in chapters(repo):
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        if first.source != cell:
            first.source = cell
            nbformat.write(nb, path)
            print(f"updated {path.relative_to(repo)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
