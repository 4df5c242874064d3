"""Fine-tuning a cue-reliant model on a small clean set (Lubana et al., 2023: naive baselines and CBFT).

``run(method, model, clean, cue, ...)`` returns a NEW fine-tuned model (the
input model is never modified). Methods:

- ``ft``: naive fine-tuning, SGD on cross-entropy over the clean set, cosine to 0.
- ``llrt``: last-layer retraining. The backbone's features of the clean set
  are computed once (eval mode) and a *fresh* linear head (``head_init="warm"``
  starts from the current head instead) is fitted on them by full-batch
  L-BFGS on mean cross-entropy + ``head_weight_decay/2·‖W‖²`` (float64). This
  convex problem has one optimum, so unlike the SGD (lr 30, 200 epochs) of the
  authors' public code (github.com/EkdeepSLubana/MMC) it needs no learning
  rate. ``epochs``/``lr`` are validated but unused.
- ``lpft``: ``llrt``, then ``ft`` with ``epochs``/``lr``.
- ``cbft``: connectivity-based fine-tuning; per batch two SGD updates of θ
  (initialised at the input model θc, which is kept frozen):

  1. barrier step: t ∈ [0.25, 0.75] drawn as ``0.5 + 0.25·clip(2z, −1, 1)``,
     z ~ N(0, 1) (the authors' code: ``0.5 + 0.5·clip(z, −0.5, 0.5)``; about 62 %
     of the draws sit exactly on 0.25 or 0.75); the point
     θ(t) = (1 − t)·θc + t·θ is built with :func:`cbft_core.kernels.paths.linear` on
     the parameters and run with ``torch.func.functional_call`` on a template
     module in train mode (BatchNorm uses the cue batch's statistics); the loss
     ``|margin − CE(θ(t); cue batch)|`` reaches θ through the interpolation
     with factor t. The authors' code puts θ at the other end (factor 1 − t); the
     draw is symmetric about 0.5, so both give the same update distribution.
  2. clean + invariance step: CE on the clean batch plus ``lam`` ×
     :func:`invariance_loss` between the clean and cue batches' features.

  Warm-up (as in the authors' code): during the first ``warmup_epochs``
  epochs step 2 is CE alone, the barrier step still runs, and the learning
  rate is held constant; afterwards it follows a cosine to 0 over the
  remaining steps.
- ``cbft-no-barrier`` (step 1 skipped) and ``cbft-no-invariance`` (lam = 0).

Every epoch covers the clean set once, shuffled without replacement (the
last batch may be smaller). Cue batches come from a separate seeded stream
that reshuffles and restarts whenever the cue set is exhausted, so every cue
sample is used once per pass and nothing is silently truncated.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from . import paths, train
from .checks import check_choice, check_int, check_number
from .data.imageset import ImageSet, normalize
from .optim import SGDConfig
from ..errors import ConfigError
from .progress import bar as progress_bar

__all__ = ["METHODS", "run", "barrier_loss", "invariance_loss", "sample_t", "CueStream"]

METHODS: tuple[str, ...] = ("ft", "llrt", "lpft", "cbft", "cbft-no-barrier", "cbft-no-invariance")

_LLRT_DEFAULTS: dict[str, Any] = {"head_steps": 200, "head_weight_decay": 1e-4, "head_init": "fresh"}
_CBFT_DEFAULTS: dict[str, Any] = {
    "margin": 1.0,
    "lam": 1.0,
    "warmup_epochs": 1,
    "t_range": (0.25, 0.75),
    "t_sampler": "clipped-normal",
    "record_indices": False,
}
_T_SAMPLERS = ("clipped-normal", "uniform")


def invariance_loss(
    z_nc: torch.Tensor, y_nc: torch.Tensor, z_c: torch.Tensor, y_c: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """(1/K)·Σ_k ‖n(mean z_nc[y_nc = k]) − n(mean z_c[y_c = k])‖², n() = L2 normalisation.

    k runs over the K classes present in both batches (0 when there are
    none). The authors' public code (github.com/EkdeepSLubana/MMC) divides by
    the total number of classes instead of K; the two agree whenever every class is present in both batches.
    """
    oh_nc = F.one_hot(y_nc, num_classes).to(z_nc.dtype)
    oh_c = F.one_hot(y_c, num_classes).to(z_c.dtype)
    cnt_nc, cnt_c = oh_nc.sum(0), oh_c.sum(0)
    mean_nc = (oh_nc.T @ z_nc) / cnt_nc.clamp(min=1).unsqueeze(1)
    mean_c = (oh_c.T @ z_c) / cnt_c.clamp(min=1).unsqueeze(1)
    present = (cnt_nc > 0) & (cnt_c > 0)
    diff = F.normalize(mean_nc, dim=1) - F.normalize(mean_c, dim=1)
    per_class = diff.pow(2).sum(1) * present.to(diff.dtype)
    return per_class.sum() / present.sum().clamp(min=1)


def barrier_loss(
    template: nn.Module,
    anchor: dict[str, torch.Tensor],
    params: dict[str, torch.Tensor],
    t: float,
    x: torch.Tensor,
    y: torch.Tensor,
    margin: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(|margin − CE|, CE)`` of the point θ(t) = (1 − t)·anchor + t·params on batch ``(x, y)``.

    ``template`` (a module of the same architecture, in the mode wanted for
    BatchNorm) runs θ(t) through ``functional_call``; the graph reaches
    ``params`` with the factor t, nothing reaches the detached ``anchor``.
    """
    ce = F.cross_entropy(functional_call(template, paths.linear(anchor, params, t), (x,)), y)
    return (margin - ce).abs(), ce


def sample_t(generator: torch.Generator, t_range: tuple[float, float] = (0.25, 0.75),
             sampler: str = "clipped-normal") -> float:
    """One interpolation coefficient in ``t_range``.

    ``clipped-normal``: ``mid + half·clip(2z, −1, 1)``, z ~ N(0, 1) (the
    reference's draw for the default range); ``uniform``: U(t_range).
    """
    check_choice("t_sampler", sampler, _T_SAMPLERS)
    lo, hi = t_range
    if sampler == "clipped-normal":
        z = torch.randn((), generator=generator).item()
        return (lo + hi) / 2 + (hi - lo) / 2 * min(max(2.0 * z, -1.0), 1.0)
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


class CueStream:
    """Endless batches of indices into a set of ``n`` samples, reshuffled at every pass.

    A batch that crosses the end of a pass is completed from the next one.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.order = torch.randperm(n, generator=generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need > 0:
            if self.pos == self.n:
                self.order, self.pos = torch.randperm(self.n, generator=self.generator), 0
            take = min(need, self.n - self.pos)
            parts.append(self.order[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(parts)


def _method_options(method: str, given: dict[str, Any]) -> dict[str, Any]:
    if method in ("llrt", "lpft"):
        defaults = dict(_LLRT_DEFAULTS)
    elif method.startswith("cbft"):
        defaults = dict(_CBFT_DEFAULTS)
    else:
        defaults = {}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: not an option of method {method!r}; its options are {sorted(defaults) or 'none'}"
        )
    if method == "cbft-no-invariance" and given.get("lam", 0) != 0:
        raise ConfigError("lam: method 'cbft-no-invariance' fixes lam=0; use method='cbft' to set lam")
    opts = {**defaults, **given}
    if method == "cbft-no-invariance":
        opts["lam"] = 0.0
    if method in ("llrt", "lpft"):
        check_int("head_steps", opts["head_steps"], minimum=1)
        check_number("head_weight_decay", opts["head_weight_decay"], minimum=0.0)
        check_choice("head_init", opts["head_init"], ("fresh", "warm"))
    if method.startswith("cbft"):
        check_number("margin", opts["margin"], minimum=0.0)
        check_number("lam", opts["lam"], minimum=0.0)
        check_int("warmup_epochs", opts["warmup_epochs"], minimum=0)
        t_range = opts["t_range"]
        try:
            lo, hi = (float(v) for v in t_range)
        except (TypeError, ValueError):
            raise ConfigError(f"t_range must be a pair (lo, hi) with 0 <= lo <= hi <= 1, got {t_range!r}") from None
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(f"t_range must be a pair (lo, hi) with 0 <= lo <= hi <= 1, got {t_range!r}")
        opts["t_range"] = (lo, hi)
        check_choice("t_sampler", opts["t_sampler"], _T_SAMPLERS)
    return opts


def _check_sets(method: str, model: nn.Module, clean: ImageSet, cue: ImageSet | None) -> None:
    if not isinstance(clean, ImageSet) or len(clean) == 0:
        raise ConfigError("clean must be a non-empty ImageSet (the clean fine-tuning set D_nc)")
    out = getattr(getattr(model, "head", None), "out_features", None)
    if out is None or not callable(getattr(model, "features", None)):
        raise ConfigError("model must have .features(x) and a linear .head; build it with cbft_core.kernels.models.build")
    if out != clean.num_classes:
        raise ConfigError(f"clean has {clean.num_classes} classes but the model's head has {out} outputs")
    if method.startswith("cbft"):
        if cue is None:
            raise ConfigError(f"cue: method {method!r} needs the cue data D_c; pass cue=<ImageSet>")
        if not isinstance(cue, ImageSet) or len(cue) == 0:
            raise ConfigError("cue must be a non-empty ImageSet (the cue data D_c)")
        if cue.num_classes != clean.num_classes or cue.shape != clean.shape:
            raise ConfigError(
                f"cue must match clean: got {cue.num_classes} classes, images {cue.shape} vs "
                f"{clean.num_classes} classes, images {clean.shape}"
            )


def run(
    method: str,
    model: nn.Module,
    clean: ImageSet,
    cue: ImageSet | None = None,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    seed: int = 0,
    progress: bool = True,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
    return_history: bool = False,
    **method_config: Any,
) -> nn.Module | tuple[nn.Module, dict[str, Any]]:
    """Fine-tune a copy of ``model`` with ``method`` (one of :data:`METHODS`); return it in eval mode.

    ``clean`` is the clean set D_nc; ``cue`` the cue data D_c (needed by the
    ``cbft`` methods, ignored by the others). ``method_config``: for
    ``llrt``/``lpft`` ``head_steps`` (200), ``head_weight_decay`` (1e-4),
    ``head_init`` (``"fresh"``/``"warm"``); for ``cbft*`` ``margin`` (1.0),
    ``lam`` (1.0), ``warmup_epochs`` (1), ``t_range`` ((0.25, 0.75)),
    ``t_sampler`` (``"clipped-normal"``/``"uniform"``), ``record_indices``
    (False; store each step's clean/cue sample indices in the history).
    ``max_batches`` caps the steps per epoch (smoke tests). With
    ``return_history`` returns ``(model, history)`` with per-epoch losses.
    """
    check_choice("method", method, METHODS)
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    if max_batches is not None:
        check_int("max_batches", max_batches, minimum=1)
    check_int("seed", seed)
    sgd = SGDConfig(lr=lr, momentum=momentum, weight_decay=weight_decay, schedule="cosine")
    _check_sets(method, model, clean, cue)
    opts = _method_options(method, dict(method_config))

    tuned = copy.deepcopy(model)
    if device is not None:
        tuned.to(device)
    history: dict[str, Any] = {"method": method}
    loop = dict(batch_size=batch_size, seed=seed, progress=progress, max_batches=max_batches)
    if method in ("llrt", "lpft"):
        history["llrt"] = _llrt(tuned, clean, seed=seed, **opts)
    if method in ("ft", "lpft"):
        _, history["ft"] = train.fit(tuned, clean, epochs=epochs, desc=method, return_history=True,
                                     **dataclasses.asdict(sgd), **loop)
    if method.startswith("cbft"):
        history.update(_cbft(tuned, clean, cue, method=method, epochs=epochs, sgd=sgd,  # type: ignore[arg-type]
                             barrier=method != "cbft-no-barrier", **loop, **opts))
    tuned.eval()
    return (tuned, history) if return_history else tuned


def _llrt(model: nn.Module, clean: ImageSet, *, seed: int, head_steps: int, head_weight_decay: float,
          head_init: str) -> dict[str, float]:
    """Refit ``model.head`` in place on the clean set's features, computed once in eval mode."""
    head = model.head
    feats = train.features(model, clean).to(head.weight.device, torch.float64)
    labels = clean.labels.to(head.weight.device)
    if head_init == "fresh":  # PyTorch's default nn.Linear initialisation, from a seeded generator
        g = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(head.in_features)
        weight = torch.empty(head.weight.shape, dtype=torch.float64).uniform_(-bound, bound, generator=g)
        bias = torch.empty(head.bias.shape, dtype=torch.float64).uniform_(-bound, bound, generator=g)
        weight, bias = weight.to(feats.device), bias.to(feats.device)
    else:
        weight = head.weight.detach().to(torch.float64).clone()
        bias = head.bias.detach().to(torch.float64).clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=head_steps, history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(feats @ weight.T + bias, labels) + 0.5 * head_weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(objective)
    with torch.no_grad():
        logits = feats @ weight.T + bias
        loss = F.cross_entropy(logits, labels)
        train.check_finite(loss, desc="llrt", epoch=1, step=head_steps, what="head loss")
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return {"head_loss": float(loss), "head_acc": float((logits.argmax(1) == labels).double().mean())}


def _cbft(
    model: nn.Module,
    clean: ImageSet,
    cue: ImageSet,
    *,
    method: str,
    epochs: int,
    sgd: SGDConfig,
    batch_size: int,
    seed: int,
    progress: bool,
    max_batches: int | None,
    barrier: bool,
    margin: float,
    lam: float,
    warmup_epochs: int,
    t_range: tuple[float, float],
    t_sampler: str,
    record_indices: bool,
) -> dict[str, Any]:
    """Train ``model`` (θ, initialised at θc) in place with the two CBFT steps; return the history.

    The learning rate is ``sgd.lr`` during warm-up, then ``sgd``'s cosine over the remaining
    steps (one scheduler step per batch). The model's train/eval modes are restored at the end.
    """
    dev = train.model_device(model)
    num_classes = model.head.out_features
    params = dict(model.named_parameters())
    anchor = {k: p.detach().clone() for k, p in params.items()}  # θc, frozen
    template = copy.deepcopy(model).train().requires_grad_(False)  # runs θ(t); its own BN buffers absorb updates

    seeds = torch.randint(0, 2**62, (3,), generator=torch.Generator().manual_seed(seed)).tolist()
    g_clean, g_cue, g_t = (torch.Generator().manual_seed(s) for s in seeds)
    cue_stream = CueStream(len(cue), batch_size, g_cue)
    steps = math.ceil(len(clean) / batch_size)
    if max_batches is not None:
        steps = min(steps, max_batches)
    opt, sched = sgd.make(model.parameters(), max(epochs - warmup_epochs, 0) * steps, steps)

    keys = ("barrier_loss", "barrier_ce", "clean_ce", "invariance", "clean_acc", "lr")
    hist: dict[str, Any] = {k: [] for k in keys}
    hist["t"] = []
    if record_indices:
        hist["clean_index"], hist["cue_index"] = [], []
    modes = {m: m.training for m in model.modules()}
    model.train()
    bar = progress_bar(range(epochs), desc=method, show=progress)
    try:
        for epoch in bar:
            warm = epoch < warmup_epochs
            sums = torch.zeros(5, dtype=torch.float64)
            n_seen = 0
            order = torch.randperm(len(clean), generator=g_clean)
            for i in range(steps):
                idx_nc, idx_c = order[i * batch_size : (i + 1) * batch_size], cue_stream.next()
                if record_indices:
                    hist["clean_index"].append(idx_nc)
                    hist["cue_index"].append(idx_c)
                x_nc, y_nc = normalize(clean.images[idx_nc]).to(dev), clean.labels[idx_nc].to(dev)
                x_c, y_c = normalize(cue.images[idx_c]).to(dev), cue.labels[idx_c].to(dev)
                cur_lr = opt.param_groups[0]["lr"]

                if barrier:  # step 1: push the path's midpoints off low cue loss
                    t = sample_t(g_t, t_range, t_sampler)
                    hist["t"].append(t)
                    loss_b, ce_t = barrier_loss(template, anchor, params, t, x_c, y_c, margin)
                    train.check_finite(loss_b, desc=method, epoch=epoch + 1, step=i + 1, what="barrier loss")
                    opt.zero_grad(set_to_none=True)
                    loss_b.backward()
                    opt.step()
                    sums[0] += loss_b.item()
                    sums[1] += ce_t.item()

                # step 2: clean cross-entropy (+ invariance between clean and cue features)
                z_nc = model.features(x_nc)
                logits = model.head(z_nc)
                ce = F.cross_entropy(logits, y_nc)
                loss = ce
                if not warm and lam > 0:
                    inv = invariance_loss(z_nc, y_nc, model.features(x_c), y_c, num_classes)
                    loss = ce + lam * inv
                    sums[3] += inv.item()
                train.check_finite(loss, desc=method, epoch=epoch + 1, step=i + 1, what="clean loss")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if not warm:  # the learning rate is held during warm-up
                    sched.step()
                sums[2] += ce.item()
                sums[4] += (logits.detach().argmax(1) == y_nc).sum().item()
                n_seen += len(y_nc)
            means = (sums[:4] / steps).tolist() + [float(sums[4]) / n_seen]
            for k, v in zip(keys, means + [cur_lr]):
                hist[k].append(v)
            if not barrier:
                hist["barrier_loss"][-1] = hist["barrier_ce"][-1] = float("nan")
            if warm or lam == 0:
                hist["invariance"][-1] = float("nan")
            bar.set_postfix(ce=f"{means[2]:.3f}", acc=f"{means[4]:.3f}", barrier=f"{means[0]:.3f}")
    finally:
        bar.close()
        for m, mode in modes.items():
            m.training = mode
    return hist
