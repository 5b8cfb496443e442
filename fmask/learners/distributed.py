"""Shard per-image mask learning across ``torch.distributed`` ranks.

Per-image masks are independent problems, so N images split into K contiguous slices, one per rank; each
rank runs :func:`fmask.learners.learn_masks` on its slice and the pieces are gathered, in rank order, into one
:class:`fmask.learners.MaskResult` that is identical to a single-process run with the same arguments
(the learner is exact per image and its seed does not depend on the rank or the slice).

Works under ``torchrun --nproc_per_node=K`` (``env://`` initialisation; gloo on CPU, nccl on CUDA) and in a
plain single process (world size 1, no process group needed).

Before the shares are gathered, the ranks wait for each other through ``done`` flags in the process group's
TCP store (:mod:`fmask.learners.distributed_wait`): rank 0 reports every ``--heartbeat`` seconds which ranks
are done and which it waits for, and a rank that waits longer than ``--timeout`` (default: scaled to the
work) fails in one line naming the missing ranks.

Command line (rank 0 writes the gathered result atomically)::

    torchrun --nproc_per_node=2 -m fmask.learners.distributed \\
        --checkpoint model.pt --images images.pt --out masks.pt --steps 20000 --lam 0.07

The options are those of ``fmask distribute`` (one table, :mod:`fmask.learners.distributed_args`),
including ``--space`` (where the mask acts; default ``auto`` = the normalised image when the model declares
its normalisation) and ``--precision`` (``exact`` / ``fast``), which are passed to the learner.
:func:`check_inputs` loads and checks the files and options once, before any rank starts.

``images.pt`` holds ``{"images": (N, C, H, W) float in [0, 1], "targets": (N,) int64}``.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn

from fmask.learners.distributed_shards import gather_results, merge_results, shard_bounds
from fmask.learners.distributed_args import HEARTBEAT_S, add_distribute_arguments
from fmask.data.images import load_tensor_file
from fmask.learners.distributed_wait import GRACE_S, StoreSync, default_timeout, wait_for_ranks

__all__ = [
    "world_info",
    "init_distributed",
    "learn_masks_distributed",
    "load_model_checkpoint",
    "check_inputs",
    "build_worker_parser",
    "run_worker",
    "main",
]


def world_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from an initialised process group or the torchrun env vars."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def init_distributed(device: str | torch.device | None = None, timeout_s: float = 1800.0) -> bool:
    """Initialise the default process group from ``env://`` when launched with world size > 1.

    Backend: nccl when ``device`` is CUDA (the rank's device becomes ``cuda:LOCAL_RANK``), gloo otherwise.
    Returns True if *this call* created the group (the caller should destroy it), False otherwise.
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False
    for key in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
        if key not in os.environ:
            raise ValueError(f"WORLD_SIZE={world} but {key} is not set; launch with torchrun")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout_s))
    return True


def _rank_device(device: str | torch.device, local_rank: int) -> torch.device:
    """Under torchrun every rank uses its own GPU: any CUDA device becomes ``cuda:LOCAL_RANK``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return dev


def learn_masks_distributed(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    timeout: float | None = None,
    heartbeat: float = HEARTBEAT_S,
    **learn_kwargs: Any,
) -> Any:
    """Per-image :func:`fmask.learners.learn_masks`, sharded across ranks; returns the gathered ``MaskResult``.

    images: (N, C, H, W) float in [0, 1] (the full set, identical on every rank); targets: (N,) int64, or
    None for the model's own predictions.
    Each rank learns the contiguous slice :func:`shard_bounds` gives it; every rank returns the full,
    gathered result (masks (N, C, H, W) on CPU). ``per_image`` is forced to True (dataset masks cannot be
    sharded this way). With world size 1 (no torchrun) this is just ``learn_masks``.
    A process group created here (from torchrun's env vars) is destroyed before returning.

    With world size > 1 a rank that has learned its share waits for the others
    (:func:`fmask.learners.distributed_wait.wait_for_ranks`): rank 0 prints a line to stderr every ``heartbeat``
    seconds, and a rank raises :class:`TimeoutError` when the others are not done after ``timeout`` seconds
    (None: :func:`fmask.learners.distributed_wait.default_timeout`, scaled to the work).
    """
    from fmask.learners import learn_masks

    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if targets is not None and (targets.ndim != 1 or targets.shape[0] != images.shape[0]):
        raise ValueError(f"targets must be (N,) matching images (N={images.shape[0]}), got {tuple(targets.shape)}")
    if learn_kwargs.get("per_image", True) is not True:
        raise ValueError("learn_masks_distributed shards per-image masks only (per_image=True)")
    learn_kwargs["per_image"] = True

    dev = learn_kwargs.get("device")
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev is None:  # learn_masks' default: the model's device
        dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    learn_kwargs["device"] = dev
    created = init_distributed(dev)
    try:
        rank, world, local = world_info()
        if world > 1 and not dist.is_initialized():
            raise ValueError("WORLD_SIZE > 1 but no process group; launch with torchrun")
        if world > 1:
            learn_kwargs["device"] = _rank_device(learn_kwargs.get("device"), local)
        start, stop = shard_bounds(images.shape[0], world, rank)
        if world == 1:
            return learn_masks(model, images, targets, **learn_kwargs)
        print(f"fmask distribute: rank {rank} of {world} (pid {os.getpid()}) learns the masks of images "
              f"[{start}, {stop})", file=sys.stderr, flush=True)
        sync = StoreSync(rank)
        t0 = time.monotonic()
        if stop > start:
            local_res = learn_masks(model, images[start:stop], None if targets is None else targets[start:stop],
                                    **learn_kwargs)
        else:  # more ranks than images: contribute nothing (learn one image to keep the result type)
            local_res = learn_masks(model, images[:1], None if targets is None else targets[:1], **learn_kwargs)
        sync.mark_done()
        limit = timeout
        if limit is None:
            sizes = [b - a for a, b in (shard_bounds(images.shape[0], world, r) for r in range(world))]
            limit = default_timeout(sizes, rank, int(local_res.params["steps"]), int(local_res.params["batch_size"]),
                                    own_steps=int(local_res.steps.sum()), own_seconds=time.monotonic() - t0)
        wait_for_ranks(sync.is_done, rank, world, limit if rank == 0 else limit + GRACE_S, heartbeat=heartbeat,
                       log=(lambda line: print(line, file=sys.stderr, flush=True)) if rank == 0 else None)
        parts, sizes = gather_results(local_res, stop - start)
        return merge_results(parts, sizes)
    finally:
        if created:
            dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------- CLI


def load_model_checkpoint(path: str, arch: str | None = None) -> nn.Module:
    """Rebuild an :func:`fmask.models.zoo.build_model` network from a checkpoint file (``weights_only=True``):
    :func:`fmask.models.checkpoint.load_model_checkpoint` (layouts: ``{"arch", "state_dict", ["in_channels",
    "num_classes", "width_div"]}`` or the same keys nested, e.g. an :class:`fmask.infra.store.ArtifactStore`
    file; a ``Normalized`` or a bare state dict; ``arch`` overrides the stored one)."""
    from fmask.models.checkpoint import load_model_checkpoint as load

    return load(path, arch=arch)


def _load(path: str, what: str, load: Any) -> Any:
    if not os.path.isfile(path):
        raise FileNotFoundError(2, f"no such {what} file", path)
    try:
        return load()
    except pickle.UnpicklingError as exc:
        raise pickle.UnpicklingError(f"{path}: {exc}") from exc
    except (ValueError, OSError):  # already one line naming the file
        raise
    except Exception as exc:  # truncated or not a torch file: torch.load fails with many exception types
        head = (str(exc).splitlines() or [""])[0]
        raise ValueError(f"{path}: cannot read the {what} file; is it a torch.save file? ({type(exc).__name__}: {head})") from exc


def check_inputs(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor, torch.Tensor | None]:
    """Load and check everything the ranks need, once, before any rank starts; returns (model, images, targets).

    Checks: both files exist and load (``weights_only``), the images are (N, C, H, W) floats in [0, 1]
    (:func:`fmask.learners.base.check_images`), the model takes them (one forward of the first image), the
    targets are (N,) class indices below the model's number of classes, and the hyper-parameters, device,
    ``--timeout`` and ``--heartbeat`` are valid for :class:`fmask.learners.PerImageMasks`. Every failure is a
    ``ValueError`` / ``OSError`` / ``pickle.UnpicklingError`` whose one-line message names the file or option.
    """
    from fmask.learners.base import check_images, check_targets
    from fmask.core.objective import PER_IMAGE_DEFAULTS as DEFAULTS
    from fmask.learners.per_image import PerImageMasks

    model = _load(args.checkpoint, "checkpoint", lambda: load_model_checkpoint(args.checkpoint, arch=args.arch))
    images, targets = _load(args.images, "images", lambda: load_tensor_file(args.images))
    check_images(images, name=f"{args.images}: images")
    for flag in ("timeout", "heartbeat"):
        v = getattr(args, flag, None)
        if v is not None and not v > 0:
            raise ValueError(f"--{flag} must be > 0 seconds, got {v}")
    try:
        PerImageMasks(model, **{k: DEFAULTS[k] if getattr(args, k) is None else getattr(args, k)
                                for k in ("lam", "steps", "patience", "batch_size")},
                      lr=args.lr, schedule=args.schedule or "constant", space=args.space or "auto",
                      precision=args.precision or "exact", seed=args.seed, log_every=args.log_every,
                      device=args.device, progress=False)
    except ValueError as exc:  # name the flag: "batch_size must be ..." -> "--batch-size must be ..."
        text = str(exc)
        word = text.split(" ", 1)[0]
        if word in ("lam", "lr", "steps", "patience", "batch_size", "log_every", "seed", "space", "precision"):
            text = f"--{word.replace('_', '-')}{text[len(word):]}"
        raise ValueError(f"{text} (see fmask distribute --help)") from exc
    try:
        with torch.no_grad():
            logits = model(images[:1])
    except (RuntimeError, ValueError) as exc:
        head = (str(exc).splitlines() or [""])[0]
        raise ValueError(f"{args.checkpoint}: the model does not take the images of {args.images} (shape "
                         f"{tuple(images.shape)}): {head}") from exc
    if targets is not None:
        targets = check_targets(targets, images.shape[0], int(logits.shape[-1]), name=f"{args.images}: targets")
    return model, images, targets


def build_worker_parser() -> argparse.ArgumentParser:
    """The worker's parser: the same options as ``fmask distribute`` (:func:`add_distribute_arguments`) without
    ``--nproc``; one definition, so the launcher's and the ranks' command lines cannot drift apart."""
    p = argparse.ArgumentParser(
        prog="python -m fmask.learners.distributed",
        description="Learn per-image Fourier masks, sharded over torchrun ranks; rank 0 writes the result. "
                    "Same options as `fmask distribute` (which starts the ranks with them).",
    )
    return add_distribute_arguments(p)


def run_worker(args: argparse.Namespace, inputs: tuple[nn.Module, torch.Tensor, torch.Tensor | None] | None = None
               ) -> int:
    """Learn this rank's share of the masks from parsed ``fmask distribute`` options; rank 0 writes ``args.out``.

    ``inputs``: ``(model, images, targets)`` as :func:`check_inputs` returns them (None: loaded and checked
    here). ``args.space`` / ``args.precision`` (None: the learner's defaults: ``space="auto"``, precision
    ``fast`` on CUDA with AMP, else ``exact``) are passed to :func:`fmask.learners.learn_masks`.
    """
    model, images, targets = check_inputs(args) if inputs is None else inputs
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    extra: dict[str, Any] = {}
    if args.space is not None:
        extra["space"] = args.space
    if args.precision is not None:
        extra["precision"] = args.precision
    created = init_distributed(device)
    try:
        res = learn_masks_distributed(
            model,
            images,
            targets,
            per_image=True,
            lam=args.lam,
            steps=args.steps,
            lr=args.lr,
            batch_size=args.batch_size,
            seed=args.seed,
            patience=args.patience,
            device=device,
            amp=not args.no_amp,
            schedule=args.schedule,
            log_every=args.log_every,
            timeout=getattr(args, "timeout", None),
            heartbeat=getattr(args, "heartbeat", None) or HEARTBEAT_S,
            **extra,
        )
        rank, world, _ = world_info()
        if rank == 0:
            try:
                res.save(args.out, metadata={"checkpoint": os.path.abspath(args.checkpoint),
                                             "images": os.path.abspath(args.images), "world_size": world})
            except (OSError, RuntimeError) as e:  # name the output file, whatever layer failed
                from fmask.learners.own import write_error

                raise write_error(args.out, e) from e
            print(f"wrote {args.out}: masks {tuple(res.masks.shape)} from {world} rank(s)", file=sys.stderr)
        if world > 1:
            dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fmask.learners.distributed`` (what every rank runs).

    An expected failure (bad input, a file error, a rank that timed out) is one line
    ``fmask: error: ...`` on stderr (naming the rank) and exit status 2 (``FMASK_DEBUG=1``: the traceback).
    """
    args = build_worker_parser().parse_args(argv)
    try:
        return run_worker(args)
    except (ValueError, OSError, pickle.UnpicklingError) as exc:  # TimeoutError is an OSError
        if os.environ.get("FMASK_DEBUG"):
            raise
        text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        where = "" if isinstance(exc, TimeoutError) else f"rank {world_info()[0]}: "  # a timeout names its ranks
        print(f"fmask: error: {where}{text}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
