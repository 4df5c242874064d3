"""study.plan and `python -m cbft_core plan`: the work of a run, what is cached, the data, the time."""
from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from cbft_core.errors import ConfigError
from cbft_core.presentation import cli
from cbft_core.study import cache, graph, pipeline, plan, presets, steps
from torchvision_files import trust_cifar_files, write_cifar10, write_idx_set

__all__ = ["trust_cifar_files"]  # a fixture, used by name

SMALL = dict(n_train=300, n_test=60, bn_images=32, eval_batch_size=60, n_clean=64, n_cue=64,
             max_batches=2, cbft_epochs=2, path_points=3)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("name", presets.PRESET_NAMES)
@pytest.mark.parametrize("cue", ["box", "dominoes"])
def test_cold_plan_lists_every_stored_node_of_every_seed(empty_cache, name, cue):
    p = plan.make(name, cue)
    cfg = presets.get(name)
    assert p.work() == p.work(needed_only=False) == {k: v * len(cfg.seeds) for k, v in plan.workload(cfg, cue).items()}
    assert all(r.needed and not r.cached for r in p.rows)
    per_seed = [r for r in p.rows if r.seed == cfg.seeds[0]]
    # cue, nocue, cue100 (branch 0) and the second branches of nocue and cue
    assert sum(r.kind == "model" and r.name.startswith("child") for r in per_seed) == 5
    assert sum(r.name.startswith("view accuracies") for r in per_seed) == 3
    assert sum(r.name.startswith("path") for r in per_seed) == len(steps.PATH_PAIRS) == 4
    mid = next(r for r in per_seed if r.name == "midpoint cue-nocue")
    assert mid.kind == "model" and mid.epochs == cfg.midpoint_epochs
    assert mid.train_images == cfg.midpoint_epochs * cfg.n_train  # every epoch sees the whole training set
    bezier = next(r for r in per_seed if r.name == "bezier path cue-nocue")
    assert bezier.kind == "measurement" and bezier.train_images == 0
    assert bezier.forward_images == cfg.switch_points * (min(cfg.bn_images, cfg.n_train) + 4 * cfg.n_test)
    assert sum(r.name.startswith("fine-tune") for r in per_seed) == 6
    parent = next(r for r in per_seed if r.name == "parent")
    assert parent.epochs == cfg.parent_epochs and parent.train_images == cfg.parent_epochs * cfg.n_train


def test_a_child_shared_by_two_names_is_planned_once(empty_cache):
    """With every training image cued, the cue and cue100 children are one model with one view entry."""
    p = plan.make("tiny", "box", [0], proportion=1.0)
    names = [r.name for r in p.rows]
    assert sum(n.startswith("child") for n in names) == 4 and names.count("child p=1 branch 0") == 1
    assert sum(n.startswith("view accuracies") for n in names) == 2
    one_child = presets.get("tiny").n_train * presets.get("tiny").child_epochs
    assert plan.workload(presets.get("tiny"))["train"] - p.work()["train"] == one_child


def _delete(cfg, step: str, **params) -> None:
    n = graph.node(cfg, step, **params)
    suffix = ".pt" if graph.STEPS[step].store == "model" else ".json"
    cache.entry_path(step, graph.key(cfg, n), suffix).unlink()


def test_plan_after_a_run_reads_the_cache_and_follows_dependencies(empty_cache, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipeline.run("tiny", [0], tmp_path / "out", progress=False, **SMALL)
    finally:
        torch.set_num_threads(threads)
    cfg = presets.get("tiny", seeds=[0], **SMALL)
    warm = plan.make("tiny", "box", [0], **SMALL)
    assert all(r.cached and not r.needed for r in warm.rows)
    assert warm.work() == {"train": 0, "forward": 0}
    # max_batches caps an epoch's images: 2 batches of 64
    assert next(r for r in warm.rows if r.name == "parent").train_images == cfg.parent_epochs * 2 * cfg.batch_size

    names = {r.name for r in warm.rows}
    assert {"child p=1 branch 0", "view accuracies p=1", "path cue100-nocue", "midpoint cue-nocue",
            "bezier path cue-nocue"} <= names

    def needed() -> set[str]:
        return {r.name for r in plan.make("tiny", "box", [0], **SMALL).rows if r.needed}

    _delete(cfg, "path", seed=0, pair="cue-nocue", curve="bezier")
    assert needed() == {"bezier path cue-nocue"}  # its midpoint and children are cached
    _delete(cfg, "midpoint", seed=0, pair="cue-nocue")
    _delete(cfg, "child-views", seed=0, proportion=1.0)
    assert needed() == {"bezier path cue-nocue", "midpoint cue-nocue", "view accuracies p=1"}
    pipeline.run("tiny", [0], tmp_path / "out", progress=False, **SMALL)  # recomputes just those
    assert all(r.cached and not r.needed for r in plan.make("tiny", "box", [0], **SMALL).rows)

    _delete(cfg, "finetune-summary", seed=0, method="cbft")
    assert needed() == {"summary cbft (n=64)"}  # its fine-tuned model and the cue child are cached

    _delete(cfg, "finetuned", seed=0, method="cbft")
    _delete(cfg, "child", seed=0)
    p = plan.make("tiny", "box", [0], **SMALL)
    assert {r.name for r in p.rows if r.needed} == {"summary cbft (n=64)", "fine-tune cbft (n=64)",
                                                   f"child p={cfg.proportion:g} branch 0"}
    rows = {r.name: r for r in p.rows}
    assert p.work()["train"] == sum(rows[n].train_images for n in rows if rows[n].needed) > 0
    assert not rows["parent"].needed and rows["parent"].cached
    _delete(cfg, "child", seed=0, proportion=0.0)  # a model whose consumers are all cached is not retrained
    assert not next(r for r in plan.make("tiny", "box", [0], **SMALL).rows if r.name == "child p=0 branch 0").needed


def test_estimate_divides_each_kind_of_image_by_its_own_rate(empty_cache):
    p = plan.make("cpu", "box", [0, 1])
    w = p.work()
    rate = plan.Throughput(train_per_s=2000.0, forward_per_s=8000.0, train_batch=128, forward_batch=1000,
                           device="cpu", seconds=1.0)
    assert plan.estimate_seconds(p, rate) == pytest.approx(w["train"] / 2000.0 + w["forward"] / 8000.0)
    per_seed = plan.workload(presets.get("cpu"))
    assert w == {k: 2 * v for k, v in per_seed.items()}
    with pytest.raises(ConfigError, match="train_per_s"):
        plan.estimate_seconds(p, dataclasses.replace(rate, train_per_s=0.0))


def test_measured_throughput_is_a_steady_rate_at_the_presets_batches():
    cfg = presets.get("tiny")
    start = time.perf_counter()
    rate = plan.measure_throughput(cfg, "dominoes", seconds=1.0)
    assert time.perf_counter() - start < 10
    assert (rate.train_batch, rate.forward_batch) == (cfg.batch_size, cfg.eval_batch_size)
    assert 0 < rate.train_per_s < rate.forward_per_s  # a forward pass is cheaper than a training step
    assert rate.device.startswith("cpu") and 0.5 <= rate.seconds < 10
    with pytest.raises(ConfigError, match="seconds"):
        plan.measure_throughput(cfg, seconds=-1)


def test_data_presence(tmp_path, monkeypatch, trust_cifar_files):
    monkeypatch.setenv("CBFT_DATA_DIR", str(tmp_path / "data"))
    p = plan.make("paper", "dominoes")
    assert p.missing_data == ("cifar10", "fashionmnist")
    write_cifar10(tmp_path / "data")
    p = plan.make("paper", "dominoes")
    assert p.missing_data == ("fashionmnist",)
    write_idx_set(tmp_path / "data", "FashionMNIST")
    assert plan.make("paper", "dominoes").missing_data == ()
    assert plan.make("paper", "box").data[0].root == str(tmp_path / "data")
    assert [(d.name, d.root) for d in plan.make("tiny", "dominoes").data] == [("shapes", ""), ("digits", "")]


def test_cli_plan_prints_the_table_data_and_time(empty_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CBFT_DATA_DIR", str(tmp_path / "nothing"))
    assert cli.main(["plan", "--preset", "paper", "--cue", "dominoes", "--seeds", "4", "--no-measure"]) == 0
    out = capsys.readouterr().out
    assert "preset paper, cue dominoes, seed(s) 4" in out and "model vgg13" in out
    assert "fine-tune cbft" in out and "path cue-nocue" in out
    assert "cifar10 (base) MISSING" in out and "fashionmnist (dominoes top) MISSING" in out
    assert "python -m cbft_core plan --preset paper --cue dominoes --fetch" in out
    assert "time:" not in out  # no measurement asked for
    assert cli.main(["plan", "--preset", "tiny", "-p", "n_train", "300"]) == 0
    out = capsys.readouterr().out
    assert "300 training" in out and "forward images/s, measured just now on cpu" in out
    assert cli.main(["plan", "--preset", "tiny", "-p", "proportion", "7"]) == 2
    assert "proportion" in capsys.readouterr().err


def test_cli_fetch_downloads_only_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CBFT_DATA_DIR", str(tmp_path / "data"))
    fetched = []
    monkeypatch.setattr("cbft_core.kernels.data.fetch", fetched.append)  # no network in tests
    write_idx_set(tmp_path / "data", "FashionMNIST")
    assert cli.main(["plan", "--preset", "paper", "--cue", "dominoes", "--fetch", "--no-measure"]) == 0
    assert fetched == ["cifar10"]
    assert "fetching cifar10 into" in capsys.readouterr().out


def test_run_prints_the_plan_before_it_trains(empty_cache, tmp_path, monkeypatch, capsys):
    def fake_run(*args, **kwargs):
        assert "plan: preset tiny, cue box, seed(s) 3" in capsys.readouterr().out
        raise ConfigError("stopped after the plan")

    monkeypatch.setattr(pipeline, "run", fake_run)
    assert cli.main(["run", "--preset", "tiny", "--seeds", "3", "--out", str(tmp_path / "o")]) == 2


def test_book_prints_the_plan_before_the_chapters(empty_cache, tmp_path, monkeypatch, capsys):
    def fake_execute(*args, **kwargs):
        assert "plan: preset tiny, cue box" in capsys.readouterr().out
        raise ConfigError("stopped after the plan")

    monkeypatch.setattr(cli, "_execute_timed", fake_execute)
    assert cli.main(["book", "--preset", "tiny", "--out", str(tmp_path / "o"), "--quiet"]) == 2
