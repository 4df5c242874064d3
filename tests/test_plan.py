"""study.plan and `python -m cbft_core plan`: the work of a run, what is cached, the data, the time."""
from __future__ import annotations

import pytest
import torch

from cbft_core.errors import ConfigError
from cbft_core.presentation import cli
from cbft_core.study import cache, experiments, pipeline, plan, presets, replication, zoo
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
def test_cold_plan_is_the_workload_of_every_seed(empty_cache, name, cue):
    p = plan.make(name, cue)
    cfg = presets.get(name)
    w = replication.workload(cfg)
    assert p.work() == p.work(needed_only=False) == {k: int(v) * len(cfg.seeds) for k, v in w.items()}
    assert all(s.needed and not s.cached for s in p.steps)
    per_seed = [s for s in p.steps if s.seed == cfg.seeds[0]]
    # cue, nocue, cue100 (branch 0) and the second branches of nocue and cue
    assert sum(s.kind == "model" and s.name.startswith("child") for s in per_seed) == 5
    assert sum(s.name.startswith("view accuracies") for s in per_seed) == 3
    assert sum(s.name.startswith("path") for s in per_seed) == len(pipeline.PATH_PAIRS) == 4
    mid = next(s for s in per_seed if s.name == "midpoint cue-nocue")
    assert mid.kind == "model" and mid.epochs == cfg.midpoint_epochs
    assert mid.train_images == cfg.midpoint_epochs * (cfg.n_train // cfg.batch_size) * cfg.batch_size
    bezier = next(s for s in per_seed if s.name == "bezier path cue-nocue")
    assert bezier.kind == "measurement" and bezier.train_images == 0 and bezier.eval_images > 0
    assert sum(s.name.startswith("fine-tune") for s in per_seed) == len(experiments.FT_METHODS)
    parent = next(s for s in per_seed if s.name == "parent")
    assert parent.epochs == cfg.parent_epochs and parent.train_images == cfg.parent_epochs * cfg.n_train


def test_a_child_shared_by_two_names_is_planned_once(empty_cache):
    """With every training image cued, the cue and cue100 children are one model with one view entry."""
    p = plan.make("tiny", "box", [0], proportion=1.0)
    names = [s.name for s in p.steps]
    assert sum(n.startswith("child") for n in names) == 4 and names.count("child p=1 branch 0") == 1
    assert sum(n.startswith("view accuracies") for n in names) == 2
    w = replication.workload(presets.get("tiny", proportion=1.0))
    assert p.work() == {k: int(v) for k, v in w.items()}
    assert w["train"] < replication.workload(presets.get("tiny"))["train"]


def test_plan_after_a_run_reads_the_cache_and_follows_dependencies(empty_cache, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipeline.run("tiny", [0], tmp_path / "out", progress=False, **SMALL)
    finally:
        torch.set_num_threads(threads)
    cfg = presets.get("tiny", seeds=[0], **SMALL)
    warm = plan.make("tiny", "box", [0], **SMALL)
    assert all(s.cached and not s.needed for s in warm.steps)
    assert warm.work() == {"train": 0, "eval": 0}
    # max_batches caps an epoch's images: 2 batches of 64
    assert next(s for s in warm.steps if s.name == "parent").train_images == cfg.parent_epochs * 2 * cfg.batch_size

    names = {s.name for s in warm.steps}
    assert {"child p=1 branch 0", "view accuracies (cue100 model)", "path cue100-nocue", "midpoint cue-nocue",
            "bezier path cue-nocue"} <= names

    cache.entry_path("path", experiments.path_key(cfg, 0, "cue-nocue", "box", "bezier"), ".json").unlink()
    needed = {s.name for s in plan.make("tiny", "box", [0], **SMALL).steps if s.needed}
    assert needed == {"bezier path cue-nocue"}  # its midpoint and children are cached
    cache.entry_path("midpoint", experiments.midpoint_key(cfg, 0, "cue-nocue", "box"), ".pt").unlink()
    cache.entry_path("child-views", experiments.child_views_key(cfg, 0, 1.0, 0, "box"), ".json").unlink()
    needed = {s.name for s in plan.make("tiny", "box", [0], **SMALL).steps if s.needed}
    assert needed == {"bezier path cue-nocue", "midpoint cue-nocue", "view accuracies (cue100 model)"}
    pipeline.run("tiny", [0], tmp_path / "out", progress=False, **SMALL)  # recomputes just those
    assert all(s.cached and not s.needed for s in plan.make("tiny", "box", [0], **SMALL).steps)

    summary = cache.entry_path("finetune-summary", experiments.summary_key(cfg, 0, "cbft", cfg.n_clean), ".json")
    summary.unlink()
    needed = {s.name for s in plan.make("tiny", "box", [0], **SMALL).steps if s.needed}
    assert needed == {"summary cbft"}  # its fine-tuned model and the cue child are cached

    cache.entry_path("finetuned", experiments.finetuned_key(cfg, 0, "cbft", cfg.n_clean, "box"), ".pt").unlink()
    cache.entry_path(*zoo.model_entry(zoo.child_key(cfg, 0, "box", cfg.proportion, 0)), ".pt").unlink()
    p = plan.make("tiny", "box", [0], **SMALL)
    needed = {s.name for s in p.steps if s.needed}
    assert needed == {"summary cbft", "fine-tune cbft", f"child p={cfg.proportion:g} branch 0"}
    steps = {s.name: s for s in p.steps}
    assert p.work()["train"] == sum(steps[n].train_images for n in needed) > 0
    assert not steps["parent"].needed and steps["parent"].cached


def test_estimate_is_the_remaining_work_over_the_rate(empty_cache):
    p = plan.make("cpu", "box", [0, 1])
    w = p.work()
    assert plan.estimate_seconds(p, 2000.0) == pytest.approx((w["train"] + w["eval"] / 3.0) / 2000.0)
    hours = replication.estimate_hours(presets.get("cpu"), 2000.0, seeds=2)
    assert plan.estimate_seconds(p, 2000.0) == pytest.approx(hours * 3600)
    with pytest.raises(ConfigError, match="images_per_s"):
        plan.estimate_seconds(p, 0)


def test_measured_throughput_is_a_rate_of_the_presets_model():
    rate = plan.measure_throughput(presets.get("tiny"), "dominoes", seconds=0.3)
    assert rate.images_per_s > 0 and rate.batch_size == 32 and rate.device.startswith("cpu")
    assert rate.seconds > 0
    with pytest.raises(ConfigError, match="seconds"):
        plan.measure_throughput(presets.get("tiny"), seconds=-1)


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
    assert "300 training" in out and "training images/s, measured just now on cpu" in out
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
