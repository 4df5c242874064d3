"""Chapter 5 (CBFT): the sentences its prose glues, from the fine-tuning results and the claims."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ...study import claims, presets
from ...study.claims import Outcome
from ...study.presets import Preset
from ...study.replication import NAMES
from .prose import listing, mean, pct, points, x_chance

__all__ = ["ABLATION_TERMS", "settings_line", "history", "views", "ablations", "summary", "caveats"]

ABLATION_TERMS: dict[str, str] = {"cbft-no-barrier": "barrier", "cbft-no-invariance": "invariance"}
_LITTLE, _MOST = 0.25, 0.75  # shares of CBFT's drop in rand-img that an ablation gives back: "little", "most"


def settings_line(cfg: Preset) -> str:
    """What the chapter runs, in one printed line."""
    return (f"preset {cfg.name}: {cfg.model}, cue proportion {cfg.proportion}, seeds {list(cfg.seeds)}; "
            f"{cfg.n_clean} clean images (D_nc), {cfg.n_cue} cue images (D_c); CBFT {cfg.cbft_epochs} epochs "
            f"({cfg.cbft_warmup_epochs} warm-up), lr {cfg.cbft_lr}, margin {cfg.cbft_margin}, lambda "
            f"{cfg.cbft_lambda}, batch {cfg.ft_batch_size}")


def history(record: Mapping[str, Sequence[float]], margin: float) -> str:
    """What the two steps did over training: the barrier cross-entropy against the margin, the clean loss."""
    first, last = float(record["barrier_ce"][0]), float(record["barrier_ce"][-1])
    if abs(last - margin) <= 0.1 * margin:
        did = "the barrier step brought it to the margin"
    elif last > margin:
        did = ("it stays above the margin, where the absolute value pulls it down" if first > margin else
               "the barrier step pushed it past the margin")
    elif last > first:
        did = "the barrier step lifted it towards the margin without reaching it"
    else:
        did = "the barrier step did not lift it"
    c0, c1 = float(record["clean_ce"][0]), float(record["clean_ce"][-1])
    return (f"In the first epoch the cue loss at the sampled points of the path averages {first:.2f}, in the last "
            f"{last:.2f}, against a margin of {margin:g}: {did}. The clean cross-entropy "
            f"{'falls' if c1 < c0 else 'rises'} from {c0:.2f} to {c1:.2f}.")


def views(block: Mapping[str, Mapping[str, Sequence[float]]], chance: float) -> str:
    """Cue reliance of FT and CBFT, and whether the box still moves CBFT's predictions."""
    ft, cb = block["ft"], block["cbft"]
    th = claims.claim("cbft-invariant").thresholds["points"]
    low = claims.claim("cbft-removes-cue").thresholds["low_x_chance"]
    clean, cue, rcue = mean(cb["clean"]), mean(cb["cue"]), mean(cb["rand_cue"])
    if max(abs(cue - clean), abs(rcue - clean)) <= th:
        effect = f"Both lie within {100 * th:g} points of clean: the box neither helps nor hurts."
    elif cue < clean - th:
        effect = "The cue view falls below clean: the model learnt to act against the box, a different failure."
    else:
        effect = "The box still moves the predictions."
    against = (" Rand-img below chance says the same: the box now counts against its own class."
               if mean(cb["rand_img"]) < low * chance else "")
    return (f"Naive FT leaves {pct(ft['rand_img'])} on rand-img ({x_chance(ft['rand_img'], chance)}); CBFT "
            f"{pct(cb['rand_img'])} ({x_chance(cb['rand_img'], chance)}). For CBFT the cue view scores {pct(cue)} and "
            f"rand-cue {pct(rcue)}, against {pct(clean)} on clean images ({points(cue - clean)} and "
            f"{points(rcue - clean)}). {effect}{against}")


def _share(undone: float) -> str:
    if undone <= -_LITTLE:
        return "lower"
    return "little" if undone <= _LITTLE else "most" if undone >= _MOST else "part"


def ablations(results: Mapping[str, Any]) -> str:
    """What removing each term does to rand-img, and what that says about the terms (from the ablation claims)."""
    found = {m: claims.evaluate(f"ablation-no-{term}", results).numbers for m, term in ABLATION_TERMS.items()}
    if any(np.isnan(n.get("undone", np.nan)) for n in found.values()):
        return "CBFT did not lower rand-img below FT's, so the ablations have nothing to undo."
    said = {"lower": "removing it lowers rand-img further", "little": "removing it changes little",
            "part": "removing it gives back part of the cue", "most": "removing it gives back most of the cue"}
    parts = [f"Without the {ABLATION_TERMS[m]} term rand-img is {pct(n['rand_img'])}, against CBFT's "
             f"{pct(n['cbft_rand_img'])} and FT's {pct(n['ft_rand_img'])}: {said[_share(n['undone'])]} "
             f"({100 * n['undone']:.0f} % of CBFT's drop from FT)." for m, n in found.items()]
    share = {ABLATION_TERMS[m]: _share(n["undone"]) for m, n in found.items()}
    needed = [term for term, s in share.items() if s in ("part", "most")]
    if not needed:
        end = ("Neither term is needed on its own at this scale: without either one, rand-img stays at or below "
               "about CBFT's.")
    elif len(needed) == len(share):
        end = "Each term matters here: removing either one gives back " + (
            "most of the cue." if all(s == "most" for s in share.values()) else "some of the cue.")
    else:
        other = next(t for t in share if t not in needed)
        rest = "changes little" if share[other] == "little" else "even lowers rand-img further"
        end = f"So at this scale the {needed[0]} term does the work; removing the {other} term {rest}."
    return " ".join(parts + [end])


def summary(outcomes: Sequence[Outcome], preset: str) -> str:
    """Which of CBFT's claims hold, as a list of generated sentences."""
    checked = [o for o in outcomes if not o.claim.reported]
    held = sum(o.holds is True for o in checked)
    if all(o.holds is None for o in checked):
        head = f"At the {preset} preset, which trains for seconds, no claim is checked; the measurements:"
    else:
        head = f"At the {preset} preset {held} of CBFT's {len(checked)} claims hold:"
    return head + "\n\n" + "\n".join(f"- {o.sentence()}" if o.holds is not None else
                                       f"- {o.claim.statement}: {o.verdict} — {o.measured}." for o in checked)


def caveats(cfg: Preset, block: Mapping[str, Mapping[str, Sequence[float]]], cue_clean: Sequence[float],
            free_clean: Sequence[float]) -> str:
    """Clean accuracy against the models the fine-tuning starts from and aims at; margin and λ against the paper's."""
    tuned = {m: mean(block[m]["clean"]) for m in ("ft", "cbft")}
    text = ("Clean accuracy after fine-tuning is " + listing([f"{pct(v)} ({NAMES[m]})" for m, v in tuned.items()])
            + f"; θc started at {pct(cue_clean)}, and the cue-free child of the same parent reaches "
            f"{pct(free_clean)}.")
    if max(tuned.values()) < mean(free_clean) - 0.05:
        text += (" Every fine-tuned model stays well below the cue-free child: the small clean set is all any "
                 "method has to learn the images from.")
    paper = presets.get("paper")
    ours, theirs = (cfg.cbft_margin, cfg.cbft_lambda), (paper.cbft_margin, paper.cbft_lambda)
    text += (f" CBFT's margin ({ours[0]:g}) and λ ({ours[1]:g}) are the paper's." if ours == theirs else
             f" CBFT's margin ({ours[0]:g}) and λ ({ours[1]:g}) differ from the paper's ({theirs[0]:g} and "
             f"{theirs[1]:g}).")
    return text
