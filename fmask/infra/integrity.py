"""One verified artifact file: a torch payload file and its JSON sidecar carrying the payload's size and SHA-256.

Layout of an artifact written by :func:`write_artifact`::

    <name>.pt     torch file {"payload": ..., "params": ..., "metadata": ...}
    <name>.json   sidecar: {"format", "params", "metadata", "payload": {"file", "bytes", "sha256"}}

The sidecar is written *after* the payload (both with :func:`fmask.infra.atomic.atomic_write`), so a crash in
between leaves a payload without a matching sidecar, which :func:`read_artifact` refuses. :func:`read_artifact`
checks the sidecar, then the payload's size and SHA-256 through one open file descriptor, then loads it with
``torch.load(..., weights_only=True)`` (nothing is executed); any failure raises :class:`ArtifactCorruptError`.

Payloads must be loadable with ``weights_only=True``: tensors, numbers, strings, bytes, bools, None,
``torch.Size`` / ``dtype`` / ``device``, and dicts / lists / tuples / sets of those; :func:`check_weights_only`
names the first entry that is not.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import pickle
import platform
import re
import zipfile
from pathlib import Path
from typing import IO, Any

import torch

from fmask.infra.atomic import atomic_write, atomic_write_json, canonical_json

__all__ = ["FORMAT", "StoreError", "ArtifactCorruptError", "versions", "check_weights_only", "sha256_file",
           "sidecar_path", "write_artifact", "read_artifact"]

#: Sidecar format tag; a sidecar without it carries no integrity record and is not trusted.
FORMAT = "fmask-artifact/2"
_CHUNK = 1 << 20


class StoreError(OSError):
    """The artifact store cannot be used (not writable, unreadable, lock not obtained)."""


class ArtifactCorruptError(Exception):
    """An artifact file failed verification; ``.path`` is the payload file and ``.reason`` says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


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


# ------------------------------------------------------------------------------------------ verification
_SAFE_LEAVES = (str, bytes, int, float, complex, bool, type(None), torch.Size, torch.dtype, torch.device)
_SAFE_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set)


def check_weights_only(obj: Any, where: str = "payload") -> None:
    """Raise ``ValueError`` naming the first entry ``torch.load(weights_only=True)`` would refuse."""
    t = type(obj)
    if isinstance(obj, torch.Tensor) or t in _SAFE_LEAVES:
        return
    if t in (dict, collections.OrderedDict):
        for k, v in obj.items():
            check_weights_only(k, f"{where} key")
            check_weights_only(v, f"{where}[{k!r}]")
        return
    if t in _SAFE_CONTAINERS:
        for i, v in enumerate(obj):
            check_weights_only(v, f"{where}[{i}]")
        return
    raise ValueError(
        f"{where} is a {t.__module__}.{t.__qualname__}, which torch.load(weights_only=True) refuses; store "
        "tensors, numbers, strings, bools, None and dicts/lists/tuples of those (convert numpy with torch.as_tensor "
        "or .item())"
    )


def sha256_file(fh: IO[bytes]) -> str:
    """Hex SHA-256 of what is left to read in the binary file ``fh`` (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while True:
        n = fh.readinto(buf)
        if not n:
            return h.hexdigest()
        h.update(view[:n])


def sidecar_path(pt: Path) -> Path:
    """The sidecar of the payload file ``pt``: the same name with the suffix ``.json``."""
    return pt.with_suffix(".json")


def write_artifact(path: Path, params: dict, payload: dict, metadata: dict) -> Path:
    """Write the payload file ``path`` atomically, then its sidecar with the payload file's size and SHA-256.

    ``params`` and ``metadata`` must already be plain JSON types (:func:`fmask.infra.atomic.jsonable`) and
    ``payload`` must pass :func:`check_weights_only`. Not locked: :meth:`fmask.infra.store.ArtifactStore.save`
    calls it under the artifact's claim. Returns ``path``.
    """
    record: dict[str, Any] = {}

    def digest(tmp: Path) -> None:
        with open(tmp, "rb") as fh:
            record.update(file=path.name, bytes=os.fstat(fh.fileno()).st_size, sha256=sha256_file(fh))

    blob = {"payload": payload, "params": params, "metadata": metadata}
    atomic_write(path, lambda fh: torch.save(blob, fh), binary=True, before_replace=digest)
    atomic_write_json({"format": FORMAT, "params": params, "metadata": metadata, "payload": record},
                      sidecar_path(path))
    return path


def _raise_if_permission(path: Path, exc: OSError) -> None:
    if isinstance(exc, PermissionError):
        raise StoreError(
            f"cannot read artifact {path}: permission denied; fix the store's permissions or set FMASK_ARTIFACTS "
            "to a folder you can read and write"
        ) from exc


def _read_sidecar(pt: Path) -> dict:
    js = sidecar_path(pt)
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
    :class:`ArtifactCorruptError` (the file is left in place; :meth:`fmask.infra.store.ArtifactStore.load` moves it aside).
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
            got_sha = sha256_file(fh)
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
