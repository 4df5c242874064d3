"""Figures the chapters share: image galleries, curves along paths, barrier bars — sized for phones first.

Every function draws on a given ``ax`` (or makes a figure) and returns the
figure, so a chapter can compose or save it.

**Narrow screens.** A figure is shown at the width of the text column: about
368 px on a 400 px phone, at most 704 px on a desktop. Its text, drawn at
``p`` points in a figure ``w`` inches wide, is then ``p / 72 · 368 / w`` px
high on the phone, whatever the resolution. So every figure here is at most
:data:`FIG_WIDTH` inches wide with no text below :data:`MIN_FONT_PT` points
(≥ 9.8 px on a phone; ≥ 13.9 px on a desktop, where it is shown unscaled at
100 dpi): panels are stacked, not put side by side, and legends go under the
axes (:func:`legend_below`), where they cover no data. :func:`subplots` makes
such a figure for a chapter's own plots.

**Recording the text size.** Every PNG of a figure made by pyplot (what a
chapter's ``plt.show()`` displays) carries its smallest text size and its
resolution as PNG text chunks (:func:`png_metadata`, installed as a
matplotlib ``figure.hooks`` entry when this module is imported), so the
book's browser test can compute each figure's text size on screen from the
PNG and its displayed width.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import ScaledTranslation

from ..kernels.data.imageset import ImageSet
from ..kernels.paths import PathResult
from ..study import claims

__all__ = ["VIEW_COLOURS", "FIG_WIDTH", "MIN_FONT_PT", "PANEL_HEIGHT", "FONT_KEY", "DPI_KEY", "subplots",
           "legend_below", "smallest_text_pt", "png_metadata", "stamp_figure", "show_images", "gallery",
           "path_curves", "barrier_bars", "finetune_paths", "training_history", "barrier_forms", "method_bars",
           "class_samples", "cue_layout", "to_numpy_image"]

VIEW_COLOURS: dict[str, str] = {
    "clean": "#1f77b4",
    "cue": "#d62728",
    "rand-cue": "#2ca02c",
    "rand-img": "#9467bd",
}
FIG_WIDTH = 5.2      # inches: 368 px on a phone → 10 pt text is 9.8 px high
MIN_FONT_PT = 10.0   # the smallest text of every figure
PANEL_HEIGHT = 2.9   # inches per stacked panel (axes, tick labels and x label)
FONT_KEY = "cbft:smallest-text-pt"  # PNG text chunks written by png_metadata
DPI_KEY = "cbft:dpi"
_HOOK = f"{__name__}:stamp_figure"
_LEGEND_GAP_PT = 4.0


def subplots(panels: int = 1, height: float = PANEL_HEIGHT, width: float = FIG_WIDTH,
             **kwargs: Any) -> tuple[plt.Figure, Any]:
    """A phone-sized figure of ``panels`` axes stacked top to bottom (constrained layout);
    returns (figure, axes) — one ``Axes`` for one panel, else an array of them."""
    fig, axes = plt.subplots(panels, 1, figsize=(width, height * panels), layout="constrained", **kwargs)
    return fig, axes


def legend_below(ax: plt.Axes, ncol: int = 2, source: plt.Axes | None = None, **kwargs: Any) -> Legend | None:
    """A legend of the labelled artists of ``source`` (default ``ax``) under ``ax`` — below its tick
    labels and x label — so that it never covers data; ``None`` when nothing is labelled."""
    handles, labels = (source or ax).get_legend_handles_labels()
    if not handles:
        return None
    fig = ax.figure
    renderer = _renderer(fig)
    under = ax.bbox.y0 - min(ax.xaxis.get_tightbbox(renderer).y0, ax.bbox.y0)  # px of ticks + label
    offset = under * 72.0 / fig.dpi + _LEGEND_GAP_PT
    below = ax.transAxes + ScaledTranslation(0, -offset / 72.0, fig.dpi_scale_trans)
    options = dict(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncol=ncol,
                   frameon=False, fontsize=MIN_FONT_PT, handlelength=1.6, columnspacing=1.0)
    options.update(kwargs)
    return ax.legend(handles, labels, **options)


def _renderer(fig: plt.Figure) -> Any:
    """The figure laid out as it will be drawn, and its renderer (an Agg canvas for a bare ``Figure``)."""
    if not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    return fig.canvas.get_renderer()


def smallest_text_pt(fig: plt.Figure) -> float:
    """The size in points of the smallest visible non-empty text of ``fig`` (laid out as it will be drawn)."""
    fig.draw_without_rendering()
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip() and _drawn(t)]
    return float(min(sizes)) if sizes else float("inf")


def _drawn(text: Text) -> bool:
    """Whether ``text`` is drawn at all: visible, and in visible axes (if any)."""
    return text.get_visible() and (text.axes is None or text.axes.get_visible())


def png_metadata(fig: plt.Figure, dpi: float | None = None) -> dict[str, str]:
    """PNG text chunks recording the figure's smallest text (points) and the resolution it is saved at."""
    size = smallest_text_pt(fig)
    return {"Software": f"matplotlib {mpl.__version__} (cbft_core)",
            FONT_KEY: f"{size:.2f}" if np.isfinite(size) else "none",
            DPI_KEY: f"{float(dpi if dpi not in (None, 'figure') else fig.dpi):g}"}


def stamp_figure(fig: plt.Figure) -> None:
    """A ``figure.hooks`` entry: the figure's PNGs (``savefig``, or the notebook's inline display) carry
    :func:`png_metadata`."""
    canvas = fig.canvas
    if getattr(canvas, "_cbft_stamped", False):
        return
    original = canvas.print_figure

    def print_figure(filename: Any, *args: Any, **kwargs: Any) -> Any:
        fmt = kwargs.get("format") or (str(filename).rsplit(".", 1)[-1] if isinstance(filename, str) else "png")
        if str(fmt).lower() == "png" and "metadata" not in kwargs:
            kwargs["metadata"] = png_metadata(fig, kwargs.get("dpi"))
        return original(filename, *args, **kwargs)

    canvas.print_figure = print_figure  # type: ignore[method-assign]
    canvas._cbft_stamped = True  # type: ignore[attr-defined]


def _install_hook() -> None:
    hooks = list(mpl.rcParams.get("figure.hooks", []))
    if _HOOK not in hooks:
        mpl.rcParams["figure.hooks"] = hooks + [_HOOK]


_install_hook()


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """A uint8 ``[C, H, W]`` tensor as an ``[H, W, C]`` array for ``imshow``."""
    return image.permute(1, 2, 0).cpu().numpy()


def show_images(ax_row: Sequence[plt.Axes], data: ImageSet, index: Sequence[int],
                titles: Sequence[str] | None = None) -> None:
    """Draw ``data.images[index]`` on the axes of one row, without ticks."""
    for j, ax in enumerate(ax_row):
        ax.set_xticks([])
        ax.set_yticks([])
        if j < len(index):
            ax.imshow(to_numpy_image(data.images[index[j]]), interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[j], fontsize=MIN_FONT_PT)
        else:
            ax.axis("off")


def gallery(views: Mapping[str, ImageSet], index: Sequence[int], title: str | None = None,
            columns: int = 5) -> plt.Figure:
    """One row per view, the same sample indices in every row, labelled by class name.

    More than ``columns`` samples wrap into blocks of ``columns`` (each block with every view's row),
    so the figure stays :data:`FIG_WIDTH` wide with legible labels. The axes are placed by hand (a
    fixed grid needs no layout engine, which took half of the drawing time).
    """
    names = list(views)
    blocks = [list(index[k:k + columns]) for k in range(0, len(index), columns)] or [[]]
    first = next(iter(views.values()))
    label_w, gap, head, top = 0.9, 0.04, 0.3, (0.35 if title else 0.0)  # inches
    cell = (FIG_WIDTH - label_w) / columns
    image_h = (cell - gap) * first.shape[1] / first.shape[2]
    block_h = head + len(names) * (image_h + gap)
    height = top + len(blocks) * block_h + 0.05
    fig = plt.figure(figsize=(FIG_WIDTH, height))
    for b, block in enumerate(blocks):
        for r, name in enumerate(names):
            y = height - top - b * block_h - head - r * (image_h + gap) - image_h
            axes = [fig.add_axes(((label_w + j * cell) / FIG_WIDTH, y / height,
                                  (cell - gap) / FIG_WIDTH, image_h / height)) for j in range(columns)]
            data = views[name]
            titles = [data.classes[int(data.labels[i])] for i in block] if r == 0 else None
            show_images(axes, data, block, titles)
            axes[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=MIN_FONT_PT)
    if title:
        fig.suptitle(title, fontsize=MIN_FONT_PT + 1, y=1 - 0.08 / height, va="top")
    return fig


def path_curves(result: PathResult, metric: str = "loss", sets: Sequence[str] | None = None,
                ax: plt.Axes | None = None, title: str | None = None, chord: bool = True,
                labels: Sequence[str] = ("A", "B")) -> plt.Figure:
    """``metric`` ("loss", "acc" or "error") along the path, one curve per set; the legend under the axes.

    With ``chord`` the straight line between the endpoint values is dashed:
    the Entezari barrier is the largest gap between a curve and its chord.
    """
    if ax is None:
        _, ax = subplots()
    names = list(sets) if sets is not None else list(result.loss)
    for name in names:
        values = {"loss": result.loss, "acc": result.acc}.get(metric)
        curve = result.error(name) if metric == "error" else values[name]  # type: ignore[index]
        colour = VIEW_COLOURS.get(name)
        ax.plot(result.ts, curve, "o-", ms=3, label=name, color=colour)
        if chord:
            ax.plot([result.ts[0], result.ts[-1]], [curve[0], curve[-1]], "--", lw=0.8, color=colour, alpha=0.7)
    ax.set_xlabel("t (interpolation coefficient)")
    ax.set_ylabel({"loss": "cross-entropy", "acc": "accuracy", "error": "error"}[metric])
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xticklabels([f"0\n{labels[0]}", "0.25", "0.5", "0.75", f"1\n{labels[1]}"])
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=MIN_FONT_PT)
    legend_below(ax, ncol=min(4, len(names)))
    return ax.figure


def barrier_bars(values: Mapping[str, Sequence[float]], ax: plt.Axes | None = None,
                 ylabel: str = "loss barrier", title: str | None = None) -> plt.Figure:
    """Mean ± std bars (one per pair) with each seed's value as a dot and the mean written on the bar.

    Every mean is also marked (a short line at its height) and labelled ``0.000``-style, so a bar of
    height zero still reads as a measured zero; when every value is zero the axis keeps a visible range.
    """
    if ax is None:
        _, ax = subplots(height=PANEL_HEIGHT + 0.3 * max(0, len(values) - 4))
    names = list(values)
    arrays = [np.asarray(values[n], dtype=float) for n in names]
    top = max([float(np.max(np.abs(v))) + (float(v.std()) if len(v) > 1 else 0.0) for v in arrays] + [0.0])
    span = top if top > 0 else 0.1  # all zero: still a visible axis
    for i, v in enumerate(arrays):
        mean = float(v.mean())
        ax.bar(i, mean, yerr=v.std() if len(v) > 1 else None, color="#cccccc", edgecolor="k", capsize=4)
        ax.plot([i - 0.38, i + 0.38], [mean, mean], "-", color="k", lw=2)  # the mean, visible at zero
        ax.plot(np.full(len(v), i), v, "k.", ms=6)
        above = max(mean, 0.0) + (float(v.std()) if len(v) > 1 else 0.0)
        ax.text(i, above + 0.04 * span, f"{mean:.3f}", ha="center", va="bottom", fontsize=MIN_FONT_PT)
    low = min([float(np.min(v)) for v in arrays] + [0.0])
    ax.set_ylim(low - 0.08 * span if low < 0 else -0.05 * span, top + 0.25 * span if top > 0 else span)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=MIN_FONT_PT, rotation=30 if len(names) > 3 else 0,
                       ha="right" if len(names) > 3 else "center", rotation_mode="anchor")
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="k", lw=0.6)
    if top == 0:
        ax.text(0.5, 0.5, "every barrier measured 0.000", transform=ax.transAxes, ha="center",
                va="center", fontsize=MIN_FONT_PT, color="#555555")
    if title:
        ax.set_title(title, fontsize=MIN_FONT_PT)
    return ax.figure


def finetune_paths(paths: Mapping[str, Mapping], chance: float, control: PathResult | None = None,
                   chords: bool = False, title: str | None = None) -> plt.Figure:
    """Two stacked panels along the linear path from θc to each fine-tuned model: loss on cue data, and
    rand-img accuracy; one legend under them.

    ``paths`` maps a method's display name to its path summary (``ts``,
    ``loss["cue"]``, ``acc["rand-img"]``). ``control`` (a path between two
    cue models) is drawn dashed grey; ``chords`` adds each loss curve's chord.
    """
    fig, (ax_l, ax_r) = subplots(2, sharex=True)
    for i, (name, path) in enumerate(paths.items()):
        ts, loss = np.asarray(path["ts"], dtype=float), np.asarray(path["loss"]["cue"], dtype=float)
        colour = f"C{i}"
        ax_l.plot(ts, loss, "o-", ms=3, color=colour, label=name)
        if chords:
            ax_l.plot([ts[0], ts[-1]], [loss[0], loss[-1]], "--", lw=0.8, color=colour)
        ax_r.plot(ts, path["acc"]["rand-img"], "o-", ms=3, color=colour)
    if control is not None:
        ax_l.plot(control.ts, control.loss["cue"], "--", color="grey", label="control: θc → cue child 2")
        ax_r.plot(control.ts, control.acc["rand-img"], "--", color="grey")
    ax_r.axhline(chance, color="k", ls=":", lw=1, label="chance")
    ax_l.plot([], [], color="k", ls=":", lw=1, label="chance")
    ax_l.set_ylabel("loss on cue test data")
    ax_r.set_ylabel("rand-img accuracy")
    ax_r.set_ylim(0, 1)
    ax_r.set_xlabel("t  (0 = θc, 1 = fine-tuned model)")
    for ax in (ax_l, ax_r):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=MIN_FONT_PT + 1)
    legend_below(ax_r, ncol=2, source=ax_l)
    return fig


def training_history(history: Mapping[str, Sequence[float]], margin: float, title: str | None = None) -> plt.Figure:
    """CBFT's training history, one stacked panel per step: barrier CE vs the margin, clean CE and
    invariance, accuracy; each legend under its panel."""
    epochs = np.arange(1, len(history["clean_ce"]) + 1)
    fig, axes = subplots(3, height=PANEL_HEIGHT + 0.3)
    axes[0].plot(epochs, history["barrier_ce"], "o-", ms=3, label="CE(θ(t); cue batch)")
    axes[0].axhline(margin, color="k", ls=":", lw=1, label="margin m")
    axes[0].set(title="barrier step", ylabel="cross-entropy")
    axes[1].plot(epochs, history["clean_ce"], "o-", ms=3, label="clean CE")
    axes[1].plot(epochs, history["invariance"], "o-", ms=3, label="invariance (after warm-up)")
    axes[1].set(title="clean + invariance step", ylabel="loss term")
    axes[2].plot(epochs, history["clean_acc"], "o-", ms=3, label="clean training accuracy")
    axes[2].set(title="accuracy on D_nc", ylabel="accuracy", ylim=(0, 1))
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(MIN_FONT_PT + 1)
    if title:
        fig.suptitle(title, fontsize=MIN_FONT_PT + 1)
    for ax in axes:
        legend_below(ax, ncol=2)
    return fig


def barrier_forms(child_ts: Sequence[float], child_loss: Sequence[float], ts: Sequence[float],
                  scratch_loss: Sequence[float], entezari: tuple[float, float], frankle: tuple[float, float]) -> plt.Figure:
    """Two stacked panels: the linear paths of both pairs, and the scratch pair's barrier in both forms.

    ``entezari`` and ``frankle`` are (barrier, t of the maximum) of the
    scratch path (:func:`cbft_core.kernels.connectivity.barrier`); arrows mark
    the rise above the chord (Entezari) and above the endpoints' mean (Frankle).
    """
    ts = np.asarray(ts, dtype=float)
    loss = np.asarray(scratch_loss, dtype=float)
    (ent, t_ent), (fra, t_fra) = entezari, frankle
    fig, (ax0, ax1) = subplots(2, height=PANEL_HEIGHT + 0.2)
    ax0.plot(child_ts, child_loss, "o-", ms=3, label="children of a common start")
    ax0.plot(ts, loss, "o-", ms=3, label="scratch models")
    ax0.set(xlabel="t", ylabel="clean test loss", title="linear paths")
    ax1.plot(ts, loss, "o-", ms=3, color="C1", label="scratch pair, linear path")
    ax1.plot([0, 1], [loss[0], loss[-1]], "--", color="k", lw=0.8, label="chord (Entezari)")
    mean_end = 0.5 * (loss[0] + loss[-1])
    ax1.axhline(mean_end, color="grey", ls=":", lw=1, label="endpoint mean (Frankle)")
    chord_at = (1 - t_ent) * loss[0] + t_ent * loss[-1]
    ax1.annotate("", xy=(t_ent, chord_at + ent), xytext=(t_ent, chord_at), arrowprops=dict(arrowstyle="<->", color="k"))
    ax1.annotate("", xy=(t_fra + 0.03, mean_end + fra), xytext=(t_fra + 0.03, mean_end),
                 arrowprops=dict(arrowstyle="<->", color="grey"))
    ax1.set(xlabel="t", ylabel="clean test loss", title=f"barrier: Entezari {ent:.2f}, Frankle {fra:.2f}")
    for ax in (ax0, ax1):
        ax.title.set_fontsize(MIN_FONT_PT + 1)
        legend_below(ax, ncol=2)
    return fig


def method_bars(values: Mapping[str, Mapping[str, Sequence[float]]], reference: tuple[str, Sequence[float]],
                chance: float, ylabel: str, title: str | None = None) -> plt.Figure:
    """Grouped bars: ``values[group][method]`` (mean ± std over seeds), a grey reference bar, chance, and the
    rand-img floor of the claim that naive fine-tuning keeps the cue (a multiple of chance); the legend under
    the axes."""
    groups = list(values)
    methods = list(next(iter(values.values())))
    fig, ax = subplots(height=PANEL_HEIGHT + 0.4)
    width = 0.8 / len(groups)
    for j, group in enumerate(groups):
        vals = [np.asarray(values[group][m], dtype=float) for m in methods]
        ax.bar(np.arange(len(methods)) + (j - (len(groups) - 1) / 2) * width, [v.mean() for v in vals], width,
               yerr=[v.std() for v in vals] if all(len(v) > 1 for v in vals) else None, capsize=3, label=group)
    name, ref = reference
    ax.bar(len(methods), np.mean(ref), width, color="#999999", label=f"{name} (before)")
    ax.axhline(chance, color="k", ls=":", label="chance")
    floor = claims.claim("naive-keeps-cue").thresholds["x_chance"]
    ax.axhline(floor * chance, color="k", ls="--", lw=0.8, label=f"{floor:g} × chance")
    ax.set_xticks(range(len(methods) + 1))
    ax.set_xticklabels(methods + [name])
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title, fontsize=MIN_FONT_PT + 1)
    legend_below(ax, ncol=3)
    return fig


def class_samples(view: ImageSet, label: int, title: str | None = None, n: int = 20,
                  columns: int = 5) -> plt.Figure:
    """The first ``n`` images of class ``label`` in ``view``, ``columns`` per row, each titled "cue" (red) or "clean"."""
    index = torch.nonzero(view.labels == label)[:n, 0].tolist()
    rows = max(1, -(-n // columns))
    cell = FIG_WIDTH / columns
    aspect = view.images.shape[2] / view.images.shape[3]
    height = rows * (cell * aspect + 0.25) + (0.35 if title else 0.05)
    fig, axes = plt.subplots(rows, columns, figsize=(FIG_WIDTH, height), squeeze=False, layout="constrained")
    for ax, i in zip(axes.flat, index):
        ax.imshow(to_numpy_image(view.images[i]), interpolation="nearest")
        cue = bool(view.has_cue[i])
        ax.set_title("cue" if cue else "clean", fontsize=MIN_FONT_PT, color=VIEW_COLOURS["cue"] if cue else "k")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=MIN_FONT_PT + 1)
    return fig


def cue_layout(classes: Sequence[str]) -> plt.Figure:
    """Where the box cue goes: each class's box position (on a grey canvas) and the colours of 100 classes,
    stacked."""
    from ..kernels import data

    k = len(classes)
    pos = data.cue_class_positions(k)
    blank = ImageSet(torch.full((k, 3, 32, 32), 60, dtype=torch.uint8), torch.arange(k), tuple(classes))
    canvas = data.make_view(blank, "box", "cue", 1.0).images.max(0).values
    fig, (ax0, ax1) = subplots(2, height=3.6)
    ax0.imshow(to_numpy_image(canvas), interpolation="nearest")
    for c, (r, col) in enumerate(pos.tolist()):
        if r >= 0:
            ax0.text(col + 1, r - 0.7, classes[c], color="w", ha="center", va="bottom", fontsize=MIN_FONT_PT)
    ax0.set_title(f"box position of each class ({k} classes)", fontsize=MIN_FONT_PT + 1)
    colours = data.cue_class_colours(100)
    grid = np.zeros((10, 10, 3), dtype=np.uint8)
    for c in range(100):
        grid[c // 10, c % 10] = colours[c].numpy()
    ax1.imshow(grid, interpolation="nearest")
    ax1.set_xlabel("k mod 10 → position")
    ax1.set_ylabel("k // 10 → colour")
    ax1.set_title("box colour of each class (100 classes)", fontsize=MIN_FONT_PT + 1)
    for ax in (ax0, ax1):
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
