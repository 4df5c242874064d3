"""What the cache keys hash: normalised source, and the code each step reaches."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cbft_core
from cbft_core.study import codehash, graph, steps, zoo

PACKAGE = Path(cbft_core.__file__).resolve().parent

SOURCE = '''
def f(x: int, y: "float" = 2.0) -> float:
    """Add them."""
    # a comment
    z = x + y
    return z * 2
'''


def _dump(text: str) -> str:
    return codehash.normalise(ast.parse(text))


@pytest.mark.parametrize("same", [
    SOURCE.replace('"""Add them."""', '"""Add the two numbers, then double."""'),
    SOURCE.replace("# a comment", "# another comment\n    # and one more"),
    SOURCE.replace("z = x + y", "z = (x\n         + y)").replace("def f(x: int", "def f(x:   int"),
    SOURCE.replace('x: int, y: "float" = 2.0) -> float', "x, y=2.0)"),
], ids=["docstring", "comments", "layout", "annotations"])
def test_what_does_not_count(same):
    assert _dump(same) == _dump(SOURCE)


@pytest.mark.parametrize("other", [
    SOURCE.replace("z * 2", "z * 3"),
    SOURCE.replace("= 2.0) ->", "= 2.5) ->"),
    SOURCE.replace('    """Add them."""\n', '    """Add them."""\n    x = int(x)\n'),
], ids=["expression", "default", "statement"])
def test_what_counts(other):
    assert _dump(other) != _dump(SOURCE)


def test_a_step_reaches_its_study_helpers_and_kernel_modules():
    cbft_code = codehash.code_of(steps.compute_cbft)
    assert {"cbft_core.study.steps.compute_cbft", "cbft_core.study.zoo.cue_subset", "cbft_core.study.zoo.train_set",
            "cbft_core.study.zoo._load_base"} <= set(cbft_code.functions)
    assert "cbft_core.study.zoo:DATA_SEED" in cbft_code.values
    assert {"cbft_core.kernels.cbft", "cbft_core.kernels.seeding"} <= set(cbft_code.modules)
    closure = codehash.module_closure(cbft_code.modules)
    assert {"cbft_core.kernels.finetune", "cbft_core.kernels.train", "cbft_core.errors"} <= set(closure)
    assert not [m for m in closure if not m.startswith(("cbft_core.kernels", "cbft_core.errors"))]
    naive = codehash.code_of(steps.compute_finetuned)
    assert "cbft_core.study.zoo.cue_subset" not in naive.functions
    assert "cbft_core.kernels.cbft" not in codehash.module_closure(naive.modules)
    assert codehash.digest(steps.compute_cbft) != codehash.digest(steps.compute_finetuned)


def test_the_code_version_ignores_the_presentation_layer_and_the_claims(package_copy):
    before = graph.code_version()
    for file in [*sorted((package_copy / "presentation").rglob("*.py")), package_copy / "study" / "claims.py"]:
        file.write_text(file.read_text() + "\n\ndef _added():\n    return 1\n")
    codehash.clear()
    assert graph.code_version() == before


def test_the_code_version_follows_every_kernel_module_a_step_uses(package_copy):
    """Every kernel module but ``invariance`` (which only chapter 3 calls, on models from the cache) and the
    packages' ``__init__`` files (which only re-export names)."""
    before = graph.code_version()
    unused = []
    for file in sorted((package_copy / "kernels").rglob("*.py")):
        original = file.read_text()
        file.write_text(original + "\n\ndef _added():\n    return 1\n")
        codehash.clear()
        if graph.code_version() == before:
            unused.append(file.relative_to(package_copy).as_posix())
        file.write_text(original)
    assert unused == ["kernels/__init__.py", "kernels/data/__init__.py", "kernels/invariance.py"]
    codehash.clear()
    assert graph.code_version() == before


def test_a_study_value_counts(package_copy, monkeypatch):
    """Plain values a step reads count by value (the data seed shared by every replicate)."""
    before = codehash.digest(steps.compute_child)
    monkeypatch.setattr(zoo, "DATA_SEED", 1)
    codehash.clear()
    assert codehash.digest(steps.compute_child) != before
