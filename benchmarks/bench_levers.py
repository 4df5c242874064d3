"""Speed levers for training and path evaluation, each as a ratio against a baseline timed in the same run.

``train``: whole training steps through ``train.fit`` at the preset's batch
(random images, the preset's SGD settings). Baseline: ``fit`` as the study
calls it (weights channels-last, as ``models.build`` leaves them; inputs as
``cfg.channels_last`` says). Levers: channels-last inputs; NCHW weights;
``torch.compile`` of the model (its compile time is printed apart and left
out of the windows); other batch sizes (a science setting: reported only).

``eval``: loss and accuracy on four test views at ``--points`` points of a
linear path, BatchNorm re-estimated on the BN images in batches of
``eval_batch_size`` (as the study does). Baseline, written out here: eager,
BatchNorm re-estimated once per *view* (a separate BN pass before each view,
as the authors' loop does). Levers: BN once per t shared by the views
(``paths.evaluate_path``, the library's); the four views scored in one eval
pass (exact: in eval mode every view sees the same statistics); larger
batches for the scoring pass (not for the BN pass, whose batch size enters
the statistics); channels-last inputs; a compiled forward. The script checks
that each lever's losses equal the baseline's (to float reassociation) and
prints the largest difference.

Variants run interleaved (A B C … A B C …); each ratio is the median over
rounds of baseline time / variant time, printed with the load average.

    python benchmarks/bench_levers.py train [--preset cpu] [-p batch_size 256] [--rounds 5]
    python benchmarks/bench_levers.py eval  [--points 2] [--rounds 5] [--no-compile]
"""
from __future__ import annotations

import argparse
import copy
import time
from typing import Callable

import numpy as np
import torch
from timing import Times, calibrate, interleaved, load_average, median_ratio
from torch import nn
from workloads import fit_window, path_sets, preset_from

from cbft_core.kernels import paths, train
from cbft_core.kernels.data import ImageSet, batches
from cbft_core.study import presets, zoo


def compiled(model: nn.Module) -> tuple[nn.Module, float]:
    """``torch.compile(model)`` and the seconds its first forward + backward took (the compilation)."""
    fast = torch.compile(model)
    start = time.perf_counter()
    x = torch.zeros(8, *model.in_shape)
    fast(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return fast, time.perf_counter() - start


def report(title: str, times: Times, work: dict[str, int], baseline: str, extra: dict[str, str] | None = None,
           per_image: bool = True) -> None:
    """Print each variant's rate and its median per-round speed-up over ``baseline`` (wall clock and CPU time):
    per image, or per call when every variant computes the same result (``per_image=False``)."""
    print(f"\n{title} ({len(times[baseline])} interleaved rounds; {load_average()})")
    print(f"{'variant':44s} {'images/s':>9s} {'x wall':>7s} {'x cpu':>7s}  note")
    threads = torch.get_num_threads()
    for name in times:
        rate = work[name] * threads / float(np.median(times.cpu[name]))
        ratios = [median_ratio([tb / work[baseline] for tb in t[baseline]], [tv / work[name] for tv in t[name]])
                  if per_image else median_ratio(t[baseline], t[name]) for t in (times, times.cpu)]
        print(f"{name:44s} {rate:9.0f} {ratios[0]:6.2f}x {ratios[1]:6.2f}x  {(extra or {}).get(name, '')}")
    unit = "image" if per_image else "call (the same result)"
    print(f"(images/s from CPU time x threads; x: median over rounds of the baseline's time per {unit} / the variant's)")


def bench_train(cfg: presets.Preset, args: argparse.Namespace) -> None:
    steps = args.steps
    variants: dict[str, Callable[[], object]] = {}
    work: dict[str, int] = {}
    notes: dict[str, str] = {}
    base = "fit as the study calls it (baseline)"
    variants[base], work[base] = fit_window(cfg, cfg.batch_size, steps)
    name = "channels-last inputs"
    variants[name], work[name] = fit_window(cfg, cfg.batch_size, steps, channels_last=True)
    name = "NCHW weights and inputs"
    variants[name], work[name] = fit_window(
        cfg, cfg.batch_size, steps, model=zoo.build_model(cfg, seed=0).to(memory_format=torch.contiguous_format))
    if args.compile:
        fast, seconds = compiled(zoo.build_model(cfg, seed=0))
        name = "torch.compile(model)"
        variants[name], work[name] = fit_window(cfg, cfg.batch_size, steps, model=fast)
        notes[name] = f"compile {seconds:.1f} s, left out"
    for b in args.batches:
        if b != cfg.batch_size:
            name = f"batch {b} (science setting: report only)"
            variants[name], work[name] = fit_window(cfg, b, max(1, steps * cfg.batch_size // b))
    calls = {n: calibrate(fn, args.seconds) for n, fn in variants.items()}
    times = interleaved(variants, args.rounds, calls)
    report(f"training, preset {cfg.name}, batch {cfg.batch_size}", times, work, base, notes)


def per_view_bn(a: nn.Module, b: nn.Module, views: dict[str, ImageSet], ts: np.ndarray, bn: ImageSet,
                cfg: presets.Preset) -> dict[str, np.ndarray]:
    """The baseline: at each t, BatchNorm re-estimated before every view, then the view scored (eager)."""
    sa, sb = a.state_dict(), b.state_dict()
    template = copy.deepcopy(a)
    loss = {name: np.empty(len(ts)) for name in views}
    for i, t in enumerate(ts):
        with torch.no_grad():
            template.load_state_dict(paths.linear(sa, sb, float(t)))
        for name, data in views.items():
            paths.reestimate_bn(template, bn, cfg.bn_images, cfg.bn_average, cfg.eval_batch_size)
            loss[name][i] = train.evaluate(template, data, cfg.eval_batch_size)["loss"]
    return loss


def fused_views(a: nn.Module, b: nn.Module, views: dict[str, ImageSet], ts: np.ndarray, bn: ImageSet,
                cfg: presets.Preset, batch_size: int, channels_last: bool = False,
                template: nn.Module | None = None, run: Callable[[torch.Tensor], torch.Tensor] | None = None,
                ) -> dict[str, np.ndarray]:
    """A candidate: BN once per t, then every view's images scored in one eval pass of ``batch_size``
    (by ``run``, e.g. a compiled ``template``, when given)."""
    sa, sb = a.state_dict(), b.state_dict()
    template = copy.deepcopy(a) if template is None else template
    run = template if run is None else run
    names = list(views)
    joined = ImageSet(torch.cat([views[n].images for n in names]), torch.cat([views[n].labels for n in names]),
                      views[names[0]].classes)
    sizes = [len(views[n]) for n in names]
    loss = {name: np.empty(len(ts)) for name in views}
    for i, t in enumerate(ts):
        with torch.no_grad():
            template.load_state_dict(paths.linear(sa, sb, float(t)))
        paths.reestimate_bn(template, bn, cfg.bn_images, cfg.bn_average, cfg.eval_batch_size)
        template.eval()
        with torch.inference_mode():
            if channels_last:  # uint8 → float straight into NHWC: one pass instead of convert, then relayout
                inputs = (joined.images[s:s + batch_size].to(torch.float32, memory_format=torch.channels_last)
                          .div_(127.5).sub_(1.0) for s in range(0, len(joined), batch_size))
            else:
                inputs = (x for x, _ in batches(joined, batch_size))
            logits = torch.cat([run(x) for x in inputs])
        for name, part, labels in zip(names, logits.split(sizes), joined.labels.split(sizes)):
            loss[name][i] = train.loss_acc(part, labels)["loss"]
    return loss


def bench_eval(cfg: presets.Preset, args: argparse.Namespace) -> None:
    a, b = zoo.build_model(cfg, seed=0), zoo.build_model(cfg, seed=1)
    views, bn = path_sets(cfg, args.n_test)
    ts = np.linspace(0.0, 1.0, args.points)
    per_point = len(bn) + sum(len(v) for v in views.values())
    base = "eager, BN re-estimated per view (baseline)"
    variants: dict[str, Callable[[], dict[str, np.ndarray]]] = {
        base: lambda: per_view_bn(a, b, views, ts, bn, cfg),
        "evaluate_path (BN once per t)": lambda: paths.evaluate_path(
            a, b, views, ts, bn, bn_images=cfg.bn_images, bn_average=cfg.bn_average,
            batch_size=cfg.eval_batch_size, progress=False).loss,
        f"views fused, batch {cfg.eval_batch_size}": lambda: fused_views(a, b, views, ts, bn, cfg,
                                                                         cfg.eval_batch_size),
    }
    work = {base: len(ts) * (len(views) * len(bn) + per_point - len(bn))}
    for size in args.eval_batches:
        variants[f"views fused, batch {size}"] = (lambda s=size: fused_views(a, b, views, ts, bn, cfg, s))
    variants["views fused, inputs normalised into NHWC"] = lambda: fused_views(a, b, views, ts, bn, cfg,
                                                                        cfg.eval_batch_size, channels_last=True)
    notes = {}
    if args.compile:
        template = copy.deepcopy(a)
        fast = torch.compile(template)
        start = time.perf_counter()
        fused_views(a, b, views, ts[:1], bn, cfg, cfg.eval_batch_size, template=template, run=fast)
        notes["views fused, compiled forward"] = f"compile {time.perf_counter() - start:.1f} s, left out"
        variants["views fused, compiled forward"] = lambda: fused_views(
            a, b, views, ts, bn, cfg, cfg.eval_batch_size, template=template, run=fast)
    for name in variants:
        work.setdefault(name, len(ts) * per_point)
    reference = variants[base]()
    for name, fn in variants.items():
        got = fn()
        diff = max(float(np.max(np.abs(got[v] - reference[v]))) for v in views)
        notes[name] = (notes.get(name, "") + f" max |loss diff| {diff:.1e}").strip()
    calls = {n: calibrate(fn, args.seconds) for n, fn in variants.items()}
    times = interleaved(variants, args.rounds, calls)
    report(f"path evaluation, preset {cfg.name}: {args.points} points x (BN on {len(bn)} + 4 views x "
           f"{len(views['clean'])}) images; images/s counts every image through the network",
           times, work, base, notes, per_image=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "eval"))
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one timed window")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile lever")
    parser.add_argument("--steps", type=int, default=8, help="train: batches per fit call")
    parser.add_argument("--batches", type=int, nargs="*", default=[256, 512], help="train: other batch sizes")
    parser.add_argument("--points", type=int, default=2, help="eval: path points per call")
    parser.add_argument("--n-test", type=int, default=None, help="eval: images per view (the preset's)")
    parser.add_argument("--eval-batches", type=int, nargs="*", default=[2000, 4000],
                        help="eval: larger batches for the fused scoring pass")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset_from(args.preset, args.p)
    print(f"{cfg.model} (preset {cfg.name}), {torch.get_num_threads()} threads; {load_average()}")
    (bench_train if args.what == "train" else bench_eval)(cfg, args)


if __name__ == "__main__":
    main()
