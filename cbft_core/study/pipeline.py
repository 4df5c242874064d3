"""The whole study for one preset and cue → results.json.

results.json is made of the derived steps :data:`PARTS` of the registry
(:mod:`cbft_core.study.steps`): per seed, the view accuracies of three
children (``models``), the barrier along each linear path (``paths``), the
quadratic path (``quadratic``) and every fine-tuning method (``finetune``).
:func:`results` evaluates them for every seed of a preset (each model and
measurement from the cache when there) and gathers one list entry per seed,
in the order of the seeds; :func:`run` writes the whole of it to
``out/results.json`` (:mod:`cbft_core.study.documents`: checksummed, checked
against ``schemas/results.schema.json``; figures:
:func:`cbft_core.presentation.figures.study_figures`).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from ..kernels.checks import check_choice
from ..kernels.data import CUES
from . import documents, graph, presets
from .presets import Preset
from .steps import FT_METHODS

__all__ = ["PARTS", "results", "run"]

PARTS: tuple[str, ...] = ("models", "paths", "quadratic", "finetune")  # the derived steps results.json holds


def _gather(per_seed: Sequence[Any]) -> Any:
    """Nested dicts of one number per seed → the same dicts of lists (one entry per seed)."""
    first = per_seed[0]
    if isinstance(first, dict):
        return {k: _gather([block[k] for block in per_seed]) for k in first}
    return [float(v) for v in per_seed]


def results(cfg: Preset, parts: Sequence[str] = PARTS, cue: str = "box", methods: Sequence[str] = FT_METHODS,
            n_clean: int | None = None, progress: bool = True) -> dict[str, Any]:
    """The ``parts`` of results.json for every seed of ``cfg`` (``methods`` and ``n_clean``: of ``finetune``)."""
    check_choice("cue", cue, CUES)
    doc: dict[str, Any] = {"preset": cfg.name, "cue": cue, "seeds": [int(s) for s in cfg.seeds],
                           "chance": 1.0 / cfg.num_classes}
    for part in parts:
        params = dict(methods=tuple(methods), n_clean=n_clean) if part == "finetune" else {}
        check_choice("parts", part, PARTS)
        doc[part] = _gather([graph.result(cfg, part, seed=int(s), cue=cue, progress=progress, **params)
                             for s in cfg.seeds])
    return doc


def run(preset: str | Preset = "cpu", seeds: Sequence[int] | None = None, out: str | os.PathLike = "results",
        cue: str = "box", progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Run (or resume from the cache) the whole study; write ``out/results.json``; return what it holds.

    ``preset``: a preset name or :class:`~cbft_core.study.presets.Preset`; ``seeds``:
    the replicates (``None`` → the preset's); ``cue``: ``"box"`` or
    ``"dominoes"``; ``overrides``: preset settings (e.g. ``n_train=5000``).
    """
    check_choice("cue", cue, CUES)
    cfg = presets.get(preset, seeds=seeds, **overrides)
    documents.check_folder(out)
    doc = documents.complete(documents.RESULTS, results(cfg, PARTS, cue, progress=progress))
    documents.write(documents.RESULTS, out, doc)
    return doc
