"""Naive fine-tuning of a cue-reliant model on a small clean set: FT, LLRT and LP-FT (the authors' ``mech_fine_tuning.py``).

``run(method, model, clean, sgd, ...)`` returns a NEW fine-tuned model (the
input model is never modified) and its history. Methods (:data:`METHODS`):

- ``ft``: SGD on cross-entropy over the clean set, BatchNorm in train mode,
  learning rate from ``sgd`` (the authors: 0.01, momentum 0.9, weight decay
  1e-4, cosine to 0, 20 epochs, batch 256).
- ``llrt``: last-layer retraining. The backbone's features of the clean set
  are computed once in eval mode and a *fresh* linear head is trained on them
  by SGD — the authors' ``LLRT``: lr 30, momentum 0.9, no weight decay, their
  cosine schedule over 200 epochs of shuffled batches (``head_lr``,
  ``head_epochs``).
- ``lpft``: ``llrt``, then ``ft``.

Connectivity-based fine-tuning lives in :mod:`cbft_core.kernels.cbft`.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import train
from .checks import check_choice, check_int, check_number
from .data.imageset import ImageSet
from .optim import SGDConfig
from ..errors import ConfigError

__all__ = ["METHODS", "run", "check_start", "HEAD_EPOCHS", "HEAD_LR"]

METHODS: tuple[str, ...] = ("ft", "llrt", "lpft")
HEAD_EPOCHS = 200   # the authors' LLRT(n_epochs=200, base_lr=30)
HEAD_LR = 30.0


def check_start(model: nn.Module, clean: ImageSet) -> None:
    """ConfigError unless ``model`` has ``features`` and a linear ``head`` for the classes of ``clean``."""
    if not isinstance(clean, ImageSet) or len(clean) == 0:
        raise ConfigError("clean must be a non-empty ImageSet (the clean fine-tuning set D_nc)")
    out = getattr(getattr(model, "head", None), "out_features", None)
    if out is None or not callable(getattr(model, "features", None)):
        raise ConfigError("model must have .features(x) and a linear .head; build it with cbft_core.kernels.models.build")
    if out != clean.num_classes:
        raise ConfigError(f"clean has {clean.num_classes} classes but the model's head has {out} outputs")


def run(
    method: str,
    model: nn.Module,
    clean: ImageSet,
    sgd: SGDConfig,
    *,
    epochs: int,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
    max_batches: int | None = None,
    head_epochs: int = HEAD_EPOCHS,
    head_lr: float = HEAD_LR,
) -> tuple[nn.Module, dict[str, Any]]:
    """Fine-tune a copy of ``model`` on ``clean`` with ``method``; return it (eval mode) and its history.

    ``sgd`` and ``epochs`` drive the FT part (``ft``, ``lpft``); ``head_epochs``
    and ``head_lr`` the linear probe (``llrt``, ``lpft``). ``max_batches`` caps
    the batches per epoch (smoke tests).
    """
    check_choice("method", method, METHODS)
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_int("head_epochs", head_epochs, minimum=1)
    check_number("head_lr", head_lr, minimum=0.0, strict_minimum=True)
    check_start(model, clean)
    tuned = copy.deepcopy(model)
    history: dict[str, Any] = {"method": method}
    if method in ("llrt", "lpft"):
        history["llrt"] = _llrt(tuned, clean, epochs=head_epochs, lr=head_lr, batch_size=batch_size, seed=seed,
                                progress=progress, max_batches=max_batches)
    if method in ("ft", "lpft"):
        _, history["ft"] = train.fit(tuned, clean, sgd, epochs=epochs, batch_size=batch_size, seed=seed,
                                     desc=method, progress=progress, max_batches=max_batches, return_history=True)
    return tuned.eval(), history


def _llrt(model: nn.Module, clean: ImageSet, *, epochs: int, lr: float, batch_size: int, seed: int,
          progress: bool, max_batches: int | None) -> dict[str, list[float]]:
    """Replace ``model.head`` in place by a fresh head trained on the clean set's eval-mode features."""
    head = model.head
    feats = train.features(model, clean).to(head.weight.device)
    labels = clean.labels.to(head.weight.device)
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(head.in_features)  # PyTorch's default nn.Linear initialisation, seeded
    with torch.no_grad():
        head.weight.copy_(torch.empty(head.weight.shape).uniform_(-bound, bound, generator=g))
        head.bias.copy_(torch.empty(head.bias.shape).uniform_(-bound, bound, generator=g))

    def batches_of(epoch: int):
        order = torch.randperm(len(labels), generator=g).to(labels.device)
        return ((feats[order[i:i + batch_size]], labels[order[i:i + batch_size]])
                for i in range(0, len(labels), batch_size))

    def step(batch: tuple[torch.Tensor, torch.Tensor], updater: train.Updater) -> dict[str, torch.Tensor]:
        z, y = batch
        logits = head(z)
        loss = F.cross_entropy(logits, y)
        updater.update(loss, what="head loss")
        return {"loss": loss, "acc": (logits.detach().argmax(1) == y).float().mean()}

    sgd = SGDConfig(lr=lr, momentum=0.9, weight_decay=0.0, schedule="cosine")
    return train.train_loop(head.parameters(), sgd, epochs=epochs,
                            steps_per_epoch=train.steps_per_epoch(len(labels), batch_size, max_batches),
                            batches_of=batches_of, step=step, desc="llrt", progress=progress,
                            device=head.weight.device)
