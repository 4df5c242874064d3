"""Training and evaluation loops: seeded SGD with a per-step schedule, NaN checks, progress.

``fit`` trains a model in place on an :class:`~cbft_core.kernels.data.imageset.ImageSet`;
``evaluate`` / ``predict`` / ``features`` run it over a whole set in eval mode.
The schedule and finiteness helpers are public because :mod:`cbft_core.kernels.finetune`
drives its own two-step loops with them.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data.imageset import ImageSet, batches
from ..errors import ConfigError, NonFiniteLossError

__all__ = [
    "SCHEDULES",
    "set_seed",
    "fit",
    "evaluate",
    "predict",
    "features",
    "lr_factor",
    "check_finite",
    "check_positive",
    "model_device",
]

SCHEDULES: tuple[str, ...] = ("cosine", "step", "constant")


def set_seed(seed: int) -> None:
    """Seed torch's default generator (used by model initialisation)."""
    torch.manual_seed(int(seed))


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-less model)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def check_positive(name: str, value: object, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise ConfigError naming ``name`` unless ``value`` is a positive (int) number."""
    ok_type = isinstance(value, int) if integer else isinstance(value, Real)
    if isinstance(value, bool) or not ok_type:
        kind = "an int" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(float(value)) or (value < 0 if allow_zero else value <= 0):  # type: ignore[operator]
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


def lr_factor(
    schedule: str,
    step: int,
    total_steps: int,
    steps_per_epoch: int,
    step_every: int | None = None,
    gamma: float = 0.1,
) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based).

    ``cosine``: ``0.5·(1 + cos(π·step/total_steps))``, from 1 at the first step
    towards 0 at the last; ``step``: ``gamma ** (epoch // step_every)``;
    ``constant``: 1.
    """
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(total_steps, 1)))
    if schedule == "step":
        return float(gamma) ** ((step // steps_per_epoch) // int(step_every))  # type: ignore[arg-type]
    if schedule == "constant":
        return 1.0
    raise ConfigError(f"schedule: unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}")


def check_finite(loss: torch.Tensor, *, desc: str, epoch: int, step: int, what: str = "loss") -> None:
    """Raise NonFiniteLossError naming ``desc``, the epoch and the step if ``loss`` is NaN/inf."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise NonFiniteLossError(
            f"{desc}: non-finite {what} ({float(loss.detach().reshape(-1)[0])}) at epoch {epoch}, "
            f"step {step}; lower the learning rate or check the data"
        )


def _check_data(name: str, data: object, model: nn.Module | None = None) -> ImageSet:
    if not isinstance(data, ImageSet):
        raise ConfigError(f"{name} must be an ImageSet, got {type(data).__name__}")
    if len(data) == 0:
        raise ConfigError(f"{name} is empty; pass an ImageSet with at least one sample")
    if model is not None:
        head = getattr(model, "head", None)
        out = getattr(head, "out_features", None)
        if out is not None and out != data.num_classes:
            raise ConfigError(
                f"{name} has {data.num_classes} classes but the model's head has {out} outputs; "
                "build the model with num_classes=data.num_classes"
            )
        if int(data.labels.max()) >= data.num_classes or int(data.labels.min()) < 0:
            raise ConfigError(f"{name}: labels must lie in [0, {data.num_classes}), got out-of-range labels")
    return data


def _check_schedule(schedule: str, step_every: int | None, gamma: float) -> None:
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule: unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}")
    if schedule == "step":
        if step_every is None:
            raise ConfigError("step_every: schedule='step' needs step_every (epochs between lr drops)")
        check_positive("step_every", step_every, integer=True)
        check_positive("gamma", gamma)


def fit(
    model: nn.Module,
    data: ImageSet,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str = "cosine",
    step_every: int | None = None,
    gamma: float = 0.1,
    seed: int = 0,
    desc: str = "train",
    progress: bool = True,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
    return_history: bool = False,
) -> nn.Module | tuple[nn.Module, dict[str, list[float]]]:
    """Train ``model`` in place with SGD on cross-entropy over ``data``; return it.

    The learning rate follows ``schedule`` per optimiser step (``cosine`` to 0
    over all steps, ``step``: ×``gamma`` every ``step_every`` epochs, or
    ``constant``). Batches are reshuffled every epoch from one generator seeded
    with ``seed``. A NaN/inf loss raises :class:`NonFiniteLossError` naming
    ``desc``, the epoch and the step. ``max_batches`` caps the batches per epoch
    (smoke tests). With ``return_history`` returns ``(model, history)`` where
    ``history`` has per-epoch ``loss``, ``acc`` and ``lr`` (last step's).
    The model's train/eval mode is restored at the end.
    """
    check_positive("epochs", epochs, integer=True)
    check_positive("lr", lr)
    check_positive("batch_size", batch_size, integer=True)
    check_positive("momentum", momentum, allow_zero=True)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    if max_batches is not None:
        check_positive("max_batches", max_batches, integer=True)
    _check_schedule(schedule, step_every, gamma)
    _check_data("data", data, model)
    if device is not None:
        model.to(device)
    dev = model_device(model)

    steps_per_epoch = math.ceil(len(data) / batch_size)
    if max_batches is not None:
        steps_per_epoch = min(steps_per_epoch, max_batches)
    total = steps_per_epoch * epochs
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    history: dict[str, list[float]] = {"loss": [], "acc": [], "lr": []}
    was_training = model.training
    model.train()
    step = 0
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        seen = 0
        for i, (x, y) in enumerate(batches(data, batch_size, shuffle=True, generator=gen, device=dev)):
            if i >= steps_per_epoch:
                break
            cur_lr = lr * lr_factor(schedule, step, total, steps_per_epoch, step_every, gamma)
            for group in opt.param_groups:
                group["lr"] = cur_lr
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            check_finite(loss, desc=desc, epoch=epoch + 1, step=i + 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
        history["loss"].append(float(loss_sum) / seen)
        history["acc"].append(float(correct) / seen)
        history["lr"].append(cur_lr)
        bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", acc=f"{history['acc'][-1]:.3f}")
    bar.close()
    model.train(was_training)
    return (model, history) if return_history else model


def _over_set(
    model: nn.Module,
    data: ImageSet,
    batch_size: int,
    device: torch.device | str | None,
    fn: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Concatenate ``fn(x)`` over ``data`` in eval mode (mode restored), on the CPU."""
    check_positive("batch_size", batch_size, integer=True)
    _check_data("data", data)
    dev = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            outs = [fn(x).float().cpu() for x, _ in batches(data, batch_size, device=dev)]
    finally:
        model.train(was_training)
    return torch.cat(outs)


def predict(
    model: nn.Module, data: ImageSet, batch_size: int = 512, device: torch.device | str | None = None
) -> torch.Tensor:
    """Logits ``[N, num_classes]`` (float32, CPU) of ``model`` in eval mode."""
    return _over_set(model, data, batch_size, device, model)


def features(
    model: nn.Module, data: ImageSet, batch_size: int = 512, device: torch.device | str | None = None
) -> torch.Tensor:
    """Penultimate features ``model.features(x)`` ``[N, D]`` (float32, CPU), eval mode."""
    if not callable(getattr(model, "features", None)):
        raise ConfigError("model has no .features(x) method; build it with cbft_core.kernels.models.build")
    return _over_set(model, data, batch_size, device, model.features)


def evaluate(
    model: nn.Module, data: ImageSet, batch_size: int = 512, device: torch.device | str | None = None
) -> dict[str, float]:
    """Mean cross-entropy ``loss`` and accuracy ``acc`` of ``model`` on ``data`` (eval mode).

    Per-sample losses are summed in float64.
    """
    _check_data("data", data, model)
    logits = predict(model, data, batch_size, device)
    losses = F.cross_entropy(logits.double(), data.labels, reduction="none")
    acc = (logits.argmax(1) == data.labels).double().mean()
    return {"loss": float(losses.sum() / len(data)), "acc": float(acc)}
