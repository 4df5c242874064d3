"""Tests of cbft_core.kernels.data: base sets, the box and Dominoes cues, the four views."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from cbft_core.kernels.data import (
    BASE_SETS, CUES, VIEWS, ImageSet, counterfactual_views, cue_class_colours, cue_class_positions,
    load_base, make_view, plan_view,
)
from cbft_core.kernels.data.shapes import SHAPE_NAMES, shape_masks
from cbft_core.errors import ConfigError, DataUnavailableError

# The authors' layout (syndata.py, boxDataset.get_box on 32×32 images), restated independently:
# rows/columns 0, (32 − 3) // 2 = 14 and 32 − 3 = 29; class 9 of 100 at (14 − 8, 14 − 8).
GRID = (0, 14, 29)
EXTRA = (6, 6)


def documented_position(k: int, num_classes: int) -> tuple[int, int] | None:
    slot = k % 10
    if slot == 9:
        return None if num_classes == 10 else EXTRA
    return GRID[slot // 3], GRID[slot % 3]


def documented_colour(k: int, num_classes: int) -> torch.Tensor:
    """The authors' hsv_to_rgb([h, 1, 255])[[2, 0, 1]] / 255 in normalised units, as the nearest uint8 pixel."""
    from matplotlib.colors import hsv_to_rgb

    h = 1.0 if num_classes <= 10 else (k // 10) / 10
    value = hsv_to_rgb([h, 1, 255])[[2, 0, 1]] / 255
    return torch.tensor([round((v + 1) * 127.5) for v in value], dtype=torch.uint8)


def synthetic_base(num_classes: int, per_class: int, fill: int = 128, seed: int = 0) -> ImageSet:
    """Flat grey images (or random ones with fill=-1), labels shuffled."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat(per_class)[torch.randperm(num_classes * per_class, generator=g)]
    if fill < 0:
        images = torch.randint(0, 256, (len(labels), 3, 32, 32), generator=g, dtype=torch.uint8)
    else:
        images = torch.full((len(labels), 3, 32, 32), fill, dtype=torch.uint8)
    return ImageSet(images, labels, tuple(f"c{k}" for k in range(num_classes)))


def box_region(pos: tuple[int, int]) -> tuple[slice, slice]:
    return slice(pos[0], pos[0] + 3), slice(pos[1], pos[1] + 3)


@pytest.fixture(scope="module")
def shapes_small() -> ImageSet:
    return load_base("shapes", n=300, seed=0)


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return load_base("digits")


# ---------------------------------------------------------------- box cue layout
@pytest.mark.parametrize("num_classes", [10, 100])
def test_box_position_and_colour_for_every_class(num_classes):
    base = synthetic_base(num_classes, per_class=2)
    view = make_view(base, "box", "cue", proportion=1.0)
    for i in range(len(base)):
        k = int(base.labels[i])
        pos = documented_position(k, num_classes)
        img = view.images[i]
        if pos is None:
            assert torch.equal(img, base.images[i])
            continue
        colour = documented_colour(k, num_classes)
        rows, cols = box_region(pos)
        assert torch.equal(img[:, rows, cols], colour.view(3, 1, 1).expand(3, 3, 3))
        outside = torch.ones(32, 32, dtype=torch.bool)
        outside[rows, cols] = False
        assert (img[:, outside] == 128).all()


def test_box_layout_100_classes_is_a_distinct_code():
    pos = cue_class_positions(100)
    col = cue_class_colours(100)
    assert len({tuple(c) for c in col.tolist()}) == 10
    codes = {(tuple(p), tuple(c)) for p, c in zip(pos.tolist(), col.tolist())}
    assert len(codes) == 100
    assert (pos >= 0).all()
    # The ten positions do not overlap one another.
    cover = torch.zeros(10, 32, 32, dtype=torch.bool)
    for s in range(10):
        rows, cols = box_region(tuple(pos[s].tolist()))
        cover[s, rows, cols] = True
    assert cover.sum(0).max() == 1


def test_box_layout_10_classes_class_nine_has_no_box():
    pos = cue_class_positions(10)
    assert pos[9].tolist() == [-1, -1]
    assert len({tuple(p) for p in pos[:9].tolist()}) == 9
    assert (cue_class_colours(10) == torch.tensor([128, 255, 128], dtype=torch.uint8)).all()  # green, (0, 1, 0)


@settings(max_examples=20, deadline=None)
@given(num_classes=st.integers(2, 100), n=st.integers(2, 16), seed=st.integers(0, 2**31 - 1))
def test_box_changes_only_the_box_pixels(num_classes, n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    base = ImageSet(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8), labels,
                    tuple(str(k) for k in range(num_classes)))
    out = make_view(base, "box", "cue", 1.0, seed=seed).images
    for i in range(n):
        k = int(labels[i])
        pos = documented_position(k, num_classes)
        mask = torch.zeros(32, 32, dtype=torch.bool)
        if pos is not None:
            rows, cols = box_region(pos)
            mask[rows, cols] = True
            assert (out[i][:, mask] == documented_colour(k, num_classes).view(3, 1)).all()
        assert torch.equal(out[i][:, ~mask], base.images[i][:, ~mask])


# ---------------------------------------------------------------- proportion
@pytest.mark.parametrize("p", [0.0, 0.25, 0.6, 0.8, 0.95, 1.0])
def test_cue_proportion_is_exact_per_class_and_takes_the_first(p):
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 7, (301,), generator=g)  # uneven class sizes
    base = ImageSet(torch.zeros(301, 3, 32, 32, dtype=torch.uint8), labels, tuple("abcdefg"))
    view = make_view(base, "box", "cue", proportion=p)
    for k in range(7):
        flags = view.has_cue[labels == k].tolist()
        q = int(len(flags) * p)  # the authors' get_cue_ids: int(n_k · p)
        assert flags == [True] * q + [False] * (len(flags) - q)
        # has_cue agrees with the pixels (class 9 absent here, every class has a box).
        boxed = (view.images[labels == k] != 0).flatten(1).any(1).tolist()
        assert boxed == flags


def test_clean_has_no_cue_and_counterfactuals_all_carry_one(shapes_small, digits):
    for cue in CUES:
        views = counterfactual_views(shapes_small, cue, seed=3, simple=digits)
        assert list(views) == list(VIEWS)
        assert not views["clean"].has_cue.any()
        for v in ("cue", "rand-cue", "rand-img"):
            if cue == "dominoes":
                assert views[v].has_cue.all()
            else:  # class 9 of 10 has no box position: those images carry no cue
                no_box = views[v].has_cue == False  # noqa: E712
                cue_class = make_plan_cue_class(shapes_small, v)
                assert torch.equal(no_box, cue_class == 9)
        for v in views.values():
            assert torch.equal(v.labels, shapes_small.labels)
    clean = make_view(shapes_small, "box", "clean", proportion=0.5)
    assert torch.equal(clean.images, shapes_small.images)


def make_plan_cue_class(base, view):
    from cbft_core.kernels.data import plan_view
    return plan_view(base, "box", view, seed=3).cue_class


@pytest.mark.parametrize("view", ["cue", "rand-cue", "rand-img"])
def test_box_has_cue_agrees_with_the_pixels(shapes_small, view):
    # has_cue must be True exactly where the box changed pixels (class 9 of 10 gets no box)
    from cbft_core.kernels.data import plan_view, render_view
    plan = plan_view(shapes_small, "box", view, proportion=0.8, seed=5)
    out = render_view(shapes_small, plan, "box")
    unboxed = shapes_small.images[plan.source]
    changed = (out.images != unboxed).flatten(1).any(1)
    # a box whose colour equals the pixels under it would change nothing; the palette makes that vanishingly rare
    assert torch.equal(out.has_cue, changed)
    assert int(out.has_cue.sum()) < len(shapes_small)


# ---------------------------------------------------------------- determinism
def test_views_deterministic_by_seed(shapes_small, digits):
    for cue in CUES:
        for view in ("rand-cue", "rand-img"):
            a = make_view(shapes_small, cue, view, seed=5, simple=digits)
            b = make_view(shapes_small, cue, view, seed=5, simple=digits)
            c = make_view(shapes_small, cue, view, seed=6, simple=digits)
            assert torch.equal(a.images, b.images)
            assert not torch.equal(a.images, c.images)


def test_shapes_deterministic_prefix_and_seeded():
    a = load_base("shapes", n=600, seed=0)
    b = load_base("shapes", n=50, seed=0)
    c = load_base("shapes", n=50, seed=1)
    assert torch.equal(a.images[:50], b.images) and torch.equal(a.labels[:50], b.labels)
    assert not torch.equal(b.images, c.images)
    assert a.images.dtype == torch.uint8 and a.shape == (3, 32, 32) and a.labels.dtype == torch.int64
    assert a.classes == SHAPE_NAMES
    assert torch.equal(a.labels, torch.arange(600) % 10)


def test_shapes_train_and_test_share_no_image():
    train = load_base("shapes", "train", n=500).images.flatten(1)
    test = load_base("shapes", "test", n=500).images.flatten(1)
    both = torch.cat([train, test])
    assert torch.unique(both, dim=0).shape[0] == 1000


def test_shape_masks_areas_and_distinct():
    n = len(SHAPE_NAMES)
    r = torch.full((n,), 40.0)
    masks = shape_masks(torch.arange(n), torch.full((n,), 64.0), torch.full((n,), 64.0), r,
                        torch.zeros(n), size=128)
    # Disk of unit radius 0.9: area π (0.9 r)^2; square of half-side 0.75: (1.5 r)^2.
    assert masks[0].sum().item() == pytest.approx(math.pi * (0.9 * 40) ** 2, rel=0.01)
    assert masks[1].sum().item() == pytest.approx((1.5 * 40) ** 2, rel=0.01)
    flat = (masks > 0.5).flatten(1).float()
    overlap = flat @ flat.T
    iou = overlap / (flat.sum(1)[:, None] + flat.sum(1)[None, :] - overlap)
    assert (iou - torch.eye(n)).max() < 0.9


# ---------------------------------------------------------------- counterfactual views
def test_rand_img_keeps_true_cue_and_changes_image(shapes_small):
    base = shapes_small
    plan = plan_view(base, "box", "rand-img", seed=2)
    view = make_view(base, "box", "rand-img", seed=2)
    # uniform over the whole set, itself included (the authors' np.random.randint(0, len(dataset))):
    # 300 draws keep their own image about once
    assert (plan.source == torch.arange(len(base))).sum() <= 5
    assert len(torch.unique(plan.source)) > len(base) // 2
    for i in range(100):
        k = int(base.labels[i])
        pos = documented_position(k, 10)
        mask = torch.zeros(32, 32, dtype=torch.bool)
        if pos is not None:
            rows, cols = box_region(pos)
            mask[rows, cols] = True
            assert (view.images[i][:, mask] == documented_colour(k, 10).view(3, 1)).all()
        j = int(plan.source[i])
        assert torch.equal(view.images[i][:, ~mask], base.images[j][:, ~mask])
    assert torch.equal(view.labels, base.labels)


def test_rand_cue_keeps_image_and_draws_uniform_class(shapes_small):
    base = synthetic_base(10, per_class=200, fill=-1)
    plan = plan_view(base, "box", "rand-cue", seed=4)
    view = make_view(base, "box", "rand-cue", seed=4)
    counts = torch.bincount(plan.cue_class, minlength=10).float()
    assert counts.min() > 150 and counts.max() < 250  # 2000 draws over 10 classes
    assert (plan.cue_class != base.labels).float().mean() > 0.8
    for i in range(0, len(base), 37):
        pos = documented_position(int(plan.cue_class[i]), 10)
        mask = torch.zeros(32, 32, dtype=torch.bool)
        if pos is not None:
            rows, cols = box_region(pos)
            mask[rows, cols] = True
        assert torch.equal(view.images[i][:, ~mask], base.images[i][:, ~mask])


def _classes_by_image(simple: ImageSet) -> dict[bytes, set[int]]:
    table: dict[bytes, set[int]] = {}
    for img, k in zip(simple.images.numpy(), simple.labels.tolist()):
        table.setdefault(img.tobytes(), set()).add(k)
    return table


@pytest.mark.parametrize("view", VIEWS)
def test_dominoes_halves(shapes_small, digits, view):
    out = make_view(shapes_small, "dominoes", view, proportion=0.8, seed=1, simple=digits)
    plan = plan_view(shapes_small, "dominoes", view, proportion=0.8, seed=1, simple=digits)
    assert out.images.shape == (len(shapes_small), 3, 64, 32) and out.images.dtype == torch.uint8
    top, bottom = out.images[:, :, :32], out.images[:, :, 32:]
    assert torch.equal(bottom, shapes_small.images[plan.source])
    if view != "rand-img":
        assert torch.equal(bottom, shapes_small.images)
    table = _classes_by_image(digits)
    rank = {}  # the authors' association: the j-th sample of class k shows the j-th simple image of class k
    digit_of_class = {k: torch.nonzero(digits.labels == k).flatten() for k in range(10)}
    for i in range(len(shapes_small)):
        k_true = int(shapes_small.labels[i])
        j = rank[k_true] = rank.get(k_true, -1) + 1
        if not out.has_cue[i]:
            assert (top[i] == 0).all()
            continue
        k = int(plan.cue_class[i]) if view == "rand-cue" else k_true
        assert k in table.get(top[i].numpy().tobytes(), set())
        if view != "rand-cue":
            members = digit_of_class[k]
            assert torch.equal(top[i], digits.images[members[j % len(members)]])
    # the network sees the top half in [0, 1] and the bottom in [-1, 1]
    x = out.inputs(slice(0, 4))
    assert torch.equal(x[:, :, :32], out.images[:4, :, :32].float() / 255)
    assert torch.equal(x[:, :, 32:], out.images[:4, :, 32:].float() / 127.5 - 1)
    if view == "cue":
        assert out.has_cue.float().mean().item() == pytest.approx(0.8, abs=0.01)


def test_cue_and_rand_img_share_dominoes_tops(shapes_small, digits):
    cue = make_view(shapes_small, "dominoes", "cue", seed=9, simple=digits)
    rimg = make_view(shapes_small, "dominoes", "rand-img", seed=9, simple=digits)
    assert torch.equal(cue.images[:, :, :32], rimg.images[:, :, :32])


# ---------------------------------------------------------------- base sets
def test_digits_split_and_format(digits):
    test = load_base("digits", "test")
    assert digits.shape == (3, 32, 32) and digits.classes == tuple(str(k) for k in range(10))
    assert len(digits) + len(test) == 1797
    counts_train = torch.bincount(digits.labels, minlength=10)
    counts_test = torch.bincount(test.labels, minlength=10)
    total = counts_train + counts_test
    assert torch.equal(counts_train, torch.round(total.double() * 0.8).long())
    # The split does not depend on seed, and no image is in both.
    assert torch.equal(load_base("digits", seed=7).images, digits.images)
    both = torch.cat([digits.images.flatten(1), test.images.flatten(1)])
    assert torch.unique(both, dim=0).shape[0] == len(both) - _duplicates_in_sklearn_digits()
    # Grey: the three channels are equal.
    assert torch.equal(digits.images[:, 0], digits.images[:, 2])


def _duplicates_in_sklearn_digits() -> int:
    from sklearn.datasets import load_digits
    raw = torch.as_tensor(load_digits().data)
    return len(raw) - torch.unique(raw, dim=0).shape[0]


def test_balanced_subset_of_digits(digits):
    sub = load_base("digits", n=95, seed=3)
    counts = torch.bincount(sub.labels, minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 95
    # Subset images are digits training images, in the training set's order.
    flat = digits.images.flatten(1)
    idx = [int(torch.nonzero((flat == x).all(1))[0]) for x in sub.images.flatten(1)]
    assert idx == sorted(idx)
    assert not torch.equal(load_base("digits", n=95, seed=4).images, sub.images)


def test_missing_torchvision_set_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("CBFT_DOWNLOAD", raising=False)
    for name in ("cifar10", "fashionmnist"):
        with pytest.raises(DataUnavailableError) as err:
            load_base(name, root=tmp_path)
        msg = str(err.value)
        assert str(tmp_path) in msg and "download=True" in msg and "CBFT_DOWNLOAD=1" in msg
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing fetched
    monkeypatch.setenv("CBFT_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError, match="env"):
        load_base("mnist")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(name="imagenet"), "name"),
        (dict(name="shapes", split="val"), "split"),
        (dict(name="shapes", n=0), "n"),
        (dict(name="digits", n=10**6), "n"),
    ],
)
def test_load_base_bad_input(kwargs, word):
    with pytest.raises(ConfigError, match=rf"^{word}:"):
        load_base(**kwargs)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        load_base("imagenet")
    assert all(name in str(err.value) for name in BASE_SETS)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(proportion=-0.1), "proportion"),
        (dict(proportion=1.5), "proportion"),
        (dict(proportion=float("nan")), "proportion"),
        (dict(cue="stripe"), "cue"),
        (dict(view="shuffled"), "view"),
        (dict(cue="dominoes"), "simple"),
    ],
)
def test_make_view_bad_input(shapes_small, kwargs, word):
    with pytest.raises(ConfigError, match=rf"^{word}:"):
        make_view(shapes_small, **{"view": "cue", **kwargs})


def test_dominoes_simple_with_other_classes(shapes_small):
    other = synthetic_base(7, per_class=3)
    with pytest.raises(ConfigError, match=r"^simple:.*7 classes"):
        make_view(shapes_small, "dominoes", "cue", simple=other)


def test_too_many_classes_for_box():
    base = synthetic_base(101, per_class=1)
    with pytest.raises(ConfigError, match="num_classes"):
        make_view(base, "box", "cue")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.floats(0.0, 1.0), st.booleans(), st.integers(0, 99))
def test_class_selection_against_a_loop(labels, fraction, keyed, seed):
    """class_ranks / first_per_class / balanced_subset against plain per-class loops."""
    from cbft_core.kernels.data.subsets import balanced_subset, class_ranks, first_per_class

    y = torch.tensor(labels)
    keys = torch.rand(len(labels), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) if keyed else None
    ranks = class_ranks(y, keys).tolist()
    mask = first_per_class(y, fraction, keys).tolist()
    for k in set(labels):
        members = [i for i, c in enumerate(labels) if c == k]
        if keyed:
            members.sort(key=lambda i: float(keys[i]))
        assert [ranks[i] for i in members] == list(range(len(members)))
        quota = round(fraction * len(members))
        assert [mask[i] for i in members] == [j < quota for j in range(len(members))]
    n = 1 + seed % len(labels)
    chosen = balanced_subset(y, n, torch.Generator().manual_seed(seed)).tolist()
    assert chosen == sorted(set(chosen)) and len(chosen) == n
    counts = {k: sum(labels[i] == k for i in chosen) for k in set(labels)}
    for k, c in counts.items():  # round-robin: a class short of the others has run out of samples
        assert max(counts.values()) - c <= 1 or c == labels.count(k)
