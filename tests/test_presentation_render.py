"""Presentation helpers of the rendered book: tables, progress-bar cleaning, glue, bibliography labels, frames."""
from __future__ import annotations

import io

import nbformat
import numpy as np
import pytest
import torch
from matplotlib.text import Text
from PIL import Image

from cbft_core.errors import ConfigError
from cbft_core.kernels.data.imageset import ImageSet
from cbft_core.kernels.landscape import ExplorerGrid
from cbft_core.presentation import bibstyle, explorer, progress, record, tables
from cbft_core.presentation.widgets import figure_png

ROWS = [{"method": "FT", "clean": "91.0 ± 0.5 %", "holds": True},
        {"method": "A|B <x>", "clean": "12 %", "holds": False}]


def test_table_bundle_has_html_markdown_and_text():
    bundle = tables.Table(ROWS)._repr_mimebundle_()
    html = bundle["text/html"]
    assert html.count("<tr>") == 3 and html.count("<th>") == 3 and html.count("<td ") == 6
    assert html.count('data-label="clean"') == 2, "every cell names its column (stacked rows on a phone)"
    assert "A|B &lt;x&gt;" in html and "<strong>no</strong>" in html
    assert bundle["text/markdown"].splitlines()[3] == "| A\\|B <x> | 12 % | **no** |"
    text = bundle["text/plain"].splitlines()
    assert text[0].split() == ["method", "clean", "holds"] and text[2].split()[-1] == "yes"
    assert len({line.index("clean") for line in text[:1]}) == 1 and text[3].index("12 %") == text[0].index("clean")


def test_verdict_cells_are_marked():
    html = tables.to_html([{"claim": "x", "verdict": "holds"}])
    assert '<td data-label="verdict" class="cbft-verdict">holds</td>' in html


def test_table_column_order_and_errors():
    html = tables.to_html(ROWS, ["holds", "method"])
    assert html.index("<th>holds</th>") < html.index("<th>method</th>") and "clean" not in html
    with pytest.raises(ConfigError, match="nothing to tabulate"):
        tables.Table([])
    with pytest.raises(ConfigError, match=r"\['other'\]"):
        tables.Table(ROWS, ["method", "other"])


def _bar_notebook() -> nbformat.NotebookNode:
    """A notebook with a tqdm widget bar (HBox of HTML, FloatProgress, HTML), a slider that shares
    the bar's layout, a text bar on stderr and an ordinary output."""
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    state = {
        "lay": model("LayoutModel"), "lay2": model("LayoutModel"),
        "h1": model("HTMLModel", value="path"), "p": model("FloatProgressModel", layout="IPY_MODEL_lay"),
        "h2": model("HTMLModel", value="3/10"),
        "bar": model("HBoxModel", children=["IPY_MODEL_h1", "IPY_MODEL_p", "IPY_MODEL_h2"], layout="IPY_MODEL_lay2"),
        "slider": model("IntSliderModel", layout="IPY_MODEL_lay"),
    }
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {progress.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    view = lambda mid: nbformat.v4.new_output("display_data", data={  # noqa: E731
        progress.WIDGET_VIEW: {"model_id": mid, "version_major": 2, "version_minor": 0}, "text/plain": "x"})
    cell = nbformat.v4.new_code_cell("run()")
    cell.outputs = [view("bar"), view("slider"),
                    nbformat.v4.new_output("stream", name="stderr",
                                           text="path:  30%|███       | 3/10 [00:01<00:02, 3.10it/s]\r"),
                    nbformat.v4.new_output("stream", name="stdout", text="barrier 0.31\n")]
    nb.cells.append(cell)
    return nb


def test_clean_notebook_removes_bars_and_keeps_the_rest():
    nb = _bar_notebook()
    assert progress.clean_notebook(nb) == 2
    outs = nb.cells[0].outputs
    assert [o.output_type for o in outs] == ["display_data", "stream"] and outs[1].text == "barrier 0.31\n"
    assert outs[0].data[progress.WIDGET_VIEW]["model_id"] == "slider"
    state = nb.metadata["widgets"][progress.WIDGET_STATE]["state"]
    assert set(state) == {"slider", "lay"}, "the bar and what only it uses go; the shared layout stays"
    assert progress.clean_notebook(nb) == 0


def test_progress_policy_follows_the_environment(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert progress.enabled()
    with progress.non_interactive():
        assert not progress.enabled()
    assert progress.enabled()
    monkeypatch.setenv(progress.ENV, "no")
    assert not progress.enabled()
    assert progress.is_progress_text(" 40%|████      | 4/10 [00:01<00:02,  3.1it/s]")
    assert not progress.is_progress_text("accuracy 40% | loss 0.3")


def test_glued_values_read_back_both_forms():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("glue()")
    meta = lambda n: {"scrapbook": {"name": n, "mime_prefix": record.MIME_PREFIX}}  # noqa: E731
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={record.MIME_PREFIX + "text/plain": "0.25"}, metadata=meta("a")),
        nbformat.v4.new_output("display_data", data={record.MIME_PREFIX + "text/plain": "np.float64(0.5)"},
                               metadata=meta("b")),
        nbformat.v4.new_output("display_data", data={"text/plain": "7"}),
    ]
    nb.cells.append(cell)
    assert dict(record.glued_values(nb)) == {"a": 0.25, "b": 0.5}


class _Person:
    def __init__(self, last):
        self.last_names = [last]


class _Entry:
    def __init__(self, *authors, year="2023", key="k"):
        self.persons = {"author": [_Person(a) for a in authors]}
        self.fields = {"year": year}
        self.key = key


def test_author_year_labels():
    assert bibstyle.author_year_label(_Entry("Lubana", "Bigelow", "Dick")) == "Lubana et al., 2023"
    assert bibstyle.author_year_label(_Entry("Krizhevsky", year="2009")) == "Krizhevsky, 2009"
    assert bibstyle.author_year_label(_Entry("Kumar", "Raghunathan")) == "Kumar and Raghunathan, 2023"


def _grid(k: int = 3) -> tuple[ExplorerGrid, ImageSet]:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(3, 6, k))
    grid = ExplorerGrid(bends=np.array([0.0, 0.5, 1.0]), ts=np.linspace(0, 1, 6), loss=rng.random((3, 6)) * 2,
                        acc=rng.random((3, 6)), probs=probs, sample_index=np.arange(k), labels=np.arange(k),
                        classes=tuple(f"class{c}" for c in range(10)))
    images = ImageSet(torch.randint(0, 255, (k, 3, 32, 32), dtype=torch.uint8), torch.arange(k),
                      grid.classes)
    return grid, images


def test_explorer_frames_are_legible_and_light():
    """Shown unscaled (no wider than the text column), every text of a frame is at least 10 px high."""
    grid, images = _grid()
    fig = explorer.render_frame(grid, 1, 2, images, labels=("scratch A", "scratch B"))
    texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert texts, "the frame has no text"
    smallest = min(t.get_fontsize() for t in texts) * explorer.FRAME_DPI / 72
    assert smallest >= 10, f"smallest text {smallest:.1f} px at {explorer.FRAME_DPI} dpi"
    png = figure_png(fig, dpi=explorer.FRAME_DPI)
    width, height = Image.open(io.BytesIO(png)).size
    assert width <= 800, f"frame {width} px wide: the page would scale it (and its text) down"
    assert len(png) < 60_000, f"one frame weighs {len(png)} bytes"


def test_regression_rule():
    from cbft_core.presentation import regression

    committed = {"ch03_barrier_cue_nocue": 0.50, "ch03_barrier_cue_nocue_std": 0.06, "ch05_cbft_rand_img": 0.12,
                 "ch02_n_cue": 4000, "ch06_paper_low": 0.69}
    assert regression.tolerance("ch03_barrier_cue_nocue", committed) == pytest.approx(0.18)
    assert regression.tolerance("ch05_cbft_rand_img", committed) == 0.05
    assert regression.tolerance("ch02_n_cue", committed) == 0.0
    fresh = dict(committed, ch03_barrier_cue_nocue=0.66, ch05_cbft_rand_img=0.15)
    assert regression.compare(committed, fresh) == []
    fresh.update(ch03_barrier_cue_nocue=0.70, ch02_n_cue=4001)
    del fresh["ch06_paper_low"]
    problems = regression.compare(committed, fresh, "ch03")
    assert len(problems) == 3
    assert "ch03_barrier_cue_nocue: committed 0.5, re-executed 0.7" in problems[0]
    assert "ch02_n_cue: committed 4000, re-executed 4001" in problems[1] and "ch06_paper_low" in problems[2]


def test_executed_chapters_keep_no_progress_bars(tmp_path):
    """The CLI's execution path (python -m cbft_core chapter|book|refresh) leaves no bar in the notebook."""
    from cbft_core.presentation import cli

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint('progress', os.environ.get('CBFT_PROGRESS'))"),
                nbformat.v4.new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3), disable=False):\n"
                                          "    pass\nprint('done')")]
    src = tmp_path / "bars.ipynb"
    nbformat.write(nb, src)
    out = cli.execute_chapter(src, tmp_path / "out", {}, progress=False)
    done = nbformat.read(out, as_version=4)
    texts = [o.get("text", "") for c in done.cells for o in c.outputs]
    assert "progress 0\n" in texts and "done\n" in texts
    views = [o for c in done.cells for o in c.outputs if progress.WIDGET_VIEW in o.get("data", {})]
    state = done.metadata.get("widgets", {}).get(progress.WIDGET_STATE, {}).get("state", {})
    assert not views and not any(m["model_name"] == "FloatProgressModel" for m in state.values())
    assert not any(progress.is_progress_text(t) for t in texts)


def _glued_notebook(**values) -> nbformat.NotebookNode:
    """A notebook whose one cell glued ``values`` the way record.glue writes them."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("glue()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={record.MIME_PREFIX + "text/plain": repr(v)},
                                           metadata={"scrapbook": {"name": n, "mime_prefix": record.MIME_PREFIX}})
                    for n, v in values.items()]
    nb.cells.append(cell)
    return nb


def test_regression_of_a_notebook_pair():
    """Committed and re-executed notebooks: a move beyond tolerance, a spread that widens it, one-sided names."""
    from cbft_core.presentation import regression

    committed = regression.glued([_glued_notebook(ch05_cbft_rand_img=0.40, ch03_barrier_mid=0.30,
                                                  ch03_barrier_mid_std=0.05, ch02_label="box", ch01_gone=1.0)])
    fresh = regression.glued([_glued_notebook(ch05_cbft_rand_img=0.46, ch03_barrier_mid=0.44,
                                              ch03_barrier_mid_std=0.05, ch02_label="dominoes",
                                              ch01_new=2.0)])
    problems = regression.compare(committed, fresh, "ch05")
    assert problems == [
        "ch05: ch05_cbft_rand_img: committed 0.4, re-executed 0.46 (|difference| 0.06 > tolerance 0.05)",
        "ch05: ch02_label: committed 'box', re-executed 'dominoes'",
        "ch05: ch01_gone was glued in the committed outputs (1.0) but not re-executed",
        "ch05: ch01_new is glued by the re-executed chapter (2.0) but not in the committed outputs: refresh them",
    ]  # ch03_barrier_mid moved 0.14: beyond its floor 0.1, within 3 x its glued spread 0.05
    assert regression.compare(committed, dict(committed, ch03_barrier_mid=float("nan")))[0].startswith(
        "ch03_barrier_mid: committed 0.3, re-executed nan")


def _run_cells(tmp_path, *sources: str) -> tuple[nbformat.NotebookNode, str]:
    """Execute a notebook of ``sources`` through the CLI's path; (executed notebook, error text or '')."""
    from cbft_core.errors import CbftError
    from cbft_core.presentation import cli

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, tmp_path / "claim.ipynb")
    try:
        out = cli.execute_chapter(tmp_path / "claim.ipynb", tmp_path / "out", {}, progress=False)
    except CbftError as exc:
        return nbformat.read(tmp_path / "out" / "claim.ipynb", as_version=4), str(exc)
    return nbformat.read(out, as_version=4), ""


def test_glue_mean_std_round_trip(tmp_path):
    """Glued in a kernel and read back: the mean and population std over seeds, not shown, widening the tolerance."""
    from cbft_core.presentation import regression

    values = [0.1, 0.3, 0.2, 0.6]
    done, error = _run_cells(tmp_path, "from cbft_core.presentation.record import glue_mean_std\n"
                                       f"print(glue_mean_std('ch03_barrier_mid', {values}))")
    assert not error
    glued = dict(record.glued_values(done))
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    assert glued == {"ch03_barrier_mid": pytest.approx(mean), "ch03_barrier_mid_std": pytest.approx(std)}
    assert done.cells[0].outputs[-1]["text"] == f"{(mean, std)}\n"  # returned, and nothing else shown
    assert [o["output_type"] for o in done.cells[0].outputs] == ["display_data", "display_data", "stream"]
    assert regression.tolerance("ch03_barrier_mid", glued) == pytest.approx(3 * std)
    with pytest.raises(ConfigError, match="at least one"):
        record.glue_mean_std("x", [])


def test_failed_claim_names_chapter_cell_and_line(tmp_path):
    """An assertion cell that fails: one line naming the notebook, the cell, its raising line and the message."""
    _, error = _run_cells(tmp_path, "x = 0.3", "y = 1\nassert x < 0.1, f'barrier {x}'\nz = 2")
    assert error.startswith("claim.ipynb failed in cell 1 at `assert x < 0.1, f'barrier {x}'`: "
                            "AssertionError: barrier 0.3 (executed notebook: ")
    assert "\n" not in error
