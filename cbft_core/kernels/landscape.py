"""Loss landscape between two models: loss and predictions over a grid of (bend, t) on bent quadratic paths.

A *bend* b ∈ [0, 1] moves the Bezier midpoint from the middle of the straight
line to the trained midpoint θM: mid(b) = (1 − b)·(θA + θB)/2 + b·θM. Bend 0
is exactly the linear path (a Bezier curve through the chord's middle is the
chord); bend 1 is the trained quadratic path. :func:`explore` measures the
loss on one data set at every (bend, t), plus the class probabilities of a
few sample images. The book's slider explorer
(:mod:`cbft_core.presentation.explorer`) draws these grids.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from . import connectivity, paths, train
from .checks import check_choice, check_int
from .data.imageset import ImageSet
from .progress import bar as progress_bar

__all__ = [
    "ExplorerGrid",
    "bent_midpoint",
    "explore",
    "sample_indices",
    "check_unit_values",
    "BN_MODES",
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
        """Loss barrier (see :func:`cbft_core.kernels.connectivity.barrier`) of the path at ``bends[i]``."""
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


def check_unit_values(values: Any, name: str) -> np.ndarray:
    """``values`` as an increasing array of numbers in [0, 1] (ConfigError naming ``name`` otherwise)."""
    return paths.check_unit_values(values, name, increasing=True)


def bent_midpoint(a: StateDict, b: StateDict, mid: StateDict, bend: float) -> dict[str, torch.Tensor]:
    """The Bezier control point at ``bend``: ``(1 − bend)·(a + b)/2 + bend·mid`` (integer entries from ``a``)."""
    return paths.linear(paths.linear(a, b, 0.5), mid, bend)


def sample_indices(data: ImageSet, n: int) -> np.ndarray:
    """The first sample of each of the first ``n`` classes present, in class order (deterministic)."""
    check_int("n", n, minimum=0)
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
    bn_data: ImageSet | None = None,
    bn_images: int = 2000,
    batch_size: int = 1000,
    progress: bool = True,
) -> ExplorerGrid:
    """Loss and accuracy on ``data`` at every (bend, t), and the sample images' class probabilities.

    The point at (bend, t) is ``paths.bezier(a, bent_midpoint(a, b, midpoint, bend), b, t)``.
    ``midpoint`` is needed when a bend is not 0. With ``bn="reestimate"`` the
    BatchNorm statistics of each point are re-estimated on the first
    ``bn_images`` training images of ``bn_data``, as
    :func:`cbft_core.kernels.paths.evaluate_path` does; with ``bn="interpolate"``
    they are interpolated like every other entry of the state dict (what *not*
    to do; shown for comparison).
    """
    if not isinstance(model_a, nn.Module) or not isinstance(model_b, nn.Module):
        raise ConfigError("model_a and model_b must be torch.nn.Module instances")
    if not isinstance(data, ImageSet) or len(data) == 0:
        raise ConfigError("data must be a non-empty ImageSet")
    check_choice("bn", bn, BN_MODES)
    bend_arr = check_unit_values(bends, "bends")
    ts_arr = check_unit_values(ts, "ts")
    if midpoint is None and np.any(bend_arr != 0):
        raise ConfigError("midpoint: a bend other than 0 needs the trained midpoint (a state dict)")
    check_int("bn_images", bn_images, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    if bn == "reestimate" and (not isinstance(bn_data, ImageSet) or len(bn_data) == 0):
        raise ConfigError("bn_data: bn='reestimate' needs a non-empty ImageSet of training images")
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

    shape = (len(bend_arr), len(ts_arr))
    loss, acc = np.empty(shape), np.empty(shape)
    probs = np.empty(shape + (int(index.numel()), data.num_classes))
    bar = progress_bar(total=shape[0] * shape[1], desc="explorer grid", show=progress)
    for i, bend in enumerate(bend_arr):
        with torch.no_grad():
            control = bent_midpoint(sa, sb, sm, float(bend)) if midpoint is not None else paths.linear(sa, sb, 0.5)
        for j, t in enumerate(ts_arr):
            with torch.no_grad():
                template.load_state_dict(paths.bezier(sa, control, sb, float(t)))
            if bn == "reestimate":
                paths.reestimate_bn(template, bn_data, bn_images, batch_size=batch_size)
            logits = train.predict(template, data, batch_size, device)
            scores = train.loss_acc(logits, data.labels)
            loss[i, j], acc[i, j] = scores["loss"], scores["acc"]
            probs[i, j] = logits[index].softmax(dim=1).numpy()
            bar.update()
    bar.close()
    return ExplorerGrid(bend_arr, ts_arr, loss, acc, probs, index.numpy(), data.labels[index].numpy(),
                        data.classes, bn)
