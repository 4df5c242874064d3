"""The paper's claims as one registry: statement, source, criterion, thresholds and check in one place.

Every chapter that states a claim, and the replication table, evaluates it
here by its stable id: none retypes a threshold or matches a claim by its
title. A claim is checked on a *results* dict in the format of
:func:`cbft_core.study.pipeline.run` (a chapter may pass only the parts a claim
needs, listed in :attr:`Claim.needs`). Each :class:`Outcome` carries the
numbers it was decided on and sentences generated from them, so the prose of
a chapter is true for whatever run produced it.

Criteria are decided on the mean over seeds, except where a claim says
"on every seed". Thresholds are fractions of chance accuracy (``*_x_chance``),
accuracy points as fractions (``*_points``) or loss units.

Chapter 1's claims about linear mode connectivity read a part ``lmc`` that
results.json does not hold: the clean-view barriers of the children of one
parent (``child_barrier``) and of models trained from scratch
(``scratch_barrier``), one per seed, and the scratch pair's barrier along
the straight line (``line_barrier``) and along the trained curve
(``curve_barrier``). :func:`check` asserts outcomes the same way in every
chapter, and checks nothing at the ``tiny`` preset, which trains for seconds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..kernels.checks import check_choice
from .presets import Preset
from .replication import NAMES, fmt_loss, fmt_pct

__all__ = ["Claim", "Outcome", "CLAIMS", "UNCHECKED_PRESETS", "claim", "evaluate", "evaluate_all", "check", "rows"]

UNCHECKED_PRESETS: tuple[str, ...] = ("tiny",)  # presets too small for any claim to be expected to hold

Results = Mapping[str, Any]


@dataclass(frozen=True)
class Claim:
    """One claim: what it says, where the paper says it, and how this book checks it."""

    id: str
    statement: str                      # the claim, in the book's words
    source: str                         # where in Lubana et al. (2023), or "this book"
    criterion: str                      # a format string over ``thresholds``
    thresholds: Mapping[str, float]
    needs: tuple[str, ...]              # parts of the results dict it reads
    measure: Callable[["Claim", Results], "Outcome"] = field(repr=False)
    reported: bool = False              # True: measured and reported, no verdict (e.g. ablations)

    def criterion_text(self) -> str:
        """The criterion with its thresholds filled in."""
        return self.criterion.format(**self.thresholds)


@dataclass(frozen=True)
class Outcome:
    """A claim evaluated on one results dict."""

    claim: Claim
    holds: bool | None                  # None for a reported measurement
    measured: str                       # the numbers, as mean ± std text
    numbers: Mapping[str, float]        # every number the verdict rests on (means over seeds)
    detail: str = ""                    # one generated sentence on why it holds or not

    def __post_init__(self) -> None:  # numpy comparisons give numpy booleans; keep plain bool/None
        if self.holds is not None:
            object.__setattr__(self, "holds", bool(self.holds))

    @property
    def verdict(self) -> str:
        """``"holds"``, ``"does not hold"``, ``"reported"`` or ``"not checked"`` (at an unchecked preset)."""
        if self.holds is None:
            return "reported" if self.claim.reported else "not checked"
        return "holds" if self.holds else "does not hold"

    def sentence(self) -> str:
        """A sentence for the prose, generated from the measurement."""
        head = f"{self.claim.statement}: {self.verdict}"
        return f"{head} ({self.detail})." if self.detail else f"{head}."


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(np.asarray(values, dtype=float)))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _times(value: float, threshold: float) -> str:
    """``value`` as "N×", with as many decimals (1 to 3) as it takes for the shown number to fall on the same
    side of ``threshold`` as the value (2.996 against 3 reads "2.996×", not "3.0×")."""
    if not np.isfinite(value):
        return "infinitely many times"
    for digits in (1, 2, 3):
        shown = round(value, digits)
        if (shown >= threshold) == (value >= threshold) and (shown <= threshold) == (value <= threshold):
            break
    return f"{value:.{digits}f}×"


# --- the checks ------------------------------------------------------------------------------------

def _cue_reliance(c: Claim, r: Results) -> Outcome:
    chance, th = float(r["chance"]), c.thresholds
    cue, free = _mean(r["models"]["cue"]["rand_img"]), _mean(r["models"]["nocue"]["rand_img"])
    holds = cue >= th["cue_x_chance"] * chance and free <= th["free_x_chance"] * chance
    return Outcome(c, holds,
                   f"rand-img: cue model {fmt_pct(r['models']['cue']['rand_img'])}, "
                   f"cue-free model {fmt_pct(r['models']['nocue']['rand_img'])} (chance {_pct(chance)})",
                   {"cue_rand_img": cue, "free_rand_img": free, "chance": chance},
                   f"cue model {_times(cue / chance, th['cue_x_chance'])} chance, "
                   f"cue-free model {_times(free / chance, th['free_x_chance'])} chance")


def _mechanism_barrier(c: Claim, r: Results) -> Outcome:
    th, paths = c.thresholds, r["paths"]
    diff = np.asarray(paths["cue-nocue"]["barrier"], dtype=float)
    controls = {p: np.asarray(paths[p]["barrier"], dtype=float) for p in ("nocue-nocue", "cue-cue")}
    top_name = max(controls, key=lambda p: controls[p].mean())
    top = float(controls[top_name].mean())
    per_seed_top = np.maximum(controls["nocue-nocue"], controls["cue-cue"])
    ordered = int(np.sum(diff > per_seed_top))
    ratio = float(diff.mean() / top) if top > 0 else float("inf")
    holds = (diff.mean() >= th["barrier_min"] and diff.mean() >= th["x_control"] * top
             and ordered == len(diff))
    ratio_text = _times(ratio, th["x_control"])
    return Outcome(c, holds,
                   f"cue-nocue {fmt_loss(diff)}; controls nocue-nocue {fmt_loss(controls['nocue-nocue'])}, "
                   f"cue-cue {fmt_loss(controls['cue-cue'])}",
                   {"cue_nocue": float(diff.mean()), "control": top, "ratio": ratio,
                    "seeds_ordered": float(ordered), "seeds": float(len(diff))},
                   f"cue-nocue is {ratio_text} the larger control ({top_name}) and above both controls on "
                   f"{ordered} of {len(diff)} seeds")


def _cue100(c: Claim, r: Results) -> Outcome:
    full = _mean(r["paths"]["cue100-nocue"]["barrier"])
    part = _mean(r["paths"]["cue-nocue"]["barrier"])
    rel = "higher than" if full > part else "lower than" if full < part else "equal to"
    return Outcome(c, None,
                   f"cue100-nocue {fmt_loss(r['paths']['cue100-nocue']['barrier'])} vs cue-nocue "
                   f"{fmt_loss(r['paths']['cue-nocue']['barrier'])}; cue100 model rand-img "
                   f"{fmt_pct(r['models']['cue100']['rand_img'])}, clean {fmt_pct(r['models']['cue100']['clean'])}",
                   {"cue100_nocue": full, "cue_nocue": part},
                   f"the barrier from the model trained with the cue on every image is {rel} the one from the "
                   f"model trained with it on part of the data")


def _quadratic_connects(c: Claim, r: Results) -> Outcome:
    q = r["quadratic"]
    quad, lin = _mean(q["barrier"]), _mean(q["linear_barrier"])
    holds = quad <= c.thresholds["x_linear"] * lin
    return Outcome(c, holds, f"quadratic {fmt_loss(q['barrier'])} vs linear {fmt_loss(q['linear_barrier'])}",
                   {"quadratic": quad, "linear": lin, "ratio": quad / lin if lin > 0 else float("inf")},
                   f"the quadratic barrier is {quad / lin:.2f}× the linear one" if lin > 0 else
                   "the linear path has no barrier to remove")


def _abrupt_switch(c: Claim, r: Results) -> Outcome:
    widths = r["quadratic"]["switch_width"]
    w = _mean(widths)
    holds = w <= c.thresholds["width_max"]
    return Outcome(c, holds, f"10 %→90 % width of the rand-img change {fmt_loss(widths)} of the path "
                             f"(a straight ramp: 0.8)",
                   {"width": w}, f"the switch spans {w:.2f} of the path, "
                                 f"{'within' if holds else 'more than'} {c.thresholds['width_max']:g}")


def _naive_keeps_cue(c: Claim, r: Results) -> Outcome:
    chance, ft = float(r["chance"]), r["finetune"]
    means = {m: _mean(ft[m]["rand_img"]) for m in ("ft", "lpft")}
    holds = all(v >= c.thresholds["x_chance"] * chance for v in means.values())
    return Outcome(c, holds, "rand-img: " + ", ".join(f"{NAMES[m]} {fmt_pct(ft[m]['rand_img'])}" for m in means)
                   + f" (chance {_pct(chance)})",
                   {f"{m}_rand_img": v for m, v in means.items()},
                   ", ".join(f"{NAMES[m]} {_times(v / chance, c.thresholds['x_chance'])} chance"
                             for m, v in means.items()))


def _naive_connected(c: Claim, r: Results) -> Outcome:
    ft, control = r["finetune"], _mean(r["paths"]["cue-cue"]["barrier"])
    means = {m: _mean(ft[m]["barrier_to_cue"]) for m in ("ft", "lpft")}
    limit = max(control, 0.0) + c.thresholds["slack"]
    holds = all(v <= limit for v in means.values())
    return Outcome(c, holds, "barrier to θc: " + ", ".join(f"{NAMES[m]} {fmt_loss(ft[m]['barrier_to_cue'])}"
                                                            for m in means)
                   + f"; cue-cue control {fmt_loss(r['paths']['cue-cue']['barrier'])}",
                   {**{f"{m}_barrier": v for m, v in means.items()}, "control": control},
                   f"largest {max(means.values()):.3f} against a limit of {limit:.3f}")


def _llrt_convex(c: Claim, r: Results) -> Outcome:
    b = r["finetune"]["llrt"]["barrier_to_cue"]
    worst = float(np.max(b))
    holds = worst <= c.thresholds["tolerance"]
    return Outcome(c, holds, f"barrier to θc {fmt_loss(b)} (largest {worst:.2g})", {"largest": worst},
                   "only the linear head moves, the logits are linear in t and the loss is convex in them")


def _cbft_removes_cue(c: Claim, r: Results) -> Outcome:
    chance, th = float(r["chance"]), c.thresholds
    v = _mean(r["finetune"]["cbft"]["rand_img"])
    holds = th["low_x_chance"] * chance <= v <= th["high_x_chance"] * chance
    return Outcome(c, holds, f"rand-img {fmt_pct(r['finetune']['cbft']['rand_img'])} (chance {_pct(chance)})",
                   {"rand_img": v, "chance": chance}, f"{v / chance:.2f}× chance")


def _cbft_invariant(c: Claim, r: Results) -> Outcome:
    cb = r["finetune"]["cbft"]
    clean, cue, rcue = _mean(cb["clean"]), _mean(cb["cue"]), _mean(cb["rand_cue"])
    gap = max(abs(cue - clean), abs(rcue - clean))
    holds = gap <= c.thresholds["points"]
    return Outcome(c, holds, f"clean {fmt_pct(cb['clean'])}, cue {fmt_pct(cb['cue'])}, "
                             f"rand-cue {fmt_pct(cb['rand_cue'])}",
                   {"clean": clean, "cue": cue, "rand_cue": rcue, "gap": gap},
                   f"cue view {100 * (cue - clean):+.1f} and rand-cue {100 * (rcue - clean):+.1f} points "
                   f"from clean")


def _cbft_accuracy(c: Claim, r: Results) -> Outcome:
    cb, ft = _mean(r["finetune"]["cbft"]["clean"]), _mean(r["finetune"]["ft"]["clean"])
    holds = cb >= ft - c.thresholds["points"]
    return Outcome(c, holds, f"clean: CBFT {fmt_pct(r['finetune']['cbft']['clean'])}, "
                             f"FT {fmt_pct(r['finetune']['ft']['clean'])}",
                   {"cbft_clean": cb, "ft_clean": ft}, f"{100 * (cb - ft):+.1f} points against FT")


def _cbft_basin(c: Claim, r: Results) -> Outcome:
    b = _mean(r["finetune"]["cbft"]["barrier_to_cue"])
    holds = b >= c.thresholds["barrier_min"]
    return Outcome(c, holds, f"barrier to θc {fmt_loss(r['finetune']['cbft']['barrier_to_cue'])} "
                             f"(FT {fmt_loss(r['finetune']['ft']['barrier_to_cue'])})",
                   {"barrier": b}, f"barrier {b:.3f}")


def _ablation(method: str) -> Callable[[Claim, Results], Outcome]:
    """An ablation's numbers; with FT in the results also ``undone``: the share of CBFT's drop in rand-img
    from FT's that removing the term gives back (0: the term changes nothing, 1: back at FT)."""
    def measure(c: Claim, r: Results) -> Outcome:
        a, cb = r["finetune"][method], r["finetune"]["cbft"]
        chance = float(r["chance"])
        numbers = {"rand_img": _mean(a["rand_img"]), "cbft_rand_img": _mean(cb["rand_img"]),
                   "clean": _mean(a["clean"]), "cue": _mean(a["cue"])}
        if "ft" in r["finetune"]:
            numbers["ft_rand_img"] = ft = _mean(r["finetune"]["ft"]["rand_img"])
            drop = ft - numbers["cbft_rand_img"]
            numbers["undone"] = (numbers["rand_img"] - numbers["cbft_rand_img"]) / drop if drop > 0 else float("nan")
        return Outcome(c, None, f"rand-img {fmt_pct(a['rand_img'])} (CBFT {fmt_pct(cb['rand_img'])}), "
                                f"clean {fmt_pct(a['clean'])}, cue {fmt_pct(a['cue'])}, "
                                f"barrier to θc {fmt_loss(a['barrier_to_cue'])}", numbers,
                       f"rand-img {numbers['rand_img'] / chance:.2f}× chance against CBFT's "
                       f"{numbers['cbft_rand_img'] / chance:.2f}×")
    return measure


def _scratch_separated(c: Claim, r: Results) -> Outcome:
    b = r["lmc"]["scratch_barrier"]
    holds = _mean(b) > c.thresholds["barrier_min"]
    return Outcome(c, holds, f"scratch pair {fmt_loss(b)}", {"scratch": _mean(b)},
                   f"barrier {_mean(b):.3f} against a floor of {c.thresholds['barrier_min']:g}")


def _children_connected(c: Claim, r: Results) -> Outcome:
    child, scratch = _mean(r["lmc"]["child_barrier"]), _mean(r["lmc"]["scratch_barrier"])
    holds = child < c.thresholds["x_scratch"] * scratch
    return Outcome(c, holds, f"children {fmt_loss(r['lmc']['child_barrier'])}, scratch pair "
                             f"{fmt_loss(r['lmc']['scratch_barrier'])}",
                   {"child": child, "scratch": scratch},
                   f"the children's barrier is {child / scratch:.2f}× the scratch pair's" if scratch > 0 else
                   "the scratch pair has no barrier to compare with")


def _curve_connects(c: Claim, r: Results) -> Outcome:
    curve, line = _mean(r["lmc"]["curve_barrier"]), _mean(r["lmc"]["line_barrier"])
    holds = curve < c.thresholds["x_line"] * line
    return Outcome(c, holds, f"trained curve {fmt_loss(r['lmc']['curve_barrier'])} vs straight line "
                             f"{fmt_loss(r['lmc']['line_barrier'])}", {"curve": curve, "line": line},
                   f"the curve's barrier is {curve / line:.2f}× the line's" if line > 0 else
                   "the straight line has no barrier to lower")


_PAPER = "Lubana et al. (2023)"
CLAIMS: dict[str, Claim] = {c.id: c for c in (
    Claim("scratch-separated", "Models trained from scratch are separated by a loss barrier",
          "Frankle et al. (2020); Entezari et al. (2022)", "scratch pair's clean-view barrier > {barrier_min:g}",
          {"barrier_min": 0.5}, ("lmc",), _scratch_separated),
    Claim("children-connected", "Children branched from a common starting point (a parent, or a shared initialisation) are far closer to linear connectivity than a scratch pair",
          "Frankle et al. (2020): instability analysis",
          "children's clean-view barrier < {x_scratch:g}× the scratch pair's",
          {"x_scratch": 0.2}, ("lmc",), _children_connected),
    Claim("curve-connects-scratch", "A trained quadratic curve lowers the scratch pair's barrier",
          "Garipov et al. (2018)", "barrier along the trained curve < {x_line:g}× along the straight line",
          {"x_line": 0.5}, ("lmc",), _curve_connects),
    Claim("cue-reliance", "The cue-trained model relies on the cue; the cue-free model does not",
          f"{_PAPER}: the synthetic spurious-cue setting",
          "cue model rand-img ≥ {cue_x_chance:g}× chance; cue-free model ≤ {free_x_chance:g}× chance",
          {"cue_x_chance": 5.0, "free_x_chance": 1.5}, ("models",), _cue_reliance),
    Claim("mechanism-barrier", "The cue-reliant and the cue-free model are not linearly connected (the barrier certifies their different mechanisms)",
          f"{_PAPER}: lack of linear connectivity implies dissimilar mechanisms",
          "cue-nocue ≥ {barrier_min:g} and ≥ {x_control:g}× the larger same-mechanism control, "
          "and above both controls on every seed",
          {"barrier_min": 0.1, "x_control": 3.0}, ("paths",), _mechanism_barrier),
    Claim("cue100-barrier", "Barrier from a model trained with the cue on every image",
          "this book (a variant of the paper's cue-proportion study)", "reported, no criterion", {},
          ("models", "paths"), _cue100, reported=True),
    Claim("quadratic-connects", "A quadratic path connects the cue and cue-free models",
          f"{_PAPER}: quadratic mode connectivity", "quadratic barrier ≤ {x_linear:g}× the linear one",
          {"x_linear": 0.25}, ("quadratic",), _quadratic_connects),
    Claim("abrupt-switch", "Along the quadratic path the mechanism switches abruptly",
          f"{_PAPER}: mechanisms along quadratic paths", "width of the 10 %→90 % change of rand-img accuracy ≤ {width_max:g} of the path",
          {"width_max": 0.2}, ("quadratic",), _abrupt_switch),
    Claim("naive-keeps-cue", "Naive fine-tuning (FT, LP-FT) keeps the cue mechanism",
          f"{_PAPER}: naive fine-tuning fails to change the mechanism", "FT and LP-FT rand-img ≥ {x_chance:g}× chance",
          {"x_chance": 3.0}, ("finetune",), _naive_keeps_cue),
    Claim("naive-connected", "Naive fine-tuning stays linearly connected to the cue model",
          f"{_PAPER}: naive fine-tuning fails to change the mechanism", "FT and LP-FT barrier to θc ≤ the cue-cue control + {slack:g}",
          {"slack": 0.05}, ("finetune", "paths"), _naive_connected),
    Claim("llrt-convex", "LLRT's path back to the cue model has no barrier, by construction",
          "this book (convexity of the cross-entropy in the logits)", "largest barrier ≤ {tolerance:g}",
          {"tolerance": 1e-4}, ("finetune",), _llrt_convex),  # float32 rounding of the interpolated head
    Claim("cbft-removes-cue", "CBFT removes the cue mechanism",
          f"{_PAPER}: connectivity-based fine-tuning",
          "rand-img within [{low_x_chance:g}×, {high_x_chance:g}×] chance",
          {"low_x_chance": 0.5, "high_x_chance": 1.5}, ("finetune",), _cbft_removes_cue),
    Claim("cbft-invariant", "CBFT makes the model invariant to the cue (the cue neither helps nor hurts)",
          f"{_PAPER}: connectivity-based fine-tuning", "cue-view and rand-cue accuracy each within {points_pct:g} points of clean",
          {"points": 0.05, "points_pct": 5.0}, ("finetune",), _cbft_invariant),
    Claim("cbft-accuracy", "CBFT costs little clean accuracy", f"{_PAPER}: connectivity-based fine-tuning",
          "CBFT clean ≥ FT clean − {points_pct:g} points", {"points": 0.05, "points_pct": 5.0},
          ("finetune",), _cbft_accuracy),
    Claim("cbft-leaves-basin", "CBFT leaves the cue model's basin", f"{_PAPER}: connectivity-based fine-tuning",
          "barrier to θc ≥ {barrier_min:g}", {"barrier_min": 0.1}, ("finetune",), _cbft_basin),
    Claim("ablation-no-barrier", "CBFT without the barrier term", "this book (ablation)",
          "reported, no criterion", {}, ("finetune",), _ablation("cbft-no-barrier"), reported=True),
    Claim("ablation-no-invariance", "CBFT without the invariance term", "this book (ablation)",
          "reported, no criterion", {}, ("finetune",), _ablation("cbft-no-invariance"), reported=True),
)}


def claim(claim_id: str) -> Claim:
    """The registered claim ``claim_id`` (ConfigError naming the known ids otherwise)."""
    return CLAIMS[check_choice("claim", claim_id, list(CLAIMS))]


def evaluate(claim_id: str, results: Results) -> Outcome:
    """Claim ``claim_id`` checked on ``results`` (which must hold the parts the claim needs).

    When ``results["preset"]`` names a preset of :data:`UNCHECKED_PRESETS`, the
    numbers are measured but no verdict is given (``"not checked"``).
    """
    c = claim(claim_id)
    missing = [part for part in (*c.needs, "chance") if part not in results]
    if missing:
        raise ConfigError(f"results: claim {claim_id!r} needs {missing}, which the results do not hold")
    try:
        outcome = c.measure(c, results)
    except KeyError as exc:
        raise ConfigError(f"results: claim {claim_id!r} needs entry {exc}, which the results do not hold") from None
    preset = results.get("preset")
    if preset in UNCHECKED_PRESETS and not c.reported:
        return dataclasses.replace(outcome, holds=None,
                                   detail=f"the {preset} preset trains for seconds")
    return outcome


def evaluate_all(results: Results, ids: Sequence[str] | None = None) -> list[Outcome]:
    """Every claim in ``ids`` (default: every registered claim whose parts ``results`` holds), in order."""
    if ids is None:
        ids = [i for i, c in CLAIMS.items() if all(p in results for p in c.needs)]
    return [evaluate(i, results) for i in ids]


def check(outcomes: Iterable[Outcome], cfg: Preset) -> str:
    """Assert that every outcome holds; at a preset of :data:`UNCHECKED_PRESETS` check nothing.

    Returns the line a chapter prints. Raises AssertionError naming the first
    claim that does not hold, with its numbers and criterion; a reported
    measurement (no criterion) cannot be asserted (ConfigError).
    """
    outcomes = list(outcomes)
    ids = ", ".join(o.claim.id for o in outcomes)
    if cfg.name in UNCHECKED_PRESETS:
        return f"preset {cfg.name!r} trains for seconds: the claims ({ids}) are not checked at this scale"
    for o in outcomes:
        if o.holds is None:
            raise ConfigError(f"claim {o.claim.id!r} is a reported measurement: it has no criterion to assert")
        if not o.holds:
            raise AssertionError(f"{o.claim.id}: {o.measured} ({o.claim.criterion_text()})")
    return f"asserted claims hold: {ids}"


def rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Table rows: claim, source, measured, criterion, verdict."""
    return [{"claim": o.claim.statement, "paper": o.claim.source, "measured": o.measured,
             "criterion": o.claim.criterion_text(), "verdict": o.verdict} for o in outcomes]
