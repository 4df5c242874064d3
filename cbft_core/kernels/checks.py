"""Argument checks shared by every kernel: one ConfigError per bad value, naming the argument.

Each check returns the value it accepted (as ``int``/``float`` where it checks
a number), so a caller can write ``n = check_int("n", n, minimum=1)``.
``bool`` is never accepted as a number (``True`` is not a batch size).
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable

from ..errors import ConfigError

__all__ = ["check_int", "check_number", "check_choice", "describe_range"]


def describe_range(minimum: float | None, maximum: float | None, strict_minimum: bool = False) -> str:
    """Words for the range ``[minimum, maximum]`` (``(minimum, …`` when ``strict_minimum``)."""
    if minimum is None and maximum is None:
        return ""
    if maximum is None:
        return f"> {minimum:g}" if strict_minimum else f">= {minimum:g}"
    if minimum is None:
        return f"<= {maximum:g}"
    return f"in {'(' if strict_minimum else '['}{minimum:g}, {maximum:g}]"


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; else ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        bound = describe_range(minimum, maximum)
        raise ConfigError(f"{name} must be an int{' ' + bound if bound else ''}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{name} must be an int {describe_range(minimum, maximum)}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
                 strict_minimum: bool = False) -> float:
    """``value`` as a finite ``float`` in the range; ``strict_minimum`` excludes ``minimum`` itself."""
    bound = describe_range(minimum, maximum, strict_minimum)
    kind = f"a finite number{' ' + bound if bound else ''}"
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    low_ok = minimum is None or (value > minimum if strict_minimum else value >= minimum)
    if not low_ok or (maximum is not None and value > maximum):
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``; else ConfigError listing them."""
    options = list(choices)
    if not any(type(value) is type(c) and value == c for c in options):  # True is not 1
        raise ConfigError(f"{name}: unknown value {value!r}; choose one of {options}")
    return value
