"""The box cue: a 3×3-pixel box whose position (and, beyond 10 classes, colour)
encodes the class, drawn as the authors' ``syndata.py`` (``boxDataset.get_box``) draws it.

Layout, for an image of height H and width W (s = 3):

* Nine positions flush with the image edge: top-left corners at rows
  {0, (H − s) // 2, H − s} and columns {0, (W − s) // 2, W − s} — rows and
  columns {0, 14, 29} on 32×32 images. Class k uses position ``k % 10`` in
  reading order: top-left, top-centre, top-right, middle-left, …, bottom-right.
* Position 9: no box with 10 classes (class 9's cue-carrying images look
  clean); with more classes a box at ((H − s) // 2 − H // 4, (W − s) // 2 − W // 4),
  (6, 6) on 32×32 images.
* Colour, in normalised units (images are normalised to [−1, 1]): the
  channel-reordered (B, R, G) value of ``hsv_to_rgb(h, 1, 1)``, with h = 1 for
  10 classes (pure green, (0, 1, 0)) and h = (k // 10) / 10 for 100 classes.
  Stored images are uint8, so each value c is written as the nearest pixel
  level ``round((c + 1) · 127.5)``: normalised 0 becomes 128, i.e. 0.0039
  (the one place where the stored box differs from the authors', by 1/255).
"""
from __future__ import annotations

import math

import torch

from ...errors import ConfigError

BOX = 3
MAX_CLASSES = 100
MIN_SIDE = 32


def _check_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= MAX_CLASSES:
        raise ConfigError(f"num_classes: the box cue encodes 1 to {MAX_CLASSES} classes, got {num_classes!r}")


def cue_class_positions(num_classes: int, height: int = 32, width: int = 32) -> torch.Tensor:
    """Top-left ``(row, col)`` of each class's box, int64 ``[num_classes, 2]``;
    ``(-1, -1)`` for a class without a box (class 9 of 10)."""
    _check_classes(num_classes)
    if height < MIN_SIDE or width < MIN_SIDE:
        raise ConfigError(f"images: the box cue needs images of at least {MIN_SIDE}×{MIN_SIDE}, "
                          f"got {height}×{width}")
    rows = (0, (height - BOX) // 2, height - BOX)
    cols = (0, (width - BOX) // 2, width - BOX)
    slots = [(r, c) for r in rows for c in cols]
    slots.append((-1, -1) if num_classes == 10 else
                 ((height - BOX) // 2 - height // 4, (width - BOX) // 2 - width // 4))
    return torch.tensor([slots[k % 10] for k in range(num_classes)], dtype=torch.int64)


def _hsv_to_rgb(h: float) -> tuple[float, float, float]:
    """RGB in [0, 1] of hue ``h`` at full saturation and value (the standard six-sector formula)."""
    sector = math.floor(h * 6)
    f = h * 6 - sector
    return [(1, f, 0), (1 - f, 1, 0), (0, 1, f), (0, 1 - f, 1), (f, 0, 1), (1, 0, 1 - f)][sector % 6]


def cue_class_values(num_classes: int) -> torch.Tensor:
    """Colour of each class's box in normalised units (float64 ``[num_classes, 3]``, values in [0, 1])."""
    _check_classes(num_classes)
    values = []
    for k in range(num_classes):
        r, g, b = _hsv_to_rgb(1.0 if num_classes <= 10 else (k // 10) / 10)
        values.append((b, r, g))  # the authors' [[2, 0, 1]] reordering
    return torch.tensor(values, dtype=torch.float64)


def cue_class_colours(num_classes: int) -> torch.Tensor:
    """Pixel value of each class's box, uint8 ``[num_classes, 3]`` (nearest level to :func:`cue_class_values`)."""
    return torch.round((cue_class_values(num_classes) + 1) * 127.5).to(torch.uint8)


def draw_boxes_(images: torch.Tensor, cue_class: torch.Tensor, on: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Draw, in place, the box of ``cue_class[i]`` on every image ``i`` of
    ``images`` (uint8 ``[N, 3, H, W]``) where ``on[i]``; one indexed write for
    the whole set. Returns ``images``."""
    _, _, h, w = images.shape
    pos = cue_class_positions(num_classes, h, w)
    colours = cue_class_colours(num_classes)
    idx = torch.nonzero(on & (pos[cue_class, 0] >= 0)).squeeze(1)
    k = cue_class[idx]
    offs = torch.arange(BOX)
    rows = (pos[k, 0].view(-1, 1, 1) + offs.view(1, BOX, 1)).expand(-1, BOX, BOX)
    cols = (pos[k, 1].view(-1, 1, 1) + offs.view(1, 1, BOX)).expand(-1, BOX, BOX)
    # Advanced indices around a slice: the indexed block is [m, 3, 3, C].
    images[idx.view(-1, 1, 1), :, rows, cols] = colours[k].view(-1, 1, 1, 3)
    return images
