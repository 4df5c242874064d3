"""What a replication costs and how its numbers read: the study's workload, method names, mean ± std.

The claims themselves are checked by :mod:`cbft_core.study.claims`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["NAIVE", "NAMES", "ABLATIONS", "mean_std", "fmt_pct", "fmt_loss", "check_results", "workload",
           "finetune_train_images", "estimate_hours"]

NAIVE: tuple[str, ...] = ("ft", "llrt", "lpft")
NAMES: dict[str, str] = {"ft": "FT", "llrt": "LLRT", "lpft": "LP-FT", "cbft": "CBFT",
                         "cbft-no-barrier": "CBFT w/o barrier", "cbft-no-invariance": "CBFT w/o invariance"}
ABLATIONS: tuple[str, ...] = ("cbft-no-barrier", "cbft-no-invariance")
EVAL_SPEEDUP = 3.0      # a forward-only pass counted this many times faster than a training pass


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation over seeds."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ConfigError("values: need at least one seed's value")
    return float(arr.mean()), float(arr.std())


def fmt_pct(values: Sequence[float]) -> str:
    """Accuracies as ``"42.1 ± 1.3 %"``."""
    m, s = mean_std(values)
    return f"{100 * m:.1f} ± {100 * s:.1f} %"


def fmt_loss(values: Sequence[float]) -> str:
    """Losses as ``"0.123 ± 0.045"``."""
    m, s = mean_std(values)
    return f"{m:.3f} ± {s:.3f}"


def check_results(results: dict[str, Any]) -> None:
    """ConfigError unless ``results`` has the top-level parts of a results.json."""
    for key in ("chance", "models", "paths", "finetune"):
        if key not in results:
            raise ConfigError(f"results: missing {key!r}; pass the dict written to results.json by pipeline.run")


def _epoch(n: int, batch_size: int, max_batches: int | None) -> tuple[int, int]:
    """(steps, images) of one shuffled pass over ``n`` images in batches (last one short), capped."""
    steps = math.ceil(n / batch_size)
    if max_batches is not None:
        steps = min(steps, max_batches)
    return steps, min(n, steps * batch_size)


def finetune_train_images(cfg: Any, method: str) -> int:
    """Images the fine-tuning ``method`` puts through the network with gradients under ``cfg`` (one seed).

    Per step of a shuffled, ``max_batches``-capped pass over the clean set: FT
    and LP-FT run the clean batch (LLRT fits its head on features: none); a
    CBFT step runs the barrier point on a full cue batch, the clean batch,
    and — after warm-up, when ``cbft_lambda`` > 0 — the cue batch's features;
    ``cbft-no-barrier`` drops the first, ``cbft-no-invariance`` the last.
    """
    n_clean = min(cfg.n_clean, cfg.n_train)
    steps, clean = _epoch(n_clean, cfg.ft_batch_size, cfg.max_batches)
    cue = steps * cfg.ft_batch_size                            # a cue batch is always full
    after_warm_up = max(cfg.cbft_epochs - cfg.cbft_warmup_epochs, 0) if cfg.cbft_lambda > 0 else 0
    images = {
        "ft": cfg.ft_epochs * clean,
        "llrt": 0,
        "lpft": cfg.ft_epochs * clean,
        "cbft": cfg.cbft_epochs * (clean + cue) + after_warm_up * cue,
        "cbft-no-barrier": cfg.cbft_epochs * clean + after_warm_up * cue,
        "cbft-no-invariance": cfg.cbft_epochs * (clean + cue),
    }
    if method not in images:
        raise ConfigError(f"method: unknown fine-tuning method {method!r}; choose one of {list(images)}")
    return images[method]


def workload(cfg: Any) -> dict[str, float]:
    """Images processed by :func:`cbft_core.study.pipeline.run` for one seed and one cue under preset ``cfg``.

    ``train``: images through a forward pass with gradients: the parent, each
    distinct child of :data:`~cbft_core.study.pipeline.PATH_PAIRS` (five), the
    quadratic midpoint between the children of
    :data:`~cbft_core.study.pipeline.QUADRATIC_PAIR` (``midpoint_epochs``
    epochs over the cue training data, full batches only:
    :func:`~cbft_core.kernels.connectivity.midpoint_batches`), and every
    fine-tuning method (:func:`finetune_train_images`). ``max_batches`` caps
    every epoch of the models and the fine-tuning, not the midpoint's.

    ``eval``: images through a forward pass only: BatchNorm re-estimation and
    evaluation at every point of the linear model paths (``path_points``
    points, four views), of the Bezier path through the midpoint
    (``switch_points`` points, four views) and of the 6 fine-tuning paths
    (:data:`~cbft_core.study.experiments.SUMMARY_PATH_VIEWS`), one pass per
    view and point where the test set is its own, small enough BN data
    (:func:`cbft_core.kernels.paths.one_pass_logits`), two otherwise; the
    clean features of LLRT and LP-FT; and the view accuracies of each distinct
    child of :data:`~cbft_core.study.pipeline.MODELS` (three) and of the 6
    fine-tuned models. An entry the run shares (a child, its view
    accuracies) counts once.
    """
    from ..kernels import connectivity, data, paths
    from . import experiments, pipeline  # the study's own constants, not a copy of them

    def prop(value: float | None) -> float:
        return cfg.proportion if value is None else value

    children = {(prop(p), branch) for pair in pipeline.PATH_PAIRS for p, branch in experiments.PAIRS[pair]}
    viewed = {prop(p) for p in pipeline.MODELS.values()}        # branch-0 children, keyed by proportion
    n_views = len(data.VIEWS)
    n_clean = min(cfg.n_clean, cfg.n_train)
    _, per_epoch = _epoch(cfg.n_train, cfg.batch_size, cfg.max_batches)
    train = (cfg.parent_epochs + len(children) * cfg.child_epochs) * per_epoch
    mid_steps, mid_batch = connectivity.midpoint_batches(cfg.n_train, cfg.batch_size)
    train += cfg.midpoint_epochs * mid_steps * mid_batch         # the midpoint of QUADRATIC_PAIR
    train += sum(finetune_train_images(cfg, method) for method in experiments.FT_METHODS)
    n_test = cfg.n_test
    one_pass = paths.takes_one_pass(n_test, cfg.bn_images)
    per_view_point = n_test if one_pass else min(cfg.bn_images, n_test) + n_test
    n_methods = len(experiments.FT_METHODS)
    view_points = (len(pipeline.PATH_PAIRS) * cfg.path_points * n_views   # linear model paths
                   + cfg.switch_points * n_views                           # the Bezier path
                   + n_methods * cfg.path_points * len(experiments.SUMMARY_PATH_VIEWS))
    evaluation = view_points * per_view_point + 2 * n_clean + (len(viewed) + n_methods) * n_views * n_test
    return {"train": float(train), "eval": float(evaluation)}


def estimate_hours(cfg: Any, train_images_per_s: float, seeds: int | None = None,
                   eval_speedup: float = EVAL_SPEEDUP) -> float:
    """Hours for :func:`cbft_core.study.pipeline.run` at ``train_images_per_s`` (forward + backward throughput).

    The images are those of :func:`workload` (per seed, times the number of
    seeds); a forward-only pass is counted ``eval_speedup`` times faster than
    a training pass; data loading and checkpointing are ignored.
    """
    if train_images_per_s <= 0:
        raise ConfigError(f"train_images_per_s must be positive, got {train_images_per_s}")
    load = workload(cfg)
    n = len(cfg.seeds) if seeds is None else seeds
    return n * (load["train"] + load["eval"] / eval_speedup) / train_images_per_s / 3600.0
