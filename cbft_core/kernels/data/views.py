"""Cue views of a base set: clean, cue (at a proportion), rand-cue, rand-img (the authors' ``syndata.py``).

A view is built in two steps, both whole-set tensor operations:
:func:`plan_view` draws every random choice (which image, which cue class,
which samples carry the cue, which simple image tops a Domino) and
:func:`render_view` draws the pixels. Labels are always the true classes.

* ``clean``: no cue on any sample.
* ``cue``: within each class, the first ``int(proportion · n_k)`` samples (in
  data-set order) carry the cue of their true class; the rest are clean
  (the authors' ``get_cue_ids``).
* ``rand-cue``: every sample keeps its image and carries a random cue: a box
  at a uniformly drawn class's position, or a Domino top drawn uniformly from
  the whole simple set (its class is the cue class).
* ``rand-img``: every sample's image is replaced by that of a uniformly drawn
  sample of the whole set (the authors' ``np.random.randint(0, len(dataset))``,
  so now and then its own), and it carries the cue of its true class.

``rand-cue`` and ``rand-img`` ignore ``proportion``: every sample carries a cue.
For Dominoes the cue of sample i, the j-th sample of class k, is the j-th
simple image of class k (cycling when the simple set has fewer; the authors'
``get_dominoes_associations``), in the cue and rand-img views alike; a sample
without the cue has a blank (zero) top half. The top half is seen in [0, 1]
and the bottom in [−1, 1] (:attr:`ImageSet.unit_rows`), as the authors'
loader leaves the simple image unnormalised.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ConfigError
from ..checks import check_choice
from .cues import cue_class_positions, draw_boxes_
from .imageset import ImageSet
from .subsets import class_order, class_ranks
from ..seeding import generator

VIEWS: tuple[str, ...] = ("clean", "cue", "rand-cue", "rand-img")
CUES: tuple[str, ...] = ("box", "dominoes")


@dataclass(frozen=True)
class ViewPlan:
    """Every random choice of a view, one entry per sample.

    ``source``: index of the base image shown; ``cue_class``: class whose cue
    is drawn; ``has_cue``: whether a cue is drawn; ``simple_index``: index into
    the simple set of the Domino top (-1 when there is none or no Domino).
    """

    source: torch.Tensor
    cue_class: torch.Tensor
    has_cue: torch.Tensor
    simple_index: torch.Tensor


def cue_mask(labels: torch.Tensor, proportion: float) -> torch.Tensor:
    """Bool mask: the first ``int(n_k · proportion)`` samples of each class k
    (in order) are True — the authors' quota, computed in double precision as they do."""
    if labels.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    quota = torch.floor(torch.bincount(labels).double() * float(proportion)).long()
    return class_ranks(labels) < quota[labels]


def _associated(simple_labels: torch.Tensor, classes: torch.Tensor, ranks: torch.Tensor,
                num_classes: int) -> torch.Tensor:
    """Index of the ``ranks[i]``-th simple image of class ``classes[i]`` (cycling within the class)."""
    order, counts, starts = class_order(simple_labels, minlength=num_classes)
    return order[starts[classes] + ranks % counts[classes]]


def _validate(base: ImageSet, cue: str, view: str, proportion: float, simple: ImageSet | None) -> None:
    if not isinstance(base, ImageSet):
        raise ConfigError(f"base: expected an ImageSet (from load_base), got {type(base).__name__}")
    check_choice("cue", cue, CUES)
    check_choice("view", view, VIEWS)
    if isinstance(proportion, bool) or not isinstance(proportion, (int, float)) or not 0.0 <= proportion <= 1.0:
        raise ConfigError(f"proportion: expected a number in [0, 1], got {proportion!r}")
    if len(base) == 0:
        raise ConfigError("base: the set is empty")
    if view == "rand-img" and len(base) < 2:
        raise ConfigError("base: the rand-img view needs at least 2 samples to swap images")
    if base.shape[0] != 3:
        raise ConfigError(f"base: expected RGB images [N, 3, H, W], got shape {base.shape}")
    if cue == "box":
        cue_class_positions(base.num_classes, *base.shape[1:])  # checks class count and size
        return
    if simple is None:
        raise ConfigError("simple: the dominoes cue needs a simple ImageSet for the top half, "
                          "e.g. simple=load_base('digits')")
    if not isinstance(simple, ImageSet):
        raise ConfigError(f"simple: expected an ImageSet, got {type(simple).__name__}")
    if simple.num_classes != base.num_classes:
        raise ConfigError(f"simple: has {simple.num_classes} classes but base has {base.num_classes}; "
                          "use a simple set with the same number of classes")
    if simple.shape != base.shape:
        raise ConfigError(f"simple: images are {simple.shape} but base images are {base.shape}; they must match")
    missing = torch.bincount(simple.labels, minlength=simple.num_classes)[: base.num_classes] == 0
    if missing.any():
        raise ConfigError(f"simple: no image of class(es) {torch.nonzero(missing).flatten().tolist()}; "
                          "every class needs at least one")


def plan_view(
    base: ImageSet, cue: str = "box", view: str = "clean", proportion: float = 1.0,
    seed: int = 0, simple: ImageSet | None = None,
) -> ViewPlan:
    """Draw every random choice of a view (arguments as :func:`make_view`)."""
    _validate(base, cue, view, proportion, simple)
    n, labels = len(base), base.labels
    source = torch.arange(n)
    cue_class = labels.clone()
    if view == "clean":
        has_cue = torch.zeros(n, dtype=torch.bool)
    elif view == "cue":
        has_cue = cue_mask(labels, float(proportion))
    else:
        has_cue = torch.ones(n, dtype=torch.bool)
    simple_index = torch.full((n,), -1, dtype=torch.int64)
    if view == "rand-cue":
        g = generator("view", "rand-cue", int(seed))
        if cue == "box":
            cue_class = torch.randint(0, base.num_classes, (n,), generator=g)
        else:
            simple_index = torch.randint(0, len(simple), (n,), generator=g)
            cue_class = simple.labels[simple_index]
    if view == "rand-img":
        source = torch.randint(0, n, (n,), generator=generator("view", "rand-img", int(seed)))
    if cue == "box":  # a class without a box position (class 9 of 10) carries no cue: has_cue follows the pixels
        has_cue &= cue_class_positions(base.num_classes, *base.shape[1:])[cue_class, 0] >= 0
    elif view != "rand-cue":
        simple_index = _associated(simple.labels, cue_class, class_ranks(labels), base.num_classes)
    if cue == "dominoes":
        simple_index = torch.where(has_cue, simple_index, torch.full_like(simple_index, -1))
    return ViewPlan(source, cue_class, has_cue, simple_index)


def _stack_halves(top_pool: torch.Tensor, top_index: torch.Tensor, top_on: torch.Tensor,
                  bottom_pool: torch.Tensor, bottom_index: torch.Tensor) -> torch.Tensor:
    """``[N, C, 2H, W]``: top_pool[top_index] (zeros where not ``top_on``) above
    bottom_pool[bottom_index].

    Each channel's image plane is moved as a block of 8-byte words when its
    size allows, gathered straight into its place in the output (one pass
    over the output's bytes, no temporary copies).
    """
    n, (c, h, w) = top_index.shape[0], bottom_pool.shape[1:]
    word = torch.int64 if (h * w) % 8 == 0 else torch.uint8
    tops = top_pool.reshape(-1, h * w).view(word)        # one row per (image, channel) plane
    bottoms = bottom_pool.reshape(-1, h * w).view(word)
    channel = torch.arange(c)
    halves = torch.empty(n, c, 2, tops.shape[-1], dtype=word)
    top_half, bottom_half = halves[:, :, 0], halves[:, :, 1]
    bottom_rows = (bottom_index.unsqueeze(1) * c + channel).reshape(-1)
    torch.index_select(bottoms, 0, bottom_rows, out=bottom_half.view(n * c, -1))
    if bool(top_on.any()):
        top_rows = (top_index.clamp(min=0).unsqueeze(1) * c + channel).reshape(-1)
        torch.index_select(tops, 0, top_rows, out=top_half.view(n * c, -1))
        top_half.index_fill_(0, torch.nonzero(~top_on).flatten(), 0)
    else:
        top_half.zero_()
    return halves.view(torch.uint8).view(n, c, 2 * h, w)


def render_view(base: ImageSet, plan: ViewPlan, cue: str = "box", simple: ImageSet | None = None) -> ImageSet:
    """Pixels of a planned view: box ``[N, 3, H, W]`` or Dominoes ``[N, 3, 2H, W]``."""
    if cue == "box":
        images = base.images.index_select(0, plan.source)  # a fresh copy, drawn on in place
        draw_boxes_(images, plan.cue_class, plan.has_cue, base.num_classes)
    else:
        images = _stack_halves(simple.images, plan.simple_index, plan.has_cue, base.images, plan.source)
    unit_rows = 0 if cue == "box" else base.shape[1]  # a Domino's top half is seen in [0, 1]
    return ImageSet(images, base.labels.clone(), base.classes, plan.has_cue.clone(), unit_rows)


def make_view(
    base: ImageSet, cue: str = "box", view: str = "clean", proportion: float = 1.0,
    seed: int = 0, simple: ImageSet | None = None,
) -> ImageSet:
    """One cue view of ``base`` (views and layout: module docstring and :mod:`.cues`).

    ``cue``: ``"box"`` or ``"dominoes"`` (needs ``simple``, an ImageSet with the
    same classes and image shape, e.g. digits); ``view``: one of :data:`VIEWS`;
    ``proportion`` (in [0, 1]) applies to the ``cue`` view; ``seed`` drives the
    random choices. ``has_cue`` of the result marks the samples with a cue.
    """
    plan = plan_view(base, cue, view, proportion, seed, simple)
    return render_view(base, plan, cue, simple)


def counterfactual_views(
    base: ImageSet, cue: str = "box", seed: int = 0, simple: ImageSet | None = None
) -> dict[str, ImageSet]:
    """The four evaluation views of ``base`` (cue views at proportion 1.0), keyed by :data:`VIEWS`."""
    return {v: make_view(base, cue, v, 1.0, seed, simple) for v in VIEWS}
