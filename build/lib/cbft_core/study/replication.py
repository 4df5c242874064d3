"""The paper's claims checked against a results.json of :func:`cbft_core.study.pipeline.run`.

``claims(results)`` returns one row per claim: what the paper reports, what
was measured here (mean ± std over the seeds), the criterion used, and
whether it holds. The criteria are fixed here, before looking at any run,
and are the same at every preset.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["NAIVE", "NAMES", "ABLATIONS", "mean_std", "fmt_pct", "fmt_loss", "check_results", "claims", "workload", "estimate_hours"]

NAIVE: tuple[str, ...] = ("ft", "llrt", "lpft")
NAMES: dict[str, str] = {"ft": "FT", "llrt": "LLRT", "lpft": "LP-FT", "cbft": "CBFT",
                         "cbft-no-barrier": "CBFT w/o barrier", "cbft-no-invariance": "CBFT w/o invariance"}
ABLATIONS: tuple[str, ...] = ("cbft-no-barrier", "cbft-no-invariance")
# thresholds of the criteria (fractions of accuracy, or loss units)
HIGH_RAND_IMG = 3.0     # cue-reliant: rand-img ≥ 3 × chance
LOW_RAND_IMG = 1.5      # cue-free:    rand-img ≤ 1.5 × chance
NEAR = 0.05             # "within 5 points"
CONNECTED = 0.1         # a barrier this close to the same-mechanism control counts as connected (loss)
BARRIER = 0.1           # a barrier at least this high counts as a barrier (loss)


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


def _mean(values: Sequence[float]) -> float:
    return mean_std(values)[0]


def _row(claim: str, paper: str, measured: str, criterion: str, holds: bool) -> dict[str, Any]:
    return {"claim": claim, "paper": paper, "measured": measured, "criterion": criterion, "holds": bool(holds)}


def check_results(results: dict[str, Any]) -> None:
    for key in ("chance", "models", "paths", "finetune"):
        if key not in results:
            raise ConfigError(f"results: missing {key!r}; pass the dict written to results.json by pipeline.run")


def claims(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per claim of the paper, with the measured mean ± std and whether it holds."""
    check_results(results)
    chance = float(results["chance"])
    ft, paths, mods = results["finetune"], results["paths"], results["models"]
    rows = []

    cue_rand, nocue_rand = mods["cue"]["rand_img"], mods["nocue"]["rand_img"]
    rows.append(_row(
        "The cue-trained model relies on the cue; the cue-free one does not",
        "premise of the synthetic setting (§3 of SCIENCE.md)",
        f"rand-img: cue model {fmt_pct(cue_rand)}, cue-free model {fmt_pct(nocue_rand)}",
        f"cue ≥ {HIGH_RAND_IMG:g}× chance, cue-free ≤ {LOW_RAND_IMG:g}× chance",
        _mean(cue_rand) >= HIGH_RAND_IMG * chance and _mean(nocue_rand) <= LOW_RAND_IMG * chance))

    diff = paths["cue-nocue"]["barrier"]
    controls = {p: paths[p]["barrier"] for p in ("nocue-nocue", "cue-cue")}
    top = max(_mean(v) for v in controls.values())
    rows.append(_row(
        "Models with different mechanisms are not linearly connected",
        "barrier between cue-reliant and cue-free models; none between same-mechanism models",
        f"cue-nocue {fmt_loss(diff)}; controls nocue-nocue {fmt_loss(controls['nocue-nocue'])}, "
        f"cue-cue {fmt_loss(controls['cue-cue'])}",
        f"cue-nocue ≥ {BARRIER:g} and ≥ 2 × the larger control",
        _mean(diff) >= BARRIER and _mean(diff) >= 2 * top))

    for m in NAIVE:
        rows.append(_row(
            f"{NAMES[m]} keeps the cue mechanism",
            "naive fine-tuning on clean data leaves rand-img accuracy far above chance",
            f"rand-img {fmt_pct(ft[m]['rand_img'])} (chance {100 * chance:.0f} %)",
            f"rand-img ≥ {HIGH_RAND_IMG:g}× chance",
            _mean(ft[m]["rand_img"]) >= HIGH_RAND_IMG * chance))

    control = paths["cue-cue"]["barrier"]
    rows.append(_row(
        "Naive FT stays linearly connected to the cue model",
        "no barrier on cue data between the fine-tuned and the original model",
        f"barrier to cue model {fmt_loss(ft['ft']['barrier_to_cue'])}; cue-cue control {fmt_loss(control)}",
        f"≤ control + {CONNECTED:g}",
        _mean(ft["ft"]["barrier_to_cue"]) <= max(_mean(control), 0.0) + CONNECTED))

    cb = ft["cbft"]
    rows.append(_row(
        "CBFT removes the cue mechanism",
        "rand-img accuracy drops to about chance",
        f"rand-img {fmt_pct(cb['rand_img'])} (chance {100 * chance:.0f} %)",
        f"rand-img ≤ {LOW_RAND_IMG:g}× chance",
        _mean(cb["rand_img"]) <= LOW_RAND_IMG * chance))
    rows.append(_row(
        "CBFT makes the model invariant to the cue",
        "rand-cue accuracy close to clean accuracy",
        f"rand-cue {fmt_pct(cb['rand_cue'])}, clean {fmt_pct(cb['clean'])}",
        f"|rand-cue − clean| ≤ {100 * NEAR:g} points",
        abs(_mean(cb["rand_cue"]) - _mean(cb["clean"])) <= NEAR))
    rows.append(_row(
        "CBFT costs little clean accuracy",
        "clean accuracy comparable to naive fine-tuning",
        f"clean: CBFT {fmt_pct(cb['clean'])}, FT {fmt_pct(ft['ft']['clean'])}",
        f"CBFT ≥ FT − {100 * NEAR:g} points",
        _mean(cb["clean"]) >= _mean(ft["ft"]["clean"]) - NEAR))
    rows.append(_row(
        "CBFT leaves the cue model's basin",
        "a loss barrier on cue data between the CBFT model and the original",
        f"barrier {fmt_loss(cb['barrier_to_cue'])}, midpoint − chord {fmt_loss(cb['midpoint_loss_to_cue'])} "
        f"(FT: {fmt_loss(ft['ft']['barrier_to_cue'])}, {fmt_loss(ft['ft']['midpoint_loss_to_cue'])})",
        f"barrier ≥ {BARRIER:g}",
        _mean(cb["barrier_to_cue"]) >= BARRIER))
    for m in ABLATIONS:
        rows.append(_row(
            f"Ablation {NAMES[m]}: the removed term matters",
            "CBFT combines both terms (this ablation is the book's own test of which term does the work)",
            f"rand-img {fmt_pct(ft[m]['rand_img'])} vs CBFT {fmt_pct(cb['rand_img'])}",
            f"rand-img ≥ CBFT's + {100 * NEAR:g} points",
            _mean(ft[m]["rand_img"]) >= _mean(cb["rand_img"]) + NEAR))
    return rows


def workload(cfg: Any) -> dict[str, float]:
    """Images processed by :func:`cbft_core.study.pipeline.run` for one seed and one cue under preset ``cfg``.

    ``train``: images through a forward + backward pass (parent, the four
    children, every fine-tuning method; a CBFT step costs three passes — barrier,
    clean, cue features — and an ablation two); ``eval``: images through a
    forward pass only: BatchNorm re-estimation and evaluation at every point
    of the 3 model paths (four views) and the 6 fine-tuning paths
    (:data:`~cbft_core.study.experiments.SUMMARY_PATH_VIEWS`), one pass per view and
    point where the test set is its own, small enough BN data
    (:func:`cbft_core.kernels.paths.one_pass_logits`), two otherwise; and the view
    accuracies of the 2 children and the 6 fine-tuned models.
    """
    from ..kernels import paths
    from . import experiments  # the study's own constants, not a copy of them

    n_clean = min(cfg.n_clean, cfg.n_train)
    train = cfg.parent_epochs * cfg.n_train + 4 * cfg.child_epochs * cfg.n_train
    train += 2 * cfg.ft_epochs * n_clean                      # ft, lp-ft (llrt: features only)
    train += (3 + 2 + 2) * cfg.cbft_epochs * n_clean           # cbft, and its two ablations
    n_test = cfg.n_test
    one_pass = paths.takes_one_pass(n_test, cfg.bn_images)
    per_view_point = n_test if one_pass else min(cfg.bn_images, n_test) + n_test
    views_on_paths = 3 * 4 + 6 * len(experiments.SUMMARY_PATH_VIEWS)
    evaluation = cfg.path_points * per_view_point * views_on_paths + 2 * n_clean + (2 + 6) * 4 * n_test
    return {"train": float(train), "eval": float(evaluation)}


def estimate_hours(cfg: Any, train_images_per_s: float, seeds: int | None = None, eval_speedup: float = 3.0) -> float:
    """Hours for :func:`cbft_core.study.pipeline.run` at ``train_images_per_s`` (forward + backward throughput).

    A forward-only pass is counted ``eval_speedup`` times faster than a
    training pass; data loading and checkpointing are ignored.
    """
    if train_images_per_s <= 0:
        raise ConfigError(f"train_images_per_s must be positive, got {train_images_per_s}")
    load = workload(cfg)
    n = len(cfg.seeds) if seeds is None else seeds
    return n * (load["train"] + load["eval"] / eval_speedup) / train_images_per_s / 3600.0
