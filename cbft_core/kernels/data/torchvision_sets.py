"""CIFAR-10/100, MNIST and FashionMNIST through torchvision, from a local directory.

Nothing touches the network unless the caller asks for it (``download=True``
or the environment variable ``CBFT_DOWNLOAD=1``). The files are torchvision's
own: CIFAR's pickled batches (``<root>/cifar-10-batches-py/…``, checked
against their md5 sums by torchvision) and the IDX files of MNIST and
FashionMNIST (``<root>/<Name>/raw/…-ubyte``, uncompressed as torchvision
leaves them after a download).
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from ...errors import DataUnavailableError
from .resize import to_rgb

TORCHVISION_SETS: dict[str, str] = {
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "mnist": "MNIST",
    "fashionmnist": "FashionMNIST",
}

# What a file that exists but cannot be parsed raises inside torchvision's readers
# (an IDX shape assertion, a truncated or foreign pickle, a short buffer).
_UNREADABLE = (AssertionError, pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$CBFT_DATA_DIR``, else ``~/.cache/cbft_core/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("CBFT_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cbft_core" / "data"


def download_allowed(download: bool) -> bool:
    """True when the caller passed ``download=True`` or set ``CBFT_DOWNLOAD=1``."""
    return bool(download) or os.environ.get("CBFT_DOWNLOAD", "") == "1"


def _dataset_class(name: str) -> type:
    import torchvision  # local: heavy import, only needed for these sets

    return getattr(torchvision.datasets, TORCHVISION_SETS[name])


def expected_files(name: str) -> tuple[str, ...]:
    """Paths (relative to the data root) of every file torchvision reads for set ``name``.

    Taken from the torchvision class's own file lists, so they follow its version.
    """
    cls = _dataset_class(name)
    if hasattr(cls, "train_list"):  # CIFAR-10/100: pickled batches and a meta file
        names = [f for f, _ in (*cls.train_list, *cls.test_list)] + [cls.meta["filename"]]
        return tuple(f"{cls.base_folder}/{f}" for f in names)
    return tuple(f"{cls.__name__}/raw/{Path(url).name.removesuffix('.gz')}" for url, _ in cls.resources)


def is_present(name: str, root: str | os.PathLike | None = None) -> bool:
    """True when every file of ``name`` exists under the data root (checksums are left to loading)."""
    folder = data_root(root)
    return all((folder / f).is_file() for f in expected_files(name))


def load_torchvision(
    name: str, split: str, root: str | os.PathLike | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Images uint8 ``[N, 3, 32, 32]``, labels int64 and class names.

    CIFAR's HWC arrays become CHW; MNIST's and FashionMNIST's 28×28 grey
    images are resized to 32×32 (bilinear) and repeated over three channels
    (:func:`~cbft_core.kernels.data.resize.to_rgb`). Raises
    :class:`DataUnavailableError` when the files are absent (or fail
    torchvision's checks) and downloading is not allowed, or cannot be parsed.
    """
    folder = data_root(root)
    allowed = download_allowed(download)
    cls = _dataset_class(name)
    try:
        ds = cls(str(folder), train=(split == "train"), download=allowed)
    except (RuntimeError, *_UNREADABLE) as exc:  # RuntimeError: torchvision's "not found or corrupted"
        if not is_present(name, folder):
            raise DataUnavailableError(
                f"{name} ({split}) is not in {folder} and downloading is off; pass download=True "
                f"to load_base or set CBFT_DOWNLOAD=1 to fetch it there (or point root / "
                f"CBFT_DATA_DIR at a copy)."
            ) from exc
        raise DataUnavailableError(
            f"{name} ({split}): the files under {folder} cannot be read or fail torchvision's checksum "
            f"({type(exc).__name__}: {exc}); delete them and fetch them again with download=True or "
            f"CBFT_DOWNLOAD=1"
        ) from exc
    data = torch.as_tensor(ds.data)
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return to_rgb(images.to(torch.uint8)), labels, tuple(ds.classes)

