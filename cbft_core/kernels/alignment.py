"""Permutation alignment of hidden units (activation matching) for plain conv chains.

Permuting a layer's output channels (conv out axis, BatchNorm parameters and
statistics) together with the next layer's input axis leaves the network's
function unchanged. :func:`align` picks, layer by layer, the permutation of
model B's units that maximises the correlation of their activations with
model A's units (Hungarian assignment), as in Entezari et al. (2022) and
Ainsworth et al. (2023). Supported: models with a ``permutation_spec()``
(``cnn``, ``vgg13``); ResNet-18 is not.
"""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .checks import check_int
from .data.imageset import ImageSet, batches
from ..errors import ConfigError
from .models import PermutationSpec
from .paths import check_compatible

__all__ = ["permute", "align", "activation_correlations", "match_units", "invert"]

_EPS = 1e-12


def _spec(model: nn.Module, name: str) -> PermutationSpec:
    get = getattr(model, "permutation_spec", None)
    if get is None:
        raise ConfigError(
            f"{name}: {type(model).__name__} has no permutation_spec(); permutation alignment "
            "supports models built with cbft_core.kernels.models.build('cnn' | 'vgg13')"
        )
    return get()


def _check_pair(model_a: nn.Module, model_b: nn.Module) -> PermutationSpec:
    spec_a, spec_b = _spec(model_a, "to"), _spec(model_b, "model_b")
    if spec_a != spec_b or getattr(model_a, "arch", None) != getattr(model_b, "arch", None):
        raise ConfigError(
            f"architectures differ: {getattr(model_a, 'arch', type(model_a).__name__)!r} vs "
            f"{getattr(model_b, 'arch', type(model_b).__name__)!r}; align needs the same architecture"
        )
    check_compatible(model_a.state_dict(), model_b.state_dict(), "to", "model_b")
    return spec_a


def invert(perm: torch.Tensor) -> torch.Tensor:
    """The inverse permutation: ``invert(p)[p[i]] == i``."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm), device=perm.device)
    return inv


def permute(model: nn.Module, perms: Sequence[torch.Tensor | np.ndarray]) -> nn.Module:
    """A new model equal to ``model`` with layer ``l``'s units reordered by ``perms[l]``.

    Unit ``i`` of the new layer is unit ``perms[l][i]`` of the old one. The
    function (in train and eval mode) is unchanged up to float rounding.
    """
    spec = _spec(model, "model")
    if len(perms) != len(spec.layers):
        raise ConfigError(f"perms: expected {len(spec.layers)} permutations (one per layer), got {len(perms)}")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for l, (layer, perm) in enumerate(zip(spec.layers, perms)):
        n = state[f"{layer.conv}.weight"].shape[0]
        p = torch.as_tensor(np.asarray(perm), dtype=torch.long)
        if p.shape != (n,) or not torch.equal(torch.sort(p).values, torch.arange(n)):
            raise ConfigError(f"perms[{l}] must be a permutation of range({n}), got shape {tuple(p.shape)}")
        for key in (f"{layer.conv}.weight", f"{layer.conv}.bias", f"{layer.bn}.weight", f"{layer.bn}.bias",
                    f"{layer.bn}.running_mean", f"{layer.bn}.running_var"):
            if key in state:
                state[key] = state[key][p.to(state[key].device)]
        consumer = f"{spec.layers[l + 1].conv}.weight" if l + 1 < len(spec.layers) else f"{spec.head}.weight"
        state[consumer] = state[consumer][:, p.to(state[consumer].device)]
    out = copy.deepcopy(model)
    out.load_state_dict(state)
    return out


def activation_correlations(
    model_a: nn.Module, model_b: nn.Module, data: ImageSet, batch_size: int = 512
) -> list[np.ndarray]:
    """Per layer, the ``[C, C]`` correlation of A's units (rows) with B's units (columns).

    Activations (after ReLU, every spatial position a sample, models in eval
    mode) are centred with means over all of ``data``; sums are accumulated in
    float64 batch by batch over the whole data set.
    """
    spec = _check_pair(model_a, model_b)
    if not isinstance(data, ImageSet) or len(data) == 0:
        raise ConfigError("data must be a non-empty ImageSet")
    check_int("batch_size", batch_size, minimum=1)
    n_layers = len(spec.layers)
    captured: dict[tuple[int, int], torch.Tensor] = {}
    hooks = []
    for m_idx, model in enumerate((model_a, model_b)):
        for l, layer in enumerate(spec.layers):
            def hook(_mod, _inp, out, key=(m_idx, l)):
                captured[key] = out
            hooks.append(model.get_submodule(layer.output).register_forward_hook(hook))
    modes = [(m, m.training) for model in (model_a, model_b) for m in model.modules()]
    sums: list[dict[str, torch.Tensor]] = [{} for _ in range(n_layers)]
    device = next(model_a.parameters()).device
    try:
        model_a.eval()
        model_b.eval()
        with torch.inference_mode():
            for x, _ in batches(data, batch_size, device=device):
                model_a(x)
                model_b(x.to(next(model_b.parameters()).device))
                for l in range(n_layers):
                    a = _flatten(captured[(0, l)])
                    b = _flatten(captured[(1, l)]).to(a.device)
                    s = sums[l]
                    for key, val in (("n", torch.tensor(float(a.shape[0]), dtype=torch.float64)),
                                     ("a", a.sum(0)), ("b", b.sum(0)), ("aa", (a * a).sum(0)),
                                     ("bb", (b * b).sum(0)), ("ab", a.T @ b)):
                        s[key] = s[key] + val.cpu() if key in s else val.cpu()
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes:
            m.training = mode
    corrs = []
    for s in sums:
        n = s["n"]
        mean_a, mean_b = s["a"] / n, s["b"] / n
        var_a = (s["aa"] / n - mean_a**2).clamp_min(0)
        var_b = (s["bb"] / n - mean_b**2).clamp_min(0)
        cov = s["ab"] / n - torch.outer(mean_a, mean_b)
        corr = cov / (torch.outer(var_a.sqrt(), var_b.sqrt()) + _EPS)
        corrs.append(corr.numpy())
    return corrs


def _flatten(act: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` → ``[N·H·W, C]`` in float64."""
    return act.detach().double().transpose(0, 1).reshape(act.shape[1], -1).T


def match_units(corrs: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """One Hungarian assignment per layer maximising total correlation; ``perm[i]`` = B's unit for A's unit i."""
    from scipy.optimize import linear_sum_assignment  # here: scipy takes ~0.5 s to import, and only this needs it

    perms = []
    for corr in corrs:
        rows, cols = linear_sum_assignment(corr, maximize=True)
        perm = np.empty(len(rows), dtype=np.int64)
        perm[rows] = cols
        perms.append(torch.from_numpy(perm))
    return perms


def align(model_b: nn.Module, to: nn.Module, data: ImageSet, batch_size: int = 512) -> nn.Module:
    """A new copy of ``model_b`` with its hidden units permuted to match those of ``to`` (model A).

    The returned model computes the same function as ``model_b``. Because a
    unit's activations do not depend on how earlier layers are ordered, the
    statistics of every layer come from one pass over ``data``.
    """
    return permute(model_b, match_units(activation_correlations(to, model_b, data, batch_size)))
