"""Mechanistic similarity as shared invariances (Lubana et al., 2023, §3).

A model is invariant to a transformation T of its inputs when its prediction
survives it: argmax f(T(x)) = argmax f(x). The counterfactual views of one
test set are such transformations of the *cue* view, sample by sample:
``clean`` removes the cue, ``rand-cue`` moves it to a random class's place.
A model that ignores the cue keeps its predictions under both; a model that
reads the cue follows it. Two models are mechanistically similar when they
share these invariances.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from .data.imageset import ImageSet
from ..errors import ConfigError
from .train import predict

__all__ = ["agreement", "TRANSFORMS"]

# view → what it does to the cue view's images
TRANSFORMS: dict[str, str] = {"clean": "cue removed", "rand-cue": "cue moved"}


def agreement(model: nn.Module, views: Mapping[str, ImageSet], reference: str = "cue",
              others: Sequence[str] = ("clean", "rand-cue"), batch_size: int = 512) -> dict[str, float]:
    """Fraction of samples whose predicted class on ``views[o]`` equals that on ``views[reference]``, per ``o``.

    The views must be views of the same images in the same order (as
    :func:`cbft_core.kernels.data.counterfactual_views` gives for clean/cue/rand-cue);
    equal lengths and labels are checked.
    """
    names = [reference, *others]
    missing = [n for n in names if n not in views]
    if missing:
        raise ConfigError(f"views: missing view(s) {missing}; available: {list(views)}")
    ref = views[reference]
    for name in others:
        view = views[name]
        if len(view) != len(ref) or not torch.equal(view.labels, ref.labels):
            raise ConfigError(f"views[{name!r}] is not a view of the same samples as views[{reference!r}] "
                              "(lengths or labels differ)")
    ref_pred = predict(model, ref, batch_size).argmax(1)
    return {name: float((predict(model, views[name], batch_size).argmax(1) == ref_pred).double().mean())
            for name in others}
