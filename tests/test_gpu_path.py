"""The GPU path on the CPU: device-resident batching, channels-last, bf16 autocast, deferred NaN checks.

The same code runs on a GPU; here it is checked against independent
computations: the batches against indexing and normalising on the host, the
trained weights against a hand-written SGD loop over those host batches.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cbft_core.errors import NonFiniteLossError
from cbft_core.kernels import models, train
from cbft_core.kernels.data.imageset import ImageSet, batches
from cbft_core.kernels.optim import SGDConfig

CONSTANT = SGDConfig(lr=0.05, schedule="constant")


def toy_set(n: int = 160, num_classes: int = 4, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    images = torch.randint(0, 200, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    images[torch.arange(n), labels % 3, :4, :4] = 255  # a learnable signal
    return ImageSet(images, labels, tuple("abcd"[:num_classes]))


def toy_model(seed: int = 0) -> torch.nn.Module:
    return models.build("cnn", 4, width=0.25, in_shape=(3, 16, 16), seed=seed)


def host_batches(data: ImageSet, batch_size: int, seed: int):
    """The previous path, written out: permute on the host, normalise on the host, per batch."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(data), batch_size):
        idx = order[start:start + batch_size]
        yield data.images[idx].float() / 127.5 - 1.0, data.labels[idx]


def test_device_batches_are_the_host_batches():
    data = toy_set()
    ours = list(batches(data, 48, shuffle=True, seed=5, device="cpu"))
    ref = list(host_batches(data, 48, 5))
    assert len(ours) == len(ref) == 4
    for (x, y), (rx, ry) in zip(ours, ref):
        assert torch.equal(x, rx) and torch.equal(y, ry) and x.dtype == torch.float32


def test_the_set_moves_once_and_batches_stay_on_the_device():
    """On the meta device (no storage) every batch is cut and normalised where the set lives."""
    data = toy_set()
    assert data.to("cpu") is data
    on_meta = data.to("meta")
    assert on_meta.images.dtype == torch.uint8 and on_meta.device.type == "meta"
    assert on_meta.to("meta") is on_meta
    for x, y in batches(data, 64, shuffle=True, seed=1, device="meta", channels_last=True):
        assert x.device.type == "meta" and y.device.type == "meta"
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 16, 16)
        assert x.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_batches_hold_the_same_values():
    data = toy_set()
    for (a, _), (b, _) in zip(batches(data, 64, seed=2, shuffle=True),
                              batches(data, 64, seed=2, shuffle=True, channels_last=True)):
        assert torch.equal(a, b) and b.is_contiguous(memory_format=torch.channels_last)


def test_fit_trains_exactly_as_a_plain_sgd_loop_over_host_batches():
    data = toy_set()
    fitted = train.fit(toy_model(), data, SGDConfig(lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="constant"),
                       epochs=2, batch_size=32, seed=7, progress=False)
    model = toy_model()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(7)
    for _ in range(2):
        order = torch.randperm(len(data), generator=gen)
        for start in range(0, len(data), 32):
            idx = order[start:start + 32]
            x, y = data.images[idx].float() / 127.5 - 1.0, data.labels[idx]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    ours, ref = fitted.state_dict(), model.state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_channels_last_fit_is_the_same_training_up_to_summation_order():
    data = toy_set()
    settings = dict(sgd=CONSTANT, epochs=1, batch_size=32, seed=3, progress=False)
    plain = train.fit(toy_model(), data, **settings).state_dict()
    nhwc_model = train.fit(toy_model(), data, channels_last=True, **settings)
    conv = next(m for m in nhwc_model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    nhwc = nhwc_model.state_dict()
    for k in plain:
        assert torch.allclose(plain[k].float(), nhwc[k].float(), atol=1e-4, rtol=1e-4), k


def test_bf16_autocast_runs_and_keeps_float32_weights():
    data = toy_set()
    settings = dict(sgd=CONSTANT, epochs=3, batch_size=32, seed=3, progress=False,
                    return_history=True)
    model, hist = train.fit(toy_model(), data, amp=True, **settings)
    _, plain = train.fit(toy_model(), data, **settings)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.isfinite(torch.tensor(hist["loss"])))
    assert hist["loss"] != plain["loss"]                        # bf16 changes the numbers...
    assert abs(hist["loss"][-1] - plain["loss"][-1]) < 0.1       # ...not the training
    assert hist["loss"][-1] < hist["loss"][0]


def test_deferred_nan_check_names_the_same_epoch_and_step(monkeypatch):
    """The GPU's deferred check (recorded on the device, raised at the epoch's end) names the CPU's step."""
    errors = []
    init = train.Updater.__init__
    for check_now in (True, False):
        def forced(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.check_now = check_now
        monkeypatch.setattr(train.Updater, "__init__", forced)
        with pytest.raises(NonFiniteLossError) as err:
            train.fit(toy_model(), toy_set(), SGDConfig(lr=1e12, schedule="constant"), epochs=3, batch_size=32,
                      desc="boom", progress=False)
        errors.append(str(err.value))
    step = lambda msg: msg[msg.index("at epoch"):]
    assert step(errors[0]) == step(errors[1]) and "boom: non-finite loss" in errors[1]
