"""Parameter-keyed artifact store: atomic files that carry their parameters and metadata.

Every artifact (trained model, mask set, result table, data cache) is identified by a ``kind`` (a folder name)
and a ``params`` dict of JSON-compatible primitives. The file name is :meth:`ArtifactStore.key` of the
parameters (first 16 hex digits of the sha256 of their canonical JSON), so artifacts made with different
parameters never share a file, and :meth:`ArtifactStore.load` re-checks the stored parameters on read.

Layout under the root::

    <root>/<kind>/<key>.pt     torch file {"payload": ..., "params": ..., "metadata": ...}
    <root>/<kind>/<key>.json   sidecar with params + metadata (human readable; never needed for loading)

Payloads must be loadable with ``torch.load(..., weights_only=True)``: tensors, numbers, strings, bools, None,
and lists/tuples/dicts of those.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Mapping

import torch

__all__ = [
    "ArtifactStore",
    "canonical_json",
    "jsonable",
    "atomic_torch_save",
    "atomic_write_json",
    "versions",
    "default_root",
]


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


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool) -> Path:
    """Call ``write(fh)`` on a temporary file in ``path``'s folder, fsync, then ``os.replace`` onto ``path``.

    Readers see either the old file or the complete new one, never a partial write; the temporary file is
    removed if anything fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace`` onto ``path``."""
    return atomic_write(path, lambda fh: torch.save(obj, fh), binary=True)


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (temporary file + ``os.replace``)."""
    text = json.dumps(jsonable(obj), indent=2, sort_keys=True)
    return atomic_write(path, lambda fh: fh.write(text + "\n"), binary=False)


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


def default_root() -> Path:
    """Artifact root: ``$FMASK_ARTIFACTS`` if set, else ``./artifacts``."""
    env = os.environ.get("FMASK_ARTIFACTS")
    return Path(env) if env else Path("artifacts")


class ArtifactStore:
    """Parameter-keyed, atomic, metadata-carrying artifact files under ``root``.

    ``root``: explicit folder, else ``$FMASK_ARTIFACTS``, else ``./artifacts`` (created lazily on save).
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

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

    def exists(self, kind: str, params: Mapping[str, Any]) -> bool:
        """Whether a finished artifact exists for these parameters."""
        return self.path(kind, params).is_file()

    def save(
        self,
        kind: str,
        params: Mapping[str, Any],
        payload: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> Path:
        """Atomically write ``payload`` (dict of tensors/primitives) with its params and metadata.

        ``metadata`` gets ``versions`` and ``kind``/``key`` added when absent. Returns the ``.pt`` path.
        """
        if not isinstance(payload, Mapping):
            raise ValueError(f"payload must be a dict, got {type(payload).__name__}")
        params_j = jsonable(params)
        meta = dict(jsonable(dict(metadata or {})))
        meta.setdefault("versions", versions())
        meta.setdefault("kind", kind)
        meta.setdefault("key", self.key(params_j))
        path = self.path(kind, params_j)
        atomic_torch_save({"payload": dict(payload), "params": params_j, "metadata": meta}, path)
        atomic_write_json({"params": params_j, "metadata": meta}, path.with_suffix(".json"))
        return path

    def load(self, kind: str, params: Mapping[str, Any], map_location: Any = "cpu"):
        """Return ``(payload, metadata)`` for these parameters, or ``None`` if there is no such artifact.

        Raises ``ValueError`` if the file found under the key holds different parameters (never mixes them).
        """
        path = self.path(kind, params)
        if not path.is_file():
            return None
        blob = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(blob, dict) or "payload" not in blob or "params" not in blob:
            raise ValueError(f"{path} is not an fmask artifact (missing payload/params)")
        want = canonical_json(params)
        got = canonical_json(blob["params"])
        if want != got:
            raise ValueError(
                f"artifact {path} was written for different parameters:\n stored:    {got}\n requested: {want}"
            )
        return blob["payload"], blob.get("metadata", {})

    def delete(self, kind: str, params: Mapping[str, Any]) -> None:
        """Remove an artifact and its sidecar (no error when absent)."""
        p = self.path(kind, params)
        p.unlink(missing_ok=True)
        p.with_suffix(".json").unlink(missing_ok=True)
