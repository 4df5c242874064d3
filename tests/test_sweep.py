"""Sweeps on a real local Ray cluster (2 CPUs, loopback, no dashboard) and on the local engine, at the tiny preset."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cbft_core.errors import ConfigError
from cbft_core.presentation import cli, figures
from cbft_core.study import cache, documents, graph, presets, sweep, zoo

ray = pytest.importorskip("ray")

# the tiny preset, shrunk further so that one unit takes seconds
SMALL = dict(n_train=300, n_test=60, bn_images=32, eval_batch_size=60, n_clean=64, n_cue=64, max_batches=2,
             cbft_epochs=2)
GRID = dict(preset="tiny", seeds=[0], proportions=[0.0, 0.8], cues=["box"], methods=["ft"])


def _cli_args(grid: dict, out: Path, engine: str) -> list[str]:
    args = ["sweep", "--preset", grid["preset"], "--seeds", *map(str, grid["seeds"]),
            "--proportions", *map(str, grid["proportions"]), "--cues", *grid["cues"],
            "--methods", *grid["methods"], "--engine", engine, "--out", str(out)]
    for name, value in SMALL.items():
        args += ["-p", name, str(value)]
    return args


@pytest.fixture(scope="module")
def cluster():
    """A real local Ray cluster for this module: 2 CPUs, loopback only, no dashboard; shut down afterwards."""
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="WARNING")
    # the units' test wrappers live in this module, which Ray's workers cannot import: ship it by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def _parent_files(cache_dir: Path) -> list[tuple[str, int]]:
    return sorted((p.name, p.stat().st_mtime_ns) for p in (cache_dir / "parent").glob("*.pt"))


@pytest.fixture(scope="module")
def swept(cluster, tmp_path_factory):
    """The same grid through the CLI's local engine and through the Ray engine, each into its own cache."""
    runs = {}
    mp = pytest.MonkeyPatch()
    try:
        for engine in ("local", "ray"):
            cache_dir, out = tmp_path_factory.mktemp(f"cache-{engine}"), tmp_path_factory.mktemp(f"out-{engine}")
            mp.setenv(cache.ENV_VAR, str(cache_dir))
            seen = tmp_path_factory.mktemp(f"seen-{engine}")
            if engine == "local":
                assert cli.main(_cli_args(GRID, out, "local")) == 0
            else:
                def watching(cfg, unit, methods, _cache=cache_dir, _seen=seen):
                    # what the parent's cache entry looked like when this unit started
                    (_seen / f"{unit.proportion}.json").write_text(json.dumps(_parent_files(_cache)))
                    return sweep.unit_results(cfg, unit, methods)

                sweep.run(**GRID, engine="ray", out=out, compute=watching, **SMALL)
            runs[engine] = dict(cache=cache_dir, out=out, seen=seen, parents=_parent_files(cache_dir))
    finally:
        mp.undo()
    return runs


def test_ray_and_local_engines_write_the_same_sweep_json(swept):
    local = (swept["local"]["out"] / "sweep.json").read_bytes()
    assert local == (swept["ray"]["out"] / "sweep.json").read_bytes()
    doc = documents.load(documents.SWEEP, swept["local"]["out"])
    assert doc["failed"] == {} and doc["proportions"] == [0.0, 0.8] and doc["methods"] == ["ft"]
    assert (swept["local"]["out"] / "sweep_box.png").stat().st_size > 0


def test_a_unit_measures_its_child_at_its_cue_proportion(swept, monkeypatch):
    """The stored accuracies are those of the cached child models, re-evaluated here."""
    monkeypatch.setenv(cache.ENV_VAR, str(swept["local"]["cache"]))
    doc = documents.load(documents.SWEEP, swept["local"]["out"])
    cfg = presets.get("tiny", proportion=0.8, **SMALL)
    threads = torch.get_num_threads()
    torch.set_num_threads(sweep.UNIT_THREADS)
    try:
        for p, name in ((0.8, "cue"), (0.0, "nocue")):
            model = graph.result(cfg, "child", seed=0, proportion=p, progress=False)
            acc = zoo.view_accuracies(model, zoo.test_views(cfg, "box"), cfg.eval_batch_size)
            assert doc["units"]["box"]["0.8"]["0"]["models"][name] == {k.replace("-", "_"): v for k, v in acc.items()}
    finally:
        torch.set_num_threads(threads)


def test_at_proportion_zero_the_cue_child_is_the_cue_free_child(swept):
    unit = documents.load(documents.SWEEP, swept["local"]["out"])["units"]["box"]["0.0"]["0"]
    assert unit["models"]["cue"] == unit["models"]["nocue"]
    assert abs(unit["barriers"]["cue-nocue"]) < 1e-6  # the path from a model to itself
    assert unit["barriers"]["cue-cue"] == pytest.approx(unit["barriers"]["nocue-nocue"], abs=1e-9)


def test_the_shared_parent_exists_before_any_unit_starts_and_is_written_once(swept):
    parents = swept["ray"]["parents"]
    assert len(parents) == 1  # one (cue, seed)
    seen = [json.loads(f.read_text()) for f in sorted(swept["ray"]["seen"].glob("*.json"))]
    assert len(seen) == 2
    for at_start in seen:
        assert [tuple(x) for x in at_start] == parents  # present, and never rewritten afterwards


def test_a_killed_worker_is_retried_and_the_sweep_completes(swept, monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENV_VAR, str(swept["ray"]["cache"]))
    attempts = tmp_path / "attempts"

    def blocks_first_time(cfg, unit, methods, _attempts=attempts):
        with open(_attempts, "a") as f:
            f.write(f"{os.getpid()}\n")
        if len(_attempts.read_text().split()) == 1:
            time.sleep(120)  # killed here
        return sweep.unit_results(cfg, unit, methods)

    def kill_first_attempt():
        deadline = time.time() + 90
        while time.time() < deadline:
            if attempts.exists() and attempts.read_text().strip():
                os.kill(int(attempts.read_text().split()[0]), signal.SIGKILL)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_first_attempt)
    killer.start()
    doc = sweep.run(**{**GRID, "proportions": [1.0]}, engine="ray", out=tmp_path / "out",
                    compute=blocks_first_time, **SMALL)
    killer.join()
    pids = attempts.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1], "the unit ran again in a new worker"
    assert doc["failed"] == {} and set(doc["units"]["box"]) == {"1.0"}


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_failing_unit_is_retried_then_named_while_the_rest_complete(swept, engine, monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENV_VAR, str(swept[engine]["cache"]))
    calls = tmp_path / "calls"

    def fails_at_half(cfg, unit, methods, _calls=calls):
        with open(_calls, "a") as f:
            f.write(f"{unit.name}\n")
        raise RuntimeError(f"no luck at p={unit.proportion}")

    doc = sweep.run(**{**GRID, "proportions": [0.0, 0.5, 0.8]}, engine=engine, out=tmp_path,
                    compute=fails_at_half, **SMALL)
    # p = 0 and 0.8 come from the cache (compute never ran for them); p = 0.5 ran MAX_ATTEMPTS times
    assert calls.read_text().split("\n")[:-1] == ["box p=0.5 seed 0"] * sweep.MAX_ATTEMPTS
    assert doc["failed"] == {"box p=0.5 seed 0": "RuntimeError: no luck at p=0.5"}
    assert set(doc["units"]["box"]) == {"0.0", "0.8"}
    assert documents.load(documents.SWEEP, tmp_path) == doc


def test_the_command_names_failed_units_and_exits_2(swept, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(cache.ENV_VAR, str(swept["local"]["cache"]))

    def fails(cfg, unit, methods):
        raise RuntimeError("out of luck")

    monkeypatch.setattr(sweep, "unit_results", fails)
    code = cli.main(_cli_args({**GRID, "proportions": [0.0, 0.3]}, tmp_path, "local"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "1 unit(s) failed after 3 attempts: box p=0.3 seed 0 (RuntimeError: out of luck)" in err[0]
    assert set(documents.load(documents.SWEEP, tmp_path)["units"]["box"]) == {"0.0"}


def _raylets() -> int:
    """How many Ray node managers run on this machine."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            count += b"raylet" in cmdline.read_bytes().split(b"\0")[0]
        except OSError:
            pass
    return count


def test_without_address_a_local_cluster_is_started_and_stopped(swept, tmp_path):
    """The command in a fresh process: it starts its own loopback cluster, runs the unit, stops the cluster."""
    before = _raylets()
    env = {**os.environ, cache.ENV_VAR: str(swept["ray"]["cache"])}
    proc = subprocess.run([sys.executable, "-m", "cbft_core",
                           *_cli_args({**GRID, "proportions": [0.0, 0.3]}, tmp_path, "ray"), "--workers", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 of 2 unit(s) from the cache" in proc.stdout and "[2/2] box p=0.3 seed 0: done" in proc.stdout
    assert set(documents.load(documents.SWEEP, tmp_path)["units"]["box"]) == {"0.0", "0.3"}
    assert _raylets() == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_address_is_one_clear_error(swept, capsys, tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    start = time.perf_counter()
    code = cli.main([*_cli_args(GRID, tmp_path / "out", "ray"), "--address", address])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: --address {address}: no Ray cluster")
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "out" / "sweep.json").exists()


@pytest.mark.parametrize("change, named", [
    ({"cues": ["box", "stripes"]}, "--cues: unknown value 'stripes'"),
    ({"proportions": [0.5, 1.5]}, "--proportions must be a finite number in [0, 1], got 1.5"),
    ({"proportions": [-0.1]}, "--proportions must be a finite number in [0, 1], got -0.1"),
    ({"seeds": [0, 0]}, "--seeds: 0 is listed twice"),
    ({"methods": ["ft", "magic"]}, "--methods: unknown value 'magic'"),
])
def test_an_invalid_grid_is_one_error_before_any_work(change, named, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(sweep, "execute", lambda *a, **k: pytest.fail("work started on an invalid grid"))
    code = cli.main(_cli_args({**GRID, **change}, tmp_path / "out", "ray"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and named in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_no_seeds_is_an_error(capsys, tmp_path):
    with pytest.raises(ConfigError, match="--seeds: give at least one seed"):
        sweep.make_grid("tiny", [], [0.8], ["box"])
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", "--preset", "tiny", "--seeds", "--proportions", "0.8", "--cues", "box",
                  "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_grid_settings_cannot_be_overridden():
    with pytest.raises(ConfigError, match="'proportion' is set by the grid"):
        sweep.make_grid("tiny", [0], [0.8], ["box"], proportion=0.5)


def test_sweep_json_is_checked_on_read(swept, tmp_path):
    doc = json.loads((swept["local"]["out"] / "sweep.json").read_text())
    path = tmp_path / "sweep.json"

    def broken(change) -> str:
        bad = json.loads(json.dumps(doc))
        change(bad)
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError) as exc:
            documents.load(documents.SWEEP, path)
        assert str(exc.value).startswith(f"{path}: ") and "\n" not in str(exc.value)
        return str(exc.value)

    def resealed(change):
        def apply(d):
            change(d)
            d["checksum"] = documents.checksum(d)
        return apply

    assert "checksum mismatch" in broken(lambda d: d["units"]["box"]["0.8"]["0"]["barriers"].update({"cue-cue": 9.0}))
    assert "not a valid sweep.json at units/box/0.8/0/models/cue/rand_img: 1.5 is greater than the maximum" in broken(
        resealed(lambda d: d["units"]["box"]["0.8"]["0"]["models"]["cue"].update({"rand_img": 1.5})))
    assert "at units: unit box p=0.8 seed 0 is neither stored nor failed" in broken(
        resealed(lambda d: d["units"]["box"].pop("0.8")))
    other = {**doc, "format": "other"}
    other["checksum"] = documents.checksum(other)
    with pytest.raises(ConfigError, match="sweep.json: not a valid sweep.json at format"):
        documents.write(documents.SWEEP, tmp_path, other)


def test_sweep_figure_plots_the_mean_and_spread_over_seeds(swept, tmp_path):
    """Three seeds made from the stored unit by shifting its numbers; the figure's lines are their means."""
    stored = documents.load(documents.SWEEP, swept["local"]["out"])
    grid = sweep.make_grid("tiny", [0, 1, 2], [0.0, 0.8], ["box"], ["ft"], **SMALL)
    results = {}
    for unit in grid.units():
        base = json.loads(json.dumps(stored["units"]["box"][sweep.proportion_key(unit.proportion)]["0"]))
        base["barriers"]["cue-nocue"] += 0.1 * unit.seed
        base["models"]["cue"]["rand_img"] = 0.2 + 0.3 * unit.seed
        results[unit] = base
    doc = sweep.assemble(grid, results, {})
    fig = figures.sweep_figure(doc)
    left, right = fig.axes
    lines = {line.get_label(): line for line in left.lines + right.lines}
    for p_index, p in enumerate(grid.proportions):
        cue_nocue = [results[u]["barriers"]["cue-nocue"] for u in grid.units() if u.proportion == p]
        assert lines["cue-nocue"].get_ydata()[p_index] == pytest.approx(np.mean(cue_nocue))
    np.testing.assert_allclose(lines["cue child"].get_ydata(), [0.5, 0.5])
    np.testing.assert_allclose(lines["cue child"].get_xdata(), [0.0, 0.8])
    _, mean, std = sweep.series(doc, "box", "models", "cue", "rand_img")
    np.testing.assert_allclose(std, np.std([0.2, 0.5, 0.8]))
    documents.write(documents.SWEEP, tmp_path, doc)
    assert [p.name for p in figures.sweep_figures(documents.load(documents.SWEEP, tmp_path), tmp_path)] == [
        "sweep_box.png"]
    assert len(figures.sweep_figure(tmp_path / "sweep.json").axes) == 2


@pytest.mark.parametrize("device, cluster_gpus, expected", [
    ("cpu", 8, 0), ("cuda", 0, 1), ("auto", 0, 0), ("auto", 4, 1),
])
def test_a_unit_takes_one_gpu_when_the_preset_uses_one(device, cluster_gpus, expected):
    class Cluster:
        @staticmethod
        def cluster_resources():
            return {"CPU": 16.0, **({"GPU": float(cluster_gpus)} if cluster_gpus else {})}

    assert sweep._gpus_per_unit(Cluster, presets.get("tiny", device=device)) == expected


@pytest.mark.parametrize("address", ["nonsense", "10.0.0.1", "host:port"])
def test_a_malformed_address_is_one_clear_error(address):
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        sweep._probe(address)


@pytest.mark.parametrize("proportions", [[0.0, 0.8], [0.8, 1.0, 0.3]])
def test_shared_tasks_are_the_nodes_two_units_consume(proportions):
    """Derived from the graph, not listed: the parent, the cue-free children, their view accuracies and barrier."""
    grid = sweep.make_grid("tiny", [0, 1], proportions, ["box"], ["ft", "cbft"], **SMALL)
    shared = sweep.shared_nodes(grid, grid.units())
    assert set(shared) == {("box", 0), ("box", 1)}
    for (cue, seed), found in shared.items():
        assert [graph.label(n) for _, n in found] == ["parent", "child p=0 branch 0", "view accuracies p=0",
                                                      "child p=0 branch 1", "path nocue-nocue"]
        assert all(n.seed == seed for _, n in found)
    single = sweep.make_grid("tiny", [0], [0.8], ["box"], ["ft"], **SMALL)
    assert sweep.shared_nodes(single, single.units()) == {("box", 0): []}  # one unit shares nothing


def test_a_unit_without_fine_tuning_feeds_the_claims_at_each_proportion():
    """The cue-proportion study of chapter 6: units with no method, read back per proportion as claims' results."""
    from cbft_core.study import claims

    grid = sweep.make_grid("tiny", [0, 1], [0.6, 1.0], ["box"], methods=(), **SMALL)
    results = {u: graph.result(grid.unit_cfg(u), "unit", seed=u.seed, cue=u.cue, methods=(), progress=False)
               for u in grid.units()}
    assert all(r["finetune"] == {} for r in results.values())
    doc = sweep.assemble(grid, results, {})
    at = sweep.results_at(doc, "box", 1.0)
    assert at["seeds"] == [0, 1] and "finetune" not in at
    assert at["paths"]["cue-nocue"]["barrier"] == [results[sweep.Unit("box", 1.0, s)]["barriers"]["cue-nocue"]
                                                   for s in (0, 1)]
    assert at["models"]["cue"]["rand_img"] == [results[sweep.Unit("box", 1.0, s)]["models"]["cue"]["rand_img"]
                                               for s in (0, 1)]
    outcomes = claims.evaluate_all(at, ["cue-reliance", "mechanism-barrier"])
    assert [o.verdict for o in outcomes] == ["not checked", "not checked"]
    with pytest.raises(ConfigError, match="no unit"):
        sweep.results_at(doc, "box", 0.7)
