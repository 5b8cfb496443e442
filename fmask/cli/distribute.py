"""``fmask distribute``: per-image masks sharded over ``--nproc`` local ranks (rank 0 writes the result).

The launcher checks every input in this process first (:func:`fmask.learners.distributed.check_inputs`: files,
image shapes and values, targets, options), so bad input fails in one line ``fmask: error: ...`` before any
rank starts. With ``--nproc 1`` the worker runs in this process; otherwise :func:`launch_ranks` starts
``--nproc`` processes of ``python -m fmask.learners.distributed`` with the variables torchrun would set
(``MASTER_ADDR=127.0.0.1``, ``MASTER_PORT``, ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``; ``OMP_NUM_THREADS=1``
unless set) and stops every rank as soon as one fails. A rank's own failure is its one ``fmask: error:`` line;
a rank killed by a signal is reported here in one line.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Sequence

from fmask.cli.common import check_out_folder, command

__all__ = ["launch_ranks"]


@command("distribute")
def _distribute_parser(sub) -> argparse.ArgumentParser:
    from fmask.learners.distributed_args import add_distribute_arguments

    p = sub.add_parser(
        "distribute", help="learn per-image masks sharded over local ranks (rank 0 writes the result)",
        description="Learn per-image Fourier masks for a file of images with a model checkpoint, sharded over "
                    "--nproc processes (torch.distributed, gloo on 127.0.0.1). With --nproc 1 it runs in this "
                    "process. `python -m fmask.learners.distributed` (what each rank runs; torchrun can start "
                    "it too) takes the same options but --nproc. Rank 0 reports every --heartbeat seconds "
                    "while it waits for the other ranks, and fails in one line after --timeout.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  fmask distribute --nproc 2 --checkpoint model.pt --images images.pt --out masks.pt "
               "--steps 2000 --space normalised --precision exact",
    )
    p.add_argument("--nproc", type=int, default=1, help="processes (ranks) on this machine (default 1)")
    add_distribute_arguments(p)
    p.set_defaults(func=_cmd_distribute)
    return p


def _cmd_distribute(args: argparse.Namespace) -> int:
    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1; got {args.nproc}")
    from fmask.learners import distributed
    from fmask.learners.distributed_args import distribute_argv

    inputs = distributed.check_inputs(args)
    check_out_folder(args.out)
    if args.nproc == 1:
        return int(distributed.run_worker(args, inputs) or 0)
    return launch_ranks(args.nproc, distribute_argv(args))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_ranks(nproc: int, argv: Sequence[str], *, module: str = "fmask.learners.distributed",
                 poll: float = 0.2) -> int:
    """Run ``python -m module *argv`` as ranks 0..nproc-1 of one gloo group on 127.0.0.1; returns the exit status.

    0 when every rank exits 0. As soon as one rank fails, the others are killed (``SIGKILL``: a stopped rank
    cannot handle anything gentler) and its exit status is returned; a rank killed by a signal raises
    ``RuntimeError`` naming the rank and the signal. Ctrl-C kills every rank.
    """
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(nproc),
           "LOCAL_WORLD_SIZE": str(nproc)}
    env.setdefault("OMP_NUM_THREADS", "1")
    procs: list[subprocess.Popen] = []
    try:
        for r in range(nproc):
            procs.append(subprocess.Popen([sys.executable, "-m", module, *argv],
                                          env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}))
        while True:
            codes = [p.poll() for p in procs]
            failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                r, code = failed[0]
                if code < 0:
                    name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
                    raise RuntimeError(f"rank {r} of {nproc} (pid {procs[r].pid}) was killed by {name}; the other "
                                       f"ranks were stopped and no result was written")
                return int(code)
            if all(c == 0 for c in codes):
                return 0
            time.sleep(poll)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
