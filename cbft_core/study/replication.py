"""What a replication costs and how its numbers read: the study's workload, method names, mean ± std.

The claims themselves are checked by :mod:`cbft_core.study.claims`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["NAIVE", "NAMES", "ABLATIONS", "mean_std", "fmt_pct", "fmt_loss", "check_results", "workload",
           "estimate_hours"]

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


def workload(cfg: Any) -> dict[str, float]:
    """Images processed by :func:`cbft_core.study.pipeline.run` for one seed and one cue under preset ``cfg``.

    ``train``: images through a forward pass with gradients (parent, the four
    children, every fine-tuning method; a CBFT step runs the barrier point on a
    full cue batch, the clean batch, and — after warm-up, when ``cbft_lambda``
    > 0 — the cue batch's features; the ablations drop one of those);
    ``eval``: images through a forward pass only: BatchNorm re-estimation and
    evaluation at every point of the 3 model paths (four views) and the 6
    fine-tuning paths (:data:`~cbft_core.study.experiments.SUMMARY_PATH_VIEWS`),
    one pass per view and point where the test set is its own, small enough BN
    data (:func:`cbft_core.kernels.paths.one_pass_logits`), two otherwise; the
    clean features of LLRT and LP-FT; and the view accuracies of the 2 children
    and the 6 fine-tuned models. ``max_batches`` caps every training epoch.
    """
    from ..kernels import paths
    from . import experiments  # the study's own constants, not a copy of them

    n_clean = min(cfg.n_clean, cfg.n_train)
    _, per_epoch = _epoch(cfg.n_train, cfg.batch_size, cfg.max_batches)
    train = (cfg.parent_epochs + 4 * cfg.child_epochs) * per_epoch
    steps, clean = _epoch(n_clean, cfg.ft_batch_size, cfg.max_batches)
    train += 2 * cfg.ft_epochs * clean                         # ft, lp-ft (llrt: features only)
    cue = steps * cfg.ft_batch_size                            # a cue batch is always full
    after_warm_up = max(cfg.cbft_epochs - cfg.cbft_warmup_epochs, 0) if cfg.cbft_lambda > 0 else 0
    train += cfg.cbft_epochs * (clean + cue) + after_warm_up * cue  # cbft
    train += cfg.cbft_epochs * clean + after_warm_up * cue           # cbft-no-barrier
    train += cfg.cbft_epochs * (clean + cue)                          # cbft-no-invariance
    n_test = cfg.n_test
    one_pass = paths.takes_one_pass(n_test, cfg.bn_images)
    per_view_point = n_test if one_pass else min(cfg.bn_images, n_test) + n_test
    views_on_paths = 3 * 4 + 6 * len(experiments.SUMMARY_PATH_VIEWS)
    evaluation = cfg.path_points * per_view_point * views_on_paths + 2 * n_clean + (2 + 6) * 4 * n_test
    return {"train": float(train), "eval": float(evaluation)}


def estimate_hours(cfg: Any, train_images_per_s: float, seeds: int | None = None,
                   eval_speedup: float = EVAL_SPEEDUP) -> float:
    """Hours for :func:`cbft_core.study.pipeline.run` at ``train_images_per_s`` (forward + backward throughput).

    A forward-only pass is counted ``eval_speedup`` times faster than a
    training pass; data loading and checkpointing are ignored.
    """
    if train_images_per_s <= 0:
        raise ConfigError(f"train_images_per_s must be positive, got {train_images_per_s}")
    load = workload(cfg)
    n = len(cfg.seeds) if seeds is None else seeds
    return n * (load["train"] + load["eval"] / eval_speedup) / train_images_per_s / 3600.0
