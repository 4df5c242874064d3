"""Tests of cbft_core.kernels.train: fit, evaluate, predict, features, schedules, errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from cbft_core.kernels import models, train
from cbft_core.kernels.optim import SGDConfig
from cbft_core.kernels.data.imageset import ImageSet
from cbft_core.errors import ConfigError, NonFiniteLossError


def toy_set(n: int = 192, num_classes: int = 4, seed: int = 0, size: int = 16) -> ImageSet:
    """Noise images whose class is written as a bright row: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 120, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    rows = labels * (size // num_classes)
    images[torch.arange(n), :, rows, :] = 255
    return ImageSet(images, labels, tuple(f"c{i}" for i in range(num_classes)))


def toy_model(num_classes: int = 4, seed: int = 0) -> torch.nn.Module:
    return models.build("cnn", num_classes, width=0.5, in_shape=(3, 16, 16), seed=seed)


def fit(model, data, *, lr, momentum=0.9, weight_decay=5e-4, schedule="cosine", step_every=None, gamma=0.1,
        **kwargs):
    """train.fit with the SGD settings given as keywords (the tests' shorthand)."""
    sgd = SGDConfig(lr=lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                    step_every=step_every, gamma=gamma)
    return train.fit(model, data, sgd, **kwargs)


def authors_cosine(base_lr: float, epochs: int, steps_per_epoch: int, updates: int, hold: int = 0) -> list[float]:
    """The rate of each update under the authors' utils.LR_Scheduler (numpy cosine table, stepped after
    each update from the first update after ``hold`` updates on), restated from their code."""
    import numpy as np

    decay_iter = steps_per_epoch * epochs
    table = 0.5 * base_lr * (1 + np.cos(np.pi * np.arange(decay_iter) / decay_iter))
    rates, current, index = [], base_lr, 0
    for u in range(updates):
        rates.append(current)
        if u >= hold:
            current = float(table[index])
            index += 1
    return rates


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_learns_and_restores_mode():
    data = toy_set()
    model = toy_model()
    before = train.evaluate(model, data)
    model.eval()
    out, hist = fit(model, data, epochs=4, lr=0.05, batch_size=32, progress=False,
                          return_history=True)
    assert out is model and not model.training
    after = train.evaluate(model, data)
    assert after["loss"] < before["loss"] - 0.3
    assert after["acc"] > 0.6
    assert len(hist["loss"]) == 4 and hist["loss"][-1] < hist["loss"][0]


def test_fit_is_deterministic_and_seed_matters():
    data = toy_set()
    runs = []
    for seed in (3, 3, 4):
        m = toy_model()
        fit(m, data, epochs=1, lr=0.05, batch_size=32, seed=seed, progress=False)
        runs.append(m.state_dict())
    assert state_equal(runs[0], runs[1])
    assert not state_equal(runs[0], runs[2])


def _record_lrs(fn):
    lrs = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"])
    )
    try:
        fn()
    finally:
        handle.remove()
    return lrs


def test_cosine_schedule_is_the_authors_scheduler():
    data = toy_set(n=100)
    lrs = _record_lrs(lambda: fit(toy_model(), data, epochs=3, lr=0.2, batch_size=32,
                                        progress=False))
    total = 3 * math.ceil(100 / 32)
    assert len(lrs) == total
    assert lrs == pytest.approx(authors_cosine(0.2, 3, math.ceil(100 / 32), total), rel=1e-12)


def test_step_and_constant_schedules():
    data = toy_set(n=64)
    lrs = _record_lrs(lambda: fit(toy_model(), data, epochs=5, lr=0.1, batch_size=32,
                                        schedule="step", step_every=2, gamma=0.5, progress=False))
    assert lrs == pytest.approx([0.1] * 4 + [0.05] * 4 + [0.025] * 2)
    lrs = _record_lrs(lambda: fit(toy_model(), data, epochs=2, lr=0.1, batch_size=32,
                                        schedule="constant", progress=False))
    assert lrs == [0.1] * 4


def test_max_batches_caps_steps():
    data = toy_set(n=128)
    lrs = _record_lrs(lambda: fit(toy_model(), data, epochs=2, lr=0.1, batch_size=16,
                                        max_batches=3, progress=False))
    assert len(lrs) == 6


def test_nan_loss_names_desc_epoch_step():
    model = toy_model()
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"my-run.*epoch 1, step 1"):
        fit(model, toy_set(n=64), epochs=2, lr=0.1, batch_size=32, desc="my-run", progress=False)


def test_huge_lr_raises_nonfinite():
    with pytest.raises(NonFiniteLossError, match=r"boom: non-finite loss .* at epoch \d+, step \d+"):
        fit(toy_model(), toy_set(), epochs=3, lr=1e12, batch_size=32, desc="boom",
                  progress=False)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(epochs=0, lr=0.1), "epochs"),
        (dict(epochs=1.5, lr=0.1), "epochs"),
        (dict(epochs=1, lr=0.0), "lr"),
        (dict(epochs=1, lr=-1.0), "lr"),
        (dict(epochs=1, lr=float("nan")), "lr"),
        (dict(epochs=1, lr=0.1, batch_size=0), "batch_size"),
        (dict(epochs=1, lr=0.1, schedule="linear"), "schedule"),
        (dict(epochs=1, lr=0.1, schedule="step"), "step_every"),
        (dict(epochs=1, lr=0.1, weight_decay=-1.0), "weight_decay"),
    ],
)
def test_fit_bad_arguments(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        fit(toy_model(), toy_set(n=32), progress=False, **kwargs)


def test_fit_rejects_empty_and_mismatched_data():
    data = toy_set(n=32)
    with pytest.raises(ConfigError, match="data is empty"):
        fit(toy_model(), data.subset(slice(0, 0)), epochs=1, lr=0.1, progress=False)
    with pytest.raises(ConfigError, match="classes"):
        fit(toy_model(num_classes=10), data, epochs=1, lr=0.1, progress=False)
    with pytest.raises(ConfigError, match="ImageSet"):
        fit(toy_model(), data.images, epochs=1, lr=0.1, progress=False)


def test_evaluate_matches_independent_computation():
    data = toy_set(n=150)
    model = toy_model()
    fit(model, data, epochs=1, lr=0.05, batch_size=32, progress=False)
    model.train()
    bn_before = model.blocks[0].bn.running_mean.clone()
    res = train.evaluate(model, data, batch_size=64)
    assert model.training  # mode restored
    assert torch.equal(model.blocks[0].bn.running_mean, bn_before)  # eval mode: stats untouched
    model.eval()
    with torch.no_grad():
        x = data.images.double() / 127.5 - 1.0
        logits = model.double()(x)
    loss = F.cross_entropy(logits, data.labels).item()
    acc = (logits.argmax(1) == data.labels).double().mean().item()
    assert res["loss"] == pytest.approx(loss, rel=1e-5)
    assert res["acc"] == pytest.approx(acc, abs=1 / 150 + 1e-12)


def test_predict_and_features_shapes_and_batch_invariance():
    data = toy_set(n=70)
    model = toy_model()
    logits = train.predict(model, data, batch_size=16)
    feats = train.features(model, data, batch_size=9)
    assert logits.shape == (70, 4) and logits.dtype == torch.float32
    assert feats.shape == (70, model.feature_dim)
    torch.testing.assert_close(train.predict(model, data, batch_size=70), logits)
    torch.testing.assert_close(model.head(feats), logits, rtol=1e-5, atol=1e-5)


def test_evaluate_rejects_bad_batch_size():
    with pytest.raises(ConfigError, match="batch_size"):
        train.evaluate(toy_model(), toy_set(n=8), batch_size=0)


def _scheduled_lrs(config, epochs: int, steps_per_epoch: int) -> list[float]:
    return [config.lr_at(b, steps_per_epoch, epochs) for b in range(epochs * steps_per_epoch)]


@pytest.mark.parametrize("epochs, steps_per_epoch, hold", [(1, 1, 0), (7, 13, 0), (100, 196, 0), (20, 10, 2)])
def test_cosine_schedule_over_long_runs_matches_the_authors(epochs, steps_per_epoch, hold):
    lrs = _scheduled_lrs(SGDConfig(lr=0.1, hold_epochs=hold), epochs, steps_per_epoch)
    expected = authors_cosine(0.1, epochs, steps_per_epoch, epochs * steps_per_epoch, hold * steps_per_epoch)
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-15)
    if hold:  # CBFT's held schedule never reaches 0: its last rate is cos(pi (E - hold) / E) along the way
        assert lrs[-1] > 0.02 * 0.1


@pytest.mark.parametrize("step_every, gamma", [(40, 0.1), (3, 0.5)])
def test_step_schedule_over_long_runs_matches_closed_form(step_every, gamma):
    epochs, steps_per_epoch = 100, 7
    lrs = _scheduled_lrs(SGDConfig(lr=0.1, schedule="step", step_every=step_every, gamma=gamma),
                         epochs, steps_per_epoch)
    expected = [0.1 * gamma ** ((k // steps_per_epoch) // step_every) for k in range(epochs * steps_per_epoch)]
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_sgd_config_validates_and_builds_sgd():
    opt = SGDConfig(lr=0.3, momentum=0.5, weight_decay=1e-3).optimizer([torch.zeros(1, requires_grad=True)])
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.3, 0.5, 1e-3)
    for kwargs, name in [(dict(lr=0), "lr"), (dict(lr=0.1, momentum=-0.1), "momentum"),
                         (dict(lr=0.1, schedule="step"), "step_every"),
                         (dict(lr=0.1, schedule="step", step_every=0), "step_every"),
                         (dict(lr=0.1, hold_epochs=-1), "hold_epochs"),
                         (dict(lr=0.1, schedule="exp"), "schedule"), (dict(lr=True), "lr")]:
        with pytest.raises(ConfigError, match=name):
            SGDConfig(**kwargs)


def test_updater_scales_the_rate_and_checks_every_loss():
    w = torch.ones(2, requires_grad=True)
    seen = []

    def step(batch, updater):
        loss = (w * batch).sum()
        updater.update(loss, scale=0.5)
        seen.append(updater.opt.param_groups[0]["lr"])
        return {"loss": loss}

    sgd = SGDConfig(lr=0.1, momentum=0.0, weight_decay=0.0, schedule="constant")
    history = train.train_loop([w], sgd, epochs=2, steps_per_epoch=2, batches_of=lambda e: [torch.ones(2)] * 3,
                               step=step, progress=False)
    assert seen == [0.05] * 4 and len(history["loss"]) == 2  # capped at 2 steps per epoch
    torch.testing.assert_close(w.detach(), torch.full((2,), 1 - 4 * 0.05))
    with pytest.raises(NonFiniteLossError, match=r"probe: non-finite loss \(nan\) at epoch 1, step 2"):
        train.train_loop([w], sgd, epochs=1, steps_per_epoch=3, desc="probe", progress=False,
                         batches_of=lambda e: [torch.ones(2), torch.full((2,), float("nan"))],
                         step=step)


def test_fit_restores_mode_when_training_fails():
    model = toy_model().eval()
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    with pytest.raises(NonFiniteLossError):
        fit(model, toy_set(n=64), epochs=1, lr=0.1, batch_size=32, progress=False)
    assert not any(m.training for m in model.modules())
