"""Determinism of the whole study, and the paper preset end to end at smoke scale.

- The same seed gives a byte-identical results.json at the tiny preset when
  the study runs twice from empty caches on the same machine.
- The paper preset (VGG-13, CIFAR-10 under FashionMNIST Dominoes) runs end to
  end on the CPU with tiny overrides (two batches per epoch, width 1/8) on
  small files in torchvision's own formats (tests/torchvision_files.py): the
  real-data path, not a stand-in for it.
"""
from __future__ import annotations

import json

import torch

from cbft_core.study import cache, documents, pipeline, presets, zoo
from torchvision_files import trust_cifar_files, write_cifar10, write_idx_set

__all__ = ["trust_cifar_files"]  # a fixture, used by name

SMALL = dict(n_train=300, n_test=60, bn_images=32, eval_batch_size=60, n_clean=64, n_cue=64,
             max_batches=2, cbft_epochs=2, path_points=3)


def _run(tmp_path, name, monkeypatch, preset="tiny", **overrides):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / f"cache-{name}"))
    out = tmp_path / f"out-{name}"
    pipeline.run(preset, [0], out, progress=False, **overrides)
    return (out / "results.json").read_bytes()


def test_same_seed_gives_byte_identical_results(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = _run(tmp_path, "a", monkeypatch, **SMALL)
        second = _run(tmp_path, "b", monkeypatch, **SMALL)
    finally:
        torch.set_num_threads(threads)
    assert first == second
    assert json.loads(first)["seeds"] == [0]


def test_paper_preset_smoke(tmp_path, monkeypatch, trust_cifar_files):
    root = tmp_path / "data"
    written = write_cifar10(root, per_batch=60, n_test=60)
    write_idx_set(root, "FashionMNIST", n_train=60, n_test=20)
    monkeypatch.setenv("CBFT_DATA_DIR", str(root))
    monkeypatch.delenv("CBFT_DOWNLOAD", raising=False)  # tests never touch the network
    zoo._load_base.cache_clear()  # the in-process memo is keyed by name, not by data folder
    overrides = dict(width=0.125, max_batches=2, n_train=300, n_test=60, bn_images=60, eval_batch_size=60,
                     n_clean=128, n_cue=128, parent_epochs=1, child_epochs=1, midpoint_epochs=1,
                     ft_epochs=1, cbft_epochs=2, path_points=3, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache-paper"))
        pipeline.run("paper", [0], tmp_path / "out", cue="dominoes", progress=False, **overrides)
        cfg = presets.get("paper", **overrides)
        train_images = zoo.base_set(cfg, "train").images   # what the models were trained on
    finally:
        torch.set_num_threads(threads)
        zoo._load_base.cache_clear()
    assert torch.equal(train_images, torch.from_numpy(written["train"][0]))  # every CIFAR file, no stand-in
    results = documents.load(documents.RESULTS, tmp_path / "out")
    assert results["preset"] == "paper" and results["cue"] == "dominoes"
