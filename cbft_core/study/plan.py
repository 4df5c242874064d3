"""What :func:`cbft_core.study.pipeline.run` will do, before it trains anything.

``make(preset, cue, seeds)`` lists every model and measurement of the study
for each seed (in the order the pipeline computes them) with the images it
pushes through the network, whether its cache entry already exists, and
whether this run must compute it: a measurement is computed when it is not
cached; a model is trained when it is not cached and an uncached
measurement (or model) needs it. It also names the data sets the run reads
and whether they are on disk. ``measure_throughput`` times the preset's own
training loop for a few seconds on the device the run will use, and
``estimate_seconds`` turns the remaining work into a time.

Nothing here trains, loads a checkpoint or touches the network.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..errors import ConfigError
from ..kernels import checks, connectivity, data, paths, train
from ..kernels.data import CUES, ImageSet
from ..kernels.data.torchvision_sets import TORCHVISION_SETS
from . import cache, experiments, pipeline, presets, replication, zoo
from .presets import Preset

__all__ = ["Step", "DataNeed", "Plan", "Throughput", "make", "measure_throughput", "estimate_seconds"]


@dataclass(frozen=True)
class Step:
    """One model or measurement of the study for one seed.

    ``train_images``: images through a forward + backward pass;
    ``eval_images``: through a forward pass only; ``cached``: its cache entry
    exists; ``needed``: this run computes it.
    """

    seed: int
    name: str
    kind: str            # "model" or "measurement"
    epochs: int
    train_images: int
    eval_images: int
    cached: bool
    needed: bool


@dataclass(frozen=True)
class DataNeed:
    """A base image set the run reads, and whether it is on disk under ``root`` ("" for a built-in set)."""

    name: str
    role: str            # "base" or "dominoes top"
    present: bool
    root: str


@dataclass(frozen=True)
class Plan:
    """Every step of :func:`cbft_core.study.pipeline.run` for one preset, cue and set of seeds."""

    preset: Preset
    cue: str
    steps: tuple[Step, ...]
    data: tuple[DataNeed, ...]
    cache_dir: str

    def work(self, needed_only: bool = True) -> dict[str, int]:
        """Total ``train`` and ``eval`` images (of the steps this run computes, or of all steps)."""
        chosen = [s for s in self.steps if s.needed or not needed_only]
        return {"train": sum(s.train_images for s in chosen), "eval": sum(s.eval_images for s in chosen)}

    @property
    def missing_data(self) -> tuple[str, ...]:
        """Names of the data sets that are not on disk."""
        return tuple(d.name for d in self.data if not d.present)


@dataclass(frozen=True)
class Throughput:
    """Training images per second of the preset's model, measured on ``device``."""

    images_per_s: float
    device: str
    batch_size: int
    seconds: float


def _per_epoch(n: int, batch_size: int, max_batches: int | None) -> int:
    """Images one epoch of :func:`cbft_core.kernels.train.fit` trains on."""
    return n if max_batches is None else min(n, max_batches * batch_size)


def _exists(kind: str, key: dict[str, Any], suffix: str) -> bool:
    return cache.entry_path(kind, key, suffix).is_file()


def _steps_of_seed(cfg: Preset, seed: int, cue: str) -> list[dict[str, Any]]:
    """The seed's nodes in the pipeline's order: name, kind, work, cached, and the nodes they need."""
    n_train, n_test = cfg.n_train, cfg.n_test
    n_clean = min(cfg.n_clean, cfg.n_train)
    model_epoch = _per_epoch(n_train, cfg.batch_size, cfg.max_batches)
    one_pass = paths.takes_one_pass(n_test, cfg.bn_images)
    per_view_point = n_test if one_pass else min(cfg.bn_images, n_test) + n_test
    n_views = len(data.VIEWS)

    def prop(value: float | None) -> float:
        return cfg.proportion if value is None else value

    def child_name(p: float, branch: int) -> str:
        return f"child p={p:g} branch {branch}"

    nodes: list[dict[str, Any]] = [dict(
        name="parent", kind="model", epochs=cfg.parent_epochs, train=cfg.parent_epochs * model_epoch, eval=0,
        cached=_exists(*zoo.model_entry(zoo.parent_key(cfg, seed, cue)), ".pt"), deps=())]
    children: list[tuple[float, int]] = []
    for pair in pipeline.PATH_PAIRS:
        for p, branch in experiments.PAIRS[pair]:
            if (prop(p), branch) not in children:
                children.append((prop(p), branch))
    for p, branch in children:
        nodes.append(dict(name=child_name(p, branch), kind="model", epochs=cfg.child_epochs,
                          train=cfg.child_epochs * model_epoch, eval=0, deps=("parent",),
                          cached=_exists(*zoo.model_entry(zoo.child_key(cfg, seed, cue, p, branch)), ".pt")))
    cue_child = child_name(cfg.proportion, 0)
    viewed: list[float] = []
    for label, p in pipeline.MODELS.items():
        if prop(p) in viewed:  # the same child under another name: one cache entry
            continue
        viewed.append(prop(p))
        nodes.append(dict(name=f"view accuracies ({label} model)", kind="measurement", epochs=0, train=0,
                          eval=n_views * n_test, deps=(child_name(prop(p), 0),),
                          cached=_exists("child-views", experiments.child_views_key(cfg, seed, prop(p), 0, cue),
                                         ".json")))
    for pair in pipeline.PATH_PAIRS:
        (pa, ba), (pb, bb) = experiments.PAIRS[pair]
        nodes.append(dict(name=f"path {pair}", kind="measurement", epochs=0, train=0,
                          eval=cfg.path_points * per_view_point * n_views,
                          deps=(child_name(prop(pa), ba), child_name(prop(pb), bb)),
                          cached=_exists("path", experiments.path_key(cfg, seed, pair, cue), ".json")))
    pair = pipeline.QUADRATIC_PAIR
    (pa, ba), (pb, bb) = experiments.PAIRS[pair]
    ends = (child_name(prop(pa), ba), child_name(prop(pb), bb))
    mid_steps, mid_batch = connectivity.midpoint_batches(n_train, cfg.batch_size)
    nodes.append(dict(name=f"midpoint {pair}", kind="model", epochs=cfg.midpoint_epochs,
                      train=cfg.midpoint_epochs * mid_steps * mid_batch, eval=0, deps=ends,
                      cached=_exists("midpoint", experiments.midpoint_key(cfg, seed, pair, cue), ".pt")))
    nodes.append(dict(name=f"bezier path {pair}", kind="measurement", epochs=0, train=0,
                      eval=cfg.switch_points * per_view_point * n_views, deps=(*ends, f"midpoint {pair}"),
                      cached=_exists("path", experiments.path_key(cfg, seed, pair, cue, "bezier"), ".json")))
    for method in experiments.FT_METHODS:
        epochs = cfg.cbft_epochs if method.startswith("cbft") else cfg.ft_epochs
        nodes.append(dict(name=f"fine-tune {method}", kind="model", epochs=epochs,
                          train=replication.finetune_train_images(cfg, method),
                          eval=n_clean if method in ("llrt", "lpft") else 0,   # the linear probe's features
                          deps=(cue_child,),
                          cached=_exists("finetuned", experiments.finetuned_key(cfg, seed, method, cfg.n_clean, cue),
                                         ".pt")))
    for method in experiments.FT_METHODS:
        nodes.append(dict(name=f"summary {method}", kind="measurement", epochs=0, train=0,
                          eval=cfg.path_points * per_view_point * len(experiments.SUMMARY_PATH_VIEWS)
                          + n_views * n_test,
                          deps=(f"fine-tune {method}", cue_child),
                          cached=_exists("finetune-summary",
                                         experiments.summary_key(cfg, seed, method, cfg.n_clean, cue), ".json")))
    return nodes


def _needed(nodes: list[dict[str, Any]]) -> set[str]:
    """Names of the nodes this run computes: uncached measurements and the uncached models they need."""
    by_name = {n["name"]: n for n in nodes}
    needed = {n["name"] for n in nodes if n["kind"] == "measurement" and not n["cached"]}
    for node in reversed(nodes):  # every node comes after the nodes it needs
        if node["name"] in needed:
            needed.update(d for d in node["deps"] if not by_name[d]["cached"])
    return needed


def make(preset: str | Preset = "cpu", cue: str = "box", seeds: Sequence[int] | None = None,
         **overrides: Any) -> Plan:
    """The plan of ``pipeline.run(preset, seeds, cue=cue, **overrides)`` against the current cache."""
    if cue not in CUES:
        raise ConfigError(f"cue: unknown cue {cue!r}; choose one of {list(CUES)}")
    cfg = presets.get(preset, seeds=seeds, **overrides)
    steps: list[Step] = []
    for seed in cfg.seeds:
        nodes = _steps_of_seed(cfg, int(seed), cue)
        needed = _needed(nodes)
        steps += [Step(int(seed), n["name"], n["kind"], int(n["epochs"]), int(n["train"]), int(n["eval"]),
                       bool(n["cached"]), n["name"] in needed) for n in nodes]
    sets = [(cfg.dataset, "base")] + ([(cfg.simple, "dominoes top")] if cue == "dominoes" else [])
    needs = tuple(DataNeed(name, role, data.data_present(name),
                           str(data.data_root()) if name in TORCHVISION_SETS else "") for name, role in sets)
    return Plan(cfg, cue, tuple(steps), needs, str(cache.cache_dir()))


def measure_throughput(cfg: Preset, cue: str = "box", seconds: float = 3.0,
                       batch_size: int | None = None) -> Throughput:
    """Training images/s of ``cfg``'s model through :func:`cbft_core.kernels.train.fit` on the run's device.

    Random uint8 images of the cue's input shape; one warm-up batch, then
    about ``seconds`` of batches. ``batch_size`` defaults to the preset's on
    a GPU and to at most 32 on the CPU (throughput per image hardly depends
    on it there, and a full VGG batch would take the whole budget).
    """
    checks.check_number("seconds", seconds, minimum=0.0, strict_minimum=True)
    device = zoo.resolve_device(cfg)
    if batch_size is None:
        batch_size = cfg.batch_size if device.type == "cuda" else min(cfg.batch_size, 32)
    checks.check_int("batch_size", batch_size, minimum=1)
    model = zoo.build_model(cfg, cue, seed=0).to(device)
    shape = (3, 64, 32) if cue == "dominoes" else (3, 32, 32)

    def timed(batches: int) -> float:
        g = torch.Generator().manual_seed(batches)
        n = batches * batch_size
        images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
        labels = torch.randint(0, cfg.num_classes, (n,), generator=g)
        probe = ImageSet(images, labels, tuple(str(k) for k in range(cfg.num_classes)))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        train.fit(model, probe, epochs=1, lr=1e-3, batch_size=batch_size, momentum=cfg.momentum,
                  weight_decay=cfg.weight_decay, schedule="constant", progress=False,
                  channels_last=cfg.channels_last, amp=cfg.amp)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed(1)  # warm-up: allocations, kernel selection
    one = timed(1)
    batches = max(2, min(500, math.ceil(seconds / max(one, 1e-6))))
    elapsed = timed(batches)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return Throughput(batches * batch_size / elapsed, name, batch_size, elapsed)


def estimate_seconds(plan: Plan, images_per_s: float, needed_only: bool = True) -> float:
    """Seconds for the plan's work at ``images_per_s`` training throughput.

    Forward-only images count :data:`~cbft_core.study.replication.EVAL_SPEEDUP`
    times faster, as in :func:`~cbft_core.study.replication.estimate_hours`;
    data loading and checkpointing are left out.
    """
    checks.check_number("images_per_s", images_per_s, minimum=0.0, strict_minimum=True)
    work = plan.work(needed_only)
    return (work["train"] + work["eval"] / replication.EVAL_SPEEDUP) / images_per_s
