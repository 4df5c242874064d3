"""Small files in torchvision's own on-disk formats, written from known pixel patterns.

CIFAR-10 / CIFAR-100: protocol-2 pickles of dicts whose ``data`` is uint8
``[N, 3072]`` (each row the R, G and B planes of a 32×32 image, row-major),
with their meta files (class names); MNIST / FashionMNIST: IDX files (big
endian header: magic ``0x0803`` + N, 28, 28 for images, ``0x0801`` + N for
labels), uncompressed under ``<Name>/raw/`` as torchvision leaves them.

Every writer returns the images it wrote as uint8 ``[N, C, H, W]`` and the
labels, so a test can compare what is loaded against what was written.
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# torchvision's class names of the two IDX sets (its ``classes`` attribute)
MNIST_CLASSES = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
                 "7 - seven", "8 - eight", "9 - nine")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")


def pattern(n: int, channels: int, side: int, offset: int = 0) -> np.ndarray:
    """uint8 ``[n, channels, side, side]``: every image, channel, row and column distinguishable."""
    i, c, h, w = np.meshgrid(np.arange(n) + offset, np.arange(channels), np.arange(side), np.arange(side),
                             indexing="ij")
    return ((i * 37 + c * 101 + h * 7 + w * 3) % 256).astype(np.uint8)


def labels_for(n: int, classes: int, offset: int = 0) -> np.ndarray:
    """Labels cycling through the classes in a scrambled order (every class equally often when n allows)."""
    return ((np.arange(n) + offset) * 7 % classes).astype(np.int64)


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 20) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Five training batches of ``per_batch`` images, a test batch and batches.meta under ``root``."""
    folder = Path(root) / "cifar-10-batches-py"
    train_x, train_y = [], []
    for b in range(5):
        x, y = pattern(per_batch, 3, 32, b * per_batch), labels_for(per_batch, 10, b * per_batch)
        _pickle(folder / f"data_batch_{b + 1}", {"batch_label": f"training batch {b + 1} of 5",
                                                 "labels": y.tolist(), "data": x.reshape(per_batch, -1),
                                                 "filenames": [f"img_{b}_{k}.png" for k in range(per_batch)]})
        train_x.append(x)
        train_y.append(y)
    tx, ty = pattern(n_test, 3, 32, 10_000), labels_for(n_test, 10, 3)
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": ty.tolist(),
                                    "data": tx.reshape(n_test, -1), "filenames": [f"t{k}" for k in range(n_test)]})
    _pickle(folder / "batches.meta", {"num_cases_per_batch": per_batch, "label_names": list(CIFAR10_CLASSES),
                                      "num_vis": 3072})
    return {"train": (np.concatenate(train_x), np.concatenate(train_y)), "test": (tx, ty)}


def cifar100_classes() -> tuple[str, ...]:
    return tuple(f"fine_{k:02d}" for k in range(100))


def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``train``, ``test`` and ``meta`` of CIFAR-100 (fine labels; coarse labels = fine // 5)."""
    folder = Path(root) / "cifar-100-python"
    out = {}
    for split, n, offset in (("train", n_train, 0), ("test", n_test, 5_000)):
        x, y = pattern(n, 3, 32, offset), labels_for(n, 100, offset)
        _pickle(folder / split, {"filenames": [f"{split}{k}" for k in range(n)], "batch_label": split,
                                 "fine_labels": y.tolist(), "coarse_labels": (y // 5).tolist(),
                                 "data": x.reshape(n, -1)})
        out[split] = (x, y)
    _pickle(folder / "meta", {"fine_label_names": list(cifar100_classes()),
                              "coarse_label_names": [f"coarse_{k:02d}" for k in range(20)]})
    return out


def _idx(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = 0x0800 | array.ndim  # type code 0x08: unsigned byte
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_idx_set(root: Path, name: str, n_train: int = 60, n_test: int = 20) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST-format files of set ``name`` ("MNIST" or "FashionMNIST"): 28×28 grey images ``[N, 1, 28, 28]``."""
    folder = Path(root) / name / "raw"
    out = {}
    for prefix, split, n, offset in (("train", "train", n_train, 0), ("t10k", "test", n_test, 900)):
        x, y = pattern(n, 1, 28, offset), labels_for(n, 10, offset)
        _idx(folder / f"{prefix}-images-idx3-ubyte", x[:, 0])
        _idx(folder / f"{prefix}-labels-idx1-ubyte", y)
        out[split] = (x, y)
    return out


@pytest.fixture
def trust_cifar_files(monkeypatch):
    """Let torchvision accept CIFAR files that are not the official ones.

    torchvision compares every CIFAR file with the md5 sum of the official
    release; only that comparison is replaced (by "the file exists"), so the
    unpickling, reshaping and HWC layout of torchvision run for real.
    """
    import torchvision.datasets.cifar as cifar
    from torchvision.datasets.utils import check_integrity

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: check_integrity(fpath, None))
