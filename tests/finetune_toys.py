"""Toy data and a small trained cnn shared by the fine-tuning and CBFT kernel tests."""
from __future__ import annotations

import pytest
import torch

from cbft_core.kernels import models, train
from cbft_core.kernels.data.imageset import ImageSet
from cbft_core.kernels.optim import SGDConfig

K = 4


def toy_set(n: int, seed: int, cue: bool = False, size: int = 16) -> ImageSet:
    """Noise images with the class drawn as a bright row; with ``cue`` also a class-coded dot."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 120, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, K, (n,), generator=g)
    images[torch.arange(n), :, labels * (size // K), :] = 200
    if cue:
        images[torch.arange(n), 0, 1, 2 + 3 * labels] = 255
    return ImageSet(images, labels, tuple(f"c{i}" for i in range(K)), torch.full((n,), cue))


@pytest.fixture(scope="module")
def sets():
    return toy_set(48, 1), toy_set(40, 2, cue=True)


@pytest.fixture(scope="module")
def base_model(sets):
    model = models.build("cnn", K, width=0.5, in_shape=(3, 16, 16), seed=0)
    train.fit(model, toy_set(96, 3, cue=True), SGDConfig(lr=0.05), epochs=1, batch_size=32, progress=False)
    return model.eval()


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def state_equal(a, b, skip=()):
    return all(torch.equal(a[k], b[k]) for k in a if not k.startswith(skip))


FAST = dict(epochs=2, batch_size=16, progress=False)
SGD = SGDConfig(lr=0.02)
