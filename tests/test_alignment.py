"""cbft_core.kernels.alignment: permutations preserve the function; activation matching recovers them."""
import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from cbft_core.kernels.alignment import activation_correlations, align, invert, match_units, permute
from cbft_core.kernels.data.imageset import ImageSet, normalize
from cbft_core.errors import ConfigError
from cbft_core.kernels.models import build
from cbft_core.kernels.paths import reset_bn

WIDTH = {"cnn": 0.5, "vgg13": 0.125}


def random_set(n, seed, hw=(16, 16)):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, *hw), dtype=torch.uint8, generator=g)
    return ImageSet(images, torch.randint(0, 5, (n,), generator=g), tuple("abcde"))


def trained_ish(name, seed):
    """A model with non-default BN affine parameters and running statistics."""
    model = build(name, 5, width=WIDTH[name], in_shape=(3, 16, 16), seed=seed)
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.3, 0.3, generator=g)
    reset_bn(model, [normalize(random_set(64, seed).images)])
    return model.eval()


def random_perms(model, seed):
    g = torch.Generator().manual_seed(seed)
    sizes = [model.get_submodule(layer.conv).out_channels for layer in model.permutation_spec().layers]
    return [torch.randperm(n, generator=g) for n in sizes]


@pytest.mark.parametrize("name", ["cnn", "vgg13"])
def test_permutation_preserves_function_and_inverts_exactly(name):
    model = trained_ish(name, 0)
    perms = random_perms(model, 1)
    assert any(not torch.equal(p, torch.arange(len(p))) for p in perms)
    permuted = permute(model, perms)
    x = normalize(random_set(32, 9).images)
    with torch.no_grad():
        torch.testing.assert_close(permuted(x), model(x), rtol=0, atol=1e-5)
        # train mode (batch statistics) too; on copies, as it updates the running statistics
        torch.testing.assert_close(copy.deepcopy(permuted).train()(x), copy.deepcopy(model).train()(x),
                                   rtol=0, atol=1e-5)
    assert not torch.equal(permuted.state_dict()["blocks.0.conv.weight"], model.state_dict()["blocks.0.conv.weight"])
    back = permute(permuted, [invert(p) for p in perms])
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", ["cnn", "vgg13"])
def test_aligning_a_permuted_copy_recovers_the_original(name):
    model_a = trained_ish(name, 0)
    shuffled = permute(model_a, random_perms(model_a, 2))
    recovered = align(shuffled, to=model_a, data=random_set(200, 3), batch_size=64)
    assert recovered is not shuffled
    assert all(torch.equal(v, recovered.state_dict()[k]) for k, v in model_a.state_dict().items())


def test_align_keeps_b_function_and_raises_matched_correlation():
    model_a, model_b = trained_ish("cnn", 0), trained_ish("cnn", 1)
    data = random_set(200, 4)
    before = {k: v.clone() for k, v in model_b.state_dict().items()}
    aligned = align(model_b, to=model_a, data=data, batch_size=64)
    x = normalize(random_set(40, 5).images)
    with torch.no_grad():
        torch.testing.assert_close(aligned(x), model_b(x), rtol=0, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model_b.state_dict().items())  # input untouched
    corr_before = activation_correlations(model_a, model_b, data)
    corr_after = activation_correlations(model_a, aligned, data)
    for cb, ca in zip(corr_before, corr_after):
        assert np.trace(ca) >= np.trace(cb) - 1e-9
        # the aligned order is optimal: no other assignment does better
        rows, cols = np.arange(len(ca)), match_units([ca])[0].numpy()
        assert ca[rows, cols].sum() == pytest.approx(np.trace(ca), abs=1e-9)
    assert np.trace(corr_after[0]) > np.trace(corr_before[0])


def test_correlations_accumulate_over_all_batches():
    model_a, model_b = trained_ish("cnn", 0), trained_ish("cnn", 1)
    data = random_set(150, 6)
    corrs = activation_correlations(model_a, model_b, data, batch_size=37)  # uneven batches
    x = normalize(data.images)
    with torch.no_grad():
        acts_a = model_a.blocks[:2](x).double()
        acts_b = model_b.blocks[:2](x).double()
    flat_a = acts_a.permute(1, 0, 2, 3).reshape(acts_a.shape[1], -1).numpy()
    flat_b = acts_b.permute(1, 0, 2, 3).reshape(acts_b.shape[1], -1).numpy()
    expected = np.corrcoef(flat_a, flat_b)[: len(flat_a), len(flat_a) :]
    np.testing.assert_allclose(corrs[1], expected, atol=1e-6)


def test_match_units_finds_the_best_assignment():
    rng = np.random.default_rng(0)
    corr = rng.uniform(-1, 1, size=(6, 6))
    perm = match_units([corr])[0].numpy()
    best = max(itertools.permutations(range(6)), key=lambda p: corr[np.arange(6), list(p)].sum())
    assert corr[np.arange(6), perm].sum() == pytest.approx(corr[np.arange(6), list(best)].sum())


def test_unsupported_or_mismatched_models_are_rejected():
    data = random_set(8, 0)
    cnn = trained_ish("cnn", 0)
    with pytest.raises(ConfigError, match="not supported"):
        align(build("resnet18", 5, width=0.125), to=build("resnet18", 5, width=0.125), data=data)
    with pytest.raises(ConfigError, match="architectures differ"):
        align(build("vgg13", 5, width=0.125), to=cnn, data=data)
    with pytest.raises(ConfigError, match="blocks.0.conv.weight"):
        align(build("cnn", 5, width=1.0), to=cnn, data=data)
    with pytest.raises(ConfigError, match="permutation_spec"):
        align(nn.Linear(2, 2), to=cnn, data=data)
    perms = random_perms(cnn, 0)
    with pytest.raises(ConfigError, match="perms"):
        permute(cnn, perms[:-1])
    with pytest.raises(ConfigError, match=r"perms\[1\]"):
        permute(cnn, [perms[0], torch.zeros_like(perms[1])] + perms[2:])
