"""The whole study for one preset and cue: every model, path and fine-tuning method → results.json.

``run(preset, seeds, out)`` asks :mod:`cbft_core.study.experiments` for each
measurement (all cached on disk, so a second run only reads the cache) and
writes ``out/results.json`` atomically, with its sha256 in
``out/results.json.sha256`` (``sha256sum -c`` format; figures:
:func:`cbft_core.presentation.figures.study_figures`). The file's format is the
JSON Schema ``schemas/results.schema.json`` shipped with the package
(:func:`schema`), documented on the book's Maintaining page: accuracies as
fractions and barriers as loss on the cue test view (Entezari form), one list
entry per seed, in the order of ``seeds``. :func:`validate` checks a results
dict against it (and that every list has one finite number per seed) on every
write, :func:`load_results` on every read.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import jsonschema

from ..errors import CbftError, ConfigError
from ..kernels import connectivity
from ..kernels.data import CUES
from . import cache, experiments, presets
from .presets import Preset

__all__ = ["VIEW_KEYS", "PATH_PAIRS", "MODELS", "QUADRATIC_PAIR", "QUADRATIC_KEYS", "SCHEMA_FILE", "mechanism_results", "run",
           "finetune_results", "schema", "validate", "write_results", "load_results"]

# view name in cbft_core.kernels.data → key in results.json
VIEW_KEYS: dict[str, str] = {"clean": "clean", "cue": "cue", "rand-cue": "rand_cue", "rand-img": "rand_img"}
PATH_PAIRS: tuple[str, ...] = ("cue-nocue", "nocue-nocue", "cue-cue", "cue100-nocue")
# results.json model name → cue proportion (None: the preset's)
MODELS: dict[str, float | None] = {"cue": None, "nocue": 0.0, "cue100": 1.0}
QUADRATIC_PAIR = "cue-nocue"  # the pair whose trained midpoint and Bezier path results.json summarises
QUADRATIC_KEYS: tuple[str, ...] = ("barrier", "linear_barrier", "switch_width")
_FT_EXTRA: tuple[str, ...] = ("barrier_to_cue", "midpoint_loss_to_cue")
SCHEMA_FILE = "results.schema.json"  # in cbft_core/study/schemas/


def _views(acc: dict[str, float]) -> dict[str, float]:
    return {VIEW_KEYS[name]: float(acc[name]) for name in VIEW_KEYS}


def _append(target: dict[str, list[float]], values: dict[str, float]) -> None:
    for key, value in values.items():
        target.setdefault(key, []).append(float(value))


def finetune_results(cfg: Preset, methods: Sequence[str] = experiments.FT_METHODS, n_clean: int | None = None,
                     cue: str = "box", progress: bool = True) -> dict[str, dict[str, list[float]]]:
    """Per method, the results.json block (views + barrier measures, one entry per seed of ``cfg``)."""
    block: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for seed in cfg.seeds:
        for method in methods:
            summary = experiments.finetune_summary(cfg, int(seed), method, n_clean, cue=cue, progress=progress)
            _append(block[method], {**_views(summary["views"]), **{k: summary[k] for k in _FT_EXTRA}})
    return block


def _measure(cfg: Preset, seed: int, cue: str, progress: bool) -> dict[str, Any]:
    """The model and path numbers of one seed (each from the cache when present)."""
    models = {}
    for name, proportion in MODELS.items():
        models[name] = _views(experiments.child_accuracies(cfg, seed, proportion, cue=cue, progress=progress))
    path_barriers = {}
    for pair in PATH_PAIRS:
        result = experiments.path_result(cfg, seed, pair, cue=cue, progress=progress)
        path_barriers[pair] = connectivity.barrier(result.loss["cue"], result.ts)[0]
    quadratic = experiments.quadratic_summary(cfg, seed, QUADRATIC_PAIR, cue=cue, progress=progress)
    return {"models": models, "paths": path_barriers, "quadratic": quadratic}


def mechanism_results(cfg: Preset, cue: str = "box", progress: bool = True) -> dict[str, Any]:
    """The models, linear paths and quadratic paths of every seed of ``cfg``: results.json without ``finetune``."""
    if cue not in CUES:
        raise ConfigError(f"cue: unknown cue {cue!r}; choose one of {list(CUES)}")
    results: dict[str, Any] = {
        "preset": cfg.name, "cue": cue, "seeds": [int(s) for s in cfg.seeds],
        "chance": 1.0 / cfg.num_classes,
        "models": {name: {} for name in MODELS},
        "paths": {pair: {"barrier": []} for pair in PATH_PAIRS},
        "quadratic": {key: [] for key in QUADRATIC_KEYS},
    }
    for seed in cfg.seeds:
        seed_results = _measure(cfg, int(seed), cue, progress)
        for name, views in seed_results["models"].items():
            _append(results["models"][name], views)
        for pair, height in seed_results["paths"].items():
            results["paths"][pair]["barrier"].append(float(height))
        _append(results["quadratic"], seed_results["quadratic"])
    return results


def run(preset: str | Preset = "cpu", seeds: list[int] | tuple[int, ...] | None = None,
        out: str | os.PathLike = "results", cue: str = "box", progress: bool = True,
        **overrides: Any) -> dict[str, Any]:
    """Run (or resume from the cache) the whole study; write ``out/results.json``; return the results.

    ``preset``: a preset name or :class:`~cbft_core.study.presets.Preset`; ``seeds``:
    the replicates (``None`` → the preset's); ``cue``: ``"box"`` or
    ``"dominoes"``; ``overrides``: preset settings (e.g. ``n_train=5000``).
    """
    if cue not in CUES:
        raise ConfigError(f"cue: unknown cue {cue!r}; choose one of {list(CUES)}")
    cfg = presets.get(preset, seeds=seeds, **overrides)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out must be a folder, but {out_dir} is a file")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"out: cannot create the output folder {out_dir} ({exc.strerror})") from None

    results = mechanism_results(cfg, cue, progress)
    results["finetune"] = finetune_results(cfg, cue=cue, progress=progress)
    write_results(out_dir / "results.json", results)
    return results


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema of results.json (draft 2020-12), read from the package."""
    text = resources.files(__package__).joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    return cls(schema())


def _where(path: Sequence[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "top level"


def validate(results: Any) -> None:
    """Check ``results`` against the results.json schema; raise ConfigError naming the first bad entry.

    Beyond the schema: every list holds exactly one finite number per seed.
    """
    errors = sorted(_validator().iter_errors(results), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        first = errors[0]
        message = " ".join(first.message.split())
        if len(message) > 200:
            message = message[:200] + "..."
        raise ConfigError(f"results[{_where(first.absolute_path)}]: {message}")
    n = len(results["seeds"])

    def walk(block: Any, where: list[Any]) -> None:
        if isinstance(block, dict):
            for key, value in block.items():
                walk(value, where + [key])
        elif isinstance(block, list) and where[0] != "seeds":
            if len(block) != n:
                raise ConfigError(f"results[{_where(where)}]: expected a list of {n} numbers (one per seed), "
                                  f"got {len(block)}")
            if not all(math.isfinite(v) for v in block):
                raise ConfigError(f"results[{_where(where)}]: expected finite numbers, got {block}")

    walk(results, [])


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_results(path: str | os.PathLike, results: dict[str, Any]) -> Path:
    """Validate ``results`` and write them atomically to ``path``, with ``<path>.sha256`` beside it."""
    validate(results)
    path = Path(path)
    sidecar = _sidecar(path)
    try:
        sidecar.unlink(missing_ok=True)  # never leave an old checksum beside new content
    except OSError as exc:
        raise CbftError(f"cannot write to {path.parent} ({exc.strerror}); choose another output folder") from None
    cache.write_json(path, results)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    cache.write_text(sidecar, f"{digest}  {path.name}\n")
    return path


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results.json, verified against its ``.sha256`` (when present) and the schema.

    Any problem is one :class:`~cbft_core.errors.ConfigError` naming the file:
    absent, unreadable, not JSON, altered since written, or not in the format of :func:`schema`.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such results file; write one with `python -m cbft_core run --out DIR`") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the results file ({exc.strerror})") from None
    sidecar = _sidecar(path)
    if sidecar.is_file():
        expected = sidecar.read_text(errors="replace").split(" ")[0].strip()
        if hashlib.sha256(raw).hexdigest() != expected:
            raise ConfigError(f"{path}: does not match its checksum in {sidecar.name} (altered or damaged "
                              f"since it was written); rerun `python -m cbft_core run` to rewrite it")
    try:
        results = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    try:
        validate(results)
    except ConfigError as exc:
        raise ConfigError(f"{path}: not a valid results.json: {exc}") from None
    return results
