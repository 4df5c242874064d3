"""How a replication's numbers read: method names, mean ± std over seeds.

The claims themselves are checked by :mod:`cbft_core.study.claims`; what a
run costs comes from the step registry (:func:`cbft_core.study.plan.workload`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["NAIVE", "NAMES", "ABLATIONS", "mean_std", "fmt_pct", "fmt_loss", "check_results"]

NAIVE: tuple[str, ...] = ("ft", "llrt", "lpft")
NAMES: dict[str, str] = {"ft": "FT", "llrt": "LLRT", "lpft": "LP-FT", "cbft": "CBFT",
                         "cbft-no-barrier": "CBFT w/o barrier", "cbft-no-invariance": "CBFT w/o invariance"}
ABLATIONS: tuple[str, ...] = ("cbft-no-barrier", "cbft-no-invariance")


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
