"""The box cue: a 3×3-pixel box whose position (and, beyond 10 classes, colour)
encodes the class.

Layout (for 32×32 images; other sizes ≥ 32 scale the offsets):

* Nine grid positions with top-left corners at rows/cols {3, 14, 26}
  (box centres at 4, 15, 27: near the corners, edge midpoints and centre).
  Class k (k = 0…8) uses position k in reading order: top-left,
  top-centre, top-right, middle-left, …, bottom-right.
* Up to 10 classes: every box is white (255, 255, 255): a flat noise-free
  patch stands out on the shapes set's noisy backgrounds. With exactly 10
  classes, class 9's cue is *no box* (its cue-carrying samples look clean).
* 11–100 classes: position ``k % 10`` and colour ``PALETTE[k // 10]``;
  position 9 is the extra position with top-left corner (8, 8), between the
  top-left and centre positions, overlapping neither.
"""
from __future__ import annotations

import torch

from ...errors import ConfigError

BOX = 3
GRID_32 = (3, 14, 26)
EXTRA_32 = (8, 8)
MAX_CLASSES = 100
PALETTE = torch.tensor(
    [
        (255, 255, 255),  # white (the 10-class colour)
        (255, 0, 0),      # red
        (0, 255, 0),      # green
        (0, 0, 255),      # blue
        (255, 255, 0),    # yellow
        (0, 255, 255),    # cyan
        (255, 0, 255),    # magenta
        (255, 128, 0),    # orange
        (128, 0, 255),    # violet
        (0, 0, 0),        # black
    ],
    dtype=torch.uint8,
)


def _check_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= MAX_CLASSES:
        raise ConfigError(f"num_classes: the box cue encodes 1 to {MAX_CLASSES} classes, got {num_classes!r}")


def _scale(offset: int, side: int) -> int:
    return round(offset * (side - BOX) / (32 - BOX))


def cue_class_positions(num_classes: int, height: int = 32, width: int = 32) -> torch.Tensor:
    """Top-left ``(row, col)`` of each class's box, int64 ``[num_classes, 2]``;
    ``(-1, -1)`` for a class without a box (class 9 of 10)."""
    _check_classes(num_classes)
    if height < 32 or width < 32:
        raise ConfigError(f"images: the box cue needs images of at least 32×32, got {height}×{width}")
    rows = [_scale(r, height) for r in GRID_32]
    cols = [_scale(c, width) for c in GRID_32]
    slots = [(r, c) for r in rows for c in cols] + [(_scale(EXTRA_32[0], height), _scale(EXTRA_32[1], width))]
    if num_classes <= 10:
        pos = [slots[k] if k < 9 else (-1, -1) for k in range(num_classes)]
    else:
        pos = [slots[k % 10] for k in range(num_classes)]
    return torch.tensor(pos, dtype=torch.int64)


def cue_class_colours(num_classes: int) -> torch.Tensor:
    """RGB colour of each class's box, uint8 ``[num_classes, 3]``."""
    _check_classes(num_classes)
    k = torch.arange(num_classes)
    return PALETTE[torch.zeros_like(k) if num_classes <= 10 else k // 10]


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
