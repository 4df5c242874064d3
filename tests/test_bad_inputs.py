"""The catalogue of bad inputs: each one ends in a typed error that names the problem.

One test per entry (the ids below). Every error is a ValueError,
FileNotFoundError or a cbft_core error class, and its message names the
offending argument or entry; none is a deep traceback from inside torch.
"""
from __future__ import annotations

import errno
import json
from pathlib import Path
from unittest import mock

import pytest
import torch

from cbft_core.kernels import cbft, connectivity, data, finetune, models, paths, train
from cbft_core.kernels.optim import SGDConfig
from cbft_core.study import cache, documents, graph, pipeline, presets, steps
from cbft_core.kernels.data.imageset import ImageSet
from cbft_core.errors import (CacheCorruptError, CacheUnwritableError, ConfigError,
                              DataUnavailableError)


KEY = cache.config_key({"i": 0})


def tiny_set(n: int = 20, classes: int = 10, h: int = 32, w: int = 32) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)
    return ImageSet(images, torch.arange(n) % classes, tuple(str(i) for i in range(classes)))


def cnn(classes: int = 10, width: float = 0.25) -> torch.nn.Module:
    return models.build("cnn", classes, width=width)


def corrupt_checkpoint(tmp: Path) -> None:
    path = tmp / "model.pt"
    cache.save_model(path, {"w": torch.ones(3)}, {"kind": "test"})
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    cache.load_model(path)


def truncated_checkpoint(tmp: Path) -> None:
    path = tmp / "model.pt"
    cache.save_model(path, {"w": torch.ones(1000)}, {"kind": "test"})
    path.write_bytes(path.read_bytes()[:100])
    cache.load_model(path)


def unreadable_data_dir(tmp: Path) -> None:
    not_a_dir = tmp / "a-file"
    not_a_dir.write_text("not a data directory")
    data.load_base("cifar10", root=not_a_dir)


def damaged_json_entry(tmp: Path, how: str) -> None:
    path = cache.save_json(tmp / "child-views.json", {"clean": 0.1, "rand-cue": 0.095})
    raw = path.read_bytes()
    path.write_bytes({"digit": raw.replace(b"0.095", b"0.097"), "truncate": raw[:-4], "empty": b""}[how])
    cache.load_json(path)


def unreadable_entry(tmp: Path) -> None:
    path = cache.save_json(tmp / "entry.json", [1])
    with mock.patch.object(Path, "read_bytes", side_effect=PermissionError(errno.EACCES, "Permission denied")):
        cache.load_json(path)


def full_cache_disk(tmp: Path) -> None:
    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch.object(cache, "_write_fully", full):
        cache.cached_json("child-views", KEY, lambda: 0.5, cache_dir=tmp / "cache")


def read_only_cache(tmp: Path) -> None:
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EROFS, "Read-only file system")

    (tmp / "cache").mkdir()
    with mock.patch.object(cache.os, "open", denied):
        cache.cached("parent", KEY, lambda: {"w": torch.ones(1)}, cache_dir=tmp / "cache")


def cache_folder_is_a_file(tmp: Path) -> None:
    (tmp / "cache").write_text("a file")
    cache.cached_json("child-views", KEY, lambda: 0.5, cache_dir=tmp / "cache")


def results_file(tmp: Path, how: str) -> None:
    views = {k: [0.5] for k in steps.VIEW_KEYS.values()}
    good = {"preset": "tiny", "cue": "box", "seeds": [0], "chance": 0.1,
            "models": {m: views for m in steps.MODELS},
            "paths": {p: {"barrier": [0.1]} for p in steps.PATH_PAIRS},
            "quadratic": {k: [0.1] for k in ("barrier", "linear_barrier", "switch_width")},
            "finetune": {m: {**views, "barrier_to_cue": [0.0], "midpoint_loss_to_cue": [0.0]}
                         for m in steps.FT_METHODS}}
    if how == "write invalid":
        good["models"]["cue"]["clean"] = [1.5]
    path = documents.write(documents.RESULTS, tmp, documents.complete(documents.RESULTS, good))
    if how == "altered":
        path.write_text(path.read_text().replace("0.1", "0.7"))
    elif how == "not JSON":
        path.write_text("{\"preset\": ")
    elif how == "schema":
        path.write_text(json.dumps(documents.complete(documents.RESULTS, {**good, "chance": "ten percent"})))
    elif how == "absent":
        path.unlink()
    documents.load(documents.RESULTS, path)


def unwritable_out(tmp: Path) -> None:
    (tmp / "file").write_text("x")
    pipeline.run("tiny", [0], tmp / "file" / "out", progress=False)


CATALOGUE = {
    # data
    "unknown base set": (lambda tmp: data.load_base("imagenet"), ConfigError, "name"),
    "n larger than available": (lambda tmp: data.load_base("digits", "test", n=10_000), ConfigError, "n"),
    "unknown split": (lambda tmp: data.load_base("shapes", "validation", n=10), ConfigError, "split"),
    "proportion above 1": (lambda tmp: data.make_view(tiny_set(), "box", "cue", proportion=1.5),
                           ConfigError, "proportion"),
    "unknown cue": (lambda tmp: data.make_view(tiny_set(), "circle"), ConfigError, "cue"),
    "unknown view": (lambda tmp: data.make_view(tiny_set(), "box", "shuffled"), ConfigError, "view"),
    "dominoes without simple set": (lambda tmp: data.make_view(tiny_set(), "dominoes", "cue"),
                                    ConfigError, "simple"),
    "simple set with other classes": (
        lambda tmp: data.make_view(tiny_set(), "dominoes", "cue", simple=tiny_set(classes=5)),
        ConfigError, "simple"),
    "torchvision set absent offline": (lambda tmp: data.load_base("cifar10", root=tmp / "nothing"),
                                       DataUnavailableError, "download"),
    "unreadable data directory": (unreadable_data_dir, (DataUnavailableError, ConfigError), "cifar10"),
    "images not uint8": (lambda tmp: ImageSet(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long),
                                              ("a",)), ConfigError, "images"),
    # models
    "unknown model": (lambda tmp: models.build("vit", 10), ConfigError, "name"),
    "non-positive width": (lambda tmp: models.build("cnn", 10, width=0), ConfigError, "width"),
    # paths and connectivity
    "mismatched architectures": (
        lambda tmp: paths.linear(cnn(width=0.25).state_dict(), cnn(width=0.5).state_dict(), 0.5),
        ConfigError, "blocks"),
    "t outside [0, 1]": (lambda tmp: paths.linear(cnn().state_dict(), cnn().state_dict(), 1.5),
                         ConfigError, "t"),
    "barrier with unsorted ts": (lambda tmp: connectivity.barrier([0, 1, 0], [0, 0.7, 0.5]), ConfigError, "ts"),
    "barrier with NaN loss": (lambda tmp: connectivity.barrier([0, float("nan"), 0], [0, 0.5, 1]),
                              ConfigError, "NaN"),
    "unknown barrier form": (lambda tmp: connectivity.barrier([0, 1, 0], [0, 0.5, 1], form="max"),
                             ConfigError, "form"),
    "evaluate_path with empty sets": (lambda tmp: paths.evaluate_path(cnn(), cnn(), {}, [0, 1], tiny_set()),
                                      ConfigError, "sets"),
    "evaluate_path unknown bn source": (
        lambda tmp: paths.evaluate_path(cnn(), cnn(), {"a": tiny_set()}, [0, 1], bn_data="train"),
        ConfigError, "bn_data"),
    # training and fine-tuning
    "zero epochs": (lambda tmp: train.fit(cnn(), tiny_set(), SGDConfig(lr=0.1), epochs=0), ConfigError, "epochs"),
    "unknown schedule": (lambda tmp: SGDConfig(lr=0.1, schedule="linear"), ConfigError, "schedule"),
    "head and data disagree on classes": (
        lambda tmp: train.fit(cnn(classes=5), tiny_set(), SGDConfig(lr=0.1), epochs=1), ConfigError, "class"),
    "unknown fine-tuning method": (lambda tmp: finetune.run("sgd", cnn(), tiny_set(), SGDConfig(lr=0.01), epochs=1),
                                   ConfigError, "method"),
    "cbft without cue data": (lambda tmp: cbft.run("cbft", cnn(), tiny_set(), None, SGDConfig(lr=0.01), epochs=1),
                              ConfigError, "cue"),
    "cbft negative margin": (
        lambda tmp: cbft.run("cbft", cnn(), tiny_set(), tiny_set(), SGDConfig(lr=0.01), epochs=1, margin=-1.0),
        ConfigError, "margin"),
    # presets and experiments
    "unknown preset": (lambda tmp: presets.get("huge"), ConfigError, "preset"),
    "unknown preset setting": (lambda tmp: presets.get("cpu", epochs=3), ConfigError, "epochs"),
    "preset setting of the wrong type": (lambda tmp: presets.get("tiny", n_train="abc"), ConfigError, "n_train"),
    "preset learning rate below 0": (lambda tmp: presets.get("tiny", ft_lr=-1), ConfigError, "ft_lr"),
    "preset count of 0": (lambda tmp: presets.get("tiny", n_cue=0), ConfigError, "n_cue"),
    "preset bool for an int": (lambda tmp: presets.get("tiny", batch_size=True), ConfigError, "batch_size"),
    "step schedule without step_every": (lambda tmp: presets.get("paper", step_every=None), ConfigError,
                                         "step_every"),
    "unknown pair of a path": (lambda tmp: graph.node(presets.get("tiny"), "path", seed=0, pair="cue-cue2"),
                               ConfigError, "pair"),
    "unknown step": (lambda tmp: graph.result(presets.get("tiny"), "midpoints", seed=0), ConfigError, "step"),
    # cache
    "corrupt checkpoint": (corrupt_checkpoint, CacheCorruptError, "checksum"),
    "truncated checkpoint": (truncated_checkpoint, CacheCorruptError, "truncated"),
    "changed digit in a JSON entry": (lambda tmp: damaged_json_entry(tmp, "digit"), CacheCorruptError, "checksum"),
    "truncated JSON entry": (lambda tmp: damaged_json_entry(tmp, "truncate"), CacheCorruptError, "truncated"),
    "empty JSON entry": (lambda tmp: damaged_json_entry(tmp, "empty"), CacheCorruptError, "bad header"),
    "JSON entry read as a checkpoint": (
        lambda tmp: cache.load_model(cache.save_json(tmp / "x.pt", [1])), CacheCorruptError, "bad header"),
    "unknown entry format": (lambda tmp: cache.seal("pickle", b""), ConfigError, "fmt"),
    "unreadable cache entry": (unreadable_entry, CacheUnwritableError, "CBFT_CACHE_DIR"),
    "full cache disk": (full_cache_disk, CacheUnwritableError, "CBFT_CACHE_DIR"),
    "read-only cache folder": (read_only_cache, CacheUnwritableError, "CBFT_CACHE_DIR"),
    "cache folder is a file": (cache_folder_is_a_file, CacheUnwritableError, "CBFT_CACHE_DIR"),
    # results.json
    "invalid results written": (lambda tmp: results_file(tmp, "write invalid"), ConfigError, "models/cue/clean"),
    "results.json altered after writing": (lambda tmp: results_file(tmp, "altered"), ConfigError, "checksum"),
    "results.json not JSON": (lambda tmp: results_file(tmp, "not JSON"), ConfigError, "not valid JSON"),
    "results.json against the schema": (lambda tmp: results_file(tmp, "schema"), ConfigError, "chance"),
    "results.json absent": (lambda tmp: results_file(tmp, "absent"), ConfigError, "no such results.json"),
    "output folder cannot be created": (unwritable_out, ConfigError, "out"),
}


# the bad value of an entry, as its error must quote it
AS_WRITTEN = {
    "unknown base set": "'imagenet'", "unknown split": "'validation'", "proportion above 1": "1.5",
    "unknown cue": "'circle'", "unknown view": "'shuffled'", "unknown model": "'vit'", "non-positive width": "0",
    "t outside [0, 1]": "1.5", "unknown barrier form": "'max'", "zero epochs": "0", "unknown schedule": "'linear'",
    "unknown fine-tuning method": "'sgd'", "cbft negative margin": "-1.0", "unknown preset": "'huge'",
    "unknown preset setting": "'epochs'", "preset setting of the wrong type": "'abc'",
    "preset learning rate below 0": "-1", "preset bool for an int": "True", "unknown pair of a path": "'cue-cue2'",
    "unknown step": "'midpoints'", "unknown entry format": "'pickle'",
}


@pytest.mark.parametrize("entry", list(CATALOGUE), ids=list(CATALOGUE))
def test_bad_input_raises_a_clear_typed_error(entry: str, tmp_path: Path):
    call, error, word = CATALOGUE[entry]
    with pytest.raises(error) as info:
        call(tmp_path)
    message = str(info.value)
    if entry in AS_WRITTEN:
        assert AS_WRITTEN[entry] in message, f"message does not quote the value as written: {message}"
    assert word.lower() in message.lower(), f"message does not name {word!r}: {info.value}"
    assert message.strip() and "\n" not in message.strip(), f"not one line: {message!r}"


def test_each_entry_trips_its_own_check(tmp_path: Path):
    """No two entries end in the same message: each one exercises a different check."""
    messages = {}
    for entry, (call, error, _) in CATALOGUE.items():
        folder = tmp_path / entry.replace(" ", "-").replace("/", "-")
        folder.mkdir()
        try:
            call(folder)
        except error as exc:
            messages.setdefault(str(exc), []).append(entry)
    shared = {m: e for m, e in messages.items() if len(e) > 1}
    assert not shared, shared
    assert sum(len(e) for e in messages.values()) == len(CATALOGUE)
