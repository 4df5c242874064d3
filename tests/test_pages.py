"""The sentences chapters 4–6 glue into their prose say what their numbers say (cbft_core.presentation.pages)."""
from __future__ import annotations

import pytest

from cbft_core.presentation.pages import ch04, ch05, ch06
from cbft_core.study import sweep
from test_claims import CHANCE, ft_block, results

ABLATIONS = {  # (no-barrier rand-img, no-invariance rand-img) with FT at 0.45 and CBFT at 0.10
    "barrier does the work": ((0.40, 0.11),
                              "the barrier term does the work; removing the invariance term changes little"),
    "neither": ((0.11, 0.09), "Neither term is needed on its own"),
    "both": ((0.42, 0.40), "Each term matters here: removing either one gives back most of the cue"),
}


@pytest.mark.parametrize("case", list(ABLATIONS))
def test_the_ablation_sentence_follows_the_numbers(case):
    (no_barrier, no_invariance), expected = ABLATIONS[case]
    r = results()
    r["finetune"]["ft"] = ft_block(0.75, 0.95, 0.5, 0.45, 0.0)
    r["finetune"]["cbft-no-barrier"] = ft_block(0.73, 0.86, 0.68, no_barrier, 0.0)
    r["finetune"]["cbft-no-invariance"] = ft_block(0.72, 0.6, 0.66, no_invariance, 0.4)
    assert expected in ch05.ablations(r)


def test_the_views_sentence_names_a_model_that_acts_against_the_box():
    block = results()["finetune"]
    assert "neither helps nor hurts" in ch05.views(block, CHANCE)
    block["cbft"] = ft_block(0.72, 0.55, 0.71, 0.02, 0.6)
    text = ch05.views(block, CHANCE)
    assert "act against the box" in text and "below chance" in text


def test_chapter_4_sentences_sort_the_methods_by_their_cue_reliance():
    r = results()
    block = {m: r["finetune"][m] for m in ("ft", "llrt", "lpft")}
    block["lpft"] = ft_block(0.74, 0.93, 0.5, 0.25, 0.01)
    original = {"clean": [0.5], "cue": [0.99], "rand-cue": [0.3], "rand-img": [0.7]}
    found = ch04.findings(original, {500: block, 2500: block}, ["ft", "llrt", "lpft"], CHANCE)
    assert "FT and LLRT stay at or above 3× chance" in found["cue"]
    assert "LP-FT stays below that floor" in found["cue"]
    assert "above θc's 50.0 %" in found["clean"] and "barely change it" in found["size"]
    assert "within 0.05 of the control" in ch04.connected(block, [0.0, 0.01])


def test_the_proportion_findings_read_the_sweep():
    units = {}
    for p, barrier in ((0.6, 0.05), (1.0, 0.5)):
        unit = {"models": {"cue": {"clean": 0.5, "cue": 0.99, "rand_cue": 0.3, "rand_img": 0.2 + 0.5 * p},
                           "nocue": {"clean": 0.8, "cue": 0.8, "rand_cue": 0.8, "rand_img": 0.1}},
                "barriers": {"cue-nocue": barrier, "cue-cue": 0.01, "nocue-nocue": 0.02}, "finetune": {}}
        units[str(p)] = {"0": unit}
    doc = {"preset": "cpu", "chance": CHANCE, "proportions": [0.6, 1.0], "units": {"box": units}}
    text = ch06.proportion_findings(doc, "box")
    assert "the cue-nocue barrier rises (0.050 to 0.500)" in text
    assert "different mechanisms)*: does not hold at p = 0.6; holds at p = 1" in text
    rows = ch06.proportion_rows(doc, "box")
    assert [row["mechanism-barrier"] for row in rows] == ["does not hold", "holds"]
    assert sweep.results_at(doc, "box", 1.0)["paths"]["cue-nocue"]["barrier"] == [0.5]


def test_the_paper_commands_run_the_proportion_study_without_fine_tuning():
    from cbft_core.study import presets

    text = ch06.paper_commands(presets.get("paper"), [0.6, 1.0], ["box"])
    assert "--proportions 0.6 1 --cues box --methods \\\n" in text and text.startswith("```bash")
