"""The data sets and models of a preset: what the study's steps (:mod:`cbft_core.study.steps`) compute with.

The trained models are steps of the study (``parent``, ``child``,
``scratch``), asked for with :func:`cbft_core.study.graph.result`. The data
set does not depend on the seed (it is the same for every replicate); seeds
drive initialisation and data order. Base sets are memoised in-process, and
the generated ones (:data:`STORED_SETS`) on disk too: rendering 10 000
procedural images takes seconds in every process (every chapter's kernel),
reading them back a fraction of that (see :func:`base_set_key_document`).
"""
from __future__ import annotations

import functools
from typing import Callable, Mapping

import torch
from torch import nn

from ..errors import CacheUnwritableError, ConfigError
from ..kernels import data, models, train
from ..kernels.data.imageset import ImageSet
from ..kernels.optim import SGDConfig
from ..kernels.seeding import role_seed
from . import cache, codehash
from .presets import Preset

__all__ = ["DATA_SEED", "STORED_SETS", "base_set_key_document", "resolve_device", "base_set", "simple_set",
           "train_set", "test_views", "build_model", "load_model", "sgd", "fit", "bn_data", "clean_subset", "cue_subset", "view_accuracies"]

DATA_SEED = 0  # the data set is fixed across replicates
STORED_SETS: tuple[str, ...] = ("shapes", "digits")  # generated (or bundled with scikit-learn): kept on disk
_GENERATOR = ("cbft_core.kernels.data.base",)  # load_base's module; its imports are followed


def resolve_device(cfg: Preset) -> torch.device:
    """``cfg.device`` with ``"auto"`` → CUDA when available, else CPU."""
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is available; use device='auto' or 'cpu'")
    return torch.device(cfg.device)


@functools.lru_cache(maxsize=8)
def _load_base(name: str, split: str, n: int | None) -> ImageSet:
    return data.load_base(name, split=split, n=n, seed=DATA_SEED)


def base_set_key_document(name: str, split: str, n: int | None) -> dict[str, object]:
    """What the on-disk entry of a generated base set is keyed by: the set and its arguments, the
    normalised code of ``load_base`` and of every module it imports (the generator, its recipe), the
    values their module-level constants have in this process (a recipe set at run time), and torch's
    version (its random streams). Whatever changes the images changes one of these."""
    return {"set": name, "split": split, "n": n, "seed": DATA_SEED, "code": codehash.module_digest(_GENERATOR),
            "constants": codehash.module_constants(_GENERATOR), "torch": torch.__version__}


def _on_disk(load: Callable[[str, str, int | None], ImageSet]) -> Callable[[str, str, int | None], ImageSet]:
    """``load`` with the sets of :data:`STORED_SETS` read from the cache (``base-set/<key>.pt``) when there.

    A set missing from the cache is generated and stored; in a cache that cannot be written (a shared,
    read-only one holding the models) it is generated on every call, as before, instead of failing.
    """

    @functools.wraps(load)
    def stored(name: str, split: str, n: int | None) -> ImageSet:
        if name not in STORED_SETS:
            return load(name, split, n)
        document = base_set_key_document(name, split, n)
        key = cache.config_key(document)
        path = cache.entry_path("base-set", key)
        hit, entry = cache.lookup(path, cache.load_model)
        if hit and entry[1].get("key") == key:
            state = entry[0]
            return ImageSet(state["images"], state["labels"], tuple(state["classes"]))
        made = load(name, split, n)
        try:
            cache.save_model(path, {"images": made.images, "labels": made.labels, "classes": list(made.classes)},
                             {**document, "kind": "base-set", "key": key})
        except CacheUnwritableError:
            pass
        return made

    return stored


# The disk copy goes under the in-process memo. It is applied here, not as a decorator, so that the
# definition above, which the steps' code digests hash, stays as it was: what the disk returns is, by
# its own key, exactly what that definition computes.
_load_base = functools.lru_cache(maxsize=8)(_on_disk(_load_base.__wrapped__))


def base_set(cfg: Preset, split: str = "train") -> ImageSet:
    """The complex base images of ``cfg`` (memoised in-process; a generated set also on disk)."""
    return _load_base(cfg.dataset, split, cfg.n_train if split == "train" else cfg.n_test)


def simple_set(cfg: Preset, split: str = "train") -> ImageSet:
    """The simple images used as the Dominoes cue (whole split)."""
    return _load_base(cfg.simple, split, None)


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


def path_views(cfg: Preset, cue: str = "box") -> dict[str, ImageSet]:
    """The counterfactual views on which paths are scored: of the ``cfg.eval_split`` split (the book: test)."""
    if cfg.eval_split == "test":
        return test_views(cfg, cue)
    return data.counterfactual_views(base_set(cfg, "train"), cue=cue, seed=DATA_SEED,
                                     simple=_simple_for(cfg, cue, "train"))


def build_model(cfg: Preset, cue: str = "box", seed: int | None = None) -> nn.Module:
    """A model of ``cfg`` for inputs of the given cue type, initialised from ``seed`` (None: the global RNG)."""
    shape = (3, 64, 32) if cue == "dominoes" else (3, 32, 32)
    return models.build(cfg.model, cfg.num_classes, width=cfg.width, in_shape=shape, seed=seed)


def load_model(cfg: Preset, cue: str, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """A model of ``cfg`` holding ``state``, on the preset's device, in eval mode."""
    model = build_model(cfg, cue)
    model.load_state_dict(state)
    return model.to(resolve_device(cfg)).eval()


def sgd(cfg: Preset) -> SGDConfig:
    """The SGD settings with which ``cfg`` trains its models."""
    return SGDConfig(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, schedule=cfg.schedule,
                     step_every=cfg.step_every)


def fit(model: nn.Module, cfg: Preset, train_data: ImageSet, epochs: int, seed: int, desc: str,
        progress: bool) -> nn.Module:
    """:func:`cbft_core.kernels.train.fit` of ``model`` on the preset's device with the preset's training settings."""
    return train.fit(model.to(resolve_device(cfg)), train_data, sgd(cfg), epochs=epochs, batch_size=cfg.batch_size,
                     seed=seed, desc=desc, progress=progress, max_batches=cfg.max_batches,
                     channels_last=cfg.channels_last, amp=cfg.amp)


def bn_data(cfg: Preset, cue: str = "box") -> ImageSet:
    """The training images on which BatchNorm statistics are re-estimated along every path: clean ones."""
    return train_set(cfg, cue, 0.0)


def clean_subset(cfg: Preset, seed: int, n: int, cue: str = "box") -> ImageSet:
    """``n`` cue-free training images drawn uniformly with replacement (the authors' ``np.random.randint``)."""
    clean = train_set(cfg, cue, 0.0)
    if not 0 < n <= len(clean):
        raise ConfigError(f"n_clean must be in [1, {len(clean)}], got {n}")
    g = torch.Generator().manual_seed(role_seed("clean-subset", seed=seed, cue=cue, n=n))
    return clean.subset(torch.randint(0, len(clean), (n,), generator=g))


def cue_subset(cfg: Preset, seed: int, cue: str = "box") -> ImageSet:
    """``cfg.n_cue`` images of the cue training data D_c (cue on ``cfg.proportion`` of each class), drawn
    uniformly with replacement (the authors' ``np.random.randint``)."""
    cued = train_set(cfg, cue, cfg.proportion)
    n = min(cfg.n_cue, len(cued))
    g = torch.Generator().manual_seed(role_seed("cue-subset", seed=seed, cue=cue, n=n))
    return cued.subset(torch.randint(0, len(cued), (n,), generator=g))


def view_accuracies(model: nn.Module, views: Mapping[str, ImageSet], batch_size: int = 1000) -> dict[str, float]:
    """Accuracy of ``model`` on each counterfactual view."""
    return {name: train.evaluate(model, view, batch_size)["acc"] for name, view in views.items()}
