"""Presets (the one place for hyper-parameters) and the command line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cbft_core.study import presets
from cbft_core.presentation import cli
from cbft_core.errors import ConfigError


def test_presets_exist_and_differ_in_scale():
    cpu, tiny, paper = (presets.get(n) for n in ("cpu", "tiny", "paper"))
    assert tiny.n_train < cpu.n_train < paper.n_train
    assert paper.model == "vgg13" and paper.dataset == "cifar10" and paper.n_clean == 2500
    assert paper.batch_size == 256 and paper.lr == 0.1 and paper.weight_decay == 1e-4
    assert cpu.dataset == "shapes", "the default preset runs offline on the embedded set"


def test_overrides_apply_and_none_keeps_the_preset_value():
    cfg = presets.get("cpu", n_train=1234, proportion=None, seeds=[3, 4])
    assert cfg.n_train == 1234 and cfg.proportion == presets.get("cpu").proportion
    assert cfg.seeds == (3, 4)


@pytest.mark.parametrize("bad, word", [
    ({"proportion": 1.5}, "proportion"), ({"width": 0}, "width"), ({"path_points": 1}, "path_points"),
    ({"seeds": []}, "seeds"), ({"device": "tpu"}, "device"), ({"child_epochs": -1}, "child_epochs"),
    ({"learning_rate": 0.1}, "learning_rate"),
])
def test_bad_overrides_name_the_setting(bad, word):
    with pytest.raises(ConfigError, match=word):
        presets.get("cpu", **bad)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigError, match="cpu"):
        presets.get("gpu")


def test_cli_help_documents_every_option():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert {"run", "chapter", "book", "refresh", "presets"} <= set(subparsers)
    for name, sub in subparsers.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{name}: option {action.dest} has no help text"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cbft_core", *args], capture_output=True, text=True, timeout=120)


def test_cli_error_is_one_line_without_traceback(tmp_path):
    proc = _cli("chapter", str(tmp_path / "missing.ipynb"), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


def test_cli_bad_setting_is_one_line(tmp_path):
    proc = _cli("run", "--preset", "tiny", "--out", str(tmp_path), "-p", "proportion", "7")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "proportion" in proc.stderr


def test_cli_presets_prints_json():
    import json

    proc = _cli("presets")
    assert proc.returncode == 0
    assert set(json.loads(proc.stdout)) == set(presets.PRESET_NAMES)


def test_param_values_parse_as_literals():
    assert cli._value("10") == 10 and cli._value("0.5") == 0.5 and cli._value("[1, 2]") == [1, 2]
    assert cli._value("shapes") == "shapes"


def test_refresh_unknown_chapter_is_named_before_anything_runs():
    proc = _cli("refresh", "--only", "01_mode_connectivity", "99_no_such_chapter", "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "99_no_such_chapter" in proc.stderr and "refreshed" not in proc.stdout


def test_execute_timed_reports_each_chapter_and_the_total(monkeypatch, capsys, tmp_path):
    ran = []
    monkeypatch.setattr(cli, "execute_chapter", lambda path, out, params, progress: ran.append(path) or out / path.name)
    cli._execute_timed([tmp_path / "a.ipynb", tmp_path / "b.ipynb"], lambda p: tmp_path, {}, False, "executed")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [p.name for p in ran] == ["a.ipynb", "b.ipynb"]
    assert lines[0].startswith("executed ") and lines[0].endswith(" s") and "a.ipynb" in lines[0]
    assert lines[-1].startswith("2 chapter(s) in ") and "min)" in lines[-1]
