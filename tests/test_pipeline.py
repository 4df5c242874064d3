"""The pipeline end to end at a very small scale: results.json schema, figures, and resuming from the cache."""
from __future__ import annotations

import json
import math

import pytest
import torch

from cbft_core.kernels import connectivity, finetune, models, train
from cbft_core.study import cache, claims, experiments, pipeline, presets, replication
from cbft_core.presentation import figures, tables
from cbft_core.errors import ConfigError

# tiny preset, shrunk further so two seeds of the whole study run in seconds
SMALL = dict(n_train=300, n_test=60, bn_images=32, eval_batch_size=60, n_clean=64, n_cue=64,
             max_batches=2, cbft_epochs=2, path_points=3)
SEEDS = [0, 1]
VIEWS = ["clean", "cue", "rand_cue", "rand_img"]


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One cold run into a fresh cache, then a second run that must only read it."""
    cache_dir = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("out")
    mp = pytest.MonkeyPatch()
    mp.setenv(cache.ENV_VAR, str(cache_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these tensors are tiny: one thread avoids OpenMP overhead on a busy machine
    # images through every model's features, with / without gradients; "midpoint": the training ones
    # seen while the midpoint trains (through functional_call on a template module)
    seen = {"train": 0, "eval": 0, "midpoint": 0}
    features = models.ConvNet.features
    train_midpoint = connectivity.train_midpoint

    def counting(self, x):
        seen["train" if torch.is_grad_enabled() else "eval"] += x.shape[0]
        return features(self, x)

    def counting_midpoint(*args, **kwargs):
        before = seen["train"]
        try:
            return train_midpoint(*args, **kwargs)
        finally:
            seen["midpoint"] += seen["train"] - before

    try:
        mp.setattr(models.ConvNet, "features", counting)
        mp.setattr(connectivity, "train_midpoint", counting_midpoint)
        first = pipeline.run("tiny", SEEDS, out, progress=False, **SMALL)
        mp.setattr(models.ConvNet, "features", features)
        mp.setattr(connectivity, "train_midpoint", train_midpoint)
        written = json.loads((out / "results.json").read_text())
        files_after_first = _files(cache_dir)

        def no_training(*args, **kwargs):
            raise AssertionError("the resumed run trained a model instead of reading the cache")

        mp.setattr(train, "fit", no_training)
        mp.setattr(finetune, "run", no_training)
        second = pipeline.run("tiny", SEEDS, out, progress=False, **SMALL)
        files_after_second = _files(cache_dir)
    finally:
        mp.undo()
        torch.set_num_threads(threads)
    return dict(first=first, written=written, second=second, out=out, cache_dir=cache_dir,
                files=(files_after_first, files_after_second), seen=seen)


def test_schema(study):
    res = study["written"]
    assert res == study["first"], "results.json holds exactly what run() returned"
    assert res["preset"] == "tiny" and res["cue"] == "box" and res["seeds"] == SEEDS
    assert math.isclose(res["chance"], 0.1)
    assert set(res) == {"preset", "cue", "seeds", "chance", "models", "paths", "quadratic", "finetune"}
    assert set(res["models"]) == {"cue", "nocue", "cue100"}
    assert set(res["paths"]) == {"cue-nocue", "nocue-nocue", "cue-cue", "cue100-nocue"}
    assert set(res["finetune"]) == set(experiments.FT_METHODS)
    for views in res["models"].values():
        assert set(views) == set(VIEWS)
    for method in res["finetune"].values():
        assert set(method) == set(VIEWS) | {"barrier_to_cue", "midpoint_loss_to_cue"}
    blocks = [*res["models"].values(), *res["paths"].values(), *res["finetune"].values()]
    for block in blocks:
        for key, values in block.items():
            assert isinstance(values, list) and len(values) == len(SEEDS), key
            assert all(isinstance(v, float) and math.isfinite(v) for v in values), key
            if key in VIEWS:
                assert all(0.0 <= v <= 1.0 for v in values), key
            if key in ("barrier", "barrier_to_cue"):
                assert all(v >= 0.0 for v in values), "Entezari barriers are >= 0 (0 at the endpoints)"


def test_seed_entries_match_experiments(study, monkeypatch):
    """Each list entry is that seed's own cached measurement, in the order of the seeds."""
    monkeypatch.setenv(cache.ENV_VAR, str(study["cache_dir"]))
    cfg = presets.get("tiny", seeds=SEEDS, **SMALL)
    res = study["written"]
    for i, seed in enumerate(SEEDS):
        summary = experiments.finetune_summary(cfg, seed, "cbft", progress=False)
        assert res["finetune"]["cbft"]["rand_img"][i] == summary["views"]["rand-img"]
        assert res["finetune"]["cbft"]["barrier_to_cue"][i] == summary["barrier_to_cue"]
        path = experiments.path_result(cfg, seed, "cue-nocue", progress=False)
        gap = path.loss["cue"] - ((1 - path.ts) * path.loss["cue"][0] + path.ts * path.loss["cue"][-1])
        assert math.isclose(res["paths"]["cue-nocue"]["barrier"][i], float(gap.max()), abs_tol=1e-12)
    losses = [tuple(experiments.path_result(cfg, s, "cue-nocue", progress=False).loss["cue"]) for s in SEEDS]
    assert losses[0] != losses[1], "the two seeds are different replicates"


def test_finetune_history_is_stored_with_the_model(study, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(study["cache_dir"]))
    monkeypatch.setattr(finetune, "run", lambda *a, **k: pytest.fail("history must come from the cache"))
    cfg = presets.get("tiny", seeds=SEEDS, **SMALL)
    hist = experiments.finetune_history(cfg, SEEDS[0], "cbft")
    steps = min(math.ceil(cfg.n_clean / cfg.ft_batch_size), cfg.max_batches)
    assert len(hist["clean_ce"]) == cfg.cbft_epochs and len(hist["t"]) == cfg.cbft_epochs * steps
    assert all(0.25 <= t <= 0.75 for t in hist["t"])
    assert len(experiments.finetune_history(cfg, SEEDS[0], "ft")["ft"]["loss"]) == cfg.ft_epochs


def test_resume_reads_the_cache(study):
    before, after = study["files"]
    assert before and before == after, "a resumed run writes no new cache entries"
    assert study["second"] == study["first"]
    assert not list(study["out"].glob(".*.tmp")), "no temporary files left behind"


def test_replication_table(study):
    res = study["written"]
    outcomes = claims.evaluate_all(res)
    assert [o.claim.id for o in outcomes] == list(claims.CLAIMS)  # a full results.json feeds every claim
    rows = claims.rows(outcomes)
    assert all(set(r) >= {"claim", "paper", "measured", "criterion", "verdict"} for r in rows)
    text = tables.to_markdown(rows)
    assert text.count("\n") == len(rows) + 1
    cbft = sum(res["finetune"]["cbft"]["rand_img"]) / len(SEEDS)
    th = claims.claim("cbft-removes-cue").thresholds
    expected = th["low_x_chance"] * res["chance"] <= cbft <= th["high_x_chance"] * res["chance"]
    assert claims.evaluate("cbft-removes-cue", res).holds is expected
    table = tables.method_table(res)
    assert [r["method"] for r in table] == [replication.NAMES[m] for m in experiments.FT_METHODS]


def test_workload_is_what_the_run_put_through_the_models(study):
    """The cold run's images, counted at every model's features (with gradients: training; without:
    evaluation), are the workload of each seed: five children, the midpoint, the linear and Bezier paths."""
    cfg = presets.get("tiny", **SMALL)
    predicted = replication.workload(cfg)
    seen = study["seen"]
    assert {k: seen[k] for k in ("train", "eval")} == {k: len(SEEDS) * int(v) for k, v in predicted.items()}
    # the midpoint's functional_call passes reach the count: full batches of the cue training data
    assert cfg.n_train > cfg.batch_size and cfg.n_train % cfg.batch_size
    assert seen["midpoint"] == len(SEEDS) * cfg.midpoint_epochs * (cfg.n_train // cfg.batch_size) * cfg.batch_size


def test_estimate_hours_from_the_workload():
    cfg = presets.get("tiny")
    w = replication.workload(cfg)
    assert math.isclose(replication.estimate_hours(cfg, 1000.0, seeds=2),
                        2 * (w["train"] + w["eval"] / 3) / 1000 / 3600)
    with pytest.raises(ConfigError, match="train_images_per_s"):
        replication.estimate_hours(cfg, 0)
    with pytest.raises(ConfigError, match="unknown fine-tuning method 'sgd'"):
        replication.finetune_train_images(cfg, "sgd")


def test_validate_rejects_bad_results(study):
    bad = json.loads(json.dumps(study["written"]))
    bad["finetune"]["ft"]["rand_img"] = [1.5, 0.1]
    with pytest.raises(ConfigError, match="finetune.ft.rand_img"):
        pipeline.validate(bad)
    bad = json.loads(json.dumps(study["written"]))
    bad["paths"]["cue-cue"]["barrier"] = [0.1]
    with pytest.raises(ConfigError, match="one per seed"):
        pipeline.validate(bad)


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="cue"):
        pipeline.run("tiny", [0], tmp_path, cue="stripes", progress=False)
    with pytest.raises(ConfigError, match="unknown preset setting"):
        pipeline.run("tiny", [0], tmp_path, progress=False, n_trian=10)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="out"):
        pipeline.run("tiny", [0], tmp_path / "file", progress=False)


def test_study_figures_written_from_results(study, tmp_path):
    written = figures.study_figures(study["first"], tmp_path)
    assert {p.name for p in written} == {"path_barriers.png", "finetune_views.png", "finetune_midpoint_loss.png"}
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
