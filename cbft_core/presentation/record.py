"""Glue a chapter's numbers into its text, with or without MyST-NB installed.

:func:`glue` is MyST-NB's ``glue`` when MyST-NB is importable; otherwise it
writes the same notebook output (a ``display_data`` with the
``application/papermill.record/text/plain`` representation and its name in
the ``scrapbook`` metadata), so a chapter runs where only ``cbft_core`` is
installed and its glued numbers can still be read back
(:func:`glued_values`). :func:`glue_mean_std` glues a number measured over
seeds together with its spread, which widens the number's tolerance in the
book's numeric regression check (:mod:`cbft_core.presentation.regression`).

With ``CBFT_GLUE_LOG`` set to a file path (the test run sets it per chapter,
:mod:`cbft_core.presentation.chapter_run`), every glued value is also appended
to that file as one JSON line holding its name and the very ``text/plain``
representation the notebook output stores, so a run that writes no executed
notebook (nbval) can still be compared with the committed outputs
(:func:`logged_values`). The notebook's outputs are the same with or without it.
"""
from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import CbftError
from .regression import STD_SUFFIX

__all__ = ["MIME_PREFIX", "LOG_ENV", "glue", "glue_mean_std", "glued_values", "logged_values"]

MIME_PREFIX = "application/papermill.record/"
LOG_ENV = "CBFT_GLUE_LOG"


def _log(name: str, text: str) -> None:
    """Append ``{"name": name, "text/plain": text}`` to the file named by ``CBFT_GLUE_LOG`` (if it is set)."""
    target = os.environ.get(LOG_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as log:
            log.write(json.dumps({"name": name, "text/plain": text}) + "\n")


def glue(name: str, value: Any, display: bool = True) -> None:
    """Record ``value`` under ``name`` in the notebook's outputs (shown too, unless ``display=False``)."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        from IPython.display import display as show

        _log(name, repr(value))
        show({MIME_PREFIX + "text/plain": repr(value)}, raw=True,
             metadata={"scrapbook": {"name": name, "mime_prefix": MIME_PREFIX}})
        if display:
            show(value)
        return
    if os.environ.get(LOG_ENV):
        from IPython.core.formatters import format_display_data

        # the representation MyST-NB's glue stores (it formats the value the same way)
        _log(name, format_display_data(value)[0].get("text/plain", repr(value)))
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


def logged_values(path: str | os.PathLike) -> dict[str, Any]:
    """The values a ``CBFT_GLUE_LOG`` file holds, by name (the last one glued under a name wins),
    parsed back from their text like :func:`glued_values`."""
    values: dict[str, Any] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            values[entry["name"]] = _parse(entry["text/plain"])
        except (ValueError, KeyError, TypeError):
            raise CbftError(f"{path}: line {number} is not a glue log entry: {line[:80]!r}") from None
    return values
