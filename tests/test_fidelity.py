"""The table "The book and the authors' code" (cbft_core.study.fidelity) against the code it describes.

It fails when a default changes and the table does not: every stated book
value must be the code's current default, every measured departure must have
been measured at the current book and authors' values, and every cited line
range must exist in the authors' files and hold the token it names. The last
check reads the authors' repository (github.com/EkdeepSLubana/MMC, a clone or
a bare git directory) named by ``CBFT_AUTHORS_REPO`` and is skipped without it.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cbft_core.errors import ConfigError
from cbft_core.study import fidelity, presets

CFG = presets.get(fidelity.REFERENCE_PRESET)


def test_every_stated_book_value_is_the_current_default():
    for c in fidelity.CHOICES:
        for o in c.options:
            assert o.current(CFG) == o.book, (
                f"{c.key}: the table says {o.name} = {o.book!r}, the code uses {o.current(CFG)!r}: update "
                f"cbft_core/study/fidelity.py (and remeasure the departure)")


def test_a_departure_is_a_differing_or_unreproducible_option():
    assert {c.key for c in fidelity.CHOICES if c.departs(CFG)} >= {"bn-data", "bn-average", "eval-split", "llrt",
                                                                   "models"}
    assert not fidelity.choice("cbft").departs(CFG) and not fidelity.choice("naive-ft").departs(CFG)
    assert len({c.key for c in fidelity.CHOICES}) == len(fidelity.CHOICES)
    with pytest.raises(ConfigError, match="not one of"):
        fidelity.choice("nope")


def test_the_paper_preset_runs_the_authors_scale():
    paper = presets.get("paper")
    for o in fidelity.choice("scale").options:
        assert o.current(paper) == o.authors_at(paper), o.name


def test_a_departure_moves_only_the_numbers_that_read_it():
    assert fidelity.moves(fidelity.choice("bn-data")) == ("cue_nocue",)
    assert fidelity.moves(fidelity.choice("llrt")) == ("lpft_clean", "lpft_rand_img")
    assert fidelity.moves(fidelity.choice("cue-data")) == ("cbft_rand_img",)
    assert fidelity.moves(fidelity.choice("midpoint")) == ()
    assert fidelity.moves(fidelity.choice("models")) is None


def test_measured_departures_were_measured_at_the_current_values():
    for key, entry in fidelity.effects().items():
        c = fidelity.choice(key)
        assert entry["preset"] == fidelity.REFERENCE_PRESET, key
        expected = {o.name: {"book": o.book, "authors": o.authors_at(CFG)} for o in c.departing(CFG)}
        assert entry["settings"] == expected, f"{key}: measured at {entry['settings']}, the code now {expected}"
        for side in ("book", "authors"):
            assert set(entry[side]) == set(fidelity.moves(c)), f"{key}: {side} holds other headline numbers"
            assert all(len(v) == len(entry["seeds"]) for v in entry[side].values())


def _authors_file(repo: str, name: str) -> list[str]:
    out = subprocess.run(["git", "-C", repo, "show", f"{fidelity.AUTHORS_COMMIT}:{name}"], capture_output=True,
                         text=True)
    assert out.returncode == 0, f"{name} at {fidelity.AUTHORS_COMMIT[:12]}: {out.stderr.strip()}"
    return out.stdout.splitlines()


def test_cited_lines_exist_and_hold_their_token():
    repo = os.environ.get("CBFT_AUTHORS_REPO")
    if not repo:
        pytest.skip("CBFT_AUTHORS_REPO is not set: no copy of the authors' code to check the line numbers against")
    files: dict[str, list[str]] = {}
    for c in fidelity.CHOICES:
        assert c.where, f"{c.key}: no line of the authors' code cited"
        for ref in c.where:
            lines = files.setdefault(ref.file, _authors_file(repo, ref.file))
            assert 1 <= ref.first <= ref.last <= len(lines), f"{c.key}: {ref} outside {ref.file} ({len(lines)} lines)"
            cited = lines[ref.first - 1:ref.last]
            assert any(ref.token in line for line in cited), f"{c.key}: {ref.token!r} not in {ref}"


def _with_effects(monkeypatch, tmp_path: Path, departures: dict) -> None:
    path = tmp_path / fidelity.EFFECTS_FILE
    path.write_text(json.dumps({"format": fidelity.FORMAT, "departures": departures}))
    monkeypatch.setattr(fidelity, "_effects_path", lambda: path)
    fidelity.effects.cache_clear()


def test_rows_say_what_is_measured(monkeypatch, tmp_path):
    bn = fidelity.choice("bn-data")
    _with_effects(monkeypatch, tmp_path, {"bn-data": {
        "preset": "cpu", "seeds": [0, 1], "settings": {"bn_images": {"book": 2000, "authors": CFG.n_train}},
        "book": {"cue_nocue": [0.5, 0.7]}, "authors": {"cue_nocue": [0.4, 0.4]}}})
    try:
        rows = {r["choice"]: r for r in fidelity.rows()}
        assert len(rows) == len(fidelity.CHOICES)
        assert rows[bn.topic]["effect on the headline numbers"].startswith("cue-nocue barrier 0.600 ± 0.100 → 0.400")
        assert "bn_images = 2000" in rows[bn.topic]["book"]
        assert rows["LLRT"]["effect on the headline numbers"].startswith("not measured yet")
        scale = fidelity.choice("scale").topic  # the authors' CIFAR-10: a download, so not measured here
        assert rows[scale]["effect on the headline numbers"].startswith("not measured: the authors' setting needs")
        assert rows["CBFT"]["effect on the headline numbers"] == "— (no departure)"
        assert "mech_fine_tuning.py:93–198" in rows["CBFT"]["authors' code"]
    finally:
        fidelity.effects.cache_clear()


def test_a_malformed_effects_file_is_one_error(monkeypatch, tmp_path):
    _with_effects(monkeypatch, tmp_path, {"bn-data": {"seeds": [0], "book": {"cue_nocue": [0.1, 0.2]}}})
    try:
        with pytest.raises(ConfigError, match="one number per seed"):
            fidelity.effects()
    finally:
        fidelity.effects.cache_clear()


def test_measure_records_both_sides_per_seed():
    tiny = presets.get("tiny")
    entry = fidelity.measure("bn-data", seeds=[0], preset="tiny", progress=False)
    assert entry["settings"] == {"bn_images": {"book": tiny.bn_images, "authors": tiny.n_train}}
    assert set(entry["book"]) == set(entry["authors"]) == {"cue_nocue"}
    assert all(len(v) == 1 for side in ("book", "authors") for v in entry[side].values())
    with pytest.raises(ConfigError, match="no setting reproduces"):
        fidelity.measure("models", seeds=[0], preset="tiny")
