"""The pipeline end to end at a very small scale: results.json schema, figures, and resuming from the cache."""
from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch

from cbft_core.kernels import cbft, finetune, train
from cbft_core.study import cache, claims, documents, graph, pipeline, presets, replication, steps
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
    try:
        first = pipeline.run("tiny", SEEDS, out, progress=False, **SMALL)
        written = json.loads((out / "results.json").read_text())
        files_after_first = _files(cache_dir)

        def no_training(*args, **kwargs):
            raise AssertionError("the resumed run trained a model instead of reading the cache")

        mp.setattr(train.Updater, "update", no_training)  # every training loop's one update step
        second = pipeline.run("tiny", SEEDS, out, progress=False, **SMALL)
        files_after_second = _files(cache_dir)
    finally:
        mp.undo()
        torch.set_num_threads(threads)
    return dict(first=first, written=written, second=second, out=out, cache_dir=cache_dir,
                files=(files_after_first, files_after_second))


def test_schema(study):
    res = study["written"]
    assert res == study["first"], "results.json holds exactly what run() returned"
    assert res["preset"] == "tiny" and res["cue"] == "box" and res["seeds"] == SEEDS
    assert math.isclose(res["chance"], 0.1)
    assert set(res) == {"format", "preset", "cue", "seeds", "chance", "models", "paths", "quadratic", "finetune",
                        "checksum"}
    assert res["checksum"] == hashlib.sha256(json.dumps({k: v for k, v in res.items() if k != "checksum"},
                                                        sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert set(res["models"]) == {"cue", "nocue", "cue100"}
    assert set(res["paths"]) == {"cue-nocue", "nocue-nocue", "cue-cue", "cue100-nocue"}
    assert set(res["finetune"]) == set(steps.FT_METHODS)
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


def test_seed_entries_are_the_registry_nodes(study, monkeypatch):
    """Each list entry is that seed's own cached measurement, in the order of the seeds."""
    monkeypatch.setenv(cache.ENV_VAR, str(study["cache_dir"]))
    cfg = presets.get("tiny", seeds=SEEDS, **SMALL)
    res = study["written"]
    for i, seed in enumerate(SEEDS):
        summary = graph.result(cfg, "finetune-summary", seed=seed, method="cbft", progress=False)
        assert res["finetune"]["cbft"]["rand_img"][i] == summary["views"]["rand-img"]
        assert res["finetune"]["cbft"]["barrier_to_cue"][i] == summary["barrier_to_cue"]
        path = graph.result(cfg, "path", seed=seed, pair="cue-nocue", progress=False)
        gap = path.loss["cue"] - ((1 - path.ts) * path.loss["cue"][0] + path.ts * path.loss["cue"][-1])
        assert math.isclose(res["paths"]["cue-nocue"]["barrier"][i], float(gap.max()), abs_tol=1e-12)
    losses = [tuple(graph.result(cfg, "path", seed=s, pair="cue-nocue", progress=False).loss["cue"]) for s in SEEDS]
    assert losses[0] != losses[1], "the two seeds are different replicates"


def test_finetune_history_is_stored_with_the_model(study, monkeypatch):
    """One cache entry holds the fine-tuned model and its history: reading both trains nothing."""
    monkeypatch.setenv(cache.ENV_VAR, str(study["cache_dir"]))
    for kernel in (finetune, cbft):
        monkeypatch.setattr(kernel, "run", lambda *a, **k: pytest.fail("history must come from the cache"))
    cfg = presets.get("tiny", seeds=SEEDS, **SMALL)
    tuned = graph.result(cfg, "finetuned", seed=SEEDS[0], method="cbft", progress=False)
    assert isinstance(tuned.model, torch.nn.Module) and not tuned.model.training
    assert tuned.history["method"] == "cbft" and len(tuned.history["clean_ce"]) == cfg.cbft_epochs
    assert all(0.25 <= t <= 0.75 for t in tuned.history["t"])
    ft = graph.result(cfg, "finetuned", seed=SEEDS[0], method="ft", progress=False).history
    assert len(ft["ft"]["loss"]) == cfg.ft_epochs
    assert not (study["cache_dir"] / "finetune-history").exists()


def test_resume_reads_the_cache(study):
    before, after = study["files"]
    assert before and before == after, "a resumed run writes no new cache entries"
    assert study["second"] == study["first"]
    assert not list(study["out"].glob(".*.tmp")), "no temporary files left behind"


def test_replication_table(study):
    res = study["written"]
    outcomes = claims.evaluate_all(res)
    # a full results.json feeds every claim but chapter 1's, which read the models trained from scratch
    assert [o.claim.id for o in outcomes] == [i for i, c in claims.CLAIMS.items() if c.needs != ("lmc",)]
    rows = claims.rows(outcomes)
    assert all(set(r) >= {"claim", "paper", "measured", "criterion", "verdict"} for r in rows)
    text = tables.to_markdown(rows)
    assert text.count("\n") == len(rows) + 1
    cbft = sum(res["finetune"]["cbft"]["rand_img"]) / len(SEEDS)
    th = claims.claim("cbft-removes-cue").thresholds
    expected = th["low_x_chance"] * res["chance"] <= cbft <= th["high_x_chance"] * res["chance"]
    assert claims.evaluate("cbft-removes-cue", res).holds is None  # the tiny preset gets no verdict
    assert claims.evaluate("cbft-removes-cue", {**res, "preset": "cpu"}).holds is expected
    table = tables.method_table(res)
    assert [r["method"] for r in table] == [replication.NAMES[m] for m in steps.FT_METHODS]


def test_validate_rejects_bad_results(study):
    bad = json.loads(json.dumps(study["written"]))
    bad["finetune"]["ft"]["rand_img"] = [1.5, 0.1]
    with pytest.raises(ConfigError, match="checksum mismatch"):
        documents.validate(documents.RESULTS, bad)
    with pytest.raises(ConfigError, match="at finetune/ft/rand_img/0: 1.5 is greater than the maximum of 1"):
        documents.validate(documents.RESULTS, documents.complete(documents.RESULTS, bad))
    bad = json.loads(json.dumps(study["written"]))
    bad["paths"]["cue-cue"]["barrier"] = [0.1]
    with pytest.raises(ConfigError, match="at paths/cue-cue/barrier: expected a list of 2 numbers .one per seed."):
        documents.validate(documents.RESULTS, documents.complete(documents.RESULTS, bad))


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
