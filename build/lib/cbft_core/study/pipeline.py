"""The whole study for one preset and cue: every model, path and fine-tuning method → results.json.

``run(preset, seeds, out)`` asks :mod:`cbft_core.study.experiments` for each
measurement (all cached on disk, so a second run only reads the cache) and
writes ``out/results.json`` atomically (figures: :func:`cbft_core.presentation.figures.study_figures`). The results file
holds accuracies as fractions and barriers as loss on the cue test view
(Entezari form), one list entry per seed, in the order of ``seeds``::

    {"preset": str, "cue": str, "seeds": [int], "chance": float,
     "models": {"cue": VIEWS, "nocue": VIEWS},
     "paths": {"cue-nocue": {"barrier": [f]}, "nocue-nocue": {...}, "cue-cue": {...}},
     "finetune": {method: VIEWS + {"barrier_to_cue": [f], "midpoint_loss_to_cue": [f]}}}

with ``VIEWS = {"clean": [f], "cue": [f], "rand_cue": [f], "rand_img": [f]}``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..kernels import connectivity
from ..kernels.data import CUES
from . import cache, experiments, presets
from .presets import Preset

__all__ = ["VIEW_KEYS", "PATH_PAIRS", "MODELS", "run", "finetune_results", "validate"]

# view name in cbft_core.kernels.data → key in results.json
VIEW_KEYS: dict[str, str] = {"clean": "clean", "cue": "cue", "rand-cue": "rand_cue", "rand-img": "rand_img"}
PATH_PAIRS: tuple[str, ...] = ("cue-nocue", "nocue-nocue", "cue-cue")
# results.json model name → cue proportion (None: the preset's)
MODELS: dict[str, float | None] = {"cue": None, "nocue": 0.0}
_FT_EXTRA: tuple[str, ...] = ("barrier_to_cue", "midpoint_loss_to_cue")


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
    return {"models": models, "paths": path_barriers}


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
    out_dir.mkdir(parents=True, exist_ok=True)

    results: dict[str, Any] = {
        "preset": cfg.name, "cue": cue, "seeds": [int(s) for s in cfg.seeds],
        "chance": 1.0 / cfg.num_classes,
        "models": {name: {} for name in MODELS},
        "paths": {pair: {"barrier": []} for pair in PATH_PAIRS},
    }
    for seed in cfg.seeds:
        seed_results = _measure(cfg, int(seed), cue, progress)
        for name, views in seed_results["models"].items():
            _append(results["models"][name], views)
        for pair, height in seed_results["paths"].items():
            results["paths"][pair]["barrier"].append(float(height))
    results["finetune"] = finetune_results(cfg, cue=cue, progress=progress)
    validate(results)
    cache.save_json(out_dir / "results.json", results)
    return results


def validate(results: dict[str, Any]) -> None:
    """Check ``results`` against the results.json schema; raise ConfigError naming the first bad entry."""
    def fail(where: str, why: str) -> None:
        raise ConfigError(f"results[{where}]: {why}")

    for key, kind in (("preset", str), ("cue", str), ("seeds", list), ("chance", float)):
        if not isinstance(results.get(key), kind):
            fail(key, f"expected {kind.__name__}, got {type(results.get(key)).__name__}")
    n = len(results["seeds"])

    def check_lists(where: str, block: Any, keys: tuple[str, ...], fractions: tuple[str, ...]) -> None:
        if not isinstance(block, dict) or set(block) != set(keys):
            fail(where, f"expected keys {sorted(keys)}, got {sorted(block) if isinstance(block, dict) else block}")
        for key in keys:
            values = block[key]
            if not isinstance(values, list) or len(values) != n:
                fail(f"{where}.{key}", f"expected a list of {n} numbers (one per seed)")
            if not all(isinstance(v, float) and np.isfinite(v) for v in values):
                fail(f"{where}.{key}", "expected finite floats")
            if key in fractions and not all(0.0 <= v <= 1.0 for v in values):
                fail(f"{where}.{key}", f"accuracies must be fractions in [0, 1], got {values}")

    views = tuple(VIEW_KEYS.values())
    for name in MODELS:
        check_lists(f"models.{name}", results["models"].get(name), views, views)
    for pair in PATH_PAIRS:
        check_lists(f"paths.{pair}", results["paths"].get(pair), ("barrier",), ())
    for method in experiments.FT_METHODS:
        check_lists(f"finetune.{method}", results["finetune"].get(method), views + _FT_EXTRA, views)
