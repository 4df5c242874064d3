"""The trained models every chapter shares, built on demand and cached on disk.

One preset and one seed determine each model completely:

- the **shared parent** is trained ``parent_epochs`` on clean data
  (Frankle et al.'s instability analysis: children branched from a common
  early point share a basin when they share a mechanism);
- a **child** continues from the parent for ``child_epochs`` on data whose
  cue proportion it is given (0 = cue-free), with its own data order
  (``branch``);
- a **scratch** model is trained from its own random initialisation.

The data set itself does not depend on the seed (it is the same for every
replicate); seeds drive initialisation and data order. Models are cached
under a hash of everything that produced them (see :mod:`cbft_core.study.cache`).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import nn

from ..kernels import data, models, train
from ..kernels.optim import SGDConfig
from ..kernels.seeding import role_seed

from . import cache
from ..kernels.data.imageset import ImageSet
from ..errors import ConfigError
from .presets import Preset

__all__ = [
    "resolve_device",
    "base_set",
    "simple_set",
    "train_set",
    "test_views",
    "parent",
    "child",
    "scratch",
    "build_model",
    "parent_key",
    "child_key",
    "model_entry",
]

DATA_SEED = 0  # the data set is fixed across replicates


def resolve_device(cfg: Preset) -> torch.device:
    """``cfg.device`` with ``"auto"`` → CUDA when available, else CPU."""
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is available; use device='auto' or 'cpu'")
    return torch.device(cfg.device)


@functools.lru_cache(maxsize=8)
def _load_base(name: str, split: str, n: int) -> ImageSet:
    return data.load_base(name, split=split, n=n, seed=DATA_SEED)


def base_set(cfg: Preset, split: str = "train") -> ImageSet:
    """The complex base images of ``cfg`` (memoised in-process)."""
    return _load_base(cfg.dataset, split, cfg.n_train if split == "train" else cfg.n_test)


def simple_set(cfg: Preset, split: str = "train") -> ImageSet:
    """The simple images used as the Dominoes cue (whole split)."""
    return _load_base(cfg.simple, split, None)  # type: ignore[arg-type]


def _simple_for(cfg: Preset, cue: str, split: str) -> ImageSet | None:
    return simple_set(cfg, split) if cue == "dominoes" else None


def train_set(cfg: Preset, cue: str = "box", proportion: float = 0.0) -> ImageSet:
    """Training images with the cue on a ``proportion`` of each class (0 → clean).

    For Dominoes a clean image keeps its empty (zero) top half, so every
    training set of one cue type has the same input shape.
    """
    view = "cue" if proportion > 0 else "clean"
    return data.make_view(
        base_set(cfg, "train"), cue=cue, view=view, proportion=proportion if proportion > 0 else 1.0,
        seed=DATA_SEED, simple=_simple_for(cfg, cue, "train"),
    )


def test_views(cfg: Preset, cue: str = "box") -> dict[str, ImageSet]:
    """The four counterfactual views (clean, cue, rand-cue, rand-img) of the test set."""
    return data.counterfactual_views(
        base_set(cfg, "test"), cue=cue, seed=DATA_SEED, simple=_simple_for(cfg, cue, "test")
    )


def build_model(cfg: Preset, cue: str = "box", seed: int | None = None) -> nn.Module:
    """A model of ``cfg`` for inputs of the given cue type, initialised from ``seed`` (None: the global RNG)."""
    shape = (3, 64, 32) if cue == "dominoes" else (3, 32, 32)
    return models.build(cfg.model, cfg.num_classes, width=cfg.width, in_shape=shape, seed=seed)


def _train_settings(cfg: Preset) -> dict[str, Any]:
    return dict(
        lr=cfg.lr, batch_size=cfg.batch_size, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
        schedule=cfg.schedule, step_every=cfg.step_every, max_batches=cfg.max_batches,
        channels_last=cfg.channels_last, amp=cfg.amp,
    )


def sgd(cfg: Preset) -> SGDConfig:
    """The SGD settings with which ``cfg`` trains its models."""
    return SGDConfig(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
                     step_every=cfg.step_every)


def _data_settings(cfg: Preset) -> dict[str, Any]:
    return dict(dataset=cfg.dataset, simple=cfg.simple, n_train=cfg.n_train, num_classes=cfg.num_classes,
                model=cfg.model, width=cfg.width)


def parent_key(cfg: Preset, seed: int, cue: str = "box") -> dict[str, Any]:
    """The cache key of :func:`parent`."""
    return {"role": "parent", "seed": seed, "cue": cue, "epochs": cfg.parent_epochs,
            **_data_settings(cfg), **_train_settings(cfg)}


def child_key(cfg: Preset, seed: int, cue: str = "box", proportion: float = 0.0, branch: int = 0) -> dict[str, Any]:
    """The cache key of :func:`child`."""
    return {"role": "child", "seed": seed, "cue": cue, "proportion": proportion, "branch": branch,
            "parent_epochs": cfg.parent_epochs, "epochs": cfg.child_epochs,
            **_data_settings(cfg), **_train_settings(cfg)}


def model_entry(key: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The cache ``(kind, config)`` under which the model of ``key`` is stored."""
    return f"model-{key['role']}", key


def _trained(key: dict[str, Any], make: Callable[..., nn.Module], cfg: Preset, cue: str,
             progress: bool) -> nn.Module:
    """Load the model for ``key`` from the cache, or build it with ``make`` and store it."""
    model = build_model(cfg, cue)

    def compute() -> dict[str, torch.Tensor]:
        trained = make(progress=progress)
        return {k: v.detach().cpu() for k, v in trained.state_dict().items()}

    state = cache.cached(*model_entry(key), compute)
    model.load_state_dict(state)
    return model.to(resolve_device(cfg)).eval()


def _fit(model: nn.Module, cfg: Preset, train_data: ImageSet, epochs: int, seed: int, desc: str,
         progress: bool) -> nn.Module:
    return train.fit(model.to(resolve_device(cfg)), train_data, sgd(cfg), epochs=epochs, batch_size=cfg.batch_size,
                     seed=seed, desc=desc, progress=progress, max_batches=cfg.max_batches,
                     channels_last=cfg.channels_last, amp=cfg.amp)


def parent(cfg: Preset, seed: int, cue: str = "box", progress: bool = True) -> nn.Module:
    """The shared parent: ``parent_epochs`` on clean data from the seed's initialisation."""
    key = parent_key(cfg, seed, cue)

    def make(progress: bool) -> nn.Module:
        model = build_model(cfg, cue, seed=role_seed("parent-init", seed=seed, cue=cue))
        if cfg.parent_epochs == 0:
            return model
        return _fit(model, cfg, train_set(cfg, cue, 0.0), cfg.parent_epochs,
                    role_seed("parent-order", seed=seed, cue=cue), f"parent (seed {seed})", progress)

    return _trained(key, make, cfg, cue, progress)


def child(cfg: Preset, seed: int, cue: str = "box", proportion: float = 0.0, branch: int = 0,
          progress: bool = True) -> nn.Module:
    """A child of the seed's parent trained ``child_epochs`` with the cue on ``proportion`` of the data.

    ``branch`` selects the child's own data order, so two children with equal
    settings and different branches are two different minimizers.
    """
    if not 0.0 <= proportion <= 1.0:
        raise ConfigError(f"proportion must be in [0, 1], got {proportion}")
    key = child_key(cfg, seed, cue, proportion, branch)

    def make(progress: bool) -> nn.Module:
        model = parent(cfg, seed, cue, progress=progress)
        order_seed = role_seed("child-order", seed=seed, cue=cue, proportion=proportion, branch=branch)
        return _fit(model, cfg, train_set(cfg, cue, proportion), cfg.child_epochs, order_seed,
                    f"child p={proportion:g} (seed {seed}, branch {branch})", progress)

    return _trained(key, make, cfg, cue, progress)


def scratch(cfg: Preset, seed: int, cue: str = "box", proportion: float = 0.0, replica: int = 0,
            progress: bool = True) -> nn.Module:
    """A model trained ``scratch_epochs`` from its own initialisation (no shared parent).

    ``replica`` tells apart models of one seed that differ only in their
    initialisation and data order (the pairs of :func:`cbft_core.study.experiments.scratch_models`).
    """
    key = {"role": "scratch", "seed": seed, "cue": cue, "proportion": proportion, "replica": replica,
           "epochs": cfg.scratch_epochs, **_data_settings(cfg), **_train_settings(cfg)}
    parts = dict(seed=seed, cue=cue, proportion=proportion, replica=replica)

    def make(progress: bool) -> nn.Module:
        model = build_model(cfg, cue, seed=role_seed("scratch-init", **parts))
        return _fit(model, cfg, train_set(cfg, cue, proportion), cfg.scratch_epochs,
                    role_seed("scratch-order", **parts), f"scratch p={proportion:g} (seed {seed}.{replica})",
                    progress)

    return _trained(key, make, cfg, cue, progress)
