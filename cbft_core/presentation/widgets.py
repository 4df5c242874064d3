"""Sliders that work with a kernel *and* in the static HTML book.

A precomputed-frames explorer renders a small grid of PNG frames once, puts
them in ``Stack`` containers (``Tab`` on ipywidgets 7, which has no ``Stack``)
and links each slider to a container's ``selected_index`` with ``jslink``:
moving a slider is then handled by the browser alone, so the explorer keeps
working in the published book where no kernel runs.
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt

__all__ = ["figure_png", "frame_container", "frames_explorer"]


def figure_png(fig: plt.Figure, dpi: int = 72) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def frame_container(children: Sequence[w.Widget]) -> w.Box:
    """A container that shows one child at a time, chosen by ``selected_index``."""
    stack_cls = getattr(w, "Stack", None)
    if stack_cls is not None:
        return stack_cls(list(children), selected_index=0)
    tab = w.Tab(list(children))  # ipywidgets 7 (e.g. Colab): Tab also has selected_index
    tab.selected_index = 0
    return tab


def _slider(description: str, values: Sequence[float], index: int) -> w.IntSlider:
    labels = ", ".join(f"{i}: {v:g}" for i, v in enumerate(values))
    return w.IntSlider(value=index, min=0, max=len(values) - 1, step=1, description=description,
                       continuous_update=True, readout=True, tooltip=labels,
                       style={"description_width": "initial"}, layout=w.Layout(width="420px"))


def frames_explorer(
    render: Callable[[int, int], bytes],
    rows: Sequence[float],
    cols: Sequence[float],
    row_name: str = "bend",
    col_name: str = "t",
    start: tuple[int, int] = (0, 0),
    progress: bool | None = None,
) -> w.VBox:
    """An explorer over a grid of frames: ``render(i, j)`` gives the PNG at ``rows[i]``, ``cols[j]``.

    Two sliders select the row and the column; each is ``jslink``-ed to the
    containers' ``selected_index``, so the explorer needs no kernel to move.
    The sliders show indices; the value each index stands for is in the label
    under them and in each frame's own title. A progress bar shows while the
    frames render (``progress``; None: :func:`cbft_core.presentation.progress.enabled`).
    """
    from tqdm.auto import tqdm

    from .progress import enabled

    total = len(rows) * len(cols)
    show_bar = enabled() if progress is None else progress
    bar = tqdm(total=total, desc="rendering frames", disable=not show_bar, leave=False)
    inner = []
    for i in range(len(rows)):
        frames = []
        for j in range(len(cols)):
            frames.append(w.Image(value=render(i, j), format="png"))
            bar.update()
        inner.append(frame_container(frames))
    bar.close()
    outer = frame_container(inner)
    row_slider = _slider(f"{row_name} (index)", rows, start[0])
    col_slider = _slider(f"{col_name} (index)", cols, start[1])
    w.jslink((row_slider, "value"), (outer, "selected_index"))
    for container in inner:
        w.jslink((col_slider, "value"), (container, "selected_index"))
    legend = w.HTML(
        f"<small>{row_name}: " + ", ".join(f"{i}→{v:g}" for i, v in enumerate(rows))
        + f" &nbsp;|&nbsp; {col_name}: " + ", ".join(f"{i}→{v:g}" for i, v in enumerate(cols)) + "</small>"
    )
    outer.selected_index = start[0]
    for container in inner:
        container.selected_index = start[1]
    return w.VBox([w.HBox([row_slider, col_slider]), legend, outer])
