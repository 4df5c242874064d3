"""The workloads the speed benchmarks share: the model's conv layers alone, a training window, a path window.

The model is the preset's (``zoo.build_model``: whatever ``models._CNN_LAYERS``
holds when the benchmark runs). Speed does not depend on pixel values, so
the data are random uint8 images (generating the procedural set would take
longer than the measurement).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from cbft_core.kernels import paths, train
from cbft_core.kernels.data import ImageSet
from cbft_core.study import presets, zoo


@dataclass(frozen=True)
class ConvShape:
    """One conv layer of the model as the forward pass meets it (per image)."""

    c_in: int
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    h_in: int
    w_in: int
    h_out: int
    w_out: int

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the forward pass, per image."""
        return self.h_out * self.w_out * self.c_out * (self.c_in // self.groups) * self.kernel[0] * self.kernel[1]


def conv_layers(model: nn.Module, in_shape: tuple[int, int, int]) -> list[tuple[nn.Conv2d, ConvShape]]:
    """Every ``Conv2d`` of ``model`` in forward order, with the shapes one image gives it."""
    found: list[tuple[nn.Conv2d, ConvShape]] = []

    def hook(module: nn.Conv2d, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        x = args[0]
        found.append((module, ConvShape(module.in_channels, module.out_channels, tuple(module.kernel_size),
                                        tuple(module.stride), tuple(module.padding), module.groups,
                                        x.shape[2], x.shape[3], out.shape[2], out.shape[3])))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *in_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return found


def forward_flops(shapes: list[ConvShape]) -> float:
    """FLOPs of the conv layers' forward pass per image: 2 per multiply-accumulate."""
    return float(sum(2 * s.macs for s in shapes))


def training_flops(shapes: list[ConvShape]) -> float:
    """FLOPs of forward + backward per image: 3× the forward (output, input gradient, weight gradient),
    except the first layer, whose input (the images) needs no gradient: 2×."""
    return float(sum(2 * s.macs * (2 if i == 0 else 3) for i, s in enumerate(shapes)))


class ConvChain:
    """The model's conv layers alone, each fed a random input of its own shape (no BN, ReLU or head)."""

    def __init__(self, layers: list[tuple[nn.Conv2d, ConvShape]], batch: int, channels_last: bool,
                 seed: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        g = torch.Generator().manual_seed(seed)
        self.convs, self.inputs, self.grads = [], [], []

        def tensor(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g).to(device, dtype).contiguous(memory_format=fmt)

        for i, (conv, s) in enumerate(layers):
            self.convs.append(copy.deepcopy(conv).to(device, dtype).to(memory_format=fmt))
            x = tensor(batch, s.c_in, s.h_in, s.w_in)
            self.inputs.append(x.requires_grad_(i > 0))  # as in the model: no gradient for the images
            self.grads.append(tensor(batch, s.c_out, s.h_out, s.w_out))

    def forward(self) -> None:
        """One forward pass of every layer (inference mode)."""
        with torch.inference_mode():
            for conv, x in zip(self.convs, self.inputs):
                conv(x)

    def forward_backward(self) -> None:
        """One forward and backward pass of every layer (input and weight gradients)."""
        for conv, x, g in zip(self.convs, self.inputs, self.grads):
            conv.weight.grad = None
            x.grad = None
            conv(x).backward(g)


def random_set(n: int, shape: tuple[int, int, int], num_classes: int, seed: int = 0) -> ImageSet:
    """``n`` random uint8 images with cycling labels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % num_classes, tuple(str(k) for k in range(num_classes)))


def fit_window(cfg: presets.Preset, batch_size: int, steps: int, *, model: nn.Module | None = None,
               channels_last: bool | None = None) -> tuple[Callable[[], nn.Module], int]:
    """A call that trains ``steps`` batches through ``train.fit`` with the preset's settings, and its image count."""
    model = model if model is not None else zoo.build_model(cfg, seed=0)
    data = random_set(batch_size * steps, model.in_shape, cfg.num_classes)
    cl = cfg.channels_last if channels_last is None else channels_last
    return (lambda: train.fit(model, data, zoo.sgd(cfg), epochs=1, batch_size=batch_size, seed=0, progress=False,
                              channels_last=cl, amp=cfg.amp)), len(data)


def path_sets(cfg: presets.Preset, n_test: int | None = None) -> tuple[dict[str, ImageSet], ImageSet]:
    """Four random test views of ``n_test`` images (the preset's by default) and the BN images."""
    shape = (3, 32, 32)
    n = cfg.n_test if n_test is None else n_test
    views = {name: random_set(n, shape, cfg.num_classes, seed=k)
             for k, name in enumerate(("clean", "cue", "rand-cue", "rand-img"))}
    return views, random_set(min(cfg.bn_images, cfg.n_train), shape, cfg.num_classes, seed=9)


def path_window(cfg: presets.Preset, points: int, n_test: int | None = None,
                batch_size: int | None = None) -> tuple[Callable[[], paths.PathResult], int]:
    """A call of ``paths.evaluate_path`` over ``points`` points between two models, and its image count
    (per point: one BN re-estimation on the BN images, then the four views)."""
    a, b = zoo.build_model(cfg, seed=0), zoo.build_model(cfg, seed=1)
    views, bn = path_sets(cfg, n_test)
    ts = np.linspace(0.0, 1.0, points)
    images = points * (len(bn) + sum(len(v) for v in views.values()))
    return (lambda: paths.evaluate_path(a, b, views, ts, bn, bn_images=cfg.bn_images, bn_average=cfg.bn_average,
                                        batch_size=cfg.eval_batch_size if batch_size is None else batch_size,
                                        progress=False)), images


def preset_from(name: str, overrides: list[tuple[str, str]]) -> presets.Preset:
    """The preset ``name`` with ``-p NAME VALUE`` overrides (values read as Python literals, else strings)."""
    import ast

    def value(text: str) -> object:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    return presets.get(name, **{k: value(v) for k, v in overrides})
