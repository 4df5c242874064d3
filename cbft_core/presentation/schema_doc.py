"""The format of results.json as a Markdown table, rendered from its JSON Schema.

The book's Maintaining page holds this table between the markers
:data:`START` and :data:`END`; a test keeps it equal to
:func:`results_format_markdown`, so the documentation cannot drift from the
schema that :mod:`cbft_core.study.documents` validates against. After editing the
schema, refresh the page with ``python -m cbft_core.presentation.schema_doc book/maintaining.md``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["START", "END", "results_format_markdown", "replace_section"]

START = "<!-- results-format: generated from cbft_core/study/schemas/results.schema.json -->"
END = "<!-- results-format: end -->"


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with a local ``$ref`` (``#/$defs/NAME``) merged in; its own keys win."""
    if "$ref" not in node:
        return dict(node)
    ref = node["$ref"]
    if not ref.startswith("#/"):
        raise ValueError(f"schema: only local references are supported, got {ref!r}")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    merged = _resolve(target, root)
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _bounds(node: Mapping[str, Any]) -> str:
    low = ("(", node["exclusiveMinimum"]) if "exclusiveMinimum" in node else ("[", node.get("minimum"))
    high = (")", node["exclusiveMaximum"]) if "exclusiveMaximum" in node else ("]", node.get("maximum"))
    if low[1] is None and high[1] is None:
        return ""
    lo = "−∞" if low[1] is None else f"{low[1]:g}"
    hi = "∞" if high[1] is None else f"{high[1]:g}"
    return f" in {low[0] if low[1] is not None else '('}{lo}, {hi}{high[0] if high[1] is not None else ')'}"


def _type(node: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    node = _resolve(node, root)
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    kind = node.get("type")
    if kind == "array":
        item = _type(node.get("items", {}), root)
        plural = {"number": "numbers", "integer": "integers", "string": "strings"}
        head = item.split(" ", 1)
        noun = plural.get(head[0], head[0])
        rest = f" {head[1]}" if len(head) > 1 else ""
        size = f", at least {node['minItems']}" if node.get("minItems") else ""
        return f"list of {noun}{rest}{size}"
    if kind == "string":
        return "string" + (", non-empty" if node.get("minLength") else "")
    if kind in ("number", "integer"):
        return f"{kind}{_bounds(node)}"
    if kind == "object":
        return "object"
    return str(kind)


def _shape(node: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """A node's schema without descriptions (siblings of equal shape share one row)."""
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "description"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return json.dumps(strip(_resolve(node, root)), sort_keys=True)


def _rows(node: Mapping[str, Any], root: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str, str]]:
    node = _resolve(node, root)
    props: dict[str, Any] = node.get("properties", {})
    groups: dict[str, list[str]] = {}
    for name, child in props.items():
        groups.setdefault(_shape(child, root), []).append(name)
    for names in groups.values():
        key = names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"
        path = f"{prefix}.{key}" if prefix else key
        children = [_resolve(props[n], root) for n in names]
        descriptions = [c.get("description", "") for c in children]
        if len(set(descriptions)) == 1:
            meaning = descriptions[0]
        else:
            meaning = "; ".join(f"`{n}`: {d}" for n, d in zip(names, descriptions))
        yield f"`{path}`", _type(children[0], root), meaning
        if children[0].get("type") == "object":
            yield from _rows(children[0], root, path)


def results_format_markdown(schema: Mapping[str, Any] | None = None) -> str:
    """The schema as a Markdown table (key, type, meaning), one row per key; equal siblings share a row."""
    if schema is None:
        from ..study import documents

        schema = documents.schema(documents.RESULTS)
    lines = [schema.get("description", ""), "", "| key | type | meaning |", "| --- | --- | --- |"]
    for key, kind, meaning in _rows(schema, schema, ""):
        lines.append(f"| {key} | {kind} | {meaning.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def replace_section(page: str, table: str) -> str:
    """``page`` with the text between :data:`START` and :data:`END` replaced by ``table``."""
    if page.count(START) != 1 or page.count(END) != 1 or page.index(START) > page.index(END):
        raise ValueError("page: expected exactly one results-format section (START ... END markers)")
    head, rest = page.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{table}{END}{tail}"


if __name__ == "__main__":  # python -m cbft_core.presentation.schema_doc book/maintaining.md
    target = Path(sys.argv[1])
    target.write_text(replace_section(target.read_text(), results_format_markdown()))
