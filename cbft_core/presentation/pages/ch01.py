"""Chapter 1 (mode connectivity and loss barriers): the sentences its prose pastes, generated from its numbers."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ...kernels import connectivity
from ...study import claims
from ...study.presets import Preset
from ..record import glue_mean_std
from .prose import children_of, compare, glue_md, glue_numbers, mean, plural, times, verdict

__all__ = ["glue_setup", "glue_forms", "glue_alignment", "glue_bn", "glue_curve", "glue_claims"]


def glue_setup(cfg: Preset) -> None:
    """The settings the prose quotes, and how the two pairs of networks are trained, in words."""
    glue_numbers(ch01_n_train=cfg.n_train, ch01_path_points=cfg.path_points, ch01_bn_images=cfg.bn_images)
    glue_md("ch01_children_kind", children_of(cfg.parent_epochs))
    branches = "on the same images in different orders (different *branches*)"
    if cfg.parent_epochs == 0:
        text = (f"Two copies of one random initialisation are trained for {plural(cfg.child_epochs, 'epoch')} "
                f"each, {branches}.")
    else:
        text = (f"A parent network is trained from a random initialisation for "
                f"{plural(cfg.parent_epochs, 'epoch')} on clean images; two copies of it then continue for "
                f"{plural(cfg.child_epochs, 'epoch')} each, {branches}.")
    glue_md("ch01_children_text", text)
    glue_md("ch01_scratch_text", f"Two networks trained for {plural(cfg.scratch_epochs, 'epoch')} from two "
                                 f"different random initialisations, each with its own data order.")
    glue_md("ch01_midpoint_epochs", plural(cfg.midpoint_epochs, "epoch"))


def glue_forms(child_barrier: float, loss: Sequence[float], ts: Sequence[float]) -> None:
    """The barrier of the children and both forms of the scratch pair's (first seed), and how they compare."""
    loss = np.asarray(loss, dtype=float)
    ent = connectivity.barrier(loss, ts, "entezari")[0]
    fra = connectivity.barrier(loss, ts, "frankle")[0]
    glue_numbers(ch01_child_entezari=child_barrier, ch01_scratch_entezari=ent, ch01_scratch_frankle=fra)
    versus = (f"The children's barrier is {times(child_barrier, ent)} the scratch pair's." if ent > 0 else
              "The scratch pair has no barrier to compare the children's with.")
    forms = (f"The two forms differ by {fra - ent:+.3f} here: the Frankle form measures from the endpoints' "
             f"mean loss ({(loss[0] + loss[-1]) / 2:.3f}), the Entezari form from the chord, which runs from "
             f"{loss[0]:.3f} at $t = 0$ to {loss[-1]:.3f} at $t = 1$.")
    glue_md("ch01_forms_text", f"{versus} {forms}")


def glue_alignment(barriers: Mapping[str, Sequence[float]]) -> None:
    """Mean barriers over seeds of the children, the scratch pair and the aligned scratch pair, compared."""
    child, before, after = (glue_mean_std(f"ch01_{key}_barrier", barriers[name])[0]
                            for key, name in (("child", "children"), ("scratch", "scratch"),
                                              ("aligned", "scratch, aligned")))
    verb = compare(after, before, words=("raises", "lowers", "does not change"))
    text = f"Aligning the units {verb} the scratch pair's barrier: {before:.3f} before, {after:.3f} after"
    rest = (f"What is left is {times(after, child)} the children's barrier ({child:.3f})." if child > 0 else
            f"The children's barrier is {child:.3f}.")
    glue_md("ch01_alignment_text", f"{text} (means over {plural(len(barriers['scratch']), 'seed')}). {rest}")


def glue_bn(bn_barriers: Mapping[tuple[str, str], float]) -> None:
    """Barriers with BatchNorm statistics interpolated against re-estimated, per pair, compared."""
    glue_numbers(**{f"ch01_{pair.replace('-', '_')}_bn_{bn}": v for (pair, bn), v in bn_barriers.items()})
    parts = []
    for pair, name in (("nocue-nocue", "the children's"), ("scratch", "the scratch pair's")):
        wrong, right = bn_barriers[(pair, "interpolate")], bn_barriers[(pair, "reestimate")]
        parts.append(f"{name} barrier reads {wrong:.3f}, {compare(wrong, right, 0.0005)} the {right:.3f} "
                     f"measured with re-estimated statistics")
    glue_md("ch01_bn_text", f"With interpolated statistics {parts[0]}; {parts[1]}.")


def glue_curve(line: float, curve: float) -> None:
    """The scratch pair's barrier on the straight line and on the trained curve, and what that means."""
    glue_numbers(ch01_line_barrier=line, ch01_curve_barrier=curve)
    factor = claims.claim("curve-connects-scratch").thresholds["x_line"]
    if line < 0.0005:
        meaning = "The straight line has no barrier for the curve to remove."
    elif curve < factor * line:
        meaning = ("The curve removes most of the barrier: along it the two scratch models are joined by "
                   "networks whose loss stays close to the chord between theirs, which the straight line "
                   "could not do.")
    else:
        meaning = (f"At this preset the curve does not remove most of the barrier (the claims registry asks "
                   f"for less than {factor:g}× the straight line's).")
    glue_md("ch01_curve_text", f"The barrier is {curve:.3f} along the trained curve against {line:.3f} along the "
                               f"straight line. {meaning}")


def glue_claims(outcomes: Sequence[claims.Outcome], barriers: Mapping[str, Sequence[float]],
                parent_epochs: int) -> None:
    """One sentence per checked claim, and the children's barrier over seeds against the scratch pair's."""
    for outcome in outcomes:
        glue_md(f"ch01_claim_{outcome.claim.id.replace('-', '_')}", verdict(outcome))
    child, scratch = mean(barriers["children"]), mean(barriers["scratch"])
    kind = children_of(parent_epochs)
    ratio = f" ({times(child, scratch)} the scratch pair's)" if scratch > 0 else ""
    glue_md("ch01_conclusion", f"Over {plural(len(barriers['children']), 'seed')}, the barrier between "
                               f"{kind} is {child:.3f}{ratio}, and between scratch models {scratch:.3f}.")
