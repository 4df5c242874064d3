"""Chapter 4 (naive fine-tuning): its comparison table and the sentences its prose glues."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ...study import claims
from ...study.presets import Preset
from ...study.replication import NAMES, fmt_loss, fmt_pct
from ...study.steps import VIEW_KEYS
from .prose import listing, mean, pct, points, x_chance

__all__ = ["settings_line", "rows", "start", "findings", "connected", "along_paths"]

Block = Mapping[str, Mapping[str, Sequence[float]]]  # method → results.json finetune entry (one number per seed)


def settings_line(cfg: Preset, sizes: Sequence[int]) -> str:
    """What the chapter runs, in one printed line."""
    return (f"preset {cfg.name}: {cfg.model}, cue proportion {cfg.proportion}, seeds {list(cfg.seeds)}; fine-tuning "
            f"{cfg.ft_epochs} epochs at lr {cfg.ft_lr} (cosine), weight decay {cfg.ft_weight_decay}, batch "
            f"{cfg.ft_batch_size}; LLRT head lr {cfg.llrt_lr}; clean-set sizes {list(sizes)}")


def rows(results: Mapping[int, Block], methods: Sequence[str]) -> list[dict[str, str]]:
    """One row per (clean-set size, method): the four views and the barrier back to θc, mean ± std over seeds."""
    return [{"method": NAMES[m], "n clean": str(n), **{v: fmt_pct(block[m][k]) for v, k in VIEW_KEYS.items()},
             "barrier to θc": fmt_loss(block[m]["barrier_to_cue"])} for n, block in results.items() for m in methods]


def _tier(x: float, chance: float) -> str:
    """Where a rand-img accuracy stands: at the claims' floor for keeping the cue, near chance, or between."""
    keeps = claims.claim("naive-keeps-cue").thresholds["x_chance"]
    near = claims.claim("cbft-removes-cue").thresholds["high_x_chance"]
    return "keeps" if x >= keeps * chance else "near" if x <= near * chance else "between"


def start(original: Mapping[str, Sequence[float]], chance: float) -> str:
    """How θc scores on the views that fingerprint its mechanism."""
    reads = {"keeps": "it reads the box", "between": "it partly reads the box",
             "near": "it hardly reads the box"}[_tier(mean(original["rand-img"]), chance)]
    return (f"θc scores {pct(original['rand-img'])} on **rand-img** ({x_chance(original['rand-img'], chance)}) and "
            f"{pct(original['rand-cue'])} on **rand-cue**, against {pct(original['clean'])} on clean images: {reads}.")


def findings(original: Mapping[str, Sequence[float]], results: Mapping[int, Block], methods: Sequence[str],
             chance: float) -> dict[str, str]:
    """The sentences on the comparison table: clean accuracy, cue reliance and the effect of more clean images."""
    small, large = min(results), max(results)
    block = results[large]
    before = mean(original["clean"])
    after = [mean(block[m]["clean"]) for m in methods]
    verdict = ("above θc's {}: fine-tuning does its job on the data it sees" if min(after) > before else
               "below θc's {}" if max(after) < before else "on both sides of θc's {}").format(pct(before))
    clean = (f"With {large} clean images, clean accuracy is " + listing([f"{pct(block[m]['clean'])} ({NAMES[m]})"
                                                                         for m in methods]) + f", {verdict}.")
    tiers = {m: _tier(mean(block[m]["rand_img"]), chance) for m in methods}
    floor = claims.claim("naive-keeps-cue").thresholds["x_chance"]
    groups = {t: [NAMES[m] for m in methods if tiers[m] == t] for t in ("keeps", "between", "near")}
    said = {"keeps": f"at or above {floor:g}× chance, where the claims count the cue as kept",
            "between": f"below that floor of {floor:g}× chance, yet well above chance",
            "near": "at chance: the box no longer decides"}
    cue = ("On **rand-img** the fine-tuned models score " + listing(
        [f"{pct(block[m]['rand_img'])} ({NAMES[m]}, {x_chance(block[m]['rand_img'], chance)})" for m in methods])
        + "; " + "; ".join(f"{listing(names)} {'stays' if len(names) == 1 else 'stay'} {said[t]}"
                           for t, names in groups.items() if names) + ".")
    deltas = {m: mean(block[m]["rand_img"]) - mean(results[small][m]["rand_img"]) for m in methods}
    word = ("barely change it" if max(abs(d) for d in deltas.values()) <= 0.03 else
            "lower it" if max(deltas.values()) < 0 else "raise it" if min(deltas.values()) > 0 else "move it both ways")
    size = (f"Going from {small} to {large} clean images changes rand-img by "
            + listing([f"{points(d)} ({NAMES[m]})" for m, d in deltas.items()]) + f": more clean images {word}.")
    return {"clean": clean, "cue": cue, "size": size}


def connected(block: Block, control: Sequence[float]) -> str:
    """The barrier from θc to FT and LP-FT against the same-mechanism control, as the claims' criterion reads it."""
    slack = claims.claim("naive-connected").thresholds["slack"]
    naive = {m: mean(block[m]["barrier_to_cue"]) for m in ("ft", "lpft")}
    within = max(naive.values()) <= max(mean(control), 0.0) + slack
    return ("The barrier from θc is " + listing([f"{v:.3f} to the {NAMES[m]} model" for m, v in naive.items()])
            + f", against {mean(control):.3f} for the same-mechanism control; "
            + (f"both lie within {slack:g} of the control: on cue data, fine-tuning moved θc no further than a "
               "change of data order does." if within else
               f"at least one lies more than {slack:g} above the control: fine-tuning left θc's basin on cue data."))


def along_paths(paths: Mapping[str, Mapping[str, Any]], chance: float) -> str:
    """The lowest rand-img accuracy along the paths from θc to its fine-tuned versions."""
    lowest = min(min(p["acc"]["rand-img"]) for p in paths.values())
    return (f"Rand-img accuracy (bottom panel) stays at or above {pct(lowest)} along every path "
            f"({x_chance(lowest, chance)}).")
