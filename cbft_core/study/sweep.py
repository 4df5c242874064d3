"""Sweeps: the study over a grid of cues × cue proportions × seeds, on this process or on a Ray cluster.

A **unit** is one (cue, proportion p, seed): the ``unit`` step of the registry
(:mod:`cbft_core.study.steps`) at the preset with cue proportion p — the view
accuracies of the cue child (its ``rand_img`` accuracy is the mechanism
read-out) and of the cue-free child, the cue-view barriers ``cue-nocue``,
``cue-cue`` and ``nocue-nocue``, and each fine-tuning method's view accuracies
and barrier back to the cue child. At p = 0 the cue child *is* the cue-free
child; p = 1 puts the cue on every image. Results go to sweep.json
(:data:`cbft_core.study.documents.SWEEP`).

The stored nodes that two or more units of one (cue, seed) consume (the
parent, the cue-free children and what is measured on them alone) are
*shared*: a shared task computes them once, before those units start, so no
model is trained twice or written by two processes at once. Every node is
cached, so a rerun resumes, and a unit whose nodes are all cached is read,
not run. A failing task is retried (:data:`MAX_ATTEMPTS` in all); its units
are then named in ``failed`` while the rest complete.

Engines: ``local`` runs the tasks one after another in this process; ``ray``
runs each as a Ray task (one GPU each when the preset uses one) on a local
cluster started for the sweep or, with ``address``, on an existing one. Both
fix torch's thread count per task to :data:`UNIT_THREADS`, so a unit gives the
same numbers on either. Ray is imported only by the ``ray`` engine.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..errors import CbftError, ConfigError
from ..kernels.checks import check_choice, check_int, check_number
from ..kernels.data import CUES
from . import cache, documents, graph, presets
from .documents import proportion_key
from .presets import Preset
from .steps import FT_METHODS, STEPS, Node

__all__ = ["ENGINES", "MAX_ATTEMPTS", "UNIT_THREADS", "Unit", "Grid", "make_grid", "shared_nodes",
           "unit_results", "run", "execute", "assemble", "series", "results_at"]

ENGINES: tuple[str, ...] = ("local", "ray")
MAX_ATTEMPTS = 3   # a task runs at most this often (Ray: max_retries = MAX_ATTEMPTS - 1)
UNIT_THREADS = 1   # torch threads (and Ray CPUs) per task: equal numbers on either engine

ComputeUnit = Callable[[Preset, "Unit", Sequence[str]], dict[str, Any]]
Report = Callable[[str], None]
Shared = list[tuple[Preset, Node]]


@dataclass(frozen=True)
class Unit:
    """One cell of the grid."""

    cue: str
    proportion: float
    seed: int

    @property
    def name(self) -> str:
        """How reports name the unit, e.g. ``box p=0.8 seed 1``."""
        return documents.unit_name(self.cue, self.proportion, self.seed)


@dataclass(frozen=True)
class Grid:
    """A validated sweep: preset, cues × proportions × seeds, and the fine-tuning methods of every unit."""

    cfg: Preset
    cues: tuple[str, ...]
    proportions: tuple[float, ...]
    seeds: tuple[int, ...]
    methods: tuple[str, ...]

    def units(self) -> list[Unit]:
        """Every unit, cue-major, then seed, then proportion (the units of a seed are adjacent)."""
        return [Unit(c, p, s) for c in self.cues for s in self.seeds for p in self.proportions]

    def unit_cfg(self, unit: Unit) -> Preset:
        """The preset of ``unit``: the grid's with its cue proportion."""
        return self.cfg.replace(proportion=unit.proportion)

    def node(self, unit: Unit) -> Node:
        """The ``unit`` node of the registry that ``unit`` computes."""
        return graph.node(self.unit_cfg(unit), "unit", seed=unit.seed, cue=unit.cue, methods=self.methods)


def make_grid(preset: str | Preset, seeds: Sequence[int], proportions: Sequence[float], cues: Sequence[str],
              methods: Sequence[str] = FT_METHODS, **overrides: Any) -> Grid:
    """Validate a sweep before any work starts; ConfigError names the first bad value as written."""
    for name in ("seeds", "proportion"):
        if overrides.get(name) is not None:
            raise ConfigError(f"setting {name!r} is set by the grid: use --{name}s, not an override")
    given = {"seeds": ([check_int("--seeds", s) for s in seeds], "seed"),
             "proportions": ([check_number("--proportions", p, minimum=0.0, maximum=1.0) for p in proportions],
                             "cue proportion"),
             "cues": ([check_choice("--cues", c, CUES) for c in cues], "cue"),
             "methods": ([check_choice("--methods", m, FT_METHODS) for m in methods], "")}
    for option, (values, one) in given.items():
        if not values and one:
            raise ConfigError(f"--{option}: give at least one {one}")
        repeated = [v for v, count in Counter(values).items() if count > 1]
        if repeated:
            raise ConfigError(f"--{option}: {repeated[0]!r} is listed twice")
    return Grid(presets.get(preset, **overrides), *(tuple(given[k][0]) for k in ("cues", "proportions", "seeds",
                                                                                "methods")))


def shared_nodes(grid: Grid, units: Sequence[Unit]) -> dict[tuple[str, int], Shared]:
    """Per (cue, seed), the stored nodes that two or more of ``units`` consume (inputs first), each with a preset."""
    found: dict[tuple[str, int], dict[str, list[tuple[Preset, Node]]]] = {}
    for unit in units:
        cfg = grid.unit_cfg(unit)
        for n in graph.closure(cfg, [grid.node(unit)]):
            if STEPS[n.step].store is not None:
                found.setdefault((unit.cue, unit.seed), {}).setdefault(graph.key(cfg, n), []).append((cfg, n))
    return {group: [users[0] for users in by_key.values() if len(users) > 1] for group, by_key in found.items()}


def unit_results(cfg: Preset, unit: Unit, methods: Sequence[str]) -> dict[str, Any]:
    """The numbers of one unit (see the module docstring); ``cfg`` already has the unit's proportion."""
    return graph.result(cfg, "unit", seed=unit.seed, cue=unit.cue, methods=tuple(methods), progress=False)


def _task(cache_dir: str, fn: Callable[..., Any], *args: Any) -> tuple[Any, str]:
    """``fn(*args)`` as every task runs it: :data:`UNIT_THREADS` torch threads, the sweep's cache folder
    (both restored afterwards); returns its value and the code version that computed it."""
    threads, env = torch.get_num_threads(), os.environ.get(cache.ENV_VAR)
    torch.set_num_threads(UNIT_THREADS)
    os.environ[cache.ENV_VAR] = cache_dir
    try:
        return fn(*args), graph.code_version()
    finally:
        torch.set_num_threads(threads)
        if env is None:
            os.environ.pop(cache.ENV_VAR, None)
        else:
            os.environ[cache.ENV_VAR] = env


def _compute_shared(nodes: Shared) -> None:
    for cfg, n in nodes:
        graph.value(cfg, n, progress=False)


def _compute_unit(grid: Grid, unit: Unit, compute: ComputeUnit, after: Any) -> dict[str, Any]:
    """``after``: the unit's shared task, which it waits for (and fails with)."""
    return compute(grid.unit_cfg(unit), unit, grid.methods)


# --- engines -------------------------------------------------------------------------------------

def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    err = cause if isinstance(cause, BaseException) else exc
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".rstrip(": ")


class _Done:
    """A task the local engine ran at once (up to :data:`MAX_ATTEMPTS` times): its value or its last error."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        for _ in range(MAX_ATTEMPTS):
            try:  # a task that waits on a failed one fails too, as on Ray
                self.value, self.error = fn(*(a.get() if isinstance(a, _Done) else a for a in args)), None
                return
            except Exception as exc:  # retried, then reported; the sweep goes on
                self.error = exc

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _drive(grid: Grid, todo: Sequence[Unit], shared: Mapping[tuple[str, int], Shared], cache_dir: str,
           compute: ComputeUnit, report: Report, submit: Callable[..., Any], get: Callable[[Any], Any],
           wait: Callable[[list[Any]], Any], limit: int) -> tuple[dict[Unit, dict[str, Any]], dict[Unit, str]]:
    """Submit each (cue, seed)'s shared task, then its units (at most ``limit`` in flight); collect the results."""
    version = graph.code_version()
    shared_refs: dict[tuple[str, int], Any] = {}
    pending: dict[Any, Unit] = {}
    done: dict[Unit, dict[str, Any]] = {}
    failed: dict[Unit, str] = {}

    def collect(ref: Any) -> None:
        unit = pending.pop(ref)
        try:
            result, worker_version = get(ref)
        except Exception as exc:
            try:
                get(shared_refs[(unit.cue, unit.seed)])
                failed[unit] = _describe(exc)
            except Exception as shared_exc:
                failed[unit] = f"its shared models failed: {_describe(shared_exc)}"
        else:
            if worker_version != version:
                failed[unit] = (f"the worker runs other cbft_core code (version {worker_version[:12]}, "
                                f"here {version[:12]}): install the same checkout on every node")
            else:
                done[unit] = result
        report(f"{unit.name}: {'failed: ' + failed[unit] if unit in failed else 'done'}")

    for unit in todo:
        while len(pending) >= limit:
            collect(wait(list(pending)))
        group = (unit.cue, unit.seed)
        if group not in shared_refs:
            shared_refs[group] = submit(_task, cache_dir, _compute_shared, shared[group])
        pending[submit(_task, cache_dir, _compute_unit, grid, unit, compute, shared_refs[group])] = unit
    while pending:
        collect(wait(list(pending)))
    return done, failed


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast with one line when nothing listens at ``address`` (ray.init would retry for minutes)."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.1:6379) or 'auto'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                          "start one with `ray start --head`, or leave out --address for a local one") from None


def _connect(ray: Any, address: str | None, workers: int | None) -> bool:
    """Join the cluster at ``address``, or start a loopback-only local one; True when we started it."""
    if address is not None:
        _probe(address)
    if ray.is_initialized():  # a notebook or test already connected: use that cluster, leave it running
        return False
    quiet = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        if address is not None:
            ray.init(address=address, **quiet)
            return False
        ray.init(address="local", num_cpus=(workers or os.cpu_count() or 1) * UNIT_THREADS,
                 _node_ip_address="127.0.0.1", **quiet)
        return True
    except Exception as exc:  # ray's own connection errors, as one line
        where = f"--address {address}" if address else "a local Ray cluster"
        raise CbftError(f"{where}: could not connect ({_describe(exc)})") from None


def _gpus_per_unit(ray: Any, cfg: Preset) -> int:
    if cfg.device == "auto":
        return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    return 1 if cfg.device == "cuda" else 0


def _ray_engine(grid: Grid, todo: Sequence[Unit], shared: Mapping[tuple[str, int], Shared], cache_dir: str,
                compute: ComputeUnit, report: Report, workers: int | None,
                address: str | None) -> tuple[dict[Unit, dict[str, Any]], dict[Unit, str]]:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'cbft_core[sweep]' (or ray itself)") from None
    started = _connect(ray, address, workers)
    try:
        options = dict(num_cpus=UNIT_THREADS, num_gpus=_gpus_per_unit(ray, grid.cfg),
                       max_retries=MAX_ATTEMPTS - 1, retry_exceptions=True)
        task = ray.remote(**options)(_task)
        return _drive(grid, todo, shared, cache_dir, compute, report,
                      submit=lambda fn, *args: task.remote(*args), get=ray.get,
                      wait=lambda refs: ray.wait(refs, num_returns=1)[0][0], limit=workers or len(todo))
    finally:
        if started:
            ray.shutdown()


def execute(grid: Grid, engine: str = "local", workers: int | None = None, address: str | None = None,
            compute: ComputeUnit | None = None, report: Report | None = None,
            ) -> tuple[dict[Unit, dict[str, Any]], dict[Unit, str]]:
    """Run every unit of ``grid`` not yet cached: ``(results by unit, error by failed unit)``.

    ``compute`` is what a unit computes when some of its nodes are not cached
    (None: :func:`unit_results`; tests pass wrappers of it). ``report``
    receives one line per finished unit.
    """
    compute = unit_results if compute is None else compute
    check_choice("--engine", engine, ENGINES)
    if workers is not None:
        check_int("--workers", workers, minimum=1)
    if engine == "local" and workers not in (None, 1):
        raise ConfigError(f"--workers {workers}: the local engine runs one unit at a time; use --engine ray")
    if engine == "local" and address is not None:
        raise ConfigError("--address joins a Ray cluster: use it with --engine ray")
    cache_dir = str(cache.cache_dir().resolve())
    done: dict[Unit, dict[str, Any]] = {}
    todo = []
    for unit in grid.units():
        cfg, node = grid.unit_cfg(unit), grid.node(unit)
        if graph.needed(cfg, [node]):
            todo.append(unit)
        else:  # every node of the unit is cached: read, not run
            done[unit] = graph.value(cfg, node, progress=False)
    total, count = len(grid.units()), [len(done)]
    start = time.perf_counter()

    def progress(line: str) -> None:
        count[0] += 1
        if report is not None:
            report(f"[{count[0]}/{total}] {line} ({time.perf_counter() - start:.0f} s)")

    if report is not None and done:
        report(f"{len(done)} of {total} unit(s) from the cache")
    if not todo:
        return done, {}
    shared = shared_nodes(grid, todo)
    if engine == "local":
        new, failed = _drive(grid, todo, shared, cache_dir, compute, progress, submit=_Done, get=_Done.get,
                             wait=lambda refs: refs[0], limit=1)
    else:
        new, failed = _ray_engine(grid, todo, shared, cache_dir, compute, progress, workers, address)
    return {**done, **new}, failed


# --- sweep.json ------------------------------------------------------------------------------------

def assemble(grid: Grid, results: Mapping[Unit, Mapping[str, Any]], failed: Mapping[Unit, str]) -> dict[str, Any]:
    """The sweep.json document of ``grid`` (checked), every unit in ``results`` or ``failed``."""
    settings = grid.cfg.as_dict()
    for name in ("name", "seeds", "proportion"):
        settings.pop(name)
    units: dict[str, dict[str, dict[str, Any]]] = {}
    for unit in grid.units():
        if unit in results:
            units.setdefault(unit.cue, {}).setdefault(proportion_key(unit.proportion), {})[str(unit.seed)] = \
                dict(results[unit])
    doc = documents.complete(documents.SWEEP, {
        "preset": grid.cfg.name, "settings": settings, "cues": list(grid.cues),
        "proportions": list(grid.proportions), "seeds": list(grid.seeds), "methods": list(grid.methods),
        "chance": 1.0 / grid.cfg.num_classes, "code_version": graph.code_version(), "units": units,
        "failed": {unit.name: failed[unit] for unit in grid.units() if unit in failed},
    })
    documents.validate(documents.SWEEP, doc)
    return doc


def run(preset: str | Preset, seeds: Sequence[int], proportions: Sequence[float], cues: Sequence[str],
        engine: str = "local", workers: int | None = None, address: str | None = None,
        out: str | os.PathLike = "sweep", methods: Sequence[str] = FT_METHODS,
        report: Report | None = None, compute: ComputeUnit | None = None, **overrides: Any) -> dict[str, Any]:
    """Run (or resume) a sweep and write ``out/sweep.json``; return its document.

    The grid is validated before anything runs. Units that fail after
    :data:`MAX_ATTEMPTS` attempts are listed in the document's ``failed``
    (the caller decides whether that is an error); the others are stored.
    """
    grid = make_grid(preset, seeds, proportions, cues, methods, **overrides)
    documents.check_folder(out)
    doc = assemble(grid, *execute(grid, engine, workers, address, compute, report))
    documents.write(documents.SWEEP, out, doc)
    return doc


def series(doc: Mapping[str, Any], cue: str, *path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One quantity of every unit of ``cue`` against cue proportion: ``(proportions, mean, std over seeds)``.

    ``path`` leads into a unit, e.g. ``("barriers", "cue-nocue")`` or
    ``("models", "cue", "rand_img")``. Proportions without a stored unit are left out.
    """
    check_choice("cue", cue, sorted(doc["units"]))
    ps, means, stds = [], [], []
    for p in sorted(doc["proportions"]):
        values = []
        for unit in doc["units"][cue].get(proportion_key(p), {}).values():
            value: Any = unit
            for part in path:
                if not isinstance(value, Mapping) or part not in value:
                    raise ConfigError(f"series: no {'.'.join(path)!r} in a unit")
                value = value[part]
            values.append(float(value))
        if values:
            ps.append(float(p))
            means.append(float(np.mean(values)))
            stds.append(float(np.std(values)))
    return np.asarray(ps), np.asarray(means), np.asarray(stds)


def results_at(doc: Mapping[str, Any], cue: str, proportion: float) -> dict[str, Any]:
    """The units of ``cue`` at cue ``proportion`` as a results dict of :mod:`cbft_core.study.claims`.

    Per seed (in seed order): the children's view accuracies (``models``), the
    barriers (``paths``: ``{pair: {"barrier": [...]}}``) and, when the units
    fine-tuned, ``finetune``; with the sweep's ``preset``, ``chance`` and ``seeds``.
    """
    check_choice("cue", cue, sorted(doc["units"]))
    by_seed = doc["units"][cue].get(proportion_key(proportion))
    if not by_seed:
        raise ConfigError(f"sweep: no unit of cue {cue!r} at proportion {proportion:g}")
    seeds = sorted(by_seed, key=int)
    units = [by_seed[s] for s in seeds]

    def gather(part: str) -> dict[str, dict[str, list[float]]]:
        return {name: {k: [float(u[part][name][k]) for u in units] for k in block}
                for name, block in units[0][part].items()}

    out = {"preset": doc["preset"], "cue": cue, "seeds": [int(s) for s in seeds], "chance": doc["chance"],
           "models": gather("models"),
           "paths": {pair: {"barrier": [float(u["barriers"][pair]) for u in units]} for pair in units[0]["barriers"]}}
    if units[0]["finetune"]:
        out["finetune"] = gather("finetune")
    return out
