"""Connectivity measurements: the barrier along a path, and the trained quadratic midpoint.

Loss/accuracy along a path come from :func:`cbft_core.kernels.paths.evaluate_path`;
permutation alignment lives in :mod:`cbft_core.kernels.alignment`.
"""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .checks import check_choice, check_int
from .data.imageset import ImageSet, batches
from .optim import SGDConfig
from .train import Updater, steps_per_epoch, train_loop
from ..errors import ConfigError
from .paths import StateDict, check_compatible

__all__ = ["barrier", "transition_width", "train_midpoint", "BARRIER_FORMS"]

BARRIER_FORMS: tuple[str, ...] = ("entezari", "frankle")


def barrier(values: Sequence[float], ts: Sequence[float], form: str = "entezari") -> tuple[float, float]:
    """Height of the barrier in ``values`` (loss or error) along a path, and the t where it peaks.

    ``form="entezari"``: max_t [v(t) − ((1 − t)·v(0) + t·v(1))], the rise above
    the straight line joining the endpoints (0 at the endpoints, so ≥ 0).
    ``form="frankle"``: max_t v(t) − (v(0) + v(1)) / 2. ``ts`` must be strictly
    increasing from 0 to 1 and as long as ``values``. Ties go to the smallest t.
    """
    check_choice("form", form, BARRIER_FORMS)
    try:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        t = np.asarray(ts, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ConfigError("values and ts must be sequences of numbers") from exc
    if v.size != t.size:
        raise ConfigError(f"values and ts must have the same length, got {v.size} and {t.size}")
    if t.size < 2:
        raise ConfigError(f"ts needs at least the two endpoints 0 and 1, got {t.size} point(s)")
    if not np.all(np.isfinite(v)):
        raise ConfigError("values contain NaN or infinity; the path evaluation diverged")
    if not np.all(np.isfinite(t)) or t[0] != 0.0 or t[-1] != 1.0 or np.any(np.diff(t) <= 0):
        raise ConfigError(f"ts must be strictly increasing from 0 to 1, got {t.tolist()}")
    if form == "entezari":
        gap = v - ((1.0 - t) * v[0] + t * v[-1])
    else:
        gap = v - 0.5 * (v[0] + v[-1])
    i = int(np.argmax(gap))
    return float(gap[i]), float(t[i])


def transition_width(values: Sequence[float], ts: Sequence[float], low: float = 0.1, high: float = 0.9) -> float:
    """Width of the t interval in which ``values`` moves from ``low`` to ``high`` of its total change.

    Crossings are interpolated linearly between path points and the first
    crossing of each level counts. A straight ramp from t = 0 to t = 1 gives
    ``high − low`` (0.8); a step between two points gives ``(high − low)·Δt``;
    constant ``values`` give 0. Used on rand-img accuracy along a path, it
    measures how abruptly the mechanism changes.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    t = np.asarray(ts, dtype=np.float64).reshape(-1)
    if v.size != t.size or v.size < 2:
        raise ConfigError(f"values and ts must have one equal length >= 2, got {v.size} and {t.size}")
    if not 0.0 <= low < high <= 1.0:
        raise ConfigError(f"levels must satisfy 0 <= low < high <= 1, got {low} and {high}")
    total = v[-1] - v[0]
    if total == 0 or not np.isfinite(total):
        return 0.0
    frac = (v - v[0]) / total

    def crossing(level: float) -> float:
        i = int(np.argmax(frac >= level))
        if i == 0:
            return float(t[0])
        f0, f1 = frac[i - 1], frac[i]
        return float(t[i - 1] + (level - f0) / (f1 - f0) * (t[i] - t[i - 1]))

    return crossing(high) - crossing(low)


def train_midpoint(
    model_a: nn.Module,
    model_b: nn.Module,
    data: ImageSet,
    start: StateDict,
    sgd: SGDConfig,
    *,
    epochs: int,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Train the midpoint θM of the quadratic Bezier path θA → θM → θB, as the authors do; return its state dict.

    θM starts from ``start`` (the authors: a freshly initialised network).
    Each batch draws t ~ U(0, 1) from a generator seeded with ``seed`` and
    takes an SGD step of θM on the cross-entropy of
    θ(t) = (1 − t)²θA + 2t(1 − t)θM + t²θB (θA, θB frozen) at the learning
    rate of ``sgd`` scaled by 2t(1 − t) — the authors' ``train_quad_midpoint``
    sets ``lr = base_lr · 2α(1 − α)`` and copies the gradient of the
    interpolated network to θM unscaled, so the factor sits on the rate, not
    on the gradient (unlike autograd through the Bezier formula, the two
    differ once momentum and weight decay act). BatchNorm uses batch
    statistics while training; θM's BN buffers are returned as ``start``'s,
    to be re-estimated along the path.
    """
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    if not isinstance(data, ImageSet) or len(data) == 0:
        raise ConfigError("data must be a non-empty ImageSet")

    sa = {k: v.detach() for k, v in model_a.state_dict().items()}
    sb = {k: v.detach() for k, v in model_b.state_dict().items()}
    check_compatible(sa, sb, "model_a", "model_b")
    check_compatible(sa, start, "model_a", "start")
    template = copy.deepcopy(model_a).train()
    param_names = [name for name, _ in template.named_parameters()]
    device = next(iter(sa.values())).device
    mid = {k: start[k].detach().to(device).clone().requires_grad_(True) for k in param_names}
    gen = torch.Generator().manual_seed(int(seed))

    def step(batch: tuple[torch.Tensor, torch.Tensor], updater: Updater) -> dict[str, torch.Tensor]:
        x, y = batch
        t = float(torch.rand((), generator=gen))
        weight = 2 * t * (1 - t)
        with torch.no_grad():
            fixed = {k: (1 - t) ** 2 * sa[k] + weight * mid[k] + t * t * sb[k] for k in param_names}
        # the value of θ(t), with ∂θ(t)/∂θM = 1: θM receives the gradient unscaled, as in the authors' code
        point = {k: fixed[k] + (mid[k] - mid[k].detach()) for k in param_names}
        loss = F.cross_entropy(functional_call(template, point, (x,)), y)
        updater.update(loss, scale=weight)
        return {"loss": loss}

    train_loop(list(mid.values()), sgd, epochs=epochs, steps_per_epoch=steps_per_epoch(len(data), batch_size),
               batches_of=lambda epoch: batches(data, batch_size, shuffle=True, generator=gen, device=device),
               step=step, desc="midpoint", progress=progress, device=device)
    out: dict[str, torch.Tensor] = {}
    for k, va in sa.items():
        out[k] = mid[k].detach().clone() if k in mid else start[k].detach().clone().to(va.device)
    return out
