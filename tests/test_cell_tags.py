"""The pages show the science, not the plumbing: the tag rule of cbft_core.presentation.cell_tags on every chapter."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from cbft_core.presentation import cell_tags
from conftest import toc_notebooks

CHAPTERS = toc_notebooks()


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_plumbing_cells_are_hidden(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    first = code[0][1]
    assert cell_tags.INSTALL_TAG in first.metadata.get("tags", []), (
        f"{path.name}: the install cell is not tagged {cell_tags.INSTALL_TAG} (python -m cbft_core.presentation.launch)")
    for i, cell in code:
        tags = set(cell.metadata.get("tags", []))
        if cell_tags.is_plumbing(cell):
            assert tags & {"remove-cell", "remove-input"}, (
                f"{path.name} cell {i} only glues values or builds prose: tag it remove-cell\n{cell.source[:200]}")
        assert not cell_tags.hides_output(cell), f"{path.name} cell {i} is tagged remove-cell but shows output"


def _cell(source: str, outputs: list | None = None, tags: list | None = None):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": tags or []})
    cell.outputs = outputs or []
    return cell


GLUE_OUT = nbformat.v4.new_output("display_data", data={"application/papermill.record/text/plain": "1"},
                                  metadata={"scrapbook": {"name": "x", "mime_prefix": "application/papermill.record/"}})


def test_the_rule():
    prose = "parts = [f'{k}: {v:.1%}' for k, v in d.items()]\nglue('s', Markdown('; '.join(parts)), display=False)"
    assert cell_tags.is_plumbing(_cell(prose, [GLUE_OUT]))
    assert not cell_tags.is_plumbing(_cell(prose, [GLUE_OUT, nbformat.v4.new_output("stream", text="seen\n")])), \
        "a cell that shows something is not plumbing"
    assert not cell_tags.is_plumbing(_cell("r = experiments.path_result(cfg, 0, 'cue-cue')\nglue('b', r.barrier)",
                                           [GLUE_OUT])), "a cell that computes the study is not plumbing"
    assert not cell_tags.is_plumbing(_cell("x = 1\nprint(x)")), "no glue: not this kind of cell"
    assert cell_tags.hides_output(_cell("print(1)", [nbformat.v4.new_output("stream", text="1\n")], ["remove-cell"]))
    assert not cell_tags.hides_output(_cell(prose, [GLUE_OUT], ["remove-cell"]))
