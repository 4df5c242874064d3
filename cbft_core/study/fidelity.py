"""The book and the authors' code: every procedural choice, where the authors make it, what the book does, and
what each departure changes.

The authors' public code (:data:`AUTHORS_REPO` at :data:`AUTHORS_COMMIT`) is the
reference for every procedural choice of the replication. :data:`CHOICES`
lists them. A choice names the settings (:class:`Option`) that carry it, each
with the book's value at :data:`REFERENCE_PRESET` and the value that
reproduces the authors' code; a choice *departs* when one of them differs, or
when no setting reproduces the authors' choice (``authors=None``).

A departure's effect is measured on the :data:`HEADLINES` numbers, per seed,
at the book's value and at the authors' (:func:`measure`; ``python -m
cbft_core.study.fidelity`` writes them). Only the headline numbers whose cache
key the departure changes are measured (:func:`moves`): a setting that no
headline number reads cannot move it. The measurements live in
``schemas/departures.json`` (:data:`EFFECTS_FILE`)::

    {"format": "cbft_core.departures/1",
     "departures": {
       "<choice key>": {
         "preset": "cpu", "seeds": [0, 1, 2],
         "settings": {"<setting>": {"book": <value>, "authors": <value>}, ...},   # the departing options
         "book":    {"<headline key>": [<one number per seed>], ...},
         "authors": {"<headline key>": [<one number per seed>], ...}}}}

:func:`rows` is the book's table. ``tests/test_fidelity.py`` checks that every
stated book value is the code's current default, that every measurement was
made at those values, and that every cited line range exists in the authors'
files and holds the token it names.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError
from ..kernels import connectivity
from . import cache, graph, presets
from .presets import Preset
from .replication import fmt_loss, fmt_pct

__all__ = ["AUTHORS_REPO", "AUTHORS_COMMIT", "REFERENCE_PRESET", "FORMAT", "EFFECTS_FILE", "Ref", "Option",
           "Choice", "Headline", "CHOICES", "HEADLINES", "choice", "moves", "effects", "measure", "rows", "main"]

AUTHORS_REPO = "https://github.com/EkdeepSLubana/MMC"
AUTHORS_COMMIT = "f884ca780441dbd1b7cee0393c9df13950e7f13b"  # the commit the line numbers refer to
REFERENCE_PRESET = "cpu"  # the preset whose values the table states and the measurements use
FORMAT = "cbft_core.departures/1"
EFFECTS_FILE = "departures.json"  # in cbft_core/study/schemas/


@dataclass(frozen=True)
class Ref:
    """Lines ``first``–``last`` of ``file`` in the authors' code, which contain ``token``."""

    file: str
    first: int
    last: int
    token: str

    def __str__(self) -> str:
        return f"{self.file}:{self.first}" if self.first == self.last else f"{self.file}:{self.first}–{self.last}"


@dataclass(frozen=True)
class Option:
    """One setting that carries a choice: a preset setting, or a kernel constant named ``module.NAME``.

    ``book``: its value at :data:`REFERENCE_PRESET` (a test checks it);
    ``authors``: the value that reproduces the authors' code, a function of
    the preset where it scales with the data, or ``None`` when no value does.
    """

    name: str
    book: Any
    authors: Any = None
    note: str = ""  # how the authors' value is read, e.g. "all training images"

    @property
    def is_setting(self) -> bool:
        """Whether ``name`` is a preset setting (else a kernel constant)."""
        return "." not in self.name

    def current(self, cfg: Preset) -> Any:
        """The value the code uses now under ``cfg``."""
        if self.is_setting:
            return getattr(cfg, self.name)
        module, constant = self.name.rsplit(".", 1)
        return getattr(importlib.import_module(f"cbft_core.kernels.{module}"), constant)

    def authors_at(self, cfg: Preset) -> Any:
        """The authors' value under ``cfg`` (``None``: no value reproduces it)."""
        return self.authors(cfg) if callable(self.authors) else self.authors

    def departs(self, cfg: Preset) -> bool:
        """Whether the book's value differs from the authors' (or none reproduces theirs)."""
        theirs = self.authors_at(cfg)
        return theirs is None or theirs != self.book


@dataclass(frozen=True)
class Choice:
    """One procedural choice of the replication."""

    key: str
    topic: str
    authors: str                   # what the authors' code does
    where: tuple[Ref, ...]
    book: str                      # what the book does
    options: tuple[Option, ...] = ()

    def departing(self, cfg: Preset) -> list[Option]:
        """The options whose book value differs from the authors'."""
        return [o for o in self.options if o.departs(cfg)]

    def departs(self, cfg: Preset) -> bool:
        """Whether the book departs from the authors' code in this choice."""
        return bool(self.departing(cfg))

    def authors_overrides(self, cfg: Preset) -> dict[str, Any] | None:
        """The preset settings that reproduce the authors' choice; ``None`` when no setting does."""
        options = self.departing(cfg)
        if not options or any(not o.is_setting or o.authors_at(cfg) is None for o in options):
            return None
        return {o.name: o.authors_at(cfg) for o in options}


@dataclass(frozen=True)
class Headline:
    """A number every departure is measured on: the node it is read from, how, and the node it depends on.

    ``model``: for a number measured on a fine-tuned model's test views, that
    model's node (its summary node also holds the path back to θc, whose
    settings do not touch the number); ``None``: the node read.
    """

    label: str
    step: str
    params: Mapping[str, Any]
    read: Callable[[Any], float]
    percent: bool
    model: tuple[str, Mapping[str, Any]] | None = None


HEADLINES: dict[str, Headline] = {
    "cue_nocue": Headline("cue-nocue barrier", "path", {"pair": "cue-nocue"},
                          lambda r: connectivity.barrier(r.loss["cue"], r.ts)[0], False),
    "cue_rand_img": Headline("cue model rand-img", "child-views", {}, lambda v: v["rand-img"], True),
    "cbft_rand_img": Headline("CBFT rand-img", "finetune-summary", {"method": "cbft"},
                              lambda s: s["views"]["rand-img"], True, ("finetuned", {"method": "cbft"})),
    "lpft_clean": Headline("LP-FT clean", "finetune-summary", {"method": "lpft"}, lambda s: s["views"]["clean"], True,
                           ("finetuned", {"method": "lpft"})),
    "lpft_rand_img": Headline("LP-FT rand-img", "finetune-summary", {"method": "lpft"},
                              lambda s: s["views"]["rand-img"], True, ("finetuned", {"method": "lpft"})),
}
_TEST_DATA = ("dataset", "simple", "n_test")  # what a number on the test views reads besides its model


def _scaled(fraction: float) -> Callable[[Preset], int]:
    return lambda cfg: round(fraction * cfg.n_train)


CHOICES: tuple[Choice, ...] = (
    Choice("box", "Box cue", "a 3×3 box at the class's position on a 3×3 grid flush with the image edge, "
           "green (0, 1, 0) in normalised units, replacing the pixels under it; no box for class 9 of 10",
           (Ref("syndata.py", 39, 45, "(m == 0).all(axis=0)"),
            Ref("syndata.py", 50, 96, "hsv_to_rgb([color, 1, 255])")),
           "the same; the colour is stored as the nearest 8-bit level (1/255 from the authors' value)"),
    Choice("proportion", "Cue proportion", "the first int(n_k·p) training images of each class k carry the cue",
           (Ref("syndata.py", 201, 210, "int(idx.shape[0] * prob)"),), "the same"),
    Choice("dominoes", "Dominoes", "the simple image on top, left in [0, 1] (blank without the cue), the complex one "
           "below in [−1, 1]; the j-th image of class k topped by the j-th simple image of class k",
           (Ref("syndata.py", 123, 138, "torch.cat((image_fmnist, image), dim=1)"),
            Ref("syndata.py", 156, 161, "T.Resize((32, 32))"), Ref("syndata.py", 214, 220, "idx_fmnist[i]")),
           "the same (the pairs cycle when the simple set is smaller)"),
    Choice("views", "Counterfactual views", "rand-cue: the cue of a random class; rand-img: a random image of the "
           "whole set with the true class's cue; the cue views at proportion 1",
           (Ref("syndata.py", 37, 37, "if self.randomize_img else image"),
            Ref("syndata.py", 51, 51, "np.random.randint(0, 10) if self.randomize_cue"),
            Ref("mode_connect.py", 162, 163, "cue_proportion=1.0")), "the same"),
    Choice("scale", "Images, network and training", "CIFAR-10 (FashionMNIST on top for Dominoes), VGG-13, SGD at "
           "0.1 with momentum 0.9 and weight decay 1e-4, batch 256, 100 epochs, ×0.1 every 40",
           (Ref("trainer.py", 77, 81, "--lr_decay_epoch"), Ref("trainer.py", 119, 120, "StepLR")),
           "procedural shapes (digits on top), a small CNN, a cosine schedule and fewer epochs, so that the book runs "
           "on a CPU; the paper preset uses the authors' settings",
           (Option("dataset", "shapes", "cifar10"), Option("simple", "digits", "fashionmnist"),
            Option("model", "cnn", "vgg13"), Option("lr", 0.05, 0.1), Option("schedule", "cosine", "step"),
            Option("step_every", None, 40), Option("child_epochs", 10, 100))),
    Choice("models", "Models compared", "cue and cue-free models, each trained from its own initialisation",
           (Ref("trainer.py", 110, 115, "create_model"), Ref("train_eval_mc.py", 58, 65, "not_pretrained")),
           "children of one shared parent, compared with same-mechanism controls",
           (Option("parent_epochs", 0, None, "no setting trains the two models from separate initialisations"),)),
    Choice("bn-data", "BatchNorm along a path: images", "one full pass over the clean training set at every t, "
           "shared by every view", (Ref("mode_connect.py", 158, 159, "cue_type='nocue'"),
                                    Ref("mode_connect.py", 179, 186, "for x, _ in trainloader")),
           "the first clean training images at every t, shared by every view",
           (Option("bn_images", 2000, lambda cfg: cfg.n_train, "all training images"),)),
    Choice("bn-average", "BatchNorm along a path: averaging", "a running average with momentum 0.1, starting from "
           "the interpolated statistics", (Ref("mode_connect.py", 30, 31, "running_mean.data = alpha"),
                                          Ref("mode_connect.py", 179, 186, "net_interpolated.train()")),
           "statistics reset, then the exact average over those images",
           (Option("bn_average", "cumulative", "running"),)),
    Choice("eval-split", "Data the paths are scored on", "the training split (--eval_data train)",
           (Ref("train_eval_mc.py", 50, 50, "--eval_data"), Ref("mode_connect.py", 162, 162, "setup['eval_data']")),
           "the test split", (Option("eval_split", "test", "train"),)),
    Choice("path-points", "Points along a path", "5 interpolations: t = 0, 0.2, …, 1",
           (Ref("train_eval_mc.py", 51, 51, "--n_interpolations"),
            Ref("mode_connect.py", 168, 168, "1 / setup['n_interpolations']")),
           "more points, so that the maximum of the loss is found more precisely",
           (Option("path_points", 11, 6),)),
    Choice("midpoint", "Quadratic midpoint", "a freshly initialised network; t ~ U(0, 1) per batch; learning rate × "
           "2t(1 − t) with momentum 0.9 and weight decay 1e-4; data with the cue on every image; ×0.1 every 10 of "
           "15 epochs", (Ref("mode_connect.py", 65, 149, "2 * alpha * (1-alpha)"),
                         Ref("train_eval_mc.py", 41, 44, "--decay_epochs")),
           "the same, with fewer epochs", (Option("midpoint_lr", 0.1, 0.1), Option("midpoint_epochs", 6, 15),
                                           Option("midpoint_step_every", 4, 10))),
    Choice("naive-ft", "Naive fine-tuning", "SGD at 0.01, momentum 0.9, weight decay 1e-4, a cosine to 0 stepped "
           "after each update, 20 epochs, batch 256; 2 500 clean images drawn with replacement",
           (Ref("mech_fine_tuning.py", 63, 90, "def fine_tuning"), Ref("mech_fine_tuning.py", 209, 218, "--start_lr"),
            Ref("mech_fine_tuning.py", 243, 243, "np.random.randint(0, 50000, args.n_clean)"),
            Ref("mech_fine_tuning.py", 306, 307, "weight_decay=1e-4"), Ref("utils.py", 13, 29, "class LR_Scheduler")),
           "the same", (Option("ft_lr", 0.01, 0.01), Option("momentum", 0.9, 0.9),
                        Option("ft_weight_decay", 1e-4, 1e-4), Option("ft_epochs", 20, 20),
                        Option("ft_batch_size", 256, 256), Option("n_clean", 2500, 2500))),
    Choice("llrt", "LLRT", "eval-mode features, a fresh linear head, SGD at 30 with momentum 0.9 and no weight decay, "
           "a cosine over 200 epochs", (Ref("mech_fine_tuning.py", 24, 60, "def LLRT"),
                                        Ref("mech_fine_tuning.py", 293, 293, "n_epochs=200, base_lr=30")),
           "the same schedule, with another learning rate for the head",
           (Option("llrt_lr", 1.0, 30.0), Option("finetune.HEAD_EPOCHS", 200, 200))),
    Choice("cue-data", "CBFT's cue data", "47 500 of the 50 000 training images drawn with replacement, with the "
           "cue model's cue proportion", (Ref("mech_fine_tuning.py", 210, 210, "--n_cue"),
                                         Ref("mech_fine_tuning.py", 247, 249, "np.random.randint(0, 50000, args.n_cue)")),
           "the same draw, of fewer images", (Option("n_cue", 5000, _scaled(0.95), "95 % of the training images"),)),
    Choice("cbft", "CBFT", "per batch a barrier step at t = 0.5 + 0.5·clip(z, −0.5, 0.5) on θ(t) = t·θc + (1 − t)·θ "
           "(gradient × (1 − t)), then CE + λ·invariance / K; no invariance in the warm-up epoch; the learning rate "
           "held until epoch warm-up + 1, then a cosine that never reaches 0; margin 1, λ 1",
           (Ref("mech_fine_tuning.py", 93, 198, "def CBFT"), Ref("mech_fine_tuning.py", 94, 94, "loss_margin=1.0"),
            Ref("mech_fine_tuning.py", 185, 186, "if(epoch > warmup_epochs)")),
           "the same", (Option("cbft_lr", 0.01, 0.01), Option("cbft_epochs", 20, 20),
                        Option("cbft_warmup_epochs", 1, 1), Option("cbft_margin", 1.0, 1.0),
                        Option("cbft_lambda", 1.0, 1.0))),
)


def choice(key: str) -> Choice:
    """The choice called ``key`` (ConfigError naming the known keys otherwise)."""
    for c in CHOICES:
        if c.key == key:
            return c
    raise ConfigError(f"choice {key!r} is not one of {[c.key for c in CHOICES]}")


def _depends(cfg: Preset, key: str) -> str:
    """The cache key of the node headline ``key`` depends on (seed 0)."""
    h = HEADLINES[key]
    step, params = h.model or (h.step, h.params)
    return graph.key(cfg, graph.node(cfg, step, seed=0, **params))


def needs_download(c: Choice, cfg: Preset) -> bool:
    """Whether reproducing the authors' choice ``c`` changes the data set (their images need a download)."""
    return "dataset" in (c.authors_overrides(cfg) or {})


def moves(c: Choice, cfg: Preset | None = None) -> tuple[str, ...] | None:
    """The headline numbers the departure ``c`` can change: those whose cache key its authors' settings change.

    ``None`` when no setting reproduces the authors' choice (nothing can be measured).
    """
    cfg = presets.get(REFERENCE_PRESET) if cfg is None else cfg
    overrides = c.authors_overrides(cfg)
    if overrides is None:
        return None
    theirs = cfg.replace(**overrides)
    data = any(getattr(cfg, s) != getattr(theirs, s) for s in _TEST_DATA)
    return tuple(k for k in HEADLINES if data or _depends(cfg, k) != _depends(theirs, k))


def _read(cfg: Preset, key: str, seed: int, progress: bool) -> float:
    h = HEADLINES[key]
    return float(h.read(graph.result(cfg, h.step, seed=seed, progress=progress, **h.params)))


def measure(key: str, seeds: Sequence[int] = (0, 1, 2), preset: str = REFERENCE_PRESET,
            progress: bool = True) -> dict[str, Any]:
    """The entry of :data:`EFFECTS_FILE` for choice ``key``: the headline numbers it moves, per seed, at the
    book's settings and at the authors' (each model from the cache when there). The file holds entries
    measured at :data:`REFERENCE_PRESET` only; ``preset`` is for tests."""
    c = choice(key)
    cfg = presets.get(preset, seeds=list(seeds))
    moved = moves(c, cfg)
    if moved is None:
        raise ConfigError(f"choice {key!r}: no setting reproduces the authors' choice; nothing to measure")
    overrides = c.authors_overrides(cfg) or {}
    theirs = cfg.replace(**overrides)
    return {"preset": cfg.name, "seeds": [int(s) for s in seeds],
            "settings": {name: {"book": getattr(cfg, name), "authors": value} for name, value in overrides.items()},
            **{side: {k: [_read(at, k, s, progress) for s in seeds] for k in moved}
               for side, at in (("book", cfg), ("authors", theirs))}}


def _effects_path() -> Path:
    return Path(str(resources.files(__package__).joinpath("schemas", EFFECTS_FILE)))


@functools.lru_cache(maxsize=1)
def effects() -> dict[str, Any]:
    """The measured departures of :data:`EFFECTS_FILE`, by choice key (empty when the file is absent)."""
    path = _effects_path()
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{EFFECTS_FILE}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("departures"), dict):
        raise ConfigError(f"{EFFECTS_FILE}: expected {{'format': {FORMAT!r}, 'departures': {{...}}}}")
    for key, entry in doc["departures"].items():
        choice(key)
        seeds = entry.get("seeds", [])
        for side in ("book", "authors"):
            for name, values in entry.get(side, {}).items():
                if name not in HEADLINES or len(values) != len(seeds):
                    raise ConfigError(f"{EFFECTS_FILE}: {key}.{side}.{name}: expected a headline key and one "
                                      f"number per seed ({len(seeds)})")
    return doc["departures"]


def _value(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _settings(c: Choice, cfg: Preset) -> str:
    parts = []
    for o in c.departing(cfg):
        theirs = o.authors_at(cfg)
        authors = o.note if theirs is None else f"{_value(theirs)}" + (f", {o.note}" if o.note else "")
        parts.append(f"{o.name} = {_value(o.current(cfg))} (authors: {authors})")
    return "; ".join(parts)


def _effect(c: Choice, cfg: Preset, measured: Mapping[str, Any]) -> str:
    if not c.departs(cfg):
        return "— (no departure)"
    moved = moves(c, cfg)
    if moved is None:
        return "not measurable: no setting reproduces the authors' choice"
    if not moved:
        return "none: no headline number depends on it"
    entry = measured.get(c.key)
    if entry is None:
        why = ("not measured: the authors' setting needs their images (a download) and a GPU-scale run"
               if needs_download(c, cfg) else "not measured yet")
        return why + " (it can move: " + ", ".join(HEADLINES[k].label for k in moved) + ")"
    fmt = {True: fmt_pct, False: fmt_loss}
    parts = [f"{HEADLINES[k].label} {fmt[HEADLINES[k].percent](entry['book'][k])} → "
             f"{fmt[HEADLINES[k].percent](entry['authors'][k])}" for k in moved if k in entry["book"]]
    return "; ".join(parts) + f" (book → authors' setting, seeds {', '.join(map(str, entry['seeds']))})"


def rows() -> list[dict[str, str]]:
    """The table "The book and the authors' code": one row per choice, each departure with its measured effect."""
    cfg = presets.get(REFERENCE_PRESET)
    measured = effects()
    return [{"choice": c.topic, "authors' code": f"{c.authors} ({', '.join(map(str, c.where))})",
             "book": c.book + (f" ({_settings(c, cfg)})" if c.departs(cfg) else ""),
             "effect on the headline numbers": _effect(c, cfg, measured)} for c in CHOICES]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure departures and merge them into :data:`EFFECTS_FILE` (``python -m cbft_core.study.fidelity``).

    By default every departure that moves a headline number and keeps the data set (the authors' images need
    a download and a GPU); name a choice to measure it anyway.
    """
    cfg = presets.get(REFERENCE_PRESET)
    measurable = [c.key for c in CHOICES
                  if c.departs(cfg) and moves(c, cfg) and not needs_download(c, cfg)]
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("keys", nargs="*", default=measurable, help=f"choices to measure (default: {measurable})")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    path = _effects_path()
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"format": FORMAT, "departures": {}}
    for key in args.keys:
        doc["departures"][key] = measure(key, args.seeds)
        cache.write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")  # atomic
        print(f"{key}: measured on seeds {args.seeds}")
    effects.cache_clear()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
