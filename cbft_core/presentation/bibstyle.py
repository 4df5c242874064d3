"""Author-year labels for the book's bibliography ("Lubana et al., 2023"), as its citations read.

sphinxcontrib-bibtex labels entries with the formatting style's label style;
:func:`register` adds a pybtex formatting style ``author_year`` (pybtex's
``plain`` entries, sorted by author, year and title) whose labels are the
first author's last name (with "et al." for three or more authors, "and" for
two) and the year. ``_config.yml`` selects it with ``bibtex_default_style``.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

__all__ = ["author_year_label", "register"]


def _last_names(entry: Any) -> list[str]:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    return [" ".join(p.last_names) for p in people]


def author_year_label(entry: Any) -> str:
    """``Name, year``, ``Name and Other, year`` or ``Name et al., year`` for one pybtex entry."""
    names = _last_names(entry)
    year = entry.fields.get("year", "n.d.")
    if not names:
        who = entry.fields.get("title", entry.key)
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {year}"


def register() -> None:
    """Register the ``author_year`` label and formatting styles with pybtex (idempotent)."""
    from pybtex.plugin import find_plugin, register_plugin
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries: Iterable[Any]) -> Iterator[str]:
            seen: dict[str, int] = {}
            for entry in sorted_entries:
                label = author_year_label(entry)
                seen[label] = seen.get(label, 0) + 1
                yield label if seen[label] == 1 else f"{label}{'abcdefghij'[seen[label] - 1]}"

    plain = find_plugin("pybtex.style.formatting", "plain")

    class AuthorYearStyle(plain):
        default_label_style = AuthorYearLabels
        default_sorting_style = find_plugin("pybtex.style.sorting", "author_year_title")

    for group, name, cls in (("pybtex.style.labels", "author_year", AuthorYearLabels),
                             ("pybtex.style.formatting", "author_year", AuthorYearStyle)):
        try:
            register_plugin(group, name, cls)
        except Exception:  # already registered (a second build in the same process)
            pass
