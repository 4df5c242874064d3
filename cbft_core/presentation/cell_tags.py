"""Which chapter cells the pages hide: the tag convention of the book (MyST-NB cell tags).

The pages show the science, not the plumbing. A code cell carries

- ``remove-cell`` when the reader gains nothing from seeing it or its output:
  the install cell (it matters in Colab only; the reader notebooks keep it),
  and a cell that only glues numbers or builds the sentences the prose pastes
  (:func:`is_plumbing`) — its values appear in the text;
- ``remove-input`` when only its output matters (a table or a sentence built
  for the page, whose code would distract);
- ``hide-input`` when its code is worth a click but not the reader's first
  look (long set-up).

The rule for :func:`is_plumbing`, which ``tests/test_cell_tags.py`` applies
to every chapter: the cell calls ``glue``/``glue_mean_std``, its committed
outputs are glue records only (nothing a reader sees), and every other call
it makes is a formatting one (:data:`PROSE_CALLS`: ``Markdown``, ``str``
methods, ``len``, ``sum``, ``round``…), never a computation of the study.
Such a cell must carry ``remove-cell`` (or ``remove-input``). Conversely a
``remove-cell`` cell may not show anything (:func:`hides_output`). Cells that
compute *and* glue are left to the chapter's author: move the glue calls
into a cell of their own, which the rule then catches.
"""
from __future__ import annotations

import ast
from typing import Any

__all__ = ["INSTALL_TAG", "HIDING_TAGS", "GLUE_CALLS", "PROSE_CALLS", "is_plumbing", "hides_output",
           "visible_outputs"]

INSTALL_TAG = "remove-cell"
HIDING_TAGS = frozenset({"remove-cell", "remove-input", "hide-input"})
GLUE_CALLS = frozenset({"glue", "glue_mean_std"})
# functions and methods that only format values into text
PROSE_CALLS = frozenset({
    "Markdown", "str", "repr", "format", "join", "replace", "lower", "upper", "capitalize", "title", "strip",
    "split", "items", "values", "keys", "get", "append", "extend", "len", "sum", "min", "max", "round", "abs",
    "float", "int", "sorted", "dict", "list", "tuple", "set", "zip", "enumerate", "range", "any", "all",
    "fmt_pct", "fmt_loss", "sentence",
})


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def visible_outputs(cell: Any) -> list[Any]:
    """The outputs of a code cell a reader sees: everything but glue records (``scrapbook`` with a MIME prefix)."""
    shown = []
    for out in cell.get("outputs", []):
        scrapbook = out.get("metadata", {}).get("scrapbook")
        if scrapbook and scrapbook.get("mime_prefix"):
            continue
        if out.get("output_type") == "stream" and not str(out.get("text", "")).strip():
            continue
        shown.append(out)
    return shown


def is_plumbing(cell: Any) -> bool:
    """Whether a code cell only glues values or builds prose (see the module's rule)."""
    if cell.get("cell_type") != "code":
        return False
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return False  # IPython magics: not plumbing of this kind
    names = [_call_name(node) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    if not any(name in GLUE_CALLS for name in names):
        return False
    if any(name not in GLUE_CALLS | PROSE_CALLS for name in names):
        return False
    return not visible_outputs(cell)


def hides_output(cell: Any) -> bool:
    """Whether the cell is tagged ``remove-cell`` yet has outputs a reader would see (a mistake)."""
    return "remove-cell" in cell.get("metadata", {}).get("tags", []) and bool(visible_outputs(cell))
