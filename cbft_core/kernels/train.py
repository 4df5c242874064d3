"""The one training loop and the one evaluation: seeded SGD updates with a NaN check, progress, history.

:func:`train_loop` runs epochs of batches through a caller's ``step``
function, which takes its update(s) with :meth:`Updater.update` — the one
step helper: NaN/inf check, backward pass, SGD step at the scheduled rate
(:class:`~cbft_core.kernels.optim.SGDConfig`, the one settings object).
:func:`fit` (the models), :func:`cbft_core.kernels.connectivity.train_midpoint`
and every method of :mod:`cbft_core.kernels.finetune` / :mod:`cbft_core.kernels.cbft`
are ``step`` functions over it. :func:`evaluate` is the one loss-and-accuracy
over a set (``predict`` / ``features`` run a model over a whole set in eval mode).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_int
from .data.imageset import ImageSet, batches
from .optim import SCHEDULES, SGDConfig
from ..errors import ConfigError, NonFiniteLossError
from .progress import bar as progress_bar

__all__ = ["SCHEDULES", "Updater", "train_loop", "steps_per_epoch", "fit", "evaluate", "loss_acc", "predict", "features",
           "model_device"]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-less model)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


class Updater:
    """The optimiser of one training run; :meth:`update` is every loop's one step helper.

    The rate of batch ``b`` (0-based over the run) is ``sgd.lr_at(b, ...)``,
    times the ``scale`` an update asks for (the midpoint's 2t(1 − t)). The loss
    is checked for NaN/inf before each update: at once on the CPU; on a GPU
    the first bad update is recorded on the device and raised at the end of
    its epoch (no host synchronisation per update).
    """

    def __init__(self, params: Iterable[torch.Tensor], sgd: SGDConfig, *, steps_per_epoch: int, epochs: int,
                 desc: str, device: torch.device) -> None:
        self.sgd, self.steps_per_epoch, self.epochs, self.desc = sgd, steps_per_epoch, epochs, desc
        self.opt = sgd.optimizer(params)
        self.check_now = device.type == "cpu"
        self.batch = self.epoch = self.step = 0
        self.rate = sgd.lr
        self._bad = None  # (step, loss) of the first non-finite loss of the epoch, on the device

    def begin(self, batch: int, epoch: int, step: int) -> None:
        """Enter batch ``batch`` (over the run), step ``step`` of epoch ``epoch`` (both 0-based)."""
        self.batch, self.epoch, self.step = batch, epoch, step
        self.rate = self.sgd.lr_at(batch, self.steps_per_epoch, self.epochs)

    def update(self, loss: torch.Tensor, *, scale: float = 1.0, what: str = "loss") -> None:
        """Check ``loss``, backpropagate it and take one SGD step at the scheduled rate × ``scale``."""
        if self.check_now:
            if not bool(torch.isfinite(loss.detach())):
                self._raise(float(loss.detach()), self.step + 1, what)
        elif self._bad is None:
            bad = ~torch.isfinite(loss.detach())
            self._bad = (torch.where(bad, self.step + 1, 0), loss.detach().float(), what)
        else:
            step, value, name = self._bad
            bad = (step == 0) & ~torch.isfinite(loss.detach())
            self._bad = (torch.where(bad, self.step + 1, step), torch.where(bad, loss.detach().float(), value), name)
        for group in self.opt.param_groups:
            group["lr"] = self.rate * scale
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def end_epoch(self) -> None:
        """Raise :class:`NonFiniteLossError` for a bad update recorded on the device in this epoch."""
        if self._bad is not None:
            step, value, what = self._bad
            self._bad = None
            if int(step) > 0:
                self._raise(float(value), int(step), what)

    def _raise(self, value: float, step: int, what: str) -> None:
        raise NonFiniteLossError(f"{self.desc}: non-finite {what} ({value}) at epoch {self.epoch + 1}, step {step}; "
                                 "lower the learning rate or check the data")


def train_loop(
    params: Iterable[torch.Tensor],
    sgd: SGDConfig,
    *,
    epochs: int,
    steps_per_epoch: int,
    batches_of: Callable[[int], Iterable[Any]],
    step: Callable[[Any, Updater], Mapping[str, Any]],
    desc: str = "train",
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """Train ``params`` with ``sgd`` for ``epochs`` of at most ``steps_per_epoch`` batches; return the history.

    ``batches_of(epoch)`` yields the epoch's batches; ``step(batch, updater)``
    computes the losses, takes its update(s) with ``updater.update`` and
    returns scalars (floats or 0-dim tensors) to record. The history holds,
    per epoch, the mean over batches of each returned scalar, and ``lr`` (the
    rate of the epoch's last batch).
    """
    check_int("epochs", epochs, minimum=1)
    check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    updater = Updater(params, sgd, steps_per_epoch=steps_per_epoch, epochs=epochs, desc=desc,
                      device=torch.device(device))
    history: dict[str, list[float]] = {}
    bar = progress_bar(range(epochs), desc=desc, show=progress)
    try:
        for epoch in bar:
            sums: dict[str, Any] = {}
            count = 0
            for i, batch in enumerate(batches_of(epoch)):
                if i >= steps_per_epoch:
                    break
                updater.begin(epoch * steps_per_epoch + i, epoch, i)
                for key, value in step(batch, updater).items():
                    value = value.detach() if isinstance(value, torch.Tensor) else value
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
            updater.end_epoch()
            for key, value in sums.items():
                history.setdefault(key, []).append(float(value) / max(count, 1))
            history.setdefault("lr", []).append(updater.rate)
            bar.set_postfix({k: f"{v[-1]:.3f}" for k, v in history.items() if k != "lr"}, refresh=False)
    finally:
        bar.close()
    return history


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


def steps_per_epoch(n: int, batch_size: int, max_batches: int | None = None) -> int:
    """Batches of one shuffled pass over ``n`` images (the last one may be short), capped at ``max_batches``."""
    steps = math.ceil(n / batch_size)
    return steps if max_batches is None else min(steps, max_batches)


def fit(
    model: nn.Module,
    data: ImageSet,
    sgd: SGDConfig,
    *,
    epochs: int,
    batch_size: int = 128,
    seed: int = 0,
    desc: str = "train",
    progress: bool = True,
    max_batches: int | None = None,
    return_history: bool = False,
    channels_last: bool = False,
    amp: bool = False,
) -> nn.Module | tuple[nn.Module, dict[str, list[float]]]:
    """Train ``model`` in place on cross-entropy over ``data`` with :func:`train_loop`; return it.

    Batches are reshuffled every epoch from one generator seeded with ``seed``;
    ``max_batches`` caps the batches per epoch (smoke tests). With
    ``return_history`` returns ``(model, history)`` (per-epoch ``loss``, ``acc``,
    ``lr``). The model's train/eval mode is restored at the end, also when
    training fails. The set is moved to the model's device once (uint8) and
    batches are cut and normalised there. ``channels_last`` stores the model
    and the batches as NHWC (faster convolutions on tensor-core GPUs; the same
    function). ``amp`` runs the forward in bfloat16 autocast (the loss, the
    weights and the optimiser stay float32); it changes the numbers.
    """
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    if max_batches is not None:
        check_int("max_batches", max_batches, minimum=1)
    _check_data("data", data, model)
    dev = model_device(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    data = data.to(dev)  # once for every epoch
    gen = torch.Generator().manual_seed(int(seed))

    def step(batch: tuple[torch.Tensor, torch.Tensor], updater: Updater) -> dict[str, torch.Tensor]:
        x, y = batch
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        updater.update(loss)
        return {"loss": loss, "acc": (logits.detach().argmax(1) == y).float().mean()}

    was_training = model.training
    model.train()
    try:
        history = train_loop(model.parameters(), sgd, epochs=epochs,
                             steps_per_epoch=steps_per_epoch(len(data), batch_size, max_batches),
                             batches_of=lambda epoch: batches(data, batch_size, shuffle=True, generator=gen,
                                                              channels_last=channels_last),
                             step=step, desc=desc, progress=progress, device=dev)
    finally:
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


def loss_acc(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy (summed in float64) and accuracy of ``logits`` ``[N, K]`` against ``labels``."""
    logits, labels = logits.double().cpu(), labels.cpu()
    return {"loss": float(F.cross_entropy(logits, labels, reduction="sum")) / len(labels),
            "acc": float((logits.argmax(1) == labels).double().mean())}


def evaluate(
    model: nn.Module, data: ImageSet, batch_size: int = 512, device: torch.device | str | None = None
) -> dict[str, float]:
    """Mean cross-entropy ``loss`` and accuracy ``acc`` of ``model`` on ``data`` (eval mode):
    the one loss-and-accuracy over a set of the library."""
    _check_data("data", data, model)
    return loss_acc(predict(model, data, batch_size, device), data.labels)
