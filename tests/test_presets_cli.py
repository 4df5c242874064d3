"""Presets (the one place for hyper-parameters) and the command line."""
from __future__ import annotations

import dataclasses
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


def _bad_values(name: str, rule: presets.Range, kind: type) -> list:
    """Values that setting ``name`` must refuse, from its declared type and range (not from the code)."""
    bad: list = [object()] + ([] if kind is bool else [True])
    if kind in (int, float):
        bad += ["abc", [1]]
        if rule.minimum is not None:
            bad.append(rule.minimum - 1 if kind is int else rule.minimum - 0.5)
            if rule.strict:
                bad.append(rule.minimum)
        if rule.maximum is not None:
            bad.append(rule.maximum + 1)
        if kind is int:
            bad.append(2.5)
        else:
            bad += [float("nan"), float("inf")]
    elif kind is bool:
        bad += [1, 0, "yes", "True", None]
    elif kind is str:
        bad += ["", 3]
        if rule.choices is not None:
            bad.append("no-such-" + name)
    else:
        bad += ["0", [], [0, "1"], [0, 1.5], [-1]]
    if not rule.optional:
        bad = [b for b in bad if b is not None]
    return bad


FIELDS = [f.name for f in dataclasses.fields(presets.Preset)]


@pytest.mark.parametrize("name", FIELDS)
def test_every_setting_refuses_wrong_types_and_ranges_naming_itself(name):
    kind = {"int": int, "float": float, "str": str, "bool": bool}.get(
        type(getattr(presets.get("cpu"), name)).__name__, tuple)
    if name in ("step_every", "max_batches"):
        kind = int
    rule = presets.RANGES[name]
    for value in _bad_values(name, rule, kind):
        with pytest.raises(ConfigError, match=rf"^preset setting {name}\b") as info:
            presets.get("cpu").replace(**{name: value})
        assert "\n" not in str(info.value)


def test_every_field_is_in_the_table_and_the_presets_pass_it():
    assert set(presets.RANGES) == set(FIELDS)
    assert "extras" not in FIELDS
    for name in presets.PRESET_NAMES:
        assert presets.get(name).name == name


def test_issue_examples_are_refused_by_the_name_the_user_wrote():
    with pytest.raises(ConfigError, match=r"^preset setting ft_lr must be a finite number > 0, got -1$"):
        presets.get("cpu", ft_lr=-1)
    with pytest.raises(ConfigError, match=r"^preset setting n_cue must be an int >= 1, got 0$"):
        presets.get("cpu", n_cue=0)
    with pytest.raises(ConfigError, match=r"^preset setting batch_size must be an int >= 1, got True$"):
        presets.get("cpu", batch_size=True)
    with pytest.raises(ConfigError, match=r"^preset setting n_train must be an int >= 1, got 'abc'$"):
        presets.get("cpu", n_train="abc")


def test_none_keeps_a_required_setting_but_is_applied_to_an_optional_one():
    paper = presets.get("paper")
    assert paper.step_every == 40 and presets.get("paper", lr=None).lr == paper.lr
    # step_every=None is applied, and the step schedule without it is refused (not silently 40)
    with pytest.raises(ConfigError, match="step_every"):
        presets.get("paper", step_every=None)
    assert presets.get("paper", schedule="cosine", step_every=None).step_every is None
    assert presets.get("tiny", max_batches=3).replace(max_batches=None).max_batches is None


def test_numbers_are_normalised():
    cfg = presets.get("cpu", lr=1, seeds=[4, 5])
    assert type(cfg.lr) is float and type(cfg.width) is float and cfg.seeds == (4, 5)
    assert presets.get("cpu", lr=1).as_dict() == presets.get("cpu", lr=1.0).as_dict()  # one cache key


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
    proc = _cli("run", "--preset", "tiny", "--out", str(tmp_path / "out"), "-p", "n_train", "abc")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: preset setting n_train must be an int >= 1, got 'abc'"
    assert not (tmp_path / "out").exists(), "refused before any work started"


@pytest.mark.parametrize("name, value, says", [
    ("proportion", "7", "preset setting proportion must be a finite number in [0, 1], got 7"),
    ("ft_lr", "-1", "preset setting ft_lr must be a finite number > 0, got -1"),
    ("batch_size", "True", "preset setting batch_size must be an int >= 1, got True"),
    ("epochs", "3", "unknown preset setting(s) ['epochs']"),
])
def test_cli_run_refuses_bad_settings_before_any_work(tmp_path, monkeypatch, capsys, name, value, says):
    from cbft_core.study import pipeline

    monkeypatch.setattr(pipeline, "run", lambda *a, **k: pytest.fail("the study ran"))
    assert cli.main(["run", "--preset", "tiny", "--out", str(tmp_path / "out"), "-p", name, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err


def test_cli_chapter_checks_preset_settings_before_executing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "execute_chapter", lambda *a, **k: pytest.fail("the chapter ran"))
    code = cli.main(["chapter", "book/02_spurious_data.ipynb", "--out", str(tmp_path), "-p", "n_train", "abc",
                     "-p", "seed", "3"])
    assert code == 2 and "preset setting n_train must be an int" in capsys.readouterr().err
    ran = []
    monkeypatch.setattr(cli, "execute_chapter", lambda path, out, params, progress: ran.append(params) or path)
    assert cli.main(["chapter", "book/02_spurious_data.ipynb", "--out", str(tmp_path), "-p", "seed", "3"]) == 0
    assert ran == [{"preset": "cpu", "seed": 3}]  # a chapter's own parameter passes through


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


def test_the_command_line_starts_without_torch_and_names_every_method():
    """Parsing a command imports neither torch nor the study's steps; the sweep's default methods are all of them."""
    from cbft_core.study.steps import FT_METHODS

    assert cli.SWEEP_METHODS == FT_METHODS
    probe = ("import sys\nfrom cbft_core.presentation import cli\n"
             "cli.build_parser().parse_args(['chapter', 'book/01_mode_connectivity.ipynb', '--out', 'x'])\n"
             "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
