"""Tables of the book: mean ± std cells, per-method rows from a results.json, and their display.

:func:`show` displays rows as a real table: the notebook output carries
``text/html`` (a ``<table>``, which the built book renders), ``text/markdown``
(for notebook viewers that prefer it) and ``text/plain`` (aligned columns).

Each HTML cell names its column in a ``data-label`` attribute (and the
``verdict`` column's cells carry the class ``cbft-verdict``): on a narrow
screen the book's stylesheet (``book/_static/cbft.css``) shows every row as a
stacked card of "column: value" lines, so no column — the verdict least of
all — hides behind a sideways scroll.
"""
from __future__ import annotations

import html
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..study.replication import NAMES, check_results, fmt_loss, fmt_pct

__all__ = ["Table", "method_table", "show", "to_html", "to_markdown", "to_text"]


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
    cols = _columns(rows, columns)
    lines = ["| " + " | ".join(rename(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _columns(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None) -> list[str]:
    if not rows:
        raise ConfigError("rows: nothing to tabulate")
    cols = list(columns or rows[0])
    missing = sorted({c for r in rows for c in cols if c not in r})
    if missing:
        raise ConfigError(f"columns {missing} are missing from some rows")
    return cols


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def to_text(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
            rename: Callable[[str], str] = str) -> str:
    """The rows as aligned plain-text columns (the fallback shown where no HTML is rendered)."""
    cols = _columns(rows, columns)
    cells = [[rename(c) for c in cols]] + [[_plain(r[c]) for c in cols] for r in rows]
    widths = [max(len(line[k]) for line in cells) for k in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_html(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
            rename: Callable[[str], str] = str) -> str:
    """The rows as an HTML ``<table class="cbft-table">``; every cell is escaped."""
    cols = _columns(rows, columns)

    def cell(value: Any) -> str:
        text = html.escape(_plain(value))
        return f"<strong>{text}</strong>" if value is False else text

    def td(column: str, value: Any) -> str:
        name = rename(column)
        verdict = ' class="cbft-verdict"' if name.strip().lower() == "verdict" else ""
        return f'<td data-label="{html.escape(name, quote=True)}"{verdict}>{cell(value)}</td>'

    head = "".join(f"<th>{html.escape(rename(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(td(c, r[c]) for c in cols) + "</tr>" for r in rows)
    return (f'<table class="cbft-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


class Table:
    """Rows shown as a table by IPython: HTML, Markdown and plain-text representations."""

    def __init__(self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                 rename: Callable[[str], str] = str) -> None:
        self.columns = _columns(rows, columns)
        self.rows = [dict(r) for r in rows]
        self.rename = rename

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": to_html(self.rows, self.columns, self.rename),
                "text/markdown": to_markdown(self.rows, self.columns, self.rename),
                "text/plain": to_text(self.rows, self.columns, self.rename)}

    def __repr__(self) -> str:
        return to_text(self.rows, self.columns, self.rename)


def show(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
         rename: Callable[[str], str] = str) -> None:
    """Display ``rows`` (dicts) as a table in the notebook (columns in ``columns`` order)."""
    from IPython.display import display

    display(Table(rows, columns, rename))
