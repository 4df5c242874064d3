"""Words for measured numbers, shared by the chapters' generated sentences."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["mean", "pct", "points", "times", "listing", "change"]


def mean(values: float | Sequence[float]) -> float:
    """The mean over seeds (a single number is its own mean)."""
    return float(np.mean(np.asarray(values, dtype=float)))


def pct(x: float | Sequence[float]) -> str:
    """An accuracy (mean over seeds) as ``"42.1 %"``."""
    return f"{100 * mean(x):.1f} %"


def points(x: float) -> str:
    """A difference of accuracies as ``"+3.2 points"``."""
    return f"{100 * x:+.1f} points"


def times(x: float | Sequence[float], chance: float) -> str:
    """An accuracy as a multiple of chance, ``"4.6× chance"``."""
    return f"{mean(x) / chance:.1f}× chance"


def listing(items: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def change(before: float, after: float, tolerance: float, up: str = "rises", down: str = "falls",
           same: str = "stays about the same") -> str:
    """The verb for a change from ``before`` to ``after``: ``same`` within ``tolerance``."""
    return same if abs(after - before) <= tolerance else up if after > before else down
