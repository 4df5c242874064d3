"""Paths between two networks in parameter space, and the loss/accuracy along them.

A path maps t ∈ [0, 1] to a state dict: :func:`linear` (θA → θB) or the
quadratic :func:`bezier` through a midpoint. Only floating-point entries are
interpolated; integer buffers (BatchNorm's ``num_batches_tracked``) come from
``a``. Interpolated BatchNorm running statistics are meaningless, so
:func:`evaluate_path` re-estimates them at every point with :func:`reset_bn`.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_int, check_number
from .data.imageset import ImageSet, batches
from ..errors import ConfigError
from .progress import bar as progress_bar

__all__ = ["linear", "bezier", "check_compatible", "check_unit_values", "reset_bn", "takes_one_pass",
           "one_pass_logits", "evaluate_path", "PathResult"]

StateDict = Mapping[str, torch.Tensor]

# sets of up to this many images that are their own BN data are re-estimated and evaluated in one pass
ONE_PASS_IMAGES = 4096


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
    bn_data: str = "same"

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
            "bn_data": self.bn_data,
        }


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


def _first(data: ImageSet, n: int) -> ImageSet:
    return data if len(data) <= n else data.subset(slice(0, n))


@torch.inference_mode()
def _loss_acc(model: nn.Module, data: ImageSet, batch_size: int, device: torch.device) -> tuple[float, float]:
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = 0
    for x, y in batches(data, batch_size, device=device):
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double().cpu()
        correct += int((logits.argmax(dim=1) == y).sum())
    n = len(data)
    return float(loss_sum) / n, correct / n


def takes_one_pass(n_images: int, bn_images: int, limit: int = ONE_PASS_IMAGES) -> bool:
    """Whether a set of ``n_images`` that is its own BN data (``bn_images`` per re-estimation)
    is re-estimated and evaluated in one pass (:func:`one_pass_logits`): all of it is BN data,
    and it is no larger than ``limit``."""
    return n_images <= min(bn_images, limit)


def one_pass_logits(model: nn.Module, data: ImageSet, device: torch.device | str | None = None) -> torch.Tensor:
    """Re-estimate BatchNorm on all of ``data`` and return the model's logits on it, in one forward pass.

    The whole set goes through the model as one batch in train mode (under
    ``no_grad``): every BatchNorm normalises with the statistics of the full
    set and keeps them (``momentum=None``) as its running statistics. This
    equals :func:`reset_bn` over the set followed by evaluation, at half the
    cost, except that the variance used to normalise is the biased one (a
    factor (n − 1)/n, n = images × positions, i.e. below 1e-3 relative for
    any real set). Modes and momenta are restored. Float32 logits on the CPU.
    """
    if device is None:
        device = next(model.parameters()).device
    with _reestimating_bn(model):
        x, _ = next(batches(data, len(data), device=device))
        return model(x).float().cpu()


def evaluate_path(
    model_a: nn.Module,
    model_b: nn.Module,
    sets: Mapping[str, ImageSet],
    ts: Iterable[float],
    bn_data: str | ImageSet = "same",
    midpoint: StateDict | None = None,
    bn_images: int = 2000,
    batch_size: int = 512,
    progress: bool = True,
    one_pass_images: int = ONE_PASS_IMAGES,
) -> PathResult:
    """Loss and accuracy of the models along the path from ``model_a`` to ``model_b`` on each set.

    The path is linear, or quadratic Bezier through ``midpoint`` (a state dict)
    when given. One template module (a copy of ``model_a``) is loaded with each
    point's parameters. BatchNorm statistics are re-estimated once per t per BN
    source: ``bn_data="same"`` uses each evaluation set's own first
    ``bn_images`` samples (one reset per set per t); the name of a set in
    ``sets``, or an :class:`ImageSet`, gives one reset per t shared by all sets.
    Models without BatchNorm skip the reset. With ``"same"``, a set of at most
    ``one_pass_images`` images that is all its own BN data (``bn_images`` ≥
    its size) is re-estimated and evaluated in one pass (:func:`one_pass_logits`:
    exact full-set statistics) instead of two; ``one_pass_images=0`` turns that off.
    """
    if not isinstance(model_a, nn.Module) or not isinstance(model_b, nn.Module):
        raise ConfigError("model_a and model_b must be torch.nn.Module instances")
    if not isinstance(sets, Mapping) or not sets:
        raise ConfigError("sets must be a non-empty dict mapping names to ImageSet")
    for name, data in sets.items():
        if not isinstance(data, ImageSet) or len(data) == 0:
            raise ConfigError(f"sets[{name!r}] must be a non-empty ImageSet, got {type(data).__name__}")
    ts_arr = check_unit_values(ts)
    bn_images = check_int("bn_images", bn_images, minimum=1)
    one_pass_images = check_int("one_pass_images", one_pass_images, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    shared_bn: ImageSet | None
    if isinstance(bn_data, ImageSet):
        shared_bn, bn_label = bn_data, "<ImageSet>"
    elif bn_data == "same":
        shared_bn, bn_label = None, "same"
    elif isinstance(bn_data, str) and bn_data in sets:
        shared_bn, bn_label = sets[bn_data], bn_data
    else:
        raise ConfigError(
            f"bn_data must be 'same', the name of a set in sets ({list(sets)}) or an ImageSet; "
            f"got {bn_data!r}"
        )
    if shared_bn is not None and len(shared_bn) == 0:
        raise ConfigError("bn_data: the BatchNorm data set is empty")

    sa = {k: v.detach() for k, v in model_a.state_dict().items()}
    sb = {k: v.detach() for k, v in model_b.state_dict().items()}
    check_compatible(sa, sb, "model_a", "model_b")
    sm = None
    if midpoint is not None:
        sm = {k: v.detach() for k, v in midpoint.items()}
        check_compatible(sa, sm, "model_a", "midpoint")

    template = copy.deepcopy(model_a)
    device = next(iter(sa.values())).device if sa else torch.device("cpu")
    has_bn = bool(_bn_modules(template))
    bn_sets = {name: _first(data, bn_images) for name, data in sets.items()}
    shared_bn = _first(shared_bn, bn_images) if shared_bn is not None else None

    loss = {name: np.empty(len(ts_arr)) for name in sets}
    acc = {name: np.empty(len(ts_arr)) for name in sets}
    resets = 0
    for i, t in enumerate(progress_bar(ts_arr, desc="path", show=progress)):
        with torch.no_grad():
            point = linear(sa, sb, t) if sm is None else bezier(sa, sm, sb, t)
            template.load_state_dict(point)
        if has_bn and shared_bn is not None:
            reset_bn(template, batches(shared_bn, batch_size, device=device))
            resets += 1
        for name, data in sets.items():
            if has_bn and shared_bn is None and takes_one_pass(len(data), bn_images, one_pass_images):
                logits = one_pass_logits(template, data, device).double()
                loss[name][i] = float(F.cross_entropy(logits, data.labels, reduction="sum")) / len(data)
                acc[name][i] = float((logits.argmax(dim=1) == data.labels).double().mean())
                resets += 1
                continue
            if has_bn and shared_bn is None:
                reset_bn(template, batches(bn_sets[name], batch_size, device=device))
                resets += 1
            template.eval()
            loss[name][i], acc[name][i] = _loss_acc(template, data, batch_size, device)
    return PathResult(ts=ts_arr, loss=loss, acc=acc, bn_resets=resets, bn_data=bn_label)
