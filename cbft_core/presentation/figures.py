"""Figures of a whole study, drawn from its results.json (:func:`cbft_core.study.pipeline.run`),
and of a sweep, drawn from its sweep.json (:func:`cbft_core.study.sweep.run`).

Sized like every figure of the book (:mod:`cbft_core.presentation.plots`): at most
``plots.FIG_WIDTH`` inches wide, text of at least ``plots.MIN_FONT_PT`` points, panels
stacked, legends under the axes; saved PNGs record their smallest text (``plots.png_metadata``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..study.steps import PATH_PAIRS, VIEW_KEYS
from ..study.replication import NAMES
from . import plots

__all__ = ["view_bars", "study_figures", "SWEEP_PAIRS", "sweep_figure", "sweep_figures"]


def view_bars(block: dict[str, dict[str, list[float]]], chance: float, ax: Any = None) -> Figure:
    """Grouped bars: each method's accuracy on the four views (mean ± std over seeds), chance dotted."""
    if ax is None:
        ax = Figure(figsize=(plots.FIG_WIDTH, plots.PANEL_HEIGHT + 0.9), layout="constrained").subplots()
    methods = list(block)
    width = 0.8 / len(VIEW_KEYS)
    for j, (view, key) in enumerate(VIEW_KEYS.items()):
        vals = np.asarray([block[m][key] for m in methods], dtype=float)
        ax.bar(np.arange(len(methods)) + (j - 1.5) * width, vals.mean(1), width,
               yerr=vals.std(1) if vals.shape[1] > 1 else None, label=view,
               color=plots.VIEW_COLOURS[view], capsize=2)
    ax.axhline(chance, color="k", ls=":", lw=1, label="chance")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels([NAMES.get(m, m) for m in methods], fontsize=plots.MIN_FONT_PT, rotation=30, ha="right",
                       rotation_mode="anchor")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    plots.legend_below(ax, ncol=5)
    return ax.figure


def _save(fig: Figure, path: Path, dpi: int = 100) -> None:
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=plots.png_metadata(fig, dpi))


def study_figures(results: dict[str, Any], out: str | os.PathLike) -> list[Path]:
    """Write the study's figures (PNG) from ``results`` into ``out``; return their paths."""
    out = Path(out)
    written = []
    fig = Figure(figsize=(plots.FIG_WIDTH, plots.PANEL_HEIGHT + 0.6), layout="constrained")
    plots.barrier_bars({pair: results["paths"][pair]["barrier"] for pair in PATH_PAIRS}, ax=fig.subplots(),
                       ylabel="loss barrier (cue test data)", title=f"Linear paths ({results['cue']} cue)")
    written.append(out / "path_barriers.png")
    _save(fig, written[-1])

    fig = Figure(figsize=(plots.FIG_WIDTH, plots.PANEL_HEIGHT + 0.9), layout="constrained")
    view_bars(results["finetune"], results["chance"], ax=fig.subplots())
    written.append(out / "finetune_views.png")
    _save(fig, written[-1])

    fig = Figure(figsize=(plots.FIG_WIDTH, plots.PANEL_HEIGHT + 0.9), layout="constrained")
    plots.barrier_bars({NAMES.get(m, m): v["midpoint_loss_to_cue"] for m, v in results["finetune"].items()}, ax=fig.subplots(),
                       ylabel="midpoint loss − chord (cue data)", title="Path back to the cue model")
    written.append(out / "finetune_midpoint_loss.png")
    _save(fig, written[-1])
    return written


# --- sweeps ---------------------------------------------------------------------------------------

SWEEP_PAIRS: dict[str, str] = {"cue-nocue": "#d62728", "cue-cue": "#ff9896", "nocue-nocue": "#1f77b4"}


def _band(ax: Any, x: np.ndarray, mean: np.ndarray, std: np.ndarray, **style: Any) -> None:
    (line,) = ax.plot(x, mean, marker="o", ms=3, **style)
    if np.any(std > 0):
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)


def sweep_figure(doc: dict[str, Any] | str | os.PathLike, cue: str | None = None, axes: Any = None) -> Figure:
    """Barriers (top) and rand-img accuracy (bottom) against cue proportion, mean ± std over seeds.

    ``doc``: a sweep document or the path of a sweep.json (or its folder);
    ``cue``: which cue (default: the first of the sweep). Top: the barrier
    between the cue and cue-free children and the two same-mechanism
    controls. Bottom: rand-img accuracy of the cue child, the cue-free child
    and every fine-tuned model, with chance dotted.
    """
    from ..study import documents, sweep

    if not isinstance(doc, dict):
        doc = documents.load(documents.SWEEP, doc)
    cue = doc["cues"][0] if cue is None else cue
    if axes is None:
        axes = Figure(figsize=(plots.FIG_WIDTH, 2 * plots.PANEL_HEIGHT + 1.6), layout="constrained").subplots(2, 1)
    left, right = axes
    for pair, colour in SWEEP_PAIRS.items():
        _band(left, *sweep.series(doc, cue, "barriers", pair), color=colour, label=pair)
    left.axhline(0, color="k", lw=0.5)
    left.set_xlabel("cue proportion p")
    left.set_ylabel("loss barrier (cue test data)")
    left.set_title(f"Linear paths ({cue} cue)", fontsize=plots.MIN_FONT_PT + 1)
    _band(right, *sweep.series(doc, cue, "models", "cue", "rand_img"), color="#d62728", label="cue child")
    _band(right, *sweep.series(doc, cue, "models", "nocue", "rand_img"), color="#1f77b4", label="cue-free child")
    for method in doc["methods"]:
        _band(right, *sweep.series(doc, cue, "finetune", method, "rand_img"), ls="--", lw=1, label=method)
    right.axhline(doc["chance"], color="k", ls=":", lw=1, label="chance")
    right.set_ylim(0, 1)
    right.set_xlabel("cue proportion p")
    right.set_ylabel("rand-img accuracy")
    right.set_title("Mechanism read-out", fontsize=plots.MIN_FONT_PT + 1)
    plots.legend_below(left, ncol=3)
    plots.legend_below(right, ncol=2)
    return left.figure


def sweep_figures(doc: dict[str, Any], out: str | os.PathLike) -> list[Path]:
    """Write :func:`sweep_figure` for every cue with stored units as ``out/sweep_<cue>.png``; return the paths."""
    out = Path(out)
    written = []
    for cue in doc["cues"]:
        if cue in doc["units"]:
            written.append(out / f"sweep_{cue}.png")
            _save(sweep_figure(doc, cue), written[-1])
    return written
