"""The study as one graph: what each step costs and reads on a real run, and what an edit or a setting re-runs.

Every test here runs the ``tiny`` preset (shrunk further) into a temporary
cache. The cache-key tests edit a copy of the package's source (the hasher
reads the copy, :data:`cbft_core.study.codehash.ROOT`) and count the cache
entries the next run writes: an entry written is a node recomputed.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import cbft_core
from cbft_core.errors import ConfigError
from cbft_core.kernels import cbft, models
from cbft_core.study import cache, codehash, graph, pipeline, presets, steps

PACKAGE = Path(cbft_core.__file__).resolve().parent
# short last batches everywhere, BN data smaller than the training set, a cue set larger than the clean one
SMALL = dict(n_train=300, n_test=60, bn_images=100, eval_batch_size=50, n_clean=100, n_cue=150, ft_batch_size=64,
             path_points=3, switch_points=4, cbft_epochs=2)
CAPPED = dict(SMALL, max_batches=1, n_cue=40)  # every epoch capped at one batch; the cue set the shorter


class Recording:
    """A preset that records the names of the settings read from it."""

    def __init__(self, cfg: presets.Preset, reads: set[str]) -> None:
        self._cfg, self._reads = cfg, reads

    def __getattr__(self, name: str):
        self._reads.add(name)
        return getattr(self._cfg, name)


@pytest.fixture
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _watch(monkeypatch) -> dict[steps.Node, dict]:
    """Per computed node: images through the network with and without gradients, and the settings read.

    Images are counted where every model of the library starts its forward
    pass (``features``), whatever calls it: training loops, BatchNorm
    re-estimation, evaluation, functional_call on a template module.
    """
    seen: dict[steps.Node, dict] = {}
    current: list[steps.Node] = []
    features = models.ConvNet.features

    def counting(self, x):
        if current:
            seen[current[-1]]["train" if torch.is_grad_enabled() else "forward"] += x.shape[0]
        return features(self, x)

    def watched(fn):
        @functools.wraps(fn)  # the hasher unwraps it: the keys stay those of the library's code
        def compute(cfg, n, inputs, progress):
            seen[n] = {"train": 0, "forward": 0, "reads": set()}
            current.append(n)
            try:
                return fn(Recording(cfg, seen[n]["reads"]), n, inputs, progress)
            finally:
                current.pop()
        return compute

    monkeypatch.setattr(models.ConvNet, "features", counting)
    for name, step in steps.STEPS.items():
        compute = ({k: watched(fn) for k, fn in step.compute.items()} if step.variant else watched(step.compute))
        monkeypatch.setitem(steps.STEPS, name, dataclasses.replace(step, compute=compute))
    return seen


@pytest.mark.parametrize("overrides", [SMALL, CAPPED], ids=["small", "capped"])
def test_each_step_costs_and_reads_what_the_registry_says(overrides, tmp_path, monkeypatch, single_thread):
    """Cold runs of the study and of the explorer's grids: per node, the images counted at the model's
    forward pass equal the registry's cost, and the settings read are among those its key covers."""
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    seen = _watch(monkeypatch)
    cfg = presets.get("tiny", seeds=[0], **overrides)
    pipeline.run(cfg, out=tmp_path / "out", progress=False)
    ts = np.linspace(0.0, 1.0, 3)
    for pair, bends, bn in (("scratch", [0.0, 1.0], "reestimate"), ("scratch-aligned", [0.0], "reestimate"),
                            ("nocue-nocue", [0.0], "interpolate")):
        graph.result(cfg, "explorer-grid", seed=0, pair=pair, bends=bends, ts=ts, bn=bn, progress=False)
    computed = Counter(n.step for n in seen)
    assert computed == {"parent": 1, "child": 5, "child-views": 3, "path": 5, "midpoint": 1, "finetuned": 6,
                        "finetune-summary": 6, "scratch": 2, "scratch-midpoint": 1, "explorer-grid": 3,
                        "models": 1, "paths": 1, "quadratic": 1, "finetune": 1}
    for n, got in seen.items():
        cost = graph.cost(cfg, n)
        assert (got["train"], got["forward"]) == (cost.train, cost.forward), (n, got)
        allowed = set(steps.STEPS[n.step].settings(n)) | {"device"}  # the device never enters a key
        assert got["reads"] <= allowed, (n.step, sorted(got["reads"] - allowed))
    assert sum(c.train for c in map(lambda n: graph.cost(cfg, n), seen)) > 0


def test_a_node_is_made_from_checked_parameters():
    cfg = presets.get("tiny")
    n = graph.node(cfg, "child", seed=np.int64(2))
    assert n == graph.node(cfg, "child", seed=2, cue="box", proportion=cfg.proportion, branch=0)
    assert n.proportion == 0.8 and isinstance(n.seed, int)
    assert graph.node(cfg, "finetuned", seed=0, method="ft").n_clean == cfg.n_clean
    assert graph.node(cfg, "child", seed=0, proportion=1) == graph.node(cfg, "child", seed=0, proportion=1.0)
    for call, named in [(lambda: graph.node(cfg, "childs", seed=0), "step: unknown value 'childs'"),
                        (lambda: graph.node(cfg, "child", seed=0, replica=1), "child: unknown parameter(s) ['replica']"),
                        (lambda: graph.node(cfg, "path", pair="cue-nocue"), "path: parameter 'seed' is required"),
                        (lambda: graph.node(cfg, "path", seed=0, pair="cue-nocue2"), "pair: unknown value 'cue-nocue2'"),
                        (lambda: graph.node(cfg, "child", seed=0, proportion=1.5), "proportion must be a finite number"),
                        (lambda: graph.node(cfg, "explorer-grid", seed=0, pair="scratch-aligned", bends=[0, 1],
                                            ts=[0, 1]), "bends: pair 'scratch-aligned' has no trained midpoint")]:
        with pytest.raises(ConfigError) as info:
            call()
        assert named in str(info.value) and "\n" not in str(info.value)


def test_keys_cover_exactly_the_settings_a_step_reads():
    """Keys computed without running anything: a setting moves the keys of the steps that read it and of
    what consumes them, and no other."""
    base = presets.get("tiny")
    nodes = graph.closure(base, [graph.node(base, part, seed=0) for part in pipeline.PARTS])
    stored = [n for n in nodes if steps.STEPS[n.step].store]
    before = {n: graph.key(base, n) for n in stored}

    def moved(**change):
        cfg = base.replace(**change)
        return sorted({(n.step, n.as_dict().get("method", "")) for n in stored if graph.key(cfg, n) != before[n]})

    assert moved(cbft_lambda=3.0) == [("finetune-summary", "cbft"), ("finetune-summary", "cbft-no-barrier"),
                                      ("finetuned", "cbft"), ("finetuned", "cbft-no-barrier")]
    assert moved(eval_batch_size=100) == sorted({(n.step, n.as_dict().get("method", "")) for n in stored
                                                 if n.step in ("child-views", "path", "finetune-summary")})
    assert moved(name="renamed", seeds=(5, 6), device="auto") == []
    assert all(key != before[n] for n, key in ((n, graph.key(base.replace(lr=0.5), n)) for n in stored))


# --- what an edit of the source re-runs -------------------------------------------------------------------

def _edit_function(file: Path, name: str, statement: str) -> None:
    """Insert ``statement`` as the first line of the body of ``def name`` in ``file`` (a real code change)."""
    text = file.read_text()
    node = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == name)
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):  # after the docstring
        first = node.body[1]
    lines = text.splitlines(keepends=True)
    lines.insert(first.lineno - 1, " " * first.col_offset + statement + "\n")
    file.write_text("".join(lines))


def _defining(name: str, package: Path) -> Path:
    """The kernel module of ``package`` that defines function ``name`` (wherever a refactoring put it)."""
    return next(p for p in sorted((package / "kernels").rglob("*.py")) if f"\ndef {name}(" in p.read_text())


def _edit_docstring(file: Path, name: str) -> None:
    text = file.read_text()
    node = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == name)
    doc = ast.get_docstring(node, clean=False)
    assert doc in text
    file.write_text(text.replace(doc, doc + " Reworded.", 1))


def _edit_claims_threshold(root: Path) -> None:
    file = root / "study" / "claims.py"
    text = file.read_text()
    assert '{"x_chance": 3.0}' in text
    file.write_text(text.replace('{"x_chance": 3.0}', '{"x_chance": 3.5}'))


def _edit_comments_and_layout(root: Path) -> None:
    """Each file laid out anew (``ast.unparse``: other line breaks, quotes, no comments), then commented."""
    for rel in ("kernels/train.py", "kernels/cbft.py", "study/steps.py", "study/zoo.py"):
        file = root / rel
        text = ast.unparse(ast.parse(file.read_text()))
        assert text != file.read_text()
        file.write_text(text.replace("\ndef ", "\n# a comment before a definition\ndef "))


def _edit_docstrings(root: Path) -> None:
    _edit_docstring(root / "kernels" / "train.py", "train_loop")
    _edit_docstring(root / "study" / "steps.py", "compute_finetuned")
    _edit_docstring(_defining("barrier_loss", root), "barrier_loss")


def _edit_presentation(root: Path) -> None:
    for file in sorted((root / "presentation").rglob("*.py")):
        file.write_text(file.read_text() + "\n\ndef _added():\n    return 1\n")


def _entries(folder: Path) -> Counter:
    return Counter(p.parent.name for p in folder.rglob("*") if p.suffix in (".pt", ".json") and p.parent != folder)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """The tiny study run once, cold, into a cache of its own."""
    folder = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv(cache.ENV_VAR, str(folder))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipeline.run("tiny", [0], tmp_path_factory.mktemp("out"), progress=False, **SMALL)
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    return folder


def _rerun(cache_dir: Path, tmp_path: Path, monkeypatch, **change) -> tuple[Counter, list[Path]]:
    """Run the study again, on a copy of the warm cache, after the edit; the entries it wrote (by step, and their paths)."""
    codehash.clear()
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    monkeypatch.setenv(cache.ENV_VAR, str(copy))
    before = set(copy.rglob("*"))
    pipeline.run("tiny", [0], tmp_path / "out", progress=False, **{**SMALL, **change})
    written = sorted(p for p in set(copy.rglob("*")) - before if p.suffix in (".pt", ".json"))
    return Counter(p.parent.name for p in written), written


@pytest.mark.parametrize("edit", [_edit_claims_threshold, _edit_comments_and_layout, _edit_docstrings,
                                  _edit_presentation], ids=["claim threshold", "comments and layout",
                                                            "docstrings", "every presentation module"])
def test_an_edit_that_computes_nothing_new_keeps_every_entry(edit, warm_cache, package_copy, tmp_path, monkeypatch,
                                                             single_thread):
    edit(package_copy)
    assert _rerun(warm_cache, tmp_path, monkeypatch)[0] == Counter()


def test_editing_the_cbft_loss_reruns_the_cbft_steps_and_their_summaries(warm_cache, package_copy, tmp_path,
                                                                         monkeypatch, single_thread):
    _edit_function(_defining("barrier_loss", package_copy), "barrier_loss", "margin = float(margin)")
    counts, written = _rerun(warm_cache, tmp_path, monkeypatch)
    assert counts == {"finetuned": len(cbft.METHODS), "finetune-summary": len(cbft.METHODS)}
    assert {cache.load_model(p)[1]["params"]["method"] for p in written if p.suffix == ".pt"} == set(cbft.METHODS)


def test_editing_a_study_helper_reruns_only_the_steps_that_call_it(warm_cache, package_copy, tmp_path, monkeypatch,
                                                                   single_thread):
    """The cue data D_c is drawn by one study function that only CBFT's steps reach."""
    _edit_function(package_copy / "study" / "zoo.py", "cue_subset", "seed = int(seed)")
    assert _rerun(warm_cache, tmp_path, monkeypatch)[0] == {"finetuned": 3, "finetune-summary": 3}


def test_editing_the_training_loop_reruns_every_model_and_all_downstream(warm_cache, package_copy, tmp_path,
                                                                         monkeypatch, single_thread):
    _edit_function(package_copy / "kernels" / "train.py", "train_loop", "epochs = int(epochs)")
    assert _rerun(warm_cache, tmp_path, monkeypatch)[0] == _entries(warm_cache)


def test_changing_cbft_lambda_reruns_only_the_steps_that_read_it(warm_cache, tmp_path, monkeypatch, single_thread):
    """``cbft-no-invariance`` fixes λ = 0 and does not read it."""
    counts, written = _rerun(warm_cache, tmp_path, monkeypatch, cbft_lambda=2.5)
    assert counts == {"finetuned": 2, "finetune-summary": 2}
    assert {cache.load_model(p)[1]["params"]["method"] for p in written if p.suffix == ".pt"} == {"cbft",
                                                                                                 "cbft-no-barrier"}


def test_the_maintaining_page_shows_the_registry():
    from cbft_core.presentation import schema_doc

    page = (PACKAGE.parent / "book" / "maintaining.md").read_text()
    table = schema_doc.steps_markdown()
    assert schema_doc.replace_section(page, table, schema_doc.STEPS_START, schema_doc.STEPS_END) == page, (
        "book/maintaining.md is out of date: python -m cbft_core.presentation.schema_doc book/maintaining.md")
    rows = [line for line in table.splitlines()[2:]]
    assert {row.split("`")[1] for row in rows} == set(steps.STEPS)
    assert any(row.startswith("| `finetuned` (method cbft, cbft-no-barrier)") and "`cbft_lambda`" in row
               and "kernels.cbft" in row for row in rows)
    assert any(row.startswith("| `finetuned` (method ft)") and "cbft" not in row and "llrt_lr" not in row
               for row in rows)
    assert any(row.startswith("| `finetuned` (method llrt, lpft)") and "`llrt_lr`" in row for row in rows)
