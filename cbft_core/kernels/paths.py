"""Paths between two networks in parameter space, and the loss/accuracy along them.

A path maps t ∈ [0, 1] to a state dict: :func:`linear` (θA → θB) or the
quadratic :func:`bezier` through a midpoint. Only floating-point entries are
interpolated; integer buffers (BatchNorm's ``num_batches_tracked``) come from
``a``. Interpolated BatchNorm running statistics are meaningless, so
:func:`evaluate_path` re-estimates them at every point on *training* images
(:func:`reestimate_bn`), once per t, shared by every evaluated set — never on
the images being scored, which would adapt the network to them.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .checks import check_choice, check_int, check_number
from . import train
from .data.imageset import ImageSet, batches
from ..errors import ConfigError
from .progress import bar as progress_bar

__all__ = ["linear", "bezier", "check_compatible", "check_unit_values", "reset_bn", "reestimate_bn",
           "evaluate_path", "PathResult", "BN_AVERAGES", "RUNNING_BATCH"]

StateDict = Mapping[str, torch.Tensor]

BN_AVERAGES: tuple[str, ...] = ("cumulative", "running")
RUNNING_BATCH = 128  # batch size of the authors' training loader (syndata.get_dataloader), used by "running"


def check_compatible(a: StateDict, b: StateDict, name_a: str = "a", name_b: str = "b") -> None:
    """Raise :class:`ConfigError` naming the first entry whose key or shape differs."""
    for key, ta in a.items():
        if key not in b:
            raise ConfigError(
                f"state dicts differ: entry {key!r} is in {name_a} but not in {name_b} "
                "(different architectures?)"
            )
        if tuple(ta.shape) != tuple(b[key].shape):
            raise ConfigError(
                f"state dicts differ at entry {key!r}: shape {tuple(ta.shape)} in {name_a} vs "
                f"{tuple(b[key].shape)} in {name_b} (different architecture or width?)"
            )
    for key in b:
        if key not in a:
            raise ConfigError(
                f"state dicts differ: entry {key!r} is in {name_b} but not in {name_a} "
                "(different architectures?)"
            )


def _check_t(t: Any) -> float:
    if isinstance(t, torch.Tensor):
        if t.numel() != 1:
            raise ConfigError(f"t must be a scalar in [0, 1], got a tensor of shape {tuple(t.shape)}")
        t = t.item()
    return check_number("t", t, minimum=0.0, maximum=1.0)


def linear(a: StateDict, b: StateDict, t: float) -> dict[str, torch.Tensor]:
    """The point ``(1 − t)·a + t·b`` of the linear path between state dicts ``a`` and ``b``.

    Exact at the endpoints (t = 0 gives ``a``'s values, t = 1 ``b``'s). Keeps
    the autograd graph (nothing is detached), so gradients flow to ``a``/``b``.
    """
    t = _check_t(t)
    check_compatible(a, b)
    out = {}
    for key, ta in a.items():
        if ta.is_floating_point():
            out[key] = (1.0 - t) * ta + t * b[key]
        else:
            out[key] = ta
    return out


def bezier(a: StateDict, mid: StateDict, b: StateDict, t: float) -> dict[str, torch.Tensor]:
    """The point ``(1 − t)²·a + 2t(1 − t)·mid + t²·b`` of the quadratic Bezier path.

    Integer entries come from ``a``. Keeps the autograd graph, so the gradient
    reaches ``mid`` with the factor 2t(1 − t) (used to train the midpoint).
    """
    t = _check_t(t)
    check_compatible(a, b)
    check_compatible(a, mid, "a", "mid")
    wa, wm, wb = (1.0 - t) ** 2, 2.0 * t * (1.0 - t), t * t
    out = {}
    for key, ta in a.items():
        if ta.is_floating_point():
            out[key] = wa * ta + wm * mid[key] + wb * b[key]
        else:
            out[key] = ta
    return out


def _bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def _reestimating_bn(model: nn.Module) -> Iterator[None]:
    """Inside: every BatchNorm's statistics reset and accumulated as a cumulative average
    (``momentum=None``), the model in train mode under ``no_grad``; on exit each
    module's momentum and the model's train/eval modes are restored."""
    bns = _bn_modules(model)
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in bns}
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            yield
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        for m, mode in modes.items():
            m.training = mode


def reset_bn(model: nn.Module, batches: Iterable[Any]) -> int:
    """Re-estimate every BatchNorm's running statistics over ``batches``; return the batch count.

    Statistics are reset, then accumulated as a cumulative average over the
    *images*: a batch of b images after s earlier ones is given momentum
    b / (s + b), so each batch weighs by its size and a short last batch is
    not over-weighted. The model is in train mode under ``no_grad``; each
    module's momentum and the model's train/eval modes are restored
    afterwards. ``batches`` yields input tensors or ``(x, y, ...)`` tuples.
    ``running_mean`` is exactly the mean over all the data (whatever the batch
    sizes); ``running_var`` is the image-weighted mean of each batch's
    *unbiased* variance (PyTorch divides by n − 1, n = batch × H × W), which
    for large batches is the variance of the data to within O(1/n) less the
    spread of the batch means. Models without BatchNorm are left untouched
    (0 is returned without consuming ``batches``).
    """
    if not _bn_modules(model):
        return 0
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    count = seen = 0
    bns = _bn_modules(model)
    with _reestimating_bn(model):
        for item in batches:
            x = item[0] if isinstance(item, (tuple, list)) else item
            size = int(x.shape[0])
            for m in bns:  # cumulative average over images: this batch's share of all seen so far
                m.momentum = size / (seen + size)
            model(x.to(device))
            seen += size
            count += 1
    if count == 0:
        raise ConfigError("batches: reset_bn got no batches; pass at least one batch of data")
    return count


@dataclass
class PathResult:
    """Loss and accuracy along a path: ``loss[set][i]``, ``acc[set][i]`` at ``ts[i]``.

    ``bn_resets`` counts the BatchNorm re-estimations performed (0 for a model
    without BatchNorm).
    """

    ts: np.ndarray
    loss: dict[str, np.ndarray] = field(default_factory=dict)
    acc: dict[str, np.ndarray] = field(default_factory=dict)
    bn_resets: int = 0

    def error(self, name: str) -> np.ndarray:
        """Error (1 − accuracy) along the path on set ``name``."""
        return 1.0 - self.acc[name]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form (lists of floats)."""
        return {
            "ts": [float(t) for t in self.ts],
            "loss": {k: [float(v) for v in vals] for k, vals in self.loss.items()},
            "acc": {k: [float(v) for v in vals] for k, vals in self.acc.items()},
            "bn_resets": int(self.bn_resets),
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> "PathResult":
        """The inverse of :meth:`to_dict`."""
        return cls(ts=np.asarray(stored["ts"]), loss={k: np.asarray(v) for k, v in stored["loss"].items()},
                   acc={k: np.asarray(v) for k, v in stored["acc"].items()}, bn_resets=int(stored["bn_resets"]))


def check_unit_values(values: Any, name: str = "ts", increasing: bool = False) -> np.ndarray:
    """``values`` as a float64 array of numbers in [0, 1] (strictly increasing if asked), else ConfigError naming ``name``."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a sequence of numbers in [0, 1], got {values!r}") from exc
    if arr.size == 0 or not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ConfigError(f"{name} must be a non-empty sequence of numbers in [0, 1], got {values!r}")
    if increasing and np.any(np.diff(arr) <= 0):
        raise ConfigError(f"{name} must be strictly increasing, got {arr.tolist()}")
    return arr


def reestimate_bn(model: nn.Module, bn_data: ImageSet, bn_images: int = 2000, average: str = "cumulative",
                  batch_size: int = 512, seed: int = 0) -> int:
    """Give every BatchNorm of ``model`` statistics of the first ``bn_images`` images of ``bn_data``.

    ``average="cumulative"`` (the book's default): reset, then the exact
    image-weighted average over those images (:func:`reset_bn`).
    ``"running"`` (the authors' ``mode_connect.probe_connect``): no reset, one
    pass in shuffled batches of :data:`RUNNING_BATCH` with each module's own
    momentum (PyTorch's 0.1), so the statistics are a running average weighted
    toward the last batches. Returns the number of batches.
    """
    check_choice("bn_average", average, BN_AVERAGES)
    check_int("bn_images", bn_images, minimum=1)
    if not isinstance(bn_data, ImageSet) or len(bn_data) == 0:
        raise ConfigError(f"bn_data must be a non-empty ImageSet of training images, got {type(bn_data).__name__}")
    data = bn_data if len(bn_data) <= bn_images else bn_data.subset(slice(0, bn_images))
    device = train.model_device(model)
    if average == "cumulative":
        return reset_bn(model, batches(data, batch_size, device=device))
    modes = {m: m.training for m in model.modules()}
    count = 0
    try:
        model.train()
        with torch.no_grad():
            for x, _ in batches(data, RUNNING_BATCH, shuffle=True, seed=seed, device=device):
                model(x)
                count += 1
    finally:
        for m, mode in modes.items():
            m.training = mode
    return count


def evaluate_path(
    model_a: nn.Module,
    model_b: nn.Module,
    sets: Mapping[str, ImageSet],
    ts: Iterable[float],
    bn_data: ImageSet,
    *,
    midpoint: StateDict | None = None,
    bn_images: int = 2000,
    bn_average: str = "cumulative",
    batch_size: int = 512,
    progress: bool = True,
) -> PathResult:
    """Loss and accuracy of the models along the path from ``model_a`` to ``model_b`` on each set.

    The path is linear, or quadratic Bezier through ``midpoint`` (a state dict)
    when given. One template module (a copy of ``model_a``) is loaded with each
    point's parameters; at each t its BatchNorm statistics are re-estimated
    once on ``bn_data`` (training images; :func:`reestimate_bn` with
    ``bn_images`` and ``bn_average``) and shared by every set, which is then
    scored in eval mode with :func:`cbft_core.kernels.train.evaluate`. At t = 0
    and t = 1 the numbers are exactly those of the endpoint model with the same
    re-estimated statistics. Models without BatchNorm skip the re-estimation.
    """
    if not isinstance(model_a, nn.Module) or not isinstance(model_b, nn.Module):
        raise ConfigError("model_a and model_b must be torch.nn.Module instances")
    if not isinstance(sets, Mapping) or not sets:
        raise ConfigError("sets must be a non-empty dict mapping names to ImageSet")
    for name, data in sets.items():
        if not isinstance(data, ImageSet) or len(data) == 0:
            raise ConfigError(f"sets[{name!r}] must be a non-empty ImageSet, got {type(data).__name__}")
    if not isinstance(bn_data, ImageSet) or len(bn_data) == 0:
        raise ConfigError(f"bn_data must be a non-empty ImageSet of training images, got {type(bn_data).__name__}")
    ts_arr = check_unit_values(ts)
    check_int("bn_images", bn_images, minimum=1)
    check_choice("bn_average", bn_average, BN_AVERAGES)
    check_int("batch_size", batch_size, minimum=1)

    sa = {k: v.detach() for k, v in model_a.state_dict().items()}
    sb = {k: v.detach() for k, v in model_b.state_dict().items()}
    check_compatible(sa, sb, "model_a", "model_b")
    sm = None
    if midpoint is not None:
        sm = {k: v.detach() for k, v in midpoint.items()}
        check_compatible(sa, sm, "model_a", "midpoint")

    template = copy.deepcopy(model_a)
    has_bn = bool(_bn_modules(template))
    loss = {name: np.empty(len(ts_arr)) for name in sets}
    acc = {name: np.empty(len(ts_arr)) for name in sets}
    resets = 0
    for i, t in enumerate(progress_bar(ts_arr, desc="path", show=progress)):
        with torch.no_grad():
            template.load_state_dict(linear(sa, sb, t) if sm is None else bezier(sa, sm, sb, t))
        if has_bn:
            reestimate_bn(template, bn_data, bn_images, bn_average, batch_size)
            resets += 1
        for name, data in sets.items():
            scores = train.evaluate(template, data, batch_size)
            loss[name][i], acc[name][i] = scores["loss"], scores["acc"]
    return PathResult(ts=ts_arr, loss=loss, acc=acc, bn_resets=resets)
