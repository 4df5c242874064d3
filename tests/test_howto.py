"""The generated parts of How to run and the README follow the code (cbft_core.presentation.howto)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from cbft_core.errors import CbftError
from cbft_core.presentation import howto
from cbft_core.study import presets
from conftest import REPO


@pytest.mark.parametrize("page", howto.PAGES)
def test_generated_parts_are_current(page: str):
    text = (REPO / page).read_text()
    assert "<!-- generated:" in text, f"{page} has no generated part"
    assert howto.render(text, howto.blocks(REPO)) == text, (
        f"{page}: a generated part is stale: run `python -m cbft_core.presentation.howto`")


def test_presets_table_states_the_presets():
    table = howto.blocks(REPO)["presets"]
    for name in presets.PRESET_NAMES:
        cfg = presets.get(name)
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}`"))
        assert f"{cfg.n_train:,}".replace(",", " ") in row, f"{name}: {cfg.n_train} training images not in {row}"


def test_examples_override_something():
    text = howto.blocks(REPO)["one-chapter"]
    value = float(re.search(r"-p cbft_lambda (\S+)", text)[1])
    assert value != presets.get("cpu").cbft_lambda, "the example sets cbft_lambda to its default"
    launch = howto.blocks(REPO)["launch"]
    assert "binder/requirements.txt" in launch and "notebooks/" in launch


def test_time_comes_from_a_cold_refresh_record(tmp_path: Path):
    assert "not recorded yet" in howto._cpu_time(tmp_path)
    howto.record_timings(tmp_path, {"01_a": 300.0, "02_b": 900.0})
    assert howto._cpu_time(tmp_path).startswith("20 min for every chapter with an empty cache")
    (tmp_path / howto.TIMINGS).write_text("{}")
    with pytest.raises(CbftError, match="not a timing record"):
        howto._cpu_time(tmp_path)


def test_markers_must_pair():
    with pytest.raises(CbftError, match="one start and one end"):
        howto.render("<!-- generated: launch (python -m cbft_core.presentation.howto) -->\n", {"launch": "x"})
