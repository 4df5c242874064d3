"""Sliders that work with a kernel *and* in the static HTML book.

A precomputed-frames explorer renders a small grid of PNG frames once. With
ipywidgets 8 it puts them in ``Stack`` containers and links each slider to a
container's ``selected_index`` with ``jslink``: moving a slider is then
handled by the browser alone, so the explorer keeps working in the published
book where no kernel runs. ipywidgets 7 (Colab ships 7.7.1) has no ``Stack``,
and its only other container with ``selected_index``, ``Tab``, always draws a
tab bar (two empty bars above the frame in a nested explorer). There the
explorer shows the frames in one ``Image`` whose value the kernel swaps when a
slider moves: Colab always runs a kernel, and the frames are already
rendered, so moving stays instant.
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt

__all__ = ["figure_png", "has_stack", "frame_container", "frames_explorer"]


def figure_png(fig: plt.Figure, dpi: int = 72) -> bytes:
    """The figure as PNG bytes (its smallest text recorded in the PNG, :func:`~.plots.png_metadata`);
    the figure is closed."""
    from .plots import png_metadata

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata=png_metadata(fig, dpi))
    plt.close(fig)
    return buffer.getvalue()


def has_stack() -> bool:
    """Whether this ipywidgets has ``Stack`` (ipywidgets 8), i.e. whether frames can switch without a kernel."""
    return getattr(w, "Stack", None) is not None


def frame_container(children: Sequence[w.Widget]) -> w.Box:
    """A ``Stack`` showing one child at a time, chosen by ``selected_index`` (ipywidgets 8 only)."""
    if not has_stack():
        raise RuntimeError("ipywidgets 7 has no Stack: frames_explorer switches frames in the kernel there")
    return w.Stack(list(children), selected_index=0)


def _slider(description: str, values: Sequence[float], index: int) -> w.IntSlider:
    labels = ", ".join(f"{i}: {v:g}" for i, v in enumerate(values))
    slider = w.IntSlider(value=index, min=0, max=len(values) - 1, step=1, description=description,
                         continuous_update=True, readout=True, style={"description_width": "initial"},
                         layout=w.Layout(width="420px", max_width="100%"))
    if "tooltip" in slider.trait_names():  # ipywidgets 8
        slider.tooltip = labels
    return slider


def _kernel_view(frames: list[list[bytes]], row_slider: w.IntSlider, col_slider: w.IntSlider) -> w.Image:
    """One image whose value follows the sliders (through the kernel)."""
    image = w.Image(value=frames[row_slider.value][col_slider.value], format="png")

    def show(_change: object = None) -> None:
        image.value = frames[row_slider.value][col_slider.value]

    row_slider.observe(show, names="value")
    col_slider.observe(show, names="value")
    return image


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

    Two sliders select the row and the column. With ipywidgets 8 each is
    ``jslink``-ed to ``Stack`` containers' ``selected_index`` (the last child
    is the outer stack of rows, each an inner stack of columns), so the
    explorer needs no kernel to move; with ipywidgets 7 the last child is one
    ``Image`` that the kernel updates. The sliders show indices; the value
    each index stands for is in the label under them and in each frame's own
    title. A progress bar shows while the frames render (``progress``; None:
    :func:`cbft_core.presentation.progress.enabled`).
    """
    from tqdm.auto import tqdm

    from .progress import enabled

    total = len(rows) * len(cols)
    show_bar = enabled() if progress is None else progress
    bar = tqdm(total=total, desc="rendering frames", disable=not show_bar, leave=False)
    frames: list[list[bytes]] = []
    for i in range(len(rows)):
        frames.append([])
        for j in range(len(cols)):
            frames[-1].append(render(i, j))
            bar.update()
    bar.close()
    row_slider = _slider(f"{row_name} (index)", rows, start[0])
    col_slider = _slider(f"{col_name} (index)", cols, start[1])
    legend = w.HTML(
        f"<small>{row_name}: " + ", ".join(f"{i}→{v:g}" for i, v in enumerate(rows))
        + f" &nbsp;|&nbsp; {col_name}: " + ", ".join(f"{i}→{v:g}" for i, v in enumerate(cols)) + "</small>"
    )
    if not has_stack():
        view: w.Widget = _kernel_view(frames, row_slider, col_slider)
    else:
        inner = [frame_container([w.Image(value=png, format="png") for png in row]) for row in frames]
        outer = frame_container(inner)
        w.jslink((row_slider, "value"), (outer, "selected_index"))
        for container in inner:
            w.jslink((col_slider, "value"), (container, "selected_index"))
        outer.selected_index = start[0]
        for container in inner:
            container.selected_index = start[1]
        view = outer
    return w.VBox([w.HBox([row_slider, col_slider]), legend, view])
