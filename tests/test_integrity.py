"""Integrity of what the book caches and writes: corruption, concurrency, a full or read-only cache, the schema.

The fuzz test damages every kind of stored file at random (seeded) and checks
that the next read returns exactly the value first stored, or recomputes it, or
(for results.json, which is not recomputed) stops with one clear error.
"""
from __future__ import annotations

import copy
import errno
import json
import multiprocessing
import os
import random
import time
import warnings
from pathlib import Path

import pytest
import torch

from cbft_core.errors import CacheCorruptError, CacheUnwritableError, ConfigError
from cbft_core.presentation import cli, schema_doc
from cbft_core.study import cache, documents, steps

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- values of every kind


def state_value(i: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(i)
    return {"conv.weight": torch.randn(4, 3, generator=g), "bn.num_batches_tracked": torch.tensor(7 + i)}


def views_value(i: int) -> dict[str, float]:
    """Shaped like a child-views entry: the keys a flipped byte once turned into "'and-cue"."""
    return {"clean": 0.1 + i / 1000, "cue": 0.7, "rand-cue": 0.095, "rand-img": 0.25 + i / 7}


def results_value(i: int) -> dict:
    views = lambda a: {k: [round(a + 0.01 * j, 3) for j in range(2)] for k in ("clean", "cue", "rand_cue", "rand_img")}
    return documents.complete(documents.RESULTS, {
        "preset": "tiny", "cue": "box", "seeds": [0, 1], "chance": 0.1,
        "models": {"cue": views(0.5 + i / 1000), "nocue": views(0.2), "cue100": views(0.9)},
        "paths": {p: {"barrier": [0.125 * (k + 1), 0.5]} for k, p in enumerate(steps.PATH_PAIRS)},
        "quadratic": {"barrier": [0.0, 0.01], "linear_barrier": [0.2, 0.3], "switch_width": [0.4, 0.45]},
        "finetune": {m: {**views(0.3), "barrier_to_cue": [0.01, 0.02], "midpoint_loss_to_cue": [-0.001, 0.003]}
                     for m in steps.FT_METHODS},
    })


def sweep_value(i: int) -> dict:
    """A one-unit sweep.json (no fine-tuning methods)."""
    views = {"clean": 0.5, "cue": 0.9, "rand_cue": 0.4, "rand_img": 0.3 + i / 1000}
    unit = {"models": {"cue": views, "nocue": views}, "finetune": {},
            "barriers": {"cue-nocue": 0.25, "cue-cue": 0.0125, "nocue-nocue": 0.03}}
    return documents.complete(documents.SWEEP, {
        "preset": "tiny", "settings": {}, "cues": ["box"], "proportions": [0.8], "seeds": [i], "methods": [],
        "chance": 0.1, "code_version": "0" * 64, "units": {"box": {"0.8": {str(i): unit}}}, "failed": {}})


def key(i: int) -> str:
    return cache.config_key({"trial": i})


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- damage


def damage(raw: bytes, how: str, rng: random.Random) -> bytes:
    """``raw`` damaged one way; always different from ``raw``."""
    if how == "truncate":
        return raw[: rng.randrange(len(raw))]
    if how == "flip-bit":
        bad = bytearray(raw)
        pos = rng.randrange(len(bad))
        bad[pos] ^= 1 << rng.randrange(8)
        return bytes(bad)
    if how == "change-digit":
        digits = [i for i, b in enumerate(raw) if 48 <= b <= 57]
        bad = bytearray(raw)
        pos = rng.choice(digits)
        bad[pos] = rng.choice([d for d in b"0123456789" if d != bad[pos]])
        return bytes(bad)
    if how == "garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2 * len(raw))))
    if how == "empty":
        return b""
    if how == "append":
        return raw + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    raise AssertionError(how)


DAMAGES = ("truncate", "flip-bit", "change-digit", "garbage", "empty", "append")
TRIALS_PER_KIND = 60
ENTRY_KINDS = ("checkpoint", "json-measurement", "results.json", "sweep.json")
DOCUMENTS = {"results.json": documents.RESULTS, "sweep.json": documents.SWEEP}


def read_back(kind: str, root: Path, i: int, calls: list[int]):
    """Read entry ``i`` of ``kind`` the way the library does; ``calls`` counts recomputations."""
    if kind == "checkpoint":
        return cache.cached("finetuned", key(i), lambda: calls.append(1) or state_value(i), cache_dir=root)
    if kind == "json-measurement":
        return cache.cached_json("child-views", key(i), lambda: calls.append(1) or views_value(i), cache_dir=root)
    return documents.load(DOCUMENTS[kind], root / "out")


def stored_file(kind: str, root: Path, i: int) -> Path:
    if kind == "checkpoint":
        return cache.entry_path("finetuned", key(i), ".pt", root)
    if kind == "json-measurement":
        return cache.entry_path("child-views", key(i), ".json", root)
    return root / "out" / kind


def expected(kind: str, i: int):
    return {"checkpoint": state_value, "json-measurement": views_value, "results.json": results_value,
            "sweep.json": sweep_value}[kind](i)


@pytest.mark.parametrize("kind", ENTRY_KINDS)
def test_fuzz_every_damaged_entry_is_detected(kind: str, tmp_path: Path):
    """Each damaged entry is re-read as exactly its stored value, or recomputed, or (results) one clear error."""
    rng = random.Random(f"integrity-fuzz-{kind}")
    outcomes = dict.fromkeys(DAMAGES, 0)
    for trial in range(TRIALS_PER_KIND):
        how = DAMAGES[trial % len(DAMAGES)]
        root = tmp_path / f"t{trial}"
        calls: list[int] = []
        if kind in DOCUMENTS:
            documents.write(DOCUMENTS[kind], root / "out", expected(kind, trial))
        else:
            read_back(kind, root, trial, calls)  # fills the entry
        assert calls == ([1] if kind not in DOCUMENTS else [])
        path = stored_file(kind, root, trial)
        raw = path.read_bytes()
        bad = damage(raw, how, rng)
        assert bad != raw
        path.write_bytes(bad)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if kind in DOCUMENTS:
                with pytest.raises(ConfigError) as info:  # never recomputed: one clear error naming the file
                    read_back(kind, root, trial, calls)
                message = str(info.value)
                assert "\n" not in message and message.startswith(str(root / "out" / kind)), message
                outcomes[how] += 1
                continue
            value = read_back(kind, root, trial, calls)
        good = expected(kind, trial)
        assert (same_state(value, good) if kind == "checkpoint" else value == good), (how, trial)
        assert calls == [1, 1], f"{how}: damaged entry was not recomputed"
        lines = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(lines) == 1 and "\n" not in lines[0] and "recomputing" in lines[0], lines
        # the rewritten entry is intact and read without recomputing
        again = read_back(kind, root, trial, calls)
        assert (same_state(again, good) if kind == "checkpoint" else again == good) and calls == [1, 1]
        outcomes[how] += 1
    assert sum(outcomes.values()) == TRIALS_PER_KIND and min(outcomes.values()) >= 10, outcomes


def test_fuzz_trial_count():
    assert TRIALS_PER_KIND * len(ENTRY_KINDS) >= 200


def test_one_sealing_mechanism_for_every_kind(tmp_path):
    model = cache.save_model(tmp_path / "m.pt", state_value(0), {"i": 0})
    measure = cache.save_json(tmp_path / "v.json", views_value(0))
    for path, fmt in ((model, "ckpt"), (measure, "json")):
        header, _, payload = path.read_bytes().partition(b"\n")
        magic, kind, digest, size = header.split(b" ")
        assert (magic, kind) == (b"CBFT1", fmt.encode())
        import hashlib

        assert digest.decode() == hashlib.sha256(payload).hexdigest() and int(size) == len(payload)
        assert cache.unseal(path.read_bytes(), fmt, path) == payload
    # the JSON payload stays readable after its header line
    assert json.loads(measure.read_bytes().partition(b"\n")[2]) == views_value(0)
    with pytest.raises(CacheCorruptError, match="bad header"):
        cache.load_model(measure)  # a JSON entry is not a checkpoint
    with pytest.raises(CacheCorruptError, match="bad header"):
        cache.load_json(model)


def test_checkpoint_under_another_key_is_rejected(tmp_path):
    """An intact checkpoint copied onto another entry's name is not that entry."""
    a = cache.cached("child", key(1), lambda: state_value(1), cache_dir=tmp_path)
    pa = cache.entry_path("child", key(1), ".pt", tmp_path)
    pb = cache.entry_path("child", key(2), ".pt", tmp_path)
    pb.write_bytes(pa.read_bytes())
    with pytest.warns(RuntimeWarning, match="stored key"):
        b = cache.cached("child", key(2), lambda: state_value(2), cache_dir=tmp_path)
    assert same_state(b, state_value(2)) and same_state(a, state_value(1))


def test_cold_and_warm_json_values_are_identical(tmp_path):
    cold = cache.cached_json("grid", key(1), lambda: {"t": (0.0, 0.5), "n": 3}, cache_dir=tmp_path)
    warm = cache.cached_json("grid", key(1), lambda: {"never": 1}, cache_dir=tmp_path)
    assert cold == warm == {"t": [0.0, 0.5], "n": 3} and type(cold["t"]) is list


# ---------------------------------------------------------------- concurrency


def _fill_worker(root: str, log: str, start_at: float, queue) -> None:
    """Fill 3 checkpoints and 3 JSON entries of one cache, logging every computation."""
    def compute(tag: str, value):
        def run():
            with open(log, "a") as f:
                f.write(f"{tag}\n")
            time.sleep(0.15)  # long enough for the other process to miss the same entry
            return value
        return run

    while time.time() < start_at:
        time.sleep(0.001)
    out = []
    for i in range(3):
        state = cache.cached("parent", key(i), compute(f"ckpt{i}", state_value(i)), cache_dir=root)
        views = cache.cached_json("child-views", key(i), compute(f"json{i}", views_value(i)), cache_dir=root)
        out.append(({k: v.tolist() for k, v in state.items()}, views))
    queue.put(out)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_two_processes_fill_one_cache_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    log = tmp_path / "computed.log"
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_fill_worker, args=(str(tmp_path / "cache"), str(log), start_at, queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert results[0] == results[1]
    computed = log.read_text().split()
    assert sorted(computed) == sorted(f"{k}{i}" for k in ("ckpt", "json") for i in range(3)), computed
    files = sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.startswith("."))
    assert len(files) == 6
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    for f in files:
        (cache.load_model if f.suffix == ".pt" else cache.load_json)(f)


# ---------------------------------------------------------------- unwritable or full cache


def test_read_only_cache_folder_is_one_clear_error(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    real_open = os.open

    def denied(path, flags, *args, **kwargs):  # what a read-only folder answers (also when tests run as root)
        if str(path).startswith(str(folder)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(cache.os, "open", denied)
    calls = []
    with pytest.raises(CacheUnwritableError) as info:
        cache.cached_json("child-views", key(0), lambda: calls.append(1) or 1.0, cache_dir=folder)
    message = str(info.value)
    assert str(folder / "child-views") in message and "CBFT_CACHE_DIR" in message and "\n" not in message
    assert calls == [], "the error comes before the (long) computation"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_really_read_only_cache_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(CacheUnwritableError, match="CBFT_CACHE_DIR"):
            cache.cached("parent", key(0), lambda: state_value(0), cache_dir=folder)
    finally:
        folder.chmod(0o755)


def test_cache_folder_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(CacheUnwritableError, match="CBFT_CACHE_DIR"):
        cache.cached("parent", key(0), lambda: state_value(0), cache_dir=tmp_path / "file")


@pytest.mark.parametrize("kind", ["checkpoint", "json"])
def test_full_disk_is_one_clear_error_and_leaves_nothing(kind, tmp_path, monkeypatch):
    def full(fd, data):
        os.write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "_write_fully", full)
    with pytest.raises(CacheUnwritableError) as info:
        if kind == "checkpoint":
            cache.cached("parent", key(0), lambda: state_value(0), cache_dir=tmp_path)
        else:
            cache.cached_json("child-views", key(0), lambda: views_value(0), cache_dir=tmp_path)
    assert "No space left on device" in str(info.value) and "CBFT_CACHE_DIR" in str(info.value)
    assert str(tmp_path) in str(info.value)
    left = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert left == [], "no partial entry or temporary file is left behind"
    monkeypatch.undo()  # space freed: the next run fills the entry
    assert cache.cached_json("child-views", key(0), lambda: views_value(0), cache_dir=tmp_path) == views_value(0)


def test_cli_reports_unwritable_cache_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "file" / "cache"))
    code = cli.main(["run", "--preset", "tiny", "--seeds", "0", "-p", "n_train", "64", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "CBFT_CACHE_DIR" in err and str(tmp_path / "file" / "cache") in err


def test_cli_prints_cache_warnings_in_one_line(tmp_path, monkeypatch, capsys):
    entry = cache.save_json(tmp_path / "x.json", [0.5])
    entry.write_bytes(entry.read_bytes().replace(b"0.5", b"0.7"))
    # a command that meets a corrupt entry: the warning is one line on stderr, and the command goes on
    monkeypatch.setattr(cli, "_cmd_presets", lambda args: print(cache.lookup(entry, cache.load_json)))
    assert cli.main(["presets"]) == 0
    out, err = capsys.readouterr()
    assert out == "(False, None)\n"
    assert err == f"warning: discarding corrupt cache entry {entry}: checksum mismatch; recomputing it\n"
    assert not entry.exists()


# ---------------------------------------------------------------- results.json schema


@pytest.mark.parametrize("kind", [documents.RESULTS, documents.SWEEP], ids=lambda k: k.name)
def test_schemas_are_valid_and_ship_with_the_package(kind):
    import jsonschema
    import tomllib

    schema = documents.schema(kind)
    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert schema["properties"]["format"]["const"] == kind.format and "checksum" in schema["required"]
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["cbft_core.study"]
    assert (Path(documents.__file__).parent / "schemas" / kind.schema_file).exists()
    assert any(Path("schemas", kind.schema_file).match(p) for p in patterns)


def test_results_schema_matches_the_registry():
    props = documents.schema(documents.RESULTS)["properties"]
    from cbft_core.kernels.data import CUES
    from cbft_core.study import pipeline

    assert props["cue"]["enum"] == list(CUES)
    assert set(pipeline.PARTS) <= set(props)
    assert set(props["models"]["required"]) == set(steps.MODELS)
    assert set(props["paths"]["required"]) == set(steps.PATH_PAIRS)
    assert set(props["finetune"]["required"]) == set(steps.FT_METHODS)
    views = set(steps.VIEW_KEYS.values())
    assert set(props["models"]["properties"]["cue"]["required"]) == views
    assert set(props["finetune"]["properties"]["ft"]["required"]) == views | {"barrier_to_cue", "midpoint_loss_to_cue"}


BAD_RESULTS = {
    "accuracy above 1": (lambda r: r["finetune"]["ft"].__setitem__("rand_img", [1.5, 0.1]), "finetune/ft/rand_img/0"),
    "missing key": (lambda r: r.pop("paths"), "'paths' is a required property"),
    "unknown key": (lambda r: r["models"]["cue"].__setitem__("rand_pix", [0.1, 0.1]), "rand_pix"),
    "string number": (lambda r: r["paths"]["cue-cue"].__setitem__("barrier", ["0.1", 0.2]), "paths/cue-cue/barrier/0"),
    "list too short": (lambda r: r["paths"]["cue-cue"].__setitem__("barrier", [0.1]), "one per seed"),
    "NaN": (lambda r: r["finetune"]["cbft"].__setitem__("barrier_to_cue", [float("nan"), 0.0]), "finite"),
    "unknown cue": (lambda r: r.__setitem__("cue", "stripes"), "at cue: 'stripes' is not one of"),
    "unknown method": (lambda r: r["finetune"].__setitem__("sgd", r["finetune"]["ft"]), "sgd"),
    "unknown top-level key": (lambda r: r.__setitem__("notes", "x"), "notes"),
    "other format": (lambda r: r.__setitem__("format", "cbft_core.results/0"), "at format"),
}


@pytest.mark.parametrize("case", list(BAD_RESULTS), ids=list(BAD_RESULTS))
def test_invalid_results_are_one_clear_error_on_write_and_read(case, tmp_path):
    mutate, word = BAD_RESULTS[case]
    bad = copy.deepcopy(results_value(0))
    mutate(bad)
    bad["checksum"] = documents.checksum(bad)  # intact, but not a valid results.json
    with pytest.raises(ConfigError, match="not a valid results.json") as info:
        documents.write(documents.RESULTS, tmp_path, bad)
    assert word in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "results.json").exists(), "an invalid results file is never written"
    (tmp_path / "results.json").write_text(json.dumps(bad))  # written by hand
    with pytest.raises(ConfigError) as info:
        documents.load(documents.RESULTS, tmp_path / "results.json")
    assert str(info.value).startswith(f"{tmp_path / 'results.json'}: ") and word in str(info.value)


def test_results_roundtrip_with_checksum(tmp_path):
    path = documents.write(documents.RESULTS, tmp_path, results_value(3))
    assert path == tmp_path / "results.json"
    assert documents.load(documents.RESULTS, path) == documents.load(documents.RESULTS, tmp_path) == results_value(3)
    path.write_text(path.read_text().replace('"cue": "box"', '"cue": "dominoes"'))  # valid, but not what was written
    with pytest.raises(ConfigError, match="checksum mismatch .* run --out DIR` again"):
        documents.load(documents.RESULTS, path)
    with pytest.raises(ConfigError, match="absent.json: no such results.json; write it with"):
        documents.load(documents.RESULTS, tmp_path / "absent.json")
    (tmp_path / "list.json").write_text("[0.1, 0.2]")
    with pytest.raises(ConfigError, match="list.json: not a valid results.json at top level: .* is not of type 'object'"):
        documents.load(documents.RESULTS, tmp_path / "list.json")
    (tmp_path / "half.json").write_text('{"preset": "ti')
    with pytest.raises(ConfigError, match="half.json: not valid JSON"):
        documents.load(documents.RESULTS, tmp_path / "half.json")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="out must be a folder"):
        documents.write(documents.RESULTS, tmp_path / "file", results_value(3))


def test_maintaining_page_documents_the_schema():
    page = (REPO / "book" / "maintaining.md").read_text()
    table = schema_doc.results_format_markdown()
    assert schema_doc.replace_section(page, table) == page, (
        "book/maintaining.md is out of date: python -m cbft_core.presentation.schema_doc book/maintaining.md")
    for key in ("rand_img", "barrier_to_cue", "cue-nocue", "cbft-no-invariance", "chance"):
        assert key in table


def test_schema_table_renders_shapes_and_bounds():
    schema = {
        "description": "demo", "type": "object", "required": ["a", "b", "c"],
        "properties": {
            "a": {"type": "number", "minimum": 0, "exclusiveMaximum": 2, "description": "A"},
            "b": {"$ref": "#/$defs/fr", "description": "B"},
            "c": {"$ref": "#/$defs/fr", "description": "C"},
            "d": {"enum": ["x", "y"], "description": "D | E"},
        },
        "$defs": {"fr": {"type": "array", "minItems": 2, "items": {"type": "number", "minimum": 0, "maximum": 1}}},
    }
    table = schema_doc.results_format_markdown(schema)
    assert table.splitlines()[4:] == [
        "| `a` | number in [0, 2) | A |",
        "| `{b, c}` | list of numbers in [0, 1], at least 2 | `b`: B; `c`: C |",
        '| `d` | one of `"x"`, `"y"` | D / E |',
    ]
    with pytest.raises(ValueError, match="expected exactly one section between the markers <!-- results-format"):
        schema_doc.replace_section("no markers", table)
