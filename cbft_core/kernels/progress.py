"""Progress bars of long kernels: shown while a person runs a chapter, never in executed pages.

Every long loop of the library draws its bar through :func:`bar`. Setting
``CBFT_PROGRESS=0`` (``python -m cbft_core chapter|book|refresh`` and
``scripts/build-book`` do, for the kernels they start) turns every bar off,
whatever the caller's ``progress`` argument says.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from tqdm.auto import tqdm

__all__ = ["ENV", "enabled", "bar"]

ENV = "CBFT_PROGRESS"


def enabled() -> bool:
    """Whether progress bars are wanted: false when ``CBFT_PROGRESS`` is ``0``, ``false``, ``no`` or ``off``."""
    return os.environ.get(ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def bar(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, show: bool = True) -> tqdm:
    """A transient tqdm bar, drawn only when ``show`` and :func:`enabled` are both true."""
    return tqdm(iterable, desc=desc, total=total, disable=not (show and enabled()), leave=False)
