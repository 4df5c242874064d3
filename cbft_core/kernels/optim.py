"""One SGD configuration for every training loop: the optimiser and its per-step learning-rate schedule.

:class:`SGDConfig` is what :func:`cbft_core.kernels.train.fit`,
:func:`cbft_core.kernels.connectivity.train_midpoint` and
:func:`cbft_core.kernels.finetune.run` build from their keyword arguments; its
:meth:`~SGDConfig.make` returns a ``torch.optim.SGD`` and a
``torch.optim.lr_scheduler`` scheduler that the loop steps once per batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LRScheduler, StepLR

from ..errors import ConfigError
from .checks import check_choice, check_int, check_number

__all__ = ["SCHEDULES", "SGDConfig"]

SCHEDULES: tuple[str, ...] = ("cosine", "step", "constant")


@dataclass(frozen=True)
class SGDConfig:
    """SGD with momentum and weight decay, and a learning rate that follows ``schedule`` per step.

    ``cosine``: ``lr·0.5·(1 + cos(π·k/K))`` at step k of K, from ``lr`` towards 0;
    ``step``: ``lr·gamma^⌊epoch / step_every⌋``; ``constant``: ``lr``.
    """

    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    step_every: int | None = None
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_number("lr", self.lr, minimum=0.0, strict_minimum=True)
        check_number("momentum", self.momentum, minimum=0.0)
        check_number("weight_decay", self.weight_decay, minimum=0.0)
        check_choice("schedule", self.schedule, SCHEDULES)
        if self.schedule == "step":
            if self.step_every is None:
                raise ConfigError("step_every: schedule='step' needs step_every (epochs between lr drops)")
            check_int("step_every", self.step_every, minimum=1)
            check_number("gamma", self.gamma, minimum=0.0, strict_minimum=True)

    def optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.SGD:
        """``torch.optim.SGD`` over ``params`` at the base learning rate."""
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def scheduler(self, opt: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int) -> LRScheduler:
        """The schedule over ``total_steps`` optimiser steps of ``steps_per_epoch`` each epoch.

        Step it once after every batch; before the first step the rate is ``lr``.
        """
        if self.schedule == "cosine":
            return CosineAnnealingLR(opt, T_max=max(int(total_steps), 1))
        if self.schedule == "step":
            return StepLR(opt, step_size=int(self.step_every) * int(steps_per_epoch), gamma=self.gamma)  # type: ignore[arg-type]
        return ConstantLR(opt, factor=1.0, total_iters=0)

    def make(self, params: Iterable[torch.Tensor], total_steps: int,
             steps_per_epoch: int) -> tuple[torch.optim.SGD, LRScheduler]:
        """The optimiser over ``params`` and its scheduler (see :meth:`scheduler`)."""
        opt = self.optimizer(params)
        return opt, self.scheduler(opt, total_steps, steps_per_epoch)
