"""Atomic files: a reader sees the old or the new file, never a partial one; plus the JSON form of parameters.

* :func:`atomic_write` writes to a temporary file in the target's folder (``.<name>.<pid>-<16 hex>.tmp``, mode
  ``0o666 & ~umask``), fsyncs it and ``os.replace``-s it onto the target; :func:`atomic_torch_save` and
  :func:`atomic_write_json` are its two common uses.
* :func:`clean_orphaned_tmp` removes the temporary files of killed writers (older than :data:`TMP_MAX_AGE`
  seconds and whose pid is not a live local process).
* :func:`jsonable` / :func:`canonical_json`: parameters as plain JSON (the artifact store hashes the canonical
  form into its keys, :meth:`fmask.infra.store.ArtifactStore.key`).
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from pathlib import Path
from typing import IO, Any, Callable, Mapping

import torch

__all__ = ["TMP_MAX_AGE", "jsonable", "canonical_json", "new_tmp_file", "atomic_write", "atomic_torch_save",
           "atomic_write_json", "clean_orphaned_tmp"]

#: Temporary files older than this (seconds) whose writer is not a live local process are orphans.
TMP_MAX_AGE = 3600.0
#: names :func:`new_tmp_file` creates (with the writer's pid), and 8-character ``mkstemp`` names
_TMP_RE = re.compile(r"^\..+\.(?:(?P<pid>\d+)-[0-9a-f]{16}|[A-Za-z0-9_]{8})\.tmp$")


# ------------------------------------------------------------------------------------------ JSON helpers
def jsonable(obj: Any) -> Any:
    """Return ``obj`` as plain JSON types (tuples → lists, Paths → str, numpy/tensor scalars → numbers).

    Raises ``ValueError`` for values that have no faithful JSON form (tensors with >1 element, objects, NaN keys).
    """
    if obj is None or type(obj) is bool:
        return obj
    if isinstance(obj, str):
        return str(obj)  # plain str (e.g. torch's TorchVersion is a str subclass that weights_only rejects)
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return str(obj)
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ValueError(f"parameter keys must be strings, got {k!r} ({type(k).__name__})")
            out[k] = jsonable(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return jsonable(obj.item())
    try:  # numpy scalars without importing numpy eagerly
        import numpy as np

        if isinstance(obj, np.generic):
            return jsonable(obj.item())
        if isinstance(obj, np.ndarray) and obj.size == 1:
            return jsonable(obj.item())
    except ImportError:  # pragma: no cover
        pass
    raise ValueError(f"value {obj!r} of type {type(obj).__name__} is not JSON-compatible")


def canonical_json(params: Mapping[str, Any]) -> str:
    """Canonical JSON of ``params``: sorted keys, no whitespace, tuples as lists."""
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict, got {type(params).__name__}")
    return json.dumps(jsonable(params), sort_keys=True, separators=(",", ":"), allow_nan=False)


# ------------------------------------------------------------------------------------------ atomic files
def new_tmp_file(path: Path) -> tuple[int, Path]:
    """Create ``.<name>.<pid>-<16 hex>.tmp`` next to ``path`` with mode ``0o666 & ~umask``; return (fd, path).

    ``tempfile.mkstemp`` would create mode 0600 (and ``os.replace`` keeps it), which makes a shared store
    unreadable to the group; ``os.open(..., 0o666)`` lets the kernel apply the umask (and default ACLs).
    """
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
        return fd, tmp


def _fsync_dir(folder: Path) -> None:
    """Best-effort fsync of a folder so a completed rename survives a power loss."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO], None],
    *,
    binary: bool,
    before_replace: Callable[[Path], None] | None = None,
) -> Path:
    """Call ``write(fh)`` on a temporary file in ``path``'s folder, fsync, then ``os.replace`` onto ``path``.

    Readers see either the old file or the complete new one, never a partial write; the temporary file is
    removed if anything fails. The file gets mode ``0o666 & ~umask`` (like ``open(path, "w")``).
    ``before_replace(tmp_path)`` runs on the complete, fsynced temporary file just before the rename (the
    store hashes it there).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_tmp_file(path)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace`` onto ``path``."""
    return atomic_write(path, lambda fh: torch.save(obj, fh), binary=True)


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (temporary file + ``os.replace``)."""
    text = json.dumps(jsonable(obj), indent=2, sort_keys=True)
    return atomic_write(path, lambda fh: fh.write(text + "\n"), binary=False)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: exists, owned by someone else
        return True
    return True


def clean_orphaned_tmp(folder: str | os.PathLike, max_age: float = TMP_MAX_AGE) -> list[Path]:
    """Remove temporary files of killed writers in ``folder``; return the removed paths.

    Only names written by :func:`atomic_write` (``.<name>.<pid>-<16 hex>.tmp``) and 8-character ``mkstemp`` names
    (``.<name>.<8 chars>.tmp``, no pid) are considered, and only if their mtime is older than ``max_age`` seconds
    *and* the pid in the name is not a live process on this host. A writer keeps its file's mtime fresh while
    it writes, so a file another process is still writing is never removed. Errors (races, permissions) are
    ignored.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TMP_RE.match(e.name)
        if not m:
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if now - st.st_mtime <= max_age:
                continue
            if m.group("pid") is not None and _pid_alive(int(m.group("pid"))):
                continue
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            continue
    return removed
