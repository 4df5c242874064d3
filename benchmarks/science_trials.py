"""Trials of the default experimental setting: does every claim of the paper hold, with margin, per seed?

Runs the study's own cached steps (:func:`cbft_core.study.graph.result`) at the ``cpu`` preset
with overrides, optionally on another procedural data recipe, and writes one
JSON file per trial with every claim's numbers per seed and each stage's wall
time. Each trial gets its own model cache (a recipe is not part of the cache
key, so trials must not share one)::

    python benchmarks/science_trials.py --name lead --seeds 0 1 2 \\
        --shapes RADIUS=6.0,9.5 PIXEL_NOISE=0.12 CLUTTER_ALPHA=0.45 MIN_CONTRAST=0.3 \\
        -p lr 0.025 -p child_epochs 14 --stages zoo paths quad ft cbft --out trials/

The chapters' claims are checked by :mod:`cbft_core.study.claims`; this script
only measures (it is how the default setting was chosen, kept so that anyone
can repeat the search).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

STAGES = ("zoo", "paths", "quad", "ft", "cbft", "independent")


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True, help="trial name (also names its cache folder)")
    ap.add_argument("--cache-name", default=None,
                    help="cache folder to share with another trial on the same recipe (default: --name)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--shapes", nargs="*", default=[], metavar="NAME=VALUE",
                    help="procedural-recipe constants of cbft_core.kernels.data.shapes (tuples as a,b)")
    ap.add_argument("--cnn-layers", nargs="*", default=None, metavar="CHANNELS,STRIDE",
                    help="conv layers of the cnn model (cbft_core.kernels.models._CNN_LAYERS), e.g. 16,2 32,2")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="preset override")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--methods", nargs="+", default=["ft", "llrt", "lpft"])
    ap.add_argument("--cbft-methods", nargs="+", default=["cbft"])
    ap.add_argument("--cue", default="box")
    ap.add_argument("--out", default="trials")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    cache_root = Path(os.environ.get("CBFT_TRIALS_CACHE", "/tmp/cbft-trials"))
    os.environ["CBFT_CACHE_DIR"] = str(cache_root / (args.cache_name or args.name))
    import torch

    torch.set_num_threads(args.threads)
    from cbft_core.kernels import connectivity
    from cbft_core.kernels.data import shapes
    from cbft_core.study import graph, presets

    recipe = {}
    for item in args.shapes:
        key, _, raw = item.partition("=")
        if not hasattr(shapes, key):
            ap.error(f"--shapes: unknown constant {key!r}")
        val = tuple(float(v) for v in raw.split(",")) if "," in raw else _value(raw)
        setattr(shapes, key, val)
        recipe[key] = val
    if args.cnn_layers:
        from cbft_core.kernels import models

        models._CNN_LAYERS = tuple(tuple(int(v) for v in layer.split(",")) for layer in args.cnn_layers)
        recipe["cnn_layers"] = models._CNN_LAYERS
    overrides = {k: _value(v) for k, v in args.p}
    cfg = presets.get("cpu", seeds=args.seeds, **overrides)
    chance = 1.0 / cfg.num_classes
    out: dict = {"name": args.name, "recipe": recipe, "overrides": overrides, "cue": args.cue,
                 "seeds": args.seeds, "chance": chance, "per_seed": {}, "seconds": {}}

    def timed(stage: str, fn):
        t0 = time.perf_counter()
        value = fn()
        out["seconds"][stage] = out["seconds"].get(stage, 0.0) + time.perf_counter() - t0
        return value

    for seed in args.seeds:
        row: dict = {}
        out["per_seed"][seed] = row
        if "zoo" in args.stages:
            for name, p in (("cue", None), ("nocue", 0.0), ("cue100", 1.0)):
                row[f"acc_{name}"] = timed("zoo", lambda: graph.result(
                    cfg, "child-views", seed=seed, proportion=p, cue=args.cue, progress=False))
        if "paths" in args.stages:
            for pair in ("cue-nocue", "nocue-nocue", "cue-cue", "cue100-nocue"):
                res = timed("paths", lambda: graph.result(cfg, "path", seed=seed, pair=pair, cue=args.cue,
                                                          progress=False))
                row[f"barrier_{pair}"] = connectivity.barrier(res.loss["cue"], res.ts)[0]
                row[f"barrier_clean_{pair}"] = connectivity.barrier(res.loss["clean"], res.ts)[0]
        if "quad" in args.stages:  # the study's own summary (cfg.switch_points points on the quadratic path)
            summary = timed("quad", lambda: graph.result(cfg, "quadratic", seed=seed, cue=args.cue, progress=False))
            row["quad_barrier"] = summary["barrier"]
            row["quad_linear_barrier"] = summary["linear_barrier"]
            row["switch_width"] = summary["switch_width"]
            bezier = graph.result(cfg, "path", seed=seed, pair="cue-nocue", cue=args.cue, curve="bezier",
                                  progress=False)
            row["quad_rand_img"] = list(bezier.acc["rand-img"])
        for method in (args.methods if "ft" in args.stages else []) + \
                (args.cbft_methods if "cbft" in args.stages else []):
            stage = "cbft" if method.startswith("cbft") else "ft"
            s = timed(stage, lambda: graph.result(cfg, "finetune-summary", seed=seed, method=method, cue=args.cue,
                                                  progress=False))
            row[f"ft_{method}"] = {**s["views"], "barrier_to_cue": s["barrier_to_cue"]}
        if "independent" in args.stages:
            row["independent"] = timed("independent", lambda: independent_models(cfg, seed, args.cue))
        print(f"[{args.name}] seed {seed}: " + json.dumps(row, default=float)[:2000], flush=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{args.name}.json").write_text(json.dumps(out, indent=1, default=float))
    print(f"[{args.name}] seconds: {json.dumps({k: round(v) for k, v in out['seconds'].items()})}")
    return 0


def independent_models(cfg, seed: int, cue: str) -> dict:
    """The headline numbers with cue and cue-free models trained from their own initialisations, as the
    authors train them (no setting of the study does this; ``python -m cbft_core.study.fidelity`` measures
    every other departure): the cue-nocue cue-view barrier, the cue model's rand-img accuracy and CBFT's
    from that model, with ``scratch_epochs`` = ``parent_epochs`` + ``child_epochs`` (the same training)."""
    import numpy as np

    from cbft_core.kernels import cbft, connectivity, paths
    from cbft_core.kernels.optim import SGDConfig
    from cbft_core.kernels.seeding import role_seed
    from cbft_core.study import graph, zoo

    scratch_cfg = cfg.replace(scratch_epochs=cfg.parent_epochs + cfg.child_epochs)
    cue_m = graph.result(scratch_cfg, "scratch", seed=seed, cue=cue, proportion=cfg.proportion, progress=False)
    free_m = graph.result(scratch_cfg, "scratch", seed=seed, cue=cue, proportion=0.0, progress=False)
    res = paths.evaluate_path(cue_m, free_m, zoo.path_views(cfg, cue), np.linspace(0, 1, cfg.path_points),
                              zoo.bn_data(cfg, cue), bn_images=cfg.bn_images, batch_size=cfg.eval_batch_size,
                              progress=False)
    tuned, _ = cbft.run("cbft", cue_m, zoo.clean_subset(cfg, seed, cfg.n_clean, cue), zoo.cue_subset(cfg, seed, cue),
                        SGDConfig(lr=cfg.cbft_lr, momentum=cfg.momentum, weight_decay=cfg.ft_weight_decay),
                        epochs=cfg.cbft_epochs, batch_size=cfg.ft_batch_size, margin=cfg.cbft_margin,
                        lam=cfg.cbft_lambda, warmup_epochs=cfg.cbft_warmup_epochs,
                        seed=role_seed("finetune", seed=seed, cue=cue), progress=False)
    views = zoo.test_views(cfg, cue)
    return {"cue_nocue": connectivity.barrier(res.loss["cue"], res.ts)[0],
            "cue_rand_img": zoo.view_accuracies(cue_m, views, cfg.eval_batch_size)["rand-img"],
            "cbft_rand_img": zoo.view_accuracies(tuned, views, cfg.eval_batch_size)["rand-img"]}


if __name__ == "__main__":
    sys.exit(main())
