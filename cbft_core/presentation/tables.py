"""Tables of the book: mean ± std cells and per-method rows from a results.json."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..study.replication import NAMES, check_results, fmt_loss, fmt_pct

__all__ = ["method_table", "to_markdown"]


def method_table(results: dict[str, Any], methods: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Per method: every view's accuracy and the two path measures, as mean ± std strings."""
    check_results(results)
    rows = []
    if methods is None:  # results.json is key-sorted: restore the book's order of methods
        known = [m for m in NAMES if m in results["finetune"]]
        methods = known + sorted(set(results["finetune"]) - set(known))
    for m in methods:
        r = results["finetune"][m]
        rows.append({"method": NAMES.get(m, m), "clean": fmt_pct(r["clean"]), "cue": fmt_pct(r["cue"]),
                     "rand-cue": fmt_pct(r["rand_cue"]), "rand-img": fmt_pct(r["rand_img"]),
                     "barrier to θc": fmt_loss(r["barrier_to_cue"]),
                     "midpoint − chord": fmt_loss(r["midpoint_loss_to_cue"])})
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return str(value).replace("|", "\\|")


def to_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                rename: Callable[[str], str] = str) -> str:
    """A Markdown table of ``rows`` (dicts), one line per row, columns in ``columns`` order."""
    if not rows:
        raise ConfigError("rows: nothing to tabulate")
    cols = list(columns or rows[0])
    lines = ["| " + " | ".join(rename(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
