"""Reader notebooks (notebooks/, `python -m cbft_core notebooks`): current, and free of MyST that Jupyter shows raw.

The committed reader notebooks are regenerated into a temporary folder and
compared byte for byte; every Markdown cell of every reader notebook is
scanned for roles (``{name}`...```), directive fences (```` ```{ ````) and
colon fences (``:::``). The conversion itself is checked on small documents.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from cbft_core.errors import CbftError
from cbft_core.presentation import myst_to_md, reader
from cbft_core.presentation.launch import read_config
from conftest import REPO, toc_notebooks

ROLE = re.compile(r"\{[a-z:]+\}`")  # a role is {name} and a backtick (LaTeX has D_{nc})
DIRECTIVE = re.compile(r"^\s*```+\s*\{", re.M)
COLON_FENCE = re.compile(r"^\s*:::", re.M)


def test_committed_reader_notebooks_are_current(tmp_path: Path):
    problems = reader.stale(REPO, tmp_path)
    assert not problems, "; ".join(problems) + ": run `python -m cbft_core notebooks` and commit notebooks/"


@pytest.mark.parametrize("chapter", toc_notebooks(), ids=[p.stem for p in toc_notebooks()])
def test_reader_notebook_has_no_myst(chapter: Path):
    path = reader.reader_path(chapter, REPO)
    assert path.is_file(), f"no reader notebook {path.relative_to(REPO)}: run `python -m cbft_core notebooks`"
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        prose = re.sub(r"```.*?```", "", cell.source, flags=re.S)  # code blocks may show anything
        for pattern, what in ((ROLE, "role"), (DIRECTIVE, "directive"), (COLON_FENCE, "colon fence")):
            found = pattern.search(prose)
            assert not found, f"{path.name} cell {i}: MyST {what} {found[0]!r} left for Jupyter to show raw"


def test_reader_notebook_writes_out_the_committed_values():
    """Every glued number of a chapter's prose appears in the reader notebook as the page shows it."""
    chapter = REPO / "book" / "05_cbft.ipynb"
    if chapter not in toc_notebooks():
        pytest.skip("chapter 5 is not in _toc.yml")
    source = nbformat.read(chapter, as_version=4)
    values = reader.glue_values(source)
    text = "\n".join(c.source for c in nbformat.read(reader.reader_path(chapter, REPO), as_version=4).cells
                     if c.cell_type == "markdown")
    for cell in source.cells:
        if cell.cell_type != "markdown":
            continue
        for name, spec in re.findall(r"\{glue:text\}`(\w+):([^`]+)`", cell.source):
            shown = myst_to_md.format_glued_text(values[name].data["text/plain"], spec)
            assert shown in text, f"{name} ({spec}) = {shown} is not in the reader notebook"
    assert "## References" in text and "Lubana, E. S." in text
    assert reader.published_url(read_config(REPO)) + "book/03_mechanisms.html" in text
    code = "\n".join(c.source for c in nbformat.read(reader.reader_path(chapter, REPO), as_version=4).cells
                     if c.cell_type == "markdown" and "```python" in c.source)
    assert "def barrier_loss(" in code and "def invariance_loss(" in code, "the literalinclude'd kernels"


def test_reader_outputs_drop_what_only_the_book_uses():
    chapter = toc_notebooks()[0]
    nb = nbformat.read(reader.reader_path(chapter, REPO), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs, "the reader notebook keeps the chapter's outputs"
    for out in outputs:
        assert "scrapbook" not in out.get("metadata", {}), "a glue record left in the outputs"
        assert reader.WIDGET_VIEW not in out.get("data", {}), "a saved widget view (no state to show it)"
        assert not (out.get("output_type") == "stream" and out.get("name") == "stderr")
    assert "widgets" not in nb.metadata


# --- the conversion, on small documents ------------------------------------------------------------------

def _converter(tmp_path: Path, glue: dict | None = None) -> myst_to_md.Converter:
    (tmp_path / "book").mkdir(exist_ok=True)
    (tmp_path / "lib.py").write_text("import os\n\n\n@decorated\ndef f(x):\n    return x + 1\n\n\n"
                                     "class K:\n    def m(self):\n        return 2\n")
    values = {k: myst_to_md.GlueValue(v) for k, v in (glue or {}).items()}
    return myst_to_md.Converter(
        doc="book/02_x", root=tmp_path, glue=values, page_url=lambda d, a: f"https://o.github.io/r/{d}.html"
        + (f"#{a}" if a else ""), title_of=lambda d: f"Title of {d}",
        cite=lambda keys, style: f"<{style}:{','.join(keys)}>", labels={"sec-a": ("book/01_y", "Section A")},
        substitutions={"name": "value"})


def test_glue_roles_follow_their_format_spec(tmp_path: Path):
    conv = _converter(tmp_path, {"a": {"text/plain": "0.123456"}, "n": {"text/plain": "np.int64(7200)"},
                                 "m": {"text/markdown": "**bold**", "text/plain": "<Markdown>"},
                                 "s": {"text/plain": "'box'"}})
    out = conv.convert("{glue:text}`a:.3f`, {glue:text}`a:.1%`, {glue:}`n`, {glue:text}`n`, "
                       "{glue:md}`m`, {glue}`s`, {glue:text}`a:.2g`")
    assert out == "0.123, 12.3%, 7200, 7200, **bold**, box, 0.12"
    with pytest.raises(CbftError, match="'zz' is not glued"):
        conv.convert("{glue:text}`zz:.2f`")


def test_links_citations_math_targets_and_substitutions(tmp_path: Path):
    conv = _converter(tmp_path)
    out = conv.convert("(sec-b)=\n## Head\nSee {doc}`chapter 1 <01_y>`, {doc}`03_z`, {ref}`sec-a`, "
                       "{cite:p}`k1,k2`, {cite:t}`k3`, {math}`x^2`, {{ name }}.\n% a comment\n$$a=b$$ (eq-1)")
    assert out == ("## Head\nSee [chapter 1](https://o.github.io/r/book/01_y.html), "
                   "[Title of book/03_z](https://o.github.io/r/book/03_z.html), "
                   "[Section A](https://o.github.io/r/book/01_y.html#sec-a), <p:k1,k2>, <t:k3>, $x^2$, value.\n$$a=b$$")


def test_directives_become_markdown(tmp_path: Path):
    conv = _converter(tmp_path)
    out = conv.convert("```{literalinclude} ../lib.py\n:pyobject: f\n```\n\n"
                       "```{literalinclude} /lib.py\n:pyobject: K.m\n:dedent: 4\n```\n\n"
                       "```{admonition} Careful\n:class: warning\nIt needs {math}`t`.\n```\n\n"
                       ":::{note}\nColon fenced.\n:::\n\n```python\n{glue:text}`kept_in_code`\n```")
    assert "```python\n@decorated\ndef f(x):\n    return x + 1\n```" in out
    assert "```python\ndef m(self):\n    return 2\n```" in out
    assert "> **Careful**\n>\n> It needs $t$." in out
    assert "> **Note**\n>\n> Colon fenced." in out
    assert "```python\n{glue:text}`kept_in_code`\n```" in out, "code blocks are left alone"


def test_unknown_myst_is_an_error_naming_it(tmp_path: Path):
    conv = _converter(tmp_path)
    with pytest.raises(CbftError, match=r"role \{mystery\}"):
        conv.convert("a {mystery}`x` b")
    with pytest.raises(CbftError, match=r"directive \{tabbed\}"):
        conv.convert("```{tabbed} A\nx\n```")
    with pytest.raises(CbftError, match="no object 'g'"):
        conv.convert("```{literalinclude} ../lib.py\n:pyobject: g\n```")


def test_published_url_is_the_repositorys_pages_site():
    assert reader.published_url({"repository": {"url": "https://github.com/Org/name.git"}}) == \
        "https://org.github.io/name/"
    with pytest.raises(CbftError, match="repository.url"):
        reader.published_url({"repository": {"url": "https://gitlab.com/a/b"}})


def test_bibliography_author_year():
    bib = reader.Bibliography(REPO / "book" / "references.bib")
    assert bib.cite(["lubana2023mechanistic"], "p") == "(Lubana et al., 2023)"
    assert bib.cite(["lubana2023mechanistic", "ioffe2015batch"], "t") == "Lubana et al. (2023); Ioffe and Szegedy (2015)"
    assert "Jacobsen, J.-H." in bib.reference("geirhos2020shortcut"), "LaTeX accents and hyphenated initials"
    with pytest.raises(CbftError, match="nokey"):
        bib.cite(["nokey"])


def test_notebooks_check_command(capsys):
    """`python -m cbft_core notebooks --check` passes on current notebooks and writes nothing."""
    from cbft_core.presentation import cli

    before = {p: p.stat().st_mtime_ns for p in (REPO / reader.READER_DIR).glob("*.ipynb")}
    assert cli.main(["notebooks", "--check"]) == 0
    assert "match the chapters" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in (REPO / reader.READER_DIR).glob("*.ipynb")}


def test_glued_figures_become_attachments(tmp_path: Path):
    png = "iVBORw0KGgo="  # the start of a PNG, base64: enough for the conversion
    conv = _converter(tmp_path, {"fig": {"image/png": png, "text/plain": "<Figure>"}})
    out = conv.convert("```{glue:figure} fig\n:name: fig-a\nThe caption.\n```")
    assert out == "![fig](attachment:fig.png)\n\n*The caption.*"
    assert conv.attachments == {"fig.png": {"image/png": png}}
