"""The book builds with warnings as errors and renders every page of _toc.yml.

The build here renders the committed outputs (execution off, see the
``built_book`` fixture): nbval already re-executes every chapter in the same
test run, and the README's main command builds the book with execution on.
"""
from __future__ import annotations

import re
from pathlib import Path

from conftest import toc_files


def test_every_toc_page_renders(built_book: Path):
    for name in toc_files():
        assert (built_book / f"{name}.html").exists(), f"{name} was not rendered"
    assert "intro.html" in (built_book / "index.html").read_text()


def test_citations_are_author_year(built_book: Path):
    intro = (built_book / "book" / "intro.html").read_text()
    assert re.search(r"Lubana\s+<em>et al\.</em>,?\s*\(?2023|Lubana et al\.,? \(?2023", intro), (
        "author-year citation of the paper on the landing page"
    )


def test_no_machine_paths_in_pages(built_book: Path):
    for page in built_book.rglob("*.html"):
        text = page.read_text(errors="replace")
        assert not re.search(r"/work/main|/root/|/tmp/pytest", text), f"{page.name} embeds a machine path"
