"""The study's output documents, results.json and sweep.json: one integrity scheme and one error style.

Each document names its ``format`` and carries a ``checksum``: the sha256 of
its canonical JSON (key-sorted, compact) without the checksum itself, so a
document checks itself wherever it is copied. :func:`write` validates a
document and writes it atomically; :func:`load` reads one and checks, in
order, that it is JSON, that it matches its checksum, its JSON Schema
(``schemas/<name>.schema.json``, shipped with the package) and the rules a
schema cannot state (one number per seed; every unit of the grid stored or
failed). Any problem, on writing or reading, is one
:class:`~cbft_core.errors.ConfigError` line naming the file, where in it, and
what to do.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import ConfigError
from . import cache

if TYPE_CHECKING:
    import jsonschema

__all__ = ["Kind", "RESULTS", "SWEEP", "proportion_key", "unit_name", "schema", "checksum", "complete", "validate",
           "check_folder", "write", "load"]


@dataclass(frozen=True)
class Kind:
    """One kind of document: its file name, format tag, schema, how to rewrite it and its extra rules."""

    name: str                                         # the file name, e.g. "results.json"
    format: str
    schema_file: str                                  # in cbft_core/study/schemas/
    rewrite: str                                      # the command that writes it
    rules: Callable[[Mapping[str, Any]], tuple[list[Any], str] | None]  # (where, problem) beyond the schema


def _per_seed(doc: Mapping[str, Any]) -> tuple[list[Any], str] | None:
    """Every list of results.json but ``seeds`` holds one finite number per seed."""
    n = len(doc["seeds"])

    def walk(block: Any, where: list[Any]) -> tuple[list[Any], str] | None:
        if isinstance(block, Mapping):
            for name, value in block.items():
                found = walk(value, where + [name])
                if found:
                    return found
        elif isinstance(block, list) and where != ["seeds"]:
            if len(block) != n:
                return where, f"expected a list of {n} numbers (one per seed), got {len(block)}"
            if not all(math.isfinite(v) for v in block):
                return where, f"expected finite numbers, got {block}"
        return None

    return walk(doc, [])


def proportion_key(p: float) -> str:
    """The key of cue proportion ``p`` in sweep.json (``repr`` of the float: exact and reversible)."""
    return repr(float(p))


def unit_name(cue: str, proportion: float, seed: int) -> str:
    """How a sweep unit is named in reports and in sweep.json's ``failed``, e.g. ``box p=0.8 seed 1``."""
    return f"{cue} p={proportion:g} seed {seed}"


def _grid(doc: Mapping[str, Any]) -> tuple[list[Any], str] | None:
    """Every unit of the sweep's grid is either stored or failed, with the sweep's methods."""
    expected = {unit_name(c, float(p), int(s)): (c, proportion_key(p), str(s))
                for c in doc["cues"] for s in doc["seeds"] for p in doc["proportions"]}
    stored = {(c, p, s) for c, by_p in doc["units"].items() for p, by_s in by_p.items() for s in by_s}
    for name, cell in expected.items():
        if (cell in stored) == (name in doc["failed"]):
            return ["units"], f"unit {name} is {'both stored and failed' if cell in stored else 'neither stored nor failed'}"
    extra = stored - set(expected.values())
    if extra:
        return ["units"], f"units outside the grid: {sorted(extra)}"
    for c, p, s in sorted(stored):
        methods = sorted(doc["units"][c][p][s]["finetune"])
        if methods != sorted(doc["methods"]):
            return ["units", c, p, s, "finetune"], f"methods {methods}, expected {doc['methods']}"
    return None


RESULTS = Kind("results.json", "cbft_core.results/1", "results.schema.json",
               "write it with `python -m cbft_core run --out DIR`", _per_seed)
SWEEP = Kind("sweep.json", "cbft_core.sweep/1", "sweep.schema.json",
             "write it with `python -m cbft_core sweep ... --out DIR`", _grid)


@functools.lru_cache(maxsize=None)
def schema(kind: Kind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``kind``, read from the package."""
    text = resources.files(__package__).joinpath("schemas", kind.schema_file).read_text(encoding="utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def _validator(kind: Kind) -> jsonschema.protocols.Validator:
    import jsonschema  # here, not at the top: most chapters read results without validating a file

    cls = jsonschema.validators.validator_for(schema(kind))
    cls.check_schema(schema(kind))
    return cls(schema(kind))


def checksum(doc: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``doc`` without its ``checksum``."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def complete(kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with the ``format`` of ``kind`` and its ``checksum`` filled in."""
    doc = {k: v for k, v in body.items() if k != "checksum"}
    doc["format"] = kind.format
    doc["checksum"] = checksum(doc)
    return doc


def _at(where: Sequence[Any]) -> str:
    return "/".join(str(part) for part in where) or "top level"


def validate(kind: Kind, doc: Any, where: str | os.PathLike | None = None) -> None:
    """Check ``doc`` (checksum, schema, rules); ConfigError naming ``where`` (default: the file name)."""
    where = kind.name if where is None else where
    if isinstance(doc, Mapping) and isinstance(doc.get("checksum"), str) and doc["checksum"] != checksum(doc):
        raise ConfigError(f"{where}: checksum mismatch (altered or damaged since it was written); "
                          f"{kind.rewrite} again")
    errors = sorted(_validator(kind).iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        message = " ".join(errors[0].message.split())
        message = message if len(message) <= 200 else message[:200] + "..."
        raise ConfigError(f"{where}: not a valid {kind.name} at {_at(errors[0].absolute_path)}: {message}")
    broken = kind.rules(doc)
    if broken:
        raise ConfigError(f"{where}: not a valid {kind.name} at {_at(broken[0])}: {broken[1]}")


def check_folder(out: str | os.PathLike) -> Path:
    """``out`` as an output folder (created if missing); ConfigError when it is a file or cannot be made."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out must be a folder, but {out} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"out: cannot create the output folder {out} ({exc.strerror})") from None
    return out


def write(kind: Kind, out: str | os.PathLike, doc: Mapping[str, Any]) -> Path:
    """Check ``doc`` (see :func:`complete`) and write it atomically to ``out/<name>``; returns its path."""
    path = check_folder(out) / kind.name
    validate(kind, doc, path)
    return cache.write_json(path, dict(doc))


def load(kind: Kind, path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a document of ``kind`` (a folder means its ``<name>``); ConfigError naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / kind.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {kind.name}; {kind.rewrite}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    validate(kind, doc, path)
    return doc
