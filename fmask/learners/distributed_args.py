"""The option table of the distributed mask learner, shared by ``fmask distribute`` and the per-rank worker.

``fmask distribute`` (:mod:`fmask.cli.distribute`) and ``python -m fmask.learners.distributed`` (what each rank
runs) build their parsers from one table, :data:`DIST_OPTIONS`, so the launcher's command line and the ranks'
cannot drift apart; :func:`distribute_argv` turns parsed options back into the worker's arguments.
"""
from __future__ import annotations

import argparse
from typing import Any

__all__ = ["DIST_OPTIONS", "add_distribute_arguments", "distribute_argv", "HEARTBEAT_S"]

#: seconds between rank 0's reports while it waits for the other ranks
HEARTBEAT_S = 30.0

#: (flag, type, default, help) of every option the distributed worker takes
DIST_OPTIONS: tuple[tuple[str, Any, Any, str], ...] = (
    ("--checkpoint", str, None, "model checkpoint {'arch', 'state_dict'} or an fmask model artifact "
                                "(see fmask.learners.distributed.load_model_checkpoint)"),
    ("--arch", str, None, "architecture, if the checkpoint does not store it"),
    ("--images", str, None, "torch file {'images': (N,C,H,W) in [0,1], 'targets': (N,)} (targets optional)"),
    ("--out", str, None, "output MaskResult file (written atomically by rank 0)"),
    ("--lam", float, None, "λ (default: the paper's per-image λ, fmask.core.objective.PER_IMAGE_DEFAULTS)"),
    ("--steps", int, None, "max steps per mask (default: the paper's)"),
    ("--lr", float, None, "Adam learning rate (default: the learner's)"),
    ("--batch-size", int, None, "images per chunk (default: the learner's)"),
    ("--patience", int, None, "stopping patience (default: the original's)"),
    ("--seed", int, 31, "seed (default 31)"),
    ("--device", str, "cpu", "cpu | cuda | auto (default cpu)"),
    ("--schedule", str, None, "lr schedule: constant (default) or original (the original code's warm-up)"),
    ("--space", str, None, "where the mask acts: auto (default: the normalised image when the model declares "
                           "mean/std, as the original code), normalised, or pixel"),
    ("--precision", str, None, "exact (float32 everywhere) or fast (bf16 network on CUDA); default: fast on "
                               "CUDA unless --no-amp, else exact"),
    ("--log-every", int, 50, "steps between host syncs (default 50)"),
    ("--timeout", float, None, "seconds a rank that finished its share waits for the others before it fails "
                               "(default: twice the slowest rank's worst case -- its images x --steps at the "
                               "measured time per step -- plus 120 s)"),
    ("--heartbeat", float, HEARTBEAT_S, f"seconds between rank 0's reports of the ranks it waits for "
                                        f"(default {HEARTBEAT_S:g})"),
)
_CHOICES = {"--schedule": ["constant", "original"], "--space": ["auto", "normalised", "pixel"],
            "--precision": ["exact", "fast"]}
_REQUIRED = ("--checkpoint", "--images", "--out")


def add_distribute_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the distributed mask learner's options (:data:`DIST_OPTIONS` and ``--no-amp``) to ``p``; returns ``p``."""
    for flag, typ, default, what in DIST_OPTIONS:
        p.add_argument(flag, type=typ, default=default, required=flag in _REQUIRED, choices=_CHOICES.get(flag),
                       help=what)
    p.add_argument("--no-amp", action="store_true", help="on CUDA, run the network in float32 (default bf16 autocast)")
    return p


def distribute_argv(args: argparse.Namespace) -> list[str]:
    """The ``python -m fmask.learners.distributed`` arguments that reproduce ``args`` (options left at None omitted)."""
    argv: list[str] = []
    for flag, _, _, _ in DIST_OPTIONS:
        v = getattr(args, flag[2:].replace("-", "_"))
        if v is not None:
            argv += [flag, str(v)]
    if args.no_amp:
        argv.append("--no-amp")
    return argv
