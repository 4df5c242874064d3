"""The book builds with warnings as errors and renders every page of _toc.yml.

The build here renders the committed outputs (execution off, see the
``built_book`` fixture): scripts/run-tests already executes every chapter
once before the tests, and the README's main command builds the book with
execution on.
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


# Computed tables each chapter shows (cbft_core.presentation.tables.show), as <table> elements of its page.
# ch01: the four models, the claims; ch02: the Dominoes value ranges, the per-class cue counts;
# ch03: child views, barriers, the mechanism claim, settled-parent children, quadratic claims, the cue100 claim,
# the path's end points;
# ch04: the starting model, method × clean-set size; ch05: methods, path measures, CBFT claims;
# ch06: box claims, box methods, Dominoes claims, Dominoes methods
TABLES = {"book/01_mode_connectivity": 2, "book/02_spurious_data": 2, "book/03_mechanisms": 7,
          "book/04_naive_finetuning": 3, "book/05_cbft": 3, "book/06_replication": 7}
PROGRESS_TEXT = re.compile(r"\d+%\|[^<\n]*\||\d\s*it/s|s/it\]")


def _cell_outputs(html: str) -> str:
    """The chapter's output areas (where a run-on Markdown table or a progress bar would land)."""
    return " ".join(re.findall(r'<div class="cell_output[^"]*">(.*?)</div>\s*</div>\s*</div>', html, re.S))


def test_computed_tables_are_html_tables(built_book: Path):
    for name, expected in TABLES.items():
        html = (built_book / f"{name}.html").read_text()
        found = len(re.findall(r'<table class="cbft-table"', html))
        assert found == expected, f"{name}: {found} computed <table> elements, expected {expected}"
        assert not re.search(r"<p>\|[^<]*\|[^<]*\|", html), f"{name}: a table rendered as a paragraph of | text"


def test_no_progress_bars_in_pages(built_book: Path):
    for name in TABLES:
        html = (built_book / f"{name}.html").read_text()
        assert "FloatProgressModel" not in html and "IntProgressModel" not in html, (
            f"{name}: the page saves tqdm progress widgets")
        assert not PROGRESS_TEXT.search(html), f"{name}: progress-bar text {PROGRESS_TEXT.search(html)[0]!r}"


def test_bibliography_is_author_year_and_cited_only(built_book: Path, repo: Path):
    page = (built_book / "book" / "bibliography.html").read_text()
    labels = re.findall(r'<span class="label"><span class="fn-bracket">\[</span>(.*?)<span class="fn-bracket">', page)
    assert "Lubana et al., 2023" in labels, f"author-year labels expected, got {labels[:3]}"
    assert all(re.search(r", (\d{4}[a-z]?|n\.d\.)$", label) for label in labels), labels
    cited = set()
    for src in list((repo / "book").glob("*.md")) + list((repo / "book").glob("*.ipynb")):
        for keys in re.findall(r"\{cite:[pt]\}`([^`]+)`", src.read_text()):
            cited |= {k.strip() for k in keys.split(",")}
    assert len(labels) == len(cited), f"the bibliography lists {len(labels)} entries, the book cites {len(cited)}"


INTERNAL = re.compile(r"SCIENCE(\.md)?\b|DESIGN(\.md)?\b|the reference code|a prototype of this chapter|\bDFR\b"
                      r"|the shared folder")
# the package's docstrings compare with the authors' public code by that name, never "the reference"
PACKAGE_INTERNAL = re.compile(INTERNAL.pattern + r"|\bthe reference\b")


def test_no_internal_document_names(repo: Path):
    """The book's text and code, the README and the whole cbft_core package cite the paper, a page or the
    library, never internal notes. (Sources only: outputs are regenerated when the chapters are executed.)"""
    import nbformat

    texts = {p: p.read_text() for p in [repo / "README.md", *(repo / "book").glob("*.md")]}
    for path in (repo / "book").glob("*.ipynb"):
        texts[path] = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    package = [p for p in sorted((repo / "cbft_core").rglob("*")) if p.suffix in (".py", ".json", ".md", ".txt")]
    assert repo / "cbft_core" / "kernels" / "connectivity.py" in package  # the scan reaches every layer
    checks = [(INTERNAL, path, text) for path, text in texts.items()]
    checks += [(PACKAGE_INTERNAL, path, path.read_text(encoding="utf-8")) for path in package]
    for pattern, path, text in checks:
        found = pattern.search(text)
        assert not found, f"{path.relative_to(repo)} names {found[0]!r}"
    for path in (repo / "book").glob("*.ipynb"):
        prose = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        code_names = re.findall(r"`(cfg\.\w+|parent_epochs|child_epochs)`", prose)
        assert not code_names, f"{path.name}: prose prints code names {code_names} instead of their values"
