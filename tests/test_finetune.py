"""Tests of cbft_core.kernels.finetune: every method, the CBFT steps against independent computations."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from cbft_core.kernels import finetune, models, train
from cbft_core.kernels.optim import SGDConfig
from cbft_core.kernels.data.imageset import ImageSet
from cbft_core.errors import ConfigError, NonFiniteLossError

K = 4


def toy_set(n: int, seed: int, cue: bool = False, size: int = 16) -> ImageSet:
    """Noise images with the class drawn as a bright row; with ``cue`` also a class-coded dot."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 120, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, K, (n,), generator=g)
    images[torch.arange(n), :, labels * (size // K), :] = 200
    if cue:
        images[torch.arange(n), 0, 1, 2 + 3 * labels] = 255
    return ImageSet(images, labels, tuple(f"c{i}" for i in range(K)), torch.full((n,), cue))


@pytest.fixture(scope="module")
def sets():
    return toy_set(48, 1), toy_set(40, 2, cue=True)


@pytest.fixture(scope="module")
def base_model(sets):
    model = models.build("cnn", K, width=0.5, in_shape=(3, 16, 16), seed=0)
    train.fit(model, toy_set(96, 3, cue=True), epochs=1, lr=0.05, batch_size=32, progress=False)
    return model.eval()


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def state_equal(a, b, skip=()):
    return all(torch.equal(a[k], b[k]) for k in a if not k.startswith(skip))


FAST = dict(epochs=2, lr=0.02, batch_size=16, progress=False)


@pytest.mark.parametrize("method", finetune.METHODS)
def test_each_method_returns_new_model_and_leaves_input_untouched(method, sets, base_model):
    clean, cue = sets
    before = snapshot(base_model)
    out = finetune.run(method, base_model, clean, cue, **FAST)
    assert out is not base_model and not out.training
    assert state_equal(snapshot(base_model), before)
    assert not state_equal(snapshot(out), before)  # it did fine-tune
    assert out.state_dict().keys() == before.keys()


def test_ablation_behaviour(sets, base_model):
    clean, cue = sets
    _, h = finetune.run("cbft-no-barrier", base_model, clean, cue, return_history=True, **FAST)
    assert h["t"] == [] and all(math.isnan(v) for v in h["barrier_loss"])
    _, h = finetune.run("cbft-no-invariance", base_model, clean, cue, return_history=True, **FAST)
    assert len(h["t"]) == 2 * 3 and all(math.isnan(v) for v in h["invariance"])
    _, h = finetune.run("cbft", base_model, clean, cue, return_history=True, **FAST)
    assert math.isnan(h["invariance"][0]) and h["invariance"][1] > 0  # warm-up epoch: CE only
    assert h["lr"][0] == 0.02  # constant during warm-up


def test_invariance_loss_hand_computation():
    g = torch.Generator().manual_seed(0)
    z_nc, z_c = torch.randn(7, 5, generator=g), torch.randn(6, 5, generator=g)
    y_nc = torch.tensor([0, 0, 1, 3, 3, 3, 4])  # class 2 absent; 4 only here
    y_c = torch.tensor([1, 0, 2, 3, 1, 0])  # class 4 absent; 2 only here
    total, k = 0.0, 0
    for c in range(6):
        a, b = z_nc[y_nc == c], z_c[y_c == c]
        if len(a) and len(b):
            ma, mb = a.mean(0), b.mean(0)
            total += float(((ma / ma.norm() - mb / mb.norm()) ** 2).sum())
            k += 1
    assert k == 3
    got = finetune.invariance_loss(z_nc, y_nc, z_c, y_c, 6)
    assert float(got) == pytest.approx(total / k, rel=1e-6)
    # classes present in one batch only do not contribute
    z_nc2, z_c2 = z_nc.clone(), z_c.clone()
    z_nc2[6] += 100.0
    z_c2[2] -= 50.0
    assert float(finetune.invariance_loss(z_nc2, y_nc, z_c2, y_c, 6)) == pytest.approx(float(got), rel=1e-6)
    # no shared class: zero, still differentiable
    z = torch.randn(2, 5, requires_grad=True)
    zero = finetune.invariance_loss(z, torch.tensor([0, 0]), torch.randn(2, 5), torch.tensor([1, 1]), 3)
    assert float(zero.detach()) == 0.0
    zero.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_invariance_loss_gradient_matches_autograd_of_loop():
    g = torch.Generator().manual_seed(1)
    z_nc = torch.randn(9, 4, generator=g, requires_grad=True)
    z_c = torch.randn(9, 4, generator=g, requires_grad=True)
    y_nc, y_c = torch.randint(0, 3, (9,), generator=g), torch.randint(0, 3, (9,), generator=g)
    finetune.invariance_loss(z_nc, y_nc, z_c, y_c, 3).backward()
    g_fast = z_nc.grad.clone(), z_c.grad.clone()
    z_nc.grad = z_c.grad = None
    terms = [
        (F.normalize(z_nc[y_nc == c].mean(0), dim=0) - F.normalize(z_c[y_c == c].mean(0), dim=0)).pow(2).sum()
        for c in range(3) if (y_nc == c).any() and (y_c == c).any()
    ]
    (sum(terms) / len(terms)).backward()
    torch.testing.assert_close(g_fast[0], z_nc.grad)
    torch.testing.assert_close(g_fast[1], z_c.grad)


def _reference_cbft(model, clean, cue, hist, lr, margin, lam, warm_steps, total_cosine):
    """The reference code's two steps, written with explicit modules (no functional_call).

    The reference interpolates θ_ref(s) = s·θc + (1 − s)·θ and hands θ the
    interpolated model's gradient times (1 − s); our t is 1 − s. Plain SGD
    (no momentum, no weight decay) so each update is θ −= lr·grad.
    """
    anchor = copy.deepcopy(model)
    theta = copy.deepcopy(model).train()
    interp = copy.deepcopy(model).train()
    k_cos = 0
    for step, (t, i_nc, i_c) in enumerate(zip(hist["t"], hist["clean_index"], hist["cue_index"])):
        lr_now = lr if step < warm_steps else lr * 0.5 * (1 + math.cos(math.pi * k_cos / total_cosine))
        x_nc, y_nc = clean.images[i_nc].float() / 127.5 - 1, clean.labels[i_nc]
        x_c, y_c = cue.images[i_c].float() / 127.5 - 1, cue.labels[i_c]
        s = 1.0 - t
        with torch.no_grad():
            for p_i, p_a, p_t in zip(interp.parameters(), anchor.parameters(), theta.parameters()):
                p_i.copy_(s * p_a + (1 - s) * p_t)
        interp.zero_grad()
        loss = (margin - F.cross_entropy(interp(x_c), y_c)).abs()
        loss.backward()
        with torch.no_grad():
            for p_i, p_t in zip(interp.parameters(), theta.parameters()):
                p_t -= lr_now * (1 - s) * p_i.grad
        theta.zero_grad()
        z_nc = theta.features(x_nc)
        obj = F.cross_entropy(theta.head(z_nc), y_nc)
        if step >= warm_steps:
            z_c = theta.features(x_c)
            terms = [
                (F.normalize(z_nc[y_nc == c].mean(0), dim=0) - F.normalize(z_c[y_c == c].mean(0), dim=0)).pow(2).sum()
                for c in range(K) if (y_nc == c).any() and (y_c == c).any()
            ]
            obj = obj + lam * sum(terms) / len(terms)
            k_cos += 1
        obj.backward()
        with torch.no_grad():
            for p in theta.parameters():
                p -= lr_now * p.grad
    return theta


def test_cbft_matches_reference_two_step_update(sets, base_model):
    """End to end: run's CBFT equals the reference's explicitly (1 − s)-scaled update, step by step."""
    clean, cue = sets
    kwargs = dict(epochs=2, lr=0.05, batch_size=16, momentum=0.0, weight_decay=0.0, seed=5, progress=False,
                  margin=1.0, lam=1.0, warmup_epochs=1, record_indices=True, return_history=True)
    tuned, hist = finetune.run("cbft", base_model, clean, cue, **kwargs)
    assert len(hist["t"]) == 6 and len(set(hist["t"])) > 1
    ref = _reference_cbft(base_model, clean, cue, hist, 0.05, 1.0, 1.0, warm_steps=3, total_cosine=3)
    ref_state, got = ref.state_dict(), tuned.state_dict()
    for key in got:
        torch.testing.assert_close(got[key], ref_state[key], rtol=1e-4, atol=1e-5, msg=key)
    # and the update really depends on which end θ sits at: the mirrored factor gives other weights
    mirrored = dict(hist, t=[1 - t for t in hist["t"]])
    other = _reference_cbft(base_model, clean, cue, mirrored, 0.05, 1.0, 1.0, warm_steps=3, total_cosine=3)
    assert not torch.allclose(other.head.weight, tuned.head.weight, atol=1e-5)


def test_barrier_gradient_is_t_times_gradient_at_the_point(sets, base_model):
    """Autograd through the interpolation = the reference's explicit mapping t·∂L/∂θ(t)|θ(t)."""
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
        loss, ce = finetune.barrier_loss(template, anchor, params, t, x, y, margin=1.0)
        grads = torch.autograd.grad(loss, list(params.values()))
        point = copy.deepcopy(base_model).train()  # θ(t) as a real module, built by hand
        with torch.no_grad():
            for p_pt, p_c, p_th in zip(point.parameters(), base_model.parameters(), theta_model.parameters()):
                p_pt.copy_((1 - t) * p_c + t * p_th)
        ref_ce = F.cross_entropy(point(x), y)
        (1.0 - ref_ce).abs().backward()
        assert float(ce.detach()) == pytest.approx(float(ref_ce.detach()), rel=1e-5)
        for g, p_pt in zip(grads, point.parameters()):
            torch.testing.assert_close(g, t * p_pt.grad, rtol=1e-4, atol=1e-6)


def test_t_draws_lie_in_range_and_match_reference_distribution(sets, base_model):
    g = torch.Generator().manual_seed(0)
    ts = torch.tensor([finetune.sample_t(g) for _ in range(4000)])
    assert ts.min() >= 0.25 and ts.max() <= 0.75
    at_ends = ((ts == 0.25) | (ts == 0.75)).double().mean().item()
    p_clip = 2 * (1 - 0.5 * (1 + math.erf(0.5 / math.sqrt(2))))  # P(|z| > 0.5)
    assert at_ends == pytest.approx(p_clip, abs=0.03)
    assert ts.mean().item() == pytest.approx(0.5, abs=0.01)
    u = torch.tensor([finetune.sample_t(g, (0.1, 0.3), "uniform") for _ in range(2000)])
    assert u.min() >= 0.1 and u.max() <= 0.3 and u.std().item() == pytest.approx(0.2 / math.sqrt(12), rel=0.1)
    clean, cue = sets
    _, h = finetune.run("cbft", base_model, clean, cue, return_history=True, **FAST)
    assert all(0.25 <= t <= 0.75 for t in h["t"])


def test_epoch_visits_every_clean_sample_once_and_cue_cycles(sets, base_model):
    clean, cue = sets  # 48 clean, 40 cue, batch 16: 3 steps, 48 cue indices per epoch
    _, h = finetune.run("cbft", base_model, clean, cue, epochs=3, lr=0.01, batch_size=16, progress=False,
                        record_indices=True, return_history=True)
    cl, cu = h["clean_index"], h["cue_index"]
    assert len(cl) == len(cu) == 9
    epochs = [torch.cat(cl[3 * e : 3 * e + 3]) for e in range(3)]
    for idx in epochs:
        assert torch.equal(idx.sort().values, torch.arange(48))
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled
    assert all(len(i) == 16 for i in cu)
    stream = torch.cat(cu)  # 144 indices = 3 full passes over the 40 cue samples + 24
    for p in range(3):
        assert torch.equal(stream[40 * p : 40 * p + 40].sort().values, torch.arange(40))
    assert len(set(stream[120:].tolist())) == 24


def test_cue_stream_smaller_than_batch():
    s = finetune.CueStream(3, 8, torch.Generator().manual_seed(0))
    out = torch.cat([s.next() for _ in range(3)])
    assert len(out) == 24
    for p in range(8):
        assert sorted(out[3 * p : 3 * p + 3].tolist()) == [0, 1, 2]


class CountingCNN(models.ConvNet):
    samples_through_features = 0

    def features(self, x):
        CountingCNN.samples_through_features += x.shape[0]
        return super().features(x)


def test_llrt_features_once_backbone_identical_head_optimal(sets, base_model):
    clean, _ = sets
    model = copy.deepcopy(base_model)
    model.__class__ = CountingCNN
    CountingCNN.samples_through_features = 0
    before = snapshot(model)
    out, h = finetune.run("llrt", model, clean, epochs=1, lr=0.1, progress=False, head_weight_decay=1e-3,
                          return_history=True)
    assert CountingCNN.samples_through_features == len(clean)
    after = snapshot(out)
    assert state_equal(after, before, skip=("head.",))  # backbone, BN statistics included, bit-identical
    assert not torch.equal(after["head.weight"], before["head.weight"])
    # the head minimises CE + wd/2·|W|² on the features: its gradient vanishes (independent check)
    with torch.no_grad():
        feats = base_model.features(clean.images.double().div(127.5).sub(1).float()).double()
    w = after["head.weight"].double().requires_grad_(True)
    b = after["head.bias"].double().requires_grad_(True)
    obj = F.cross_entropy(feats @ w.T + b, clean.labels) + 0.5e-3 * w.pow(2).sum()
    gw, gb = torch.autograd.grad(obj, (w, b))
    assert gw.norm() < 1e-3 and gb.norm() < 1e-3
    assert h["llrt"]["head_loss"] < train.evaluate(base_model, clean)["loss"]


def test_lpft_is_llrt_then_ft(sets, base_model):
    clean, _ = sets
    llrt = finetune.run("llrt", base_model, clean, epochs=1, lr=0.1, progress=False, seed=2)
    lpft = finetune.run("lpft", base_model, clean, epochs=2, lr=0.02, batch_size=16, progress=False, seed=2)
    manual = train.fit(copy.deepcopy(llrt).train(), clean, epochs=2, lr=0.02, batch_size=16,
                       weight_decay=1e-4, seed=2, progress=False)
    for key, val in lpft.state_dict().items():
        torch.testing.assert_close(val, manual.state_dict()[key], msg=key)


@pytest.mark.parametrize("method", ["ft", "cbft", "cbft-no-barrier"])
def test_deterministic_given_seed(method, sets, base_model):
    clean, cue = sets
    a = finetune.run(method, base_model, clean, cue, seed=7, **FAST).state_dict()
    b = finetune.run(method, base_model, clean, cue, seed=7, **FAST).state_dict()
    c = finetune.run(method, base_model, clean, cue, seed=8, **FAST).state_dict()
    assert state_equal(a, b)
    assert not state_equal(a, c)


@pytest.mark.parametrize("method", ["ft", "cbft", "cbft-no-barrier", "lpft"])
def test_huge_lr_raises_nonfinite_naming_method_epoch_step(method, sets, base_model):
    clean, cue = sets
    with pytest.raises(NonFiniteLossError, match=rf"^{method}: non-finite .* at epoch \d+, step \d+"):
        finetune.run(method, base_model, clean, cue, epochs=5, lr=1e12, batch_size=16, progress=False)


def test_nan_weights_fail_at_first_barrier_step(sets, base_model):
    clean, cue = sets
    model = copy.deepcopy(base_model)
    with torch.no_grad():
        model.head.bias[1] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"cbft: non-finite barrier loss .* epoch 1, step 1"):
        finetune.run("cbft", model, clean, cue, **FAST)


def test_bad_arguments(sets, base_model):
    clean, cue = sets
    with pytest.raises(ConfigError, match=r"method.*'ft', 'llrt', 'lpft', 'cbft'"):
        finetune.run("dfr", base_model, clean, cue, **FAST)
    with pytest.raises(ConfigError, match="cue"):
        finetune.run("cbft", base_model, clean, None, **FAST)
    with pytest.raises(ConfigError, match="cue"):
        finetune.run("cbft", base_model, clean, clean.subset(slice(0, 0)), **FAST)
    with pytest.raises(ConfigError, match="margn"):
        finetune.run("cbft", base_model, clean, cue, margn=1.0, **FAST)
    with pytest.raises(ConfigError, match="lam"):
        finetune.run("cbft-no-invariance", base_model, clean, cue, lam=1.0, **FAST)
    with pytest.raises(ConfigError, match="t_range"):
        finetune.run("cbft", base_model, clean, cue, t_range=(0.8, 0.2), **FAST)
    with pytest.raises(ConfigError, match="head_steps"):
        finetune.run("ft", base_model, clean, cue, head_steps=3, **FAST)
    with pytest.raises(ConfigError, match="epochs"):
        finetune.run("ft", base_model, clean, cue, epochs=0, lr=0.1, progress=False)
    with pytest.raises(ConfigError, match="lr"):
        finetune.run("cbft", base_model, clean, cue, epochs=1, lr=-0.1, progress=False)
    with pytest.raises(ConfigError, match="clean"):
        finetune.run("ft", base_model, clean.subset(slice(0, 0)), cue, **FAST)
    wrong = models.build("cnn", K + 1, width=0.5, in_shape=(3, 16, 16), seed=0)
    with pytest.raises(ConfigError, match="classes"):
        finetune.run("ft", wrong, clean, cue, **FAST)


def test_cbft_restores_modes_when_training_fails(sets, base_model):
    clean, cue = sets
    model = copy.deepcopy(base_model).eval()
    model.blocks[0].train()  # a mixed state must come back as it was
    modes = [m.training for m in model.modules()]
    with torch.no_grad():
        model.head.bias[1] = float("nan")
    with pytest.raises(NonFiniteLossError):
        finetune._cbft(model, clean, cue, method="cbft", epochs=1, sgd=SGDConfig(lr=0.02), batch_size=16,
                       seed=0, progress=False, max_batches=None, barrier=True,
                       **finetune._method_options("cbft", {}))
    assert [m.training for m in model.modules()] == modes


def test_cbft_learning_rate_is_held_during_warm_up_then_cosine(sets, base_model):
    clean, cue = sets
    _, h = finetune.run("cbft", base_model, clean, cue, epochs=4, lr=0.02, batch_size=16, progress=False,
                        warmup_epochs=2, return_history=True)
    steps = math.ceil(len(clean) / 16)  # 3 per epoch; the last step of each epoch is recorded
    cosine = 2 * steps
    expected = [0.02, 0.02] + [0.01 * (1 + math.cos(math.pi * k / cosine)) for k in (steps - 1, 2 * steps - 1)]
    assert h["lr"] == pytest.approx(expected, rel=1e-12)


def test_llrt_head_matches_scikit_learn_logistic_regression(sets, base_model):
    """Independent oracle: multinomial logistic regression on the same features.

    LLRT minimises mean CE + wd/2·‖W‖² (bias free); scikit-learn minimises
    ½‖W‖² + C·Σ CE, the same problem for C = 1 / (n·wd). Softmax ignores a shift
    of every bias, so biases are compared centred.
    """
    from sklearn.linear_model import LogisticRegression

    clean, _ = sets
    wd = 1e-2
    out = finetune.run("llrt", base_model, clean, epochs=1, lr=0.1, progress=False, head_weight_decay=wd,
                       head_steps=500)
    with torch.no_grad():
        feats = base_model.features(clean.images.double().div(127.5).sub(1).float()).double().numpy()
    oracle = LogisticRegression(C=1.0 / (len(clean) * wd), tol=1e-12, max_iter=10_000).fit(feats, clean.labels.numpy())
    w = out.head.weight.detach().double()
    b = out.head.bias.detach().double()
    torch.testing.assert_close(w, torch.as_tensor(oracle.coef_), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(b - b.mean(), torch.as_tensor(oracle.intercept_ - oracle.intercept_.mean()),
                               rtol=1e-3, atol=1e-4)
