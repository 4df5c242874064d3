"""Every figure of cbft_core.presentation drawn from small synthetic inputs (for tests/test_figures_narrow.py).

``python tests/figure_samples.py OUT_DIR`` also writes them as PNGs, to look at.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cbft_core.kernels.data.imageset import ImageSet  # noqa: E402
from cbft_core.kernels.landscape import ExplorerGrid  # noqa: E402
from cbft_core.kernels.paths import PathResult  # noqa: E402
from cbft_core.presentation import explorer, figures, plots  # noqa: E402

CLASSES = ("circle", "square", "triangle", "pentagon", "hexagon", "star", "cross", "heart", "ring", "arrow")
METHODS = ("ft", "llrt", "lpft", "cbft", "cbft-no-barrier", "cbft-no-invariance")


def _images(n: int = 40, height: int = 32, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.randint(0, 256, (n, 3, height, 32), generator=g, dtype=torch.uint8),
                    torch.arange(n) % 10, CLASSES, has_cue=torch.arange(n) % 3 == 0)


def _path(points: int = 11) -> PathResult:
    ts = np.linspace(0, 1, points)
    bump = np.sin(np.pi * ts)
    return PathResult(ts=ts, loss={v: 0.3 + k * 0.2 + bump * (k + 1) * 0.3 for k, v in enumerate(plots.VIEW_COLOURS)},
                      acc={v: 0.9 - 0.4 * bump * (k + 1) / 4 for k, v in enumerate(plots.VIEW_COLOURS)})


def _results() -> dict:
    seeds = [0.2, 0.25, 0.3]
    views = {"clean": seeds, "cue": [0.9] * 3, "rand_cue": [0.15] * 3, "rand_img": [0.6, 0.62, 0.64]}
    return {"cue": "box", "chance": 0.1,
            "paths": {p: {"barrier": [0.1 * k, 0.12 * k, 0.11 * k]}
                      for k, p in enumerate(("cue-nocue", "nocue-nocue", "cue-cue", "cue100-nocue"))},
            "finetune": {m: dict(views, barrier_to_cue=[0.3, 0.2, 0.4], midpoint_loss_to_cue=[0.0, 0.0, 0.0])
                         for m in METHODS}}


def _grid(k: int = 3) -> ExplorerGrid:
    rng = np.random.default_rng(0)
    return ExplorerGrid(bends=np.array([0.0, 0.5, 1.0]), ts=np.linspace(0, 1, 6), loss=rng.random((3, 6)) * 2,
                        acc=rng.random((3, 6)), probs=rng.dirichlet(np.ones(10), size=(3, 6, k)),
                        sample_index=np.arange(k), labels=np.arange(k), classes=CLASSES)


def builders() -> dict[str, Callable[[], object]]:
    """Name → a function drawing one figure of the library (a matplotlib Figure)."""
    path = _path()
    history = {"barrier_ce": [0.1, 0.8, 1.2, 1.4], "clean_ce": [2.0, 1.6, 1.4, 1.3],
               "invariance": [0.0, 0.3, 0.2, 0.1], "clean_acc": [0.2, 0.3, 0.35, 0.4]}
    views = {"clean": _images(), "cue": _images(seed=1), "rand-cue": _images(seed=2), "rand-img": _images(seed=3)}
    fine = {plots_name: {"ts": path.ts, "loss": {"cue": path.loss["cue"]}, "acc": {"rand-img": path.acc["rand-img"]}}
            for plots_name in ("FT", "CBFT", "CBFT w/o barrier", "CBFT w/o invariance")}
    return {
        "gallery": lambda: plots.gallery(views, list(range(10)), title="Box cue: the four views"),
        "path_curves": lambda: plots.path_curves(path, "loss", title="loss on each view (dashed: chord)",
                                                 labels=("cue", "no cue")),
        "barrier_bars": lambda: plots.barrier_bars({"cue-nocue": [1.2, 1.4, 1.3], "nocue-nocue": [0.1, 0.2, 0.1],
                                                    "cue-cue": [0.0, 0.1, 0.05]}, title="cue view"),
        "barrier_bars_zero": lambda: plots.barrier_bars(
            {f"{m} (n={n})": [0.0, 0.0, 0.0] for n in (500, 2500) for m in ("FT", "LLRT", "LP-FT")}
            | {"control (cue-cue)": [0.0, 0.0, 0.0]}, ylabel="loss barrier on cue data",
            title="Barrier between θc and ..."),
        "finetune_paths": lambda: plots.finetune_paths(fine, 0.1, control=path, chords=True,
                                                       title="Linear path from θc (seed 0)"),
        "training_history": lambda: plots.training_history(history, 1.5, title="CBFT training history"),
        "barrier_forms": lambda: plots.barrier_forms(path.ts, path.loss["clean"], path.ts, path.loss["cue"],
                                                     (1.1, 0.5), (1.0, 0.5)),
        "method_bars": lambda: plots.method_bars({f"n = {n}": {m: [0.5, 0.6, 0.55] for m in ("FT", "LLRT", "LP-FT")}
                                                  for n in (500, 2500)}, ("θc", [0.9, 0.92, 0.91]), 0.1,
                                                 "rand-img accuracy", title="Cue reliance after fine-tuning"),
        "class_samples": lambda: plots.class_samples(_images(200), 3, title="box / cue: class pentagon, p = 0.8"),
        "cue_layout": lambda: plots.cue_layout(CLASSES),
        "view_bars": lambda: figures.view_bars(_results()["finetune"], 0.1),
        "explorer_frame": lambda: explorer.render_frame(_grid(), 1, 2, _images(3), labels=("scratch A", "scratch B")),
        "sweep_figure": lambda: _sweep(),
        "subplots_two": lambda: _two_panels(),
    }


def _two_panels():
    fig, axes = plots.subplots(2)
    for ax in axes:
        ax.plot([0, 1], [0, 1], label="a line with a long label")
        ax.plot([0, 1], [1, 0], label="another")
        ax.set(xlabel="t", ylabel="loss")
        plots.legend_below(ax)
    return fig


def _sweep():
    doc = {"cues": ["box"], "methods": ["ft", "cbft"], "chance": 0.1}
    from cbft_core.study import sweep

    def series(d, cue, *keys):
        x = np.array([0.0, 0.5, 1.0])
        return x, np.array([0.1, 0.5, 0.9]), np.array([0.01, 0.05, 0.02])

    original = sweep.series
    sweep.series = series
    try:
        return figures.sweep_figure(doc, "box")
    finally:
        sweep.series = original


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "figure-samples")
    out.mkdir(parents=True, exist_ok=True)
    for name, build in builders().items():
        fig = build()
        dpi = explorer.FRAME_DPI if name == "explorer_frame" else 100
        fig.savefig(out / f"{name}.png", dpi=dpi, bbox_inches="tight", metadata=plots.png_metadata(fig, dpi))
        print(out / f"{name}.png")
