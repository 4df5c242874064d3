"""Class-wise selection of samples: every "first k of each class" and balanced subset of the data code.

All of it rests on :func:`class_ranks`, each sample's rank within its class,
in data-set order or in the order of random ``keys``.
"""
from __future__ import annotations

import torch

__all__ = ["class_order", "class_ranks", "first_per_class", "balanced_subset"]


def class_order(labels: torch.Tensor, keys: torch.Tensor | None = None,
                minlength: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(order, counts, starts)``: indices sorted by class (ties in data order, or by ``keys`` in
    [0, 1)), the count of each class and where each class starts in ``order``."""
    if keys is None:
        order = torch.argsort(labels, stable=True)
    else:
        order = torch.argsort(labels.double() * 2 + keys)  # by class, then by key within class
    counts = torch.bincount(labels, minlength=minlength)
    return order, counts, torch.cumsum(counts, 0) - counts


def class_ranks(labels: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
    """Each sample's 0-based rank within its class (data-set order, or increasing ``keys``)."""
    order, _, starts = class_order(labels, keys)
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(labels.shape[0]) - starts[labels[order]]
    return rank


def first_per_class(labels: torch.Tensor, fraction: float, keys: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask: the first ``round(fraction · n_k)`` samples of each class k by :func:`class_ranks`.

    Rounding is half to even (Python's and torch's).
    """
    if labels.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    counts = torch.bincount(labels)
    quota = torch.round(counts.double() * float(fraction)).long()
    return class_ranks(labels, keys) < quota[labels]


def balanced_subset(labels: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """Indices (ascending) of ``n`` samples chosen class-balanced at random.

    Samples are dealt round-robin: a random first sample of every class (in
    random class order), then a random second one, and so on; classes that
    run out simply drop out of later rounds. The chosen indices keep the
    data set's order.
    """
    keys = torch.rand(labels.shape[0], generator=g, dtype=torch.float64)
    rank = class_ranks(labels, keys).double()
    tie = torch.rand(labels.shape[0], generator=g, dtype=torch.float64)
    return torch.sort(torch.argsort(rank + tie)[:n]).values
