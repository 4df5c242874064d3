"""Figures of a whole study, drawn from its results.json (:func:`cbft_core.study.pipeline.run`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..study.pipeline import PATH_PAIRS, VIEW_KEYS
from ..study.replication import NAMES
from . import plots

__all__ = ["view_bars", "study_figures"]


def view_bars(block: dict[str, dict[str, list[float]]], chance: float, ax: Any = None) -> Figure:
    """Grouped bars: each method's accuracy on the four views (mean ± std over seeds), chance dotted."""
    if ax is None:
        ax = Figure(figsize=(8.0, 3.4)).subplots()
    methods = list(block)
    width = 0.8 / len(VIEW_KEYS)
    for j, (view, key) in enumerate(VIEW_KEYS.items()):
        vals = np.asarray([block[m][key] for m in methods], dtype=float)
        ax.bar(np.arange(len(methods)) + (j - 1.5) * width, vals.mean(1), width,
               yerr=vals.std(1) if vals.shape[1] > 1 else None, label=view,
               color=plots.VIEW_COLOURS[view], capsize=2)
    ax.axhline(chance, color="k", ls=":", lw=1, label="chance")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels([NAMES.get(m, m) for m in methods], fontsize=9)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=9, ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.figure.tight_layout()
    return ax.figure


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=100, bbox_inches="tight")


def study_figures(results: dict[str, Any], out: str | os.PathLike) -> list[Path]:
    """Write the study's figures (PNG) from ``results`` into ``out``; return their paths."""
    out = Path(out)
    written = []
    fig = Figure(figsize=(4.6, 3.2))
    plots.barrier_bars({pair: results["paths"][pair]["barrier"] for pair in PATH_PAIRS}, ax=fig.subplots(),
                       ylabel="loss barrier (cue test data)", title=f"Linear paths ({results['cue']} cue)")
    written.append(out / "path_barriers.png")
    _save(fig, written[-1])

    fig = Figure(figsize=(8.0, 3.4))
    view_bars(results["finetune"], results["chance"], ax=fig.subplots())
    written.append(out / "finetune_views.png")
    _save(fig, written[-1])

    fig = Figure(figsize=(4.6, 3.2))
    plots.barrier_bars({NAMES.get(m, m): v["midpoint_loss_to_cue"] for m, v in results["finetune"].items()}, ax=fig.subplots(),
                       ylabel="midpoint loss − chord (cue data)", title="Path back to the cue model")
    written.append(out / "finetune_midpoint_loss.png")
    _save(fig, written[-1])
    return written
