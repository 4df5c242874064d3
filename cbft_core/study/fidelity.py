"""The book and the authors' code: every procedural choice, the authors' (file and line), the book's, and the departures.

The authors' public code (github.com/EkdeepSLubana/MMC) is the reference for
every procedural choice of the replication. :data:`CHOICES` lists them: where
the book follows the code exactly, ``departs`` is False; where it departs on
purpose, the departure is a named option (a preset setting) whose book and
authors' values are given, and its measured effect on the headline numbers
is read from :data:`EFFECTS_FILE` (written by ``benchmarks/science_trials.py
--stages departures``). :func:`rows` gives the book's table; the tests check
that every stated default is the code's default and that every measured
effect was measured at it.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import ConfigError
from . import presets

__all__ = ["Choice", "CHOICES", "HEADLINES", "EFFECTS_FILE", "effects", "rows"]

EFFECTS_FILE = "departures.json"  # in cbft_core/study/schemas/
# the headline numbers every departure is measured on, and how the table names them
HEADLINES: dict[str, str] = {"cue_nocue": "cue-nocue barrier", "cue_rand_img": "cue model rand-img",
                             "cbft_rand_img": "CBFT rand-img"}


@dataclass(frozen=True)
class Choice:
    """One procedural choice of the replication."""

    topic: str
    authors: str               # what the authors' code does
    where: str                 # file and lines in EkdeepSLubana/MMC
    book: str                  # what the book does by default
    setting: str | None = None  # the preset setting that selects it (a departure's named option)
    authors_value: Any = None  # the setting's value that reproduces the authors' choice

    @property
    def departs(self) -> bool:
        """Whether the book's default differs from the authors' code."""
        return self.setting is not None


CHOICES: tuple[Choice, ...] = (
    Choice("Box cue", "3×3 box flush with the image edge (rows and columns 0, 14, 29), position = class, "
           "green (0, 1, 0) in normalised units; class 9 of 10 without a box",
           "syndata.py:47–94", "the same; the colour stored as the nearest 8-bit level (1/255 from the "
           "authors' value)"),
    Choice("Cue proportion", "the first int(n_k·p) training images of each class carry the cue",
           "syndata.py:198–206", "the same"),
    Choice("Dominoes", "the simple image on top left in [0, 1] (blank: 0), the complex one below in [−1, 1]; "
           "the j-th image of class k topped by the j-th simple image of class k",
           "syndata.py:97–136, 147–162, 209–216", "the same (pairs cycle when the simple set is smaller)"),
    Choice("Counterfactual views", "rand-cue: a cue of a random class; rand-img: a random image of the "
           "whole set with the true class's cue; cue views at proportion 1",
           "syndata.py:35–44, 120–131; mode_connect.py:162–163", "the same"),
    Choice("Models compared", "cue and cue-free models trained independently from scratch",
           "trainer.py:100–128", "children of one shared parent (the initialisation, or a few clean epochs), "
           "with same-mechanism controls", "parent_epochs"),
    Choice("BatchNorm along a path: data", "one full pass over the clean training set at every t, shared "
           "by every view", "mode_connect.py:158–186", "the first bn_images clean training images at every t, "
           "shared by every view", "bn_images"),
    Choice("BatchNorm along a path: averaging", "running average with momentum 0.1, from the interpolated "
           "statistics (no reset)", "mode_connect.py:179–186", "reset, then the exact average over those images",
           "bn_average", "running"),
    Choice("Data the paths are scored on", "the training split (--eval_data train)", "train_eval_mc.py:50, "
           "155–166", "the test split", "eval_split", "train"),
    Choice("Quadratic midpoint", "a freshly initialised network; t ~ U(0, 1) per batch; learning rate × "
           "2t(1 − t) with momentum 0.9 and weight decay 1e-4; data with the cue on every image; ×0.1 every "
           "10 of 15 epochs", "mode_connect.py:65–149; train_eval_mc.py:41–44", "the same (epochs and decay "
           "scaled by the preset)"),
    Choice("Naive fine-tuning", "SGD 0.01, momentum 0.9, weight decay 1e-4, cosine to 0 stepped after each "
           "update, 20 epochs, batch 256; the clean set drawn with replacement",
           "mech_fine_tuning.py:64–90, 243, 306–307; utils.py:13–29", "the same (epochs by the preset)"),
    Choice("LLRT", "eval-mode features, a fresh linear head, SGD lr 30, momentum 0.9, no weight decay, cosine, "
           "200 epochs", "mech_fine_tuning.py:25–60, 293", "the same schedule; the head's learning rate is a "
           "preset setting", "llrt_lr", 30.0),
    Choice("CBFT", "per batch a barrier step at t = 0.5 + 0.5·clip(z, −0.5, 0.5) on θ(t) = t·θc + (1 − t)·θ "
           "(gradient × (1 − t)), then CE + λ·invariance / K; invariance off in the warm-up epoch; learning "
           "rate held until epoch warm-up + 1, then cosine (never 0); as many batches as the clean set gives",
           "mech_fine_tuning.py:94–198", "the same"),
    Choice("CBFT margin and λ", "margin 1, λ 1", "mech_fine_tuning.py:94", "margin and λ are preset settings",
           "cbft_margin", 1.0),
)


@functools.lru_cache(maxsize=1)
def effects() -> dict[str, Any]:
    """The measured effects of the departures (:data:`EFFECTS_FILE`), keyed by setting."""
    try:
        text = resources.files(__package__).joinpath("schemas", EFFECTS_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{EFFECTS_FILE}: not valid JSON ({exc})") from None


def _fmt(values: list[float], pct: bool) -> str:
    mean = sum(values) / len(values)
    return f"{100 * mean:.1f} %" if pct else f"{mean:.3f}"


def rows(preset: str = "cpu") -> list[dict[str, str]]:
    """The table "The book and the authors' code": one row per choice, departures with their measured effect."""
    cfg = presets.get(preset)
    measured = effects()
    out = []
    for c in CHOICES:
        book = c.book if c.setting is None else f"{c.book} ({c.setting} = {getattr(cfg, c.setting)!r})"
        effect = "—" if not c.departs else "not measured"
        entry = measured.get(c.setting) if c.setting else None
        if entry:
            parts = []
            for key, label in HEADLINES.items():
                ours, theirs = entry["book"].get(key), entry["authors"].get(key)
                if ours is None or theirs is None:
                    continue
                pct = key.endswith("rand_img")
                parts.append(f"{label} {_fmt(ours, pct)} → {_fmt(theirs, pct)}")
            effect = "; ".join(parts) + f" (book → authors, seeds {entry['seeds']})"
        out.append({"choice": c.topic, "authors' code": f"{c.authors} ({c.where})", "book": book,
                    "effect of the departure": effect})
    return out
