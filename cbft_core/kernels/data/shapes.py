"""The embedded default data set: procedural coloured shapes on noisy backgrounds.

An image: a smooth random colour background, one translucent distractor
shape, the class shape (colour pushed to contrast with the background),
up to four small flat "specks" (so that small occluding patches such as the
box cue are nothing new to a model trained on clean images), pixel noise.

Every image is rendered from signed-distance fields (SDFs) evaluated over a
whole block of images at once. A shape's SDF is defined in unit coordinates
(extent about ±1) and scaled by its radius in pixels, so ``0.5 − distance``
clipped to [0, 1] gives an anti-aliased coverage mask.

Images are produced in fixed blocks of :data:`BLOCK` samples, each block from
its own generator seeded by ``(split, seed, block index)``: the first ``n``
images are the same whatever the total asked for, and the train and test
splits are unrelated random streams. Labels cycle ``i % 10`` (exactly
balanced for any ``n`` that is a multiple of 10, within one otherwise).
"""
from __future__ import annotations

import math
from itertools import accumulate
from typing import Callable

import torch
import torch.nn.functional as F

from ..seeding import generator

SHAPE_NAMES: tuple[str, ...] = (
    "disk", "square", "triangle", "plus", "ring",
    "star", "bars", "frame", "crescent", "L",
)
SIZE = 32
BLOCK = 500
RENDER_BLOCKS = 10  # blocks rendered together

# Recipe of the generator (pixels unless stated; colours in [0, 1]). Chosen so that the cpu preset's
# cue-free model learns the shapes to about 80 % while the box stays the easier feature
# (benchmarks/science_trials.py records the search).
CENTRE_JITTER = 6.0          # shape centre uniform in 16 ± 6
RADIUS = (8.0, 12.0)         # shape radius in pixels (unit SDF extent ≈ 0.9)
MIN_CONTRAST = 0.45          # |brightness(shape) − brightness(background)| at least this
BG_NOISE = 0.3               # amplitude of the smooth 4×4 colour noise
CLUTTER_ALPHA = 0.25         # opacity of the one translucent distractor shape
CLUTTER_RADIUS = (3.0, 6.0)
SPECK_SLOTS = 4              # up to this many small opaque rectangles ("specks") per image
SPECK_PROB = 0.5             # each slot holds a speck with this probability
SPECK_SIDE = (2, 4)          # speck sides in pixels (inclusive)
PIXEL_NOISE = 0.08           # σ of the i.i.d. Gaussian pixel noise


def _box(u: torch.Tensor, v: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Exact SDF of an axis-aligned rectangle with half-sides a, b."""
    qx, qy = u.abs() - a, v.abs() - b
    outside = torch.hypot(qx.clamp(min=0), qy.clamp(min=0))
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _disk(u, v):
    return torch.hypot(u, v) - 0.9


def _square(u, v):
    return _box(u, v, 0.75, 0.75)


def _triangle(u, v):
    # Intersection of three half-planes (inradius 0.45, circumradius 0.9).
    d = None
    for k in range(3):
        a = math.pi / 2 + 2 * math.pi * k / 3
        h = u * math.cos(a) + v * math.sin(a) - 0.45
        d = h if d is None else torch.maximum(d, h)
    return d


def _plus(u, v):
    return torch.minimum(_box(u, v, 0.95, 0.3), _box(u, v, 0.3, 0.95))


def _ring(u, v):
    return (torch.hypot(u, v) - 0.68).abs() - 0.24


def _star(u, v, outer: float = 1.0, inner: float = 0.45):
    # Fold the plane into one half-spike (angle in [0, π/5]) and measure the
    # signed distance to the edge from the outer tip to the inner vertex.
    half = math.pi / 5
    ang = torch.atan2(v, u)
    ang = torch.remainder(ang + half, 2 * half) - half
    ang = ang.abs()
    rho = torch.hypot(u, v)
    px, py = rho * torch.cos(ang), rho * torch.sin(ang)
    ax, ay = outer, 0.0
    bx, by = inner * math.cos(half), inner * math.sin(half)
    ex, ey = bx - ax, by - ay
    h = (((px - ax) * ex + (py - ay) * ey) / (ex * ex + ey * ey)).clamp(0, 1)
    dist = torch.hypot(px - ax - h * ex, py - ay - h * ey)
    # Cross product sign: negative on the origin's side of the edge.
    side = ex * (py - ay) - ey * (px - ax)
    return torch.where(side > 0, -dist, dist)


def _bars(u, v):
    d = _box(u, v + 0.6, 0.9, 0.16)
    d = torch.minimum(d, _box(u, v, 0.9, 0.16))
    return torch.minimum(d, _box(u, v - 0.6, 0.9, 0.16))


def _frame(u, v):
    return _box(u, v, 0.7, 0.7).abs() - 0.17


def _crescent(u, v):
    return torch.maximum(torch.hypot(u, v) - 0.9, -(torch.hypot(u - 0.45, v) - 0.75))


def _ell(u, v):
    return torch.minimum(_box(u + 0.45, v, 0.2, 0.9), _box(u, v - 0.7, 0.65, 0.2))


SDFS: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (
    _disk, _square, _triangle, _plus, _ring, _star, _bars, _frame, _crescent, _ell,
)


def shape_masks(
    kinds: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, radius: torch.Tensor,
    angle: torch.Tensor, size: int = SIZE,
) -> torch.Tensor:
    """Anti-aliased coverage masks ``[B, size, size]`` in [0, 1].

    ``kinds`` indexes :data:`SHAPE_NAMES`; the other arguments are per-image
    centre (pixels), radius (pixels) and rotation (radians). One SDF call per
    kind present, each over all images of that kind.
    """
    # Sort images by kind so that each SDF runs on one contiguous slice.
    order = torch.argsort(kinds, stable=True)
    counts = torch.bincount(kinds, minlength=len(SDFS)).tolist()
    cx, cy, radius, angle = cx[order], cy[order], radius[order], angle[order]
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    dx = grid.view(1, 1, -1) - cx.view(-1, 1, 1)
    dy = grid.view(1, -1, 1) - cy.view(-1, 1, 1)
    c, s, r = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1), radius.view(-1, 1, 1)
    u = (c * dx + s * dy) / r
    v = (c * dy - s * dx) / r
    bounds = list(accumulate(counts, initial=0))
    dist = torch.cat([SDFS[k](u[bounds[k] : bounds[k + 1]], v[bounds[k] : bounds[k + 1]])
                      for k in range(len(SDFS)) if counts[k]])
    mask = torch.empty_like(dist)
    mask[order] = (0.5 - dist * r).clamp_(0.0, 1.0)
    return mask


def _contrasting(colour: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Mix ``colour`` toward white (dark background) or black (bright one) until its
    mean brightness differs from the background's by at least MIN_CONTRAST."""
    b, bg = colour.mean(1), background.mean(1)
    up = bg < 0.5
    target = torch.where(up, bg + MIN_CONTRAST, bg - MIN_CONTRAST)
    need = torch.where(up, b < target, b > target)
    # Mixing weight w with (1 − w)·b + w·extreme = target.
    w_up = (target - b) / (1 - b).clamp(min=1e-6)
    w_down = (b - target) / b.clamp(min=1e-6)
    w = torch.where(up, w_up, w_down).clamp(0, 1) * need
    extreme = up.float().view(-1, 1)
    return colour + w.view(-1, 1) * (extreme - colour)


def _draw_block(labels: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Every random number of one block, drawn from ``g`` in a fixed order."""
    b = labels.shape[0]

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g) * (hi - lo) + lo

    p = {"labels": labels}
    p["cx"], p["cy"] = uniform(-CENTRE_JITTER, CENTRE_JITTER, 2, b) + SIZE / 2
    p["radius"] = uniform(*RADIUS, b)
    p["angle"] = uniform(0.0, 2 * math.pi, b)
    p["colour"] = torch.rand(b, 3, generator=g)
    p["base"] = torch.rand(b, 3, generator=g)
    p["noise"] = uniform(-BG_NOISE, BG_NOISE, b, 3, 4, 4)
    p["ckind"] = torch.randint(0, len(SDFS), (b,), generator=g)
    p["ccx"], p["ccy"] = uniform(4.0, SIZE - 4.0, 2, b)
    p["cradius"] = uniform(*CLUTTER_RADIUS, b)
    p["cangle"] = uniform(0.0, 2 * math.pi, b)
    p["ccolour"] = torch.rand(b, 3, generator=g)
    p["speck_on"] = torch.rand(b, SPECK_SLOTS, generator=g) < SPECK_PROB
    p["speck_hw"] = torch.randint(SPECK_SIDE[0], SPECK_SIDE[1] + 1, (b, SPECK_SLOTS, 2), generator=g)
    p["speck_at"] = (torch.rand(b, SPECK_SLOTS, 2, generator=g) * (SIZE - p["speck_hw"] + 1)).long()
    p["speck_colour"] = torch.rand(b, SPECK_SLOTS, 3, generator=g)
    p["pixel"] = torch.randn(b, 3, SIZE, SIZE, generator=g) * PIXEL_NOISE
    return p


def _bicubic_matrix(small: int, size: int) -> torch.Tensor:
    """``[size, small]`` matrix of 1-D bicubic upsampling (align_corners=False).

    Bicubic resampling is separable and linear, so ``M @ X @ M.T`` equals
    ``F.interpolate(X, mode="bicubic")`` and costs two small matmuls.
    """
    basis = torch.eye(small).view(small, 1, small, 1)
    cols = F.interpolate(basis, size=(size, 1), mode="bicubic", align_corners=False)
    return cols.view(small, size).T.contiguous()


def _draw_specks(img: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Paint the specks in place: small flat rectangles over everything, so
    that a model trained on clean images meets small occluding patches (like
    the box cue) and learns to look past them."""
    offs = torch.arange(SPECK_SIDE[1])
    for s in range(SPECK_SLOTS):  # one write per slot: later specks cover earlier ones
        hw, at = p["speck_hw"][:, s], p["speck_at"][:, s]
        valid = (p["speck_on"][:, s, None, None] & (offs[None, :, None] < hw[:, 0, None, None])
                 & (offs[None, None, :] < hw[:, 1, None, None]))
        i, dr, dc = torch.nonzero(valid, as_tuple=True)
        img[i, :, at[i, 0] + dr, at[i, 1] + dc] = p["speck_colour"][i, s]
    return img


def _render(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Images uint8 ``[B, 3, 32, 32]`` from drawn parameters (no randomness here)."""
    b = p["labels"].shape[0]
    up = _bicubic_matrix(p["noise"].shape[-1], SIZE)
    img = p["base"].view(b, 3, 1, 1) + torch.einsum("hi,bcij,wj->bchw", up, p["noise"], up)
    m = shape_masks(p["ckind"], p["ccx"], p["ccy"], p["cradius"], p["cangle"]).unsqueeze(1) * CLUTTER_ALPHA
    img.lerp_(p["ccolour"].view(b, 3, 1, 1).expand_as(img), m)
    colour = _contrasting(p["colour"], p["base"])
    m = shape_masks(p["labels"], p["cx"], p["cy"], p["radius"], p["angle"]).unsqueeze(1)
    img.lerp_(colour.view(b, 3, 1, 1).expand_as(img), m)
    img = _draw_specks(img, p)
    img = img.add_(p["pixel"]).clamp_(0.0, 1.0)
    return (img * 255).round_().to(torch.uint8)


def make_shapes(n: int, split: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (uint8 ``[n, 3, 32, 32]``) and labels (int64) of the shapes set.

    Deterministic in ``(split, seed)``; a prefix of a larger request.
    """
    labels = torch.arange(n, dtype=torch.int64) % len(SHAPE_NAMES)
    images = torch.empty(n, 3, SIZE, SIZE, dtype=torch.uint8)
    blocks = range(0, n, BLOCK)
    # Draw block by block (whole blocks, so a block never depends on n), but
    # render several blocks per call: fewer, larger tensor ops.
    for first in range(0, len(blocks), RENDER_BLOCKS):
        draws = []
        for start in blocks[first : first + RENDER_BLOCKS]:
            block_labels = torch.arange(start, start + BLOCK) % len(SHAPE_NAMES)
            draws.append(_draw_block(block_labels, generator("shapes", split, int(seed), start // BLOCK)))
        params = {k: torch.cat([d[k] for d in draws])
                  for k in draws[0]}
        start = blocks[first]
        stop = min(start + BLOCK * len(draws), n)
        images[start:stop] = _render(params)[: stop - start]
    return images, labels
