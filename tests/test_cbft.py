"""cbft_core.kernels.cbft: connectivity-based fine-tuning and its ablations, against the authors' procedure."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from cbft_core.kernels import cbft
from cbft_core.kernels.optim import SGDConfig
from cbft_core.errors import ConfigError, NonFiniteLossError
from finetune_toys import FAST, K, SGD, base_model, sets, snapshot, state_equal  # noqa: F401 (fixtures)


@pytest.mark.parametrize("method", cbft.METHODS)
def test_each_method_returns_new_model_and_leaves_input_untouched(method, sets, base_model):
    clean, cue = sets
    before = snapshot(base_model)
    out, history = cbft.run(method, base_model, clean, cue, SGD, **FAST)
    assert out is not base_model and not out.training and history["method"] == method
    assert state_equal(snapshot(base_model), before)
    assert not state_equal(snapshot(out), before)


def test_ablation_behaviour(sets, base_model):
    clean, cue = sets
    _, h = cbft.run("cbft-no-barrier", base_model, clean, cue, SGD, **FAST)
    assert all(math.isnan(v) for v in h["barrier_loss"])
    _, h = cbft.run("cbft-no-invariance", base_model, clean, cue, SGD, **FAST)
    assert all(math.isnan(v) for v in h["invariance"]) and not any(math.isnan(v) for v in h["barrier_loss"])
    _, h = cbft.run("cbft", base_model, clean, cue, SGD, warmup_epochs=1, **FAST)
    assert math.isnan(h["invariance"][0]) and not math.isnan(h["invariance"][1])  # CE alone during warm-up


def test_invariance_loss_hand_computation_divides_by_the_number_of_classes():
    g = torch.Generator().manual_seed(1)
    z_nc = torch.randn(9, 4, generator=g, requires_grad=True)
    z_c = torch.randn(9, 4, generator=g, requires_grad=True)
    y_nc, y_c = torch.randint(0, 3, (9,), generator=g), torch.randint(0, 3, (9,), generator=g)
    y_c[y_c == 2] = 1  # class 2 absent from the cue batch: skipped, still counted in K
    cbft.invariance_loss(z_nc, y_nc, z_c, y_c, 5).backward()
    g_fast = z_nc.grad.clone(), z_c.grad.clone()
    z_nc.grad = z_c.grad = None
    terms = [  # the authors' loop: sum over classes present in both batches, divided by n_classes
        (F.normalize(z_nc[y_nc == c].mean(0, keepdim=True), dim=1)
         - F.normalize(z_c[y_c == c].mean(0, keepdim=True), dim=1)).norm().pow(2)
        for c in range(5) if (y_nc == c).any() and (y_c == c).any()
    ]
    (sum(terms) / 5).backward()
    torch.testing.assert_close(g_fast[0], z_nc.grad)
    torch.testing.assert_close(g_fast[1], z_c.grad)


def _authors_cbft(model, clean, cue, hist, lr, margin, lam, warmup_epochs, epochs, steps):
    """The authors' mech_fine_tuning.CBFT, restated with explicit modules (no functional_call).

    θ_int = t·θc + (1 − t)·θ, θ's gradient (1 − t)·∂L/∂θ_int; their LR_Scheduler stepped after
    the clean update only from epoch warmup_epochs + 1 on. Plain SGD (no momentum, no weight
    decay), so each update is θ −= lr·grad.
    """
    import numpy as np

    decay = epochs * steps
    table = lr * 0.5 * (1 + np.cos(np.pi * np.arange(decay) / decay))
    anchor, theta, interp = copy.deepcopy(model), copy.deepcopy(model).train(), copy.deepcopy(model).train()
    rate, k = lr, 0
    for b, (t, i_nc, i_c) in enumerate(zip(hist["step_t"], hist["clean_index"], hist["cue_index"])):
        epoch = b // steps
        x_nc, y_nc = clean.images[i_nc].float() / 127.5 - 1, clean.labels[i_nc]
        x_c, y_c = cue.images[i_c].float() / 127.5 - 1, cue.labels[i_c]
        with torch.no_grad():
            for p_i, p_a, p_t in zip(interp.parameters(), anchor.parameters(), theta.parameters()):
                p_i.copy_(t * p_a + (1 - t) * p_t)
        interp.zero_grad()
        (margin - F.cross_entropy(interp(x_c), y_c)).abs().backward()
        with torch.no_grad():
            for p_i, p_t in zip(interp.parameters(), theta.parameters()):
                p_t -= rate * (1 - t) * p_i.grad
        theta.zero_grad()
        if epoch < warmup_epochs:
            obj = F.cross_entropy(theta(x_nc), y_nc)
        else:
            z_nc, z_c = theta.features(x_nc), theta.features(x_c)
            inv = sum((F.normalize(z_nc[y_nc == c].mean(0, keepdim=True), dim=1)
                       - F.normalize(z_c[y_c == c].mean(0, keepdim=True), dim=1)).norm().pow(2)
                      for c in range(K) if (y_nc == c).any() and (y_c == c).any())
            obj = F.cross_entropy(theta.head(z_nc), y_nc) + lam * inv / K
        obj.backward()
        with torch.no_grad():
            for p in theta.parameters():
                p -= rate * p.grad
        if epoch > warmup_epochs:
            rate, k = float(table[k]), k + 1
    return theta


def test_cbft_matches_the_authors_update_step_by_step(sets, base_model):
    clean, cue = sets  # 48 clean and 40 cue images, batch 16: 3 steps per epoch (the shorter set decides)
    sgd = SGDConfig(lr=0.05, momentum=0.0, weight_decay=0.0)
    tuned, hist = cbft.run("cbft", base_model, clean, cue, sgd, epochs=4, batch_size=16, seed=5, progress=False,
                           margin=1.0, lam=1.0, warmup_epochs=1, record_steps=True)
    assert len(hist["step_t"]) == 12 and len(set(hist["step_t"])) > 1
    ref = _authors_cbft(base_model, clean, cue, hist, 0.05, 1.0, 1.0, 1, epochs=4, steps=3)
    ref_state, got = ref.state_dict(), tuned.state_dict()
    for key in got:
        torch.testing.assert_close(got[key], ref_state[key], rtol=1e-4, atol=1e-5, msg=key)
    # the update depends on which end θ sits at: the mirrored factor gives other weights
    mirrored = dict(hist, step_t=[1 - t for t in hist["step_t"]])
    other = _authors_cbft(base_model, clean, cue, mirrored, 0.05, 1.0, 1.0, 1, epochs=4, steps=3)
    assert not torch.allclose(other.head.weight, tuned.head.weight, atol=1e-5)


def test_barrier_gradient_is_one_minus_t_times_gradient_at_the_point(sets, base_model):
    _, cue = sets
    x, y = cue.images[:16].float() / 127.5 - 1, cue.labels[:16]
    theta_model = copy.deepcopy(base_model)
    with torch.no_grad():  # move θ away from θc so the point depends on t
        for p in theta_model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    params = dict(theta_model.named_parameters())
    anchor = {k: v.detach().clone() for k, v in base_model.named_parameters()}
    template = copy.deepcopy(base_model).train().requires_grad_(False)
    for t in (0.25, 0.6, 0.75):
        loss, ce = cbft.barrier_loss(template, anchor, params, t, x, y, margin=1.0)
        grads = torch.autograd.grad(loss, list(params.values()))
        point = copy.deepcopy(base_model).train()  # θ(t) = t·θc + (1 − t)·θ as a real module, by hand
        with torch.no_grad():
            for p_pt, p_c, p_th in zip(point.parameters(), base_model.parameters(), theta_model.parameters()):
                p_pt.copy_(t * p_c + (1 - t) * p_th)
        ref_ce = F.cross_entropy(point(x), y)
        (1.0 - ref_ce).abs().backward()
        assert float(ce.detach()) == pytest.approx(float(ref_ce.detach()), rel=1e-5)
        for g, p_pt in zip(grads, point.parameters()):
            torch.testing.assert_close(g, (1 - t) * p_pt.grad, rtol=1e-4, atol=1e-6)


def test_t_draws_follow_the_authors_clipped_normal():
    g = torch.Generator().manual_seed(0)
    ts = torch.tensor([cbft.sample_t(g) for _ in range(4000)])
    assert ts.min() >= 0.25 and ts.max() <= 0.75
    at_ends = ((ts == 0.25) | (ts == 0.75)).double().mean().item()
    p_clip = 2 * (1 - 0.5 * (1 + math.erf(0.5 / math.sqrt(2))))  # P(|z| > 0.5)
    assert at_ends == pytest.approx(p_clip, abs=0.03)
    assert ts.mean().item() == pytest.approx(0.5, abs=0.01)


def test_each_epoch_draws_fresh_orders_and_stops_with_the_shorter_set(sets, base_model):
    clean, cue = sets  # 48 clean, 40 cue, batch 16: 3 steps per epoch, cue batches 16, 16, 8
    _, h = cbft.run("cbft", base_model, clean, cue, SGD, epochs=3, batch_size=16, progress=False, record_steps=True)
    cl, cu = h["clean_index"], h["cue_index"]
    assert len(cl) == len(cu) == 9
    for e in range(3):
        assert torch.equal(torch.cat(cl[3 * e:3 * e + 3]).sort().values, torch.arange(48))  # every clean image once
        assert torch.equal(torch.cat(cu[3 * e:3 * e + 3]).sort().values, torch.arange(40))  # every cue image once
    assert not torch.equal(torch.cat(cu[:3]), torch.cat(cu[3:6]))  # reshuffled


@pytest.mark.parametrize("method", ["cbft", "cbft-no-barrier"])
def test_deterministic_given_seed(method, sets, base_model):
    clean, cue = sets
    a = cbft.run(method, base_model, clean, cue, SGD, seed=7, **FAST)[0].state_dict()
    b = cbft.run(method, base_model, clean, cue, SGD, seed=7, **FAST)[0].state_dict()
    c = cbft.run(method, base_model, clean, cue, SGD, seed=8, **FAST)[0].state_dict()
    assert state_equal(a, b)
    assert not state_equal(a, c)


def test_nan_weights_fail_at_first_barrier_step(sets, base_model):
    clean, cue = sets
    model = copy.deepcopy(base_model)
    with torch.no_grad():
        model.head.bias[1] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"cbft: non-finite barrier loss .* epoch 1, step 1"):
        cbft.run("cbft", model, clean, cue, SGD, **FAST)


def test_learning_rate_is_held_for_warm_up_plus_one_epoch_then_the_authors_cosine(sets, base_model):
    clean, cue = sets
    _, h = cbft.run("cbft", base_model, clean, cue, SGDConfig(lr=0.02), epochs=5, batch_size=16, progress=False,
                    warmup_epochs=1)
    steps, total = 3, 15  # the rate of each epoch's last batch: held through epochs 0 and 1
    expected = [0.02, 0.02] + [0.01 * (1 + math.cos(math.pi * (3 * e + 2 - 6 - 1) / total)) for e in (2, 3, 4)]
    assert h["lr"] == pytest.approx(expected, rel=1e-12)
    assert h["lr"][-1] > 0.1 * 0.02  # never annealed to 0


def test_bad_arguments(sets, base_model):
    clean, cue = sets
    with pytest.raises(ConfigError, match=r"^method"):
        cbft.run("ft", base_model, clean, cue, SGD, **FAST)
    with pytest.raises(ConfigError, match="^cue"):
        cbft.run("cbft", base_model, clean, None, SGD, **FAST)
    with pytest.raises(ConfigError, match="^cue"):
        cbft.run("cbft", base_model, clean, clean.subset(slice(0, 0)), SGD, **FAST)
    with pytest.raises(ConfigError, match="^margin"):
        cbft.run("cbft", base_model, clean, cue, SGD, margin=-1.0, **FAST)
    with pytest.raises(ConfigError, match="^epochs"):
        cbft.run("cbft", base_model, clean, cue, SGD, epochs=0, progress=False)
    with pytest.raises(ConfigError, match="^clean"):
        cbft.run("cbft", base_model, clean.subset(slice(0, 0)), cue, SGD, **FAST)


def test_cbft_restores_the_input_modes_when_training_fails(sets, base_model):
    clean, cue = sets
    model = copy.deepcopy(base_model).eval()
    model.blocks[0].train()  # a mixed state must come back as it was
    modes = [m.training for m in model.modules()]
    with torch.no_grad():
        model.head.bias[1] = float("nan")
    with pytest.raises(NonFiniteLossError):
        cbft.run("cbft", model, clean, cue, SGD, **FAST)
    assert [m.training for m in model.modules()] == modes
