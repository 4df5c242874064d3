"""The real-data path, offline: torchvision's own file formats → load_base → the cue views.

Files are written in the formats torchvision reads (tests/torchvision_files.py)
from known pixel patterns; only torchvision's md5 comparison with the official
CIFAR release is bypassed (fixture ``trust_cifar_files``), everything after it
runs for real.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cbft_core.errors import DataUnavailableError
from cbft_core.kernels import data
from cbft_core.kernels.data import cue_class_colours, cue_class_positions, load_base, make_view, plan_view
from cbft_core.kernels.data.torchvision_sets import expected_files
from torchvision_files import (CIFAR10_CLASSES, FASHION_CLASSES, MNIST_CLASSES, cifar100_classes,
                               trust_cifar_files, write_cifar10, write_cifar100, write_idx_set)

__all__ = ["trust_cifar_files"]  # a fixture, used by name


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.delenv("CBFT_DOWNLOAD", raising=False)


def bilinear_reference(images: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centre bilinear resampling (edge-clamped), rounded to uint8: written out in numpy."""
    n, c, h, w = images.shape

    def axis(src_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.maximum((np.arange(size) + 0.5) * src_len / size - 0.5, 0.0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, src_len - 1)
        return lo, hi, pos - lo

    r0, r1, fr = axis(h)
    c0, c1, fc = axis(w)
    x = images.astype(np.float64)
    rows = x[:, :, r0, :] * (1 - fr)[None, None, :, None] + x[:, :, r1, :] * fr[None, None, :, None]
    out = rows[:, :, :, c0] * (1 - fc) + rows[:, :, :, c1] * fc
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------- CIFAR
@pytest.mark.parametrize("name, writer, classes", [
    ("cifar10", write_cifar10, CIFAR10_CLASSES),
    ("cifar100", write_cifar100, cifar100_classes()),
])
def test_cifar_loads_exactly_the_written_images(tmp_path, trust_cifar_files, name, writer, classes):
    written = writer(tmp_path)
    assert data.data_present(name, tmp_path)
    for split in ("train", "test"):
        got = load_base(name, split, root=tmp_path)
        images, labels = written[split]
        assert got.images.dtype == torch.uint8 and got.images.shape == (len(labels), 3, 32, 32)
        assert got.images.is_contiguous()
        assert torch.equal(got.images, torch.from_numpy(images))  # CHW, in file order, every byte
        assert got.labels.dtype == torch.int64 and torch.equal(got.labels, torch.from_numpy(labels))
        assert got.classes == classes and got.num_classes == len(classes)
        assert not got.has_cue.any()


def test_cifar_subset_is_class_balanced_rows_of_the_split(tmp_path, trust_cifar_files):
    written = write_cifar10(tmp_path, per_batch=20)
    full_x = torch.from_numpy(written["train"][0])
    sub = load_base("cifar10", "train", n=30, seed=3, root=tmp_path)
    assert torch.bincount(sub.labels, minlength=10).tolist() == [3] * 10
    rows = [int(torch.nonzero((full_x.flatten(1) == x).all(1))[0]) for x in sub.images.flatten(1)]
    assert rows == sorted(rows) and len(set(rows)) == 30
    assert torch.equal(sub.labels, torch.from_numpy(written["train"][1])[rows])


def test_cifar_files_that_are_not_the_official_release_are_refused(tmp_path):
    """Without the fixture torchvision's md5 check is live: the written files fail it, clearly."""
    write_cifar10(tmp_path)
    with pytest.raises(DataUnavailableError, match="checksum.*download=True"):
        load_base("cifar10", "train", root=tmp_path)


def test_a_missing_batch_is_reported_absent(tmp_path, trust_cifar_files):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    assert not data.data_present("cifar10", tmp_path)
    with pytest.raises(DataUnavailableError, match=str(tmp_path)):
        load_base("cifar10", "train", root=tmp_path)
    with pytest.raises(DataUnavailableError):  # torchvision checks every file of the set, whichever split
        load_base("cifar10", "test", root=tmp_path)


def test_an_unreadable_batch_is_one_clear_error(tmp_path, trust_cifar_files):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataUnavailableError, match="cannot be read"):
        load_base("cifar10", "test", root=tmp_path)


# ----------------------------------------------------------------- MNIST and FashionMNIST
@pytest.mark.parametrize("name, folder, classes", [
    ("mnist", "MNIST", MNIST_CLASSES),
    ("fashionmnist", "FashionMNIST", FASHION_CLASSES),
])
def test_idx_sets_load_resized_to_rgb_32(tmp_path, name, folder, classes):
    written = write_idx_set(tmp_path, folder)
    assert data.data_present(name, tmp_path)
    assert all((tmp_path / f).is_file() for f in expected_files(name))
    for split in ("train", "test"):
        got = load_base(name, split, root=tmp_path)
        grey, labels = written[split]
        assert got.images.dtype == torch.uint8 and got.images.shape == (len(labels), 3, 32, 32)
        assert torch.equal(got.images[:, 0], got.images[:, 1]) and torch.equal(got.images[:, 0], got.images[:, 2])
        reference = torch.from_numpy(bilinear_reference(grey, 32))[:, 0]
        diff = (got.images[:, 0].int() - reference.int()).abs()
        assert int(diff.max()) <= 1                       # float32 vs float64 rounding at exact halves
        assert float((diff == 0).double().mean()) > 0.99
        assert torch.equal(got.labels, torch.from_numpy(labels)) and got.classes == classes


def test_idx_gz_alone_is_not_enough(tmp_path):
    """torchvision reads the uncompressed files (it extracts the .gz archives when it downloads)."""
    import gzip

    write_idx_set(tmp_path, "FashionMNIST")
    raw = tmp_path / "FashionMNIST" / "raw"
    for f in list(raw.iterdir()):
        (raw / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    assert not data.data_present("fashionmnist", tmp_path)
    with pytest.raises(DataUnavailableError, match="CBFT_DOWNLOAD=1"):
        load_base("fashionmnist", "train", root=tmp_path)


def test_a_truncated_idx_file_is_one_clear_error(tmp_path):
    write_idx_set(tmp_path, "MNIST")
    f = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataUnavailableError, match="cannot be read"):
        load_base("mnist", "test", root=tmp_path)


# ----------------------------------------------------------------- the views built on them
def test_box_views_of_cifar(tmp_path, trust_cifar_files):
    write_cifar10(tmp_path)
    base = load_base("cifar10", "test", root=tmp_path)
    view = make_view(base, "box", "cue", proportion=1.0)
    expected = base.images.clone()
    pos, colour = cue_class_positions(10), cue_class_colours(10)
    for i, k in enumerate(base.labels.tolist()):
        r, c = pos[k].tolist()
        if r >= 0:
            expected[i, :, r:r + 3, c:c + 3] = colour[k].view(3, 1, 1)
    assert torch.equal(view.images, expected)
    assert torch.equal(view.has_cue, pos[base.labels, 0] >= 0)  # class 9 of 10 has no box: no cue
    assert torch.equal(view.labels, base.labels) and view.classes == CIFAR10_CLASSES
    assert torch.equal(make_view(base, "box", "clean").images, base.images)
    rand_img = make_view(base, "box", "rand-img", seed=1)
    shown = plan_view(base, "box", "rand-img", seed=1).source
    untouched = torch.ones(32, 32, dtype=torch.bool)
    for r, c in pos[pos[:, 0] >= 0].tolist():
        untouched[r:r + 3, c:c + 3] = False
    assert torch.equal(rand_img.images[..., untouched], base.images[shown][..., untouched])


def test_dominoes_views_of_cifar_over_fashionmnist(tmp_path, trust_cifar_files):
    write_cifar10(tmp_path)
    write_idx_set(tmp_path, "FashionMNIST")
    base = load_base("cifar10", "test", root=tmp_path)
    simple = load_base("fashionmnist", "test", root=tmp_path)
    for view_name, proportion in (("cue", 0.5), ("rand-cue", 1.0), ("rand-img", 1.0)):
        plan = plan_view(base, "dominoes", view_name, proportion, seed=2, simple=simple)
        view = make_view(base, "dominoes", view_name, proportion, seed=2, simple=simple)
        assert view.images.shape == (len(base), 3, 64, 32) and view.images.dtype == torch.uint8
        assert torch.equal(view.images[:, :, 32:], base.images[plan.source])       # CIFAR image below
        on = plan.has_cue
        assert torch.equal(view.images[on, :, :32], simple.images[plan.simple_index[on]])  # FashionMNIST on top
        assert not view.images[~on, :, :32].any()                                  # black top without a cue
        assert torch.equal(simple.labels[plan.simple_index[on]], plan.cue_class[on])
        assert torch.equal(view.labels, base.labels)
    cue = plan_view(base, "dominoes", "cue", 0.5, seed=2, simple=simple)
    assert torch.bincount(base.labels[cue.has_cue], minlength=10).tolist() == [1] * 10  # 2 per class, half cued
