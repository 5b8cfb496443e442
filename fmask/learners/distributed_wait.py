"""Ranks waiting for each other: a heartbeat from rank 0 and a deadline scaled to the work.

A rank that has learned its share of the masks sets the key ``done/<rank>`` in a key-value store (a client of
the process group's TCP store at ``MASTER_ADDR:MASTER_PORT``). Before the collective that gathers the shares,
every rank polls the other ranks' keys (:func:`wait_for_ranks`): rank 0 prints one line every ``heartbeat``
seconds naming the ranks that are done and the ranks it waits for, and a rank that waits longer than its
timeout raises :class:`TimeoutError` naming the missing ranks, so a stopped or stalled rank fails in one line
instead of blocking the collective until the process group's own timeout.

The default timeout (:func:`default_timeout`) is twice the slowest other rank's worst case -- all its images
running ``steps`` steps, at the time per batch step this rank measured on its own share -- plus
:data:`SLACK_S`; ranks other than 0 wait :data:`GRACE_S` longer, so rank 0 is the one that reports.
"""
from __future__ import annotations

import math
import os
import time
from datetime import timedelta
from typing import Callable

__all__ = ["SLACK_S", "GRACE_S", "worst_case_seconds", "default_timeout", "wait_for_ranks", "format_seconds",
           "StoreSync"]

#: seconds added to the scaled timeout (process start-up, a busy machine)
SLACK_S = 120.0
#: extra seconds the ranks other than 0 wait, so that rank 0 reports a stalled rank first
GRACE_S = 60.0


def format_seconds(s: float) -> str:
    """``"2 min 5 s"`` / ``"45 s"`` / ``"1 h 3 min"`` (rounded to whole seconds)."""
    s = int(round(max(s, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def worst_case_seconds(n_images: int, steps: int, batch_size: int, *, own_images: int, own_steps: int,
                       own_seconds: float) -> float:
    """Upper bound of the seconds a rank needs for ``n_images`` masks of at most ``steps`` steps each.

    The per-image learner keeps ``min(batch_size, n)`` masks in one batch, so ``n`` masks of ``steps`` steps
    take at most ``ceil(n * steps / min(batch_size, n))`` batch steps. The time per batch step is measured on
    this rank's own share: ``own_images`` masks that ran ``own_steps`` steps in total (``MaskResult.steps.sum()``)
    in ``own_seconds``; a smaller batch is not slower per step, so the bound holds for any ``n``.
    """
    if n_images <= 0:
        return 0.0
    own_batch_steps = max(1, math.ceil(own_steps / max(1, min(batch_size, own_images))))
    per_step = own_seconds / own_batch_steps
    return math.ceil(n_images * steps / min(batch_size, n_images)) * per_step


def default_timeout(sizes: list[int], rank: int, steps: int, batch_size: int, *, own_steps: int,
                    own_seconds: float) -> float:
    """Seconds ``rank`` waits for the others: 2 x the slowest other rank's :func:`worst_case_seconds` + SLACK_S.

    ``sizes[r]`` is the number of images of rank r (:func:`fmask.learners.distributed.shard_bounds`); a rank
    with no images of its own learned one (its measurement), as :func:`learn_masks_distributed` does.
    """
    own = max(1, sizes[rank])
    worst = max((worst_case_seconds(n, steps, batch_size, own_images=own, own_steps=own_steps,
                                    own_seconds=own_seconds) for r, n in enumerate(sizes) if r != rank), default=0.0)
    return 2.0 * worst + SLACK_S


def wait_for_ranks(is_done: Callable[[int], bool], rank: int, world: int, timeout: float, *,
                   heartbeat: float = 30.0, log: Callable[[str], None] | None = None,
                   clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                   poll: float = 0.5) -> float:
    """Block until ``is_done(r)`` for every rank r != ``rank``; returns the seconds waited.

    Every ``heartbeat`` seconds ``log`` (if given) gets one line naming the ranks done and those waited for.
    Raises :class:`TimeoutError` (one line naming the missing ranks and ``--timeout``) after ``timeout`` seconds.
    """
    if timeout <= 0 or heartbeat <= 0:
        raise ValueError(f"timeout and heartbeat must be > 0 seconds, got {timeout} and {heartbeat}")
    start = clock()
    next_beat = start + heartbeat
    done: set[int] = {rank}
    while True:
        done |= {r for r in range(world) if r not in done and is_done(r)}
        pending = [r for r in range(world) if r not in done]
        now = clock()
        if not pending:
            return now - start
        if now - start >= timeout:
            raise TimeoutError(
                f"rank{'s' if len(pending) > 1 else ''} {_ranks(pending)} of {world} did not finish "
                f"{'their' if len(pending) > 1 else 'its'} share of the masks within {format_seconds(timeout)} "
                f"after rank {rank} finished its own (stopped or stalled process?); ranks done: {_ranks(done)}; "
                f"give more time with --timeout SECONDS")
        if log is not None and now >= next_beat:
            log(f"fmask distribute: rank {rank} has waited {format_seconds(now - start)} for rank"
                f"{'s' if len(pending) > 1 else ''} {_ranks(pending)}; done: {_ranks(done)}; gives up after "
                f"{format_seconds(timeout)}")
            while next_beat <= now:
                next_beat += heartbeat
        sleep(max(0.0, min(poll, start + timeout - now, next_beat - now if log is not None else poll)))


def _ranks(ranks) -> str:
    return ", ".join(str(r) for r in sorted(ranks))


class StoreSync:
    """``done/<rank>`` flags in a client of the TCP store at ``MASTER_ADDR:MASTER_PORT`` (torchrun's env vars).

    Keys carry the launch's restart count and a per-rank call counter, so a restarted launch or a second call in
    the same process group never sees the flags of an earlier one.
    """

    def __init__(self, rank: int, store=None) -> None:
        if store is None:
            import torch.distributed as dist

            store = dist.TCPStore(host_name=os.environ["MASTER_ADDR"], port=int(os.environ["MASTER_PORT"]),
                                  is_master=False, timeout=timedelta(seconds=300))
        self.store, self.rank = store, rank
        call = store.add(f"fmask/distributed/calls/{rank}", 1)
        self.prefix = f"fmask/distributed/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{call}"

    def mark_done(self) -> None:
        """Tell the other ranks that this rank has learned its share."""
        self.store.set(f"{self.prefix}/done/{self.rank}", "1")

    def is_done(self, rank: int) -> bool:
        """Whether ``rank`` has called :meth:`mark_done` (never blocks)."""
        return bool(self.store.check([f"{self.prefix}/done/{rank}"]))
