"""Chapter 3 (mechanisms and linear connectivity): its tables and the sentences its prose pastes.

Every sentence is decided by the numbers it is given: which child fits which
view better, which view separates the mechanisms more, whether the settled
parent's children make the chapter's logical point. :func:`endpoint_check`
measures the path's end points against the children's own BatchNorm statistics.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ...kernels import connectivity, paths, train
from ...study import claims, graph, zoo
from ...study.presets import Preset
from ...study.replication import fmt_loss, fmt_pct
from ..record import glue_mean_std
from .prose import children_of, compare, glue_md, glue_numbers, mean, pct, plural, times, verdict

__all__ = ["VIEW_COLUMNS", "PAIR_NAMES", "glue_setup", "view_rows", "glue_views", "barrier_rows", "glue_barriers",
           "glue_settled", "glue_quadratic", "glue_cue100", "endpoint_check", "endpoint_rows", "glue_endpoints",
           "glue_checks"]

VIEW_COLUMNS: dict[str, str] = {"clean": "clean", "cue": "cue", "rand-cue": "rand_cue", "rand-img": "rand_img"}
PAIR_NAMES: dict[str, str] = {"cue-nocue": "cue–no-cue", "cue100-nocue": "cue(p=1)–no-cue",
                              "nocue-nocue": "no-cue–no-cue", "cue-cue": "cue–cue"}
_SAME = ("nocue-nocue", "cue-cue")  # the same-mechanism controls
_EVEN = 0.0005          # barriers closer than this print alike (3 decimals): no difference to state
_SAME_ACCURACY = 0.05   # accuracies within 5 points: "about equally well"
_CLAIM_WORDS: dict[str, str] = {  # what each claim says about this chapter's children, in the chapter's words
    "cue-reliance": "the cue child relies on the box and the cue-free child does not",
    "mechanism-barrier": "the cue and cue-free children are separated by a barrier well above the same-mechanism "
                         "controls",
    "quadratic-connects": "a quadratic path removes most of the straight line's barrier between them",
    "abrupt-switch": "the mechanism switches abruptly along the quadratic path",
    "cue100-barrier": "the barrier from the child trained with the box on every image",
}


def glue_setup(cfg: Preset) -> None:
    """The settings the prose quotes."""
    width_max = claims.claim("abrupt-switch").thresholds["width_max"]
    grid = np.linspace(0.0, 1.0, cfg.switch_points)
    ramp = connectivity.transition_width(grid, grid)  # a straight ramp from t = 0 to t = 1
    glue_numbers(ch03_proportion=cfg.proportion, ch03_bn_images=cfg.bn_images, ch03_switch_points=cfg.switch_points,
                 ch03_chance=1 / cfg.num_classes, ch03_width_max=width_max, ch03_ramp_width=ramp,
                 ch03_step_width=ramp / (cfg.switch_points - 1))
    glue_md("ch03_cue_share", pct(float(zoo.train_set(cfg, "box", cfg.proportion).has_cue.double().mean())))
    glue_md("ch03_children_kind", children_of(cfg.parent_epochs))
    glue_md("ch03_child_epochs", plural(cfg.child_epochs, "epoch"))
    glue_md("ch03_midpoint_epochs", plural(cfg.midpoint_epochs, "epoch"))


def view_rows(models: Mapping[str, Mapping[str, Sequence[float]]], kept: Mapping[str, Sequence[Mapping[str, float]]],
              names: Mapping[str, str]) -> list[dict[str, str]]:
    """Per child: accuracy on each view and the share of cue-view predictions kept when the box is removed or
    moved, as mean ± std over seeds."""
    rows = []
    for role, name in names.items():
        row = {"child": name, **{view: fmt_pct(models[role][key]) for view, key in VIEW_COLUMNS.items()}}
        row["kept: box removed"] = fmt_pct([k["clean"] for k in kept[role]])
        row["kept: box moved"] = fmt_pct([k["rand-cue"] for k in kept[role]])
        rows.append(row)
    return rows


def glue_views(models: Mapping[str, Mapping[str, Sequence[float]]], kept: Mapping[str, Sequence[Mapping[str, float]]],
               reliance: claims.Outcome, chance: float) -> None:
    """The invariances and rand-img accuracies of the children, and whether they make the children dissimilar."""
    moved = {role: glue_mean_std(f"ch03_{role}_kept_moved", [k["rand-cue"] for k in kept[role]])[0] for role in kept}
    rand = {role: glue_mean_std(f"ch03_{role}_rand_img", models[role]["rand_img"])[0] for role in ("cue", "nocue")}
    glue_md("ch03_invariance_text",
            f"Moving the box leaves the prediction of the cue-free child unchanged on {pct(moved['nocue'])} of the "
            f"test images, that of the cue child on {pct(moved['cue'])} and that of the child trained with the box "
            f"on every image on {pct(moved['cue100'])}. On rand-img, where only the box names the class, the cue "
            f"child is right on {pct(rand['cue'])} of the images ({times(rand['cue'], chance)} chance) and the "
            f"cue-free child on {pct(rand['nocue'])} ({times(rand['nocue'], chance)} chance).")
    criterion = reliance.claim.criterion_text()
    if reliance.holds:
        text = (f"The cue child's predictions follow the box and the cue-free child's do not: by the paper's "
                f"definition the two are **mechanistically dissimilar** (the claims registry asks: {criterion}).")
    elif reliance.holds is None:
        text = (f"At this preset the registry does not check that the two children differ ({reliance.detail}): "
                f"the numbers show the method, not the result.")
    else:
        text = (f"By the registry's criterion ({criterion}) the views do not show that the two children use "
                f"different mechanisms at this preset: the barriers below are measured between children that are "
                f"not shown to differ.")
    glue_md("ch03_dissimilar_text", text)


def barrier_rows(barriers: Mapping[str, Mapping[str, Sequence[float]]]) -> list[dict[str, str]]:
    """Per pair: whether its children share a mechanism, and its barrier on each view (mean ± std over seeds)."""
    pairs = next(iter(barriers.values()))
    return [{"pair": PAIR_NAMES.get(pair, pair), "mechanisms": "same" if pair in _SAME else "different",
             **{f"barrier, {view} view": fmt_loss(values[pair]) for view, values in barriers.items()}}
            for pair in pairs]


def _against_controls(barriers: Mapping[str, Sequence[float]]) -> tuple[float, str]:
    """How far the cue–no-cue barrier lies above the larger same-mechanism control, and that in words."""
    diff, control = mean(barriers["cue-nocue"]), max(mean(barriers[p]) for p in _SAME)
    margin, numbers = diff - control, f"({diff:.3f} against {control:.3f})"
    if margin > _EVEN:
        return margin, f"exceeds the larger same-mechanism control by {margin:.3f} {numbers}"
    if margin < -_EVEN:
        return margin, f"stays {-margin:.3f} below the larger same-mechanism control {numbers}"
    return margin, f"equals the larger same-mechanism control {numbers}"


def _cue_view_fit(acc: Mapping[str, Mapping[str, float]], chance: float) -> str:
    """Whether both children fit the cue view, from their accuracies on it."""
    cue, free = acc["cue"]["cue"], acc["nocue"]["cue"]
    text = (f"On the cue view the cue child is right on {pct(cue)} of the test images and the cue-free child on "
            f"{pct(free)}; on clean images, on {pct(acc['cue']['clean'])} and {pct(acc['nocue']['clean'])}.")
    if abs(cue - free) > _SAME_ACCURACY:
        better = "cue child" if cue > free else "cue-free child"
        return (f"{text} So the cue view is not data both children fit equally: the {better} fits it better. The "
                f"Entezari barrier allows for that: it is measured from the chord joining the two endpoints' "
                f"losses, so a weaker endpoint raises the chord, not the barrier.")
    if min(cue, free) < 2 * chance:
        return f"{text} At this preset neither child fits the cue view well (chance is {pct(chance)})."
    return (f"{text} Both children fit the cue view about equally well, each with its own mechanism, so a "
            f"barrier there is not explained by an endpoint that fails.")


def glue_barriers(barriers: Mapping[str, Mapping[str, Sequence[float]]],
                  models: Mapping[str, Mapping[str, Sequence[float]]], mechanism: claims.Outcome,
                  chance: float) -> None:
    """The barriers against the controls, and which view separates the mechanisms, from the numbers."""
    for view, values in barriers.items():
        prefix = "ch03_barrier" if view == "cue" else f"ch03_{view}_barrier"
        for pair, vals in values.items():
            glue_mean_std(f"{prefix}_{pair.replace('-', '_')}", vals)
    glue_md("ch03_claim_mechanism_barrier", verdict(mechanism))
    diff, control = mean(barriers["cue"]["cue-nocue"]), max(mean(barriers["cue"][p]) for p in _SAME)
    glue_md("ch03_controls_text",
            f"On the cue view the cue–no-cue barrier, {diff:.3f}, is {times(diff, control)} the larger "
            f"same-mechanism control ({control:.3f})." if control > _EVEN else
            f"On the cue view the same-mechanism controls' barriers are at most {control:.3f}; the cue–no-cue "
            f"pair's is {diff:.3f}.")
    acc = {role: {view: mean(models[role][key]) for view, key in VIEW_COLUMNS.items()} for role in ("cue", "nocue")}
    margins = {view: _against_controls(values) for view, values in barriers.items()}
    best = max(margins, key=lambda v: margins[v][0])
    if margins[best][0] <= _EVEN:
        conclusion = "neither view separates the two mechanisms from the same-mechanism controls at this preset."
    else:
        conclusion = f"the {best} view separates the two mechanisms by the wider margin."
    (first, (_, clause1)), (second, (_, clause2)) = margins.items()
    glue_md("ch03_view_text", f"{_cue_view_fit(acc, chance)} On the {first} view the cue–no-cue barrier {clause1}; "
                              f"on the {second} view it {clause2}: {conclusion}")


def glue_settled(parent_epochs: int, acc: Mapping[str, Mapping[str, float]], barrier: float, chance: float) -> None:
    """Whether the children of the longer-trained parent are an example of 'different mechanisms, no barrier'."""
    floor = claims.claim("mechanism-barrier").thresholds["barrier_min"]
    th = claims.claim("cue-reliance").thresholds
    cue, free = acc["cue p=1"]["rand-img"], acc["no cue"]["rand-img"]
    glue_numbers(ch03_settled_barrier=barrier, ch03_barrier_floor=floor)
    glue_md("ch03_settled_parent", f"a parent trained {plural(parent_epochs, 'epoch')} on clean images")
    differ = cue >= th["cue_x_chance"] * chance and free <= th["free_x_chance"] * chance
    reads = f"one reads the box (rand-img {pct(cue)}) and the other does not (rand-img {pct(free)})"
    if barrier < floor and differ:
        text = (f"the two children are linearly connected (barrier {barrier:.3f}, below the {floor:g} the registry "
                f"asks of a barrier) although {reads}: different mechanisms, no barrier")
    elif barrier < floor:
        text = (f"the two children are linearly connected (barrier {barrier:.3f}), but the views do not show that "
                f"their mechanisms differ (rand-img {pct(cue)} and {pct(free)}): this run is not an example of the "
                f"point")
    else:
        text = (f"at this setting the longer-trained parent does not connect them (barrier {barrier:.3f}, above the "
                f"{floor:g} the registry asks of a barrier): the logical point stands, but this run is not an "
                f"example of it")
    glue_md("ch03_settled_verdict", text)


def glue_quadratic(linear: paths.PathResult, quadratic: paths.PathResult, outcomes: Mapping[str, claims.Outcome],
                   study: Mapping[str, Any]) -> None:
    """The quadratic path of the first seed in words, and the claims over seeds."""
    q = study["quadratic"]
    glue_mean_std("ch03_quad_barrier", q["barrier"])
    glue_mean_std("ch03_linear_barrier", q["linear_barrier"])
    glue_mean_std("ch03_switch_width", q["switch_width"])
    loss, ts, chance = quadratic.loss["cue"], quadratic.ts, study["chance"]
    peak = int(np.argmax(loss))
    where = {0: "is highest at the cue child", len(loss) - 1: "is highest at the cue-free child"}.get(
        peak, f"peaks at {loss[peak]:.3f} (t = {ts[peak]:.2f})")
    rand = quadratic.acc["rand-img"]
    glue_md("ch03_quad_text",
            f"On the first seed the cue-view loss along the quadratic path goes from {loss[0]:.3f} at the cue child "
            f"to {loss[-1]:.3f} at the cue-free child and {where}; its "
            f"barrier, the largest rise above the chord, is {connectivity.barrier(loss, ts)[0]:.3f}, against "
            f"{connectivity.barrier(linear.loss['cue'], linear.ts)[0]:.3f} on the straight line. Rand-img "
            f"accuracy moves from {pct(rand[0])} to {pct(rand[-1])} (chance {pct(chance)}); 10 % to 90 % of that "
            f"change happens within {connectivity.transition_width(rand, ts):.2f} of the path.")
    for claim_id in ("quadratic-connects", "abrupt-switch"):
        glue_md(f"ch03_claim_{claim_id.replace('-', '_')}", verdict(outcomes[claim_id]))
    connects = outcomes["quadratic-connects"].numbers
    low = connects["linear"] > 0 and connects["ratio"] <= claims.claim("quadratic-connects").thresholds["x_linear"]
    moves = abs(mean(study["models"]["cue"]["rand_img"]) - mean(study["models"]["nocue"]["rand_img"])) > chance
    glue_md("ch03_quad_meaning", "Low loss along the whole path, then, does not mean one mechanism along it."
            if low and moves else "At this preset the path does not show both a low barrier and a change of "
                                  "mechanism, so it says nothing yet about mechanisms along low-loss curves.")


def glue_cue100(study: Mapping[str, Any]) -> None:
    """The child trained with the cue on every image against the cue-free child and the cue child."""
    models, chance = study["models"], study["chance"]
    c100 = {key: glue_mean_std(f"ch03_cue100_{key}", models["cue100"][key])[0] for key in ("clean", "rand_img")}
    free_clean = mean(models["nocue"]["clean"])
    full, part = (mean(study["paths"][pair]["barrier"]) for pair in ("cue100-nocue", "cue-nocue"))
    glue_md("ch03_cue100_text",
            f"On rand-img the child trained with the box on every image is right on {pct(c100['rand_img'])} of the "
            f"images ({times(c100['rand_img'], chance)} chance); on clean images on {pct(c100['clean'])}, against "
            f"{pct(free_clean)} for the cue-free child. Its cue-view barrier to the cue-free child is {full:.3f}, "
            f"{compare(full, part, 0.0005)} the {part:.3f} of the child trained with the box on part of its data.")


def endpoint_check(cfg: Preset, seed: int, path: paths.PathResult,
                   views: Sequence[str] = ("cue", "clean")) -> list[dict[str, Any]]:
    """Both ends of the cue–no-cue path: each child scored on ``views`` with its stored (training-time)
    BatchNorm statistics, then with statistics re-estimated on clean training images as along the path,
    next to the path's own numbers at t = 0 and t = 1. One dict per (child, view), losses and accuracies."""
    data = zoo.path_views(cfg)
    found = []
    for name, proportion, end in (("cue child", None, 0), ("cue-free child", 0.0, -1)):
        model = graph.result(cfg, "child", seed=seed, proportion=proportion)
        stored = {v: train.evaluate(model, data[v], cfg.eval_batch_size) for v in views}
        paths.reestimate_bn(model, zoo.bn_data(cfg), cfg.bn_images, cfg.bn_average, cfg.eval_batch_size)
        for v in views:
            found.append({"child": name, "view": v, "stored": stored[v],
                          "re-estimated": train.evaluate(model, data[v], cfg.eval_batch_size),
                          "path": {"loss": float(path.loss[v][end]), "acc": float(path.acc[v][end])}})
    return found


def endpoint_rows(found: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """:func:`endpoint_check`'s numbers as table rows."""
    return [{"child": f["child"], "view": f["view"],
             "stored statistics": f"loss {f['stored']['loss']:.3f}, acc {pct(f['stored']['acc'])}",
             "re-estimated": f"loss {f['re-estimated']['loss']:.3f}, acc {pct(f['re-estimated']['acc'])}",
             "path end": f"loss {f['path']['loss']:.3f}, acc {pct(f['path']['acc'])}"} for f in found]


def glue_endpoints(found: Sequence[Mapping[str, Any]]) -> None:
    """How far the path's end points are from the children with their own statistics, in a sentence."""
    agree = max(abs(f["path"][m] - f["re-estimated"][m]) for f in found for m in ("loss", "acc"))
    agreement = "exactly" if agree == 0 else f"to within {agree:.1e}"
    loss_gap = {(f["child"], f["view"]): abs(f["re-estimated"]["loss"] - f["stored"]["loss"]) for f in found}
    acc_gap = max(abs(f["re-estimated"]["acc"] - f["stored"]["acc"]) for f in found)
    worst = max(loss_gap, key=loss_gap.get)
    glue_numbers(ch03_end_loss_gap=loss_gap[worst], ch03_end_acc_gap=acc_gap)
    glue_md("ch03_endpoint_text",
            f"The path's numbers at $t = 0$ and $t = 1$ are those of the children with re-estimated statistics "
            f"(they agree {agreement}). Against the same children scored with their own training-time "
            f"statistics, the loss differs by at most {loss_gap[worst]:.3f} (the {worst[0]} on the {worst[1]} "
            f"view) and the accuracy by at most {100 * acc_gap:.1f} points.")


def glue_checks(asserted: Sequence[str], reported: Sequence[str]) -> None:
    """Which claims the chapter asserts and which it only reports, in the chapter's words."""
    def listed(ids: Sequence[str]) -> str:
        return "; ".join(f"*{_CLAIM_WORDS[i]}*" for i in ids)

    glue_md("ch03_checks_text", f"The chapter asserts, on the means over the preset's seeds: {listed(asserted)}. "
                                f"It reports without asserting: {listed(reported)}.")
