"""The in-memory image set every other module passes around, and its batching.

Data lives as whole tensors (uint8 images, int64 labels); batches are cut
with a seeded ``torch.randperm``: no Dataset objects, no worker processes.
On a GPU the whole set is moved once, as uint8 (a quarter of the float
bytes), and every batch is indexed and normalised on the device: no
per-batch host transfer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from ...errors import ConfigError


@dataclass(frozen=True)
class ImageSet:
    """Images (uint8, ``[N, C, H, W]``), labels (int64, ``[N]``) and class names.

    ``has_cue`` (bool, ``[N]``) marks the samples that carry a cue; all False
    for a base set. ``unit_rows``: the first rows hold an image that the
    network sees in [0, 1] instead of [−1, 1] (the top half of a Domino,
    which the authors' loader leaves unnormalised); see :func:`normalize`.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    has_cue: torch.Tensor = field(default=None)  # type: ignore[assignment]
    unit_rows: int = 0

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ConfigError(
                f"images: expected a uint8 tensor [N, C, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ConfigError(
                f"labels: expected int64 [N={self.images.shape[0]}], got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )
        if self.has_cue is None:
            object.__setattr__(self, "has_cue", torch.zeros(len(self.labels), dtype=torch.bool))
        object.__setattr__(self, "classes", tuple(self.classes))
        if not 0 <= self.unit_rows <= self.images.shape[2]:
            raise ConfigError(f"unit_rows must be in [0, {self.images.shape[2]}] (the image height), "
                              f"got {self.unit_rows}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one image, ``(C, H, W)``."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> "ImageSet":
        """The same samples with every tensor on ``device`` (``self`` when they already are)."""
        device = torch.device(device)
        here = self.images.device
        if here.type == device.type and (device.index is None or here.index == device.index):
            return self
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes, self.has_cue.to(device),
                        self.unit_rows)

    def subset(self, index: torch.Tensor | slice) -> "ImageSet":
        """The samples at ``index`` (a slice, an index tensor or a bool mask)."""
        return ImageSet(self.images[index], self.labels[index], self.classes, self.has_cue[index],
                        self.unit_rows)

    def inputs(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """The network's input for the samples at ``index`` (all by default): :func:`normalize` d."""
        return normalize(self.images if index is None else self.images[index], self.unit_rows)


def normalize(images: torch.Tensor, unit_rows: int = 0) -> torch.Tensor:
    """uint8 images in [0, 255] → float32: ``u / 127.5 − 1`` in [−1, 1], the authors'
    ``Normalize((0.5,) * 3, (0.5,) * 3)``; the first ``unit_rows`` rows ``u / 255`` in [0, 1]
    (``ToTensor`` alone, as the authors leave the simple image on top of a Domino)."""
    x = images.float().div_(127.5).sub_(1.0)
    if unit_rows:
        x[..., :unit_rows, :] = images[..., :unit_rows, :].float().div_(255.0)
    return x


def batches(
    data: ImageSet,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    device: torch.device | str | None = None,
    channels_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches: x normalised to [−1, 1] (float32), y int64.

    With ``shuffle`` the order comes from ``torch.randperm`` driven by
    ``generator`` (or a fresh one seeded with ``seed``; ``seed=None`` → 0), so
    the same seed gives the same batches. The permutation is always drawn on
    the CPU, so the batches are the same on every device. With ``device`` the
    set is moved there once (see :meth:`ImageSet.to`) and batches are cut and
    normalised there; ``channels_last`` lays x out as NHWC in memory (same values).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if device is not None:
        data = data.to(device)
    n = len(data)
    if shuffle:
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        order = torch.randperm(n, generator=generator).to(data.device)
    else:
        order = None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size] if order is not None else slice(start, start + batch_size)
        x = data.inputs(idx)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, data.labels[idx]
