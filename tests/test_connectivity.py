"""cbft_core.kernels.connectivity: barrier heights and quadratic midpoint training."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cbft_core.kernels.connectivity import barrier, train_midpoint
from cbft_core.kernels.optim import SGDConfig
from torch.optim.optimizer import register_optimizer_step_pre_hook
from cbft_core.kernels.data.imageset import ImageSet, batches
from cbft_core.errors import ConfigError, NonFiniteLossError
from cbft_core.kernels.models import build
from cbft_core.kernels.paths import evaluate_path


@pytest.mark.parametrize(
    "values, ts, entezari, frankle",
    [
        # symmetric bump: line at t=.5 is 1.5, endpoint mean is 1.5
        ([1.0, 3.0, 2.0], [0.0, 0.5, 1.0], (1.5, 0.5), (1.5, 0.5)),
        # asymmetric endpoints, convex curve: no rise above the line; Frankle peaks at the high end
        ([0.0, 1.0, 2.0, 4.0], [0.0, 1 / 3, 2 / 3, 1.0], (0.0, 0.0), (2.0, 1.0)),
        # non-uniform ts: line 1, 1.5, 2, 3 → gaps 0, 1, 1, 0 (tie → smallest t)
        ([1.0, 2.5, 3.0, 3.0], [0.0, 0.25, 0.5, 1.0], (1.0, 0.25), (1.0, 0.5)),
        # error curve (1 − acc) with a dip then a peak near B
        ([0.1, 0.05, 0.6, 0.3], [0.0, 0.2, 0.8, 1.0], (0.6 - (0.2 * 0.1 + 0.8 * 0.3), 0.8), (0.4, 0.8)),
    ],
)
def test_barrier_forms_against_hand_computation(values, ts, entezari, frankle):
    h, t = barrier(values, ts, "entezari")
    assert (h, t) == (pytest.approx(entezari[0]), pytest.approx(entezari[1]))
    h, t = barrier(values, ts, form="frankle")
    assert (h, t) == (pytest.approx(frankle[0]), pytest.approx(frankle[1]))


def test_barrier_on_error_from_accuracy():
    acc = np.array([0.9, 0.5, 0.7])
    assert barrier(1 - acc, [0, 0.5, 1]) == (pytest.approx(0.5 - 0.2), 0.5)


curves = st.lists(st.floats(-10, 10), min_size=2, max_size=12)


@settings(max_examples=60, deadline=None)
@given(curves, st.floats(-100, 100), st.sampled_from(["entezari", "frankle"]))
def test_barrier_is_invariant_to_adding_a_constant(values, c, form):
    ts = np.linspace(0.0, 1.0, len(values))
    h, t = barrier(values, ts, form)
    h_shift, t_shift = barrier(np.asarray(values) + c, ts, form)
    assert h_shift == pytest.approx(h, abs=1e-9)
    # the peak found on the shifted curve is (up to rounding) a peak of the original one
    v, i = np.asarray(values), int(np.searchsorted(ts, t_shift))
    gap = v[i] - ((1 - ts[i]) * v[0] + ts[i] * v[-1]) if form == "entezari" else v[i] - (v[0] + v[-1]) / 2
    assert gap == pytest.approx(h, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.floats(-10, 10), st.floats(-10, 10), st.integers(2, 12))
def test_entezari_barrier_of_an_affine_curve_is_zero(v0, v1, n):
    ts = np.linspace(0.0, 1.0, n)
    assert barrier(v0 + (v1 - v0) * ts, ts)[0] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "values, ts, form, word",
    [
        ([1, 2], [0, 1, 1], "entezari", "same length"),
        ([1, 2, 3], [0.1, 0.5, 1], "entezari", "ts"),
        ([1, 2, 3], [0, 0.5, 0.9], "entezari", "ts"),
        ([1, 2, 3], [0, 0.7, 0.5], "entezari", "ts"),
        ([1, math.nan, 3], [0, 0.5, 1], "entezari", "NaN"),
        ([1], [0], "entezari", "endpoints"),
        ([1, 2, 3], [0, 0.5, 1], "garipov", "form"),
    ],
)
def test_barrier_rejects_bad_input(values, ts, form, word):
    with pytest.raises(ConfigError, match=word):
        barrier(values, ts, form)


def learnable_set(n, seed):
    """4 classes told apart by the mean colour of the image, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    colours = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])
    noise = torch.randint(-60, 61, (n, 3, 8, 8), generator=g)
    images = (colours[labels][:, :, None, None] + noise).clamp(0, 255).to(torch.uint8)
    return ImageSet(images, labels, ("r", "g", "b", "y"))


def quick_fit(model, data, steps, seed, lr=0.1):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        for x, y in batches(data, 32, shuffle=True, generator=gen, drop_last=True):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def fresh(seed: int = 7) -> dict:
    return build("cnn", 4, width=0.25, in_shape=(3, 8, 8), seed=seed).state_dict()


def test_midpoint_training_lowers_mean_path_loss_and_is_deterministic():
    data = learnable_set(128, 0)
    a = quick_fit(build("cnn", 4, width=0.25, in_shape=(3, 8, 8), seed=0), data, 6, seed=0)
    b = quick_fit(build("cnn", 4, width=0.25, in_shape=(3, 8, 8), seed=1), data, 6, seed=1)
    before_a = {k: v.clone() for k, v in a.state_dict().items()}
    ts = np.linspace(0, 1, 5)
    sets = {"train": data}
    linear_path = evaluate_path(a, b, sets, ts, data, progress=False)
    sgd = SGDConfig(lr=0.1, schedule="step", step_every=6)
    mid = train_midpoint(a, b, data, fresh(), sgd, epochs=8, batch_size=32, seed=3, progress=False)
    quad_path = evaluate_path(a, b, sets, ts, data, midpoint=mid, progress=False)
    assert quad_path.loss["train"].mean() < linear_path.loss["train"].mean()
    assert quad_path.loss["train"][2] < linear_path.loss["train"][2]
    # endpoints untouched, same seed → same midpoint, all keys returned
    assert all(torch.equal(before_a[k], v) for k, v in a.state_dict().items())
    again = train_midpoint(a, b, data, fresh(), sgd, epochs=8, batch_size=32, seed=3, progress=False)
    assert again.keys() == a.state_dict().keys()
    assert all(torch.equal(mid[k], again[k]) for k in mid)


def test_midpoint_step_scales_the_rate_not_the_gradient():
    """One update with momentum and weight decay off: θM − base·2t(1 − t)·∂L/∂θ(t), the gradient unscaled."""
    data = learnable_set(48, 2)
    a = build("cnn", 4, width=0.25, in_shape=(3, 8, 8), seed=0)
    b = build("cnn", 4, width=0.25, in_shape=(3, 8, 8), seed=1)
    start = fresh()
    rates = []
    hook = register_optimizer_step_pre_hook(lambda opt, args, kwargs: rates.append(opt.param_groups[0]["lr"]))
    try:
        mid = train_midpoint(a, b, data, start, SGDConfig(lr=0.4, momentum=0.0, weight_decay=0.0, schedule="constant"),
                             epochs=1, batch_size=48, seed=5, progress=False)
    finally:
        hook.remove()
    (rate,) = rates
    w = rate / 0.4  # = 2t(1 − t) ≤ 1/2; t is the smaller root
    assert 0 < w <= 0.5
    t = (1 - math.sqrt(1 - 2 * w)) / 2
    point = build("cnn", 4, width=0.25, in_shape=(3, 8, 8)).train()
    sa, sb = a.state_dict(), b.state_dict()
    with torch.no_grad():  # θ(t) by hand, for both roots (the draw may be t or 1 − t)
        candidates = []
        for tt in (t, 1 - t):
            state = {k: (1 - tt) ** 2 * sa[k] + 2 * tt * (1 - tt) * start[k] + tt ** 2 * sb[k]
                     if sa[k].is_floating_point() else sa[k] for k in sa}
            candidates.append(state)
    matches = []
    for state in candidates:
        point.load_state_dict(state)
        point.zero_grad()
        x = (data.images.float() / 127.5 - 1)
        F.cross_entropy(point(x), data.labels).backward()
        grads = dict(point.named_parameters())
        matches.append(all(torch.allclose(mid[k], start[k] - rate * grads[k].grad, atol=1e-6) for k in grads))
    assert any(matches)


def test_midpoint_training_raises_on_non_finite_loss():
    data = learnable_set(64, 0)
    a = build("cnn", 4, width=0.25, in_shape=(3, 8, 8), seed=0)
    b = build("cnn", 4, width=0.25, in_shape=(3, 8, 8), seed=1)
    with torch.no_grad():
        a.head.bias.fill_(math.inf)
        b.head.bias.fill_(-math.inf)
    with pytest.raises(NonFiniteLossError, match="midpoint: non-finite loss .* at epoch 1, step 1"):
        train_midpoint(a, b, data, fresh(), SGDConfig(lr=0.1), epochs=1, batch_size=32, progress=False)


def test_midpoint_training_rejects_bad_arguments():
    data = learnable_set(16, 0)
    a = build("cnn", 4, width=0.25, in_shape=(3, 8, 8), seed=0)
    with pytest.raises(ConfigError, match="epochs"):
        train_midpoint(a, a, data, fresh(), SGDConfig(lr=0.1), epochs=0, progress=False)
    with pytest.raises(ConfigError, match="lr"):
        SGDConfig(lr=-1.0)
    with pytest.raises(ConfigError, match="blocks.0.conv.weight"):
        train_midpoint(a, build("cnn", 4, width=0.5, in_shape=(3, 8, 8)), data, fresh(), SGDConfig(lr=0.1),
                       epochs=1, progress=False)
    with pytest.raises(ConfigError, match="start"):
        train_midpoint(a, a, data, {"w": torch.zeros(1)}, SGDConfig(lr=0.1), epochs=1, progress=False)
