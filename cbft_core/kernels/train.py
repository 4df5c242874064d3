"""Training and evaluation loops: seeded SGD with a per-step schedule, NaN checks, progress.

``fit`` trains a model in place on an :class:`~cbft_core.kernels.data.imageset.ImageSet`
(optimiser and schedule from :class:`~cbft_core.kernels.optim.SGDConfig`);
``evaluate`` / ``predict`` / ``features`` run it over a whole set in eval mode.
The finiteness check is public because :mod:`cbft_core.kernels.finetune`
drives its own two-step loops with it.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_int
from .data.imageset import ImageSet, batches
from .optim import SCHEDULES, SGDConfig
from ..errors import ConfigError, NonFiniteLossError
from .progress import bar as progress_bar

__all__ = [
    "SCHEDULES",
    "set_seed",
    "fit",
    "evaluate",
    "predict",
    "features",
    "check_finite",
    "model_device",
]

def set_seed(seed: int) -> None:
    """Seed torch's default generator (used by model initialisation)."""
    torch.manual_seed(int(seed))


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-less model)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


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
    channels_last: bool = False,
    amp: bool = False,
    check_every_step: bool | None = None,
) -> nn.Module | tuple[nn.Module, dict[str, list[float]]]:
    """Train ``model`` in place with SGD on cross-entropy over ``data``; return it.

    The learning rate follows ``schedule`` per optimiser step (``cosine`` to 0
    over all steps, ``step``: ×``gamma`` every ``step_every`` epochs, or
    ``constant``). Batches are reshuffled every epoch from one generator seeded
    with ``seed``. A NaN/inf loss raises :class:`NonFiniteLossError` naming
    ``desc``, the epoch and the step. ``max_batches`` caps the batches per epoch
    (smoke tests). With ``return_history`` returns ``(model, history)`` where
    ``history`` has per-epoch ``loss``, ``acc`` and ``lr`` (last step's).
    The model's train/eval mode is restored at the end, also when training fails.

    The GPU path: the set is moved to the model's device once (uint8) and
    every batch is cut and normalised there. ``channels_last`` stores the
    model and the batches as NHWC (faster convolutions on tensor-core GPUs;
    the same function, other summation orders). ``amp`` runs the forward in
    bfloat16 autocast (the loss, the weights and the optimiser stay float32);
    it changes the numbers, so it is off unless asked for. ``check_every_step``
    (default: on the CPU only) tests the loss for NaN/inf after every step;
    off, the first bad step is recorded on the device and raised at the end of
    its epoch, sparing a host synchronisation per step.
    """
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    if max_batches is not None:
        check_int("max_batches", max_batches, minimum=1)
    sgd = SGDConfig(lr=lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                    step_every=step_every, gamma=gamma)
    _check_data("data", data, model)
    if device is not None:
        model.to(device)
    dev = model_device(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    data = data.to(dev)  # once for every epoch
    if check_every_step is None:
        check_every_step = dev.type == "cpu"

    steps_per_epoch = math.ceil(len(data) / batch_size)
    if max_batches is not None:
        steps_per_epoch = min(steps_per_epoch, max_batches)
    opt, sched = sgd.make(model.parameters(), steps_per_epoch * epochs, steps_per_epoch)
    gen = torch.Generator().manual_seed(int(seed))
    history: dict[str, list[float]] = {"loss": [], "acc": [], "lr": []}
    was_training = model.training
    model.train()
    bar = progress_bar(range(epochs), desc=desc, show=progress)
    try:
        for epoch in bar:
            loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
            correct = torch.zeros((), dtype=torch.int64, device=dev)
            seen = 0
            first_bad = torch.full((), -1, dtype=torch.int64, device=dev)  # step (1-based) of the first NaN/inf loss
            bad_loss = torch.zeros((), device=dev)
            for i, (x, y) in enumerate(batches(data, batch_size, shuffle=True, generator=gen,
                                               channels_last=channels_last)):
                if i >= steps_per_epoch:
                    break
                cur_lr = opt.param_groups[0]["lr"]
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
                if check_every_step:
                    check_finite(loss, desc=desc, epoch=epoch + 1, step=i + 1)
                else:
                    new_bad = (first_bad < 0) & ~torch.isfinite(loss.detach())
                    first_bad = torch.where(new_bad, i + 1, first_bad)
                    bad_loss = torch.where(new_bad, loss.detach().float(), bad_loss)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.detach().double() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
            if int(first_bad) > 0:
                check_finite(bad_loss, desc=desc, epoch=epoch + 1, step=int(first_bad))
            history["loss"].append(float(loss_sum) / seen)
            history["acc"].append(float(correct) / seen)
            history["lr"].append(cur_lr)
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", acc=f"{history['acc'][-1]:.3f}")
    finally:
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
    check_int("batch_size", batch_size, minimum=1)
    _check_data("data", data)
    dev = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            outs = [fn(x).float() for x, _ in batches(data, batch_size, device=dev)]
    finally:
        model.train(was_training)
    return torch.cat(outs).cpu()  # one transfer for the whole set


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
