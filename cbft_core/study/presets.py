"""Named scales of the whole study: the one place where every hyper-parameter lives.

``cpu`` is the default (every chapter in minutes on 2 cores, offline), ``paper``
holds the settings of Lubana et al. (2023; a GPU and CIFAR-10),
``tiny`` is for smoke tests (seconds). Chapters call ``get(preset, **overrides)``
with the overrides papermill injected; the command line's ``-p NAME VALUE``
arrives the same way.

Every setting is checked when a :class:`Preset` is made, against its declared
type (the annotation) and its entry in :data:`RANGES`; a bad value is one
:class:`~cbft_core.errors.ConfigError` naming the setting. In overrides,
``None`` means "keep the preset's value" for a setting that cannot be ``None``;
for the two optional settings (``step_every``, ``max_batches``) ``None`` is a
value like any other and is applied.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import typing
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..kernels.checks import check_choice, check_int, check_number

__all__ = ["Preset", "Range", "RANGES", "PRESET_NAMES", "DEVICES", "get", "check_overrides"]

DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class Preset:
    """Every setting of the study at one scale."""

    name: str
    # data
    dataset: str = "shapes"          # base (complex) image set
    simple: str = "digits"           # top half of Dominoes
    num_classes: int = 10
    n_train: int = 10_000
    n_test: int = 2_000
    proportion: float = 0.8          # cue proportion of the cue-reliant models
    # models and training from scratch
    model: str = "cnn"
    width: float = 1.0
    batch_size: int = 256
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    step_every: int | None = None    # epochs between lr drops for schedule="step"
    parent_epochs: int = 0           # shared parent on clean data (0: the children share the initialisation)
    child_epochs: int = 10           # each child, branched from the parent
    scratch_epochs: int = 8          # models trained from scratch
    # paths
    path_points: int = 11            # points of linear paths, t = 0 … 1
    switch_points: int = 21          # points of quadratic paths (where the mechanism switch is measured)
    bn_images: int = 2_000           # clean training images per BatchNorm re-estimation
    eval_split: str = "test"         # split whose views paths are scored on ("train": the authors' default)
    bn_average: str = "cumulative"   # "cumulative": exact average after a reset; "running": the authors' momentum 0.1
    eval_batch_size: int = 1_000
    midpoint_epochs: int = 6
    midpoint_lr: float = 0.1
    midpoint_step_every: int = 4     # epochs between the midpoint's ×0.1 learning-rate drops (the authors: 10 of 15)
    # fine-tuning (naive methods and CBFT)
    n_clean: int = 2_500
    n_cue: int = 5_000
    ft_epochs: int = 20
    ft_lr: float = 0.01
    ft_weight_decay: float = 1e-4
    ft_batch_size: int = 256
    llrt_lr: float = 30.0            # learning rate of LLRT's linear head (the authors': 30, for 200 epochs)
    cbft_epochs: int = 20
    cbft_lr: float = 0.01
    cbft_margin: float = 1.0
    cbft_lambda: float = 1.0
    cbft_warmup_epochs: int = 1
    # seeds of the replicated experiments
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"
    channels_last: bool = False      # NHWC models and batches (faster convolutions on a GPU; same function)
    amp: bool = False                # bf16 autocast of the forward pass (changes the numbers; off until measured)
    max_batches: int | None = None   # cap on batches per epoch (smoke tests only)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _checked(f.name, getattr(self, f.name)))
        if self.schedule == "step" and self.step_every is None:
            raise ConfigError("preset setting step_every: schedule='step' needs step_every "
                              "(epochs between learning-rate drops), got None")

    def replace(self, **overrides: Any) -> "Preset":
        """A copy with ``overrides`` applied; unknown names → ConfigError.

        ``None`` keeps the preset's value, except for the optional settings
        (``step_every``, ``max_batches``), where it is applied.
        """
        unknown = sorted(set(overrides) - set(RANGES))
        if unknown:
            raise ConfigError(f"unknown preset setting(s) {unknown}; valid settings: {sorted(RANGES)}")
        applied = {k: v for k, v in overrides.items() if v is not None or RANGES[k].optional}
        return dataclasses.replace(self, **applied)

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON view (for cache keys and results files)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Range:
    """What one setting allows beyond its type: bounds (``strict``: the minimum itself excluded) or choices.

    ``choices`` names a kernel constant (``"module:NAME"``), read when first
    needed, so that importing the presets (the command line does) does not import torch.
    """

    minimum: float | None = None
    maximum: float | None = None
    strict: bool = False
    choices: str | tuple[str, ...] | None = None
    optional: bool = False  # None is a value (filled in from the annotation)

    def allowed(self) -> tuple[str, ...] | None:
        """The choices as a tuple (a named kernel constant resolved)."""
        return _constant(self.choices) if isinstance(self.choices, str) else self.choices


@functools.lru_cache(maxsize=None)
def _constant(ref: str) -> tuple[str, ...]:
    module, name = ref.split(":")
    return tuple(getattr(importlib.import_module(f"cbft_core.kernels.{module}"), name))


_POSITIVE = Range(minimum=0.0, strict=True)
_NON_NEGATIVE = Range(minimum=0.0)
_AT_LEAST_1 = Range(minimum=1)

_DECLARED: dict[str, Range] = {
    "name": Range(),
    "dataset": Range(choices="data:BASE_SETS"),
    "simple": Range(choices="data:BASE_SETS"),
    "num_classes": Range(minimum=2),
    "n_train": _AT_LEAST_1,
    "n_test": _AT_LEAST_1,
    "proportion": Range(minimum=0.0, maximum=1.0),
    "model": Range(choices="models:MODEL_NAMES"),
    "width": _POSITIVE,
    "batch_size": _AT_LEAST_1,
    "lr": _POSITIVE,
    "momentum": Range(minimum=0.0, maximum=1.0),
    "weight_decay": _NON_NEGATIVE,
    "schedule": Range(choices="optim:SCHEDULES"),
    "step_every": _AT_LEAST_1,
    "parent_epochs": Range(minimum=0),  # 0: the children branch from the initialisation
    "child_epochs": _AT_LEAST_1,
    "scratch_epochs": _AT_LEAST_1,
    "path_points": Range(minimum=2),  # t = 0 and t = 1 at least
    "switch_points": Range(minimum=3),  # the switch is measured between points
    "bn_images": _AT_LEAST_1,
    "bn_average": Range(choices="paths:BN_AVERAGES"),
    "eval_split": Range(choices=("test", "train")),
    "eval_batch_size": _AT_LEAST_1,
    "midpoint_epochs": _AT_LEAST_1,
    "midpoint_lr": _POSITIVE,
    "midpoint_step_every": _AT_LEAST_1,
    "n_clean": _AT_LEAST_1,
    "n_cue": _AT_LEAST_1,
    "ft_epochs": _AT_LEAST_1,
    "ft_lr": _POSITIVE,
    "ft_weight_decay": _NON_NEGATIVE,
    "ft_batch_size": _AT_LEAST_1,
    "llrt_lr": _POSITIVE,
    "cbft_epochs": _AT_LEAST_1,
    "cbft_lr": _POSITIVE,
    "cbft_margin": _NON_NEGATIVE,
    "cbft_lambda": _NON_NEGATIVE,
    "cbft_warmup_epochs": Range(minimum=0),
    "seeds": Range(minimum=0),  # each seed
    "device": Range(choices=DEVICES),
    "max_batches": _AT_LEAST_1,
    "channels_last": Range(),
    "amp": Range(),
}

_TYPES: dict[str, Any] = typing.get_type_hints(Preset)


def _kind(name: str) -> tuple[type, bool]:
    """The declared base type of setting ``name`` and whether it may be None."""
    hint = _TYPES[name]
    args = typing.get_args(hint)
    if type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return (typing.get_origin(hint) or hint), False


# every field has its range; a field added without one fails here, at import
if set(_DECLARED) != {f.name for f in dataclasses.fields(Preset)}:
    raise RuntimeError(f"RANGES and Preset's fields differ: {set(_DECLARED) ^ {f.name for f in dataclasses.fields(Preset)}}")
RANGES: dict[str, Range] = {k: dataclasses.replace(r, optional=_kind(k)[1]) for k, r in _DECLARED.items()}


def _checked(name: str, value: Any) -> Any:
    """``value`` of setting ``name`` checked against its declared type and range (floats as float)."""
    kind, optional = _kind(name)
    rule = _DECLARED[name]
    label = f"preset setting {name}"
    if value is None and optional:
        return None
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be True or False, got {value!r}")
        return value
    if kind is int:
        return check_int(label, value, minimum=rule.minimum, maximum=rule.maximum)  # type: ignore[arg-type]
    if kind is float:
        return check_number(label, value, minimum=rule.minimum, maximum=rule.maximum, strict_minimum=rule.strict)
    if kind is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{label} must be a non-empty string, got {value!r}")
        return value if rule.choices is None else check_choice(label, value, rule.allowed())
    if kind is tuple:  # seeds: a non-empty sequence of ints
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{label} must be a non-empty list of ints, got {value!r}")
        return tuple(check_int(f"{label}[{i}]", v, minimum=rule.minimum) for i, v in enumerate(value))  # type: ignore[arg-type]
    raise TypeError(f"setting {name}: no check for type {kind}")  # a new kind of field needs one


# each preset's settings (made into a Preset, and so checked, by get)
_PRESETS: dict[str, dict[str, Any]] = {
    # benchmarks/science_trials.py holds the trials that chose the cpu preset's settings
    "cpu": dict(name="cpu", llrt_lr=1.0),
    "tiny": dict(
        name="tiny",
        n_train=600,
        n_test=200,
        width=0.5,
        batch_size=64,
        parent_epochs=1,
        child_epochs=1,
        scratch_epochs=1,
        path_points=3,
        switch_points=5,
        bn_images=128,
        eval_batch_size=200,
        midpoint_epochs=1,
        n_clean=200,
        n_cue=300,
        ft_epochs=1,
        ft_batch_size=64,
        cbft_epochs=2,
        seeds=(0,),
    ),
    "paper": dict(
        name="paper",
        dataset="cifar10",
        simple="fashionmnist",
        n_train=50_000,
        n_test=10_000,
        model="vgg13",
        width=1.0,
        batch_size=256,
        lr=0.1,
        weight_decay=1e-4,
        schedule="step",
        step_every=40,
        parent_epochs=0,
        child_epochs=100,
        scratch_epochs=100,
        path_points=11,
        bn_images=10_000,
        eval_batch_size=1_000,
        midpoint_epochs=15,
        midpoint_lr=0.1,
        midpoint_step_every=10,
        n_clean=2_500,
        n_cue=50_000,
        ft_epochs=20,
        ft_lr=0.01,
        ft_weight_decay=1e-4,
        ft_batch_size=256,
        cbft_epochs=20,
        cbft_lr=0.01,
        seeds=(0, 1, 2),
        device="auto",
        channels_last=True,
    ),
}

PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def get(name: str | Preset = "cpu", **overrides: Any) -> Preset:
    """The preset called ``name`` with ``overrides`` applied (see :meth:`Preset.replace` for ``None``)."""
    if isinstance(name, Preset):
        return name.replace(**overrides)
    return _preset(check_choice("preset", name, PRESET_NAMES)).replace(**overrides)


@functools.lru_cache(maxsize=None)
def _preset(name: str) -> Preset:
    return Preset(**_PRESETS[name])


def check_overrides(name: str, parameters: dict[str, Any]) -> None:
    """Check the entries of ``parameters`` that are preset settings against preset ``name``.

    Other entries (a chapter's own parameters) are left alone; used by the
    command line to refuse a bad ``-p NAME VALUE`` before anything runs.
    """
    get(name, **{k: v for k, v in parameters.items() if k in RANGES})
