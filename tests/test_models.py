"""cbft_core.kernels.models: architecture, features/head contract, determinism, argument errors."""
import math

import pytest
import torch
from torch import nn

from cbft_core.errors import ConfigError
from cbft_core.kernels.models import MODEL_NAMES, build

SMALL_WIDTH = {"cnn": 0.5, "vgg13": 0.125, "resnet18": 0.125}


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("hw", [(32, 32), (64, 32)])
def test_forward_is_head_of_features(name, hw):
    model = build(name, 7, width=SMALL_WIDTH[name], in_shape=(3, *hw), seed=0).eval()
    x = torch.randn(3, 3, *hw, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats = model.features(x)
        out = model(x)
        by_head = model.head(feats)
    assert isinstance(model.head, nn.Linear)
    assert feats.shape == (3, model.feature_dim) == (3, model.head.in_features)
    assert out.shape == (3, 7)
    torch.testing.assert_close(out, by_head, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_normalisation_is_batchnorm2d(name):
    model = build(name, 10, width=SMALL_WIDTH[name])
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(bns) > 0
    assert all(c.out_channels == b.num_features for c, b in zip(convs, bns))


def _expected_conv_chain_params(channels, in_c, num_classes):
    total, c_in = 0, in_c
    for c in channels:
        total += 9 * c_in * c + 2 * c  # bias-free conv3x3 + BN affine
        c_in = c
    return total + c_in * num_classes + num_classes


def test_cnn_matches_the_specification():
    model = build("cnn", 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2]
    assert model.blocks(torch.zeros(1, 3, 32, 32)).shape[-2:] == (2, 2)  # a 2x2 map before pooling
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == _expected_conv_chain_params([16, 32, 64, 64], 3, 10)
    assert 60_000 < n_params < 62_000


def test_vgg13_matches_the_paper_layout():
    model = build("vgg13", 10, width=0.25)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    full = [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    assert [c.out_channels for c in convs] == [round(c * 0.25) for c in full]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2, 1, 1]
    assert build("vgg13", 10).feature_dim == 512


def test_resnet18_has_18_weight_layers_and_scales_with_width():
    model = build("resnet18", 10, width=0.25)
    main_convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(main_convs) + 1 == 18  # 17 conv3x3 + the head
    assert main_convs[0].stride == (1, 1)  # CIFAR-style stem
    assert model.feature_dim == 128
    small = build("resnet18", 10, in_shape=(1, 28, 28), width=0.125)
    assert small.stem[0].in_channels == 1
    assert small.layers[0].conv1.in_channels == 8  # 64 × 0.125


def test_in_channels_follow_in_shape():
    model = build("cnn", 3, in_shape=(1, 28, 28), seed=0)
    assert model.blocks[0].conv.in_channels == 1
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


def test_seed_makes_weights_reproducible_without_touching_global_rng():
    state = torch.random.get_rng_state()
    a = build("cnn", 10, seed=3).state_dict()
    b = build("cnn", 10, seed=3).state_dict()
    c = build("cnn", 10, seed=4).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.0.conv.weight"], c["blocks.0.conv.weight"])


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(name="vgg16", num_classes=10), "name"),
        (dict(name="cnn", num_classes=0), "num_classes"),
        (dict(name="cnn", num_classes=10, width=0), "width"),
        (dict(name="cnn", num_classes=10, width=-1.0), "width"),
        (dict(name="cnn", num_classes=10, width=math.nan), "width"),
        (dict(name="cnn", num_classes=10, width="wide"), "width"),
        (dict(name="cnn", num_classes=10, in_shape=(3, 32)), "in_shape"),
        (dict(name="cnn", num_classes=10, in_shape=(0, 32, 32)), "in_shape"),
        (dict(name="cnn", num_classes=10, in_shape=(3, 32.0, 32)), "in_shape"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        build(**kwargs)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_channels_last_weights_compute_the_same_function_as_nchw(name):
    model = build(name, 5, width=SMALL_WIDTH[name], seed=0).eval()
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    nchw = build(name, 5, width=SMALL_WIDTH[name], seed=0).to(memory_format=torch.contiguous_format).eval()
    assert all(m.weight.is_contiguous() for m in nchw.modules() if isinstance(m, nn.Conv2d))
    torch.testing.assert_close(nchw.state_dict(), model.state_dict(), rtol=0, atol=0)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), nchw(x), rtol=1e-4, atol=1e-5)
    # a state dict saved from either layout loads into the other
    nchw.load_state_dict(model.state_dict())
    assert all(m.weight.is_contiguous() for m in nchw.modules() if isinstance(m, nn.Conv2d))
