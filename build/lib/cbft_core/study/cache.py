"""Checkpoint and results cache: content-keyed, atomic, checksummed.

An entry's key is the sha256 of the canonical JSON of its config plus the
version of the code that produced it (a hash of every ``.py`` file of the
kernel and study layers), so editing the computing code invalidates old entries.

Writes are atomic: the bytes go to a temporary file in the destination
folder (``.<name>.<random>.tmp``), are flushed and fsynced, then
``os.replace``-d onto the final name. Only complete entries ever carry their
final name, and loads never look at temporary files. A checkpoint file is

    MAGIC (10 bytes) | sha256 of payload (32 bytes) | payload length (8 bytes, LE) | payload

where the payload is ``torch.save({"state": ..., "meta": json-str})``; a
wrong magic, length or checksum raises :class:`CacheCorruptError`.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..errors import CacheCorruptError, ConfigError

__all__ = [
    "ENV_VAR",
    "cache_dir",
    "source_hash",
    "code_version",
    "config_key",
    "entry_path",
    "save_model",
    "load_model",
    "save_json",
    "load_json",
    "cached",
    "cached_json",
]

ENV_VAR = "CBFT_CACHE_DIR"
_MAGIC = b"CBFTCKPT1\n"
_HEADER = len(_MAGIC) + 32 + 8


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path``, else ``$CBFT_CACHE_DIR``, else ``~/.cache/cbft_core``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "cbft_core"


# The code that computes cached numbers: the kernel and study layers and the
# errors they share. The presentation layer (figures, tables, widgets, the
# command line, the Sphinx helpers) only draws and prints, so it is left out:
# editing it never invalidates a trained model.
COMPUTING_PARTS: tuple[str, ...] = ("errors.py", "kernels", "study")


def source_hash(root: str | os.PathLike, parts: tuple[str, ...] | None = None) -> str:
    """sha256 over the relative paths and bytes of every ``*.py`` file under ``root``.

    With ``parts`` (file or folder names relative to ``root``) only the files
    in those parts count.
    """
    root = Path(root)
    h = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        rel = file.relative_to(root)
        if parts is not None and rel.parts[0] not in parts:
            continue
        h.update(file.relative_to(root).as_posix().encode() + b"\0")
        h.update(file.read_bytes() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """:func:`source_hash` of the kernel and study layers of ``cbft_core`` (memoised per process)."""
    return source_hash(Path(__file__).resolve().parent.parent, COMPUTING_PARTS)


def _canonical(config: Any, name: str = "config") -> str:
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name} must be JSON-serialisable (str/int/float/bool/None, lists, dicts with str "
            f"keys; finite floats): {exc}"
        ) from None


def config_key(config: Mapping[str, Any], version: str | None = None) -> str:
    """sha256 hex of the canonical JSON of ``config`` and the code version.

    ``version`` defaults to :func:`code_version`. Note ``1`` and ``1.0`` are
    different values in JSON and give different keys.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a dict, got {type(config).__name__}")
    text = _canonical(dict(config))
    ver = code_version() if version is None else version
    return hashlib.sha256(f"{text}\n{ver}".encode()).hexdigest()


def entry_path(kind: str, config: Mapping[str, Any], suffix: str = ".pt",
               cache_dir_: str | os.PathLike | None = None) -> Path:
    """Where the entry of ``kind`` for ``config`` lives: ``<cache>/<kind>/<key><suffix>``."""
    if not isinstance(kind, str) or not kind or any(c in kind for c in "/\\") or kind.startswith("."):
        raise ConfigError(f"kind must be a non-empty name without slashes or leading dot, got {kind!r}")
    return cache_dir(cache_dir_) / kind / f"{config_key(config)}{suffix}"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable; not every platform lets us open a folder
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save_model(path: str | os.PathLike, state_dict: Mapping[str, Any],
               meta: Mapping[str, Any] | None = None) -> Path:
    """Atomically write ``state_dict`` (tensors, nested dicts/lists) and JSON ``meta`` to ``path``."""
    meta_text = _canonical(dict(meta or {}), "meta")
    buf = io.BytesIO()
    torch.save({"state": dict(state_dict), "meta": meta_text}, buf)
    payload = buf.getvalue()
    header = _MAGIC + hashlib.sha256(payload).digest() + len(payload).to_bytes(8, "little")
    path = Path(path)
    _atomic_write(path, header + payload)
    return path


def load_model(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``(state_dict, meta)`` written by :func:`save_model`, verifying its checksum.

    Raises FileNotFoundError when absent and :class:`CacheCorruptError` when
    the file is truncated, altered or not a checkpoint.
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < _HEADER or not raw.startswith(_MAGIC):
        raise CacheCorruptError(f"{path}: not a cbft_core checkpoint (bad header)")
    digest = raw[len(_MAGIC) : len(_MAGIC) + 32]
    size = int.from_bytes(raw[len(_MAGIC) + 32 : _HEADER], "little")
    payload = raw[_HEADER:]
    if len(payload) != size:
        raise CacheCorruptError(f"{path}: truncated or padded ({len(payload)} payload bytes, expected {size})")
    if hashlib.sha256(payload).digest() != digest:
        raise CacheCorruptError(f"{path}: checksum mismatch")
    try:
        obj = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        return obj["state"], json.loads(obj["meta"])
    except Exception as exc:  # checksum matched but content unreadable: still corrupt
        raise CacheCorruptError(f"{path}: unreadable payload ({exc})") from exc


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as (pretty, key-sorted) JSON to ``path``."""
    path = Path(path)
    try:
        text = json.dumps(obj, indent=1, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"obj must be JSON-serialisable: {exc}") from None
    _atomic_write(path, text.encode())
    return path


def load_json(path: str | os.PathLike) -> Any:
    """Read JSON written by :func:`save_json`; unparsable content → CacheCorruptError."""
    path = Path(path)
    text = path.read_bytes()
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CacheCorruptError(f"{path}: invalid JSON ({exc})") from exc


def _lookup(path: Path, loader: Callable[[Path], Any]) -> tuple[bool, Any]:
    try:
        return True, loader(path)
    except FileNotFoundError:
        return False, None
    except CacheCorruptError as exc:
        warnings.warn(f"discarding corrupt cache entry {path}: {exc}", RuntimeWarning, stacklevel=3)
        path.unlink(missing_ok=True)
        return False, None


def cached(
    kind: str,
    config: Mapping[str, Any],
    compute: Callable[[], Mapping[str, Any]],
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The tensors for ``(kind, config)``: loaded from the cache, else ``compute()``-d and saved.

    ``compute`` returns a dict of tensors (e.g. a model's ``state_dict()``). A
    corrupt entry is reported with a ``RuntimeWarning``, deleted and recomputed.
    The stored ``meta`` records kind, config, key and code version.
    """
    path = entry_path(kind, config, ".pt", cache_dir)
    hit, value = _lookup(path, load_model)
    if hit:
        return value[0]
    state = compute()
    if isinstance(state, torch.nn.Module):
        raise ConfigError("compute must return a dict of tensors, e.g. model.state_dict(), not a module")
    meta = {"kind": kind, "config": dict(config), "key": path.stem, "code_version": code_version()}
    save_model(path, state, meta)
    return dict(state)


def cached_json(
    kind: str,
    config: Mapping[str, Any],
    compute: Callable[[], Any],
    cache_dir: str | os.PathLike | None = None,
) -> Any:
    """Like :func:`cached` for JSON results (numbers, lists, dicts)."""
    path = entry_path(kind, config, ".json", cache_dir)
    hit, value = _lookup(path, load_json)
    if hit:
        return value
    result = compute()
    save_json(path, result)
    return result
