"""Benchmark: cbft_core.kernels.paths.evaluate_path against the reference code's loop structure.

Baseline (written here, after the structure of the reference code): for every
t a freshly constructed model is loaded with the interpolated weights; for
every evaluation set BatchNorm is re-estimated with its own pass over the BN
data, then the set is evaluated under ``no_grad`` with batches of 128.

Ours: ``evaluate_path`` with one template module, BN re-estimated once per t
and shared by every set (``bn_data`` = the clean training images, the
reference code's choice), batches of 512, ``inference_mode``.

Both use the same models (cnn, width 1, 10 classes), the same four
counterfactual test views of 1000 images each, the same BN images and 11
points; the script checks that both give the same losses and prints both
times and their ratio. Run: ``python benchmarks/bench_paths.py``.
Target: >= 4x. (``bench_levers.py eval`` compares the evaluation levers
against the same per-view BN loop, interleaved.)

What bounds the ratio: per t the baseline passes 4 x (2000 BN + 1000
evaluated) = 12 000 images through the network, ``evaluate_path`` 2000 +
4 x 1000 = 6000 with the shared source, so the work ratio is 2; the rest is
batch size and per-t model construction.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cbft_core.kernels.data import ImageSet, batches, load_base, make_view
from cbft_core.kernels.models import build
from cbft_core.kernels.paths import evaluate_path
from timing import best_time


def reference_reset_bn(model: nn.Module, data: ImageSet, batch_size: int) -> None:
    """BN re-estimation as in the reference: reset, cumulative average over one pass in train mode."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for x, _ in batches(data, batch_size):
            model(x)


def reference_evaluate_path(state_a, state_b, sets, ts, bn_sets, batch_size=128):
    """The baseline: a new model per t, a BN pass per evaluation set, small batches, no_grad."""
    loss = {name: [] for name in sets}
    for t in ts:
        model = build("cnn", 10)
        model.load_state_dict({
            k: (1 - t) * v + t * state_b[k] if v.is_floating_point() else v for k, v in state_a.items()
        })
        for name, data in sets.items():
            reference_reset_bn(model, bn_sets[name], batch_size)
            model.eval()
            total, n = 0.0, 0
            with torch.no_grad():
                for x, y in batches(data, batch_size):
                    total += F.cross_entropy(model(x), y, reduction="sum").item()
                    n += len(y)
            loss[name].append(total / n)
    return {k: np.asarray(v) for k, v in loss.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-eval", type=int, default=1000, help="images per evaluation set")
    parser.add_argument("--n-bn", type=int, default=2000, help="clean training images for BN re-estimation")
    parser.add_argument("--points", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per method (best is kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    test = load_base("shapes", split="test", n=args.n_eval, seed=0)
    sets = {view: make_view(test, cue="box", view=view, seed=0) for view in ("clean", "cue", "rand-cue", "rand-img")}
    clean_train = load_base("shapes", split="train", n=args.n_bn, seed=0)
    model_a, model_b = build("cnn", 10, seed=0), build("cnn", 10, seed=1)
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    ts = np.linspace(0, 1, args.points)

    print(f"cnn, {len(sets)} sets x {args.n_eval} images, {args.points} points, "
          f"{torch.get_num_threads()} threads")
    reference_evaluate_path(state_a, state_b, {"clean": sets["clean"]}, ts[:1], {"clean": sets["clean"]})  # warm-up
    for label, bn_ref, bn_ours, n_bn in (
        ("shared clean-train BN source", {k: clean_train for k in sets}, clean_train, args.n_bn),
    ):
        t_ref, ref = best_time(lambda: reference_evaluate_path(state_a, state_b, sets, ts, bn_ref), args.repeats)
        t_ours, res = best_time(lambda: evaluate_path(model_a, model_b, sets, ts, bn_data=bn_ours,
                                                  bn_images=n_bn, batch_size=512, progress=False), args.repeats)
        diff = max(float(np.max(np.abs(ref[k] - res.loss[k]))) for k in sets)
        print(f"[{label}] reference loop: {t_ref:.2f} s   evaluate_path: {t_ours:.2f} s   "
              f"ratio: {t_ref / t_ours:.2f}x   BN resets: {res.bn_resets}   max |loss diff|: {diff:.2e}")


if __name__ == "__main__":
    main()
