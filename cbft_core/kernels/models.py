"""The networks of the book: a small CPU CNN, VGG-13 (BN) and a CIFAR-style ResNet-18.

Every model built here has ``features(x) -> [N, D]`` (penultimate features,
after global average pooling), a linear ``head`` and
``forward(x) == head(features(x))``. Global average pooling makes every model
work for any input height/width (32×32 images, 64×32 Dominoes).

The plain conv chains (``cnn``, ``vgg13``) also describe their conv→BN→ReLU
layers through :meth:`ConvNet.permutation_spec`, which
:mod:`cbft_core.kernels.alignment` uses to permute hidden units.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .checks import check_choice, check_int, check_number

__all__ = ["build", "MODEL_NAMES", "ConvNet", "ResNet", "PermutationSpec", "LayerSpec"]

# (output channels, stride) per conv layer, before the width multiplier. The cnn ends, like VGG-13 on
# 32×32 images, on a 2×2 map before global average pooling: on a 4×4 map the pooled features dilute a
# small cue 16-fold, and the cue models relied on the box far less (benchmarks/science_trials.py).
_CNN_LAYERS: tuple[tuple[int, int], ...] = ((16, 2), (32, 2), (64, 2), (64, 2))
_VGG13_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2),
    (512, 1), (512, 2), (512, 1), (512, 1),
)
_RESNET18_STAGES: tuple[tuple[int, int], ...] = ((64, 1), (128, 2), (256, 2), (512, 2))

MODEL_NAMES: tuple[str, ...] = ("cnn", "vgg13", "resnet18")


@dataclass(frozen=True)
class LayerSpec:
    """One permutable layer of a conv chain, by submodule name.

    ``output`` is the submodule whose output is the layer's activation
    (after ReLU): the units a permutation reorders.
    """

    conv: str
    bn: str
    output: str


@dataclass(frozen=True)
class PermutationSpec:
    """The permutable layers of a plain conv chain, in forward order.

    Layer ``i``'s output channels are the input channels of layer ``i + 1``'s
    conv; the last layer's channels (after global average pooling) are the
    input features of ``head``.
    """

    layers: tuple[LayerSpec, ...]
    head: str


def _channels(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


class ConvBlock(nn.Module):
    """conv3×3 (no bias) → BatchNorm2d → ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ConvNet(nn.Module):
    """A chain of :class:`ConvBlock` s, global average pooling and a linear head."""

    def __init__(
        self,
        layers: Sequence[tuple[int, int]],
        num_classes: int,
        in_channels: int,
        arch: str,
    ) -> None:
        super().__init__()
        self.arch = arch
        blocks = []
        c_in = in_channels
        for c_out, stride in layers:
            blocks.append(ConvBlock(c_in, c_out, stride))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = c_in
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[N, feature_dim]`` (global average pooled)."""
        return self.blocks(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def permutation_spec(self) -> PermutationSpec:
        """The conv→BN→ReLU layers in forward order, for permutation alignment."""
        layers = tuple(
            LayerSpec(conv=f"blocks.{i}.conv", bn=f"blocks.{i}.bn", output=f"blocks.{i}")
            for i in range(len(self.blocks))
        )
        return PermutationSpec(layers=layers, head="head")


class BasicBlock(nn.Module):
    """ResNet basic block: two conv3×3+BN, identity or 1×1-conv+BN shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (3×3 stem, no max-pool), global average pooling, linear head."""

    def __init__(
        self, stages: Sequence[tuple[int, int]], blocks_per_stage: int, num_classes: int,
        in_channels: int, stem_channels: int,
    ) -> None:
        super().__init__()
        self.arch = "resnet18"
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(),
        )
        blocks = []
        c_in = stem_channels
        for c_out, stride in stages:
            for j in range(blocks_per_stage):
                blocks.append(BasicBlock(c_in, c_out, stride if j == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.feature_dim = c_in
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[N, feature_dim]`` (global average pooled)."""
        return self.layers(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def permutation_spec(self) -> PermutationSpec:
        """Not available: residual connections tie the units of many layers together."""
        raise ConfigError(
            "permutation alignment is not supported for 'resnet18' (residual connections tie "
            "layers' units together); use model 'cnn' or 'vgg13'"
        )


def _check_args(name: str, num_classes: int, width: float, in_shape: Sequence[int]) -> tuple[int, int, int]:
    check_choice("name", name, MODEL_NAMES)
    check_int("num_classes", num_classes, minimum=1)
    check_number("width", width, minimum=0.0, strict_minimum=True)  # 1.0 = standard
    try:
        shape = tuple(in_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ConfigError(
            f"in_shape must be three positive ints (channels, height, width), e.g. (3, 32, 32); "
            f"got {in_shape!r}"
        )
    return shape  # type: ignore[return-value]


def build(
    name: str,
    num_classes: int,
    width: float = 1.0,
    in_shape: Sequence[int] = (3, 32, 32),
    seed: int | None = None,
) -> nn.Module:
    """Build model ``name`` (``"cnn"``, ``"vgg13"``, ``"resnet18"``) for ``num_classes`` classes.

    ``width`` multiplies every channel count (rounded, at least 1). ``in_shape``
    is one input's ``(C, H, W)``; only ``C`` shapes the weights (global average
    pooling absorbs H and W). With ``seed`` the weights are initialised from
    that seed without touching the global RNG; ``seed=None`` draws from the
    global RNG (PyTorch's default initialisation either way).
    """
    c, h, w = _check_args(name, num_classes, width, in_shape)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        if name == "resnet18":
            stages = [(_channels(ch, width), s) for ch, s in _RESNET18_STAGES]
            model: nn.Module = ResNet(stages, 2, num_classes, c, _channels(64, width))
        else:
            base = _CNN_LAYERS if name == "cnn" else _VGG13_LAYERS
            layers = [(_channels(ch, width), s) for ch, s in base]
            model = ConvNet(layers, num_classes, c, arch=name)
    model.in_shape = (c, h, w)
    model.num_classes = num_classes
    model.width = float(width)
    # NHWC conv weights: oneDNN's convolutions run ~1.4x faster on the CPU
    # (and cuDNN's are no slower); inputs may stay NCHW.
    return model.to(memory_format=torch.channels_last)
