"""The package's three layers: imports point only downward."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

import cbft_core

PACKAGE = Path(cbft_core.__file__).resolve().parent
# lowest first: a module may import from its own layer or any layer below it
LAYERS: tuple[str, ...] = ("errors", "kernels", "study", "presentation")


def _layer(module: str) -> str | None:
    """The layer of a dotted module name inside cbft_core (None for the package root and __main__)."""
    parts = module.split(".")
    if parts[0] != "cbft_core" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def _imports(file: Path, root: Path) -> list[str]:
    """Absolute names of every cbft_core module that ``file`` (under package ``root``) imports."""
    package = ["cbft_core", *file.relative_to(root).parts[:-1]]
    names = []
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names += [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
    return [n for n in names if n.startswith("cbft_core")]


def upward_imports(root: Path) -> list[str]:
    """Every import in the package at ``root`` that points to a higher layer, as readable lines."""
    found = []
    for file in sorted(root.rglob("*.py")):
        own = _layer(".".join(["cbft_core", *file.relative_to(root).with_suffix("").parts]))
        if own is None:  # the package root and the python -m entry point may import anything
            continue
        for name in _imports(file, root):
            target = _layer(name)
            if target is not None and LAYERS.index(target) > LAYERS.index(own):
                found.append(f"{file.relative_to(root)} ({own}) imports {name} ({target})")
    return found


def test_every_module_lives_in_a_layer():
    loose = [f.name for f in PACKAGE.glob("*.py") if f.name not in ("__init__.py", "__main__.py", "errors.py")]
    assert loose == [], f"modules outside the three layers: {loose}"
    for layer in LAYERS[1:]:
        assert (PACKAGE / layer / "__init__.py").is_file()


def test_imports_point_downward():
    assert upward_imports(PACKAGE) == []


@pytest.mark.parametrize("line", ["from ..study import presets", "from ..presentation.plots import gallery",
                                  "import cbft_core.study.zoo", "from cbft_core.presentation import cli"])
def test_the_layer_check_catches_an_upward_import(tmp_path, line):
    root = _copy_package(tmp_path)
    target = root / "kernels" / "paths.py"
    target.write_text(target.read_text() + f"\n{line}\n")
    assert len(upward_imports(root)) == 1 and "kernels/paths.py" in upward_imports(root)[0]
    nested = root / "kernels" / "data" / "views.py"  # a relative import from a sub-package
    nested.write_text(nested.read_text() + "\nfrom ...study import cache\n")
    assert any("kernels/data/views.py" in f and "cbft_core.study" in f for f in upward_imports(root))


def _copy_package(tmp_path: Path) -> Path:
    copy = tmp_path / "cbft_core"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy
