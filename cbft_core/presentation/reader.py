"""Reader notebooks: the chapters as Colab, Binder and plain Jupyter can show them.

``python -m cbft_core notebooks`` writes, for every chapter of ``_toc.yml``,
``notebooks/<chapter>.ipynb``: the chapter's cells with its committed outputs,
where every MyST construct of the prose is plain Markdown
(:mod:`cbft_core.presentation.myst_to_md`) — glued numbers written out from
the chapter's committed glue outputs, cross-references as links to the
published pages, citations as "(Author, year)" with a reference list at the
end, included kernels as code. The launch buttons of the book open these
notebooks (:mod:`cbft_core.presentation.sphinx_assets`).

The published site is the GitHub Pages site of ``repository: url:`` in
``_config.yml`` (:func:`published_url`: the one setting). Outputs that only
the built book can use are left out: glue records (their values are in the
text), saved widget views (a widget appears when its cell runs) and stderr.
The notebooks are committed; :func:`stale` tells whether they still match the
chapters (a test runs it).
"""
from __future__ import annotations

import codecs
import copy
import re
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from ..errors import CbftError
from .myst_to_md import Converter, GlueValue, leftovers

__all__ = ["READER_DIR", "published_url", "reader_path", "glue_values", "Bibliography", "reader_notebook",
           "write_all", "stale"]

READER_DIR = "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_HEADING = re.compile(r"^#\s+(.+?)\s*$", re.M)
_LABEL = re.compile(r"^\(([\w.:-]+)\)=\s*\n+\s*#+\s+(.+?)\s*$", re.M)
_KEEP_CELL_METADATA = ("tags",)


def published_url(config: Mapping[str, Any]) -> str:
    """The root URL of the published book: the GitHub Pages site of ``repository.url``, ending in ``/``."""
    url = str(config.get("repository", {}).get("url", "")).rstrip("/").removesuffix(".git")
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if parts.netloc != "github.com" or len(path) != 2:
        raise CbftError(f"repository.url {url!r} in _config.yml is not https://github.com/OWNER/NAME: "
                        "the published pages' address is derived from it")
    owner, name = path
    return f"https://{owner.lower()}.github.io/{name}/"


def reader_path(chapter: Path, repo: Path) -> Path:
    """Where the reader notebook of ``chapter`` lives: ``<repo>/notebooks/<chapter file name>``."""
    return repo / READER_DIR / Path(chapter).name


def glue_values(nb: Any) -> dict[str, GlueValue]:
    """Every value the executed notebook ``nb`` glued (MyST-NB's or :mod:`~.record`'s outputs), by name."""
    values: dict[str, GlueValue] = {}
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                values[name] = GlueValue.from_output(out)
    return values


class Bibliography:
    """The book's ``references.bib``: author-year citations and a Markdown reference list."""

    def __init__(self, path: Path) -> None:
        from pybtex.database import parse_file

        if not path.is_file():
            raise CbftError(f"bibliography {path} does not exist")
        self.entries = parse_file(str(path)).entries

    def label(self, key: str) -> str:
        """``Author, year`` / ``Author and Other, year`` / ``Author et al., year``, as the book's pages cite."""
        from .bibstyle import author_year_label

        if key not in self.entries:
            raise CbftError(f"citation key {key!r} is not in the bibliography")
        return _plain(author_year_label(self.entries[key]))

    def cite(self, keys: list[str], style: str = "p") -> str:
        """``{cite:p}`` → "(A, 2020; B et al., 2021)"; ``{cite:t}`` → "A (2020); B et al. (2021)"."""
        labels = [self.label(k) for k in keys]
        if style in ("p", "ps", "cp", "alp"):
            return "(" + "; ".join(labels) + ")"
        if style in ("t", "ts", "ct"):
            return "; ".join(f"{who} ({year})" for who, _, year in (lab.rpartition(", ") for lab in labels))
        if style == "year":
            return "; ".join(lab.rpartition(", ")[2] for lab in labels)
        if style in ("author", "authors"):
            return "; ".join(lab.rpartition(", ")[0] for lab in labels)
        raise CbftError(f"citation role {{cite:{style}}} has no plain-Markdown form")

    def reference(self, key: str) -> str:
        """One reference as Markdown: authors (year). Title. *Venue*, volume, pages. Note."""
        entry = self.entries[key]
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = []
        for person in people:
            initials = " ".join("-".join(p[0] + "." for p in part.split("-") if p)
                                for part in person.first_names + person.middle_names)
            names.append(_plain(" ".join(person.last_names)) + (f", {_plain(initials)}" if initials else ""))
        authors = names[0] if len(names) == 1 else ", ".join(names[:-1]) + (", and " if names else "") + (
            names[-1] if names else "")
        fields = entry.fields
        venue = fields.get("booktitle") or fields.get("journal") or fields.get("institution") or ""
        parts = [f"{authors} ({fields.get('year', 'n.d.')}). {_plain(fields.get('title', key))}."]
        tail = [f"*{_plain(venue)}*"] if venue else []
        tail += [f"vol. {fields['volume']}"] if "volume" in fields else []
        tail += [f"pp. {fields['pages'].replace('--', '–')}"] if "pages" in fields else []
        if tail:
            parts.append(", ".join(tail) + ".")
        if "note" in fields:
            parts.append(_plain(fields["note"]) + ".")
        link = fields.get("url") or (f"https://doi.org/{fields['doi']}" if "doi" in fields else "")
        if link:
            parts.append(f"<{link}>")
        return " ".join(parts)

    def references(self, keys: Iterable[str]) -> str:
        """A "References" section listing ``keys`` in the order of their labels."""
        ordered = sorted(set(keys), key=lambda k: (self.label(k).lower(), k))
        return "## References\n\n" + "\n".join(f"- {self.reference(k)}" for k in ordered)


def _plain(latex: str) -> str:
    """BibTeX text without braces and with LaTeX accents as characters."""
    text = codecs.decode(latex, "ulatex") if "\\" in latex else latex
    return text.replace("{", "").replace("}", "")


def _doc_source(repo: Path, doc: str) -> Path:
    for suffix in (".ipynb", ".md"):
        if (repo / f"{doc}{suffix}").is_file():
            return repo / f"{doc}{suffix}"
    raise CbftError(f"{doc} is not a document of the book (no {doc}.ipynb or {doc}.md)")


def _doc_text(path: Path) -> str:
    import nbformat

    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return path.read_text(encoding="utf-8")


class _Book:
    """What converting one chapter needs to know about the whole book (titles, labels, glue, citations)."""

    def __init__(self, repo: Path, config: Mapping[str, Any]) -> None:
        from .cli import toc_files

        self.repo = repo
        self.base = published_url(config)
        bibfiles = config.get("bibtex_bibfiles") or []
        self.bib = Bibliography(repo / bibfiles[0]) if bibfiles else None
        self.substitutions = (config.get("parse", {}) or {}).get("myst_substitutions", {}) or {}
        self.docs = toc_files(repo)
        self.labels: dict[str, tuple[str, str]] = {}
        for doc in self.docs:
            for label, title in _LABEL.findall(_doc_text(_doc_source(repo, doc))):
                self.labels[label] = (doc, title)
        self._glue: dict[str, dict[str, GlueValue]] = {}

    def title(self, doc: str) -> str:
        found = _HEADING.search(_doc_text(_doc_source(self.repo, doc)))
        return found[1] if found else doc

    def url(self, doc: str, anchor: str = "") -> str:
        if doc not in self.docs:
            _doc_source(self.repo, doc)  # names the missing document
        return f"{self.base}{doc}.html" + (f"#{anchor}" if anchor else "")

    def glue(self, doc: str) -> dict[str, GlueValue]:
        import nbformat

        if doc not in self._glue:
            source = _doc_source(self.repo, doc)
            self._glue[doc] = glue_values(nbformat.read(source, as_version=4)) if source.suffix == ".ipynb" else {}
        return self._glue[doc]


def _reader_outputs(outputs: list[Any]) -> list[Any]:
    """The outputs a reader sees in Jupyter: no glue records, saved widget views or stderr."""
    kept = []
    for out in outputs:
        scrapbook = out.get("metadata", {}).get("scrapbook")
        if scrapbook and scrapbook.get("mime_prefix"):
            continue  # a glue record: its value is written into the text
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            continue
        if WIDGET_VIEW in out.get("data", {}):
            continue
        out = copy.deepcopy(out)
        if scrapbook:
            del out["metadata"]["scrapbook"]
        kept.append(out)
    return kept


def reader_notebook(chapter: Path, repo: Path, config: Mapping[str, Any], book: _Book | None = None) -> Any:
    """The reader notebook of ``chapter`` (a notebook of ``_toc.yml``), from its committed cells and outputs."""
    import nbformat

    book = book or _Book(repo, config)
    doc = chapter.resolve().relative_to(repo.resolve()).with_suffix("").as_posix()
    source = nbformat.read(chapter, as_version=4)
    cited: list[str] = []

    def cite(keys: list[str], style: str) -> str:
        if book.bib is None:
            raise CbftError(f"{doc} cites {keys} but _config.yml names no bibtex_bibfiles")
        cited.extend(keys)
        return book.bib.cite(keys, style)

    nb = nbformat.v4.new_notebook()
    nb.metadata = {k: copy.deepcopy(source.metadata[k]) for k in ("kernelspec", "language_info")
                   if k in source.metadata}
    for index, cell in enumerate(source.cells):
        if cell.cell_type == "markdown":
            converter = Converter(doc=doc, root=repo, glue=book.glue(doc), glue_of=book.glue, page_url=book.url,
                                  title_of=book.title, cite=cite, labels=book.labels,
                                  substitutions=book.substitutions)
            new = nbformat.v4.new_markdown_cell(converter.convert(cell.source))
            if converter.attachments:
                new.attachments = converter.attachments
        elif cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(cell.source, execution_count=cell.get("execution_count"),
                                            outputs=_reader_outputs(cell.get("outputs", [])))
            tags = list(cell.metadata.get("tags", []))
            if tags:
                new.metadata["tags"] = tags
            if "hide-input" in tags or "remove-input" in tags:
                new.metadata["jupyter"] = {"source_hidden": True}
        else:
            new = nbformat.v4.new_raw_cell(cell.source)
        new["id"] = cell.get("id") or f"cell-{index}"  # stable: a regenerated notebook is byte-identical
        nb.cells.append(new)
        if index == 0 and cell.cell_type == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(
                f"> This notebook is the chapter [{book.title(doc)}]({book.url(doc)}) of the executed book, "
                f"written from `{doc}.ipynb` by `python -m cbft_core notebooks`: the numbers in its text are "
                "those of the published page. Run all cells to compute them again (the first cell installs "
                "the book's library where it is missing).", id="reader-note"))
    if cited and book.bib is not None:
        nb.cells.append(nbformat.v4.new_markdown_cell(book.bib.references(cited), id="reader-references"))
    for cell in nb.cells:
        if cell.cell_type == "markdown" and leftovers(cell.source):
            raise CbftError(f"{doc}: MyST left in a reader cell: {leftovers(cell.source)[:3]}")
    return nb


def _write(nb: Any, target: Path) -> None:
    import nbformat

    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target, version=4)


def write_all(repo: Path, out: Path | None = None) -> list[Path]:
    """Write the reader notebook of every chapter into ``out`` (default ``<repo>/notebooks``); return the paths."""
    from .cli import chapters
    from .launch import read_config

    config = read_config(repo)
    book = _Book(repo, config)
    written = []
    for chapter in chapters(repo):
        target = (out / chapter.name) if out is not None else reader_path(chapter, repo)
        _write(reader_notebook(chapter, repo, config, book), target)
        written.append(target)
    return written


def stale(repo: Path, scratch: Path) -> list[str]:
    """The reader notebooks that differ from what the chapters give now (written afresh into ``scratch``),
    are missing, or belong to no chapter; one line each."""
    fresh = {p.name: p for p in write_all(repo, scratch)}
    folder = repo / READER_DIR
    problems = []
    for name, path in fresh.items():
        committed = folder / name
        if not committed.is_file():
            problems.append(f"{READER_DIR}/{name} is missing")
        elif committed.read_bytes() != path.read_bytes():
            problems.append(f"{READER_DIR}/{name} is stale")
    problems += [f"{READER_DIR}/{p.name} belongs to no chapter of _toc.yml"
                 for p in sorted(folder.glob("*.ipynb")) if p.name not in fresh]
    return problems
