"""What every benchmark here times with: the best of several runs."""
from __future__ import annotations

import time
from typing import Any, Callable


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` (load from other processes only adds
    time, so the minimum is the closest to the uncontended cost), and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out
