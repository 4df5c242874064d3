"""scikit-learn's bundled handwritten digits (offline), as 32×32 RGB uint8.

The 1 797 8×8 images (values 0–16) are scaled to 0–255, resized bilinearly
to 32×32 and repeated over three channels. The train/test split is fixed
(80/20 within every class, from a permutation with a constant seed), so
train and test never share an image whatever seed a caller uses.
"""
from __future__ import annotations

import torch

from .resize import to_rgb
from ..seeding import generator

DIGIT_CLASSES: tuple[str, ...] = tuple(str(k) for k in range(10))
TRAIN_FRACTION = 0.8


def stratified_split(labels: torch.Tensor, fraction: float, g: torch.Generator) -> torch.Tensor:
    """Bool mask: within each class a random ``round(fraction · n_k)`` samples are True."""
    keys = torch.rand(labels.shape[0], generator=g, dtype=torch.float64)
    order = torch.argsort(labels.double() * 2 + keys)  # by class, random within class
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(labels.shape[0]) - starts[labels[order]]
    quota = torch.round(counts.double() * fraction).long()
    return rank < quota[labels]


def load_digits(split: str) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Images uint8 ``[N, 3, 32, 32]``, labels int64 and class names of one split."""
    from sklearn.datasets import load_digits as sk_digits  # local: sklearn is slow to import

    raw = sk_digits()
    images = torch.as_tensor(raw.images, dtype=torch.float32).mul_(255.0 / 16.0)
    images = images.round_().to(torch.uint8).unsqueeze(1)
    labels = torch.as_tensor(raw.target, dtype=torch.int64)
    train = stratified_split(labels, TRAIN_FRACTION, generator("digits", "split"))
    keep = train if split == "train" else ~train
    return to_rgb(images[keep]), labels[keep], DIGIT_CLASSES
