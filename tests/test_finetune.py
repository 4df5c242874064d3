"""cbft_core.kernels.finetune: naive fine-tuning (FT), last-layer retraining (LLRT) and LP-FT."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from cbft_core.kernels import finetune, models, train
from cbft_core.kernels.optim import SGDConfig
from cbft_core.errors import ConfigError, NonFiniteLossError
from finetune_toys import FAST, K, SGD, base_model, sets, snapshot, state_equal  # noqa: F401 (fixtures)


@pytest.mark.parametrize("method", finetune.METHODS)
def test_each_method_returns_new_model_and_leaves_input_untouched(method, sets, base_model):
    clean, _ = sets
    before = snapshot(base_model)
    out, history = finetune.run(method, base_model, clean, SGD, head_epochs=5, **FAST)
    assert out is not base_model and not out.training and history["method"] == method
    assert state_equal(snapshot(base_model), before)
    assert not state_equal(snapshot(out), before)  # it did fine-tune


class CountingCNN(models.ConvNet):
    samples_through_features = 0

    def features(self, x):
        CountingCNN.samples_through_features += x.shape[0]
        return super().features(x)


def test_llrt_features_once_backbone_identical_head_fitted(sets, base_model):
    """The authors' LLRT: eval-mode features computed once, a fresh head trained by SGD (lr 30, momentum 0.9)."""
    from sklearn.linear_model import LogisticRegression

    clean, _ = sets
    model = copy.deepcopy(base_model)
    model.__class__ = CountingCNN
    CountingCNN.samples_through_features = 0
    before = snapshot(model)
    out, h = finetune.run("llrt", model, clean, SGD, epochs=1, progress=False, batch_size=16)
    assert CountingCNN.samples_through_features == len(clean)
    after = snapshot(out)
    assert state_equal(after, before, skip=("head.",))  # backbone, BN statistics included, bit-identical
    assert len(h["llrt"]["loss"]) == finetune.HEAD_EPOCHS
    # the head comes close to an (independent) weakly regularised logistic regression: 200 cosine epochs
    # on these small features (mean |z| ~0.03) reach ~0.37 against the optimum's ~0.25; chance is 1.39
    with torch.no_grad():
        feats = base_model.features(clean.images.float().div(127.5).sub(1))
        head_loss = F.cross_entropy(out.head(feats), clean.labels).item()
    oracle = LogisticRegression(C=1e4, max_iter=10_000).fit(feats.double().numpy(), clean.labels.numpy())
    oracle_loss = F.cross_entropy(torch.as_tensor(oracle.decision_function(feats.double().numpy())), clean.labels).item()
    assert head_loss <= oracle_loss + 0.2
    assert head_loss < train.evaluate(base_model, clean)["loss"]


def test_lpft_is_llrt_then_ft(sets, base_model):
    clean, _ = sets
    llrt, _ = finetune.run("llrt", base_model, clean, SGD, epochs=1, progress=False, seed=2, batch_size=16,
                           head_epochs=20)
    lpft, _ = finetune.run("lpft", base_model, clean, SGD, epochs=2, batch_size=16, progress=False, seed=2,
                           head_epochs=20)
    manual = train.fit(copy.deepcopy(llrt).train(), clean, SGD, epochs=2, batch_size=16, seed=2, progress=False)
    for key, val in lpft.state_dict().items():
        torch.testing.assert_close(val, manual.state_dict()[key], msg=key)


@pytest.mark.parametrize("method", ["ft", "lpft"])
def test_deterministic_given_seed(method, sets, base_model):
    clean, _ = sets
    a = finetune.run(method, base_model, clean, SGD, seed=7, head_epochs=3, **FAST)[0].state_dict()
    b = finetune.run(method, base_model, clean, SGD, seed=7, head_epochs=3, **FAST)[0].state_dict()
    c = finetune.run(method, base_model, clean, SGD, seed=8, head_epochs=3, **FAST)[0].state_dict()
    assert state_equal(a, b)
    assert not state_equal(a, c)


def test_non_finite_losses_name_method_epoch_step(sets, base_model):
    clean, _ = sets
    with pytest.raises(NonFiniteLossError, match=r"^ft: non-finite loss .* at epoch \d+, step \d+"):
        finetune.run("ft", base_model, clean, SGDConfig(lr=1e12), epochs=5, batch_size=16, progress=False)
    broken = copy.deepcopy(base_model)
    with torch.no_grad():
        broken.blocks[0].conv.weight[0, 0, 0, 0] = float("nan")  # NaN features: the probe's loss is NaN at once
    with pytest.raises(NonFiniteLossError, match=r"^llrt: non-finite head loss \(nan\) at epoch 1, step 1"):
        finetune.run("llrt", broken, clean, SGD, epochs=1, batch_size=16, progress=False)


def test_bad_arguments(sets, base_model):
    clean, _ = sets
    with pytest.raises(ConfigError, match=r"^method.*'ft', 'llrt', 'lpft'"):
        finetune.run("cbft", base_model, clean, SGD, **FAST)
    with pytest.raises(ConfigError, match="^epochs"):
        finetune.run("ft", base_model, clean, SGD, epochs=0, progress=False)
    with pytest.raises(ConfigError, match="^head_epochs"):
        finetune.run("llrt", base_model, clean, SGD, head_epochs=0, **FAST)
    with pytest.raises(ConfigError, match="^clean"):
        finetune.run("ft", base_model, clean.subset(slice(0, 0)), SGD, **FAST)
    wrong = models.build("cnn", K + 1, width=0.5, in_shape=(3, 16, 16), seed=0)
    with pytest.raises(ConfigError, match="classes"):
        finetune.run("ft", wrong, clean, SGD, **FAST)
