"""The claims registry: each check against hand-built results on both sides of its thresholds."""
import math

import numpy as np
import pytest

from cbft_core.errors import ConfigError
from cbft_core.kernels import connectivity
from cbft_core.study import claims

CHANCE = 0.1
VIEWS = ("clean", "cue", "rand_cue", "rand_img")


def views(clean, cue, rand_cue, rand_img, n=3):
    return {k: [v] * n for k, v in zip(VIEWS, (clean, cue, rand_cue, rand_img))}


def ft_block(clean, cue, rand_cue, rand_img, barrier, n=3):
    return {**views(clean, cue, rand_cue, rand_img, n), "barrier_to_cue": [barrier] * n,
            "midpoint_loss_to_cue": [barrier] * n}


def results(**changes):
    """A results dict in which every claim holds; ``changes`` overwrite entries by dotted path."""
    r = {
        "chance": CHANCE,
        "models": {"cue": views(0.8, 0.99, 0.4, 0.7), "nocue": views(0.8, 0.8, 0.8, 0.1),
                   "cue100": views(0.1, 1.0, 0.1, 1.0)},
        "paths": {"cue-nocue": {"barrier": [0.40, 0.35, 0.38]}, "nocue-nocue": {"barrier": [0.05, 0.1, 0.08]},
                  "cue-cue": {"barrier": [0.0, 0.01, 0.0]}, "cue100-nocue": {"barrier": [0.2, 0.25, 0.22]}},
        "quadratic": {"barrier": [0.01] * 3, "linear_barrier": [0.38] * 3, "switch_width": [0.1] * 3},
        "finetune": {"ft": ft_block(0.75, 0.95, 0.5, 0.45, 0.0), "lpft": ft_block(0.74, 0.93, 0.5, 0.4, 0.01),
                     "llrt": ft_block(0.74, 0.93, 0.5, 0.4, 0.0),
                     "cbft": ft_block(0.72, 0.70, 0.71, 0.1, 0.6),
                     "cbft-no-barrier": ft_block(0.73, 0.86, 0.68, 0.17, 0.0),
                     "cbft-no-invariance": ft_block(0.72, 0.6, 0.66, 0.08, 0.4)},
        "lmc": {"child_barrier": [0.05, 0.1, 0.08], "scratch_barrier": [1.2, 1.0, 1.1], "curve_barrier": [0.1],
                "line_barrier": [1.2]},
    }
    for path, value in changes.items():
        node = r
        *head, last = path.split("__")
        for key in head:
            node = node[key]
        node[last] = value
    return r


def test_every_claim_holds_or_is_reported_on_the_good_results():
    outcomes = claims.evaluate_all(results())
    assert [o.claim.id for o in outcomes] == list(claims.CLAIMS)
    for o in outcomes:
        assert o.holds is (None if o.claim.reported else True), (o.claim.id, o.measured, o.detail)
        assert o.verdict in o.sentence() and o.claim.statement in o.sentence()


def test_cue_reliance_threshold_is_the_registry_one():
    th = claims.claim("cue-reliance").thresholds
    just_below = th["cue_x_chance"] * CHANCE - 1e-3
    r = results(models__cue=views(0.8, 0.99, 0.4, just_below))
    assert claims.evaluate("cue-reliance", r).holds is False
    r = results(models__cue=views(0.8, 0.99, 0.4, th["cue_x_chance"] * CHANCE + 1e-3))
    assert claims.evaluate("cue-reliance", r).holds is True
    r = results(models__nocue=views(0.8, 0.8, 0.8, th["free_x_chance"] * CHANCE + 1e-3))
    assert claims.evaluate("cue-reliance", r).holds is False


def test_mechanism_barrier_needs_ratio_floor_and_every_seed():
    th = claims.claim("mechanism-barrier").thresholds
    o = claims.evaluate("mechanism-barrier", results())
    assert math.isclose(o.numbers["ratio"], np.mean([0.40, 0.35, 0.38]) / np.mean([0.05, 0.1, 0.08]))
    assert o.numbers["seeds_ordered"] == 3
    # ratio below x_control
    control = [0.377 / th["x_control"] + 0.01] * 3
    assert claims.evaluate("mechanism-barrier", results(**{"paths__nocue-nocue": {"barrier": control}})).holds is False
    # large mean ratio, but one seed below its control
    r = results(**{"paths__cue-nocue": {"barrier": [0.9, 0.9, 0.01]},
                   "paths__nocue-nocue": {"barrier": [0.0, 0.0, 0.02]}})
    o = claims.evaluate("mechanism-barrier", r)
    assert o.numbers["ratio"] > th["x_control"] and o.numbers["seeds_ordered"] == 2 and o.holds is False
    assert "2 of 3 seeds" in o.detail
    # below the absolute floor
    r = results(**{"paths__cue-nocue": {"barrier": [th["barrier_min"] * 0.9] * 3},
                   "paths__nocue-nocue": {"barrier": [0.0] * 3}})
    assert claims.evaluate("mechanism-barrier", r).holds is False


def test_cue100_is_reported_with_a_generated_comparison():
    o = claims.evaluate("cue100-barrier", results())
    assert o.holds is None and "lower than" in o.detail
    o = claims.evaluate("cue100-barrier", results(**{"paths__cue100-nocue": {"barrier": [0.9] * 3}}))
    assert "higher than" in o.detail


def test_switch_width_against_hand_computed_crossings():
    ts = np.linspace(0, 1, 21)
    assert math.isclose(connectivity.transition_width(1 - ts, ts), 0.8)            # a straight ramp
    step = np.where(ts < 0.5, 1.0, 0.0)  # a step between two points: 0.8 of one spacing once interpolated
    assert math.isclose(connectivity.transition_width(step, ts), 0.8 * 0.05)
    # a ramp from t = 0.4 to 0.6: 10 % at 0.42, 90 % at 0.58
    ramp = np.clip((ts - 0.4) / 0.2, 0, 1)
    assert math.isclose(connectivity.transition_width(ramp, ts), 0.16, abs_tol=1e-12)
    assert connectivity.transition_width(np.ones(5), np.linspace(0, 1, 5)) == 0.0
    with pytest.raises(ConfigError, match="length"):
        connectivity.transition_width([1, 0], [0, 0.5, 1])


def test_quadratic_and_switch_claims():
    th = claims.claim("quadratic-connects").thresholds
    r = results(quadratic={"barrier": [th["x_linear"] * 0.38 + 0.01] * 3, "linear_barrier": [0.38] * 3,
                           "switch_width": [0.5] * 3})
    assert claims.evaluate("quadratic-connects", r).holds is False
    o = claims.evaluate("abrupt-switch", r)
    assert o.holds is False and "0.50 of the path" in o.detail


def test_naive_claims_and_llrt_convexity():
    th = claims.claim("naive-keeps-cue").thresholds
    r = results(finetune__lpft=ft_block(0.74, 0.93, 0.5, th["x_chance"] * CHANCE - 0.01, 0.0))
    assert claims.evaluate("naive-keeps-cue", r).holds is False
    slack = claims.claim("naive-connected").thresholds["slack"]
    r = results(finetune__ft=ft_block(0.75, 0.95, 0.5, 0.45, 0.01 / 3 + slack + 0.01))
    assert claims.evaluate("naive-connected", r).holds is False
    r = results(finetune__llrt=ft_block(0.74, 0.93, 0.5, 0.4, 1e-3))
    assert claims.evaluate("llrt-convex", r).holds is False


def test_cbft_claims_each_fail_on_their_own_number():
    cases = {
        "cbft-removes-cue": ft_block(0.72, 0.70, 0.71, 0.04, 0.6),     # below chance: acts against the cue
        "cbft-invariant": ft_block(0.72, 0.59, 0.71, 0.1, 0.6),        # the box hurts
        "cbft-accuracy": ft_block(0.65, 0.65, 0.65, 0.1, 0.6),         # 10 points under FT
        "cbft-leaves-basin": ft_block(0.72, 0.70, 0.71, 0.1, 0.05),
    }
    for claim_id, block in cases.items():
        outcomes = {o.claim.id: o.holds for o in claims.evaluate_all(results(finetune__cbft=block))}
        assert outcomes[claim_id] is False, claim_id
        assert outcomes["cue-reliance"] is True


def test_missing_parts_and_unknown_ids_are_one_clear_error():
    with pytest.raises(ConfigError, match="claim: unknown value 'nope'"):
        claims.evaluate("nope", results())
    partial = {k: v for k, v in results().items() if k != "quadratic"}
    with pytest.raises(ConfigError, match="needs \\['quadratic'\\]"):
        claims.evaluate("abrupt-switch", partial)
    assert "abrupt-switch" not in [o.claim.id for o in claims.evaluate_all(partial)]
    broken = results()
    del broken["finetune"]["lpft"]
    with pytest.raises(ConfigError, match="lpft"):
        claims.evaluate("naive-keeps-cue", broken)


def test_rows_render_criteria_from_thresholds():
    rows = claims.rows(claims.evaluate_all(results(), ["mechanism-barrier"]))
    th = claims.claim("mechanism-barrier").thresholds
    assert rows[0]["verdict"] == "holds" and f"{th['x_control']:g}×" in rows[0]["criterion"]


def test_linear_mode_connectivity_claims_each_fail_on_their_own_number():
    """Chapter 1's claims: scratch models separated, children far closer, the trained curve lower."""
    th = {i: claims.claim(i).thresholds for i in ("scratch-separated", "children-connected", "curve-connects-scratch")}
    floor = th["scratch-separated"]["barrier_min"]
    low = results(lmc__scratch_barrier=[floor] * 3)  # the floor itself is not above it
    assert claims.evaluate("scratch-separated", low).holds is False
    assert claims.evaluate("scratch-separated", results(lmc__scratch_barrier=[floor + 1e-3] * 3)).holds is True
    x = th["children-connected"]["x_scratch"]
    close = results(lmc__child_barrier=[x * 1.1 - 1e-3] * 3, lmc__scratch_barrier=[1.1] * 3)
    far = results(lmc__child_barrier=[x * 1.1 + 1e-3] * 3, lmc__scratch_barrier=[1.1] * 3)
    assert claims.evaluate("children-connected", close).holds is True
    assert claims.evaluate("children-connected", far).holds is False
    curve = th["curve-connects-scratch"]["x_line"]
    o = claims.evaluate("curve-connects-scratch", results(lmc__curve_barrier=[curve * 1.2 + 1e-3]))
    assert o.holds is False and f"{(curve * 1.2 + 1e-3) / 1.2:.2f}× the line's" in o.detail


def test_check_asserts_at_real_presets_and_reports_at_tiny():
    from cbft_core.study import presets

    good = claims.evaluate_all(results(), ["cbft-removes-cue", "cue-reliance"])
    assert claims.check(good, presets.get("cpu")) == "asserted claims hold: cbft-removes-cue, cue-reliance"
    bad = claims.evaluate_all(results(finetune__cbft=ft_block(0.72, 0.70, 0.71, 0.04, 0.6)), ["cbft-removes-cue"])
    with pytest.raises(AssertionError, match="cbft-removes-cue: rand-img 4.0 ± 0.0 % .* \\(rand-img within"):
        claims.check(bad, presets.get("paper"))
    assert "not checked at this scale" in claims.check(bad, presets.get("tiny"))
    reported = claims.evaluate_all(results(), ["cue100-barrier"])
    with pytest.raises(ConfigError, match="cue100-barrier' is a reported measurement"):
        claims.check(reported, presets.get("cpu"))


def test_the_method_bars_draw_the_floor_of_the_naive_claim(monkeypatch):
    """The dashed line is the claim's threshold, not a number of the plotting code."""
    import dataclasses

    from cbft_core.presentation import plots

    claim = claims.claim("naive-keeps-cue")
    monkeypatch.setitem(claims.CLAIMS, claim.id, dataclasses.replace(claim, thresholds={"x_chance": 4.0}))
    fig = plots.method_bars({"n = 10": {"FT": [0.5, 0.6]}}, ("θc", [0.9]), CHANCE, "rand-img accuracy")
    floor = [line for line in fig.axes[0].lines if line.get_label() == "4 × chance"]
    assert len(floor) == 1 and floor[0].get_ydata()[0] == pytest.approx(4.0 * CHANCE)


def test_an_ablation_reports_the_share_of_cbfts_change_it_undoes():
    # FT 0.45, CBFT 0.1: without the barrier 0.17 gives back 20 % of the drop; without invariance, none
    undone = claims.evaluate("ablation-no-barrier", results()).numbers["undone"]
    assert undone == pytest.approx((0.17 - 0.1) / (0.45 - 0.1))
    assert claims.evaluate("ablation-no-invariance", results()).numbers["undone"] == pytest.approx(-0.02 / 0.35)
    without_ft = results()
    del without_ft["finetune"]["ft"]
    assert "undone" not in claims.evaluate("ablation-no-barrier", without_ft).numbers


def test_a_ratio_just_below_its_threshold_is_not_shown_at_the_threshold():
    """2.996× against a 3× criterion reads 2.996×, never "3.0×" beside "does not hold"."""
    th = claims.claim("mechanism-barrier").thresholds["x_control"]
    control = 0.1
    r = results(**{"paths__cue-nocue": {"barrier": [control * th * 0.9987] * 3},
                   "paths__nocue-nocue": {"barrier": [control] * 3}, "paths__cue-cue": {"barrier": [0.0] * 3}})
    o = claims.evaluate("mechanism-barrier", r)
    assert o.holds is False
    shown = float(o.detail.split("cue-nocue is ")[1].split("×")[0])
    assert shown < th and round(shown, 1) == th
    far = claims.evaluate("mechanism-barrier", results())  # 4.9×: one decimal is enough
    assert f"{far.numbers['ratio']:.1f}× the larger control" in far.detail
