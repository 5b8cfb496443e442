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

* **Atomic files** (:mod:`fmask.infra.atomic`). Each file is written to a temporary file in the same folder,
  fsynced and ``os.replace``-d onto its name, so a reader sees the old or the new file, never a partial one.
  Temporary files of killed writers older than an hour are removed when a store is opened and on every save
  into that folder.
* **Integrity** (:mod:`fmask.infra.integrity`). The sidecar is written *after* the payload and holds the payload
  file's size and SHA-256; :meth:`ArtifactStore.load` verifies both before unpickling (with
  ``weights_only=True``). A payload without a matching sidecar (a crash between the two writes; a missing,
  garbled or untagged sidecar), a truncated, empty or bit-flipped payload, a file ``torch.load`` cannot read or
  refuses, or a directory where the file should be, is moved aside to ``<name>.corrupt-<time>-<pid>``,
  reported once with an :class:`ArtifactCorruptWarning`, and read as *missing* (``None``), so callers recompute it.
* **Exclusive computation** (:mod:`fmask.infra.lock`). :meth:`ArtifactStore.claim` holds an ``fcntl.flock`` on
  ``<key>.lock`` (released by the kernel when the holder dies); :func:`fmask.experiment.stages.cached_stage`
  uses it so that concurrent runs on one store compute an artifact once and the others load it.

Payloads must be loadable with ``torch.load(..., weights_only=True)``; :meth:`ArtifactStore.save` rejects anything
else with a ``ValueError`` naming the offending entry (numpy values must be converted first).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

from fmask.infra.atomic import TMP_MAX_AGE, canonical_json, clean_orphaned_tmp, jsonable, new_tmp_file
from fmask.infra.integrity import (FORMAT, ArtifactCorruptError, StoreError, check_weights_only, read_artifact,
                                   sidecar_path, versions, write_artifact)
from fmask.infra.lock import ClaimTimeout, exclusive_lock

__all__ = ["ArtifactStore", "ArtifactCorruptWarning", "default_root", "source_checkout_root"]


class ArtifactCorruptWarning(UserWarning):
    """A damaged or unverifiable artifact was moved aside and is treated as missing (it will be recomputed)."""


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



def _stat_sig(*paths: Path) -> tuple:
    """(inode, size, mtime) of each path (None if absent): changes when a concurrent save replaces a file."""
    sig = []
    for p in paths:
        try:
            st = os.stat(p, follow_symlinks=False)
            sig.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            sig.append(None)
    return tuple(sig)


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
        """Remove orphaned temporary files (:func:`fmask.infra.atomic.clean_orphaned_tmp`) in one kind folder or
        in all of them."""
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
        """Raise :class:`fmask.infra.integrity.StoreError` (an ``OSError``) now if artifacts cannot be written;
        return the root.

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
                fd, tmp = new_tmp_file(folder / "write-probe")
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
            side = json.loads(sidecar_path(pt).read_text(encoding="utf-8"))
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
        check_weights_only(payload)
        params_j = jsonable(params)
        meta = dict(jsonable(dict(metadata or {})))
        meta.setdefault("versions", versions())
        meta.setdefault("kind", kind)
        meta.setdefault("key", self.key(params_j))
        path = self.path(kind, params_j)
        self.clean_orphans(kind)
        with self.claim(kind, params_j):
            write_artifact(path, params_j, payload, meta)
        return path

    def load(self, kind: str, params: Mapping[str, Any], map_location: Any = "cpu"):
        """Return ``(payload, metadata)`` for these parameters, or ``None`` if there is no usable artifact.

        The file is verified with :func:`fmask.infra.integrity.read_artifact`. A damaged or unverifiable one is
        moved aside (``<name>.corrupt-<UTC time>-<pid>``, sidecar likewise), one :class:`ArtifactCorruptWarning`
        names it, and ``None`` is returned so the caller recomputes. If the files change while being read
        (another process saving the same artifact), the read is retried; the move happens under the artifact's
        :meth:`claim` after a second check, and if another process holds that claim the file is left in place
        (still one warning, still ``None``). Raises ``ValueError`` if an intact file under the key holds
        different parameters (never mixes them).
        """
        pt = self.path(kind, params)
        js = sidecar_path(pt)
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
        left in place and reported as missing: that process is (re)writing it, and
        :func:`fmask.experiment.stages.cached_stage` waits for it.
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
        for f in (pt, sidecar_path(pt)):
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
        for f in (pt, sidecar_path(pt)):
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
        second waits, then finds and loads the artifact (:func:`fmask.experiment.stages.cached_stage` does
        exactly that). ``fcntl.flock`` (:func:`fmask.infra.lock.exclusive_lock`): released by the kernel when the
        holder dies, however it dies; re-entrant within one thread (``save`` inside ``claim`` is fine); threads
        and processes exclude each other. ``timeout`` (seconds; ``None`` waits forever) raises
        :class:`fmask.infra.lock.ClaimTimeout` naming the holder's pid and host.
        Not guaranteed: network file systems without ``flock`` support; a process forked while holding a
        claim shares it until the child exits.
        """
        return exclusive_lock(self.path(kind, params, ".lock"), timeout)
