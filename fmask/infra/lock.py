"""An exclusive, per-thread re-entrant file lock (``fcntl.flock``) with an optional timeout.

:meth:`fmask.infra.store.ArtifactStore.claim` holds one on ``<root>/<kind>/<key>.lock``. The kernel releases an
``flock`` when its holder dies, however it dies; within one process a thread may re-enter a lock it holds
(a save inside a claim), other threads and processes wait. The lock file holds the holder's pid, host and
start time (named in :class:`ClaimTimeout`) and is never deleted (deleting a lock file others wait on would
let two holders in). Without ``fcntl`` (Windows) nothing is locked and one ``RuntimeWarning`` says so.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator

from fmask.infra.integrity import StoreError

try:  # POSIX only; without it nothing can be locked (warned once)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ClaimTimeout", "exclusive_lock"]


class ClaimTimeout(StoreError, TimeoutError):
    """:meth:`fmask.infra.store.ArtifactStore.claim` did not get the lock within ``timeout`` seconds."""


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
def exclusive_lock(lock_path: Path, timeout: float | None, poll: float = 0.05) -> Iterator[None]:
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
