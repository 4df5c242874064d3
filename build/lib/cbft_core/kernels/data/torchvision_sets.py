"""CIFAR-10/100, MNIST and FashionMNIST through torchvision, from a local directory.

Nothing touches the network unless the caller asks for it (``download=True``
or the environment variable ``CBFT_DOWNLOAD=1``).
"""
from __future__ import annotations

import os
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


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$CBFT_DATA_DIR``, else ``~/.cache/cbft_core/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("CBFT_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cbft_core" / "data"


def download_allowed(download: bool) -> bool:
    """True when the caller passed ``download=True`` or set ``CBFT_DOWNLOAD=1``."""
    return bool(download) or os.environ.get("CBFT_DOWNLOAD", "") == "1"


def load_torchvision(
    name: str, split: str, root: str | os.PathLike | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Images uint8 ``[N, 3, 32, 32]``, labels int64 and class names.

    Raises :class:`DataUnavailableError` when the files are absent and
    downloading is not allowed.
    """
    import torchvision  # local: heavy import, only needed for these sets

    folder = data_root(root)
    allowed = download_allowed(download)
    cls = getattr(torchvision.datasets, TORCHVISION_SETS[name])
    try:
        ds = cls(str(folder), train=(split == "train"), download=allowed)
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        raise DataUnavailableError(
            f"{name} ({split}) is not in {folder} and downloading is off; pass download=True "
            f"to load_base or set CBFT_DOWNLOAD=1 to fetch it there (or point root / "
            f"CBFT_DATA_DIR at a copy)."
        ) from exc
    data = torch.as_tensor(ds.data)
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return to_rgb(images.to(torch.uint8)), labels, tuple(ds.classes)
