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

from .checks import check_int
from .data.imageset import ImageSet, batches
from .optim import SGDConfig
from ..errors import ConfigError, NonFiniteLossError
from .paths import check_compatible
from .progress import bar as progress_bar

__all__ = ["barrier", "train_midpoint", "midpoint_batches", "BARRIER_FORMS"]

BARRIER_FORMS: tuple[str, ...] = ("entezari", "frankle")


def barrier(values: Sequence[float], ts: Sequence[float], form: str = "entezari") -> tuple[float, float]:
    """Height of the barrier in ``values`` (loss or error) along a path, and the t where it peaks.

    ``form="entezari"``: max_t [v(t) − ((1 − t)·v(0) + t·v(1))], the rise above
    the straight line joining the endpoints (0 at the endpoints, so ≥ 0).
    ``form="frankle"``: max_t v(t) − (v(0) + v(1)) / 2. ``ts`` must be strictly
    increasing from 0 to 1 and as long as ``values``. Ties go to the smallest t.
    """
    if form not in BARRIER_FORMS:
        raise ConfigError(f"form must be one of {list(BARRIER_FORMS)}, got {form!r}")
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


def midpoint_batches(n_images: int, batch_size: int) -> tuple[int, int]:
    """Steps per epoch of :func:`train_midpoint` on ``n_images`` images, and the images of each step.

    Only full batches when the set is larger than one (a tiny last batch would
    skew train-mode BatchNorm); otherwise one step on every image.
    """
    check_int("n_images", n_images, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    return (n_images // batch_size, batch_size) if n_images > batch_size else (1, n_images)


def train_midpoint(
    model_a: nn.Module,
    model_b: nn.Module,
    data: ImageSet,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Train the midpoint θM of a quadratic Bezier path θA → θM → θB; return its state dict.

    θM starts at (θA + θB)/2. Each batch draws t ~ U(0, 1) from a generator
    seeded with ``seed`` and takes an SGD step (cosine schedule to 0 over all
    steps) on the cross-entropy of θ(t) = (1 − t)²θA + 2t(1 − t)θM + t²θB,
    with θA and θB frozen. The gradient reaches θM through the Bezier formula
    by autograd, so it carries the factor 2t(1 − t) that the authors' public code
    (github.com/EkdeepSLubana/MMC) applies to its learning rate. BatchNorm uses batch statistics (train mode)
    while training; the returned BN running statistics are the endpoints'
    mean, to be re-estimated by :func:`cbft_core.kernels.paths.evaluate_path`.
    """
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    sgd = SGDConfig(lr=lr, momentum=momentum, weight_decay=weight_decay, schedule="cosine")
    if not isinstance(data, ImageSet) or len(data) == 0:
        raise ConfigError("data must be a non-empty ImageSet")

    sa = {k: v.detach() for k, v in model_a.state_dict().items()}
    sb = {k: v.detach() for k, v in model_b.state_dict().items()}
    check_compatible(sa, sb, "model_a", "model_b")
    template = copy.deepcopy(model_a).train()
    param_names = [name for name, _ in template.named_parameters()]
    mid = {k: ((sa[k] + sb[k]) / 2).clone().requires_grad_(True) for k in param_names}

    steps_per_epoch, per_step = midpoint_batches(len(data), batch_size)
    drop_last = per_step < len(data)
    opt, sched = sgd.make(list(mid.values()), epochs * steps_per_epoch, steps_per_epoch)
    gen = torch.Generator().manual_seed(int(seed))
    device = next(iter(sa.values())).device

    bar = progress_bar(total=epochs * steps_per_epoch, desc="midpoint", show=progress)
    try:
        for epoch in range(epochs):
            for step, (x, y) in enumerate(
                batches(data, batch_size, shuffle=True, generator=gen, drop_last=drop_last, device=device)
            ):
                t = float(torch.rand((), generator=gen))
                wa, wm, wb = (1 - t) ** 2, 2 * t * (1 - t), t * t
                params = {k: wa * sa[k] + wm * mid[k] + wb * sb[k] for k in param_names}
                loss = F.cross_entropy(functional_call(template, params, (x,)), y)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(
                        f"midpoint training: loss is {loss.item()} at epoch {epoch}, step {step} "
                        f"(t={t:.3f}); lower lr (now {sched.get_last_lr()[0]:.3g})"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    finally:
        bar.close()

    out: dict[str, torch.Tensor] = {}
    for k, va in sa.items():
        if k in mid:
            out[k] = mid[k].detach().clone()
        elif va.is_floating_point():
            out[k] = (va + sb[k]) / 2
        else:
            out[k] = va.clone()
    return out
