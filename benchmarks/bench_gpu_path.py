"""Training images/s of the GPU path against the previous host-fed loop, and the fraction of the device's peak.

Baseline (written out here, the loop ``train.fit`` ran before the GPU path):
each batch is permuted, indexed and normalised on the host, copied to the
device as float32 NCHW, and the loss is checked for NaN with a host
synchronisation every step. Ours: ``train.fit`` with the set moved to the
device once as uint8, batches cut and normalised there, NaN checks deferred
to the end of the epoch; then with ``channels_last``; then with bf16 autocast
as well. Every variant trains the same model from the same initialisation on
the same procedural CIFAR-sized images (``load_base("shapes")``) for one epoch
after a warm-up epoch (the best of ``--repeats`` timed epochs counts).
On the CPU every variant runs the same arithmetic (bf16 matrix products are
slow there), so only a GPU run says anything about the path.

The device's ceiling is measured in the same run: the roofline of the model's
own conv layers (``workloads.ConvChain``, as ``bench_roofline.py`` measures
it: the same shapes alone, forward + backward, the faster of NCHW and
channels-last, at the benchmark's batch), in float32 (TF32 off) and in
bfloat16. A training image costs the conv FLOPs counted analytically
(``workloads.training_flops``); achieved FLOP/s over the roofline of the same
precision is the fraction printed. ``--path`` also times
``paths.evaluate_path`` for one pair (11 points, the four counterfactual
views of ``--n-test`` images).

    python benchmarks/bench_gpu_path.py                      # the paper's VGG-13, batch 256, 10 000 images
    python benchmarks/bench_gpu_path.py --n 50000 --path     # a paper-scale epoch and one pair's path
    python benchmarks/bench_gpu_path.py --device cpu --n 512 --width 0.125 --batch 64   # CPU smoke run
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from cbft_core.errors import NonFiniteLossError
from cbft_core.kernels import models, paths, train
from cbft_core.kernels.data import ImageSet, counterfactual_views, load_base
from cbft_core.kernels.optim import SGDConfig
from workloads import ConvChain, conv_layers, training_flops


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def host_fed_epoch(model: torch.nn.Module, data: ImageSet, batch_size: int, seed: int, device: torch.device) -> None:
    """The baseline: one epoch fed from the host, batch by batch, with a NaN check (host sync) per step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    model.train()
    for start in range(0, len(data), batch_size):
        idx = order[start:start + batch_size]
        x = (data.images[idx].float() / 127.5 - 1.0).to(device, non_blocking=True)
        y = data.labels[idx].to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        if not bool(torch.isfinite(loss)):  # a host synchronisation every step, as that loop had
            raise NonFiniteLossError(f"baseline: non-finite loss at step {start // batch_size + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def conv_roofline(model: torch.nn.Module, shape: tuple[int, ...], batch: int, device: torch.device,
                  dtype: torch.dtype, repeats: int = 3) -> float:
    """Best FLOP/s of forward + backward of the model's conv layers alone (NCHW or channels-last) on ``device``."""
    layers = conv_layers(model.cpu(), shape)
    flops = batch * training_flops([s for _, s in layers])
    best = 0.0
    for channels_last in (False, True):
        chain = ConvChain(layers, batch, channels_last, device=device, dtype=dtype)
        chain.forward_backward()  # warm-up: allocator, algorithm search
        seconds = min(timed(chain.forward_backward, device) for _ in range(repeats))
        best = max(best, flops / seconds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="vgg13")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--n", type=int, default=10_000, help="training images per epoch")
    parser.add_argument("--path", action="store_true", help="also time evaluate_path for one pair")
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per variant (the best counts)")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = device.type == "cuda"

    data = load_base("shapes", "train", n=args.n, seed=0)
    shape = data.shape
    init = models.build(args.model, 10, width=args.width, in_shape=shape, seed=0).state_dict()

    def fresh() -> torch.nn.Module:
        model = models.build(args.model, 10, width=args.width, in_shape=shape).to(device)
        model.load_state_dict(init)
        return model

    sgd = SGDConfig(lr=0.01, momentum=0.9, weight_decay=1e-4, schedule="constant")

    def ours(**kwargs):
        return lambda model: train.fit(model, data, sgd, epochs=1, batch_size=args.batch, seed=1, progress=False,
                                       **kwargs)

    variants = {
        "host-fed fp32 NCHW (baseline)": lambda model: host_fed_epoch(model, data, args.batch, 1, device),
        "device-resident fp32 NCHW": ours(),
        "device-resident fp32 channels-last": ours(channels_last=True),
        "device-resident bf16 channels-last": ours(channels_last=True, amp=True),
    }
    rates = {}
    for name, epoch in variants.items():
        model = fresh()
        epoch(model)  # warm-up epoch: allocator, cuDNN algorithm search
        rates[name] = args.n / min(timed(lambda: epoch(model), device) for _ in range(args.repeats))

    probe = models.build(args.model, 10, width=args.width, in_shape=shape)
    per_image = training_flops([s for _, s in conv_layers(probe, shape)])
    peaks = {"fp32": conv_roofline(probe, shape, args.batch, device, torch.float32),
             "bf16": conv_roofline(probe, shape, args.batch, device, torch.bfloat16)}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    base = rates["host-fed fp32 NCHW (baseline)"]
    print(f"device: {name}; {args.model} width {args.width:g}, batch {args.batch}, {args.n} images of {shape}")
    print(f"model: {per_image / 1e9:.4f} GFLOP (conv layers) per training image; conv roofline: "
          f"{peaks['fp32'] / 1e9:.0f} GFLOP/s fp32, {peaks['bf16'] / 1e9:.0f} GFLOP/s bf16 (batch {args.batch})")
    print(f"{'variant':38s} {'images/s':>10s} {'vs baseline':>12s} {'of roofline':>11s}")
    rows = []
    for variant, rate in rates.items():
        peak = peaks["bf16" if "bf16" in variant else "fp32"]
        fraction = rate * per_image / peak
        rows.append({"variant": variant, "images_per_s": rate, "ratio": rate / base, "fraction_of_roofline": fraction})
        print(f"{variant:38s} {rate:10.0f} {rate / base:11.2f}x {100 * fraction:10.1f}%")
    result = {"device": name, "model": args.model, "width": args.width, "batch": args.batch, "n": args.n,
              "flops_per_image": per_image, "conv_roofline_flops": peaks, "rows": rows}

    if args.path:
        test = load_base("shapes", "test", n=args.n_test, seed=0)
        views = counterfactual_views(test, "box", seed=0)
        a, b = fresh().eval(), models.build(args.model, 10, width=args.width, in_shape=shape, seed=1).to(device).eval()
        ts = torch.linspace(0, 1, 11).tolist()
        bn = load_base("shapes", "train", n=2000, seed=0)
        run = lambda: paths.evaluate_path(a, b, views, ts, bn, batch_size=1000, progress=False)  # noqa: E731
        run()
        seconds = timed(run, device)
        print(f"evaluate_path, one pair: 11 points x 4 views x {args.n_test} images in {seconds:.2f} s")
        result["path_seconds"] = seconds
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
