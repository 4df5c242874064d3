"""Connectivity-based fine-tuning (CBFT) and its two ablations, as the authors' ``mech_fine_tuning.CBFT`` runs it.

Per batch, two SGD updates of θ (initialised at the cue-reliant model θc,
which stays frozen), at one learning rate:

1. barrier step (:func:`barrier_loss`): t = 0.5 + 0.5·clip(z, −0.5, 0.5),
   z ~ N(0, 1) (:func:`sample_t`); the point θ(t) = t·θc + (1 − t)·θ runs a
   cue batch in train mode (BatchNorm on the batch's statistics); the loss
   ``|margin − CE|`` reaches θ through the interpolation, with the factor 1 − t;
2. clean + invariance step: CE on the clean batch, plus (after the warm-up
   epochs) ``lam`` × :func:`invariance_loss` between the clean and cue
   batches' penultimate features.

Each epoch draws a fresh order of the clean set and of the cue set and runs
as many batches as the shorter of the two provides (the authors'
``zip(dataloader_nocue, dataloader_cue)``). The rate follows the authors'
cosine, held for the warm-up epochs and one more (their
``if epoch > warmup_epochs: lr_scheduler.step()``), so it never reaches 0.
Methods (:data:`METHODS`): ``cbft``, ``cbft-no-barrier`` (step 1 skipped) and
``cbft-no-invariance`` (``lam`` = 0).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from . import paths, train
from .checks import check_choice, check_int, check_number
from .data.imageset import ImageSet
from .finetune import check_start
from .optim import SGDConfig
from ..errors import ConfigError

__all__ = ["METHODS", "run", "barrier_loss", "invariance_loss", "sample_t"]

METHODS: tuple[str, ...] = ("cbft", "cbft-no-barrier", "cbft-no-invariance")


def invariance_loss(
    z_nc: torch.Tensor, y_nc: torch.Tensor, z_c: torch.Tensor, y_c: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """(1/K)·Σ_k ‖n(mean z_nc[y_nc = k]) − n(mean z_c[y_c = k])‖², n() = L2 normalisation.

    The sum runs over the classes present in both batches and K is the number
    of classes, as in the authors' code.
    """
    oh_nc = F.one_hot(y_nc, num_classes).to(z_nc.dtype)
    oh_c = F.one_hot(y_c, num_classes).to(z_c.dtype)
    cnt_nc, cnt_c = oh_nc.sum(0), oh_c.sum(0)
    mean_nc = (oh_nc.T @ z_nc) / cnt_nc.clamp(min=1).unsqueeze(1)
    mean_c = (oh_c.T @ z_c) / cnt_c.clamp(min=1).unsqueeze(1)
    present = (cnt_nc > 0) & (cnt_c > 0)
    diff = F.normalize(mean_nc, dim=1) - F.normalize(mean_c, dim=1)
    return (diff.pow(2).sum(1) * present.to(diff.dtype)).sum() / num_classes


def barrier_loss(
    template: nn.Module,
    anchor: dict[str, torch.Tensor],
    params: dict[str, torch.Tensor],
    t: float,
    x: torch.Tensor,
    y: torch.Tensor,
    margin: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(|margin − CE|, CE)`` of the point θ(t) = t·anchor + (1 − t)·params on batch ``(x, y)``.

    ``template`` (a module of the same architecture, in the mode wanted for
    BatchNorm) runs θ(t) through ``functional_call``; the graph reaches
    ``params`` with the factor 1 − t, nothing reaches the detached ``anchor``.
    """
    ce = F.cross_entropy(functional_call(template, paths.linear(params, anchor, t), (x,)), y)
    return (margin - ce).abs(), ce


def sample_t(generator: torch.Generator) -> float:
    """The authors' draw of the barrier step's point: ``0.5 + 0.5·clip(z, −0.5, 0.5)``, z ~ N(0, 1)."""
    z = torch.randn((), generator=generator).item()
    return 0.5 + 0.5 * min(max(z, -0.5), 0.5)


def run(
    method: str,
    model: nn.Module,
    clean: ImageSet,
    cue: ImageSet,
    sgd: SGDConfig,
    *,
    epochs: int,
    batch_size: int = 256,
    margin: float = 1.0,
    lam: float = 1.0,
    warmup_epochs: int = 1,
    seed: int = 0,
    progress: bool = True,
    max_batches: int | None = None,
    record_steps: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """CBFT (or an ablation) of a copy of ``model`` on the clean set D_nc and the cue data D_c.

    ``sgd`` gives the base rate, momentum and weight decay (the schedule is
    the authors' cosine held for ``warmup_epochs`` + 1 epochs);
    ``lam`` is ignored by ``cbft-no-invariance``. Returns the fine-tuned model
    (eval mode) and its history: per-epoch means of each loss, the clean
    accuracy and the rate; ``record_steps`` also keeps every batch's clean and
    cue sample indices and its t.
    """
    check_choice("method", method, METHODS)
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_number("margin", margin, minimum=0.0)
    check_number("lam", lam, minimum=0.0)
    check_int("warmup_epochs", warmup_epochs, minimum=0)
    check_start(model, clean)
    if not isinstance(cue, ImageSet) or len(cue) == 0:
        raise ConfigError(f"cue: method {method!r} needs the cue data D_c, a non-empty ImageSet")
    if cue.num_classes != clean.num_classes or cue.shape != clean.shape:
        raise ConfigError(f"cue must match clean: got {cue.num_classes} classes, images {cue.shape} vs "
                          f"{clean.num_classes} classes, images {clean.shape}")
    barrier = method != "cbft-no-barrier"
    lam = 0.0 if method == "cbft-no-invariance" else lam

    tuned = copy.deepcopy(model).train()
    dev = train.model_device(tuned)
    num_classes = tuned.head.out_features
    params = dict(tuned.named_parameters())
    anchor = {k: p.detach().clone() for k, p in params.items()}  # θc, frozen
    template = copy.deepcopy(tuned).requires_grad_(False)  # runs θ(t); its own BN buffers absorb updates
    g_clean, g_cue, g_t = (torch.Generator().manual_seed(s) for s in
                           torch.randint(0, 2**62, (3,), generator=torch.Generator().manual_seed(seed)).tolist())
    steps = train.steps_per_epoch(min(len(clean), len(cue)), batch_size, max_batches)
    steps_record: dict[str, list[Any]] = {"clean_index": [], "cue_index": [], "step_t": []}

    def batches_of(epoch: int):
        order_nc, order_c = torch.randperm(len(clean), generator=g_clean), torch.randperm(len(cue), generator=g_cue)
        for i in range(steps):
            idx_nc, idx_c = order_nc[i * batch_size:(i + 1) * batch_size], order_c[i * batch_size:(i + 1) * batch_size]
            if record_steps:
                steps_record["clean_index"].append(idx_nc)
                steps_record["cue_index"].append(idx_c)
            yield (epoch, clean.inputs(idx_nc).to(dev), clean.labels[idx_nc].to(dev),
                   cue.inputs(idx_c).to(dev), cue.labels[idx_c].to(dev))

    def step(batch: tuple[Any, ...], updater: train.Updater) -> dict[str, Any]:
        epoch, x_nc, y_nc, x_c, y_c = batch
        nan = float("nan")
        out: dict[str, Any] = {"barrier_loss": nan, "barrier_ce": nan, "invariance": nan}
        if barrier:  # step 1: push the path's midpoints off low cue loss
            t = sample_t(g_t)
            if record_steps:
                steps_record["step_t"].append(t)
            loss_b, ce_t = barrier_loss(template, anchor, params, t, x_c, y_c, margin)
            updater.update(loss_b, what="barrier loss")
            out.update(barrier_loss=loss_b, barrier_ce=ce_t, t=t)
        z_nc = tuned.features(x_nc)  # step 2: clean cross-entropy (+ invariance between clean and cue features)
        logits = tuned.head(z_nc)
        loss = ce = F.cross_entropy(logits, y_nc)
        if epoch >= warmup_epochs and lam > 0:
            inv = invariance_loss(z_nc, y_nc, tuned.features(x_c), y_c, num_classes)
            loss = ce + lam * inv
            out["invariance"] = inv
        updater.update(loss, what="clean loss")
        return {**out, "clean_ce": ce, "clean_acc": (logits.detach().argmax(1) == y_nc).float().mean()}

    schedule = dataclasses.replace(sgd, schedule="cosine", hold_epochs=warmup_epochs + 1)
    history: dict[str, Any] = train.train_loop(tuned.parameters(), schedule, epochs=epochs, steps_per_epoch=steps,
                                               batches_of=batches_of, step=step, desc=method, progress=progress,
                                               device=dev)
    history["method"] = method
    if record_steps:
        history.update(steps_record)
    return tuned.eval(), history
