"""The chapters' test run under nbval: parameters injected, glued values logged as the notebook stores them,
a failing cell reported in one line that stops the run (cbft_core.presentation.chapter_run)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cbft_core.presentation import chapter_run, record
from conftest import REPO

CELLS = [
    ("markdown", "# A chapter"),
    ("code", "preset = 'cpu'"),
    ("markdown", "Some prose."),
    ("code", "import numpy as np\nfrom IPython.display import Markdown\n"
             "from cbft_core.presentation.record import glue, glue_mean_std\n"
             "glue('ch_preset', preset, display=False)\n"
             "glue('ch_barrier', np.float64(0.125), display=False)\n"
             "glue('ch_order', Markdown('**FT** first'), display=False)\n"
             "glue_mean_std('ch_acc', [0.5, 0.7])\n"
             "import os; print('progress', os.environ.get('CBFT_PROGRESS'))"),
]


def _notebook(extra: list[str] = ()) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in CELLS:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        nb.cells.append(cell)
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in extra]
    return nb


def _nbval(folder: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("CBFT_GLUE_LOG", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "cbft_core.presentation.chapter_run",
                           "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env", "-q",
                           "--rootdir", str(folder), *map(str, sorted(folder.glob("*.ipynb")))],
                          capture_output=True, text=True, env=env, timeout=300, cwd=folder)


def test_injected_parameters_follow_the_parameters_cell(tmp_path: Path):
    nbformat.write(_notebook(), tmp_path / "ch.ipynb")
    (copy,) = chapter_run.prepare([tmp_path / "ch.ipynb"], tmp_path / "out", {"preset": "tiny", "seeds": [0]})
    nb = nbformat.read(copy, as_version=4)
    assert [c.source for c in nb.cells[1:3]] == [
        "preset = 'cpu'", "# Parameters injected for this run\npreset = 'tiny'\nseeds = [0]"]
    assert nb.cells[2].metadata["tags"] == [chapter_run.INJECTED_TAG]
    (same,) = chapter_run.prepare([tmp_path / "ch.ipynb"], tmp_path / "plain")
    assert len(nbformat.read(same, as_version=4).cells) == len(CELLS), "nothing injected without parameters"


def test_glue_log_holds_what_the_notebook_stores(tmp_path: Path):
    """The nbval run's log equals the glued values of the same notebook executed (and saved) by nbclient."""
    from nbclient import NotebookClient

    nbformat.write(_notebook(), tmp_path / "src.ipynb")
    chapter_run.prepare([tmp_path / "src.ipynb"], tmp_path / "run", {"preset": "tiny"})
    proc = _nbval(tmp_path / "run")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    logged = record.logged_values(chapter_run.glue_log_path(tmp_path / "run" / "src.ipynb"))

    executed = nbformat.read(tmp_path / "run" / "src.ipynb", as_version=4)
    NotebookClient(executed, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    stored = dict(record.glued_values(executed))
    assert logged == stored
    assert logged["ch_preset"] == "tiny" and logged["ch_barrier"] == 0.125
    assert logged["ch_acc"] == pytest.approx(0.6) and logged["ch_acc_std"] == pytest.approx(0.1)
    assert "CBFT_GLUE_LOG" not in os.environ


def test_a_failing_cell_is_one_line_and_stops_the_run(tmp_path: Path):
    nbformat.write(_notebook(["x = 0.3\nassert x < 0.1, f'barrier {x}'\ny = 1", "open('ran', 'w')"]),
                   tmp_path / "a_chapter.ipynb")
    chapter_run.prepare([tmp_path / "a_chapter.ipynb"], tmp_path / "run", {"preset": "tiny"})
    nbformat.write(_notebook(["open('second_ran', 'w')"]), tmp_path / "run" / "b_chapter.ipynb")
    proc = _nbval(tmp_path / "run")
    assert proc.returncode != 0
    line = "a_chapter failed in cell 4 at `assert x < 0.1, f'barrier {x}'`: AssertionError: barrier 0.3"
    assert f"error: {line}" in proc.stderr, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "Traceback" not in proc.stdout, "the report is the one line, not the cell's traceback"
    assert not (tmp_path / "run" / "ran").exists(), "the chapter went on after the failing cell"
    assert not (tmp_path / "run" / "second_ran").exists(), "the run went on to the next chapter"


def test_a_broken_glue_log_is_named(tmp_path: Path):
    from cbft_core.errors import CbftError

    log = tmp_path / "x.glue.jsonl"
    log.write_text('{"name": "a", "text/plain": "1"}\nnot json\n')
    with pytest.raises(CbftError, match="line 2 is not a glue log entry"):
        record.logged_values(log)
