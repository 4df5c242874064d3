"""Roofline of the model's own convolutions, and how close training and path evaluation come to it.

1. The roofline: the conv layers of the preset's model alone (``zoo.build_model``;
   the cnn's are ``models._CNN_LAYERS`` at the time of the run) — the same
   channels, kernels, strides and spatial sizes, each layer fed a random input
   of its own shape, no BatchNorm, ReLU or head — forward only (inference
   mode) and forward + backward, in NCHW and channels-last (inputs and weights)
   at batches ``--batches``. FLOPs are counted analytically: 2 per
   multiply-accumulate forward; forward + backward is 3× that (output, input
   gradient, weight gradient) except for the first layer, whose input (the
   images) gets no gradient in training either (2×). The fastest layout and
   batch is the roofline of each mode.
2. (a) the model's whole training step through ``train.fit`` at the preset's
   ``batch_size`` (data order, normalisation, loss check, SGD update
   included), as a fraction of the forward + backward roofline; (b) path
   evaluation through ``paths.evaluate_path`` (per point: BatchNorm
   re-estimated on ``bn_images`` training images, then the four views in eval
   mode at ``eval_batch_size``) as a fraction of the forward roofline. Each
   counts only its conv FLOPs, so the fraction says how much of the time the
   convolutions run at the roofline's speed.

Step 2 interleaves roofline and model windows (A B C D A B C D …) and prints
the median over rounds of each round's ratio: load from other processes hits
both sides of a ratio alike. Absolute rates are printed for orientation only,
with the load average. Images are random (speed does not depend on them).

    python benchmarks/bench_roofline.py                         # the cpu preset, 2 threads, ~1 min
    python benchmarks/bench_roofline.py -p batch_size 256 --rounds 7
    python benchmarks/bench_roofline.py --preset tiny --seconds 0.2 --rounds 2   # smoke run
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch
from timing import calibrate, interleaved, load_average, median_ratio
from workloads import (
    ConvChain,
    conv_layers,
    fit_window,
    forward_flops,
    path_window,
    preset_from,
    training_flops,
)

from cbft_core.study import zoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a preset setting (e.g. -p batch_size 256)")
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 256, 512], help="roofline batch sizes")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed window")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of step 2")
    parser.add_argument("--select-rounds", type=int, default=3, help="interleaved rounds of step 1 (the best counts)")
    parser.add_argument("--points", type=int, default=2, help="path points per evaluation window")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset_from(args.preset, args.p)
    model = zoo.build_model(cfg, seed=0)
    layers = conv_layers(model, model.in_shape)
    shapes = [s for _, s in layers]
    fwd, fb = forward_flops(shapes), training_flops(shapes)
    print(f"{cfg.model} (preset {cfg.name}, width {cfg.width}): {len(shapes)} conv layers, "
          f"{fwd / 1e6:.2f} MFLOP forward / {fb / 1e6:.2f} MFLOP forward+backward per image; "
          f"{torch.get_num_threads()} threads; {load_average()}")
    for s in shapes:
        print(f"  conv {s.c_in:4d} -> {s.c_out:4d}  k{s.kernel[0]} s{s.stride[0]}  {s.h_in}x{s.w_in} -> "
              f"{s.h_out}x{s.w_out}  {2 * s.macs / 1e6:6.2f} MFLOP")

    # 1. the roofline: every layout and batch, in turn
    threads = torch.get_num_threads()
    chains = {(cl, b): ConvChain(layers, b, cl) for cl in (False, True) for b in args.batches}
    variants, calls = {}, {}
    for (cl, b), chain in chains.items():
        for mode, fn in (("fwd", chain.forward), ("fwd+bwd", chain.forward_backward)):
            variants[(mode, cl, b)] = fn
            calls[(mode, cl, b)] = calibrate(fn, args.seconds / 2)
    times = interleaved(variants, args.select_rounds, calls)

    def flops(name: tuple) -> float:
        return name[2] * (fwd if name[0] == "fwd" else fb)

    wall = {name: flops(name) / min(t) for name, t in times.items()}
    cpu = {name: flops(name) * threads / min(t) for name, t in times.cpu.items()}
    print(f"\nroofline candidates (best of {args.select_rounds} interleaved windows; {load_average()})")
    print(f"{'mode':8s} {'layout':14s} {'batch':>5s} {'GFLOP/s wall':>12s} {'GFLOP/s cpu':>12s}")
    for (mode, cl, b) in variants:
        name = (mode, cl, b)
        print(f"{mode:8s} {'channels-last' if cl else 'NCHW':14s} {b:5d} {wall[name] / 1e9:12.1f} {cpu[name] / 1e9:12.1f}")
    best = {mode: max((n for n in cpu if n[0] == mode), key=cpu.get) for mode in ("fwd", "fwd+bwd")}

    # 2. the model against the roofline, interleaved
    train_step, train_images = fit_window(cfg, cfg.batch_size, steps=8)
    evaluate, eval_images = path_window(cfg, args.points)
    windows = {"roof fwd+bwd": chains[best["fwd+bwd"][1:]].forward_backward, "train.fit": train_step,
               "roof fwd": chains[best["fwd"][1:]].forward, "evaluate_path": evaluate}
    work = {"roof fwd+bwd": flops(best["fwd+bwd"]), "train.fit": train_images * fb,
            "roof fwd": flops(best["fwd"]), "evaluate_path": eval_images * fwd}
    calls = {name: calibrate(fn, args.seconds) for name, fn in windows.items()}
    times = interleaved(windows, args.rounds, calls)
    rate = {name: [work[name] / t for t in times[name]] for name in windows}
    rate_cpu = {name: [work[name] * threads / t for t in times.cpu[name]] for name in windows}
    fraction = {"train.fit": (median_ratio(rate["train.fit"], rate["roof fwd+bwd"]),
                              median_ratio(rate_cpu["train.fit"], rate_cpu["roof fwd+bwd"])),
                "evaluate_path": (median_ratio(rate["evaluate_path"], rate["roof fwd"]),
                                  median_ratio(rate_cpu["evaluate_path"], rate_cpu["roof fwd"]))}

    def layout(name: tuple) -> str:
        return f"{'channels-last' if name[1] else 'NCHW'}, batch {name[2]}"

    labels = {"roof fwd+bwd": f"conv roofline fwd+bwd ({layout(best['fwd+bwd'])})",
              "train.fit": f"train.fit, batch {cfg.batch_size}",
              "roof fwd": f"conv roofline fwd ({layout(best['fwd'])})",
              "evaluate_path": f"evaluate_path, eval batch {cfg.eval_batch_size}"}
    per_image = {"roof fwd+bwd": fb, "train.fit": fb, "roof fwd": fwd, "evaluate_path": fwd}
    print(f"\nthe model against the roofline ({args.rounds} interleaved rounds; {load_average()}); "
          "fraction = median over rounds of model rate / roofline rate, from wall-clock and from CPU time")
    print(f"{'what':44s} {'GFLOP/s':>8s} {'images/s':>9s} {'fraction wall':>13s} {'fraction cpu':>12s}")
    for name, label in labels.items():
        r = statistics.median(rate_cpu[name])
        share = "".join(f"{100 * f:12.0f}% " for f in fraction[name]) if name in fraction else ""
        print(f"{label:44s} {r / 1e9:8.1f} {r / per_image[name]:9.0f} {share}")
    print("(GFLOP/s and images/s from CPU time x threads: the rate on a quiet machine if the threads scale)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": cfg.name, "overrides": args.p, "threads": threads, "load": load_average(),
                       "flops_forward": fwd, "flops_train": fb,
                       "roofline_candidates_cpu": {f"{m} {'cl' if cl else 'nchw'} {b}": r
                                                   for (m, cl, b), r in cpu.items()},
                       "fractions_wall_cpu": fraction,
                       "rates_cpu": {k: statistics.median(v) for k, v in rate_cpu.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
