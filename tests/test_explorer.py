"""The barrier explorer's grid (against paths.evaluate_path), its rendering, and the invariance measure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbft_core.kernels import invariance, landscape, models, paths, train
from cbft_core.study import graph, presets, zoo
from cbft_core.presentation import explorer
from cbft_core.kernels.data.imageset import ImageSet, normalize
from cbft_core.errors import ConfigError


def _data(n: int = 48, seed: int = 0, classes: int = 10) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, classes, (n,), generator=g)
    return ImageSet(images, labels, tuple(f"c{k}" for k in range(classes)))


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = models.build("cnn", 10, width=0.25)
    # give BatchNorm non-trivial running statistics so that interpolating them differs from re-estimating
    paths.reset_bn(model, [normalize(_data(32, seed + 10).images) * (1 + seed)])
    return model.eval()


@pytest.fixture(scope="module")
def trio():
    a, b, m = _model(0), _model(1), _model(2)
    return a, b, {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_bent_midpoint_ends(trio):
    a, b, mid = trio
    sa, sb = a.state_dict(), b.state_dict()
    zero = landscape.bent_midpoint(sa, sb, mid, 0.0)
    one = landscape.bent_midpoint(sa, sb, mid, 1.0)
    for key, va in sa.items():
        if va.is_floating_point():
            torch.testing.assert_close(zero[key], (va + sb[key]) / 2)
            assert torch.equal(one[key], mid[key])
        else:
            assert torch.equal(zero[key], va)


def test_bend_zero_is_the_linear_path_and_bend_one_the_trained_curve(trio):
    a, b, mid = trio
    data = _data()
    ts = [0.0, 0.3, 0.5, 1.0]
    train_images = _data(48, seed=5)
    grid = landscape.explore(a, b, data, [0.0, 1.0], ts, midpoint=mid, bn_data=train_images, bn_images=40,
                             batch_size=16, progress=False)
    lin = paths.evaluate_path(a, b, {"d": data}, ts, train_images, bn_images=40, batch_size=16, progress=False)
    bez = paths.evaluate_path(a, b, {"d": data}, ts, train_images, midpoint=mid, bn_images=40, batch_size=16,
                              progress=False)
    np.testing.assert_allclose(grid.loss[0], lin.loss["d"], rtol=1e-5)
    np.testing.assert_allclose(grid.acc[0], lin.acc["d"])
    np.testing.assert_allclose(grid.loss[1], bez.loss["d"], rtol=1e-5)
    assert grid.barrier(0) == pytest.approx(
        float(np.max(lin.loss["d"] - ((1 - np.array(ts)) * lin.loss["d"][0] + np.array(ts) * lin.loss["d"][-1]))))


def test_interpolated_bn_keeps_endpoint_statistics_and_probs_match(trio):
    a, b, _ = trio
    data = _data()
    idx = [3, 0, 7]
    grid = landscape.explore(a, b, data, [0.0], [0.0, 0.5, 1.0], sample_index=idx, bn="interpolate",
                            progress=False)
    assert grid.loss[0, 0] == pytest.approx(train.evaluate(a, data)["loss"], rel=1e-5)
    assert grid.loss[0, 2] == pytest.approx(train.evaluate(b, data)["loss"], rel=1e-5)
    expected = F.softmax(train.predict(a, data.subset(torch.tensor(idx))), dim=1).numpy()
    np.testing.assert_allclose(grid.probs[0, 0], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grid.probs.sum(-1), 1.0, rtol=1e-5)
    assert grid.labels.tolist() == data.labels[idx].tolist()
    # re-estimating at the midpoint (on darker training images) gives another model than interpolating
    dark = _data(32, seed=4)
    dark = ImageSet(dark.images // 3, dark.labels, dark.classes)
    again = landscape.explore(a, b, data, [0.0], [0.5], bn="reestimate", bn_data=dark, progress=False)
    assert again.loss[0, 0] != pytest.approx(grid.loss[0, 1], rel=1e-3)


def test_round_trip(trio):
    a, b, mid = trio
    grid = landscape.explore(a, b, _data(16), [0.0, 0.5], [0.0, 1.0], midpoint=mid, sample_index=[1, 2],
                             bn_data=_data(16, seed=2), progress=False)
    back = landscape.ExplorerGrid.from_dict(grid.to_dict())
    for name in ("bends", "ts", "loss", "acc", "probs", "sample_index", "labels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(grid, name))
    assert back.classes == grid.classes and back.bn == grid.bn


@pytest.mark.parametrize("kwargs, word", [
    (dict(bends=[0.0, 1.0]), "midpoint"),
    (dict(bends=[0.0], bn="none"), "bn"),
    (dict(bends=[0.0], ts=[0.0, 1.0, 0.5]), "ts"),
    (dict(bends=[0.0], ts=[0.0, 1.5]), "ts"),
    (dict(bends=[0.0], sample_index=[99]), "sample_index"),
    (dict(bends=[0.0], batch_size=0), "batch_size"),
    (dict(bends=[0.0], bn_data=None), "bn_data"),
])
def test_bad_arguments(trio, kwargs, word):
    a, b, _ = trio
    args = dict(ts=[0.0, 1.0], progress=False, bn_data=_data(16, seed=2))
    args.update(kwargs)
    with pytest.raises(ConfigError, match=word):
        landscape.explore(a, b, _data(16), **args)


def test_sample_indices_first_of_each_class():
    data = _data(60, seed=3)
    idx = landscape.sample_indices(data, 4)
    classes = sorted(set(data.labels.tolist()))[:4]
    assert idx.tolist() == [data.labels.tolist().index(k) for k in classes]


def test_frames_widget_has_one_png_per_grid_point(trio):
    a, b, mid = trio
    data = _data(16)
    grid = landscape.explore(a, b, data, [0.0, 1.0], [0.0, 0.5, 1.0], midpoint=mid, sample_index=[0, 1],
                             bn_data=_data(16, seed=2), progress=False)
    images = data.subset(torch.tensor([0, 1]))
    box = explorer.frames_widget(grid, images, dpi=30, start=(1, 2), progress=False)
    outer = box.children[-1]
    assert len(outer.children) == 2 and all(len(c.children) == 3 for c in outer.children)
    assert outer.selected_index == 1 and outer.children[1].selected_index == 2
    assert all(f.value[:4] == b"\x89PNG" for c in outer.children for f in c.children)
    with pytest.raises(ConfigError):
        explorer.render_frame(grid, 2, 0, images)
    with pytest.raises(ConfigError):
        explorer.render_frame(grid, 0, 0, data)


def test_frames_are_rendered_once_then_read_from_the_cache(trio, tmp_path, monkeypatch):
    monkeypatch.setenv("CBFT_CACHE_DIR", str(tmp_path))
    a, b, mid = trio
    data = _data(16)
    grid = landscape.explore(a, b, data, [0.0, 1.0], [0.0, 1.0], midpoint=mid, sample_index=[0, 1],
                             bn_data=_data(16, seed=2), progress=False)
    images = data.subset(torch.tensor([0, 1]))

    def pngs(box):
        return [f.value for c in box.children[-1].children for f in c.children]

    first = pngs(explorer.frames_widget(grid, images, dpi=30, progress=False))
    assert len(list((tmp_path / "explorer-frames").glob("*.pt"))) == 1
    drawn = []
    monkeypatch.setattr(explorer, "render_frame", lambda *args, **kwargs: drawn.append(args) or plt.figure())
    assert pngs(explorer.frames_widget(grid, images, dpi=30, progress=False)) == first and not drawn
    explorer.frames_widget(grid, images, dpi=31, progress=False)  # another resolution: another entry
    assert len(drawn) == 4
    key = explorer.frames_key(grid, images, ("A", "B"), 30)
    with plt.rc_context({"font.family": "serif"}):
        assert explorer.frames_key(grid, images, ("A", "B"), 30) != key
    moved = landscape.ExplorerGrid(**{**vars(grid), "loss": grid.loss + 0.01})
    assert explorer.frames_key(moved, images, ("A", "B"), 30) != key


def test_pair_grid_cached_and_equal_to_direct(tmp_path, monkeypatch):
    monkeypatch.setenv("CBFT_CACHE_DIR", str(tmp_path))
    cfg = presets.get("tiny", n_train=256, n_test=64, max_batches=2, bn_images=64)

    def grid_of(pair, bends, ts=(0.0, 0.5, 1.0)):
        return graph.result(cfg, "explorer-grid", pair=pair, seed=0, bends=bends, ts=ts, n_samples=2,
                            progress=False)

    grid = grid_of("scratch", [0.0, 1.0])
    assert len(list((tmp_path / "explorer-grid").glob("*.json"))) == 1
    model_a, model_b = (graph.result(cfg, "scratch", seed=0, replica=r, progress=False) for r in (0, 1))
    mid = graph.result(cfg, "scratch-midpoint", seed=0, progress=False)
    data = zoo.test_views(cfg)["clean"]
    direct = landscape.explore(model_a, model_b, data, [0.0, 1.0], [0.0, 0.5, 1.0], midpoint=mid,
                              sample_index=landscape.sample_indices(data, 2), bn_data=zoo.bn_data(cfg),
                              bn_images=64, batch_size=cfg.eval_batch_size, progress=False)
    np.testing.assert_allclose(grid.loss, direct.loss, rtol=1e-6)
    again = grid_of("scratch", [0.0, 1.0])
    np.testing.assert_array_equal(again.loss, grid.loss)
    # alignment permutes units only: both endpoints compute the same functions as before
    aligned = grid_of("scratch-aligned", [0.0])
    np.testing.assert_allclose(aligned.loss[0, [0, 2]], grid.loss[0, [0, 2]], rtol=1e-4)
    assert aligned.loss[0, 1] != pytest.approx(grid.loss[0, 1], rel=1e-4)
    with pytest.raises(ConfigError, match="pair"):
        grid_of("nope", [0.0], (0.0, 1.0))
    with pytest.raises(ConfigError, match="bends"):
        grid_of("scratch-aligned", [0.0, 1.0], (0.0, 1.0))


class _ReadsCorner(torch.nn.Module):
    """Predicts the class from one pixel's red value: the prediction moves with that pixel only."""

    def forward(self, x):
        return torch.nn.functional.one_hot(((x[:, 0, 0, 0] + 1) * 4.99).long().clamp(0, 9), 10).float()


def test_agreement_counts_surviving_predictions():
    base = _data(40, seed=5)
    moved = base.images.clone()
    moved[:10, 0, 0, 0] = 255 - moved[:10, 0, 0, 0]  # change the read pixel in 10 samples
    views = {"cue": base, "clean": ImageSet(base.images.clone(), base.labels, base.classes),
             "rand-cue": ImageSet(moved, base.labels, base.classes)}
    model = _ReadsCorner()
    got = invariance.agreement(model, views)
    pred = lambda d: model(normalize(d.images)).argmax(1)  # noqa: E731
    assert got["clean"] == 1.0
    assert got["rand-cue"] == pytest.approx(float((pred(views["rand-cue"]) == pred(base)).double().mean()))
    assert got["rand-cue"] < 1.0
    with pytest.raises(ConfigError, match="missing"):
        invariance.agreement(model, {"cue": base})
    with pytest.raises(ConfigError, match="same samples"):
        invariance.agreement(model, {**views, "clean": base.subset(slice(0, 20))})
