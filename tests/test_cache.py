"""Tests of cbft_core.study.cache: keys, atomic checksummed checkpoints, corruption, kill-safety."""
from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from cbft_core.study import cache
from cbft_core.errors import CacheCorruptError, ConfigError


def payload(i: int, n: int = 1000) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(i)
    return {"w": torch.randn(n, generator=g), "b": torch.arange(7) * i, "step": torch.tensor(i)}


def assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "env"))
    assert cache.cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert cache.cache_dir() == tmp_path / "env"
    monkeypatch.delenv(cache.ENV_VAR)
    assert cache.cache_dir() == Path.home() / ".cache" / "cbft_core"


def test_config_key_canonical_and_sensitive():
    a = cache.config_key({"lr": 0.1, "epochs": 3, "nested": {"x": [1, 2]}})
    b = cache.config_key({"nested": {"x": [1, 2]}, "epochs": 3, "lr": 0.1})
    assert a == b and len(a) == 64
    assert cache.config_key({"lr": 0.1, "epochs": 4, "nested": {"x": [1, 2]}}) != a
    assert cache.config_key({"lr": 0.1, "epochs": 3, "nested": {"x": [2, 1]}}) != a
    assert cache.config_key({"epochs": 3}) != cache.config_key({"epochs": 3.0})  # 3 and 3.0 differ in JSON


def test_config_key_rejects_unserialisable():
    with pytest.raises(ConfigError, match="config"):
        cache.config_key({"x": object()})
    with pytest.raises(ConfigError, match="config"):
        cache.config_key({"x": float("nan")})
    with pytest.raises(ConfigError, match="config"):
        cache.config_key([1, 2])


def test_save_load_roundtrip(tmp_path):
    state = payload(3)
    path = cache.save_model(tmp_path / "d" / "m.pt", state, {"epochs": 2, "name": "x"})
    loaded, meta = cache.load_model(path)
    assert_state_equal(loaded, state)
    assert meta == {"epochs": 2, "name": "x"}
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp files left behind


def test_flipped_byte_and_truncation_detected(tmp_path):
    path = cache.save_model(tmp_path / "m.pt", payload(1), {"i": 1})
    raw = path.read_bytes()
    rng = random.Random(0)
    for pos in [0, 12, 45, len(raw) // 2, len(raw) - 1] + [rng.randrange(len(raw)) for _ in range(5)]:
        bad = bytearray(raw)
        bad[pos] ^= 0x40
        path.write_bytes(bytes(bad))
        with pytest.raises(CacheCorruptError):
            cache.load_model(path)
    for cut in (0, 5, 50, len(raw) // 3, len(raw) - 1):
        path.write_bytes(raw[:cut])
        with pytest.raises(CacheCorruptError):
            cache.load_model(path)
    path.write_bytes(raw + b"\0")
    with pytest.raises(CacheCorruptError):
        cache.load_model(path)
    with pytest.raises(FileNotFoundError):
        cache.load_model(tmp_path / "absent.pt")


def test_json_roundtrip_and_corruption(tmp_path):
    obj = {"acc": [0.5, 0.25], "name": "ft", "n": 3}
    path = cache.save_json(tmp_path / "r.json", obj)
    assert cache.load_json(path) == obj
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CacheCorruptError):
        cache.load_json(path)
    with pytest.raises(ConfigError, match="obj"):
        cache.save_json(tmp_path / "x.json", {"a": object()})


def test_cached_hits_recomputes_and_discards_corrupt(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return payload(len(calls))

    cfg = {"model": "cnn", "seed": 0}
    key = cache.config_key(cfg)
    first = cache.cached("model", key, compute, meta=cfg, cache_dir=tmp_path)
    again = cache.cached("model", key, compute, meta=cfg, cache_dir=tmp_path)
    assert len(calls) == 1
    assert_state_equal(again, first)
    path = cache.entry_path("model", key, ".pt", tmp_path)
    assert path == tmp_path / "model" / f"{key}.pt"
    _, meta = cache.load_model(path)
    assert meta == {**cfg, "kind": "model", "key": key}

    raw = bytearray(path.read_bytes())
    raw[-10] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="discarding corrupt cache entry"):
        third = cache.cached("model", key, compute, cache_dir=tmp_path)
    assert len(calls) == 2
    assert_state_equal(third, payload(2))
    assert_state_equal(cache.load_model(path)[0], payload(2))

    cache.cached("model", cache.config_key({"model": "cnn", "seed": 1}), compute, cache_dir=tmp_path)
    assert len(calls) == 3


def test_cached_ignores_stale_temp_files(tmp_path):
    key = cache.config_key({"k": 1})
    path = cache.entry_path("res", key, ".json", tmp_path)
    path.parent.mkdir(parents=True)
    (path.parent / f".{path.name}.abc.tmp").write_text('{"stale": true}')  # a killed writer's leftover
    assert cache.cached_json("res", key, lambda: {"fresh": 1}, cache_dir=tmp_path) == {"fresh": 1}
    assert cache.cached_json("res", key, lambda: {"never": 1}, cache_dir=tmp_path) == {"fresh": 1}


def test_cached_rejects_bad_kind_and_module(tmp_path):
    key = cache.config_key({})
    with pytest.raises(ConfigError, match="kind"):
        cache.cached("../up", key, dict, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="compute"):
        cache.cached("m", key, lambda: torch.nn.Linear(2, 2), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="key must be a sha256 hex string"):
        cache.cached("m", "../../etc", dict, cache_dir=tmp_path)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_killed_writer_never_leaves_a_wrong_checkpoint(tmp_path):
    """SIGKILL a process that rewrites a ~4 MB checkpoint in a loop at random moments.

    Every later load returns one of the complete payloads (matching its meta),
    or the entry is absent, or the corruption is detected; never wrong tensors.
    """
    payloads = [payload(i, n=1_000_000) for i in range(4)]
    path = tmp_path / "ckpt.pt"
    rng = random.Random(1234)
    outcomes = {"ok": 0, "absent": 0, "corrupt": 0}
    for trial in range(24):
        if trial % 6 == 0 and path.exists():
            path.unlink()  # also cover kills of a first write
        pid = os.fork()
        if pid == 0:  # child: rewrite forever until killed
            try:
                j = trial
                while True:
                    cache.save_model(path, payloads[j % 4], {"i": j % 4})
                    j += 1
            finally:
                os._exit(1)
        if trial % 6:  # kill a rewrite: wait (however loaded the machine) for the first write to land
            deadline = time.monotonic() + 30
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.12))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status)
        try:
            state, meta = cache.load_model(path)
        except FileNotFoundError:
            outcomes["absent"] += 1
            continue
        except CacheCorruptError:
            outcomes["corrupt"] += 1
            continue
        assert_state_equal(state, payloads[meta["i"]])
        outcomes["ok"] += 1
    assert outcomes["ok"] >= 8, outcomes
    # a temp file is never given the final name, and never read by a load
    assert all(p.name == "ckpt.pt" or p.name.endswith(".tmp") for p in tmp_path.iterdir())
