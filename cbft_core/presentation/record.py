"""Glue a chapter's numbers into its text, with or without MyST-NB installed.

:func:`glue` is MyST-NB's ``glue`` when MyST-NB is importable; otherwise it
writes the same notebook output (a ``display_data`` with the
``application/papermill.record/text/plain`` representation and its name in
the ``scrapbook`` metadata), so a chapter runs where only ``cbft_core`` is
installed and its glued numbers can still be read back
(:func:`glued_values`).
"""
from __future__ import annotations

import ast
import re
from typing import Any, Iterator

__all__ = ["MIME_PREFIX", "glue", "glued_values"]

MIME_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, display: bool = True) -> None:
    """Record ``value`` under ``name`` in the notebook's outputs (shown too, unless ``display=False``)."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        from IPython.display import display as show

        show({MIME_PREFIX + "text/plain": repr(value)}, raw=True,
             metadata={"scrapbook": {"name": name, "mime_prefix": MIME_PREFIX}})
        if display:
            show(value)
        return
    myst_glue(name, value, display=display)


def glued_values(nb: Any) -> Iterator[tuple[str, Any]]:
    """(name, value) of every glued output of the notebook ``nb``, in order; values parsed back from their text."""
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            text = out.get("data", {}).get(MIME_PREFIX + "text/plain")
            if name is None or text is None:
                continue
            yield name, _parse(text)


def _parse(text: str) -> Any:
    """A glued value's text as a Python value (``np.float64(0.5)`` → 0.5); the text itself if it is none."""
    numpy_scalar = re.fullmatch(r"np\.\w+\((.*)\)", text.strip())
    try:
        return ast.literal_eval(numpy_scalar[1] if numpy_scalar else text)
    except (ValueError, SyntaxError):
        return text
