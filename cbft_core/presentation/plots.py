"""Figures the chapters share: image galleries, curves along paths, barrier bars.

Every function draws on a given ``ax`` (or makes a figure) and returns the
figure, so a chapter can compose or save it.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..kernels.data.imageset import ImageSet
from ..kernels.paths import PathResult
from ..study import claims

__all__ = ["VIEW_COLOURS", "show_images", "gallery", "path_curves", "barrier_bars", "finetune_paths", "training_history",
           "barrier_forms", "method_bars", "class_samples", "cue_layout", "to_numpy_image"]

VIEW_COLOURS: dict[str, str] = {
    "clean": "#1f77b4",
    "cue": "#d62728",
    "rand-cue": "#2ca02c",
    "rand-img": "#9467bd",
}


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
                ax.set_title(titles[j], fontsize=8)
        else:
            ax.axis("off")


def gallery(views: Mapping[str, ImageSet], index: Sequence[int], title: str | None = None,
            size: float = 1.1) -> plt.Figure:
    """One row per view, the same sample indices in every row, labelled by class name."""
    rows, cols = len(views), len(index)
    first = next(iter(views.values()))
    aspect = first.shape[1] / first.shape[2]
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * aspect * rows + 0.4), squeeze=False)
    for r, (name, data) in enumerate(views.items()):
        show_images(axes[r], data, index, [data.classes[int(data.labels[i])] for i in index] if r == 0 else None)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def path_curves(result: PathResult, metric: str = "loss", sets: Sequence[str] | None = None,
                ax: plt.Axes | None = None, title: str | None = None, chord: bool = True,
                labels: Sequence[str] = ("A", "B")) -> plt.Figure:
    """``metric`` ("loss", "acc" or "error") along the path, one curve per set.

    With ``chord`` the straight line between the endpoint values is dashed:
    the Entezari barrier is the largest gap between a curve and its chord.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.4))
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
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return ax.figure


def barrier_bars(values: Mapping[str, Sequence[float]], ax: plt.Axes | None = None,
                 ylabel: str = "loss barrier", title: str | None = None) -> plt.Figure:
    """Mean ± std bars (one per pair) with each seed's value as a dot."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 1.1 * len(values), 3.2))
    names = list(values)
    for i, name in enumerate(names):
        v = np.asarray(values[name], dtype=float)
        ax.bar(i, v.mean(), yerr=v.std() if len(v) > 1 else None, color="#cccccc", edgecolor="k", capsize=4)
        ax.plot(np.full(len(v), i), v, "k.", ms=6)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8, rotation=15)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="k", lw=0.6)
    if title:
        ax.set_title(title, fontsize=10)
    ax.figure.tight_layout()
    return ax.figure


def finetune_paths(paths: Mapping[str, Mapping], chance: float, control: PathResult | None = None,
                   chords: bool = False, title: str | None = None) -> plt.Figure:
    """Two panels along the linear path from θc to each fine-tuned model: loss on cue data, rand-img accuracy.

    ``paths`` maps a method's display name to its path summary (``ts``,
    ``loss["cue"]``, ``acc["rand-img"]``). ``control`` (a path between two
    cue models) is drawn dashed grey; ``chords`` adds each loss curve's chord.
    """
    fig, (ax_l, ax_r) = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, (name, path) in enumerate(paths.items()):
        ts, loss = np.asarray(path["ts"], dtype=float), np.asarray(path["loss"]["cue"], dtype=float)
        colour = f"C{i}"
        ax_l.plot(ts, loss, "o-", ms=3, color=colour, label=name)
        if chords:
            ax_l.plot([ts[0], ts[-1]], [loss[0], loss[-1]], "--", lw=0.8, color=colour)
        ax_r.plot(ts, path["acc"]["rand-img"], "o-", ms=3, color=colour, label=name)
    if control is not None:
        ax_l.plot(control.ts, control.loss["cue"], "--", color="grey", label="control: θc → cue child 2")
        ax_r.plot(control.ts, control.acc["rand-img"], "--", color="grey", label="control")
    ax_r.axhline(chance, color="k", ls=":", lw=1, label="chance")
    ax_l.set_ylabel("loss on cue test data")
    ax_r.set_ylabel("rand-img accuracy")
    ax_r.set_ylim(0, 1)
    for ax in (ax_l, ax_r):
        ax.set_xlabel("t  (0 = θc, 1 = fine-tuned model)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def training_history(history: Mapping[str, Sequence[float]], margin: float, title: str | None = None) -> plt.Figure:
    """CBFT's training history, one panel per step: barrier CE vs the margin, clean CE and invariance, accuracy."""
    epochs = np.arange(1, len(history["clean_ce"]) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
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
        ax.legend(fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def barrier_forms(child_ts: Sequence[float], child_loss: Sequence[float], ts: Sequence[float],
                  scratch_loss: Sequence[float], entezari: tuple[float, float], frankle: tuple[float, float]) -> plt.Figure:
    """Two panels: the linear paths of both pairs, and the scratch pair's barrier in both forms.

    ``entezari`` and ``frankle`` are (barrier, t of the maximum) of the
    scratch path (:func:`cbft_core.kernels.connectivity.barrier`); arrows mark
    the rise above the chord (Entezari) and above the endpoints' mean (Frankle).
    """
    ts = np.asarray(ts, dtype=float)
    loss = np.asarray(scratch_loss, dtype=float)
    (ent, t_ent), (fra, t_fra) = entezari, frankle
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.4))
    ax0.plot(child_ts, child_loss, "o-", ms=3, label="children of one parent")
    ax0.plot(ts, loss, "o-", ms=3, label="scratch models")
    ax0.set(xlabel="t", ylabel="clean test loss", title="linear paths")
    ax0.legend(fontsize=9)
    ax1.plot(ts, loss, "o-", ms=3, color="C1", label="scratch pair, linear path")
    ax1.plot([0, 1], [loss[0], loss[-1]], "--", color="k", lw=0.8, label="chord (Entezari)")
    mean_end = 0.5 * (loss[0] + loss[-1])
    ax1.axhline(mean_end, color="grey", ls=":", lw=1, label="endpoint mean (Frankle)")
    chord_at = (1 - t_ent) * loss[0] + t_ent * loss[-1]
    ax1.annotate("", xy=(t_ent, chord_at + ent), xytext=(t_ent, chord_at), arrowprops=dict(arrowstyle="<->", color="k"))
    ax1.annotate("", xy=(t_fra + 0.03, mean_end + fra), xytext=(t_fra + 0.03, mean_end),
                 arrowprops=dict(arrowstyle="<->", color="grey"))
    ax1.set(xlabel="t", ylabel="clean test loss", title=f"barrier: Entezari {ent:.2f}, Frankle {fra:.2f}")
    ax1.legend(fontsize=9)
    fig.tight_layout()
    return fig


def method_bars(values: Mapping[str, Mapping[str, Sequence[float]]], reference: tuple[str, Sequence[float]],
                chance: float, ylabel: str, title: str | None = None) -> plt.Figure:
    """Grouped bars: ``values[group][method]`` (mean ± std over seeds), a grey reference bar, chance, and the
    rand-img floor of the claim that naive fine-tuning keeps the cue (a multiple of chance)."""
    groups = list(values)
    methods = list(next(iter(values.values())))
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
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
    ax.legend(fontsize=9, ncol=2)
    if title:
        ax.set_title(title)
    return fig


def class_samples(view: ImageSet, label: int, title: str | None = None, n: int = 20) -> plt.Figure:
    """The first ``n`` images of class ``label`` in ``view``, in two rows, each titled "cue" (red) or "clean"."""
    index = torch.nonzero(view.labels == label)[:n, 0].tolist()
    cols = max(1, (n + 1) // 2)
    height = 2.6 * view.images.shape[2] / view.images.shape[3]
    fig, axes = plt.subplots(2, cols, figsize=(10, max(2.6, height)))
    for ax, i in zip(axes.flat, index):
        ax.imshow(to_numpy_image(view.images[i]), interpolation="nearest")
        cue = bool(view.has_cue[i])
        ax.set_title("cue" if cue else "clean", fontsize=9, color=VIEW_COLOURS["cue"] if cue else "k")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def cue_layout(classes: Sequence[str]) -> plt.Figure:
    """Where the box cue goes: each class's box position (on a grey canvas) and the colours of 100 classes."""
    from ..kernels import data

    k = len(classes)
    pos = data.cue_class_positions(k)
    blank = ImageSet(torch.full((k, 3, 32, 32), 60, dtype=torch.uint8), torch.arange(k), tuple(classes))
    canvas = data.make_view(blank, "box", "cue", 1.0).images.max(0).values
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8, 3.6))
    ax0.imshow(to_numpy_image(canvas), interpolation="nearest")
    for c, (r, col) in enumerate(pos.tolist()):
        if r >= 0:
            ax0.text(col + 1, r - 0.7, classes[c], color="w", ha="center", va="bottom", fontsize=8)
    ax0.set_title(f"box position of each class ({k} classes)", fontsize=10)
    colours = data.cue_class_colours(100)
    grid = np.zeros((10, 10, 3), dtype=np.uint8)
    for c in range(100):
        grid[c // 10, c % 10] = colours[c].numpy()
    ax1.imshow(grid, interpolation="nearest")
    ax1.set_xlabel("k mod 10 → position")
    ax1.set_ylabel("k // 10 → colour")
    ax1.set_title("box colour of each class (100 classes)", fontsize=10)
    for ax in (ax0, ax1):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
