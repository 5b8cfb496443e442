"""Run-time chores shared by every stage: device resolution, seeding, progress bars.

* :func:`resolve_device` is the only place that turns ``"auto"`` / ``"cpu"`` / ``"cuda"`` into a device.
* :func:`seeded` is the only way fmask seeds torch's global generators for a block of work (forking them, so
  the caller's random state is left untouched).
* :func:`progress_bar` is the only way fmask opens a tqdm bar. Bars go to the terminal (stderr), honour
  ``TQDM_DISABLE`` (which ``fmask book`` sets inside executed notebooks, so no widget state ever reaches the
  book) and are off when the caller passes ``progress=False``. (Passing ``disable=None`` to tqdm would override
  ``TQDM_DISABLE`` and turn bars into notebook widgets.) When ``FMASK_PROGRESS_FILE``
  names a file (``fmask book`` sets it for the kernel it runs), bars are written there instead, as plain
  ASCII every :data:`PROGRESS_FILE_INTERVAL` seconds, and the runner copies them to its terminal: stage
  progress (training epochs, masks done / left) reaches the person running the book, never the page.
* :func:`thread_env` / :func:`pin_threads` fix torch's intra-op thread count. On CPU the thread count changes
  results: a smoke-profile training run with 1 and with 2 threads gives different weights (measured: max
  weight difference 0.07 after 2 epochs; ``tests/test_determinism.py``), because reductions are split into
  per-thread partial sums. ``fmask book`` therefore runs every kernel with :func:`book_threads` threads
  (``$FMASK_THREADS``, default :data:`DEFAULT_BOOK_THREADS`), never "all cores of this machine".
"""
from __future__ import annotations

import contextlib
import os
import random
from typing import Any, Iterator

import torch
from torch import nn

__all__ = ["resolve_device", "model_device", "seeded", "progress_bar", "progress_enabled", "PROGRESS_FILE_ENV",
           "PROGRESS_FILE_INTERVAL", "THREADS_ENV", "DEFAULT_BOOK_THREADS", "book_threads", "thread_env",
           "pin_threads", "apply_thread_env"]

#: environment variable naming a file that receives the progress bars (set by ``fmask book`` for its kernels)
PROGRESS_FILE_ENV = "FMASK_PROGRESS_FILE"
#: seconds between two updates of a bar written to that file
PROGRESS_FILE_INTERVAL = 10.0
_progress_files: dict[str, Any] = {}
#: environment variable with the torch thread count of book kernels (read by :func:`book_threads`)
THREADS_ENV = "FMASK_THREADS"
#: thread count of ``fmask book`` when ``$FMASK_THREADS`` is unset: the committed book's (2-core build machine)
DEFAULT_BOOK_THREADS = 2


def _check_threads(n: Any, what: str) -> int:
    try:
        k = int(n)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a positive integer; got {n!r}") from None
    if k < 1 or k != float(n):
        raise ValueError(f"{what} must be a positive integer; got {n!r}")
    return k


def book_threads(threads: int | None = None) -> int:
    """The torch thread count of a book run: ``threads`` if given, else ``$FMASK_THREADS``, else
    :data:`DEFAULT_BOOK_THREADS`. ``ValueError`` for anything but a positive integer."""
    if threads is not None:
        return _check_threads(threads, "threads")
    env = os.environ.get(THREADS_ENV, "").strip()
    return _check_threads(env, f"${THREADS_ENV}") if env else DEFAULT_BOOK_THREADS


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that make a fresh Python process (a papermill kernel) use ``threads`` intra-op
    threads: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` (read by torch when it starts; torch never starts more
    intra-op threads than the machine has cores) and ``$FMASK_THREADS`` (for :func:`apply_thread_env`)."""
    n = str(_check_threads(threads, "threads"))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, THREADS_ENV: n}


@contextlib.contextmanager
def pin_threads(threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block, the previous count restored on exit."""
    n = _check_threads(threads, "threads")
    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def apply_thread_env() -> int | None:
    """In a process started by ``fmask book``: ``torch.set_num_threads($FMASK_THREADS)`` (exact even above
    the core count, where ``OMP_NUM_THREADS`` is capped); returns the count, or ``None`` when unset."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if not env:
        return None
    n = _check_threads(env, f"${THREADS_ENV}")
    torch.set_num_threads(n)
    return n


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` / ``"auto"`` -> CUDA if available else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:K"`` as given.

    Raises ``ValueError`` for anything else and for ``cuda`` on a machine without CUDA.
    """
    if isinstance(device, torch.device):
        d = device
    elif device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        s = str(device)
        if s not in ("cpu", "cuda") and not s.startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:K'; got {device!r}")
        d = torch.device(s)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(d)!r} requested but CUDA is not available on this machine")
    return d


def model_device(model: nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); CPU for a module with neither."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


@contextlib.contextmanager
def seeded(seed: int, device: str | torch.device | None = None) -> Iterator[None]:
    """Seed torch (CPU and, for a CUDA ``device``, that device) and Python's ``random`` inside the block.

    The global generators are forked: the caller's random state is restored on exit.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    py_state = random.getstate()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(int(seed))
        random.seed(int(seed))
        try:
            yield
        finally:
            random.setstate(py_state)


def progress_enabled(progress: bool = True) -> bool:
    """Whether a bar would be shown: ``progress`` is true and ``TQDM_DISABLE`` is not set."""
    return bool(progress) and os.environ.get("TQDM_DISABLE", "").strip().lower() in ("", "0", "false", "no")


def _progress_file(path: str):
    """One line-buffered append handle per progress file (shared by all bars of the process)."""
    fh = _progress_files.get(path)
    if fh is None or fh.closed:
        fh = _progress_files[path] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    return fh


def progress_bar(iterable: Any = None, *, progress: bool = True, **kwargs: Any):
    """A terminal tqdm bar (``tqdm.std``, never a notebook widget), off when ``progress`` is false or
    ``TQDM_DISABLE`` is set; written to ``$FMASK_PROGRESS_FILE`` instead when that is set (and ``progress``
    is true). Keyword arguments go to tqdm (``desc``, ``total``, ``unit``, ``leave`` ...)."""
    from tqdm import tqdm  # the plain terminal bar: no ipywidgets state in executed notebooks

    path = os.environ.get(PROGRESS_FILE_ENV, "")
    if progress and path:
        kwargs.pop("dynamic_ncols", None)
        kwargs.update(file=_progress_file(path), mininterval=PROGRESS_FILE_INTERVAL, ascii=True, ncols=100,
                      position=0)
        return tqdm(iterable, disable=False, **kwargs)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=not progress_enabled(progress), **kwargs)
