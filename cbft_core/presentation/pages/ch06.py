"""Chapter 6 (replication): the claim-by-claim discussion, the cue-proportion study's table and sentences, the
summary of the fidelity table and the commands of the paper's scale."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ...study import claims, fidelity, heldout, presets, sweep
from ...study.claims import Outcome
from ...study.presets import Preset
from ...study.replication import fmt_loss, fmt_pct
from .prose import listing, pct

__all__ = ["CUE_NAMES", "PROPORTION_CLAIMS", "discussion", "tally", "scale_note", "proportion_rows",
           "proportion_findings", "heldout_rows", "heldout_findings", "fidelity_summary", "paper_settings",
           "paper_commands"]

CUE_NAMES: dict[str, str] = {"box": "box", "dominoes": "Dominoes"}
PROPORTION_CLAIMS: tuple[str, ...] = ("cue-reliance", "mechanism-barrier")


def discussion(by_cue: Mapping[str, Sequence[Outcome]]) -> str:
    """One paragraph per claim: its verdict on each data set, with the numbers it rests on."""
    found = {cue: {o.claim.id: o for o in outcomes} for cue, outcomes in by_cue.items()}
    ids = list(dict.fromkeys(i for outcomes in found.values() for i in outcomes))
    paragraphs = []
    for claim_id in ids:
        parts = []
        for cue, outcomes in found.items():
            o = outcomes.get(claim_id)
            if o is not None:
                parts.append(f"{CUE_NAMES[cue]}: {o.verdict} — {o.measured}" + (f"; {o.detail}" if o.detail else ""))
        paragraphs.append(f"**{claims.claim(claim_id).statement}.** " + ". ".join(parts) + ".")
    return "\n\n".join(paragraphs)


def tally(by_cue: Mapping[str, Sequence[Outcome]]) -> str:
    """How many claims hold per data set (or that none is checked at this preset)."""
    parts = []
    for cue, outcomes in by_cue.items():
        checked = [o for o in outcomes if o.holds is not None]
        parts.append(f"{CUE_NAMES[cue]}: {sum(o.holds for o in checked)} of {len(checked)} checked claims hold"
                     if checked else f"{CUE_NAMES[cue]}: no claim is checked at this preset")
    return "; ".join(parts)


def _seeds(seeds: Sequence[int]) -> str:
    return "seeds " + ", ".join(str(s) for s in seeds)


def _heldout_pairs(by_cue: Mapping[str, Sequence[Outcome]], cfg: Preset
                   ) -> tuple[Mapping[str, Any], list[tuple[str, Outcome, Outcome | None]]] | None:
    """The held-out document and, per data set and checked claim, its outcome there beside this run's
    (``None`` when this run is at another preset or did not check the claim); ``None`` when not measured."""
    doc = heldout.load()
    if doc is None:
        return None
    same = cfg.name == doc["preset"]
    pairs = []
    for cue, results in doc["results"].items():
        ours = {o.claim.id: o for o in by_cue.get(cue, ())} if same else {}
        for o in claims.evaluate_all(results):
            if o.holds is not None:
                mine = ours.get(o.claim.id)
                pairs.append((cue, o, mine if mine is not None and mine.holds is not None else None))
    return doc, pairs


def heldout_rows(by_cue: Mapping[str, Sequence[Outcome]], cfg: Preset) -> list[dict[str, str]]:
    """Per claim and data set: the verdict on this run's seeds (at the held-out preset) and on the held-out seeds."""
    found = _heldout_pairs(by_cue, cfg)
    if found is None:
        return []
    doc, pairs = found
    rows = []
    for cue, held, mine in pairs:
        row = {"data": CUE_NAMES[cue], "claim": held.claim.statement}
        if mine is not None:
            row[_seeds(cfg.seeds)] = mine.verdict
        row[_seeds(doc["seeds"])] = held.verdict
        row["measured on the held-out seeds"] = held.measured + (f"; {held.detail}" if held.detail else "")
        rows.append(row)
    return rows


def heldout_findings(by_cue: Mapping[str, Sequence[Outcome]], cfg: Preset) -> str:
    """How many checked claims hold on the held-out seeds, per data set, and which verdicts differ from this run's."""
    found = _heldout_pairs(by_cue, cfg)
    if found is None:
        return "The held-out seeds have not been measured (`python -m cbft_core.study.heldout`)."
    doc, pairs = found
    counts = [f"{sum(h.holds for c, h, _ in pairs if c == cue)} of {sum(c == cue for c, _, _ in pairs)} checked "
              f"claims hold on {CUE_NAMES[cue]}" for cue in doc["results"]]
    text = f"At the `{doc['preset']}` preset on {_seeds(doc['seeds'])}, " + listing(counts) + "."
    if cfg.name != doc["preset"]:
        return text
    changed = [f"*{held.claim.statement}* on {CUE_NAMES[cue]} ({mine.verdict} on {_seeds(cfg.seeds)}, "
               f"{held.verdict} on {_seeds(doc['seeds'])})"
               for cue, held, mine in pairs if mine is not None and mine.holds != held.holds]
    if not changed:
        return text + " Every verdict is the same as on " + _seeds(cfg.seeds) + "."
    return text + " Verdicts that differ: " + "; ".join(changed) + "."


def scale_note(by_cue: Mapping[str, Mapping[str, Any]]) -> str:
    """The clean accuracy of each data set's cue-free model: how well the images themselves are learnt."""
    return "the cue-free model reaches " + listing(
        [f"{pct(r['models']['nocue']['clean'])} clean accuracy on {CUE_NAMES[cue]} data" for cue, r in by_cue.items()])


def _outcomes(doc: Mapping[str, Any], cue: str, p: float) -> dict[str, Outcome]:
    return {o.claim.id: o for o in claims.evaluate_all(sweep.results_at(doc, cue, p), PROPORTION_CLAIMS)}


def proportion_rows(doc: Mapping[str, Any], cue: str) -> list[dict[str, str]]:
    """Per cue proportion: the barriers, the cue child's rand-img accuracy and the two claims' verdicts."""
    rows = []
    for p in sorted(doc["proportions"]):
        r, found = sweep.results_at(doc, cue, p), _outcomes(doc, cue, p)
        rows.append({"p": f"{p:g}", **{pair: fmt_loss(r["paths"][pair]["barrier"])
                                       for pair in ("cue-nocue", "nocue-nocue", "cue-cue")},
                     "cue child rand-img": fmt_pct(r["models"]["cue"]["rand_img"]),
                     **{f"{i}": found[i].verdict for i in PROPORTION_CLAIMS}})
    return rows


def _verb(first: float, last: float, tolerance: float) -> str:
    return "stays about the same" if abs(last - first) <= tolerance else "rises" if last > first else "falls"


def proportion_findings(doc: Mapping[str, Any], cue: str) -> str:
    """How the barrier and the cue reliance move with the cue proportion, and where each claim holds."""
    ps, barrier, _ = sweep.series(doc, cue, "barriers", "cue-nocue")
    controls = [max(sweep.series(doc, cue, "barriers", pair)[1][i] for pair in ("nocue-nocue", "cue-cue"))
                for i in range(len(ps))]
    _, rand_img, _ = sweep.series(doc, cue, "models", "cue", "rand_img")
    text = (f"From p = {ps[0]:g} to p = {ps[-1]:g} the cue-nocue barrier {_verb(barrier[0], barrier[-1], 0.05)} "
            f"({barrier[0]:.3f} to {barrier[-1]:.3f}); the larger same-mechanism control "
            + (f"stays at {controls[0]:.3f}" if f"{min(controls):.3f}" == f"{max(controls):.3f}"
               else f"stays between {min(controls):.3f} and {max(controls):.3f}")
            + f". The cue child's rand-img accuracy "
            f"{_verb(rand_img[0], rand_img[-1], 0.03)} ({pct(rand_img[0])} to {pct(rand_img[-1])}).")
    for claim_id in PROPORTION_CLAIMS:
        verdicts = {p: _outcomes(doc, cue, p)[claim_id].verdict for p in ps}
        groups = {v: [f"{p:g}" for p in ps if verdicts[p] == v] for v in dict.fromkeys(verdicts.values())}
        text += (f" *{claims.claim(claim_id).statement}*: " + "; ".join(f"{v} at p = {listing(group)}"
                                                                           for v, group in groups.items()) + ".")
    return text


def fidelity_summary() -> str:
    """What the table of choices says, counted: where the book follows the authors' code and what is measured."""
    cfg = presets.get(fidelity.REFERENCE_PRESET)
    departs = [c for c in fidelity.CHOICES if c.departs(cfg)]
    measured = fidelity.effects()

    def named(kind: str) -> list[str]:
        moved = {c.key: fidelity.moves(c, cfg) for c in departs}
        open_ = lambda c: c.key not in measured and bool(moved[c.key])  # noqa: E731
        keep = {"measured": lambda c: c.key in measured,
                "pending": lambda c: open_(c) and not fidelity.needs_download(c, cfg),
                "download": lambda c: open_(c) and fidelity.needs_download(c, cfg),
                "none": lambda c: moved[c.key] == (), "unreproducible": lambda c: moved[c.key] is None}[kind]
        return [f"*{c.topic}*" for c in departs if keep(c)]

    said = {"measured": "the effect of {} is measured", "pending": "{} not measured yet",
            "download": "{} not measured (the authors' images need a download and a GPU-scale run)",
            "none": "{} no headline number", "unreproducible": "for {} no setting reproduces the authors' choice"}
    verbs = {"pending": ("is", "are"), "download": ("is", "are"), "none": ("moves", "move")}
    parts = []
    for kind, text in said.items():
        topics = named(kind)
        if topics:
            verb = verbs.get(kind, ("", ""))[len(topics) > 1]
            parts.append(text.format(listing(topics) + (f" {verb}" if verb else "")))
    return (f"The book follows the authors' code in {len(fidelity.CHOICES) - len(departs)} of the "
            f"{len(fidelity.CHOICES)} choices below and departs from it in {len(departs)}: "
            + "; ".join(parts) + ".")


def paper_settings(paper: Preset) -> str:
    """The paper preset's scale, in one sentence."""
    name = {"vgg13": "VGG-13", "resnet18": "ResNet-18", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
            "fashionmnist": "FashionMNIST", "mnist": "MNIST"}
    return (f"{name.get(paper.model, paper.model)} on {name.get(paper.dataset, paper.dataset)} "
            f"({name.get(paper.simple, paper.simple)} on top for Dominoes), {paper.child_epochs} epochs of training "
            f"at learning rate {paper.lr:g} (×0.1 every {paper.step_every} epochs), {paper.n_clean} clean images "
            f"for fine-tuning and {paper.n_cue} cue images for CBFT, on seeds {listing([str(s) for s in paper.seeds])}")


def paper_commands(paper: Preset, proportions: Sequence[float], cues: Sequence[str]) -> str:
    """The commands that run the study, both data sets and the cue-proportion study at the paper's scale."""
    seeds = " ".join(map(str, paper.seeds))
    lines = [f"python -m cbft_core plan --preset {paper.name}    # the work, the cache, the data, a time estimate"]
    lines += [f"python -m cbft_core run --preset {paper.name} --cue {cue} --out results/{paper.name}-{cue}"
              for cue in cues]
    lines.append(f"python -m cbft_core sweep --preset {paper.name} --seeds {seeds} --proportions "
                 f"{' '.join(f'{p:g}' for p in proportions)} --cues {' '.join(cues)} --methods \\\n"
                 f"    --engine ray --out results/{paper.name}-sweep    # the cue-proportion study on a Ray cluster")
    return "```bash\n" + "\n".join(lines) + "\n```"
