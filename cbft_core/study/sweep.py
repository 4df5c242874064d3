"""Sweeps: the study over a grid of cues × cue proportions × seeds, on this process or on a Ray cluster.

A **unit** is one (cue, proportion p, seed) study at a preset whose cue
proportion is set to p. It measures, with the functions of
:mod:`cbft_core.study.experiments` (each cached):

- ``models.cue``: accuracy on the four counterfactual test views of the
  *cue child* (branched from the seed's parent and trained with the cue on a
  fraction p of each class). Its ``rand_img`` accuracy is the mechanism
  read-out: an image of another class carrying the true class's cue is
  classified correctly only by a model that uses the cue;
- ``models.nocue``: the same for the cue-free child (p = 0) of the same parent;
- ``barriers``: the loss barrier on the cue test view along the linear path
  (Entezari form, as in results.json) between ``cue-nocue`` (the cue child at p and the
  cue-free child: different mechanisms once the cue is learnt) and the
  same-mechanism controls ``cue-cue`` (two cue children at p, different data
  orders) and ``nocue-nocue`` (two cue-free children);
- ``finetune``: for each method, the view accuracies of the cue child
  fine-tuned on clean data and the barrier back to it
  (:func:`cbft_core.study.experiments.finetune_summary`).

What p = 0 means: the "cue" child is then trained on cue-free data, so it *is*
the cue-free child (the same cache entry). ``cue-nocue`` is the path from a
model to itself (barrier 0), ``cue-cue`` repeats ``nocue-nocue``, rand-img
accuracy sits at chance, and fine-tuning starts from a cue-free model (CBFT's
invariance term then sees clean data). p = 1 puts the cue on every image
(the ``cue100`` model of the paper). Plotted against p, the barriers and the
rand-img accuracy show where the cue takes over the mechanism.

Shared work: the parent of a (cue, seed) and its two cue-free children are
used by every unit of that cue and seed; they are computed once, by a *shared
task* the units depend on, before any of those units starts, so no model is
trained twice or written by two processes at once. Every unit's result is
cached as JSON under a key of its settings and the code version, so an
interrupted sweep resumes where it stopped. A failing unit is retried
(:data:`MAX_ATTEMPTS` in all), then named in ``failed`` while the rest complete.

Engines: ``local`` runs the units one after another in this process;
``ray`` runs each unit as a Ray task (one GPU each when the preset uses one),
on a local cluster started for the sweep or, with ``address``, on an existing
one. Both fix torch's thread count per unit to :data:`UNIT_THREADS`, so a unit
gives the same numbers whichever engine runs it on the same machine. Ray is
imported only by the ``ray`` engine.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..errors import CbftError, ConfigError
from ..kernels import connectivity
from ..kernels.data import CUES
from . import cache, experiments, presets, zoo
from .pipeline import VIEW_KEYS
from .presets import Preset

__all__ = [
    "ENGINES", "FORMAT", "MAX_ATTEMPTS", "UNIT_THREADS", "SCHEMA_PATH", "Unit", "Grid", "make_grid",
    "shared_models", "unit_results", "run", "execute", "assemble", "write", "load", "validate",
    "proportion_key", "series",
]

ENGINES: tuple[str, ...] = ("local", "ray")
FORMAT = "cbft_core.sweep/1"
MAX_ATTEMPTS = 3   # a unit runs at most this often (Ray: max_retries = MAX_ATTEMPTS - 1)
UNIT_THREADS = 1   # torch threads (and Ray CPUs) per unit: equal numbers on either engine
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "sweep.schema.json"
_FT_EXTRA: tuple[str, ...] = ("barrier_to_cue", "midpoint_loss_to_cue")
_GRID_SETTINGS = ("seeds", "proportion")  # set by the grid, not by overrides

ComputeUnit = Callable[[Preset, "Unit", Sequence[str], Mapping[str, Any]], dict[str, Any]]
Report = Callable[[str], None]


def proportion_key(p: float) -> str:
    """The key of cue proportion ``p`` in sweep.json (``repr`` of the float: exact and reversible)."""
    return repr(float(p))


@dataclass(frozen=True)
class Unit:
    """One cell of the grid."""

    cue: str
    proportion: float
    seed: int

    @property
    def name(self) -> str:
        """How reports name the unit, e.g. ``box p=0.8 seed 1``."""
        return f"{self.cue} p={self.proportion:g} seed {self.seed}"


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


def _unique(values: Sequence[Any], what: str) -> None:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"--{what}: {v!r} is listed twice")
        seen.add(v)


def make_grid(preset: str | Preset, seeds: Sequence[int], proportions: Sequence[float], cues: Sequence[str],
              methods: Sequence[str] = experiments.FT_METHODS, **overrides: Any) -> Grid:
    """Validate a sweep before any work starts; ConfigError names the first bad value as written."""
    for name in _GRID_SETTINGS:
        if overrides.get(name) is not None:
            raise ConfigError(f"setting {name!r} is set by the grid: use --{name}s, not an override")
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    if not proportions:
        raise ConfigError("--proportions: give at least one cue proportion")
    if not cues:
        raise ConfigError("--cues: give at least one cue")
    for cue in cues:
        if cue not in CUES:
            raise ConfigError(f"--cues: unknown cue {cue!r}; choose from {list(CUES)}")
    for p in proportions:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or not 0 <= p <= 1:
            raise ConfigError(f"--proportions: {p!r} is not a cue proportion in [0, 1]")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise ConfigError(f"--seeds: {s!r} is not an integer")
    for m in methods:
        if m not in experiments.FT_METHODS:
            raise ConfigError(f"--methods: unknown method {m!r}; choose from {list(experiments.FT_METHODS)}")
    _unique(list(cues), "cues")
    _unique([float(p) for p in proportions], "proportions")
    _unique([int(s) for s in seeds], "seeds")
    _unique(list(methods), "methods")
    cfg = presets.get(preset, **overrides)
    return Grid(cfg, tuple(cues), tuple(float(p) for p in proportions), tuple(int(s) for s in seeds),
                tuple(methods))


# --- what one task computes ------------------------------------------------------------------------

def _views(acc: Mapping[str, float]) -> dict[str, float]:
    return {VIEW_KEYS[name]: float(acc[name]) for name in VIEW_KEYS}


def _barrier(cfg: Preset, seed: int, pair: str, cue: str) -> float:
    result = experiments.path_result(cfg, seed, pair, cue=cue, progress=False)
    return float(connectivity.barrier(result.loss["cue"], result.ts)[0])


def shared_models(cfg: Preset, cue: str, seed: int) -> dict[str, Any]:
    """Train (or load) what every unit of (cue, seed) shares: the parent and both cue-free children.

    Returns the cue-free child's view accuracies and the ``nocue-nocue``
    barrier, which do not depend on the units' cue proportion.
    """
    base = cfg.replace(proportion=0.0)
    zoo.parent(base, seed, cue, progress=False)
    return {"nocue": _views(experiments.child_accuracies(base, seed, 0.0, cue=cue, progress=False)),
            "nocue-nocue": _barrier(base, seed, "nocue-nocue", cue)}


def unit_results(cfg: Preset, unit: Unit, methods: Sequence[str], shared: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of one unit (see the module docstring); ``cfg`` already has the unit's proportion."""
    cue, seed, p = unit.cue, unit.seed, unit.proportion
    finetune = {}
    for method in methods:
        summary = experiments.finetune_summary(cfg, seed, method, cue=cue, progress=False)
        finetune[method] = {**_views(summary["views"]), **{k: float(summary[k]) for k in _FT_EXTRA}}
    return {
        "models": {"cue": _views(experiments.child_accuracies(cfg, seed, p, cue=cue, progress=False)),
                   "nocue": dict(shared["nocue"])},
        "barriers": {"cue-nocue": _barrier(cfg, seed, "cue-nocue", cue), "cue-cue": _barrier(cfg, seed, "cue-cue", cue),
                     "nocue-nocue": float(shared["nocue-nocue"])},
        "finetune": finetune,
    }


def _unit_key(grid: Grid, unit: Unit) -> dict[str, Any]:
    return experiments.cache_key(grid.unit_cfg(unit), seed=unit.seed, cue=unit.cue, methods=list(grid.methods),
                                 what="sweep-unit")


@contextlib.contextmanager
def _unit_context(cache_dir: str) -> Iterator[None]:
    """Fixed torch threads and the sweep's cache folder while a task runs; restored afterwards."""
    threads, env = torch.get_num_threads(), os.environ.get(cache.ENV_VAR)
    torch.set_num_threads(UNIT_THREADS)
    os.environ[cache.ENV_VAR] = cache_dir
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if env is None:
            os.environ.pop(cache.ENV_VAR, None)
        else:
            os.environ[cache.ENV_VAR] = env


def _shared_task(cfg: Preset, cue: str, seed: int, cache_dir: str) -> dict[str, Any]:
    with _unit_context(cache_dir):
        return shared_models(cfg, cue, seed)


def _unit_task(grid: Grid, unit: Unit, shared: Mapping[str, Any], cache_dir: str,
               compute: ComputeUnit) -> tuple[dict[str, Any], str]:
    """One unit as any engine runs it: (its cached or computed result, the code version that ran it)."""
    with _unit_context(cache_dir):
        result = cache.cached_json("sweep-unit", _unit_key(grid, unit),
                                   lambda: compute(grid.unit_cfg(unit), unit, grid.methods, shared))
        return result, cache.code_version()


def _cached_unit(grid: Grid, unit: Unit) -> dict[str, Any] | None:
    path = cache.entry_path("sweep-unit", _unit_key(grid, unit), ".json")
    try:
        return cache.load_json(path)
    except (FileNotFoundError, CbftError):
        return None


# --- engines -------------------------------------------------------------------------------------

def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    err = cause if isinstance(cause, BaseException) else exc
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".rstrip(": ")


def _local_engine(grid: Grid, todo: Sequence[Unit], cache_dir: str, compute: ComputeUnit,
                  report: Report) -> tuple[dict[Unit, dict[str, Any]], dict[Unit, str]]:
    def attempt(fn: Callable[[], Any]) -> tuple[Any, str | None]:
        error = ""
        for _ in range(MAX_ATTEMPTS):
            try:
                return fn(), None
            except Exception as exc:  # a failed unit is retried, then reported; the sweep goes on
                error = _describe(exc)
        return None, error

    done: dict[Unit, dict[str, Any]] = {}
    failed: dict[Unit, str] = {}
    shared: dict[tuple[str, int], tuple[Any, str | None]] = {}
    for unit in todo:
        key = (unit.cue, unit.seed)
        if key not in shared:
            shared[key] = attempt(lambda: _shared_task(grid.cfg, unit.cue, unit.seed, cache_dir))
        value, error = shared[key]
        if error is not None:
            failed[unit] = f"its shared models failed: {error}"
        else:
            out, error = attempt(lambda: _unit_task(grid, unit, value, cache_dir, compute)[0])
            if error is None:
                done[unit] = out
            else:
                failed[unit] = error
        report(f"{unit.name}: {'failed: ' + failed[unit] if unit in failed else 'done'}")
    return done, failed


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast with one line when nothing listens at ``address`` (ray.init would retry for minutes)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
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
    except CbftError:
        raise
    except Exception as exc:  # ray's own connection errors, as one line
        where = f"--address {address}" if address else "a local Ray cluster"
        raise CbftError(f"{where}: could not connect ({_describe(exc)})") from None


def _gpus_per_unit(ray: Any, cfg: Preset) -> int:
    if cfg.device == "cuda":
        return 1
    if cfg.device == "auto":
        return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    return 0


def _ray_engine(grid: Grid, todo: Sequence[Unit], cache_dir: str, compute: ComputeUnit, report: Report,
                workers: int | None, address: str | None) -> tuple[dict[Unit, dict[str, Any]], dict[Unit, str]]:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'cbft_core[sweep]' (or ray itself)") from None
    started = _connect(ray, address, workers)
    try:
        options = dict(num_cpus=UNIT_THREADS, num_gpus=_gpus_per_unit(ray, grid.cfg),
                       max_retries=MAX_ATTEMPTS - 1, retry_exceptions=True)
        shared_task = ray.remote(**options)(_shared_task)
        unit_task = ray.remote(**options)(_unit_task)
        limit = workers or len(todo)
        version = cache.code_version()
        shared_refs: dict[tuple[str, int], Any] = {}
        pending: dict[Any, Unit] = {}
        done: dict[Unit, dict[str, Any]] = {}
        failed: dict[Unit, str] = {}

        def collect(ref: Any) -> None:
            unit = pending.pop(ref)
            try:
                result, worker_version = ray.get(ref)
            except ray.exceptions.RayError as exc:
                shared_ref = shared_refs[(unit.cue, unit.seed)]
                try:
                    ray.get(shared_ref)
                    failed[unit] = _describe(exc)
                except ray.exceptions.RayError as shared_exc:
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
                ready, _ = ray.wait(list(pending), num_returns=1)
                collect(ready[0])
            key = (unit.cue, unit.seed)
            if key not in shared_refs:
                shared_refs[key] = shared_task.remote(grid.cfg, unit.cue, unit.seed, cache_dir)
            pending[unit_task.remote(grid, unit, shared_refs[key], cache_dir, compute)] = unit
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            collect(ready[0])
        return done, failed
    finally:
        if started:
            ray.shutdown()


def execute(grid: Grid, engine: str = "local", workers: int | None = None, address: str | None = None,
            compute: ComputeUnit | None = None, report: Report | None = None,
            ) -> tuple[dict[Unit, dict[str, Any]], dict[Unit, str]]:
    """Run every unit of ``grid`` not yet cached: ``(results by unit, error by failed unit)``.

    ``compute`` is what a unit computes on a cache miss (None: :func:`unit_results`;
    tests pass wrappers of it). ``report`` receives one line per finished unit.
    """
    compute = unit_results if compute is None else compute
    if engine not in ENGINES:
        raise ConfigError(f"--engine: unknown engine {engine!r}; choose from {list(ENGINES)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers: expected a positive number of workers, got {workers!r}")
    if engine == "local" and workers not in (None, 1):
        raise ConfigError(f"--workers {workers}: the local engine runs one unit at a time; use --engine ray")
    if engine == "local" and address is not None:
        raise ConfigError("--address joins a Ray cluster: use it with --engine ray")
    cache_dir = str(cache.cache_dir().resolve())
    done: dict[Unit, dict[str, Any]] = {}
    todo = []
    for unit in grid.units():
        hit = _cached_unit(grid, unit)
        if hit is None:
            todo.append(unit)
        else:
            done[unit] = hit
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
    if engine == "local":
        new, failed = _local_engine(grid, todo, cache_dir, compute, progress)
    else:
        new, failed = _ray_engine(grid, todo, cache_dir, compute, progress, workers, address)
    return {**done, **new}, failed


# --- sweep.json ------------------------------------------------------------------------------------

def _checksum(doc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def assemble(grid: Grid, results: Mapping[Unit, Mapping[str, Any]], failed: Mapping[Unit, str]) -> dict[str, Any]:
    """The sweep.json document of ``grid`` (validated), every unit in ``results`` or ``failed``."""
    settings = grid.cfg.as_dict()
    for name in ("name", "seeds", "proportion"):
        settings.pop(name)
    units: dict[str, dict[str, dict[str, Any]]] = {}
    for unit in grid.units():
        if unit in results:
            units.setdefault(unit.cue, {}).setdefault(proportion_key(unit.proportion), {})[str(unit.seed)] = \
                dict(results[unit])
    doc = {
        "format": FORMAT, "preset": grid.cfg.name, "settings": settings, "cues": list(grid.cues),
        "proportions": list(grid.proportions), "seeds": list(grid.seeds), "methods": list(grid.methods),
        "chance": 1.0 / grid.cfg.num_classes, "code_version": cache.code_version(), "units": units,
        "failed": {unit.name: failed[unit] for unit in grid.units() if unit in failed},
    }
    doc["checksum"] = _checksum(doc)
    validate(doc)
    return doc


@contextlib.contextmanager
def _schema_errors(where: str) -> Iterator[None]:
    import jsonschema

    try:
        yield
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ConfigError(f"{where}: not a valid sweep.json at {at}: {exc.message}") from None


def validate(doc: Any, where: str = "sweep") -> None:
    """Check ``doc`` against the shipped JSON Schema, its checksum and its grid; ConfigError names the problem."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    with _schema_errors(where):
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    if doc["checksum"] != _checksum(doc):
        raise ConfigError(f"{where}: checksum mismatch (the file was altered or truncated)")
    expected = {Unit(c, float(p), int(s)).name: (c, proportion_key(p), str(s))
                for c in doc["cues"] for s in doc["seeds"] for p in doc["proportions"]}
    stored = {(c, p, s) for c, by_p in doc["units"].items() for p, by_s in by_p.items() for s in by_s}
    for name, cell in expected.items():
        if (cell in stored) == (name in doc["failed"]):
            state = "both stored and failed" if cell in stored else "neither stored nor failed"
            raise ConfigError(f"{where}: unit {name} is {state}")
    extra = stored - set(expected.values())
    if extra:
        raise ConfigError(f"{where}: units outside the grid: {sorted(extra)}")
    for c, by_p in doc["units"].items():
        for by_s in by_p.values():
            for unit in by_s.values():
                if set(unit["finetune"]) != set(doc["methods"]):
                    raise ConfigError(f"{where}: a {c} unit has fine-tuning methods {sorted(unit['finetune'])}, "
                                      f"expected {doc['methods']}")


def write(doc: Mapping[str, Any], out: str | os.PathLike) -> Path:
    """Validate ``doc`` and write it atomically to ``out/sweep.json``."""
    validate(doc)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out must be a folder, but {out_dir} is a file")
    return cache.write_json(out_dir / "sweep.json", dict(doc))  # an output file; its checksum is inside


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a sweep.json (a folder means its sweep.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / "sweep.json"
    if not path.exists():
        raise ConfigError(f"{path}: no such sweep.json")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON sweep file ({exc})") from None
    validate(doc, str(path))
    return doc


def run(preset: str | Preset, seeds: Sequence[int], proportions: Sequence[float], cues: Sequence[str],
        engine: str = "local", workers: int | None = None, address: str | None = None,
        out: str | os.PathLike = "sweep", methods: Sequence[str] = experiments.FT_METHODS,
        report: Report | None = None, compute: ComputeUnit | None = None, **overrides: Any) -> dict[str, Any]:
    """Run (or resume) a sweep and write ``out/sweep.json``; return its document.

    The grid is validated before anything runs. Units that fail after
    :data:`MAX_ATTEMPTS` attempts are listed in the document's ``failed``
    (the caller decides whether that is an error); the others are stored.
    """
    grid = make_grid(preset, seeds, proportions, cues, methods, **overrides)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out must be a folder, but {out_dir} is a file")
    results, failed = execute(grid, engine, workers, address, compute, report)
    doc = assemble(grid, results, failed)
    out_dir.mkdir(parents=True, exist_ok=True)
    write(doc, out_dir)
    return doc


def series(doc: Mapping[str, Any], cue: str, *path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One quantity of every unit of ``cue`` against cue proportion: ``(proportions, mean, std over seeds)``.

    ``path`` leads into a unit, e.g. ``("barriers", "cue-nocue")`` or
    ``("models", "cue", "rand_img")``. Proportions without a stored unit are left out.
    """
    if cue not in doc["units"]:
        raise ConfigError(f"cue {cue!r} has no stored units; the sweep has {sorted(doc['units'])}")
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
