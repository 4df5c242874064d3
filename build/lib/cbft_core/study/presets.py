"""Named scales of the whole study: the one place where every hyper-parameter lives.

``cpu`` is the default (every chapter in minutes on 2 cores, offline), ``paper``
holds the reference settings of Lubana et al. (SCIENCE.md §5, a GPU and
CIFAR-10), ``tiny`` is for smoke tests (seconds). Chapters call
``get(preset, **overrides)`` with the overrides papermill injected.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """Every setting of the study at one scale."""

    name: str
    # data
    dataset: str = "shapes"          # base (complex) image set
    simple: str = "digits"           # top half of Dominoes
    num_classes: int = 10
    n_train: int = 20_000
    n_test: int = 2_000
    proportion: float = 0.8          # cue proportion of the cue-reliant models
    # models and training from scratch
    model: str = "cnn"
    width: float = 1.0
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    step_every: int | None = None    # epochs between lr drops for schedule="step"
    parent_epochs: int = 1           # shared parent, trained on clean data
    child_epochs: int = 7            # each child, branched from the parent
    scratch_epochs: int = 8          # models trained from scratch
    # paths
    path_points: int = 11
    bn_images: int = 2_000           # images per BatchNorm re-estimation
    eval_batch_size: int = 1_000
    midpoint_epochs: int = 6
    midpoint_lr: float = 0.05
    # fine-tuning (SCIENCE.md §4)
    n_clean: int = 2_500
    n_cue: int = 5_000
    ft_epochs: int = 10
    ft_lr: float = 0.01
    ft_weight_decay: float = 1e-4
    ft_batch_size: int = 128
    cbft_epochs: int = 20
    cbft_lr: float = 0.01
    cbft_margin: float = 1.0
    cbft_lambda: float = 1.0
    cbft_warmup_epochs: int = 1
    # seeds of the replicated experiments
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"
    max_batches: int | None = None   # cap on batches per epoch (smoke tests only)
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = {
            "proportion": (0.0 <= self.proportion <= 1.0, "a fraction in [0, 1]"),
            "n_train": (self.n_train > 0, "a positive number of images"),
            "n_test": (self.n_test > 0, "a positive number of images"),
            "width": (self.width > 0, "a positive width multiplier"),
            "batch_size": (self.batch_size > 0, "a positive batch size"),
            "lr": (self.lr > 0, "a positive learning rate"),
            "path_points": (self.path_points >= 2, "at least 2 points (t = 0 and t = 1)"),
            "n_clean": (self.n_clean > 0, "a positive number of clean images"),
            "seeds": (len(self.seeds) > 0, "at least one seed"),
            "device": (self.device in ("cpu", "cuda", "auto"), "one of 'cpu', 'cuda', 'auto'"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(
                    f"preset setting {name}={getattr(self, name)!r} is invalid: expected {expected}"
                )
        for name in ("parent_epochs", "child_epochs", "scratch_epochs", "ft_epochs", "cbft_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"preset setting {name} must be >= 0, got {getattr(self, name)}")

    def replace(self, **overrides: Any) -> "Preset":
        """A copy with ``overrides`` applied; unknown names → ConfigError; ``None`` values are ignored."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"unknown preset setting(s) {unknown}; valid settings: {sorted(known - {'extras'})}"
            )
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "seeds" in clean:
            clean["seeds"] = tuple(int(s) for s in clean["seeds"])
        return dataclasses.replace(self, **clean)

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON view (for cache keys and results files)."""
        return dataclasses.asdict(self)


_PRESETS: dict[str, Preset] = {
    "cpu": Preset(name="cpu"),
    "tiny": Preset(
        name="tiny",
        n_train=600,
        n_test=200,
        width=0.5,
        batch_size=64,
        parent_epochs=1,
        child_epochs=1,
        scratch_epochs=1,
        path_points=3,
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
    "paper": Preset(
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
        parent_epochs=10,
        child_epochs=90,
        scratch_epochs=100,
        path_points=11,
        bn_images=10_000,
        eval_batch_size=1_000,
        midpoint_epochs=15,
        midpoint_lr=0.1,
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
    ),
}

PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def get(name: str = "cpu", **overrides: Any) -> Preset:
    """The preset called ``name`` with ``overrides`` applied (``None`` means "keep the preset's")."""
    if isinstance(name, Preset):
        return name.replace(**overrides)
    if name not in _PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose one of {list(PRESET_NAMES)}")
    return _PRESETS[name].replace(**overrides)
