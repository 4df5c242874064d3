"""Glue a chapter's numbers into its text, with or without MyST-NB installed.

:func:`glue` is MyST-NB's ``glue`` when MyST-NB is importable; otherwise it
writes the same notebook output (a ``display_data`` with the
``application/papermill.record/text/plain`` representation and its name in
the ``scrapbook`` metadata), so a chapter runs where only ``cbft_core`` is
installed and its glued numbers can still be read back
(:func:`glued_values`). :func:`glue_mean_std` glues a number measured over
seeds together with its spread, which widens the number's tolerance in the
book's numeric regression check (:mod:`cbft_core.presentation.regression`).
"""
from __future__ import annotations

import ast
import re
from typing import Any, Iterator, Sequence

from .regression import STD_SUFFIX

__all__ = ["MIME_PREFIX", "glue", "glue_mean_std", "glued_values"]

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


def glue_mean_std(name: str, values: Sequence[float]) -> tuple[float, float]:
    """Glue the mean over seeds of ``values`` as ``name`` and their (population) standard deviation
    as ``name + "_std"``, neither shown; returns (mean, std).

    The regression check then allows ``name`` to move by 3 standard deviations when re-executed.
    """
    from ..study.replication import mean_std

    mean, std = mean_std(values)
    glue(name, mean, display=False)
    glue(name + STD_SUFFIX, std, display=False)
    return mean, std


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
