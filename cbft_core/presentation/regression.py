"""The book's numeric regression rule: re-executed glued numbers against the committed ones.

Numbers legitimately differ between machines (another CPU, another BLAS: a
barrier of 0.068 on one machine was 0.049 on another), so they are compared
within a tolerance, never exactly. For a glued number ``name`` with committed
value ``c`` and re-executed value ``r`` the check passes when

    |r − c| ≤ max(K_STD · s, floor(name))

where ``s`` is the spread over seeds of that number (the standard deviation
the chapter glues as ``name + STD_SUFFIX``, committed value; 0 when it glues
none) and ``floor(name)`` the absolute floor of :data:`FLOORS`: the first
pattern (a regular expression searched in the name) that matches decides. A
failure names the number and both values (:func:`compare`); a number glued
on one side only fails too.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

__all__ = ["K_STD", "STD_SUFFIX", "FLOORS", "DEFAULT_FLOOR", "tolerance", "compare"]

K_STD = 3.0
STD_SUFFIX = "_std"
# (pattern in the glued name, absolute floor); first match wins.
FLOORS: tuple[tuple[str, float], ...] = (
    (r"(^|_)(n|n_train|n_cue|n_large|proportion|chance)$", 0.0),  # counts and settings: exact
    (r"paper_(low|high)$", 0.0),                                  # workload estimates: exact arithmetic
    (r"(rand_img|rand_cue|clean|kept|acc|share)", 0.05),          # accuracies, fractions: 5 points
    (r"(barrier|entezari|frankle|mid|bn_)", 0.1),                 # loss barriers: the CONNECTED margin
)
DEFAULT_FLOOR = 0.1


def _floor(name: str) -> float:
    return next((floor for pattern, floor in FLOORS if re.search(pattern, name)), DEFAULT_FLOOR)


def tolerance(name: str, committed: Mapping[str, Any]) -> float:
    """The allowed |re-executed − committed| for ``name`` (see the module's rule)."""
    spread = committed.get(name + STD_SUFFIX, 0.0)
    spread = float(spread) if isinstance(spread, (int, float)) else 0.0
    return max(K_STD * spread, _floor(name))


def compare(committed: Mapping[str, Any], fresh: Mapping[str, Any], chapter: str = "") -> list[str]:
    """One line per glued number of ``committed`` that ``fresh`` misses or moves beyond its tolerance,
    and one per number ``fresh`` glues that ``committed`` lacks (the committed outputs are stale)."""
    where = f"{chapter}: " if chapter else ""
    problems = []
    for name, old in committed.items():
        if name not in fresh:
            problems.append(f"{where}{name} was glued in the committed outputs ({old!r}) but not re-executed")
            continue
        new = fresh[name]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new)):
            if new != old:
                problems.append(f"{where}{name}: committed {old!r}, re-executed {new!r}")
            continue
        tol = tolerance(name, committed)
        if not (math.isfinite(new) and abs(new - old) <= tol + 1e-12):
            problems.append(f"{where}{name}: committed {old:.4g}, re-executed {new:.4g} "
                            f"(|difference| {abs(new - old):.3g} > tolerance {tol:.3g})")
    problems += [f"{where}{name} is glued by the re-executed chapter ({new!r}) but not in the committed outputs: "
                 "refresh them" for name, new in fresh.items() if name not in committed]
    return problems


def glued(nbs: Iterable[Any]) -> dict[str, Any]:
    """Every glued number of the notebooks, by name."""
    from .record import glued_values

    return {name: value for nb in nbs for name, value in glued_values(nb)}
