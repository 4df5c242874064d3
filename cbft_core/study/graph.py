"""The study's graph: nodes of the step registry, their cache keys and status, and their values.

``result(cfg, "path", seed=0, pair="cue-nocue")`` is how everything asks for
a model or a measurement: it makes the node (parameters checked, defaults
filled in from the preset), loads it from the cache or computes it (inputs
first, each from the cache when there), stores it, and returns it as its step
loads it (a model as a module in eval mode on the preset's device, a path as
a :class:`~cbft_core.kernels.paths.PathResult`, a measurement as JSON).

A node's cache key is the sha256 of: its step and parameters, the values of
the preset settings its step reads, its inputs' keys, and
:func:`cbft_core.study.codehash.digest` of its compute function (a step may
have one per value of a parameter: fine-tuning has one for the naive methods
and one for CBFT's). So a
setting reaches only the steps that read it and what consumes them, and a
code edit only the steps whose code it changes; docstrings, comments, the
claims and the presentation layer never count.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

from ..errors import ConfigError
from ..kernels.checks import check_choice
from . import cache, codehash
from .presets import Preset
from .steps import STEPS, Cost, Node, Step

__all__ = ["node", "result", "value", "inputs", "key", "key_document", "closure", "is_cached", "needed",
           "cost", "label", "code_version"]


def _step(name: str) -> Step:
    return STEPS[check_choice("step", name, list(STEPS))]


def node(cfg: Preset, step: str, **params: Any) -> Node:
    """The node of ``step`` with ``params`` checked; parameters left out take their defaults (or the preset's value)."""
    spec = _step(step)
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ConfigError(f"{step}: unknown parameter(s) {unknown}; its parameters are {list(spec.params)}")
    resolved = {}
    for name, param in spec.params.items():
        if name not in params and param.required:
            raise ConfigError(f"{step}: parameter {name!r} is required")
        given = params.get(name, param.default)
        if given is None and param.preset:
            given = getattr(cfg, param.preset)
        resolved[name] = param.check(name, given)
    made = Node(step, tuple(sorted(resolved.items())))
    spec.check(cfg, made)
    return made


def inputs(cfg: Preset, n: Node) -> list[Node]:
    """The nodes ``n`` consumes, in the order its compute function receives them."""
    return STEPS[n.step].inputs(cfg, n)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def key_document(cfg: Preset, n: Node) -> dict[str, Any]:
    """What the key of ``n`` is the hash of: step, parameters, settings read, inputs' keys, code digest."""
    step = STEPS[n.step]
    return {"step": n.step, "params": {k: _jsonable(v) for k, v in n.params},
            "settings": {s: _jsonable(getattr(cfg, s)) for s in step.settings(n)},
            "inputs": [key(cfg, i) for i in step.inputs(cfg, n)],
            "code": codehash.digest(step.compute_of(n))}


def key(cfg: Preset, n: Node) -> str:
    """The cache key of ``n`` under ``cfg`` (sha256 hex of :func:`key_document`)."""
    return cache.config_key(key_document(cfg, n))


def _suffix(step: Step) -> str:
    return ".pt" if step.store == "model" else ".json"


def is_cached(cfg: Preset, n: Node) -> bool:
    """Whether the cache holds an entry for ``n`` (a derived node is never cached)."""
    step = STEPS[n.step]
    return step.store is not None and cache.entry_path(n.step, key(cfg, n), _suffix(step)).is_file()


def closure(cfg: Preset, roots: Iterable[Node]) -> list[Node]:
    """``roots`` and every node they consume, transitively; each once, every node after its inputs."""
    order: list[Node] = []
    seen: set[Node] = set()

    def visit(n: Node) -> None:
        if n in seen:
            return
        seen.add(n)
        for i in inputs(cfg, n):
            visit(i)
        order.append(n)

    for root in roots:
        visit(root)
    return order


def needed(cfg: Preset, roots: Iterable[Node]) -> set[Node]:
    """The stored nodes that evaluating ``roots`` computes: the uncached ones reached through uncached nodes."""
    found: set[Node] = set()
    seen: set[Node] = set()

    def visit(n: Node) -> None:
        if n in seen:
            return
        seen.add(n)
        derived = STEPS[n.step].store is None
        if not derived:
            if is_cached(cfg, n):
                return
            found.add(n)
        for i in inputs(cfg, n):
            visit(i)

    for root in roots:
        visit(root)
    return found


def value(cfg: Preset, n: Node, progress: bool = True) -> Any:
    """The value of node ``n``: from the cache, else computed (inputs first) and stored."""
    step = STEPS[n.step]

    def compute() -> Any:
        return step.compute_of(n)(cfg, n, [value(cfg, i, progress) for i in step.inputs(cfg, n)], progress)

    if step.store is None:
        return compute()
    document = key_document(cfg, n)
    entry = cache.config_key(document)
    if step.store == "model":
        stored = cache.cached(n.step, entry, compute, meta=document)
    else:
        stored = cache.cached_json(n.step, entry, compute)
    return step.load(cfg, n, stored) if step.load is not None else stored


def result(cfg: Preset, step: str, *, progress: bool = True, **params: Any) -> Any:
    """The model or measurement ``step`` with ``params`` under preset ``cfg`` (cached; see the module docstring)."""
    return value(cfg, node(cfg, step, **params), progress)


def cost(cfg: Preset, n: Node) -> Cost:
    """The images ``n`` puts through the network when computed (:class:`~cbft_core.study.steps.Cost`)."""
    return STEPS[n.step].cost(cfg, n)


def label(n: Node) -> str:
    """How the plan names ``n`` (without its seed and cue)."""
    return STEPS[n.step].label(n)


def code_version() -> str:
    """sha256 over the code digests of every step: equal on two machines that compute the same numbers."""
    text = "\n".join(f"{name} {codehash.digest(fn)}" for name, step in sorted(STEPS.items()) for fn in step.computes())
    return hashlib.sha256(text.encode()).hexdigest()
