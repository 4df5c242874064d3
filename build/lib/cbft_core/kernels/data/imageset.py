"""The in-memory image set every other module passes around, and its batching.

Data lives as whole tensors (uint8 images, int64 labels); batches are cut
with a seeded ``torch.randperm``: no Dataset objects, no worker processes.
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
    for a base set.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    has_cue: torch.Tensor = field(default=None)  # type: ignore[assignment]

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

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one image, ``(C, H, W)``."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: torch.Tensor | slice) -> "ImageSet":
        """The samples at ``index`` (a slice, an index tensor or a bool mask)."""
        return ImageSet(self.images[index], self.labels[index], self.classes, self.has_cue[index])


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] → float32 in [−1, 1], the input range of every model."""
    return images.float().div_(127.5).sub_(1.0)


def batches(
    data: ImageSet,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches: x normalised to [−1, 1] (float32), y int64.

    With ``shuffle`` the order comes from ``torch.randperm`` driven by
    ``generator`` (or a fresh one seeded with ``seed``; ``seed=None`` → 0), so
    the same seed gives the same batches.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    n = len(data)
    if shuffle:
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        order = torch.randperm(n, generator=generator)
    else:
        order = None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size] if order is not None else slice(start, start + batch_size)
        x = normalize(data.images[idx])
        y = data.labels[idx]
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        yield x, y
