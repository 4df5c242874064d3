"""The code a study step depends on, hashed so that only edits of what it computes count.

A step's code is its compute function and what that function reaches,
found statically from the source (nothing is executed):

- every function or class of the study layer it names (directly, or as
  ``module.name``), hashed function by function and followed in turn, and the
  plain values (numbers, strings, tuples, dicts) of the study-level names it reads;
- every kernel module it names or whose function or class it names, hashed as
  a whole module, closed over the modules each kernel module imports from
  ``cbft_core`` (``cbft_core.errors`` included).

Source is compared as ``ast.dump`` of its parse tree with docstrings and
type annotations removed, so comments, docstrings, hints and formatting never
count. The presentation layer and the claims registry never count: a plot or
a threshold cannot change a stored number.

The files are read under :data:`ROOT` (the installed package); the digests
are memoised per process (:func:`clear` forgets them).
"""
from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import importlib
import inspect
import json
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["ROOT", "Code", "normalise", "code_of", "digest", "module_closure", "module_digest", "module_constants",
           "clear"]

ROOT = Path(__file__).resolve().parents[1]   # the cbft_core package folder whose source is hashed
_PACKAGE = "cbft_core"
_NEVER = ("cbft_core.presentation", "cbft_core.study.claims")
_KERNEL = ("cbft_core.kernels", "cbft_core.errors")
_STUDY = "cbft_core.study"
_PLAIN = (str, int, float, bool, type(None))
_MISSING = object()


@dataclass(frozen=True)
class Code:
    """What one compute function depends on: study functions (by qualified name), study values, kernel modules."""

    functions: tuple[str, ...]
    values: tuple[str, ...]
    modules: tuple[str, ...]        # the kernel modules it names (before the import closure)


def _inside(module: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _file(module: str) -> Path:
    parts = module.split(".")[1:]
    base = ROOT.joinpath(*parts)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@functools.lru_cache(maxsize=None)
def _tree(module: str) -> ast.Module:
    return ast.parse(_file(module).read_text(encoding="utf-8"))


class _Strip(ast.NodeTransformer):
    """Remove docstrings and annotations (what never changes a computed number)."""

    def _body(self, node: Any) -> Any:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    def visit_Module(self, node: ast.Module) -> Any:
        return self._body(self.generic_visit(node))

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        return self._body(self.generic_visit(node))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node.returns = None
        return self._body(self.generic_visit(node))

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_arg(self, node: ast.arg) -> Any:
        node.annotation = None
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        if node.value is None:  # a bare declaration (a dataclass field without default)
            return ast.Expr(ast.Name(getattr(node.target, "id", "_"), ast.Load()))
        return ast.Assign([node.target], node.value)


def _stripped(node: ast.AST) -> ast.AST:
    return _Strip().visit(ast.parse(ast.unparse(node)))  # a fresh copy: the memoised tree stays intact


def normalise(node: ast.AST) -> str:
    """``ast.dump`` of ``node`` without docstrings and annotations (positions are never dumped)."""
    return ast.dump(_stripped(node))


def _definition(obj: Any) -> ast.AST:
    """The ``def``/``class`` node of a module-level function or class (or a method, by qualified name)."""
    node: Any = _tree(obj.__module__)
    for name in obj.__qualname__.split("."):
        node = next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == name), None)
        if node is None:
            raise LookupError(f"{obj.__module__}.{obj.__qualname__}: no definition in {_file(obj.__module__)}")
    return node


def _names(node: ast.AST) -> list[list[str]]:
    """Every dotted name ``node`` reads from outside (``a.b.c`` → ``["a", "b", "c"]``): its own
    parameters and local variables, and annotations, are left out."""
    tree = _stripped(node)
    local = {sub.arg for sub in ast.walk(tree) if isinstance(sub, ast.arg)}
    local |= {sub.id for sub in ast.walk(tree) if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load)}
    local |= {sub.name for sub in ast.walk(tree) if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
              and sub is not tree.body[0]}
    inner = {id(sub.value) for sub in ast.walk(tree) if isinstance(sub, ast.Attribute)}
    found = []
    for sub in ast.walk(tree):
        if not isinstance(sub, (ast.Name, ast.Attribute)) or id(sub) in inner:
            continue  # an attribute chain is read once, from its outermost node
        chain, base = [], sub
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and isinstance(base.ctx, ast.Load) and base.id not in local:
            found.append([base.id, *reversed(chain)])
    return found


def _unwrap(obj: Any) -> Any:
    return inspect.unwrap(obj) if inspect.isfunction(obj) or hasattr(obj, "__wrapped__") else obj


def _resolve(chain: list[str], scope: dict[str, Any]) -> Any:
    """The object a dotted name denotes: follows attributes while they lead through modules."""
    obj = scope.get(chain[0], _MISSING)
    for attr in chain[1:]:
        if not isinstance(obj, types.ModuleType):
            break
        obj = getattr(obj, attr, None)
    return _unwrap(obj)


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (tuple, list, frozenset)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    return False


@functools.lru_cache(maxsize=None)
def _reach(fn: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, Any], frozenset[str]]:
    """(study functions and classes by qualified name, study values by name, kernel modules) that ``fn`` reaches."""
    functions: dict[str, Any] = {}
    values: dict[str, Any] = {}
    modules: set[str] = set()
    todo = [_unwrap(fn)]
    while todo:
        obj = todo.pop()
        qualified = f"{obj.__module__}.{obj.__qualname__}"
        if qualified in functions:
            continue
        functions[qualified] = obj
        scope = {**vars(builtins), **vars(inspect.getmodule(obj))}
        for chain in _names(_definition(obj)):
            target = _resolve(chain, scope)
            if target is _MISSING:
                continue
            if isinstance(target, types.ModuleType):
                if _inside(target.__name__, _KERNEL):
                    modules.add(target.__name__)
                continue
            home = getattr(target, "__module__", None) or ""
            if _inside(home, _KERNEL):
                modules.add(home)
            elif _inside(home, _STUDY) and not _inside(home, _NEVER) and (inspect.isfunction(target)
                                                                          or inspect.isclass(target)):
                todo.append(target)
            elif _is_plain(target) and chain[0] not in vars(builtins):
                values[f"{obj.__module__}:{'.'.join(chain)}"] = target
    return functions, values, frozenset(modules)


def code_of(fn: Callable[..., Any]) -> Code:
    """The study functions, study values and kernel modules that ``fn`` (a study function) reaches."""
    functions, values, modules = _reach(fn)
    return Code(tuple(sorted(functions)), tuple(sorted(values)), tuple(sorted(modules)))


def _imports(module: str) -> set[str]:
    """The ``cbft_core`` modules that ``module`` imports, anywhere in its source."""
    package = module if _file(module).name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if _inside(sub, _PACKAGE) and _file(sub).exists() else source)
    return {m for m in found if _inside(m, _PACKAGE) and not _inside(m, _NEVER)}


@functools.lru_cache(maxsize=None)
def module_closure(modules: tuple[str, ...]) -> tuple[str, ...]:
    """``modules`` and every ``cbft_core`` module they import, transitively, sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_imports(module) - seen)
    return tuple(sorted(seen))


@functools.lru_cache(maxsize=None)
def _normalised(obj: Any) -> str:
    return normalise(_definition(obj))


@functools.lru_cache(maxsize=None)
def _normalised_module(module: str) -> str:
    return normalise(_tree(module))


@functools.lru_cache(maxsize=None)
def digest(fn: Callable[..., Any]) -> str:
    """sha256 of the normalised source of everything ``fn`` depends on (see the module docstring)."""
    functions, values, modules = _reach(fn)
    parts = {
        "functions": {name: _normalised(obj) for name, obj in functions.items()},
        "values": {name: repr(value) for name, value in values.items()},
        "modules": {m: _normalised_module(m) for m in module_closure(tuple(sorted(modules)))},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def module_digest(modules: tuple[str, ...]) -> str:
    """sha256 of the normalised source of ``modules`` and of every ``cbft_core`` module they import
    (kernel code that a key outside the step registry depends on)."""
    closure = module_closure(tuple(sorted(modules)))
    return hashlib.sha256(json.dumps({m: _normalised_module(m) for m in closure}, sort_keys=True).encode()).hexdigest()


def module_constants(modules: tuple[str, ...]) -> dict[str, str]:
    """``repr`` of every module-level plain value (numbers, strings, tuples, dicts) of ``modules`` and the
    ``cbft_core`` modules they import, as this process holds them now: a constant set at run time (a
    trial's recipe) differs from the source, which :func:`module_digest` sees. Not memoised."""
    found = {}
    for module in module_closure(tuple(sorted(modules))):
        for name, value in vars(importlib.import_module(module)).items():
            if not name.startswith("__") and _is_plain(value):
                found[f"{module}:{name}"] = repr(value)
    return found


def clear() -> None:
    """Forget every parsed file and digest (after :data:`ROOT` or the files under it change)."""
    for memo in (_tree, _reach, module_closure, _normalised, _normalised_module, digest):
        memo.cache_clear()
