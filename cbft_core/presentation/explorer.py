"""The barrier explorer: sliders over precomputed (bend, t) frames, and a live version for a running kernel.

:func:`frames_widget` turns a :class:`cbft_core.kernels.landscape.ExplorerGrid`
into the kernel-free slider explorer
(:func:`cbft_core.presentation.widgets.frames_explorer`);
:func:`live_widget` recomputes points on demand when a kernel runs.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ..errors import CacheUnwritableError, ConfigError
from ..kernels import landscape
from ..kernels.data.imageset import ImageSet
from ..study import cache
from .widgets import figure_png, frames_explorer

__all__ = ["FRAME_DPI", "FONT_PT", "FRAME_SIZE", "render_frame", "frames_key", "frames_widget", "live_widget"]

# A frame is 5 inches wide at 90 dpi: 450 px, shown unscaled in the book's text column on a desktop
# (FONT_PT, 10 pt = 12.5 px) and at 368 px on a 400 px phone (10.2 px): the loss curve on top, the
# sample images and their predictions in a row under it.
FRAME_DPI = 90
FONT_PT = 10.0
FRAME_SIZE = (5.0, 4.6)

StateDict = Mapping[str, torch.Tensor]


def render_frame(grid: landscape.ExplorerGrid, i: int, j: int, images: ImageSet, labels: Sequence[str] = ("A", "B"),
                 size: tuple[float, float] = FRAME_SIZE) -> plt.Figure:
    """One frame: the loss curve of every bend (``bends[i]`` bold, marker at ``ts[j]``) on top, and the
    samples' predictions in a row under it.

    ``images`` holds the sample images (``grid.sample_index`` of the evaluated set), in order.
    """
    if not (0 <= i < len(grid.bends) and 0 <= j < len(grid.ts)):
        raise ConfigError(f"frame ({i}, {j}) is outside the grid {len(grid.bends)} × {len(grid.ts)}")
    k = len(grid.sample_index)
    if len(images) != k:
        raise ConfigError(f"images must hold the grid's {k} sample images, got {len(images)}")
    fig = plt.figure(figsize=size, layout="constrained")
    spec = fig.add_gridspec(2, max(k, 1), height_ratios=[2.3, 1.0])
    ax = fig.add_subplot(spec[0, :])
    for r, bend in enumerate(grid.bends):
        bold = r == i
        ax.plot(grid.ts, grid.loss[r], "-", lw=2.0 if bold else 0.8, alpha=1.0 if bold else 0.35,
                color="C0" if bold else "grey", label=f"bend {bend:g}" if bold else None)
    ax.plot([grid.ts[0], grid.ts[-1]], [grid.loss[i, 0], grid.loss[i, -1]], "--", lw=0.8, color="C0")
    ax.plot(grid.ts[j], grid.loss[i, j], "o", ms=8, color="C3")
    ax.set_title(f"bend {grid.bends[i]:g}, t = {grid.ts[j]:.2f}: loss {grid.loss[i, j]:.2f}, "
                 f"acc {grid.acc[i, j]:.2f}", fontsize=FONT_PT)
    ax.set_xlabel(f"t  ({labels[0]} → {labels[1]})", fontsize=FONT_PT)
    ax.set_ylabel("loss", fontsize=FONT_PT)
    ax.set_ylim(0, max(1e-3, 1.05 * float(np.max(grid.loss))))
    ax.tick_params(labelsize=FONT_PT)
    for s in range(k):
        ax_img = fig.add_subplot(spec[1, s])
        ax_img.imshow(images.images[s].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        p = grid.probs[i, j, s]
        pred = int(np.argmax(p))
        ok = pred == int(grid.labels[s])
        ax_img.set_title(f"{grid.classes[pred]} {p[pred]:.0%}", fontsize=FONT_PT, color="green" if ok else "red")
    return fig


@functools.lru_cache(maxsize=None)
def _presentation_source() -> str:
    """sha256 of every source file of the presentation layer (any edit there may change a frame)."""
    digest = hashlib.sha256()
    for file in sorted(Path(__file__).resolve().parent.rglob("*.py")):
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def frames_key(grid: landscape.ExplorerGrid, images: ImageSet, labels: Sequence[str], dpi: int) -> str:
    """The cache key of the explorer's frames: the grid, the sample images, the labels and resolution, the
    presentation layer's source, and matplotlib's version and settings (``rcParams``: a notebook's
    inline backend changes some)."""
    document = {"grid": grid.to_dict(), "labels": list(labels), "dpi": dpi, "matplotlib": mpl.__version__,
                "rc": {k: repr(v) for k, v in sorted(mpl.rcParams.items())}, "code": _presentation_source()}
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode())
    digest.update(images.images.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _stored_frames(key: str, shape: tuple[int, int],
                   render: Callable[[int, int], bytes]) -> tuple[Callable[[int, int], bytes], Callable[[], None]]:
    """``render`` served from the cache entry ``explorer-frames/<key>.pt`` when it is there, and a function that
    stores what was rendered (a no-op after a hit)."""
    path = cache.entry_path("explorer-frames", key)
    hit, stored = cache.lookup(path, cache.load_model)
    if hit and stored[1].get("key") == key and len(stored[0]["png"]) == shape[0] * shape[1]:
        pngs = stored[0]["png"]
        return (lambda i, j: pngs[i * shape[1] + j].numpy().tobytes()), (lambda: None)
    rendered: dict[tuple[int, int], bytes] = {}

    def record(i: int, j: int) -> bytes:
        rendered[(i, j)] = render(i, j)
        return rendered[(i, j)]

    def store() -> None:
        frames = [torch.frombuffer(bytearray(rendered[(i, j)]), dtype=torch.uint8)
                  for i in range(shape[0]) for j in range(shape[1])]
        try:
            cache.save_model(path, {"png": frames}, {"kind": "explorer-frames", "key": key})
        except CacheUnwritableError:  # a read-only cache serves the models; the frames are just drawn again next time
            pass

    return record, store


def frames_widget(grid: landscape.ExplorerGrid, images: ImageSet, labels: Sequence[str] = ("A", "B"), dpi: int = FRAME_DPI,
                  start: tuple[int, int] = (0, 0), progress: bool | None = None):
    """The kernel-free explorer over ``grid`` (sliders ``jslink``-ed to precomputed PNG frames).

    The frames are rendered once and kept in the cache (``explorer-frames/<key>.pt``, :func:`frames_key`):
    a warm build of the book reads them instead of drawing them again.
    """
    shape = (len(grid.bends), len(grid.ts))
    render, store = _stored_frames(frames_key(grid, images, labels, dpi), shape,
                                   lambda i, j: figure_png(render_frame(grid, i, j, images, labels), dpi=dpi))
    widget = frames_explorer(render, grid.bends.tolist(), grid.ts.tolist(), row_name="bend", col_name="t",
                             start=start, progress=progress)
    store()
    return widget


def live_widget(model_a: nn.Module, model_b: nn.Module, midpoint: StateDict, data: ImageSet,
                sample_index: Sequence[int], ts: Sequence[float], *, bn_data: ImageSet, bn_images: int = 500,
                batch_size: int = 1000, labels: Sequence[str] = ("A", "B"), dpi: int = FRAME_DPI):
    """Sliders for the bend and t that recompute the path when moved (needs a running kernel).

    A new bend evaluates its whole loss curve at ``ts`` plus the chosen t
    (on ``data``, so pass a few hundred images to keep it interactive), with
    BatchNorm re-estimated on ``bn_images`` training images of ``bn_data``; curves
    are remembered per (bend, t) so moving back is instant.
    """
    import ipywidgets as w

    ts_arr = landscape.check_unit_values(ts, "ts")
    images = data.subset(torch.as_tensor(np.asarray(sample_index, dtype=np.int64)))
    memo: dict[tuple[float, float], landscape.ExplorerGrid] = {}

    def frame(bend: float, t: float) -> bytes:
        key = (round(bend, 4), round(t, 4))
        if key not in memo:
            grid_ts = np.union1d(ts_arr, [key[1]])
            memo[key] = landscape.explore(model_a, model_b, data, [key[0]], grid_ts, midpoint=midpoint,
                                sample_index=sample_index, bn_data=bn_data, bn_images=bn_images, batch_size=batch_size,
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
