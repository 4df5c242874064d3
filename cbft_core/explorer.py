"""The barrier explorer: loss and predictions over a grid of (bend, t) on bent quadratic paths.

A *bend* b ∈ [0, 1] moves the Bezier midpoint from the middle of the straight
line to the trained midpoint θM: mid(b) = (1 − b)·(θA + θB)/2 + b·θM. Bend 0
is exactly the linear path (a Bezier curve through the chord's middle is the
chord); bend 1 is the trained quadratic path. :func:`explore` measures the
loss on one data set at every (bend, t), plus the class probabilities of a
few sample images; :func:`frames_widget` turns a grid into the kernel-free
slider explorer (:func:`cbft_core.widgets.frames_explorer`) and
:func:`live_widget` recomputes points on demand when a kernel runs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import alignment, cache, connectivity, experiments, paths, train, zoo
from .data.imageset import ImageSet, batches
from .errors import ConfigError
from .presets import Preset
from .widgets import figure_png, frames_explorer

__all__ = [
    "ExplorerGrid",
    "bent_midpoint",
    "explore",
    "sample_indices",
    "scratch_models",
    "scratch_midpoint",
    "pair_grid",
    "SCRATCH_PAIRS",
    "render_frame",
    "frames_widget",
    "live_widget",
]

StateDict = Mapping[str, torch.Tensor]
BN_MODES: tuple[str, ...] = ("reestimate", "interpolate")


@dataclass
class ExplorerGrid:
    """Measurements at every (bend, t): ``loss[i, j]``/``acc[i, j]`` at ``bends[i]``, ``ts[j]``.

    ``probs[i, j, k]`` are the class probabilities of sample ``k``
    (``sample_index[k]`` of the evaluated set, true class ``labels[k]``).
    ``bn`` says whether BatchNorm statistics were re-estimated at each point
    (``"reestimate"``) or interpolated like the weights (``"interpolate"``).
    """

    bends: np.ndarray
    ts: np.ndarray
    loss: np.ndarray
    acc: np.ndarray
    probs: np.ndarray
    sample_index: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    bn: str = "reestimate"

    def barrier(self, i: int = 0, form: str = "entezari") -> float:
        """Loss barrier (see :func:`cbft_core.connectivity.barrier`) of the path at ``bends[i]``."""
        return connectivity.barrier(self.loss[i], self.ts, form)[0]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (nested lists)."""
        return {
            "bends": self.bends.tolist(), "ts": self.ts.tolist(), "loss": self.loss.tolist(),
            "acc": self.acc.tolist(), "probs": self.probs.tolist(),
            "sample_index": self.sample_index.tolist(), "labels": self.labels.tolist(),
            "classes": list(self.classes), "bn": self.bn,
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> "ExplorerGrid":
        """Inverse of :meth:`to_dict`."""
        return cls(
            bends=np.asarray(stored["bends"], dtype=float), ts=np.asarray(stored["ts"], dtype=float),
            loss=np.asarray(stored["loss"], dtype=float), acc=np.asarray(stored["acc"], dtype=float),
            probs=np.asarray(stored["probs"], dtype=float).reshape(
                len(stored["bends"]), len(stored["ts"]), len(stored["sample_index"]), len(stored["classes"])),
            sample_index=np.asarray(stored["sample_index"], dtype=np.int64),
            labels=np.asarray(stored["labels"], dtype=np.int64),
            classes=tuple(stored["classes"]), bn=stored["bn"],
        )


def _check_unit_values(values: Any, name: str) -> np.ndarray:
    return paths.check_unit_values(values, name, increasing=True)


def bent_midpoint(a: StateDict, b: StateDict, mid: StateDict, bend: float) -> dict[str, torch.Tensor]:
    """The Bezier control point at ``bend``: ``(1 − bend)·(a + b)/2 + bend·mid`` (integer entries from ``a``)."""
    return paths.linear(paths.linear(a, b, 0.5), mid, bend)


def sample_indices(data: ImageSet, n: int) -> np.ndarray:
    """The first sample of each of the first ``n`` classes present, in class order (deterministic)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n must be a non-negative int, got {n!r}")
    labels = data.labels
    present = torch.unique(labels)[:n]
    # first occurrence of each class: argmax of a boolean row picks the first True
    first = (labels[None, :] == present[:, None]).int().argmax(dim=1)
    return first.numpy().astype(np.int64)


@torch.inference_mode()
def explore(
    model_a: nn.Module,
    model_b: nn.Module,
    data: ImageSet,
    bends: Sequence[float],
    ts: Sequence[float],
    *,
    midpoint: StateDict | None = None,
    sample_index: Sequence[int] = (),
    bn: str = "reestimate",
    bn_images: int = 2000,
    batch_size: int = 1000,
    progress: bool = True,
) -> ExplorerGrid:
    """Loss and accuracy on ``data`` at every (bend, t), and the sample images' class probabilities.

    The point at (bend, t) is ``paths.bezier(a, bent_midpoint(a, b, midpoint, bend), b, t)``.
    ``midpoint`` is needed when a bend is not 0. With ``bn="reestimate"`` the
    BatchNorm statistics of each point are re-estimated on the first
    ``bn_images`` samples of ``data`` (as :func:`cbft_core.experiments.path_result`
    does; in one pass with :func:`cbft_core.paths.one_pass_logits` when they
    are the whole set and it is small); with ``bn="interpolate"`` they are interpolated like every other
    entry of the state dict (what *not* to do; shown for comparison).
    """
    if not isinstance(model_a, nn.Module) or not isinstance(model_b, nn.Module):
        raise ConfigError("model_a and model_b must be torch.nn.Module instances")
    if not isinstance(data, ImageSet) or len(data) == 0:
        raise ConfigError("data must be a non-empty ImageSet")
    if bn not in BN_MODES:
        raise ConfigError(f"bn must be one of {list(BN_MODES)}, got {bn!r}")
    bend_arr = _check_unit_values(bends, "bends")
    ts_arr = _check_unit_values(ts, "ts")
    if midpoint is None and np.any(bend_arr != 0):
        raise ConfigError("midpoint: a bend other than 0 needs the trained midpoint (a state dict)")
    train.check_positive("bn_images", bn_images, integer=True)
    train.check_positive("batch_size", batch_size, integer=True)
    index = torch.as_tensor(np.asarray(sample_index, dtype=np.int64).reshape(-1))
    if index.numel() and (index.min() < 0 or index.max() >= len(data)):
        raise ConfigError(f"sample_index must index data (0..{len(data) - 1}), got {index.tolist()}")

    sa = {k: v.detach() for k, v in model_a.state_dict().items()}
    sb = {k: v.detach() for k, v in model_b.state_dict().items()}
    paths.check_compatible(sa, sb, "model_a", "model_b")
    sm = {k: v.detach() for k, v in (midpoint or sa).items()}
    paths.check_compatible(sa, sm, "model_a", "midpoint")
    template = copy.deepcopy(model_a)
    device = next(template.parameters()).device
    bn_set = data if len(data) <= bn_images else data.subset(slice(0, bn_images))
    one_pass = paths.takes_one_pass(len(data), bn_images)

    shape = (len(bend_arr), len(ts_arr))
    loss, acc = np.empty(shape), np.empty(shape)
    probs = np.empty(shape + (int(index.numel()), data.num_classes))
    bar = tqdm(total=shape[0] * shape[1], desc="explorer grid", disable=not progress, leave=False)
    for i, bend in enumerate(bend_arr):
        with torch.no_grad():
            control = bent_midpoint(sa, sb, sm, float(bend)) if midpoint is not None else paths.linear(sa, sb, 0.5)
        for j, t in enumerate(ts_arr):
            with torch.no_grad():
                template.load_state_dict(paths.bezier(sa, control, sb, float(t)))
            if bn == "reestimate" and one_pass:
                logits = paths.one_pass_logits(template, data, device)
            else:
                if bn == "reestimate":
                    paths.reset_bn(template, batches(bn_set, batch_size, device=device))
                logits = train.predict(template, data, batch_size, device)
            loss[i, j] = float(F.cross_entropy(logits.double(), data.labels, reduction="mean"))
            acc[i, j] = float((logits.argmax(1) == data.labels).double().mean())
            probs[i, j] = logits[index].softmax(dim=1).numpy()
            bar.update()
    bar.close()
    return ExplorerGrid(bend_arr, ts_arr, loss, acc, probs, index.numpy(), data.labels[index].numpy(),
                        data.classes, bn)


# --- models of the book's zoo ---------------------------------------------------------------------

def scratch_models(cfg: Preset, seed: int, cue: str = "box", proportion: float = 0.0,
                   progress: bool = True) -> tuple[nn.Module, nn.Module]:
    """Two models trained from scratch on the same data from different initialisations: seeds ``seed`` and ``seed + 1``."""
    return (zoo.scratch(cfg, seed, cue, proportion, progress=progress),
            zoo.scratch(cfg, seed + 1, cue, proportion, progress=progress))


def scratch_midpoint(cfg: Preset, seed: int, cue: str = "box", proportion: float = 0.0,
                     progress: bool = True) -> dict[str, torch.Tensor]:
    """The trained Bezier midpoint between :func:`scratch_models` (trained on their own training data; cached)."""
    def compute() -> dict[str, torch.Tensor]:
        model_a, model_b = scratch_models(cfg, seed, cue, proportion, progress)
        return connectivity.train_midpoint(
            model_a, model_b, zoo.train_set(cfg, cue, proportion), epochs=cfg.midpoint_epochs,
            lr=cfg.midpoint_lr, batch_size=cfg.batch_size, momentum=cfg.momentum,
            weight_decay=cfg.weight_decay, seed=seed, progress=progress)

    key = experiments.cache_key(cfg, seed=seed, cue=cue, proportion=proportion, what="scratch-midpoint")
    return cache.cached("midpoint-scratch", key, compute)


SCRATCH_PAIRS: tuple[str, ...] = ("scratch", "scratch-aligned")


def pair_grid(cfg: Preset, pair: str, seed: int, bends: Sequence[float], ts: Sequence[float], *,
              view: str = "clean", n_samples: int = 4, bn: str = "reestimate", cue: str = "box",
              progress: bool = True) -> ExplorerGrid:
    """:func:`explore` for a pair of the zoo on the test ``view`` (cached).

    ``pair``: ``"scratch"`` (cue-free models from two initialisations,
    :func:`scratch_models`), ``"scratch-aligned"`` (the same, the second
    model's units permuted to match the first's by
    :func:`cbft_core.alignment.align` on ``cfg.bn_images`` clean training
    images; bend 0 only) or a name of :data:`cbft_core.experiments.PAIRS`
    (children of one parent; midpoint from :func:`cbft_core.experiments.midpoint`).
    The midpoint is trained only when a bend is not 0.
    """
    if pair not in SCRATCH_PAIRS and pair not in experiments.PAIRS:
        raise ConfigError(f"pair: unknown pair {pair!r}; choose one of "
                          f"{list(SCRATCH_PAIRS) + list(experiments.PAIRS)}")
    views = zoo.test_views(cfg, cue)
    if view not in views:
        raise ConfigError(f"view: unknown view {view!r}; choose one of {list(views)}")
    bend_arr, ts_arr = _check_unit_values(bends, "bends"), _check_unit_values(ts, "ts")
    bent = bool(np.any(bend_arr != 0))
    if pair == "scratch-aligned" and bent:
        raise ConfigError("bends: pair 'scratch-aligned' has no trained midpoint; use bends=[0.0]")

    def compute() -> dict[str, Any]:
        if pair in SCRATCH_PAIRS:
            model_a, model_b = scratch_models(cfg, seed, cue, 0.0, progress)
            if pair == "scratch-aligned":
                clean = zoo.train_set(cfg, cue, 0.0)
                model_b = alignment.align(model_b, model_a, clean.subset(slice(0, cfg.bn_images)),
                                          batch_size=cfg.eval_batch_size)
        else:
            model_a, model_b = experiments.pair_models(cfg, seed, pair, cue, progress)
        mid = None
        if bent:
            mid = (scratch_midpoint(cfg, seed, cue, 0.0, progress) if pair == "scratch"
                   else experiments.midpoint(cfg, seed, pair, cue, progress))
        data = views[view]
        return explore(model_a, model_b, data, bend_arr, ts_arr, midpoint=mid,
                       sample_index=sample_indices(data, n_samples), bn=bn, bn_images=cfg.bn_images,
                       batch_size=cfg.eval_batch_size, progress=progress).to_dict()

    key = experiments.cache_key(cfg, pair=pair, seed=seed, view=view, cue=cue, bends=bend_arr.tolist(),
                   ts=ts_arr.tolist(), n_samples=n_samples, bn=bn, what="explorer-grid")
    return ExplorerGrid.from_dict(cache.cached_json("explorer-grid", key, compute))


# --- rendering --------------------------------------------------------------------------------------

def render_frame(grid: ExplorerGrid, i: int, j: int, images: ImageSet, labels: Sequence[str] = ("A", "B"),
                 size: tuple[float, float] = (7.5, 2.5)) -> plt.Figure:
    """One frame: the loss curve of every bend (``bends[i]`` bold, marker at ``ts[j]``) and the samples' predictions.

    ``images`` holds the sample images (``grid.sample_index`` of the evaluated set), in order.
    """
    if not (0 <= i < len(grid.bends) and 0 <= j < len(grid.ts)):
        raise ConfigError(f"frame ({i}, {j}) is outside the grid {len(grid.bends)} × {len(grid.ts)}")
    k = len(grid.sample_index)
    if len(images) != k:
        raise ConfigError(f"images must hold the grid's {k} sample images, got {len(images)}")
    fig = plt.figure(figsize=size)
    spec = fig.add_gridspec(1, 2 + max(k, 1), width_ratios=[2.6, 0.15] + [1.0] * max(k, 1))
    ax = fig.add_subplot(spec[0, 0])
    for r, bend in enumerate(grid.bends):
        bold = r == i
        ax.plot(grid.ts, grid.loss[r], "-", lw=2.0 if bold else 0.8, alpha=1.0 if bold else 0.35,
                color="C0" if bold else "grey", label=f"bend {bend:g}" if bold else None)
    ax.plot([grid.ts[0], grid.ts[-1]], [grid.loss[i, 0], grid.loss[i, -1]], "--", lw=0.8, color="C0")
    ax.plot(grid.ts[j], grid.loss[i, j], "o", ms=8, color="C3")
    ax.set_title(f"bend {grid.bends[i]:g}, t = {grid.ts[j]:.2f}: loss {grid.loss[i, j]:.2f}, "
                 f"acc {grid.acc[i, j]:.2f}", fontsize=8)
    ax.set_xlabel(f"t  ({labels[0]} → {labels[1]})", fontsize=8)
    ax.set_ylabel("loss", fontsize=8)
    ax.set_ylim(0, max(1e-3, 1.05 * float(np.max(grid.loss))))
    ax.tick_params(labelsize=7)
    for s in range(k):
        ax_img = fig.add_subplot(spec[0, 2 + s])
        ax_img.imshow(images.images[s].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        p = grid.probs[i, j, s]
        pred = int(np.argmax(p))
        ok = pred == int(grid.labels[s])
        ax_img.set_title(f"{grid.classes[pred]}\n{p[pred]:.0%}", fontsize=7, color="green" if ok else "red")
    fig.tight_layout()
    return fig


def frames_widget(grid: ExplorerGrid, images: ImageSet, labels: Sequence[str] = ("A", "B"), dpi: int = 60,
                  start: tuple[int, int] = (0, 0), progress: bool = True):
    """The kernel-free explorer over ``grid`` (sliders ``jslink``-ed to precomputed PNG frames)."""
    return frames_explorer(lambda i, j: figure_png(render_frame(grid, i, j, images, labels), dpi=dpi),
                           grid.bends.tolist(), grid.ts.tolist(), row_name="bend", col_name="t",
                           start=start, progress=progress)


def live_widget(model_a: nn.Module, model_b: nn.Module, midpoint: StateDict, data: ImageSet,
                sample_index: Sequence[int], ts: Sequence[float], *, bn_images: int = 500,
                batch_size: int = 1000, labels: Sequence[str] = ("A", "B"), dpi: int = 60):
    """Sliders for the bend and t that recompute the path when moved (needs a running kernel).

    A new bend evaluates its whole loss curve at ``ts`` plus the chosen t
    (on ``data``, so pass a few hundred images to keep it interactive); curves
    are remembered per (bend, t) so moving back is instant.
    """
    import ipywidgets as w

    ts_arr = _check_unit_values(ts, "ts")
    images = data.subset(torch.as_tensor(np.asarray(sample_index, dtype=np.int64)))
    memo: dict[tuple[float, float], ExplorerGrid] = {}

    def frame(bend: float, t: float) -> bytes:
        key = (round(bend, 4), round(t, 4))
        if key not in memo:
            grid_ts = np.union1d(ts_arr, [key[1]])
            memo[key] = explore(model_a, model_b, data, [key[0]], grid_ts, midpoint=midpoint,
                                sample_index=sample_index, bn_images=bn_images, batch_size=batch_size,
                                progress=False)
        grid = memo[key]
        return figure_png(render_frame(grid, 0, int(np.searchsorted(grid.ts, key[1])), images, labels), dpi=dpi)

    bend_slider = w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.1, description="bend",
                                continuous_update=False)
    t_slider = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t", continuous_update=False)
    image = w.Image(value=frame(0.0, 0.5), format="png")

    def update(_change: Any) -> None:
        image.value = frame(bend_slider.value, t_slider.value)

    bend_slider.observe(update, names="value")
    t_slider.observe(update, names="value")
    return w.VBox([w.HBox([bend_slider, t_slider]), image])
