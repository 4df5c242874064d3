"""``load_base``: one entry point for every base image set."""
from __future__ import annotations

import os


from ...errors import ConfigError
from ..checks import check_choice
from .digits import load_digits
from .imageset import ImageSet
from ..seeding import generator
from .shapes import SHAPE_NAMES, make_shapes
from .subsets import balanced_subset
from .torchvision_sets import TORCHVISION_SETS, is_present, load_torchvision

BASE_SETS: tuple[str, ...] = ("shapes", "digits", *TORCHVISION_SETS)
SPLITS: tuple[str, ...] = ("train", "test")
SHAPES_DEFAULT_N = {"train": 50_000, "test": 10_000}


def _check(name: str, split: str, n: int | None) -> None:
    if not isinstance(name, str) or name.lower() not in BASE_SETS:  # names are case-insensitive
        check_choice("name", name, BASE_SETS)
    check_choice("split", split, SPLITS)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"n: expected a positive int or None (the whole split), got {n!r}")


def data_present(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether :func:`load_base` can load ``name`` without the network.

    Always True for the procedural shapes and scikit-learn's bundled digits;
    for a torchvision set, True when all its files are under the data root
    (their checksums are verified when they are loaded).
    """
    _check(name, "train", None)
    name = name.lower()
    return name not in TORCHVISION_SETS or is_present(name, root)


def load_base(
    name: str,
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> ImageSet:
    """A base image set as uint8 RGB ``[N, 3, 32, 32]`` (see :data:`BASE_SETS`).

    * ``"shapes"`` (default of the book): procedural and offline; ``seed`` and
      ``split`` pick the random stream; ``n`` defaults to 50 000 (train) or
      10 000 (test) and the first ``n`` images do not depend on ``n``.
    * ``"digits"``: scikit-learn's handwritten digits (fixed 80/20 split).
    * ``"cifar10"``, ``"cifar100"``, ``"mnist"``, ``"fashionmnist"``: torchvision
      files under ``root`` (default ``$CBFT_DATA_DIR`` or
      ``~/.cache/cbft_core/data``); fetched only with ``download=True`` or
      ``CBFT_DOWNLOAD=1``, otherwise :class:`DataUnavailableError`.

    For every set but shapes, ``n`` selects a seeded class-balanced subset
    (see :func:`balanced_subset`) kept in the data set's order; ``n=None``
    returns the whole split in its order. ``n`` above the split's size is a
    :class:`ConfigError`.
    """
    _check(name, split, n)
    name = name.lower()
    if name == "shapes":
        images, labels = make_shapes(SHAPES_DEFAULT_N[split] if n is None else n, split, seed)
        return ImageSet(images, labels, SHAPE_NAMES)
    if name == "digits":
        images, labels, classes = load_digits(split)
    else:
        images, labels, classes = load_torchvision(name, split, root, download)
    if n is not None:
        if n > len(labels):
            raise ConfigError(f"n: {name} ({split}) has {len(labels)} images, asked for n={n}; "
                              f"pass n <= {len(labels)} or n=None")
        keep = balanced_subset(labels, n, generator(name, split, "subset", int(seed)))
        images, labels = images[keep], labels[keep]
    return ImageSet(images.contiguous(), labels, classes)


def fetch(name: str, root: str | os.PathLike | None = None) -> None:
    """Download both splits of torchvision set ``name`` into the data root (uses the network).

    A no-op for the sets that need no download (:func:`data_present` is always True for them).
    """
    _check(name, "train", None)
    for split in SPLITS:
        load_base(name, split, root=root, download=True)
