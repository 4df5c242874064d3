"""Chapter 2 (synthetic spurious data): its generated sentences, the per-class count table and the data browser."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from ...kernels import data
from ...kernels.data.cues import BOX, cue_class_values
from ...kernels.data.imageset import ImageSet
from .. import plots
from ..widgets import figure_png
from .prose import glue_md, glue_numbers, pct

__all__ = ["BROWSE_PER_CLASS", "glue_setup", "glue_box", "glue_ranges", "count_rows", "glue_counts", "browser"]

BROWSE_PER_CLASS = 20  # images of one class the browser shows


def _listed(values: Sequence[Any]) -> str:
    """``"0, 14 and 29"``."""
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def glue_setup(base: ImageSet, chance: float) -> None:
    """Sizes of the base set the prose quotes."""
    glue_numbers(ch02_num_classes=base.num_classes, ch02_chance=chance, ch02_browse_n=BROWSE_PER_CLASS)
    glue_md("ch02_chance_pct", pct(chance))


def glue_box(base: ImageSet) -> None:
    """The box's geometry and colour as the library draws them on ``base``'s images."""
    _, height, width = base.shape
    pos = data.cue_class_positions(base.num_classes, height, width)
    has_box = pos[:, 0] >= 0
    glue_md("ch02_box_size", f"{BOX}×{BOX}")
    glue_md("ch02_box_corners", _listed(sorted(set(pos[has_box, 0].tolist()))))
    glue_md("ch02_image_size", f"{height}×{width}")
    glue_md("ch02_box_colour", "(" + ", ".join(f"{v:g}" for v in cue_class_values(base.num_classes)[0].tolist()) + ")")
    glue_md("ch02_no_box_class", _listed([f"{k} ({base.classes[k]})" for k in torch.nonzero(~has_box)[:, 0].tolist()])
            if (~has_box).any() else "none")
    glue_md("ch02_extra_position", str(tuple(data.cue_class_positions(100, height, width)[9].tolist())))


def glue_ranges(halves: Mapping[str, torch.Tensor], domino: ImageSet) -> None:
    """The values the network sees in each half of a Domino, measured, in a sentence."""
    (top_name, top), (bottom_name, bottom) = halves.items()
    glue_numbers(ch02_top_min=top.min(), ch02_top_max=top.max(), ch02_bottom_min=bottom.min(),
                 ch02_bottom_max=bottom.max())
    glue_md("ch02_domino_shape", f"{domino.shape[1]}×{domino.shape[2]}")
    def interval(v: torch.Tensor) -> str:
        return f"[{float(v.min()):.2f}, {float(v.max()):.2f}]".replace("-", "−")

    glue_md("ch02_ranges_text", f"the network sees the {top_name} in {interval(top)} and the {bottom_name} in "
                                f"{interval(bottom)}")


def count_rows(classes: Sequence[str], images: torch.Tensor, with_cue: torch.Tensor) -> list[dict[str, str]]:
    """Table rows: per class, its training images, how many carry the cue and their fraction; then the total."""
    rows = [{"class": name, "images": str(int(n)), "with cue": str(int(c)), "fraction": f"{float(c / n):.3f}"}
            for name, n, c in zip(classes, images, with_cue)]
    total, cued = int(images.sum()), int(with_cue.sum())
    return rows + [{"class": "total", "images": str(total), "with cue": str(cued), "fraction": f"{cued / total:.3f}"}]


def glue_counts(proportion: float, images: torch.Tensor, with_cue: torch.Tensor) -> None:
    """The training set's size, its cue-carrying images and the proportion, for the prose."""
    glue_numbers(ch02_proportion=proportion, ch02_n_train=int(images.sum()), ch02_n_cue=int(with_cue.sum()))
    glue_md("ch02_cue_share", pct(float(with_cue.sum() / images.sum())))


def browser(base: ImageSet, simple: ImageSet, seed: int, proportion: float) -> Any:
    """Controls (cue, view, class, proportion) over a grid of the first :data:`BROWSE_PER_CLASS` training
    images of one class in one view; each choice redraws the grid (needs a running kernel)."""
    import ipywidgets as w

    browse = base.subset(slice(0, BROWSE_PER_CLASS * base.num_classes))
    controls = dict(
        cue=w.ToggleButtons(options=data.CUES, value="box", description="cue"),
        view=w.ToggleButtons(options=data.VIEWS, value="cue", description="view"),
        label=w.Dropdown(options=[(c, k) for k, c in enumerate(browse.classes)], value=0, description="class"),
        p=w.FloatSlider(value=proportion, min=0.0, max=1.0, step=0.1, description="proportion"),
    )
    picture = w.Image(format="png")

    def redraw(_: Any = None) -> None:
        cue, view, label, p = (controls[name].value for name in ("cue", "view", "label", "p"))
        shown = data.make_view(browse, cue, view, proportion=p, seed=seed,
                               simple=simple if cue == "dominoes" else None)
        title = f"{cue} / {view}: class {browse.classes[label]}, p = {p:.1f}"
        picture.value = figure_png(plots.class_samples(shown, label, title=title, n=BROWSE_PER_CLASS))

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([controls["cue"], controls["label"], controls["p"]]), controls["view"], picture])
