"""What every benchmark here times with: the best of several runs, or ratios of interleaved windows.

On a shared machine other processes slow every measurement by an amount that
drifts over seconds. :func:`best_time` keeps the fastest of several calls;
:func:`interleaved` runs the variants in turn (A B C A B C …) so that each
round sees about the same load, and :func:`median_ratio` compares two
variants by the median of their per-round ratios. Every report prints
:func:`load_average` next to its numbers.

Under ``nice`` beside a process that keeps every core busy, this process gets
the cores only in scraps, so wall-clock windows vary several-fold from one
round to the next. :func:`interleaved` therefore also records the process's
CPU time per call: it leaves out the time our threads wait for a core (it
still counts OpenMP threads spinning for a descheduled peer, so it too
overstates the cost under load). On a quiet machine both agree.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable, Mapping


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` (load from other processes only adds
    time, so the minimum is the closest to the uncontended cost), and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def calibrate(fn: Callable[[], Any], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds`` of CPU time per thread (at least 1), after a warm-up call."""
    import torch

    fn()
    start = time.process_time()
    fn()
    once = max((time.process_time() - start) / torch.get_num_threads(), 1e-6)
    return max(1, round(seconds / once))


class Times(dict):
    """Wall-clock seconds per call, ``times[name][round]``; CPU seconds per call in ``times.cpu``."""

    def __init__(self, names: list[str]) -> None:
        super().__init__({name: [] for name in names})
        self.cpu: dict[str, list[float]] = {name: [] for name in names}


def interleaved(variants: Mapping[str, Callable[[], Any]], rounds: int,
                calls: Mapping[str, int] | None = None) -> Times:
    """Wall-clock (and, in ``.cpu``, process CPU) seconds per call of each variant in each of ``rounds``
    rounds, the variants run in turn. ``calls[name]`` calls make one timed window of that variant (1 by default).
    """
    times = Times(list(variants))
    for _ in range(rounds):
        for name, fn in variants.items():
            n = (calls or {}).get(name, 1)
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - start) / n)
            times.cpu[name].append((time.process_time() - start_cpu) / n)
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of ``numerator[i] / denominator[i]``."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))
