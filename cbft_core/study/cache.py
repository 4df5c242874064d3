"""Checkpoint and results cache: content-keyed, atomic, checksummed.

An entry is named by its key, a sha256 hex string that its caller makes
(:func:`config_key` of a canonical JSON document; the study's keys come from
:func:`cbft_core.study.graph.key`, which hashes the settings, inputs and code
of each step), and lives at ``<cache>/<kind>/<key><suffix>``.

Writes are atomic: the bytes go to a temporary file in the destination
folder (``.<name>.<random>.tmp``), are flushed and fsynced, then
``os.replace``-d onto the final name. Only complete entries ever carry their
final name, and loads never look at temporary files.

Every entry, whatever its kind, is one sealed file (:func:`seal`)::

    b"CBFT1 <format> <sha256 hex of payload> <payload length>\n" + payload

with ``format`` ``ckpt`` (payload: ``torch.save({"state": ..., "meta": json-str})``)
or ``json`` (payload: key-sorted, indented JSON, readable after the header
line). A wrong header, length or checksum raises :class:`CacheCorruptError`;
:func:`cached` and :func:`cached_json` report it in one line, discard the entry
and recompute it.

Concurrency: a miss is filled under an exclusive per-entry lock
(``fcntl.flock`` on ``.<name>.lock`` next to the entry), and the entry is
looked up again once the lock is held, so two processes filling one cache
compute each entry once. Where ``fcntl`` is missing the lock is skipped; the
atomic rename still leaves exactly one complete entry per key.

A cache folder that cannot be written (read-only, full, not a folder) raises
:class:`CacheUnwritableError` naming the folder and ``CBFT_CACHE_DIR``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from ..errors import CacheCorruptError, CacheUnwritableError, CbftError, ConfigError
from ..kernels.checks import check_choice

try:  # POSIX only; elsewhere concurrent fills may compute an entry twice (still one valid entry)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ENV_VAR",
    "cache_dir",
    "config_key",
    "entry_path",
    "save_model",
    "load_model",
    "save_json",
    "load_json",
    "write_text",
    "write_json",
    "seal",
    "unseal",
    "lookup",
    "cached",
    "cached_json",
]

ENV_VAR = "CBFT_CACHE_DIR"
_MAGIC = b"CBFT1"
_FORMATS = ("ckpt", "json")
_MAX_HEADER = 128  # far longer than any valid header line
_KEY = re.compile(r"[0-9a-f]{64}")


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path``, else ``$CBFT_CACHE_DIR``, else ``~/.cache/cbft_core``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "cbft_core"


def _canonical(config: Any, name: str = "config") -> str:
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name} must be JSON-serialisable (str/int/float/bool/None, lists, dicts with str "
            f"keys; finite floats): {exc}"
        ) from None


def config_key(config: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical (key-sorted, compact) JSON of ``config``.

    ``1`` and ``1.0`` are different values in JSON and give different keys.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a dict, got {type(config).__name__}")
    return hashlib.sha256(_canonical(dict(config)).encode()).hexdigest()


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ConfigError(f"key must be a sha256 hex string (64 characters 0-9a-f), got {key!r}")
    return key


def entry_path(kind: str, key: str, suffix: str = ".pt", cache_dir_: str | os.PathLike | None = None) -> Path:
    """Where the entry of ``kind`` named ``key`` lives: ``<cache>/<kind>/<key><suffix>``."""
    if not isinstance(kind, str) or not kind or any(c in kind for c in "/\\") or kind.startswith("."):
        raise ConfigError(f"kind must be a non-empty name without slashes or leading dot, got {kind!r}")
    return cache_dir(cache_dir_) / kind / f"{_check_key(key)}{suffix}"


def _unwritable(folder: Path, exc: OSError) -> CacheUnwritableError:
    why = exc.strerror or type(exc).__name__
    return CacheUnwritableError(
        f"cannot write to the cache folder {folder} ({why}); free space or make it writable, "
        f"or set {ENV_VAR} to a writable folder")


def _write_fully(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a full disk raises ``OSError(ENOSPC)``)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and ``os.replace``; OSError on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            _write_fully(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
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


def _write_entry(path: Path, data: bytes) -> None:
    try:
        _atomic_write(path, data)
    except OSError as exc:
        raise _unwritable(path.parent, exc) from None


def seal(fmt: str, payload: bytes) -> bytes:
    """``payload`` behind the one header line every cache entry carries (format, sha256, length)."""
    check_choice("fmt", fmt, _FORMATS)
    digest = hashlib.sha256(payload).hexdigest()
    return b"%s %s %s %d\n" % (_MAGIC, fmt.encode(), digest.encode(), len(payload)) + payload


def unseal(raw: bytes, fmt: str, where: str | os.PathLike = "entry") -> bytes:
    """The payload of a :func:`seal`-ed entry of format ``fmt``; CacheCorruptError if it is not intact."""
    end = raw.find(b"\n", 0, _MAX_HEADER)
    parts = raw[:end].split(b" ") if end >= 0 else []
    if len(parts) != 4 or parts[0] != _MAGIC or parts[1] != fmt.encode():
        raise CacheCorruptError(f"{where}: not a cbft_core {fmt} cache entry (bad header)")
    digest, size = parts[2], parts[3]
    if not size.isdigit() or len(digest) != 64:
        raise CacheCorruptError(f"{where}: not a cbft_core {fmt} cache entry (bad header)")
    payload = raw[end + 1:]
    if len(payload) != int(size):
        raise CacheCorruptError(
            f"{where}: truncated or padded ({len(payload)} payload bytes, expected {int(size)})")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CacheCorruptError(f"{where}: checksum mismatch")
    return payload


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise CacheCorruptError(f"{path}: a folder where a cache entry should be") from None
    except OSError as exc:
        raise CacheUnwritableError(
            f"cannot read the cache entry {path} ({exc.strerror}); fix its permissions "
            f"or set {ENV_VAR} to another folder") from None


def save_model(path: str | os.PathLike, state_dict: Mapping[str, Any],
               meta: Mapping[str, Any] | None = None) -> Path:
    """Atomically write ``state_dict`` (tensors, nested dicts/lists) and JSON ``meta`` to ``path``."""
    meta_text = _canonical(dict(meta or {}), "meta")
    buf = io.BytesIO()
    torch.save({"state": dict(state_dict), "meta": meta_text}, buf)
    path = Path(path)
    _write_entry(path, seal("ckpt", buf.getvalue()))
    return path


def load_model(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``(state_dict, meta)`` written by :func:`save_model`, verifying its checksum.

    Raises FileNotFoundError when absent and :class:`CacheCorruptError` when
    the file is truncated, altered or not a checkpoint.
    """
    path = Path(path)
    payload = unseal(_read(path), "ckpt", path)
    try:
        obj = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        return obj["state"], json.loads(obj["meta"])
    except Exception as exc:  # checksum matched but content unreadable: still corrupt
        raise CacheCorruptError(f"{path}: unreadable payload ({type(exc).__name__})") from exc


def _json_bytes(obj: Any) -> bytes:
    try:
        return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"obj must be JSON-serialisable: {exc}") from None


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as a sealed JSON cache entry (checksummed, key-sorted) to ``path``."""
    path = Path(path)
    _write_entry(path, seal("json", _json_bytes(obj)))
    return path


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON entry written by :func:`save_json`; a damaged entry → CacheCorruptError."""
    path = Path(path)
    payload = unseal(_read(path), "json", path)
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:  # checksum matched: written so by a bug
        raise CacheCorruptError(f"{path}: invalid JSON ({exc})") from exc


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to an output file (not a cache entry); failures → CbftError naming the folder."""
    path = Path(path)
    try:
        _atomic_write(path, text.encode())
    except OSError as exc:
        raise CbftError(f"cannot write {path.name} to {path.parent} ({exc.strerror or exc}); "
                        f"choose another output folder") from None
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as plain key-sorted JSON (an output file such as results.json, not a cache entry)."""
    return write_text(path, _json_bytes(obj).decode())


def _discard(path: Path, exc: CacheCorruptError) -> None:
    message = " ".join(str(exc).split())  # one line, whatever the exception said
    warnings.warn(f"discarding corrupt cache entry {message}; recomputing it",
                  RuntimeWarning, stacklevel=4)
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a read-only cache: the rewrite below reports it
        pass


def lookup(path: str | os.PathLike, loader: Callable[[Path], Any]) -> tuple[bool, Any]:
    """``(True, loader(path))`` for an intact entry; ``(False, None)`` when absent or corrupt.

    A corrupt entry is reported in one ``RuntimeWarning`` line and deleted.
    """
    path = Path(path)
    try:
        return True, loader(path)
    except FileNotFoundError:
        return False, None
    except CacheCorruptError as exc:
        _discard(path, exc)
        return False, None


@contextlib.contextmanager
def _entry_lock(path: Path) -> Iterator[None]:
    """Exclusive lock of the entry at ``path`` (across processes), held while it is computed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise _unwritable(path.parent, exc) from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _fill(path: Path, loader: Callable[[Path], Any], compute: Callable[[], Any],
          store: Callable[[Any], Any]) -> Any:
    """The entry at ``path``: loaded when intact, else computed and stored once (under its lock)."""
    hit, value = lookup(path, loader)
    if hit:
        return value
    with _entry_lock(path):
        hit, value = lookup(path, loader)  # filled by another process while we waited
        if hit:
            return value
        return store(compute())


def cached(
    kind: str,
    key: str,
    compute: Callable[[], Mapping[str, Any]],
    meta: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The tensors of entry ``key`` of ``kind``: loaded from the cache, else ``compute()``-d and saved.

    ``compute`` returns a dict of tensors (e.g. a model's ``state_dict()``,
    possibly nested with lists and numbers). A corrupt entry (or one whose
    stored key is not its name) is reported with a one-line
    ``RuntimeWarning``, deleted and recomputed. The stored meta records kind
    and key, plus ``meta`` (what the key was made from).
    """
    path = entry_path(kind, key, ".pt", cache_dir)

    def load(p: Path) -> dict[str, Any]:
        state, meta = load_model(p)
        if meta.get("key") != p.stem:
            raise CacheCorruptError(f"{p}: stored key {meta.get('key')!r} is not the entry's name")
        return state

    def store(state: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(state, torch.nn.Module):
            raise ConfigError("compute must return a dict of tensors, e.g. model.state_dict(), not a module")
        save_model(path, state, {**dict(meta or {}), "kind": kind, "key": path.stem})
        return dict(state)

    return _fill(path, load, compute, store)


def cached_json(
    kind: str,
    key: str,
    compute: Callable[[], Any],
    cache_dir: str | os.PathLike | None = None,
) -> Any:
    """Like :func:`cached` for JSON results (numbers, lists, dicts)."""
    path = entry_path(kind, key, ".json", cache_dir)

    def store(result: Any) -> Any:
        save_json(path, result)
        return json.loads(_json_bytes(result))  # exactly what a later hit returns (lists, not tuples)

    return _fill(path, load_json, compute, store)
