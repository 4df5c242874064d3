"""The one settings object of every training loop: SGD and its per-update learning-rate schedule.

:class:`SGDConfig` says how fast and how long to learn; :meth:`SGDConfig.lr_at`
gives the rate of each update. :func:`cbft_core.kernels.train.train_loop`
(which serves the models, the quadratic midpoint and every fine-tuning
method) builds its optimiser from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from ..errors import ConfigError
from .checks import check_choice, check_int, check_number

__all__ = ["SCHEDULES", "SGDConfig"]

SCHEDULES: tuple[str, ...] = ("cosine", "step", "constant")


@dataclass(frozen=True)
class SGDConfig:
    """SGD with momentum and weight decay, and a learning rate that follows ``schedule``.

    ``cosine``: the authors' ``utils.LR_Scheduler`` (cosine from ``lr`` to 0 over
    every update of the run, stepped after each update); ``step``:
    ``lr·gamma^⌊epoch / step_every⌋`` (their ``StepLR`` for models and the
    midpoint's per-epoch decay); ``constant``: ``lr``. ``hold_epochs``: the rate
    stays at ``lr`` for that many epochs before the cosine starts, without
    shortening it (CBFT's ``if epoch > warmup_epochs: lr_scheduler.step()``:
    the rate then ends above 0).
    """

    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    step_every: int | None = None
    gamma: float = 0.1
    hold_epochs: int = 0

    def __post_init__(self) -> None:
        check_number("lr", self.lr, minimum=0.0, strict_minimum=True)
        check_number("momentum", self.momentum, minimum=0.0, maximum=1.0)
        check_number("weight_decay", self.weight_decay, minimum=0.0)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("hold_epochs", self.hold_epochs, minimum=0)
        if self.schedule == "step":
            if self.step_every is None:
                raise ConfigError("step_every: schedule='step' needs step_every (epochs between lr drops)")
            check_int("step_every", self.step_every, minimum=1)
            check_number("gamma", self.gamma, minimum=0.0, strict_minimum=True)

    def lr_at(self, update: int, steps_per_epoch: int, epochs: int) -> float:
        """The learning rate of update ``update`` (0-based, over the whole run).

        ``cosine``: with K = epochs · steps_per_epoch and H = hold_epochs ·
        steps_per_epoch, ``lr·½(1 + cos(π·max(update − H − 1, 0) / K))``: the
        authors' scheduler sets the rate for the next update after each one,
        starting from ``lr``.
        """
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "step":
            return self.lr * self.gamma ** (update // steps_per_epoch // int(self.step_every))  # type: ignore[arg-type]
        k = max(update - self.hold_epochs * steps_per_epoch - 1, 0)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * k / max(epochs * steps_per_epoch, 1)))

    def optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.SGD:
        """``torch.optim.SGD`` over ``params`` at the base learning rate."""
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
