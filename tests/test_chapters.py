"""Chapter conventions and parameter injection, over every notebook in _toc.yml.

nbval (run by scripts/run-tests on book/) re-executes each chapter at its
committed default parameters; here each chapter also runs under papermill at
the `tiny` preset, which proves that the parameters cell drives the chapter.
"""
from __future__ import annotations

import re
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
