"""The tables of the Maintaining page generated from the library: results.json's format and the study's steps.

:func:`results_format_markdown` renders the JSON Schema of results.json
(what :mod:`cbft_core.study.documents` validates against);
:func:`steps_markdown` renders the step registry
(:mod:`cbft_core.study.steps`): what each step consumes, the settings and
code its cache key covers, and what it costs. The page holds each between its
markers (:data:`START`/:data:`END`, :data:`STEPS_START`/:data:`STEPS_END`);
tests keep both equal to what is generated here, so the documentation cannot
drift from the code. After a change, refresh the page with
``python -m cbft_core.presentation.schema_doc book/maintaining.md``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["START", "END", "STEPS_START", "STEPS_END", "results_format_markdown", "steps_markdown",
           "replace_section", "refresh"]

START = "<!-- results-format: generated from cbft_core/study/schemas/results.schema.json -->"
END = "<!-- results-format: end -->"
STEPS_START = "<!-- study-steps: generated from the registry in cbft_core/study/steps.py -->"
STEPS_END = "<!-- study-steps: end -->"
STEPS_PRESET = "cpu"  # the preset whose costs the steps table shows


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


def _images(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,}".replace(",", " ")


def _example_nodes(cfg: Any) -> list[Any]:
    """Every node a run of the study, a sweep unit and the explorer's grids reach at ``cfg``, seed 0."""
    from ..study import graph, pipeline

    roots = [graph.node(cfg, part, seed=0) for part in pipeline.PARTS] + [graph.node(cfg, "unit", seed=0)]
    roots += [graph.node(cfg, "explorer-grid", seed=0, pair=pair, bends=bends, ts=(0.0, 0.5, 1.0), bn=bn)
              for pair, bends, bn in (("scratch", (0.0, 1.0), "reestimate"), ("scratch-aligned", (0.0,), "reestimate"),
                                      ("nocue-nocue", (0.0,), "interpolate"))]
    return graph.closure(cfg, roots)


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_shown(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _params(step: Any) -> str:
    out = []
    for name, param in step.params.items():
        if param.required:
            out.append(name)
        elif param.preset:
            out.append(f"{name} = preset's `{param.preset}`")
        else:
            out.append(f"{name} = {'all' if isinstance(param.default, tuple) else _shown(param.default)}")
    return ", ".join(out)


def steps_markdown(preset: str = STEPS_PRESET) -> str:
    """The step registry as a Markdown table: one row per step, or per variant of a step where its
    consumed nodes, settings or code differ (e.g. linear and Bezier paths, naive and CBFT fine-tuning)."""
    from ..study import codehash, graph, presets
    from ..study.steps import STEPS

    cfg = presets.get(preset)
    nodes = _example_nodes(cfg)
    lines = ["| step | parameters | consumes | settings its key covers | code | images per node "
             f"at `{preset}` (trained + forward) |", "| --- | --- | --- | --- | --- | --- |"]
    for name, step in STEPS.items():
        mine = [n for n in nodes if n.step == name]
        varying = [p for p in step.params if len({getattr(n, p) for n in mine}) > 1]
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for n in mine:
            inputs = [i.step for i in graph.inputs(cfg, n)]
            consumed = ", ".join(f"{s} ×{inputs.count(s)}" if inputs.count(s) > 1 else s for s in dict.fromkeys(inputs))
            code = codehash.code_of(step.compute_of(n))
            groups.setdefault((consumed, step.settings(n), code.modules, len(code.functions)), []).append(n)
        for (consumed, settings, modules, functions), members in groups.items():
            label = f"`{name}`"
            if len(groups) > 1:
                shown = [p for p in varying if p not in ("seed", "proportion", "branch", "replica")]
                label += " (" + "; ".join(f"{p} {', '.join(dict.fromkeys(_shown(getattr(n, p)) for n in members))}"
                                         for p in shown) + ")"
            costs = {}
            for n in members:
                cost = graph.cost(cfg, n)
                costs.setdefault(f"{_images(cost.train)} + {_images(cost.forward)}", []).append(n)
            cost_text = next(iter(costs)) if len(costs) == 1 else "; ".join(
                f"{', '.join(graph.label(n) for n in ns)}: {c}" for c, ns in costs.items())
            stored = {"model": "checkpoint", "json": "JSON", None: "derived (not stored)"}[step.store]
            code_text = ", ".join(m.replace("cbft_core.", "") for m in modules) or "no kernel"
            if functions > 1:
                code_text += f" (+ {functions - 1} study function{'s' if functions > 2 else ''})"
            lines.append(f"| {label}: {step.doc}; {stored} | {_params(step)} | {consumed or '—'} | "
                         f"{', '.join(f'`{s}`' for s in settings) or '—'} | {code_text or '—'} | "
                         f"{cost_text if step.store else '—'} |")
    return "\n".join(lines) + "\n"


def replace_section(page: str, table: str, start: str = START, end: str = END) -> str:
    """``page`` with the text between the markers ``start`` and ``end`` replaced by ``table``."""
    if page.count(start) != 1 or page.count(end) != 1 or page.index(start) > page.index(end):
        raise ValueError(f"page: expected exactly one section between the markers {start} and {end}")
    head, rest = page.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{table}{end}{tail}"


def refresh(page: str) -> str:
    """``page`` with both generated sections rewritten."""
    page = replace_section(page, results_format_markdown())
    return replace_section(page, steps_markdown(), STEPS_START, STEPS_END)


if __name__ == "__main__":  # python -m cbft_core.presentation.schema_doc book/maintaining.md
    target = Path(sys.argv[1])
    target.write_text(refresh(target.read_text()))
