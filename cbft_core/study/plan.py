"""What :func:`cbft_core.study.pipeline.run` will do, and how long it will take, before it trains anything.

``make(preset, cue, seeds)`` lists every stored node the run reaches (the
closure of :data:`cbft_core.study.pipeline.PARTS` in the step registry), in
the order the run computes them, with its cost in images from the registry,
whether its cache entry exists, and whether this run computes it (it is not
cached, and an uncached node that consumes it is computed, or a part of
results.json needs it). It also names the data sets the run reads and
whether they are on disk.

``measure_throughput`` times the preset's own model at steady state on the
run's device: training steps (:func:`cbft_core.kernels.train.fit`) at the
preset's batch size and forward passes (:func:`cbft_core.kernels.train.predict`)
at its evaluation batch size; ``estimate_seconds`` divides the plan's
trained and forward-only images by the two rates.

Nothing here trains a model of the study, loads a checkpoint or touches the network.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..kernels import checks, data, train
from ..kernels.data import CUES, ImageSet
from ..kernels.data.torchvision_sets import TORCHVISION_SETS
from ..kernels.optim import SGDConfig
from . import cache, graph, pipeline, presets, zoo
from .presets import Preset
from .steps import STEPS, Node

__all__ = ["Row", "DataNeed", "Plan", "Throughput", "make", "workload", "measure_throughput", "estimate_seconds"]


@dataclass(frozen=True)
class Row:
    """One model or measurement of the study for one seed.

    ``train_images``: images through a forward pass with gradients;
    ``forward_images``: through a forward pass only; ``cached``: its cache
    entry exists; ``needed``: this run computes it.
    """

    seed: int
    name: str
    kind: str            # "model" or "measurement"
    epochs: int
    train_images: int
    forward_images: int
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
    """Every stored node of :func:`cbft_core.study.pipeline.run` for one preset, cue and set of seeds."""

    preset: Preset
    cue: str
    rows: tuple[Row, ...]
    data: tuple[DataNeed, ...]
    cache_dir: str

    def work(self, needed_only: bool = True) -> dict[str, int]:
        """Total ``train`` and ``forward`` images (of the rows this run computes, or of all rows)."""
        chosen = [r for r in self.rows if r.needed or not needed_only]
        return {"train": sum(r.train_images for r in chosen), "forward": sum(r.forward_images for r in chosen)}

    @property
    def missing_data(self) -> tuple[str, ...]:
        """Names of the data sets that are not on disk."""
        return tuple(d.name for d in self.data if not d.present)


@dataclass(frozen=True)
class Throughput:
    """Steady-state images per second of the preset's model on ``device``: training steps and forward passes."""

    train_per_s: float
    forward_per_s: float
    train_batch: int
    forward_batch: int
    device: str
    seconds: float       # how long the measurement took


def _roots(cfg: Preset, seed: int, cue: str) -> list[Node]:
    return [graph.node(cfg, part, seed=seed, cue=cue) for part in pipeline.PARTS]


def _stored(cfg: Preset, seed: int, cue: str) -> list[Node]:
    return [n for n in graph.closure(cfg, _roots(cfg, seed, cue)) if STEPS[n.step].store is not None]


def make(preset: str | Preset = "cpu", cue: str = "box", seeds: Sequence[int] | None = None,
         **overrides: Any) -> Plan:
    """The plan of ``pipeline.run(preset, seeds, cue=cue, **overrides)`` against the current cache."""
    checks.check_choice("cue", cue, CUES)
    cfg = presets.get(preset, seeds=seeds, **overrides)
    rows: list[Row] = []
    for seed in cfg.seeds:
        needed = graph.needed(cfg, _roots(cfg, int(seed), cue))
        for n in _stored(cfg, int(seed), cue):
            cost = graph.cost(cfg, n)
            rows.append(Row(int(seed), graph.label(n), STEPS[n.step].kind, cost.epochs, cost.train,
                            cost.forward, graph.is_cached(cfg, n), n in needed))
    sets = [(cfg.dataset, "base")] + ([(cfg.simple, "dominoes top")] if cue == "dominoes" else [])
    needs = tuple(DataNeed(name, role, data.data_present(name),
                           str(data.data_root()) if name in TORCHVISION_SETS else "") for name, role in sets)
    return Plan(cfg, cue, tuple(rows), needs, str(cache.cache_dir()))


def workload(cfg: Preset, cue: str = "box") -> dict[str, int]:
    """Images one seed of :func:`cbft_core.study.pipeline.run` puts through the network, from a cold cache.

    ``train``: with gradients; ``forward``: forward passes only. Every node
    the run reaches counts once (a child shared by two paths, say).
    """
    checks.check_choice("cue", cue, CUES)
    costs = [graph.cost(cfg, n) for n in _stored(cfg, int(cfg.seeds[0]), cue)]
    return {"train": sum(c.train for c in costs), "forward": sum(c.forward for c in costs)}


def _window(run: Callable[[int], None], rounds: int) -> float:
    start = time.perf_counter()
    run(rounds)
    return time.perf_counter() - start


def _rounds_for(run: Callable[[int], None], seconds: float) -> int:
    """How many rounds of ``run`` last about ``seconds`` once warm (the first call warms up and is not used)."""
    run(1)
    rounds, elapsed = 1, _window(run, 1)
    while elapsed < seconds / 4:
        rounds *= 2
        elapsed = _window(run, rounds)
    return max(1, round(rounds * seconds / elapsed))


def measure_throughput(cfg: Preset, cue: str = "box", seconds: float = 6.0) -> Throughput:
    """Steady-state training and forward throughput of ``cfg``'s model on the run's device.

    Random uint8 images of the cue's input shape. Training: epochs of
    :func:`cbft_core.kernels.train.fit` over one batch of ``cfg.batch_size``
    (channels-last and bf16 as the preset sets them); forward:
    :func:`cbft_core.kernels.train.predict` of one batch of
    ``cfg.eval_batch_size``. After a warm-up, three timed windows of each kind
    alternate (``seconds`` in all, plus the warm-up and sizing), so a load that
    comes and goes on the machine weighs on both rates alike.
    """
    checks.check_number("seconds", seconds, minimum=0.0, strict_minimum=True)
    checks.check_choice("cue", cue, CUES)
    device = zoo.resolve_device(cfg)
    model = zoo.build_model(cfg, cue, seed=0).to(device)
    shape = (3, 64, 32) if cue == "dominoes" else (3, 32, 32)
    g = torch.Generator().manual_seed(0)

    def probe(n: int) -> ImageSet:
        images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
        labels = torch.randint(0, cfg.num_classes, (n,), generator=g)
        return ImageSet(images, labels, tuple(str(k) for k in range(cfg.num_classes))).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fit_set, eval_set = probe(cfg.batch_size), probe(cfg.eval_batch_size)  # a round: one batch
    sgd = SGDConfig(lr=1e-3, momentum=cfg.momentum, weight_decay=cfg.weight_decay, schedule="constant")

    def train_rounds(rounds: int) -> None:
        train.fit(model, fit_set, sgd, epochs=rounds, batch_size=cfg.batch_size, progress=False,
                  channels_last=cfg.channels_last, amp=cfg.amp)
        sync()

    def forward_rounds(rounds: int) -> None:
        for _ in range(rounds):
            train.predict(model, eval_set, cfg.eval_batch_size)
        sync()

    start = time.perf_counter()
    windows = 3  # alternate the two kinds, so that both see the same load of the machine
    rounds = {"train": _rounds_for(train_rounds, seconds / (2 * windows)),
              "forward": _rounds_for(forward_rounds, seconds / (2 * windows))}
    spent = {"train": 0.0, "forward": 0.0}
    for _ in range(windows):
        spent["train"] += _window(train_rounds, rounds["train"])
        spent["forward"] += _window(forward_rounds, rounds["forward"])
    train_rate = windows * rounds["train"] * len(fit_set) / spent["train"]
    forward_rate = windows * rounds["forward"] * len(eval_set) / spent["forward"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return Throughput(train_rate, forward_rate, cfg.batch_size, cfg.eval_batch_size, name,
                      time.perf_counter() - start)


def estimate_seconds(plan: Plan, rate: Throughput, needed_only: bool = True) -> float:
    """Seconds for the plan's work: trained images at ``rate.train_per_s``, forward-only ones at ``rate.forward_per_s``.

    Making the data sets, checkpoints and LLRT's head training (on features, not images) are left out.
    """
    checks.check_number("train_per_s", rate.train_per_s, minimum=0.0, strict_minimum=True)
    checks.check_number("forward_per_s", rate.forward_per_s, minimum=0.0, strict_minimum=True)
    work = plan.work(needed_only)
    return work["train"] / rate.train_per_s + work["forward"] / rate.forward_per_s
