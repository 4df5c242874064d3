"""Every figure of the library is legible on a 400 px phone, keeps its legends off the data, and records
its smallest text in its PNG (what the browser test reads)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from cbft_core.presentation import plots  # noqa: E402
from figure_samples import builders  # noqa: E402

PHONE_COLUMN_PX = 368  # the text column of the book at a 400 px wide window (measured in Chromium)
MIN_SCREEN_PX = 9.0


def _png(fig, dpi: float = 100) -> Image.Image:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("name", list(builders()))
def test_figure_is_legible_on_a_phone(name: str):
    fig = builders()[name]()
    try:
        width, _ = fig.get_size_inches()
        assert width <= plots.FIG_WIDTH + 1e-6, f"{name}: {width:.1f} in wide (at most {plots.FIG_WIDTH})"
        smallest = plots.smallest_text_pt(fig)
        assert smallest >= plots.MIN_FONT_PT, f"{name}: text of {smallest} pt"
        image = _png(fig)
        natural = image.size[0]
        shown = min(natural, PHONE_COLUMN_PX)
        on_phone = smallest * 100 / 72 * shown / natural
        assert on_phone >= MIN_SCREEN_PX, f"{name}: smallest text {on_phone:.1f} px at 400 px ({natural} px PNG)"
    finally:
        plt.close(fig)


@pytest.mark.parametrize("name", list(builders()))
def test_legends_cover_no_axes(name: str):
    fig = builders()[name]()
    try:
        fig.draw_without_rendering() if hasattr(fig.canvas, "get_renderer") else _png(fig)
        legends = [leg for ax in fig.axes for leg in [ax.get_legend()] if leg is not None] + list(fig.legends)
        for legend in legends:
            box = legend.get_window_extent()
            for ax in fig.axes:
                if ax.get_visible() and ax.has_data():
                    overlap = box.intersection(box, ax.bbox)
                    assert overlap is None or overlap.width * overlap.height < 1, (
                        f"{name}: a legend ({[t.get_text() for t in legend.get_texts()][:2]}) covers an axes")
    finally:
        plt.close(fig)


def test_zero_barriers_read_as_measured_zeros():
    fig = builders()["barrier_bars_zero"]()
    try:
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.texts]
        assert labels.count("0.000") == 7, labels
        assert any("0.000" in t and "every" in t for t in labels), "a note that every barrier is zero"
        low, high = ax.get_ylim()
        assert low < 0 < high and high > 0.05, "the zero line sits inside a visible range"
        assert len([line for line in ax.lines if len(line.get_xdata()) == 2]) >= 7, "a mean mark on every bar"
    finally:
        plt.close(fig)


def test_pyplot_figures_record_their_smallest_text():
    """A chapter's own pyplot figure, shown inline (IPython's print_figure) or saved, carries the stamp."""
    from IPython.core.pylabtools import print_figure

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    ax.set_title("small", fontsize=7)
    try:
        inline = Image.open(io.BytesIO(print_figure(fig, "png", bbox_inches="tight")))
        assert float(inline.info[plots.FONT_KEY]) == pytest.approx(7.0)
        assert float(inline.info[plots.DPI_KEY]) == pytest.approx(fig.dpi)
        saved = _png(fig, dpi=80)
        assert float(saved.info[plots.DPI_KEY]) == pytest.approx(80)
    finally:
        plt.close(fig)


def test_explorer_frames_record_their_text():
    from cbft_core.presentation import explorer
    from cbft_core.presentation.widgets import figure_png

    png = figure_png(builders()["explorer_frame"](), dpi=explorer.FRAME_DPI)
    info = Image.open(io.BytesIO(png)).info
    assert float(info[plots.FONT_KEY]) >= plots.MIN_FONT_PT and float(info[plots.DPI_KEY]) == explorer.FRAME_DPI
