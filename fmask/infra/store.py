"""Parameter-keyed artifact store: atomic, integrity-checked files that carry their parameters and metadata.

Every artifact (trained model, training state, mask set, result table, data cache) is identified by a ``kind``
(a folder name) and a ``params`` dict of JSON-compatible primitives. The file name is :meth:`ArtifactStore.key`
of the parameters (first 16 hex digits of the sha256 of their canonical JSON), so artifacts made with different
parameters never share a file, and :meth:`ArtifactStore.load` re-checks the stored parameters on read.

Layout under the root::

    <root>/<kind>/<key>.pt     torch file {"payload": ..., "params": ..., "metadata": ...}
    <root>/<kind>/<key>.json   sidecar: {"format", "params", "metadata", "payload": {"file", "bytes", "sha256"}}
    <root>/<kind>/<key>.lock   lock file of :meth:`ArtifactStore.claim` (empty but for the holder's pid/host)
    <root>/<kind>/<key>.pt.corrupt-<UTC time>-<pid>   damaged file moved aside (kept for inspection)

Guarantees (see ``docs/guarantees.md`` and ``tests/test_reliability_store.py``):

* **Atomic files.** Each file is written to a temporary file in the same folder (created with mode
  ``0o666 & ~umask``), fsynced and ``os.replace``-d onto its name, so a reader sees the old or the new file,
  never a partial one. Temporary files of killed writers (``.<name>.<pid>-<hex>.tmp``) older than an hour are
  removed when a store is opened and on every save into that folder.
* **Integrity.** The sidecar is written *after* the payload and holds the payload file's size and SHA-256.
  :meth:`ArtifactStore.load` verifies both before unpickling (with ``weights_only=True``). A payload without a
  matching sidecar (a crash between the two writes, a missing, garbled or pre-integrity sidecar), a truncated,
  empty or bit-flipped payload, a file ``torch.load`` cannot read or refuses, or a directory where the file
  should be, is moved aside to ``<name>.corrupt-<time>-<pid>``, reported once with an
  :class:`ArtifactCorruptWarning`, and read as *missing* (``None``), so callers recompute it.
* **Exclusive computation.** :meth:`ArtifactStore.claim` holds an ``fcntl.flock`` on ``<key>.lock`` (released by
  the kernel when the holder dies); :meth:`ArtifactStore.get_or_compute` uses it so that concurrent runs on one
  store compute an artifact once and the others load it.

Payloads must be loadable with ``torch.load(..., weights_only=True)``: tensors, numbers, strings, bytes, bools,
None, ``torch.Size`` / ``dtype`` / ``device``, and dicts / lists / tuples / sets of those; :meth:`save` rejects
anything else with a ``ValueError`` naming the offending entry (numpy values must be converted first).
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import os
import pickle
import platform
import re
import secrets
import socket
import threading
import time
import warnings
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping

import torch

try:  # POSIX only; without it claim() cannot lock (documented, warned once)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ArtifactStore",
    "ArtifactCorruptError",
    "ArtifactCorruptWarning",
    "ClaimTimeout",
    "StoreError",
    "canonical_json",
    "jsonable",
    "atomic_write",
    "atomic_torch_save",
    "atomic_write_json",
    "read_artifact",
    "versions",
    "default_root",
    "source_checkout_root",
]

#: Sidecar format tag; sidecars without it (older fmask) carry no integrity hash and are not trusted.
FORMAT = "fmask-artifact/2"
#: Temporary files older than this (seconds) whose writer is not a live local process are orphans.
TMP_MAX_AGE = 3600.0
_TMP_RE = re.compile(r"^\..+\.(?:(?P<pid>\d+)-[0-9a-f]{16}|[A-Za-z0-9_]{8})\.tmp$")  # ours, and old mkstemp names
_CHUNK = 1 << 20


class StoreError(OSError):
    """The artifact store cannot be used (not writable, unreadable, lock not obtained)."""


class ClaimTimeout(StoreError, TimeoutError):
    """:meth:`ArtifactStore.claim` did not get the lock within ``timeout`` seconds."""


class ArtifactCorruptError(Exception):
    """An artifact file failed verification; ``.path`` is the payload file and ``.reason`` says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class ArtifactCorruptWarning(UserWarning):
    """A damaged or unverifiable artifact was moved aside and is treated as missing (it will be recomputed)."""


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
def _new_tmp(path: Path) -> tuple[int, Path]:
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
    fd, tmp = _new_tmp(path)
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

    Only names written by :func:`atomic_write` (``.<name>.<pid>-<16 hex>.tmp``, and the ``mkstemp`` names of
    older fmask versions) are considered, and only if their mtime is older than ``max_age`` seconds *and* the
    pid in the name is not a live process on this host. A writer keeps its file's mtime fresh while it writes,
    so a file another process is still writing is never removed. Errors (races, permissions) are ignored.
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


# ------------------------------------------------------------------------------------------ provenance
def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape numerical results (for artifact metadata)."""
    out = {"python": platform.python_version(), "torch": str(torch.__version__)}
    for name in ("torchvision", "torchattacks", "numpy", "PIL"):
        try:
            mod = __import__(name)
            out[name] = str(getattr(mod, "__version__", "unknown"))
        except Exception:  # pragma: no cover - optional
            out[name] = "missing"
    try:
        from fmask import __version__ as fv

        out["fmask"] = fv
    except Exception:  # pragma: no cover
        pass
    return out


# ------------------------------------------------------------------------------------------ default root
def source_checkout_root(package_dir: str | os.PathLike | None = None) -> Path | None:
    """The repository folder when fmask runs from a source checkout (editable install), else ``None``.

    ``package_dir`` (default: this ``fmask`` package's folder) counts as a checkout when its parent holds a
    ``pyproject.toml`` declaring ``name = "fmask"``; an installed wheel in ``site-packages`` does not.
    """
    pkg = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parents[1]
    repo = pkg.resolve().parent
    try:
        text = (repo / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return repo if re.search(r'(?m)^\s*name\s*=\s*["\']fmask["\']\s*$', text) else None


def default_root() -> Path:
    """The one default artifact folder, an absolute path independent of the working directory.

    ``$FMASK_ARTIFACTS`` (made absolute) if set and non-empty; else ``<repo>/artifacts`` when fmask runs from a
    source checkout (:func:`source_checkout_root`); else ``$XDG_CACHE_HOME/fmask/artifacts`` (default
    ``~/.cache/fmask/artifacts``). ``fmask train``, ``fmask book`` and the notebooks therefore share one store
    wherever they are started from.
    """
    env = os.environ.get("FMASK_ARTIFACTS")
    if env:
        return Path(env).expanduser().absolute()
    repo = source_checkout_root()
    if repo is not None:
        return repo / "artifacts"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache).expanduser().absolute() / "fmask" / "artifacts"


# ------------------------------------------------------------------------------------------ verification
_SAFE_LEAVES = (str, bytes, int, float, complex, bool, type(None), torch.Size, torch.dtype, torch.device)
_SAFE_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set)


def _check_weights_only(obj: Any, where: str = "payload") -> None:
    """Raise ``ValueError`` naming the first entry ``torch.load(weights_only=True)`` would refuse."""
    t = type(obj)
    if isinstance(obj, torch.Tensor) or t in _SAFE_LEAVES:
        return
    if t in (dict, collections.OrderedDict):
        for k, v in obj.items():
            _check_weights_only(k, f"{where} key")
            _check_weights_only(v, f"{where}[{k!r}]")
        return
    if t in _SAFE_CONTAINERS:
        for i, v in enumerate(obj):
            _check_weights_only(v, f"{where}[{i}]")
        return
    raise ValueError(
        f"{where} is a {t.__module__}.{t.__qualname__}, which torch.load(weights_only=True) refuses; store "
        "tensors, numbers, strings, bools, None and dicts/lists/tuples of those (convert numpy with torch.as_tensor "
        "or .item())"
    )


def _sha256_file(fh: IO[bytes]) -> str:
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while True:
        n = fh.readinto(buf)
        if not n:
            return h.hexdigest()
        h.update(view[:n])


def _sidecar_path(pt: Path) -> Path:
    return pt.with_suffix(".json")


def _raise_if_permission(path: Path, exc: OSError) -> None:
    if isinstance(exc, PermissionError):
        raise StoreError(
            f"cannot read artifact {path}: permission denied; fix the store's permissions or set FMASK_ARTIFACTS "
            "to a folder you can read and write"
        ) from exc


def _read_sidecar(pt: Path) -> dict:
    js = _sidecar_path(pt)
    try:
        text = js.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactCorruptError(pt, f"its metadata file {js.name} is missing (interrupted write?)") from None
    except OSError as e:
        _raise_if_permission(js, e)
        raise ArtifactCorruptError(pt, f"its metadata file {js.name} is unreadable ({e.__class__.__name__}: {e})") from e
    except UnicodeDecodeError as e:
        raise ArtifactCorruptError(pt, f"its metadata file {js.name} is not text ({e})") from e
    try:
        side = json.loads(text)
    except ValueError as e:
        raise ArtifactCorruptError(pt, f"its metadata file {js.name} is not valid JSON ({e})") from e
    info = side.get("payload") if isinstance(side, dict) else None
    if (
        not isinstance(side, dict)
        or side.get("format") != FORMAT
        or not isinstance(info, dict)
        or not isinstance(info.get("bytes"), int)
        or not re.fullmatch(r"[0-9a-f]{64}", str(info.get("sha256", "")))
        or not isinstance(side.get("params"), dict)
    ):
        raise ArtifactCorruptError(
            pt, f"its metadata file {js.name} carries no valid integrity record (damaged, or written by an older fmask)"
        )
    return side


_LOAD_ERRORS = (
    EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, KeyError, TypeError,
    AttributeError, IndexError, UnicodeDecodeError, ImportError, OSError,
)


def _is_cpu(map_location: Any) -> bool:
    return map_location is None or (isinstance(map_location, (str, torch.device)) and torch.device(map_location).type == "cpu")


def read_artifact(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[Any, dict, dict]:
    """Verify and load one artifact file; return ``(payload, params, metadata)``.

    Checks, in order: the sidecar ``<key>.json`` exists, parses and carries an integrity record; the payload
    file's size and SHA-256 match it (read through one open file descriptor, so a concurrent ``os.replace``
    cannot mix two versions); ``torch.load(..., weights_only=True)`` accepts the bytes (nothing is executed);
    the content is an fmask artifact whose params equal the sidecar's. Any failure raises
    :class:`ArtifactCorruptError` (the file is left in place; :meth:`ArtifactStore.load` moves it aside).
    ``PermissionError`` becomes :class:`StoreError`, and a ``map_location`` this machine cannot honour (e.g.
    CUDA without a GPU) re-raises torch's error, because the file itself is fine.
    """
    pt = Path(path)
    side = _read_sidecar(pt)
    want_bytes, want_sha = side["payload"]["bytes"], side["payload"]["sha256"]
    try:
        fh = open(pt, "rb")
    except IsADirectoryError:
        raise ArtifactCorruptError(pt, "a directory stands where the artifact file should be") from None
    except OSError as e:
        _raise_if_permission(pt, e)
        raise ArtifactCorruptError(pt, f"unreadable ({e.__class__.__name__}: {e})") from e
    with fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size != want_bytes:
                what = "empty (zero bytes)" if size == 0 else f"{size} bytes long"
                raise ArtifactCorruptError(pt, f"{what}, its metadata records {want_bytes} bytes (truncated or overwritten)")
            got_sha = _sha256_file(fh)
        except OSError as e:
            raise ArtifactCorruptError(pt, f"unreadable ({e.__class__.__name__}: {e})") from e
        if got_sha != want_sha:
            raise ArtifactCorruptError(pt, f"SHA-256 {got_sha[:12]}… differs from the recorded {want_sha[:12]}… (bytes changed on disk)")
        fh.seek(0)
        try:
            blob = torch.load(fh, map_location=map_location, weights_only=True)
        except MemoryError:
            raise
        except _LOAD_ERRORS as e:
            if isinstance(e, RuntimeError) and re.search(r"(?i)out of memory|not enough memory|failed to allocate", str(e)):
                raise  # the bytes verified: the machine is short of memory, the file is fine
            if not _is_cpu(map_location):  # tell "the machine cannot place it" from "the file is bad"
                fh.seek(0)
                try:
                    torch.load(fh, map_location="cpu", weights_only=True)
                except _LOAD_ERRORS:
                    pass
                else:
                    raise
            if isinstance(e, pickle.UnpicklingError):
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise ArtifactCorruptError(
                    pt, f"refused by torch.load(weights_only=True) (not executed): {first[:200]}") from e
            raise ArtifactCorruptError(pt, f"torch.load failed ({e.__class__.__name__}: {str(e)[:200]})") from e
    if not isinstance(blob, dict) or "payload" not in blob or not isinstance(blob.get("params"), dict):
        raise ArtifactCorruptError(pt, "not an fmask artifact (no payload/params)")
    if canonical_json(blob["params"]) != canonical_json(side["params"]):
        raise ArtifactCorruptError(pt, "payload and metadata file disagree on the parameters")
    meta = blob.get("metadata", {})
    return blob["payload"], blob["params"], meta if isinstance(meta, dict) else {}


def _stat_sig(*paths: Path) -> tuple:
    sig = []
    for p in paths:
        try:
            st = os.stat(p, follow_symlinks=False)
            sig.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            sig.append(None)
    return tuple(sig)


# ------------------------------------------------------------------------------------------ locking
_HELD: dict[str, list] = {}  # lock path -> [owner thread id, depth]; per process
_HELD_GUARD = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child holds no claims of its own (its inherited lock fds are the parent's)."""
    global _HELD_GUARD
    _HELD.clear()
    _HELD_GUARD = threading.Lock()  # another parent thread may have held it at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
_NO_FCNTL_WARNED = False


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
    except OSError:  # pragma: no cover
        return "unknown"


@contextlib.contextmanager
def _flock(lock_path: Path, timeout: float | None, poll: float = 0.05) -> Iterator[None]:
    """Exclusive, per-thread re-entrant ``flock`` on ``lock_path`` (created ``0o666 & ~umask``, never deleted)."""
    global _NO_FCNTL_WARNED
    key = str(lock_path)
    me = threading.get_ident()
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None and held[0] == me:
            held[1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD[key][1] -= 1
        return
    if fcntl is None:  # pragma: no cover - Windows
        if not _NO_FCNTL_WARNED:
            warnings.warn("fcntl is unavailable: ArtifactStore.claim cannot lock on this platform", RuntimeWarning)
            _NO_FCNTL_WARNED = True
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        if deadline is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            wait = poll
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ClaimTimeout(
                            f"could not claim {lock_path} within {timeout} s: held by {_holder(fd)}; another run is "
                            "computing this artifact (wait longer; the lock is released automatically when that "
                            "process ends)"
                        ) from None
                    time.sleep(min(wait, left))
                    wait = min(wait * 2, 1.0)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode(), 0)
        except OSError:  # pragma: no cover - diagnostics only
            pass
        with _HELD_GUARD:
            _HELD[key] = [me, 1]
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD.pop(key, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ the store
class ArtifactStore:
    """Parameter-keyed, atomic, integrity-checked, metadata-carrying artifact files under ``root``.

    ``root``: explicit folder (made absolute, so a later ``chdir`` does not move the store), else
    :func:`default_root` (``$FMASK_ARTIFACTS``, else ``<repo>/artifacts`` in a source checkout, else
    ``~/.cache/fmask/artifacts``). Folders are created lazily on save. Opening a store removes orphaned
    temporary files older than ``tmp_max_age`` seconds (``None``: never) in its kind folders.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, tmp_max_age: float | None = TMP_MAX_AGE) -> None:
        self.root = Path(root).expanduser().absolute() if root is not None else default_root()
        self.tmp_max_age = tmp_max_age
        self.clean_orphans()

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    # ---------------------------------------------------------------------------------------- naming
    @staticmethod
    def key(params: Mapping[str, Any]) -> str:
        """First 16 hex digits of sha256(canonical JSON of ``params``)."""
        return hashlib.sha256(canonical_json(params).encode("utf-8")).hexdigest()[:16]

    @staticmethod
    def _check_kind(kind: str) -> None:
        if not isinstance(kind, str) or not kind or "/" in kind or "\\" in kind or kind.startswith("."):
            raise ValueError(f"artifact kind must be a plain folder name, got {kind!r}")

    def path(self, kind: str, params: Mapping[str, Any], suffix: str = ".pt") -> Path:
        """Where the artifact of ``kind`` with ``params`` lives (``<root>/<kind>/<key><suffix>``)."""
        self._check_kind(kind)
        return self.root / kind / f"{self.key(params)}{suffix}"

    # ---------------------------------------------------------------------------------------- housekeeping
    def clean_orphans(self, kind: str | None = None) -> list[Path]:
        """Remove orphaned temporary files (see :func:`clean_orphaned_tmp`) in one kind folder or all of them."""
        if self.tmp_max_age is None:
            return []
        if kind is not None:
            self._check_kind(kind)
            return clean_orphaned_tmp(self.root / kind, self.tmp_max_age)
        removed: list[Path] = []
        try:
            folders = [e.path for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)]
        except OSError:
            return removed
        for f in folders:
            removed += clean_orphaned_tmp(f, self.tmp_max_age)
        return removed

    def check_writable(self, *kinds: str) -> Path:
        """Raise :class:`StoreError` (an ``OSError``) now if artifacts cannot be written; return the root.

        Creates ``root`` (and ``root/<kind>`` for each of ``kinds``) if needed, checks ``os.access(W_OK|X_OK)``
        and writes and removes a probe file in each (``os.access`` alone says yes to root on a read-only
        mode folder). Call it before spending time on a computation whose result must be stored.
        """
        for k in kinds:
            self._check_kind(k)
        for folder in [self.root, *(self.root / k for k in kinds)]:
            hint = (f"artifact store folder {folder} is not writable ({{}}); set FMASK_ARTIFACTS (or pass "
                    "--artifacts) to a writable folder")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(hint.format(f"cannot create it: {e.strerror or e}")) from e
            if not os.access(folder, os.W_OK | os.X_OK):
                raise StoreError(hint.format("no write permission"))
            try:
                fd, tmp = _new_tmp(folder / "write-probe")
                try:
                    os.write(fd, b"fmask")
                finally:
                    os.close(fd)
                    tmp.unlink(missing_ok=True)
            except OSError as e:
                raise StoreError(hint.format(f"a test write failed: {e.strerror or e}")) from e
        return self.root

    # ---------------------------------------------------------------------------------------- read / write
    def exists(self, kind: str, params: Mapping[str, Any]) -> bool:
        """Whether a finished artifact is present: payload file plus a sidecar whose recorded size matches.

        A cheap check (no hashing); :meth:`load` is the authority and may still find the bytes damaged.
        """
        pt = self.path(kind, params)
        try:
            if not pt.is_file():
                return False
            side = json.loads(_sidecar_path(pt).read_text(encoding="utf-8"))
            return side.get("format") == FORMAT and side["payload"]["bytes"] == pt.stat().st_size
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False

    def save(
        self,
        kind: str,
        params: Mapping[str, Any],
        payload: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> Path:
        """Atomically write ``payload`` (dict of tensors/primitives) with its params, metadata and checksum.

        ``metadata`` gets ``versions`` and ``kind``/``key`` added when absent. The payload file is written
        first, then the sidecar with its size and SHA-256 (a crash in between leaves a payload that
        :meth:`load` reads as missing). Holds the artifact's :meth:`claim` lock while writing, so two savers
        never interleave payload and sidecar (re-entrant: fine inside ``claim``; waits while another process
        holds the claim). Raises ``ValueError`` for payload entries ``weights_only`` loading would refuse.
        Returns the ``.pt`` path.
        """
        if not isinstance(payload, Mapping):
            raise ValueError(f"payload must be a dict, got {type(payload).__name__}")
        payload = dict(payload)
        _check_weights_only(payload)
        params_j = jsonable(params)
        meta = dict(jsonable(dict(metadata or {})))
        meta.setdefault("versions", versions())
        meta.setdefault("kind", kind)
        meta.setdefault("key", self.key(params_j))
        path = self.path(kind, params_j)
        self.clean_orphans(kind)
        record: dict[str, Any] = {}

        def digest(tmp: Path) -> None:
            with open(tmp, "rb") as fh:
                record.update(file=path.name, bytes=os.fstat(fh.fileno()).st_size, sha256=_sha256_file(fh))

        blob = {"payload": payload, "params": params_j, "metadata": meta}
        with self.claim(kind, params_j):
            atomic_write(path, lambda fh: torch.save(blob, fh), binary=True, before_replace=digest)
            atomic_write_json({"format": FORMAT, "params": params_j, "metadata": meta, "payload": record},
                              _sidecar_path(path))
        return path

    def load(self, kind: str, params: Mapping[str, Any], map_location: Any = "cpu"):
        """Return ``(payload, metadata)`` for these parameters, or ``None`` if there is no usable artifact.

        The file is verified with :func:`read_artifact`. A damaged or unverifiable one is moved aside
        (``<name>.corrupt-<UTC time>-<pid>``, sidecar likewise), one :class:`ArtifactCorruptWarning` names it,
        and ``None`` is returned so the caller recomputes. If the files change while being read (another
        process saving the same artifact), the read is retried; the move happens under the artifact's
        :meth:`claim` after a second check, and if another process holds that claim the file is left in place
        (still one warning, still ``None``). Raises ``ValueError`` if an intact
        file under the key holds different parameters (never mixes them).
        """
        pt = self.path(kind, params)
        js = _sidecar_path(pt)
        for attempt in range(3):
            if not os.path.lexists(pt):
                return None
            before = _stat_sig(pt, js)
            try:
                payload, got_params, meta = read_artifact(pt, map_location)
                break
            except ArtifactCorruptError as e:
                if attempt < 2 and _stat_sig(pt, js) != before:
                    continue  # replaced under us by a concurrent save: read the new version
                found = self._quarantine_locked(kind, params, pt, e, map_location)
                if found is None:
                    return None
                payload, got_params, meta = found
                break
        else:  # pragma: no cover - the loop returns or breaks
            return None
        want, got = canonical_json(params), canonical_json(got_params)
        if want != got:
            raise ValueError(
                f"artifact {pt} was written for different parameters:\n stored:    {got}\n requested: {want}"
            )
        return payload, meta

    def _quarantine_locked(self, kind: str, params: Mapping[str, Any], pt: Path, err: ArtifactCorruptError,
                           map_location: Any):
        """Re-verify under the artifact's claim, then move it aside; ``None`` or the (now good) artifact.

        Taking the lock without waiting keeps a reader from moving aside a file that a concurrent
        :meth:`save` (which holds the lock) is installing. If another process holds the claim, the file is
        left in place and reported as missing: that process is (re)writing it, and :meth:`get_or_compute`
        waits for it.
        """
        try:
            with self.claim(kind, params, timeout=0):
                try:
                    return read_artifact(pt, map_location)
                except ArtifactCorruptError as again:
                    self._quarantine(pt, again.reason)
                    return None
        except ClaimTimeout:
            warnings.warn(
                ArtifactCorruptWarning(
                    f"fmask artifact {pt} does not verify ({err.reason}) while another process holds its lock "
                    f"{pt.with_suffix('.lock').name} (it is probably writing it); left in place and treated as "
                    "missing: it will be recomputed or loaded once that process is done."
                ),
                stacklevel=3,
            )
            return None
        except OSError:  # no lock file possible (read-only store): move aside without the lock
            self._quarantine(pt, err.reason)
            return None

    def _quarantine(self, pt: Path, reason: str) -> list[Path]:
        """Move ``pt`` and its sidecar aside to ``<name>.corrupt-<stamp>`` and warn once; return new paths."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"
        moved, failed = [], []
        for f in (pt, _sidecar_path(pt)):
            if not os.path.lexists(f):
                continue
            dest = f.with_name(f"{f.name}.corrupt-{stamp}")
            n = 1
            while os.path.lexists(dest):
                dest = f.with_name(f"{f.name}.corrupt-{stamp}-{n}")
                n += 1
            try:
                os.rename(f, dest)
                moved.append(dest)
            except FileNotFoundError:  # another process moved it aside first
                continue
            except OSError as e:
                failed.append(f"{f.name} ({e.strerror or e})")
        where = (f"moved aside to {', '.join(str(m) for m in moved)} (kept for inspection)" if moved
                 else "already moved aside by another process" if not failed else "left in place")
        if failed:
            where += f"; could not move {', '.join(failed)}"
        warnings.warn(
            ArtifactCorruptWarning(
                f"fmask artifact {pt} is damaged or unverifiable: {reason}; {where}. It is treated as missing and "
                "will be recomputed."
            ),
            stacklevel=4,
        )
        return moved

    def delete(self, kind: str, params: Mapping[str, Any]) -> bool:
        """Remove an artifact (payload first, then sidecar; no error when absent); return whether it existed.

        The order matters for crashes: a sidecar without payload reads as missing. The lock file is kept
        (deleting a lock file others may wait on would let two holders in).
        """
        pt = self.path(kind, params)
        existed = False
        for f in (pt, _sidecar_path(pt)):
            try:
                f.unlink()
                existed = True
            except FileNotFoundError:
                pass
        return existed

    # ---------------------------------------------------------------------------------------- concurrency
    def claim(self, kind: str, params: Mapping[str, Any], timeout: float | None = None) -> contextlib.AbstractContextManager:
        """Context manager holding an exclusive lock on this artifact (``<root>/<kind>/<key>.lock``).

        Use it around "load, else compute and save" so two runs on one store do not both compute it; the
        second waits, then finds and loads the artifact (:meth:`get_or_compute` does exactly that).
        ``fcntl.flock``: released by the kernel when the holder dies, however it dies; re-entrant within one
        thread (``save`` inside ``claim`` is fine); threads and processes exclude each other. ``timeout``
        (seconds; ``None`` waits forever) raises :class:`ClaimTimeout` naming the holder's pid and host.
        Not guaranteed: network file systems without ``flock`` support; a process forked while holding a
        claim shares it until the child exits.
        """
        return _flock(self.path(kind, params, ".lock"), timeout)

    def get_or_compute(
        self,
        kind: str,
        params: Mapping[str, Any],
        compute: Callable[[], Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        map_location: Any = "cpu",
    ) -> tuple[Any, dict]:
        """``load`` the artifact, or compute and ``save`` it under :meth:`claim`; return ``(payload, metadata)``.

        ``compute()`` returns the payload dict, or a ``(payload, metadata)`` tuple (merged over ``metadata``).
        Checked once without the lock (fast path) and again after acquiring it, so concurrent callers compute
        once. The returned metadata is the stored one (``versions``, ``kind``, ``key`` added).
        """
        found = self.load(kind, params, map_location)
        if found is not None:
            return found
        with self.claim(kind, params, timeout=timeout):
            found = self.load(kind, params, map_location)
            if found is not None:
                return found
            out = compute()
            meta = dict(metadata or {})
            if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Mapping):
                out, extra = out
                meta.update(dict(extra or {}))
            self.save(kind, params, out, meta)
            found = self.load(kind, params, map_location)
        if found is None:  # pragma: no cover - only if the file is damaged between save and load
            raise StoreError(f"artifact {self.path(kind, params)} could not be read back right after saving it")
        return found
