"""Chapter conventions, parameter injection and the numeric regression check, over every notebook in _toc.yml.

scripts/run-tests executes each chapter once at its committed default
parameters and names that folder in CBFT_FRESH_CHAPTERS, where
test_glued_numbers_reproduce compares its glued numbers with the committed
ones; here each chapter also runs under papermill at the `tiny` preset,
which proves that the parameters cell drives the chapter.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import nbformat
import papermill
import pytest

from conftest import REPO, toc_notebooks

CHAPTERS = toc_notebooks()
IDS = [p.stem for p in CHAPTERS]
MACHINE_PATH = re.compile(r"(/work/|/root/|/home/|/tmp/|/Users/|C:\\\\Users)")


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_toc_lists_chapters():
    assert len(CHAPTERS) >= 1, "no notebook chapter found in _toc.yml"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_conventions(path: Path):
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# "), (
        "a chapter opens with a markdown cell holding its title"
    )
    first = cells[0].source
    assert "import cbft_core" in first and "except ImportError" in first and "pip install" in first, (
        "the first code cell must install cbft_core only when it is not importable"
    )
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged, "no cell tagged 'parameters'"
    assert tagged[0] <= 2, "the parameters cell must come near the top (within the first 3 code cells)"
    assert re.search(r"^preset\s*=", cells[tagged[0]].source, re.M), "parameters cell sets `preset`"
    assert re.search(r"^preset\s*=\s*[\"']cpu[\"']", cells[tagged[0]].source, re.M), (
        "the default preset is cpu: the committed outputs, and `python -m cbft_core book`'s default"
    )
    for cell in cells:
        assert not re.search(r"from tqdm import|import tqdm$", cell.source, re.M), (
            "use tqdm.auto for notebook-aware progress"
        )
        for out in cell.get("outputs", []):
            blob = str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
            blob += str(out.get("data", {}).get("text/html", ""))
            assert not MACHINE_PATH.search(blob), f"output embeds a machine path: {blob[:200]!r}"
    assert all(c.get("execution_count") for c in cells), "chapters are committed with their outputs"


def test_library_progress_is_notebook_aware():
    for src in (REPO / "cbft_core").rglob("*.py"):
        text = src.read_text()
        assert not re.search(r"^\s*from tqdm import|^\s*import tqdm\s*$", text, re.M), (
            f"{src.name}: import tqdm through tqdm.auto"
        )


PROBE = "print('chapter ran with preset', cfg.name, cfg.n_train)"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_papermill_tiny(path: Path, tmp_path: Path):
    """The injected preset is the one the chapter used: a probe cell appended to a copy prints its ``cfg``."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    source, out = tmp_path / f"probe-{path.name}", tmp_path / path.name
    nbformat.write(nb, source)
    scratch_before = set(Path(tempfile.gettempdir()).glob("cbft-replication-*"))
    papermill.execute_notebook(
        str(source), str(out), parameters={"preset": "tiny"}, cwd=str(path.parent),
        kernel_name="python3", progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in code_cells(nb) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    probe = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
    from cbft_core.study import presets

    assert probe.strip() == f"chapter ran with preset tiny {presets.get('tiny').n_train}"
    left = set(Path(tempfile.gettempdir()).glob("cbft-replication-*")) - scratch_before
    assert not left, f"the chapter left temporary folders behind: {sorted(map(str, left))}"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_committed_outputs_have_no_progress_bars(path: Path):
    """tqdm leaves widget views (a box holding a progress model) or text bars; neither may be committed."""
    from cbft_core.presentation import progress

    nb = nbformat.read(path, as_version=4)
    state = nb.metadata.get("widgets", {}).get(progress.WIDGET_STATE, {}).get("state", {})
    bars = [m for m in state.values() if m.get("model_name") in ("FloatProgressModel", "IntProgressModel")]
    assert not bars, f"{len(bars)} progress widgets in the saved widget state"
    for cell in code_cells(nb):
        for out in cell.get("outputs", []):
            text = str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
            assert not progress.is_progress_text(text), f"a progress bar in the outputs: {text[:120]!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_install_cell_follows_the_setting(path: Path):
    """The first code cell installs cbft_core[book] from the branch the book is built from (repository.branch
    of _config.yml, the branch whose reader notebooks the launch buttons open), one setting for every chapter."""
    from cbft_core.presentation import launch

    config = launch.read_config(REPO)
    first = code_cells(nbformat.read(path, as_version=4))[0].source
    assert first == launch.install_cell(config), (
        "the install cell differs from the setting: run `python -m cbft_core.presentation.launch`")
    branch = config["repository"]["branch"]
    assert f"@{branch}\"" in first and launch.install_ref(config) == branch
    assert "cbft_install_ref" not in (REPO / "_config.yml").read_text(), "a second, manual pin of the install ref"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_chapters_run_without_myst_nb(path: Path):
    """Chapters glue through cbft_core.presentation.record, never by importing myst_nb themselves."""
    for cell in code_cells(nbformat.read(path, as_version=4)):
        assert not re.search(r"^\s*(from|import) myst_nb", cell.source, re.M), "import myst_nb in a chapter"


def test_papermill_parameters_are_parsed(tmp_path: Path):
    """papermill sees exactly the names the parameters cell assigns (quotes in comments used to break this)."""
    from papermill.inspection import inspect_notebook

    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in code_cells(nb) if "parameters" in c.metadata.get("tags", []))
        assigned = set(re.findall(r"^(\w+)\s*=", cell.source, re.M))
        assert set(inspect_notebook(str(path))) == assigned, path.name


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_chapter_glues_numbers(path: Path):
    """Every chapter glues the numbers its prose quotes: they are what the regression check compares."""
    from cbft_core.presentation import regression

    assert regression.glued([nbformat.read(path, as_version=4)]), (
        f"the committed {path.name} glues no number: nothing of it would be checked on re-execution"
    )


def _fresh_glued(fresh_dir: Path, path: Path) -> dict:
    """The re-executed glued values of chapter ``path`` in ``fresh_dir``: its nbval run's glue log
    (``<stem>.glue.jsonl``, scripts/run-tests) or else an executed copy (``python -m cbft_core book --out``)."""
    from cbft_core.presentation import chapter_run, record, regression

    log = chapter_run.glue_log_path(fresh_dir / path.name)
    if log.is_file():
        return record.logged_values(log)
    executed = fresh_dir / path.name
    assert executed.is_file(), (
        f"neither a glue log {log.name} nor an executed {path.name} in {fresh_dir} (CBFT_FRESH_CHAPTERS)")
    return regression.glued([nbformat.read(executed, as_version=4)])


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_glued_numbers_reproduce(path: Path):
    """The numbers a chapter glues, re-executed, match the committed ones within their tolerance.

    Rule (cbft_core.presentation.regression, book/maintaining.md "Numeric regression check"):
    |re-executed − committed| ≤ max(3 · spread over seeds, floor of the number's kind), the spread
    being the standard deviation the chapter glues as ``<name>_std``; a number glued on one side
    only fails. The re-executed values are read from CBFT_FRESH_CHAPTERS: scripts/run-tests runs every
    chapter once under nbval at its committed parameters and each chapter's kernel logs what it glues
    to ``<chapter>.glue.jsonl`` there (CBFT_GLUE_LOG); a folder of chapters executed by
    ``python -m cbft_core book --out DIR`` works too. So this check executes nothing itself; it is
    skipped only when the variable is unset.
    """
    import os

    from cbft_core.presentation import regression

    fresh_dir = os.environ.get("CBFT_FRESH_CHAPTERS")
    if not fresh_dir:
        pytest.skip("CBFT_FRESH_CHAPTERS is not set: no re-executed chapters to compare")
    committed = regression.glued([nbformat.read(path, as_version=4)])
    fresh = _fresh_glued(Path(fresh_dir), path)
    assert committed, f"the committed {path.name} glues no number: nothing to compare"
    problems = regression.compare(committed, fresh, path.stem)
    assert not problems, f"{len(problems)} glued number(s) of {path.name} did not reproduce:\n" + "\n".join(problems)
