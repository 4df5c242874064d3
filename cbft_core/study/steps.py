"""The study as one registry of steps: every model and measurement, declared once.

A :class:`Step` names what it computes, its parameters, the nodes it consumes
(a function of the preset and its parameters), the preset settings it reads
(a function of its parameters), its cost in images, its compute function and
how its result is stored: a checkpoint (``"model"``), a JSON entry
(``"json"``) or nothing (``None``: a *derived* step, recomputed from its
inputs, such as a block of results.json). A :class:`Node` is a step with its
parameters. :mod:`cbft_core.study.graph` keys, caches, plans and evaluates
nodes; everything else (the pipeline, the plan, the sweep, the chapters) asks
it for nodes of this registry.

Pairs of models are named ``"<a>-<b>"``: ``cue-nocue`` (a cue-reliant child,
cue on ``cfg.proportion`` of the data, and a cue-free child of the same parent:
different mechanisms), ``cue100-nocue`` (the same with the cue on every
training image), ``nocue-nocue`` and ``cue-cue`` (two children with equal data
and different data order: same-mechanism controls).

A compute function receives ``(cfg, node, inputs, progress)``, the inputs in
the order :attr:`Step.inputs` lists them and in the form :func:`cbft_core.study.graph.result`
returns them (models as modules, paths as :class:`~cbft_core.kernels.paths.PathResult`).
Its cache key covers only the settings its step declares (never the device,
which changes no more than the last digits): a test runs every step and fails
when a compute function reads any other setting.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..kernels import alignment, cbft, connectivity, finetune, landscape, paths, train
from ..kernels.checks import check_choice, check_int, check_number
from ..kernels.data import CUES, VIEWS
from ..kernels.optim import SGDConfig
from ..kernels.seeding import role_seed
from . import zoo
from .presets import Preset

__all__ = ["Param", "Cost", "Node", "Step", "FineTuned", "STEPS", "PAIRS", "SCRATCH_PAIRS", "FT_METHODS",
           "SUMMARY_PATH_VIEWS", "VIEW_KEYS", "MODELS", "PATH_PAIRS", "QUADRATIC_PAIR", "UNIT_PAIRS",
           "epoch_images", "finetune_train_images"]

# pair name → ((cue proportion of the first child, branch), (of the second, branch)); None: the preset's
PAIRS: dict[str, tuple[tuple[float | None, int], tuple[float | None, int]]] = {
    "cue-nocue": ((None, 0), (0.0, 0)),
    "cue100-nocue": ((1.0, 0), (0.0, 0)),
    "nocue-nocue": ((0.0, 0), (0.0, 1)),
    "cue-cue": ((None, 0), (None, 1)),
}
SCRATCH_PAIRS: tuple[str, ...] = ("scratch", "scratch-aligned")  # two models from scratch; aligned: B permuted to A
FT_METHODS: tuple[str, ...] = finetune.METHODS + cbft.METHODS
SUMMARY_PATH_VIEWS: tuple[str, ...] = ("cue", "rand-img")  # views of the path from θc to a fine-tuned model
# results.json: view name → key, model name → cue proportion (None: the preset's), the linear paths, the quadratic pair
VIEW_KEYS: dict[str, str] = {"clean": "clean", "cue": "cue", "rand-cue": "rand_cue", "rand-img": "rand_img"}
MODELS: dict[str, float | None] = {"cue": None, "nocue": 0.0, "cue100": 1.0}
PATH_PAIRS: tuple[str, ...] = ("cue-nocue", "nocue-nocue", "cue-cue", "cue100-nocue")
QUADRATIC_PAIR = "cue-nocue"
UNIT_PAIRS: tuple[str, ...] = ("cue-nocue", "cue-cue", "nocue-nocue")  # the barriers of a sweep unit
_SUMMARY_EXTRA: tuple[str, ...] = ("barrier_to_cue", "midpoint_loss_to_cue")

_REQUIRED = object()
Compute = Callable[[Preset, "Node", list[Any], bool], Any]


@dataclass(frozen=True)
class Param:
    """A parameter of a step: its default (``None`` with ``preset``: that preset setting) and its check."""

    check: Callable[[str, Any], Any]
    default: Any = _REQUIRED
    preset: str | None = None

    @property
    def required(self) -> bool:
        """Whether a node must name this parameter."""
        return self.default is _REQUIRED


@dataclass(frozen=True)
class Cost:
    """Images one node puts through the network: with gradients (``train``) and forward only."""

    train: int = 0
    forward: int = 0
    epochs: int = 0  # shown by the plan


@dataclass(frozen=True)
class Node:
    """One step with its parameters (every one given, defaults filled in): a vertex of the study's graph."""

    step: str
    params: tuple[tuple[str, Any], ...]

    def __getattr__(self, name: str) -> Any:
        for key, value in object.__getattribute__(self, "params"):
            if key == name:
                return value
        raise AttributeError(name)

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a dict."""
        return dict(self.params)


@dataclass(frozen=True)
class Step:
    """One kind of model or measurement of the study."""

    name: str
    doc: str                                                  # what it is, in one line
    params: Mapping[str, Param]
    inputs: Callable[[Preset, Node], list[Node]]
    settings: Callable[[Node], tuple[str, ...]]
    compute: Compute | Mapping[Any, Compute]                  # one function, or one per value of ``variant``
    cost: Callable[[Preset, Node], Cost] = field(default=lambda cfg, n: Cost())
    store: str | None = "json"                                # "model", "json" or None (derived)
    load: Callable[[Preset, Node, Any], Any] | None = None    # stored value → what result() returns
    label: Callable[[Node], str] = field(default=lambda n: n.step)
    check: Callable[[Preset, Node], None] = field(default=lambda cfg, n: None)
    variant: str | None = None                                # the parameter that picks the compute function

    def compute_of(self, n: Node) -> Compute:
        """The compute function of node ``n`` (its code is what the node's key hashes)."""
        return self.compute[getattr(n, self.variant)] if self.variant else self.compute  # type: ignore[index]

    def computes(self) -> list[Compute]:
        """Every compute function of the step."""
        return list(dict.fromkeys(self.compute.values())) if self.variant else [self.compute]  # type: ignore[union-attr]

    @property
    def kind(self) -> str:
        """``"model"``, ``"measurement"`` (a JSON entry) or ``"derived"``."""
        return {"model": "model", "json": "measurement", None: "derived"}[self.store]


@dataclass
class FineTuned:
    """A fine-tuned model and its per-epoch training history (one cache entry)."""

    model: nn.Module
    history: dict[str, Any]


# --- parameters --------------------------------------------------------------------------------------

def _int(minimum: int) -> Callable[[str, Any], int]:
    return lambda name, v: check_int(name, v, minimum=minimum)


def _choice(options: Sequence[str]) -> Callable[[str, Any], str]:
    return lambda name, v: check_choice(name, v, options)


def _proportion(name: str, v: Any) -> float:
    return check_number(name, v, minimum=0.0, maximum=1.0)


def _methods(name: str, v: Any) -> tuple[str, ...]:
    if isinstance(v, str) or not isinstance(v, Sequence):
        raise ConfigError(f"{name} must be a list of fine-tuning methods, got {v!r}")
    return tuple(check_choice(name, m, FT_METHODS) for m in v)


def _unit_values(name: str, v: Any) -> tuple[float, ...]:
    return tuple(float(x) for x in landscape.check_unit_values(v, name))


SEED = Param(_int(0))
CUE = Param(_choice(CUES), "box")
PROPORTION = Param(_proportion, None, preset="proportion")
N_CLEAN = Param(_int(1), None, preset="n_clean")


# --- settings, costs and loading ---------------------------------------------------------------------

_MODEL = ("model", "width", "num_classes")
_TRAINING = ("lr", "batch_size", "momentum", "weight_decay", "schedule", "step_every", "max_batches",
             "channels_last", "amp")


def _train_data(n: Node) -> tuple[str, ...]:
    return ("dataset", "n_train") + (("simple",) if n.cue == "dominoes" else ())


def _test_data(n: Node) -> tuple[str, ...]:
    return ("dataset", "n_test") + (("simple",) if n.cue == "dominoes" else ())


def epoch_images(n: int, batch_size: int, max_batches: int | None = None) -> int:
    """Images in one shuffled pass over ``n`` images in batches (the last one short), capped at ``max_batches``."""
    return min(n, train.steps_per_epoch(n, batch_size, max_batches) * batch_size)


def _path_images(cfg: Preset, points: int, sets: int) -> int:
    """Images through the network along a path: at each point, BatchNorm re-estimated once on training
    images, then ``sets`` views of the ``eval_split`` split evaluated."""
    scored = cfg.n_test if cfg.eval_split == "test" else cfg.n_train
    return points * (min(cfg.bn_images, cfg.n_train) + sets * scored)


def finetune_train_images(cfg: Preset, method: str, n_clean: int) -> int:
    """Images that fine-tuning ``method`` on ``n_clean`` clean images puts through the network with gradients.

    FT and LP-FT run shuffled, ``max_batches``-capped passes over the clean
    set (LLRT trains its head on features: none). A CBFT epoch runs as many
    batches as the shorter of the clean set and the cue data provides; per
    batch, the barrier point on the cue batch, the clean batch and — after
    warm-up, when ``cbft_lambda`` > 0 — the cue batch's features;
    ``cbft-no-barrier`` drops the first, ``cbft-no-invariance`` the last.
    """
    if method in finetune.METHODS:
        return 0 if method == "llrt" else cfg.ft_epochs * epoch_images(n_clean, cfg.ft_batch_size, cfg.max_batches)
    n_cue = min(cfg.n_cue, cfg.n_train)
    steps = train.steps_per_epoch(min(n_clean, n_cue), cfg.ft_batch_size, cfg.max_batches)
    clean, cue = min(n_clean, steps * cfg.ft_batch_size), min(n_cue, steps * cfg.ft_batch_size)
    invariance = max(cfg.cbft_epochs - cfg.cbft_warmup_epochs, 0) * cue if cfg.cbft_lambda > 0 else 0
    images = {"cbft": cfg.cbft_epochs * (clean + cue) + invariance,
              "cbft-no-barrier": cfg.cbft_epochs * clean + invariance,
              "cbft-no-invariance": cfg.cbft_epochs * (clean + cue)}
    return images[check_choice("method", method, FT_METHODS)]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _model(cfg: Preset, n: Node, stored: Mapping[str, Any]) -> nn.Module:
    return zoo.load_model(cfg, n.cue, stored["state"])


def _proportion_of(cfg: Preset, value: float | None) -> float:
    return cfg.proportion if value is None else value


def _node(step: str, **params: Any) -> Node:
    """A node whose parameters are already checked and complete (inside the registry)."""
    return Node(step, tuple(sorted(params.items())))


def _child(cfg: Preset, seed: int, cue: str, proportion: float | None, branch: int = 0) -> Node:
    return _node("child", seed=seed, cue=cue, proportion=float(_proportion_of(cfg, proportion)), branch=branch)


def _pair_children(cfg: Preset, n: Node, pair: str) -> list[Node]:
    return [_child(cfg, n.seed, n.cue, p, b) for p, b in PAIRS[pair]]


def _views(cfg: Preset, seed: int, cue: str, proportion: float | None) -> Node:
    return _node("child-views", seed=seed, cue=cue, proportion=float(_proportion_of(cfg, proportion)), branch=0)


def _summary(cfg: Preset, n: Node, method: str, n_clean: int) -> Node:
    return _node("finetune-summary", seed=n.seed, cue=n.cue, method=method, n_clean=n_clean)


# --- the trained models ------------------------------------------------------------------------------

def _training_cost(epochs_setting: str) -> Callable[[Preset, Node], Cost]:
    def cost(cfg: Preset, n: Node) -> Cost:
        epochs = getattr(cfg, epochs_setting)
        return Cost(train=epochs * epoch_images(cfg.n_train, cfg.batch_size, cfg.max_batches), epochs=epochs)
    return cost


def compute_parent(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """The shared parent: ``parent_epochs`` on clean data from the seed's initialisation."""
    model = zoo.build_model(cfg, n.cue, seed=role_seed("parent-init", seed=n.seed, cue=n.cue))
    if cfg.parent_epochs > 0:
        zoo.fit(model, cfg, zoo.train_set(cfg, n.cue, 0.0), cfg.parent_epochs,
                role_seed("parent-order", seed=n.seed, cue=n.cue), f"parent (seed {n.seed})", progress)
    return {"state": _state(model)}


def compute_child(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """The parent trained on for ``child_epochs`` with the cue on ``proportion`` of the data, in its own order."""
    (model,) = inputs
    order = role_seed("child-order", seed=n.seed, cue=n.cue, proportion=n.proportion, branch=n.branch)
    zoo.fit(model, cfg, zoo.train_set(cfg, n.cue, n.proportion), cfg.child_epochs, order,
            f"child p={n.proportion:g} (seed {n.seed}, branch {n.branch})", progress)
    return {"state": _state(model)}


def compute_scratch(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """A model trained ``scratch_epochs`` from its own initialisation (no shared parent)."""
    parts = dict(seed=n.seed, cue=n.cue, proportion=n.proportion, replica=n.replica)
    model = zoo.build_model(cfg, n.cue, seed=role_seed("scratch-init", **parts))
    zoo.fit(model, cfg, zoo.train_set(cfg, n.cue, n.proportion), cfg.scratch_epochs,
            role_seed("scratch-order", **parts), f"scratch p={n.proportion:g} (seed {n.seed}.{n.replica})", progress)
    return {"state": _state(model)}


_MIDPOINT = ("batch_size", "momentum", "weight_decay", "midpoint_epochs", "midpoint_lr", "midpoint_step_every")


def _midpoint_cost(cfg: Preset, n: Node) -> Cost:
    return Cost(train=cfg.midpoint_epochs * cfg.n_train, epochs=cfg.midpoint_epochs)


def _midpoint_sgd(cfg: Preset) -> SGDConfig:
    """The midpoint's SGD settings: the authors' step decay (×0.1 every ``midpoint_step_every`` epochs)."""
    return SGDConfig(lr=cfg.midpoint_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, schedule="step",
                     step_every=cfg.midpoint_step_every)


def compute_midpoint(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """The trained Bezier midpoint between ``pair``'s children, as the authors train it.

    From a freshly initialised network, on the training data with the cue on
    every image: both endpoints fit it — one through the cue, one through the
    shapes — so a low-loss curve on it says nothing yet about which mechanism
    the points along it use; the counterfactual views measure that.
    """
    model_a, model_b = inputs
    start = zoo.build_model(cfg, n.cue, seed=role_seed("midpoint-init", seed=n.seed, pair=n.pair, cue=n.cue))
    return {"state": connectivity.train_midpoint(
        model_a, model_b, zoo.train_set(cfg, n.cue, 1.0), start.state_dict(), _midpoint_sgd(cfg),
        epochs=cfg.midpoint_epochs, batch_size=cfg.batch_size,
        seed=role_seed("midpoint", seed=n.seed, pair=n.pair, cue=n.cue), progress=progress)}


def compute_scratch_midpoint(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """The trained Bezier midpoint between the two scratch models, on their own training data."""
    model_a, model_b = inputs
    parts = dict(seed=n.seed, cue=n.cue, proportion=n.proportion)
    start = zoo.build_model(cfg, n.cue, seed=role_seed("midpoint-scratch-init", **parts))
    return {"state": connectivity.train_midpoint(
        model_a, model_b, zoo.train_set(cfg, n.cue, n.proportion), start.state_dict(), _midpoint_sgd(cfg),
        epochs=cfg.midpoint_epochs, batch_size=cfg.batch_size, seed=role_seed("midpoint-scratch", **parts),
        progress=progress)}


def _finetune_settings(n: Node) -> tuple[str, ...]:
    common = _train_data(n) + ("ft_batch_size", "ft_weight_decay", "momentum", "max_batches")
    if n.method in finetune.METHODS:
        return common + ("ft_epochs", "ft_lr") + (("llrt_lr",) if n.method in ("llrt", "lpft") else ())
    settings = ("cbft_epochs", "cbft_lr", "cbft_margin", "cbft_warmup_epochs", "n_cue", "proportion")
    return common + settings + (() if n.method == "cbft-no-invariance" else ("cbft_lambda",))


def _finetune_cost(cfg: Preset, n: Node) -> Cost:
    epochs = cfg.ft_epochs if n.method in finetune.METHODS else cfg.cbft_epochs
    features = n.n_clean if n.method in ("llrt", "lpft") else 0  # the linear probe's features, computed once
    return Cost(train=finetune_train_images(cfg, n.method, n.n_clean), forward=features, epochs=epochs)


def compute_finetuned(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """The cue-reliant child fine-tuned with a naive ``method`` (FT, LLRT, LP-FT) on ``n_clean`` clean images."""
    (start,) = inputs
    sgd = SGDConfig(lr=cfg.ft_lr, momentum=cfg.momentum, weight_decay=cfg.ft_weight_decay)
    tuned, history = finetune.run(n.method, start, zoo.clean_subset(cfg, n.seed, n.n_clean, n.cue), sgd,
                                  epochs=cfg.ft_epochs, batch_size=cfg.ft_batch_size,
                                  seed=role_seed("finetune", seed=n.seed, cue=n.cue), progress=progress,
                                  max_batches=cfg.max_batches,
                                  **({"head_lr": cfg.llrt_lr} if n.method in ("llrt", "lpft") else {}))
    return {"state": _state(tuned), "history": history}


def compute_cbft(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """The cue-reliant child fine-tuned with CBFT (or an ablation) on ``n_clean`` clean images and the cue data."""
    (start,) = inputs
    sgd = SGDConfig(lr=cfg.cbft_lr, momentum=cfg.momentum, weight_decay=cfg.ft_weight_decay)
    lam = {} if n.method == "cbft-no-invariance" else {"lam": cfg.cbft_lambda}  # that method fixes lam = 0
    tuned, history = cbft.run(n.method, start, zoo.clean_subset(cfg, n.seed, n.n_clean, n.cue),
                              zoo.cue_subset(cfg, n.seed, n.cue), sgd, epochs=cfg.cbft_epochs,
                              batch_size=cfg.ft_batch_size, margin=cfg.cbft_margin,
                              warmup_epochs=cfg.cbft_warmup_epochs, seed=role_seed("finetune", seed=n.seed, cue=n.cue),
                              progress=progress, max_batches=cfg.max_batches, **lam)
    return {"state": _state(tuned), "history": history}


# --- measurements ------------------------------------------------------------------------------------

def compute_views(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, float]:
    """Accuracy of the child on each counterfactual test view."""
    (model,) = inputs
    return zoo.view_accuracies(model, zoo.test_views(cfg, n.cue), cfg.eval_batch_size)


_PATH = ("n_train", "bn_images", "bn_average", "eval_batch_size", "eval_split")  # and the views; BN: clean training images


def _path_settings(n: Node) -> tuple[str, ...]:
    points = "path_points" if n.curve == "linear" else "switch_points"
    return _test_data(n) + _PATH + (points,)


def _path_cost(cfg: Preset, n: Node) -> Cost:
    return Cost(forward=_path_images(cfg, cfg.path_points if n.curve == "linear" else cfg.switch_points, len(VIEWS)))


def compute_path(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """Loss and accuracy on the four test views along the path between ``pair``'s children.

    ``curve="linear"`` on ``path_points`` points, or ``"bezier"`` through the
    trained midpoint on ``switch_points`` points (the finer grid on which the
    mechanism switch is measured).
    """
    model_a, model_b, *midpoint = inputs
    points = cfg.path_points if n.curve == "linear" else cfg.switch_points
    result = paths.evaluate_path(model_a, model_b, zoo.path_views(cfg, n.cue), np.linspace(0.0, 1.0, points),
                                 zoo.bn_data(cfg, n.cue), midpoint=midpoint[0] if midpoint else None,
                                 bn_images=cfg.bn_images, bn_average=cfg.bn_average,
                                 batch_size=cfg.eval_batch_size, progress=progress)
    return result.to_dict()


def _summary_cost(cfg: Preset, n: Node) -> Cost:
    return Cost(forward=_path_images(cfg, cfg.path_points, len(SUMMARY_PATH_VIEWS)) + len(VIEWS) * cfg.n_test)


def compute_summary(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """View accuracies of the fine-tuned model, and the path from the cue-reliant model θc to it.

    ``barrier_to_cue``: Entezari loss barrier on the cue test view along the
    linear path from θc (t = 0) to the fine-tuned model (t = 1);
    ``midpoint_loss_to_cue``: the loss at t = 0.5 minus the chord's value there
    (robust where the curve rises monotonically). ``path`` holds the curve on
    :data:`SUMMARY_PATH_VIEWS` only (the cue loss and the mechanism read-out,
    rand-img accuracy): half the cost of all four views.
    """
    tuned, original = inputs
    on_path = {name: view for name, view in zoo.path_views(cfg, n.cue).items() if name in SUMMARY_PATH_VIEWS}
    result = paths.evaluate_path(original, tuned.model, on_path, np.linspace(0.0, 1.0, cfg.path_points),
                                 zoo.bn_data(cfg, n.cue), bn_images=cfg.bn_images, bn_average=cfg.bn_average,
                                 batch_size=cfg.eval_batch_size, progress=progress)
    height, t_max = connectivity.barrier(result.loss["cue"], result.ts)
    mid = int(np.argmin(np.abs(result.ts - 0.5)))
    chord = (1 - result.ts[mid]) * result.loss["cue"][0] + result.ts[mid] * result.loss["cue"][-1]
    return {
        "views": zoo.view_accuracies(tuned.model, zoo.test_views(cfg, n.cue), cfg.eval_batch_size),
        "barrier_to_cue": height,
        "barrier_t": t_max,
        "midpoint_loss_to_cue": float(result.loss["cue"][mid] - chord),
        "path": result.to_dict(),
    }


def _grid_inputs(cfg: Preset, n: Node) -> list[Node]:
    bent = any(b != 0 for b in n.bends)
    if n.pair in SCRATCH_PAIRS:
        ends = [_node("scratch", seed=n.seed, cue=n.cue, proportion=0.0, replica=r) for r in (0, 1)]
        return ends + ([_node("scratch-midpoint", seed=n.seed, cue=n.cue, proportion=0.0)] if bent else [])
    mid = [_node("midpoint", seed=n.seed, cue=n.cue, pair=n.pair)] if bent else []
    return _pair_children(cfg, n, n.pair) + mid


def _grid_check(cfg: Preset, n: Node) -> None:
    if n.pair == "scratch-aligned" and any(b != 0 for b in n.bends):
        raise ConfigError("bends: pair 'scratch-aligned' has no trained midpoint; use bends=[0.0]")


def _grid_cost(cfg: Preset, n: Node) -> Cost:
    bn = min(cfg.bn_images, cfg.n_train) if n.bn == "reestimate" else 0
    align = 2 * min(cfg.bn_images, cfg.n_train) if n.pair == "scratch-aligned" else 0
    return Cost(forward=len(n.bends) * len(n.ts) * (bn + cfg.n_test) + align)


def compute_grid(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """:func:`cbft_core.kernels.landscape.explore` between a pair of models on the test ``view``.

    ``pair``: ``"scratch"`` (cue-free models from two initialisations),
    ``"scratch-aligned"`` (the same, the second model's units permuted to
    match the first's by :func:`cbft_core.kernels.alignment.align` on
    ``bn_images`` clean training images; bend 0 only) or a name of
    :data:`PAIRS` (children of one parent). The trained midpoint is an input
    only when a bend is not 0.
    """
    model_a, model_b, *midpoint = inputs
    if n.pair == "scratch-aligned":
        clean = zoo.train_set(cfg, n.cue, 0.0)
        model_b = alignment.align(model_b, model_a, clean.subset(slice(0, cfg.bn_images)),
                                  batch_size=cfg.eval_batch_size)
    data = zoo.test_views(cfg, n.cue)[n.view]
    return landscape.explore(model_a, model_b, data, np.asarray(n.bends), np.asarray(n.ts),
                             midpoint=midpoint[0] if midpoint else None,
                             sample_index=landscape.sample_indices(data, n.n_samples), bn=n.bn,
                             bn_data=zoo.bn_data(cfg, n.cue), bn_images=cfg.bn_images,
                             batch_size=cfg.eval_batch_size, progress=progress).to_dict()


# --- derived: the blocks of results.json and of a sweep unit -------------------------------------------

def _views_block(acc: Mapping[str, float]) -> dict[str, float]:
    return {VIEW_KEYS[name]: float(acc[name]) for name in VIEW_KEYS}


def _cue_barrier(result: paths.PathResult) -> float:
    return float(connectivity.barrier(result.loss["cue"], result.ts)[0])


def _finetune_block(summary: Mapping[str, Any]) -> dict[str, float]:
    return {**_views_block(summary["views"]), **{k: float(summary[k]) for k in _SUMMARY_EXTRA}}


def compute_models(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """results.json ``models``: the view accuracies of the cue, cue-free and cue-on-every-image children."""
    return {name: _views_block(acc) for name, acc in zip(MODELS, inputs)}


def compute_paths(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """results.json ``paths``: the cue-view loss barrier along each linear path of :data:`PATH_PAIRS`."""
    return {pair: {"barrier": _cue_barrier(result)} for pair, result in zip(PATH_PAIRS, inputs)}


def compute_quadratic(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, float]:
    """results.json ``quadratic``: the Bezier path of ``pair`` against its linear path.

    ``switch_width``: the width of the t interval in which rand-img accuracy
    moves from 10 % to 90 % of its total change along the quadratic path
    (:func:`cbft_core.kernels.connectivity.transition_width`).
    """
    linear, quad = inputs
    return {"barrier": _cue_barrier(quad), "linear_barrier": _cue_barrier(linear),
            "switch_width": connectivity.transition_width(quad.acc["rand-img"], quad.ts)}


def compute_finetune(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """results.json ``finetune``: per method, the fine-tuned model's view accuracies and its barrier to θc."""
    return {method: _finetune_block(summary) for method, summary in zip(n.methods, inputs)}


def compute_unit(cfg: Preset, n: Node, inputs: list[Any], progress: bool) -> dict[str, Any]:
    """A sweep unit at the preset's cue proportion: the cue and cue-free children, three barriers, the methods."""
    cue_views, free_views, *rest = inputs
    barriers, summaries = rest[:len(UNIT_PAIRS)], rest[len(UNIT_PAIRS):]
    return {"models": {"cue": _views_block(cue_views), "nocue": _views_block(free_views)},
            "barriers": {pair: _cue_barrier(r) for pair, r in zip(UNIT_PAIRS, barriers)},
            "finetune": {method: _finetune_block(s) for method, s in zip(n.methods, summaries)}}


# --- the registry ------------------------------------------------------------------------------------

def _register(*steps: Step) -> dict[str, Step]:
    return {s.name: s for s in steps}


_ALL_METHODS = Param(_methods, FT_METHODS)

STEPS: dict[str, Step] = _register(
    Step("parent", "the shared parent, trained on clean data from the seed's initialisation",
         {"seed": SEED, "cue": CUE}, lambda cfg, n: [],
         lambda n: _train_data(n) + _MODEL + _TRAINING + ("parent_epochs",), compute_parent,
         _training_cost("parent_epochs"), "model", _model, lambda n: "parent"),
    Step("child", "a child of the parent, trained with the cue on a proportion of the data in its own order",
         {"seed": SEED, "cue": CUE, "proportion": PROPORTION, "branch": Param(_int(0), 0)},
         lambda cfg, n: [_node("parent", seed=n.seed, cue=n.cue)],
         lambda n: _train_data(n) + _MODEL + _TRAINING + ("child_epochs",), compute_child,
         _training_cost("child_epochs"), "model", _model, lambda n: f"child p={n.proportion:g} branch {n.branch}"),
    Step("scratch", "a model trained from its own initialisation (no shared parent)",
         {"seed": SEED, "cue": CUE, "proportion": Param(_proportion, 0.0), "replica": Param(_int(0), 0)},
         lambda cfg, n: [], lambda n: _train_data(n) + _MODEL + _TRAINING + ("scratch_epochs",), compute_scratch,
         _training_cost("scratch_epochs"), "model", _model,
         lambda n: f"scratch p={n.proportion:g} replica {n.replica}"),
    Step("child-views", "accuracy of a child on each counterfactual test view",
         {"seed": SEED, "cue": CUE, "proportion": PROPORTION, "branch": Param(_int(0), 0)},
         lambda cfg, n: [_child(cfg, n.seed, n.cue, n.proportion, n.branch)],
         lambda n: _test_data(n) + ("eval_batch_size",), compute_views,
         lambda cfg, n: Cost(forward=len(VIEWS) * cfg.n_test), label=lambda n: f"view accuracies p={n.proportion:g}"),
    Step("path", "loss and accuracy on the four test views along the path between a pair's children",
         {"seed": SEED, "cue": CUE, "pair": Param(_choice(list(PAIRS))),
          "curve": Param(_choice(("linear", "bezier")), "linear")},
         lambda cfg, n: _pair_children(cfg, n, n.pair) + (
             [_node("midpoint", seed=n.seed, cue=n.cue, pair=n.pair)] if n.curve == "bezier" else []),
         _path_settings, compute_path, _path_cost, "json", lambda cfg, n, stored: paths.PathResult.from_dict(stored),
         lambda n: f"{'bezier ' if n.curve == 'bezier' else ''}path {n.pair}"),
    Step("midpoint", "the trained Bezier midpoint between a pair's children, on training data with the cue on every image",
         {"seed": SEED, "cue": CUE, "pair": Param(_choice(list(PAIRS)))},
         lambda cfg, n: _pair_children(cfg, n, n.pair), lambda n: _train_data(n) + _MODEL + _MIDPOINT,
         compute_midpoint, _midpoint_cost, "model", lambda cfg, n, stored: stored["state"],
         lambda n: f"midpoint {n.pair}"),
    Step("finetuned", "the cue-reliant child fine-tuned on clean images, with its training history",
         {"seed": SEED, "cue": CUE, "method": Param(_choice(FT_METHODS)), "n_clean": N_CLEAN},
         lambda cfg, n: [_child(cfg, n.seed, n.cue, None)], _finetune_settings,
         {**{m: compute_finetuned for m in finetune.METHODS}, **{m: compute_cbft for m in cbft.METHODS}},
         _finetune_cost, "model",
         lambda cfg, n, stored: FineTuned(zoo.load_model(cfg, n.cue, stored["state"]), stored["history"]),
         lambda n: f"fine-tune {n.method} (n={n.n_clean})", variant="method"),
    Step("finetune-summary", "a fine-tuned model's view accuracies and its path back to the cue-reliant child",
         {"seed": SEED, "cue": CUE, "method": Param(_choice(FT_METHODS)), "n_clean": N_CLEAN},
         lambda cfg, n: [_node("finetuned", seed=n.seed, cue=n.cue, method=n.method, n_clean=n.n_clean),
                         _child(cfg, n.seed, n.cue, None)],
         lambda n: _test_data(n) + _PATH + ("path_points",), compute_summary,
         _summary_cost, label=lambda n: f"summary {n.method} (n={n.n_clean})"),
    Step("scratch-midpoint", "the trained Bezier midpoint between the two scratch models",
         {"seed": SEED, "cue": CUE, "proportion": Param(_proportion, 0.0)},
         lambda cfg, n: [_node("scratch", seed=n.seed, cue=n.cue, proportion=n.proportion, replica=r)
                         for r in (0, 1)],
         lambda n: _train_data(n) + _MODEL + _MIDPOINT, compute_scratch_midpoint, _midpoint_cost, "model", lambda cfg, n, stored: stored["state"],
         lambda n: f"scratch midpoint p={n.proportion:g}"),
    Step("explorer-grid", "loss, accuracy and sample predictions on a grid of (bend, t) between two models",
         {"seed": SEED, "cue": CUE, "pair": Param(_choice(list(SCRATCH_PAIRS) + list(PAIRS))),
          "bends": Param(_unit_values), "ts": Param(_unit_values), "view": Param(_choice(VIEWS), "clean"),
          "n_samples": Param(_int(0), 4), "bn": Param(_choice(landscape.BN_MODES), "reestimate")},
         _grid_inputs,
         lambda n: _test_data(n) + ("n_train", "bn_images", "eval_batch_size"),
         compute_grid, _grid_cost, "json", lambda cfg, n, stored: landscape.ExplorerGrid.from_dict(stored),
         lambda n: f"explorer grid {n.pair}", _grid_check),
    Step("models", "results.json models: view accuracies of the cue, cue-free and cue100 children",
         {"seed": SEED, "cue": CUE}, lambda cfg, n: [_views(cfg, n.seed, n.cue, p) for p in MODELS.values()],
         lambda n: (), compute_models, store=None),
    Step("paths", "results.json paths: the cue-view barrier along each linear path",
         {"seed": SEED, "cue": CUE},
         lambda cfg, n: [_node("path", seed=n.seed, cue=n.cue, pair=pair, curve="linear") for pair in PATH_PAIRS],
         lambda n: (), compute_paths, store=None),
    Step("quadratic", "results.json quadratic: the Bezier path against the linear one",
         {"seed": SEED, "cue": CUE, "pair": Param(_choice(list(PAIRS)), QUADRATIC_PAIR)},
         lambda cfg, n: [_node("path", seed=n.seed, cue=n.cue, pair=n.pair, curve=c) for c in ("linear", "bezier")],
         lambda n: (), compute_quadratic, store=None),
    Step("finetune", "results.json finetune: each method's view accuracies and barrier to the cue model",
         {"seed": SEED, "cue": CUE, "methods": _ALL_METHODS, "n_clean": N_CLEAN},
         lambda cfg, n: [_summary(cfg, n, m, n.n_clean) for m in n.methods], lambda n: (), compute_finetune,
         store=None),
    Step("unit", "a sweep unit: children, barriers and fine-tuning at the preset's cue proportion",
         {"seed": SEED, "cue": CUE, "methods": _ALL_METHODS},
         lambda cfg, n: [_views(cfg, n.seed, n.cue, p) for p in (None, 0.0)]
         + [_node("path", seed=n.seed, cue=n.cue, pair=pair, curve="linear") for pair in UNIT_PAIRS]
         + [_summary(cfg, n, m, cfg.n_clean) for m in n.methods],
         lambda n: (), compute_unit, store=None),
)
