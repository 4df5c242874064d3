"""The study's experiments as cached functions of (preset, seed): what chapters and the pipeline share.

Pairs of models are named ``"<a>-<b>"``:

- ``cue-nocue``: a cue-reliant child (cue on ``cfg.proportion`` of the data)
  and a cue-free child of the same parent — different mechanisms;
- ``cue100-nocue``: the same with the cue on every training image;
- ``nocue-nocue`` and ``cue-cue``: two children with equal data and different
  data order — same-mechanism controls.

Every result is cached (models as checkpoints, measurements as JSON) under
a key that includes the preset's relevant settings, so a chapter that asks
again gets the stored numbers.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..kernels import alignment, cbft, connectivity, data, finetune, landscape, paths, train
from ..kernels.optim import SGDConfig
from ..kernels.data.imageset import ImageSet
from ..kernels.seeding import role_seed
from . import cache, zoo
from .presets import Preset

__all__ = [
    "PAIRS",
    "SCRATCH_PAIRS",
    "scratch_models",
    "scratch_midpoint",
    "pair_grid",
    "cache_key",
    "FT_METHODS",
    "SUMMARY_PATH_VIEWS",
    "pair_models",
    "path_result",
    "quadratic_summary",
    "midpoint",
    "midpoint_key",
    "clean_subset",
    "cue_subset",
    "finetuned",
    "finetune_history",
    "view_accuracies",
    "child_accuracies",
    "finetune_summary",
    "path_key",
    "finetuned_key",
    "child_views_key",
    "summary_key",
]

# pair name → ((proportion of the first child, branch), (proportion of the second, branch));
# ``None`` stands for the preset's cue proportion.
PAIRS: dict[str, tuple[tuple[float | None, int], tuple[float | None, int]]] = {
    "cue-nocue": ((None, 0), (0.0, 0)),
    "cue100-nocue": ((1.0, 0), (0.0, 0)),
    "nocue-nocue": ((0.0, 0), (0.0, 1)),
    "cue-cue": ((None, 0), (None, 1)),
}

# views on which finetune_summary evaluates the path back to the cue model
SUMMARY_PATH_VIEWS: tuple[str, ...] = ("cue", "rand-img")

FT_METHODS: tuple[str, ...] = finetune.METHODS + cbft.METHODS  # every fine-tuning method the kernels offer


def cache_key(cfg: Preset, **extra: Any) -> dict[str, Any]:
    """The cache key of a measurement under ``cfg``: every setting that can change it, plus ``extra``."""
    settings = cfg.as_dict()
    for unrelated in ("name", "seeds"):
        settings.pop(unrelated, None)
    return {**settings, **extra}


def _proportion(cfg: Preset, value: float | None) -> float:
    return cfg.proportion if value is None else value


def pair_models(cfg: Preset, seed: int, pair: str, cue: str = "box",
                progress: bool = True) -> tuple[nn.Module, nn.Module]:
    """The two trained children of ``pair`` for ``seed`` (trained on demand, cached)."""
    if pair not in PAIRS:
        raise ConfigError(f"pair: unknown pair {pair!r}; choose one of {list(PAIRS)}")
    (pa, ba), (pb, bb) = PAIRS[pair]
    model_a = zoo.child(cfg, seed, cue, _proportion(cfg, pa), ba, progress=progress)
    model_b = zoo.child(cfg, seed, cue, _proportion(cfg, pb), bb, progress=progress)
    return model_a, model_b


def _path_from_dict(stored: dict[str, Any]) -> paths.PathResult:
    return paths.PathResult.from_dict(stored)


def bn_data(cfg: Preset, cue: str = "box") -> ImageSet:
    """The training images on which BatchNorm statistics are re-estimated along every path: clean ones."""
    return zoo.train_set(cfg, cue, 0.0)


def _ts(cfg: Preset) -> np.ndarray:
    return np.linspace(0.0, 1.0, cfg.path_points)


def path_result(cfg: Preset, seed: int, pair: str, cue: str = "box", curve: str = "linear",
                progress: bool = True) -> paths.PathResult:
    """Loss and accuracy on the four counterfactual test views along the path between ``pair``'s models.

    ``curve="linear"`` (``cfg.path_points`` points) or ``"bezier"`` (through the
    trained midpoint of :func:`midpoint`, on ``cfg.switch_points`` points: the
    finer grid on which the mechanism switch is measured).
    """
    if curve not in ("linear", "bezier"):
        raise ConfigError(f"curve must be 'linear' or 'bezier', got {curve!r}")

    def compute() -> dict[str, Any]:
        model_a, model_b = pair_models(cfg, seed, pair, cue, progress)
        mid = midpoint(cfg, seed, pair, cue, progress) if curve == "bezier" else None
        ts = _ts(cfg) if curve == "linear" else np.linspace(0.0, 1.0, cfg.switch_points)
        result = paths.evaluate_path(model_a, model_b, zoo.test_views(cfg, cue), ts, bn_data(cfg, cue),
                                     midpoint=mid, bn_images=cfg.bn_images, bn_average=cfg.bn_average,
                                     batch_size=cfg.eval_batch_size, progress=progress)
        return result.to_dict()

    return _path_from_dict(cache.cached_json("path", path_key(cfg, seed, pair, cue, curve), compute))


def path_key(cfg: Preset, seed: int, pair: str, cue: str = "box", curve: str = "linear") -> dict[str, Any]:
    """The cache key (kind ``"path"``) of :func:`path_result`."""
    return cache_key(cfg, seed=seed, pair=pair, cue=cue, curve=curve)


def quadratic_summary(cfg: Preset, seed: int, pair: str = "cue-nocue", cue: str = "box",
                      progress: bool = True) -> dict[str, Any]:
    """The quadratic path of ``pair`` against its linear path: cue-view loss barriers and the mechanism switch.

    ``switch_width``: the width of the t interval in which rand-img accuracy
    moves from 10 % to 90 % of its total change along the quadratic path
    (:func:`cbft_core.kernels.connectivity.transition_width`).
    """
    linear = path_result(cfg, seed, pair, cue, "linear", progress)
    quad = path_result(cfg, seed, pair, cue, "bezier", progress)
    return {
        "barrier": connectivity.barrier(quad.loss["cue"], quad.ts)[0],
        "linear_barrier": connectivity.barrier(linear.loss["cue"], linear.ts)[0],
        "switch_width": connectivity.transition_width(quad.acc["rand-img"], quad.ts),
    }


def midpoint(cfg: Preset, seed: int, pair: str, cue: str = "box",
             progress: bool = True) -> dict[str, torch.Tensor]:
    """The trained Bezier midpoint between ``pair``'s models (cached).

    As the authors train it: from a freshly initialised network, on the
    training data with the cue on every image (both endpoints fit it — one
    through the cue, one through the shapes — so a low-loss curve on it says
    nothing yet about which mechanism the points along it use; the
    counterfactual views measure that).
    """
    def compute() -> dict[str, torch.Tensor]:
        model_a, model_b = pair_models(cfg, seed, pair, cue, progress)
        start = zoo.build_model(cfg, cue, seed=role_seed("midpoint-init", seed=seed, pair=pair, cue=cue))
        return connectivity.train_midpoint(
            model_a, model_b, zoo.train_set(cfg, cue, 1.0), start.state_dict(), midpoint_sgd(cfg),
            epochs=cfg.midpoint_epochs, batch_size=cfg.batch_size,
            seed=role_seed("midpoint", seed=seed, pair=pair, cue=cue), progress=progress)

    return cache.cached("midpoint", midpoint_key(cfg, seed, pair, cue), compute)


def midpoint_sgd(cfg: Preset) -> SGDConfig:
    """The midpoint's SGD settings: the authors' step decay (×0.1 every ``midpoint_step_every`` epochs)."""
    return SGDConfig(lr=cfg.midpoint_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, schedule="step",
                     step_every=cfg.midpoint_step_every)


def midpoint_key(cfg: Preset, seed: int, pair: str, cue: str = "box") -> dict[str, Any]:
    """The cache key (kind ``"midpoint"``) of :func:`midpoint`."""
    return cache_key(cfg, seed=seed, pair=pair, cue=cue, what="midpoint")


def clean_subset(cfg: Preset, seed: int, n_clean: int | None = None, cue: str = "box") -> ImageSet:
    """``n_clean`` cue-free training images drawn uniformly with replacement (the authors' ``np.random.randint``)."""
    n = cfg.n_clean if n_clean is None else n_clean
    clean = zoo.train_set(cfg, cue, 0.0)
    if not 0 < n <= len(clean):
        raise ConfigError(f"n_clean must be in [1, {len(clean)}], got {n}")
    g = torch.Generator().manual_seed(role_seed("clean-subset", seed=seed, cue=cue, n=n))
    return clean.subset(torch.randint(0, len(clean), (n,), generator=g))


def cue_subset(cfg: Preset, seed: int, cue: str = "box") -> ImageSet:
    """``cfg.n_cue`` images of the cue training data D_c (cue on ``cfg.proportion`` of each class), drawn
    uniformly with replacement (the authors' ``np.random.randint``)."""
    cued = zoo.train_set(cfg, cue, cfg.proportion)
    n = min(cfg.n_cue, len(cued))
    g = torch.Generator().manual_seed(role_seed("cue-subset", seed=seed, cue=cue, n=n))
    return cued.subset(torch.randint(0, len(cued), (n,), generator=g))




def finetuned_key(cfg: Preset, seed: int, method: str, n: int, cue: str) -> dict[str, Any]:
    """The cache key (kind ``"finetuned"``) of :func:`finetuned` with ``n`` clean images."""
    return cache_key(cfg, seed=seed, method=method, n_clean=n, cue=cue, what="finetuned")


def finetuned(cfg: Preset, seed: int, method: str, n_clean: int | None = None, cue: str = "box",
              progress: bool = True) -> nn.Module:
    """The cue-reliant child of ``seed`` fine-tuned with ``method`` on ``n_clean`` clean images (cached).

    Training also stores the per-epoch history, read by :func:`finetune_history`.
    """
    if method not in FT_METHODS:
        raise ConfigError(f"method: unknown fine-tuning method {method!r}; choose one of {list(FT_METHODS)}")
    n = cfg.n_clean if n_clean is None else n_clean
    key = finetuned_key(cfg, seed, method, n, cue)

    def compute() -> dict[str, torch.Tensor]:
        start = zoo.child(cfg, seed, cue, cfg.proportion, 0, progress=progress)  # loaded only on a cache miss
        common = dict(batch_size=cfg.ft_batch_size, seed=role_seed("finetune", seed=seed, cue=cue),
                      progress=progress, max_batches=cfg.max_batches)
        if method in cbft.METHODS:
            sgd = SGDConfig(lr=cfg.cbft_lr, momentum=cfg.momentum, weight_decay=cfg.ft_weight_decay)
            tuned, history = cbft.run(method, start, clean_subset(cfg, seed, n, cue), cue_subset(cfg, seed, cue),
                                      sgd, epochs=cfg.cbft_epochs, margin=cfg.cbft_margin, lam=cfg.cbft_lambda,
                                      warmup_epochs=cfg.cbft_warmup_epochs, **common)
        else:
            sgd = SGDConfig(lr=cfg.ft_lr, momentum=cfg.momentum, weight_decay=cfg.ft_weight_decay)
            tuned, history = finetune.run(method, start, clean_subset(cfg, seed, n, cue), sgd,
                                          epochs=cfg.ft_epochs, **common)
        cache.save_json(cache.entry_path("finetune-history", key, ".json"), history)
        return {k: v.detach().cpu() for k, v in tuned.state_dict().items()}

    model = zoo.build_model(cfg, cue)
    model.load_state_dict(cache.cached("finetuned", key, compute))
    return model.to(zoo.resolve_device(cfg)).eval()


def finetune_history(cfg: Preset, seed: int, method: str, n_clean: int | None = None, cue: str = "box",
                     progress: bool = True) -> dict[str, Any]:
    """The per-epoch training history of :func:`finetuned` (its losses, accuracy, learning rate).

    Stored when the model was trained; if only the model is in the cache,
    the model is trained again (deterministically) to recover it.
    """
    n = cfg.n_clean if n_clean is None else n_clean
    key = finetuned_key(cfg, seed, method, n, cue)
    path = cache.entry_path("finetune-history", key, ".json")
    hit, history = cache.lookup(path, cache.load_json)  # a corrupt history is discarded like any entry
    if hit:
        return history
    finetuned(cfg, seed, method, n, cue, progress)
    hit, history = cache.lookup(path, cache.load_json)
    if not hit:  # the model was cached without its history: train it again
        cache.entry_path("finetuned", key, ".pt").unlink(missing_ok=True)
        finetuned(cfg, seed, method, n, cue, progress)
        history = cache.load_json(path)
    return history


def view_accuracies(model: nn.Module, views: dict[str, ImageSet], batch_size: int = 1000) -> dict[str, float]:
    """Accuracy of ``model`` on each counterfactual view."""
    return {name: train.evaluate(model, view, batch_size)["acc"] for name, view in views.items()}


def child_accuracies(cfg: Preset, seed: int, proportion: float | None = None, branch: int = 0,
                     cue: str = "box", progress: bool = True) -> dict[str, float]:
    """Accuracy on each counterfactual test view of the child with cue ``proportion`` (None → the preset's)."""
    p = _proportion(cfg, proportion)

    def compute() -> dict[str, float]:
        model = zoo.child(cfg, seed, cue, p, branch, progress=progress)
        return view_accuracies(model, zoo.test_views(cfg, cue), cfg.eval_batch_size)

    return cache.cached_json("child-views", child_views_key(cfg, seed, p, branch, cue), compute)


def child_views_key(cfg: Preset, seed: int, proportion: float, branch: int = 0, cue: str = "box") -> dict[str, Any]:
    """The cache key (kind ``"child-views"``) of :func:`child_accuracies` (``proportion`` resolved)."""
    return cache_key(cfg, seed=seed, proportion=proportion, branch=branch, cue=cue, what="child-views")


def finetune_summary(cfg: Preset, seed: int, method: str, n_clean: int | None = None, cue: str = "box",
                     progress: bool = True) -> dict[str, Any]:
    """View accuracies of the fine-tuned model, and the path from it back to the cue model.

    ``barrier_to_cue``: Entezari loss barrier on the cue test view along the
    linear path from the original cue-reliant model (t = 0) to the fine-tuned
    one (t = 1); ``midpoint_loss_to_cue``: the loss at t = 0.5 minus the
    chord's value there (robust where the curve rises monotonically).
    ``path`` holds the curve on :data:`SUMMARY_PATH_VIEWS` only (the cue
    loss and the mechanism read-out, rand-img accuracy): half the cost of
    all four views, and the table's view accuracies come from the model itself.
    """
    n = cfg.n_clean if n_clean is None else n_clean

    def compute() -> dict[str, Any]:
        tuned = finetuned(cfg, seed, method, n, cue, progress)
        original = zoo.child(cfg, seed, cue, cfg.proportion, 0, progress=progress)
        views = zoo.test_views(cfg, cue)
        on_path = {name: views[name] for name in SUMMARY_PATH_VIEWS}
        result = paths.evaluate_path(original, tuned, on_path, _ts(cfg), bn_data(cfg, cue),
                                     bn_images=cfg.bn_images, bn_average=cfg.bn_average,
                                     batch_size=cfg.eval_batch_size, progress=progress)
        height, t_max = connectivity.barrier(result.loss["cue"], result.ts)
        mid = int(np.argmin(np.abs(result.ts - 0.5)))
        chord = (1 - result.ts[mid]) * result.loss["cue"][0] + result.ts[mid] * result.loss["cue"][-1]
        return {
            "views": view_accuracies(tuned, views, cfg.eval_batch_size),
            "barrier_to_cue": height,
            "barrier_t": t_max,
            "midpoint_loss_to_cue": float(result.loss["cue"][mid] - chord),
            "path": result.to_dict(),
        }

    return cache.cached_json("finetune-summary", summary_key(cfg, seed, method, n, cue), compute)


def summary_key(cfg: Preset, seed: int, method: str, n: int, cue: str = "box") -> dict[str, Any]:
    """The cache key (kind ``"finetune-summary"``) of :func:`finetune_summary` with ``n`` clean images."""
    return cache_key(cfg, seed=seed, method=method, n_clean=n, cue=cue, what="finetune-summary")


# --- loss landscapes between pairs of the zoo (the explorer's grids) ------------------------------

def scratch_models(cfg: Preset, seed: int, cue: str = "box", proportion: float = 0.0,
                   progress: bool = True) -> tuple[nn.Module, nn.Module]:
    """Two models trained from scratch on the same data from different initialisations (replicas 0 and 1 of ``seed``)."""
    return (zoo.scratch(cfg, seed, cue, proportion, replica=0, progress=progress),
            zoo.scratch(cfg, seed, cue, proportion, replica=1, progress=progress))


def scratch_midpoint(cfg: Preset, seed: int, cue: str = "box", proportion: float = 0.0,
                     progress: bool = True) -> dict[str, torch.Tensor]:
    """The trained Bezier midpoint between :func:`scratch_models` (trained on their own training data; cached)."""
    def compute() -> dict[str, torch.Tensor]:
        model_a, model_b = scratch_models(cfg, seed, cue, proportion, progress)
        start = zoo.build_model(cfg, cue, seed=role_seed("midpoint-scratch-init", seed=seed, cue=cue,
                                                         proportion=proportion))
        return connectivity.train_midpoint(
            model_a, model_b, zoo.train_set(cfg, cue, proportion), start.state_dict(), midpoint_sgd(cfg),
            epochs=cfg.midpoint_epochs, batch_size=cfg.batch_size,
            seed=role_seed("midpoint-scratch", seed=seed, cue=cue, proportion=proportion), progress=progress)

    key = cache_key(cfg, seed=seed, cue=cue, proportion=proportion, what="scratch-midpoint")
    return cache.cached("midpoint-scratch", key, compute)


SCRATCH_PAIRS: tuple[str, ...] = ("scratch", "scratch-aligned")


def pair_grid(cfg: Preset, pair: str, seed: int, bends: Sequence[float], ts: Sequence[float], *,
              view: str = "clean", n_samples: int = 4, bn: str = "reestimate", cue: str = "box",
              progress: bool = True) -> landscape.ExplorerGrid:
    """:func:`cbft_core.kernels.landscape.explore` for a pair of the zoo on the test ``view`` (cached).

    ``pair``: ``"scratch"`` (cue-free models from two initialisations,
    :func:`scratch_models`), ``"scratch-aligned"`` (the same, the second
    model's units permuted to match the first's by
    :func:`cbft_core.kernels.alignment.align` on ``cfg.bn_images`` clean training
    images; bend 0 only) or a name of :data:`cbft_core.PAIRS`
    (children of one parent; midpoint from :func:`midpoint`).
    The midpoint is trained only when a bend is not 0.
    """
    if pair not in SCRATCH_PAIRS and pair not in PAIRS:
        raise ConfigError(f"pair: unknown pair {pair!r}; choose one of "
                          f"{list(SCRATCH_PAIRS) + list(PAIRS)}")
    views = zoo.test_views(cfg, cue)
    if view not in views:
        raise ConfigError(f"view: unknown view {view!r}; choose one of {list(views)}")
    bend_arr, ts_arr = landscape.check_unit_values(bends, "bends"), landscape.check_unit_values(ts, "ts")
    bent = bool(np.any(bend_arr != 0))
    if pair == "scratch-aligned" and bent:
        raise ConfigError("bends: pair 'scratch-aligned' has no trained midpoint; use bends=[0.0]")

    def compute() -> dict[str, Any]:
        if pair in SCRATCH_PAIRS:
            model_a, model_b = scratch_models(cfg, seed, cue, 0.0, progress)
            if pair == "scratch-aligned":
                clean = zoo.train_set(cfg, cue, 0.0)
                model_b = alignment.align(model_b, model_a, clean.subset(slice(0, cfg.bn_images)),
                                          batch_size=cfg.eval_batch_size)
        else:
            model_a, model_b = pair_models(cfg, seed, pair, cue, progress)
        mid = None
        if bent:
            mid = (scratch_midpoint(cfg, seed, cue, 0.0, progress) if pair == "scratch"
                   else midpoint(cfg, seed, pair, cue, progress))
        data = views[view]
        return landscape.explore(model_a, model_b, data, bend_arr, ts_arr, midpoint=mid,
                       sample_index=landscape.sample_indices(data, n_samples), bn=bn,
                       bn_data=bn_data(cfg, cue), bn_images=cfg.bn_images,
                       batch_size=cfg.eval_batch_size, progress=progress).to_dict()

    key = cache_key(cfg, pair=pair, seed=seed, view=view, cue=cue, bends=bend_arr.tolist(),
                   ts=ts_arr.tolist(), n_samples=n_samples, bn=bn, what="explorer-grid")
    return landscape.ExplorerGrid.from_dict(cache.cached_json("explorer-grid", key, compute))
