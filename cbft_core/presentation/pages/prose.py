"""Words for measured numbers, shared by the chapters' generated sentences, and how they are glued."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...study.claims import Outcome
from ..record import glue

__all__ = ["plural", "mean", "pct", "points", "times", "x_chance", "compare", "change", "listing",
           "children_of", "verdict", "glue_md", "glue_numbers"]


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 epoch"``, ``"3 epochs"`` (``words``: an irregular plural)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def mean(values: float | Sequence[float]) -> float:
    """The mean over seeds (a single number is its own mean)."""
    return float(np.mean(np.asarray(values, dtype=float)))


def pct(x: float | Sequence[float]) -> str:
    """An accuracy or fraction (mean over seeds) as ``"42.1 %"``."""
    return f"{100 * mean(x):.1f} %"


def points(x: float) -> str:
    """A difference of accuracies as ``"+3.2 points"``."""
    return f"{100 * x:+.1f} points"


def times(a: float, b: float) -> str:
    """``a`` as a multiple of ``b`` with two significant digits (``"0.05×"``, ``"3.2×"``, ``"12×"``);
    ``"—"`` when ``b`` is not positive (no multiple to state)."""
    if b <= 0:
        return "—"
    r = a / b
    return f"{r:.0f}×" if abs(r) >= 10 else f"{r:.1f}×" if abs(r) >= 1 else f"{r:.2f}×"


def x_chance(x: float | Sequence[float], chance: float) -> str:
    """An accuracy (mean over seeds) as a multiple of chance, ``"4.6× chance"``."""
    return f"{mean(x) / chance:.1f}× chance"


def compare(a: float, b: float, tol: float = 0.0, words: tuple[str, str, str] = ("higher than", "lower than",
                                                                                    "the same as")) -> str:
    """How ``a`` compares with ``b``: the first word when higher, the second when lower, the third when
    the two are within ``tol``."""
    if abs(a - b) <= tol:
        return words[2]
    return words[0] if a > b else words[1]


def change(before: float, after: float, tolerance: float, up: str = "rises", down: str = "falls",
           same: str = "stays about the same") -> str:
    """The verb for a change from ``before`` to ``after``: ``same`` within ``tolerance``."""
    return same if abs(after - before) <= tolerance else up if after > before else down


def listing(items: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def children_of(parent_epochs: int) -> str:
    """Where the book's children start, in words: one initialisation, or a parent trained on clean images."""
    if parent_epochs == 0:
        return "children of one initialisation"
    return f"children of a parent trained {plural(parent_epochs, 'epoch')} on clean images"


def verdict(outcome: Outcome) -> str:
    """The registry's criterion for ``outcome``, its verdict and why, as one sentence (without the claim's
    statement, which the chapter words itself)."""
    text = f"{outcome.claim.criterion_text()}: {outcome.verdict}"
    return f"{text} ({outcome.detail})." if outcome.detail else f"{text}."


def glue_md(name: str, text: str) -> None:
    """Glue ``text`` as Markdown under ``name`` (pasted with ``{glue:md}``), not shown."""
    from IPython.display import Markdown

    glue(name, Markdown(text), display=False)


def glue_numbers(**values: float) -> None:
    """Glue each number under its name (pasted with ``{glue:text}``), not shown; NumPy scalars as plain
    Python numbers, whose text the glue roles and the regression check read back."""
    for name, value in values.items():
        glue(name, value if isinstance(value, int) else float(value), display=False)
