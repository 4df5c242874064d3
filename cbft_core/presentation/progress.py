"""Progress bars while a person runs a chapter, none in executed pages or committed outputs.

A chapter executed non-interactively (``python -m cbft_core chapter|book|refresh``)
runs with ``CBFT_PROGRESS=0`` in its kernel's environment: :func:`enabled`
(:mod:`cbft_core.kernels.progress`) is then false and no library loop draws a
bar. Whatever a chapter draws anyway is removed from the executed notebook by
:func:`clean_notebook`: tqdm's notebook widgets
(an ``HBox`` holding a progress model) and their widget state, and stream
output holding tqdm's text bars.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Iterator

from ..kernels.progress import ENV, enabled

__all__ = ["ENV", "enabled", "is_progress_text", "clean_notebook", "clean_file", "non_interactive"]

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}
# tqdm's text bar: "desc:  40%|████      | 4/10 [00:01<00:02, 3.1it/s]"
_TQDM_TEXT = re.compile(r"\d+%\|.*\||\d+(\.\d+)?\s*(it|s)/(s|it)\]")


def is_progress_text(text: str) -> bool:
    """Whether ``text`` contains a tqdm text progress bar."""
    return bool(_TQDM_TEXT.search(text))


def _refs(value: Any) -> set[str]:
    """The model ids a widget's state refers to (``"IPY_MODEL_<id>"`` strings, at any depth)."""
    if isinstance(value, str):
        return {value[len("IPY_MODEL_"):]} if value.startswith("IPY_MODEL_") else set()
    if isinstance(value, dict):
        return set().union(*map(_refs, value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*map(_refs, value)) if value else set()
    return set()


def _bar_models(state: dict[str, Any]) -> set[str]:
    """Ids of tqdm bars in ``state`` (boxes holding a progress model) and of the models only they use."""
    bars = {mid for mid, model in state.items()
            if model.get("model_name") in {"HBoxModel", "BoxModel"}
            and any(state.get(child, {}).get("model_name") in _PROGRESS_MODELS
                    for child in _refs(model.get("state", {})))}
    owned = set(bars)
    frontier = set(bars)
    while frontier:  # everything the bars refer to ...
        frontier = set().union(*(_refs(state[m].get("state", {})) for m in frontier if m in state)) - owned
        owned |= frontier
    used = set().union(*(_refs(m.get("state", {})) for mid, m in state.items() if mid not in owned)) \
        if len(owned) < len(state) else set()
    # ... except what another widget also uses (a shared layout, say), and what that refers to.
    keep = used & owned
    while keep:
        new = set().union(*(_refs(state[m].get("state", {})) for m in keep if m in state)) & owned
        owned -= keep
        keep = new & owned
    return owned | bars


def clean_notebook(nb: Any) -> int:
    """Remove progress-bar outputs and widget state from the notebook ``nb`` in place; returns how many outputs."""
    widgets = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    state = widgets.get("state", {})
    bars = _bar_models(state)
    removed = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW) if out.get("output_type") == "display_data" else None
            if view is not None and view.get("model_id") in bars:
                removed += 1
                continue
            if out.get("output_type") == "stream" and is_progress_text(out.get("text", "")):
                lines = [ln for ln in re.split(r"(?<=[\n\r])", out["text"]) if not is_progress_text(ln)]
                text = "".join(lines)
                removed += 1
                if not text.strip():
                    continue
                out["text"] = text
            kept.append(out)
        cell["outputs"] = kept
    for mid in bars:
        state.pop(mid, None)
    if "widgets" in nb.metadata and not state:
        del nb.metadata["widgets"]  # nothing left to restore in a browser
    return removed


@contextlib.contextmanager
def non_interactive() -> Iterator[None]:
    """Within the block, kernels started from this process run with ``CBFT_PROGRESS=0``."""
    old = os.environ.get(ENV)
    os.environ[ENV] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def clean_file(path: str | os.PathLike) -> int:
    """:func:`clean_notebook` on the notebook file at ``path``, rewritten only when something was removed."""
    import nbformat

    nb = nbformat.read(os.fspath(path), as_version=4)
    removed = clean_notebook(nb)
    if removed:
        nbformat.write(nb, os.fspath(path))
    return removed
