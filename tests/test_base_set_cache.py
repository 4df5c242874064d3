"""Generated base sets kept on disk: read back identical, keyed by everything that changes the images."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cbft_core
from cbft_core.errors import CacheUnwritableError
from cbft_core.kernels import data
from cbft_core.kernels.data import ImageSet, shapes
from cbft_core.study import cache, codehash, steps, zoo

PACKAGE = Path(cbft_core.__file__).resolve().parent


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    zoo._load_base.cache_clear()
    yield tmp_path / "cache"
    zoo._load_base.cache_clear()


def _same(a: ImageSet, b: ImageSet) -> bool:
    return torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.classes == b.classes


def test_a_generated_set_is_stored_once_and_read_back_identical(fresh_cache, monkeypatch):
    made = zoo._load_base("shapes", "test", 40)
    assert _same(made, data.load_base("shapes", "test", n=40, seed=zoo.DATA_SEED))
    assert len(list((fresh_cache / "base-set").glob("*.pt"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("generated again instead of read from the cache")

    zoo._load_base.cache_clear()
    monkeypatch.setattr(data, "load_base", refuse)
    again = zoo._load_base("shapes", "test", 40)
    assert _same(again, made) and again.images.is_contiguous()
    with pytest.raises(AssertionError, match="generated again"):
        zoo._load_base("shapes", "test", 30)  # another n is another entry


def test_digits_are_stored_too(fresh_cache):
    digits = zoo._load_base("digits", "test", None)
    assert _same(digits, data.load_base("digits", "test"))
    assert len(list((fresh_cache / "base-set").glob("*.pt"))) == 1


def test_a_recipe_constant_set_at_run_time_is_a_new_entry(fresh_cache, monkeypatch):
    default = zoo._load_base("shapes", "train", 30)
    key = cache.config_key(zoo.base_set_key_document("shapes", "train", 30))
    monkeypatch.setattr(shapes, "PIXEL_NOISE", 0.3)
    zoo._load_base.cache_clear()
    assert cache.config_key(zoo.base_set_key_document("shapes", "train", 30)) != key
    noisier = zoo._load_base("shapes", "train", 30)
    assert _same(noisier, data.load_base("shapes", "train", n=30, seed=zoo.DATA_SEED))
    assert not torch.equal(noisier.images, default.images)


def test_an_edit_of_the_generator_is_a_new_entry_a_comment_is_not(package_copy):
    before = zoo.base_set_key_document("shapes", "train", 30)["code"]
    source = package_copy / "kernels" / "data" / "shapes.py"
    source.write_text(source.read_text() + "\n# a comment\n")
    codehash.clear()
    assert zoo.base_set_key_document("shapes", "train", 30)["code"] == before
    source.write_text(source.read_text().replace("def _disk(u, v):\n    return torch.hypot(u, v) - 0.9",
                                                 "def _disk(u, v):\n    return torch.hypot(u, v) - 0.8"))
    codehash.clear()
    assert zoo.base_set_key_document("shapes", "train", 30)["code"] != before


def test_downloaded_sets_are_not_copied(fresh_cache, monkeypatch):
    fake = ImageSet(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.arange(4), ("a", "b", "c", "d"))
    monkeypatch.setattr(data, "load_base", lambda *args, **kwargs: fake)
    assert zoo._load_base("cifar10", "test", None) is fake
    assert not (fresh_cache / "base-set").exists()


def test_the_steps_keys_do_not_hash_the_disk_copy():
    functions = codehash.code_of(steps.compute_child).functions
    assert "cbft_core.study.zoo._load_base" in functions
    assert not [f for f in functions if f.startswith(("cbft_core.study.cache", "cbft_core.study.codehash"))
                or f.endswith(("_on_disk", "base_set_key_document"))]


def test_a_cache_that_cannot_be_written_still_gives_the_set(fresh_cache, monkeypatch):
    """A shared read-only cache (the models readable, nothing writable): the set is generated, not stored."""
    def refuse(path, *args, **kwargs):
        raise CacheUnwritableError(f"cannot write to the cache folder {path} (read-only)")

    monkeypatch.setattr(cache, "save_model", refuse)
    made = zoo._load_base("shapes", "test", 20)
    assert _same(made, data.load_base("shapes", "test", n=20, seed=zoo.DATA_SEED))
    assert not list(fresh_cache.rglob("*.pt"))
