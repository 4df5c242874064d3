"""cbft_core.kernels.paths: interpolation, BatchNorm re-estimation, evaluation along a path."""
import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cbft_core.kernels.connectivity import barrier
from cbft_core.kernels.data.imageset import ImageSet, normalize
from cbft_core.errors import ConfigError
from cbft_core.kernels.models import build
from cbft_core.kernels.paths import bezier, evaluate_path, linear, reset_bn


def random_set(n, seed, hw=(16, 16), num_classes=4):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, *hw), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    return ImageSet(images, labels, tuple(str(k) for k in range(num_classes)))


def pair(width=0.25):
    a = build("cnn", 4, width=width, seed=0)
    b = build("cnn", 4, width=width, seed=1)
    # non-default BN statistics and counters, so endpoint checks see every buffer
    with torch.no_grad():
        for i, m in enumerate(bn for bn in b.modules() if isinstance(bn, nn.BatchNorm2d)):
            m.running_mean.normal_(generator=torch.Generator().manual_seed(i))
            m.running_var.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(i))
            m.num_batches_tracked.fill_(7)
    return a, b


@pytest.mark.parametrize("t", [0.0, 1.0])
def test_paths_reproduce_endpoints_exactly(t):
    a, b = pair()
    sa, sb = a.state_dict(), b.state_dict()
    mid = {k: v + 0.37 if v.is_floating_point() else v for k, v in sa.items()}
    end = sa if t == 0.0 else sb
    for point in (linear(sa, sb, t), bezier(sa, mid, sb, t)):
        for k, v in end.items():
            if v.is_floating_point():
                assert torch.equal(point[k], v), k


def test_linear_matches_lerp_and_bezier_with_centre_midpoint():
    a, b = pair()
    sa, sb = a.state_dict(), b.state_dict()
    centre = {k: (v + sb[k]) / 2 if v.is_floating_point() else v for k, v in sa.items()}
    for t in (0.1, 0.5, 0.83):
        lin, bez = linear(sa, sb, t), bezier(sa, centre, sb, t)
        for k, v in sa.items():
            if v.is_floating_point():
                torch.testing.assert_close(lin[k], torch.lerp(v, sb[k], t))
                torch.testing.assert_close(bez[k], lin[k])


def test_integer_buffers_come_from_a():
    a, b = pair()
    sa, sb = a.state_dict(), b.state_dict()
    key = "blocks.0.bn.num_batches_tracked"
    assert sa[key].item() == 0 and sb[key].item() == 7
    for point in (linear(sa, sb, 1.0), bezier(sa, sb, sb, 0.6)):
        assert point[key].dtype == torch.int64 and point[key].item() == 0


def test_gradients_flow_through_interpolation():
    a = {"w": torch.randn(3, requires_grad=True)}
    b = {"w": torch.randn(3, requires_grad=True)}
    m = {"w": torch.randn(3, requires_grad=True)}
    t = 0.3
    linear(a, b, t)["w"].sum().backward()
    torch.testing.assert_close(a["w"].grad, torch.full((3,), 1 - t))
    torch.testing.assert_close(b["w"].grad, torch.full((3,), t))
    bezier(a, m, b, t)["w"].sum().backward()
    torch.testing.assert_close(m["w"].grad, torch.full((3,), 2 * t * (1 - t)))


def test_mismatched_state_dicts_name_the_entry():
    a, _ = pair()
    sa = a.state_dict()
    missing = {k: v for k, v in sa.items() if k != "blocks.2.bn.bias"}
    with pytest.raises(ConfigError, match="blocks.2.bn.bias"):
        linear(sa, missing, 0.5)
    with pytest.raises(ValueError, match="blocks.2.bn.bias"):
        linear(missing, sa, 0.5)
    wider = build("cnn", 4, width=0.5).state_dict()
    with pytest.raises(ConfigError, match="blocks.0.conv.weight"):
        bezier(sa, sa, wider, 0.5)
    with pytest.raises(ConfigError, match="blocks.0.conv.weight"):
        bezier(sa, wider, sa, 0.5)


@pytest.mark.parametrize("t", [-0.01, 1.5, math.nan, "half", torch.tensor([0.1, 0.2])])
def test_t_outside_unit_interval_is_rejected(t):
    a, b = pair()
    with pytest.raises(ConfigError, match="t must be"):
        linear(a.state_dict(), b.state_dict(), t)


def _float64_bn_statistics(model, xs):
    """Per BN layer, the image-weighted mean over batches of batch mean and unbiased variance, in
    float64 by running the conv chain by hand (train-mode BN normalises with the biased batch variance)."""
    means, variances = [], []
    total = sum(len(x) for x in xs)
    for x in xs:
        h = x.double()
        for li, block in enumerate(model.blocks):
            conv, bn = block.conv, block.bn
            z = F.conv2d(h, conv.weight.double(), None, conv.stride, conv.padding)
            mu = z.mean(dim=(0, 2, 3))
            var_b = z.var(dim=(0, 2, 3), unbiased=False)
            var_u = z.var(dim=(0, 2, 3), unbiased=True)
            if len(means) <= li:
                means.append(torch.zeros_like(mu))
                variances.append(torch.zeros_like(mu))
            means[li] += mu * len(x) / total
            variances[li] += var_u * len(x) / total
            zn = (z - mu[None, :, None, None]) / torch.sqrt(var_b[None, :, None, None] + bn.eps)
            h = torch.relu(zn * bn.weight.double()[None, :, None, None] + bn.bias.double()[None, :, None, None])
    return means, variances


def test_reset_bn_equals_float64_statistics_over_all_batches():
    _, model = pair()
    model.eval()
    with torch.no_grad():  # non-trivial affine parameters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    momenta = [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    data = random_set(64, seed=5)
    xs = [normalize(data.images[i : i + 16]) for i in range(0, 64, 16)]
    # tensors and (x, y) tuples are both accepted
    count = reset_bn(model, [xs[0], (xs[1], None), (xs[2],), [xs[3], 0]])
    assert count == 4
    means, variances = _float64_bn_statistics(model, xs)
    bns = [b.bn for b in model.blocks]
    for bn, mu, var in zip(bns, means, variances):
        torch.testing.assert_close(bn.running_mean.double(), mu, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-4, atol=1e-5)
        assert bn.num_batches_tracked.item() == 4
    # the first layer's mean is the plain full-data mean
    z = F.conv2d(torch.cat(xs).double(), model.blocks[0].conv.weight.detach().double(), None, 2, 1)
    torch.testing.assert_close(bns[0].running_mean.double(), z.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    assert not model.training and not any(m.training for m in model.modules())
    assert [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)] == momenta


def test_reset_bn_weighs_batches_by_their_images():
    """An uneven last batch: the statistics are those of all the data, not an average over batches."""
    _, model = pair()
    data = random_set(70, seed=6)
    x = normalize(data.images)
    x[64:] += 1.5  # the short last batch differs, so weighting it as a whole batch would show
    xs = [x[0:32], x[32:64], x[64:70]]
    assert reset_bn(model, xs) == 3
    bns = [b.bn for b in model.blocks]
    # first layer: its input does not depend on the batching, so compare with the whole set at once
    z = F.conv2d(x.double(), model.blocks[0].conv.weight.detach().double(), None, 2, 1)
    full_mean = z.mean(dim=(0, 2, 3))
    torch.testing.assert_close(bns[0].running_mean.double(), full_mean, rtol=1e-5, atol=1e-6)
    per_batch = torch.stack([F.conv2d(b.double(), model.blocks[0].conv.weight.detach().double(), None, 2, 1)
                             .mean(dim=(0, 2, 3)) for b in xs]).mean(0)
    assert (per_batch - full_mean).abs().max() > 1e-2  # what an equal-weight average would have given
    # every layer against the image-weighted float64 statistics computed by hand
    means, variances = _float64_bn_statistics(model, xs)
    for bn, mu, var in zip(bns, means, variances):
        torch.testing.assert_close(bn.running_mean.double(), mu, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-4, atol=1e-5)
        assert bn.num_batches_tracked.item() == 3


def test_reset_bn_keeps_train_mode_and_rejects_empty_batches():
    _, model = pair()
    model.train()
    reset_bn(model, [torch.randn(8, 3, 16, 16)])
    assert model.training
    with pytest.raises(ConfigError, match="batches"):
        reset_bn(model, [])
    assert model.training
    assert reset_bn(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), iter([])) == 0


def _direct_loss_acc(model, data, bn_data=None):
    m = copy.deepcopy(model)
    if bn_data is not None:
        reset_bn(m, [normalize(bn_data.images)])
    m.eval()
    with torch.no_grad():
        logits = m(normalize(data.images))
    return F.cross_entropy(logits, data.labels).item(), (logits.argmax(1) == data.labels).float().mean().item()


def test_endpoints_equal_the_models_with_statistics_of_the_training_images():
    a, b = pair()
    sets = {"x": random_set(96, 1), "y": random_set(64, 2)}
    train_images = random_set(120, 7)
    res = evaluate_path(a, b, sets, [0.0, 0.5, 1.0], train_images, bn_images=80, batch_size=128, progress=False)
    for name, data in sets.items():
        for i, model in ((0, a), (2, b)):
            loss, acc = _direct_loss_acc(model, data, bn_data=train_images.subset(slice(0, 80)))
            assert res.loss[name][i] == pytest.approx(loss, rel=1e-5)
            assert res.acc[name][i] == pytest.approx(acc)
    # never the scored images' statistics: those give other numbers
    own = _direct_loss_acc(b, sets["y"], bn_data=sets["y"])[0]
    assert abs(res.loss["y"][2] - own) > 1e-3


def test_running_average_is_the_authors_momentum_pass_without_reset():
    a, b = pair()
    sets = {"x": random_set(32, 1)}
    train_images = random_set(300, 7)
    res = evaluate_path(a, b, sets, [1.0], train_images, bn_images=300, bn_average="running", progress=False)
    m = copy.deepcopy(b).train()  # the authors' loop: b's own statistics, one shuffled pass, momentum 0.1
    order = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for i in range(0, 300, 128):
            m(normalize(train_images.images[order[i:i + 128]]))
        logits = m.eval()(normalize(sets["x"].images))
    assert res.loss["x"][0] == pytest.approx(F.cross_entropy(logits, sets["x"].labels).item(), rel=1e-5)
    cumulative = evaluate_path(a, b, sets, [1.0], train_images, bn_images=300, progress=False)
    assert abs(cumulative.loss["x"][0] - res.loss["x"][0]) > 1e-4


def test_model_without_batchnorm_is_evaluated_as_is():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    b = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    data = random_set(50, 3)
    res = evaluate_path(a, b, {"d": data}, [0.0, 1.0], data, progress=False)
    assert res.bn_resets == 0
    assert res.loss["d"][0] == pytest.approx(_direct_loss_acc(a, data)[0], rel=1e-5)
    assert res.loss["d"][1] == pytest.approx(_direct_loss_acc(b, data)[0], rel=1e-5)


def test_barrier_of_a_model_with_itself_is_zero():
    a, _ = pair()
    sets = {"x": random_set(64, 1), "y": random_set(64, 2)}
    ts = np.linspace(0, 1, 5)
    res = evaluate_path(a, a, sets, ts, random_set(64, 9), progress=False)
    for name in sets:
        for form in ("entezari", "frankle"):
            assert barrier(res.loss[name], ts, form)[0] == pytest.approx(0.0, abs=1e-6)
            assert barrier(res.error(name), ts, form)[0] == pytest.approx(0.0, abs=1e-9)


def test_one_bn_reestimation_per_t_shared_by_every_set():
    a, b = pair()
    sets = {"x": random_set(40, 1), "y": random_set(30, 2), "z": random_set(20, 3)}
    ts = [0.0, 0.25, 0.5, 1.0]
    modes = []
    # evaluate_path deep-copies model_a, hook included: it sees every forward of the template
    handle = a.blocks[0].bn.register_forward_pre_hook(lambda mod, inp: modes.append(mod.training))
    try:
        res = evaluate_path(a, b, sets, ts, random_set(50, 4), batch_size=64, progress=False)
    finally:
        handle.remove()
    # the BN data and every set fit one batch: one train-mode forward per t, one eval forward per set per t
    assert sum(modes) == res.bn_resets == len(ts)
    assert modes.count(False) == len(sets) * len(ts)


def test_midpoint_at_centre_gives_the_linear_path():
    a, b = pair()
    sets = {"x": random_set(48, 1)}
    centre = {k: (v + b.state_dict()[k]) / 2 if v.is_floating_point() else v for k, v in a.state_dict().items()}
    ts = [0.0, 0.3, 0.7, 1.0]
    lin = evaluate_path(a, b, sets, ts, random_set(48, 5), progress=False)
    bez = evaluate_path(a, b, sets, ts, random_set(48, 5), midpoint=centre, progress=False)
    np.testing.assert_allclose(bez.loss["x"], lin.loss["x"], rtol=1e-4)
    assert json.loads(json.dumps(lin.to_dict()))["loss"]["x"] == pytest.approx(list(lin.loss["x"]))


def test_evaluate_path_rejects_bad_input():
    a, b = pair()
    sets = {"x": random_set(16, 1)}
    train_images = random_set(16, 2)
    with pytest.raises(ConfigError, match="blocks.0.conv.weight"):
        evaluate_path(a, build("cnn", 4, width=0.5), sets, [0, 1], train_images, progress=False)
    with pytest.raises(ConfigError, match="model_b"):
        evaluate_path(a, build("vgg13", 4, width=0.125), sets, [0, 1], train_images, progress=False)
    with pytest.raises(ConfigError, match="midpoint"):
        evaluate_path(a, b, sets, [0, 1], train_images, midpoint={"w": torch.zeros(1)}, progress=False)
    with pytest.raises(ConfigError, match="^bn_data"):
        evaluate_path(a, b, sets, [0, 1], "clean", progress=False)
    with pytest.raises(ConfigError, match="^bn_average"):
        evaluate_path(a, b, sets, [0, 1], train_images, bn_average="same", progress=False)
    with pytest.raises(ConfigError, match="ts"):
        evaluate_path(a, b, sets, [0, 1.2], train_images, progress=False)
    with pytest.raises(ConfigError, match="sets"):
        evaluate_path(a, b, {}, [0, 1], train_images, progress=False)
    with pytest.raises(ConfigError, match="bn_images"):
        evaluate_path(a, b, sets, [0, 1], train_images, bn_images=0, progress=False)
