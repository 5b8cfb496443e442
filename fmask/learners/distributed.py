"""Shard per-image mask learning across ``torch.distributed`` ranks.

Per-image masks are independent problems, so N images split into K contiguous slices, one per rank; each
rank runs :func:`fmask.learners.learn_masks` on its slice and the pieces are gathered, in rank order, into one
:class:`fmask.learners.MaskResult` that is identical to a single-process run with the same arguments
(the learner is exact per image and its seed does not depend on the rank or the slice).

Works under ``torchrun --nproc_per_node=K`` (``env://`` initialisation; gloo on CPU, nccl on CUDA) and in a
plain single process (world size 1, no process group needed).

Command line (rank 0 writes the gathered result atomically)::

    torchrun --nproc_per_node=2 -m fmask.learners.distributed \\
        --checkpoint model.pt --images images.pt --out masks.pt --steps 20000 --lam 0.07

The options are those of ``fmask distribute`` (one table, :func:`fmask.cli.add_distribute_arguments`),
including ``--space`` (where the mask acts; default ``auto`` = the normalised image when the model declares
its normalisation) and ``--precision`` (``exact`` / ``fast``), which are passed to the learner.

``images.pt`` holds ``{"images": (N, C, H, W) float in [0, 1], "targets": (N,) int64}``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = [
    "shard_bounds",
    "world_info",
    "init_distributed",
    "gather_results",
    "merge_results",
    "learn_masks_distributed",
    "load_model_checkpoint",
    "run_worker",
    "main",
]


def shard_bounds(n: int, world_size: int, rank: int) -> tuple[int, int]:
    """Contiguous slice ``[start, stop)`` of ``n`` items owned by ``rank`` of ``world_size``.

    The first ``n % world_size`` ranks get one extra item; ranks beyond ``n`` get an empty slice.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    return start, stop


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


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _to_cpu(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(v) for v in obj)
    return obj


def _merge_values(values: list[Any], sizes: list[int], name: str) -> Any:
    """Merge one field across shards: per-image tensors/lists are concatenated, the rest must agree."""
    live = [(v, s) for v, s in zip(values, sizes) if s > 0] or [(values[0], sizes[0])]
    first = live[0][0]
    if isinstance(first, torch.Tensor):
        if first.ndim >= 1 and all(v.ndim >= 1 and v.shape[0] == s for v, s in live):
            if all(v.shape[1:] == first.shape[1:] for v, _ in live):
                return torch.cat([v for v, _ in live], dim=0)
            # per-image histories of different length (e.g. (n_i, T_i)): pad with NaN to the longest
            width = max(v.shape[1] for v, _ in live)
            padded = []
            for v, _ in live:
                pad = torch.full((v.shape[0], width - v.shape[1], *v.shape[2:]), float("nan"), dtype=v.dtype)
                padded.append(torch.cat([v, pad], dim=1) if v.is_floating_point() else v)
            return torch.cat(padded, dim=0)
        if all(torch.equal(v, first) for v, _ in live):
            return first
        raise ValueError(f"field {name!r} is not per-image and differs between shards")
    if isinstance(first, list) and all(isinstance(v, list) and len(v) == s for v, s in live):
        return [item for v, _ in live for item in v]
    if isinstance(first, dict) and all(isinstance(v, dict) and v.keys() == first.keys() for v, _ in live):
        return {k: _merge_values([v[k] for v, _ in live], [s for _, s in live], f"{name}.{k}") for k in first}
    return first  # run metadata (parameters, versions): identical on every rank by construction


def merge_results(parts: Sequence[Any], sizes: Sequence[int]) -> Any:
    """Concatenate per-shard results (in rank order) into one result of the same type.

    ``sizes[i]`` is the number of images of shard i. Tensor fields whose first dimension is the shard size
    are concatenated along dim 0, lists of that length are chained, dicts are merged key by key, other
    fields (metadata) are taken from the first non-empty shard.
    """
    if len(parts) != len(sizes) or not parts:
        raise ValueError("merge_results needs one size per part and at least one part")
    first = next((p for p, s in zip(parts, sizes) if s > 0), parts[0])
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        merged = {
            f.name: _merge_values([getattr(p, f.name) for p in parts], list(sizes), f.name)
            for f in dataclasses.fields(first)
            if f.init
        }
        return type(first)(**merged)
    return _merge_values(list(parts), list(sizes), "result")


def gather_results(local: Any, n_local: int) -> tuple[list[Any], list[int]]:
    """All-gather each rank's (CPU) result object and its image count, in rank order."""
    payload = (_to_cpu(local), int(n_local))
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, payload)
    return [p[0] for p in out], [p[1] for p in out]


def learn_masks_distributed(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | None,
    **learn_kwargs: Any,
) -> Any:
    """Per-image :func:`fmask.learners.learn_masks`, sharded across ranks; returns the gathered ``MaskResult``.

    images: (N, C, H, W) float in [0, 1] (the full set, identical on every rank); targets: (N,) int64, or
    None for the model's own predictions.
    Each rank learns the contiguous slice :func:`shard_bounds` gives it; every rank returns the full,
    gathered result (masks (N, C, H, W) on CPU). ``per_image`` is forced to True (dataset masks cannot be
    sharded this way). With world size 1 (no torchrun) this is just ``learn_masks``.
    A process group created here (from torchrun's env vars) is destroyed before returning.
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
        if stop > start:
            local_res = learn_masks(model, images[start:stop], None if targets is None else targets[start:stop],
                                    **learn_kwargs)
        else:  # more ranks than images: contribute nothing (learn one image to keep the result type)
            local_res = learn_masks(model, images[:1], None if targets is None else targets[:1], **learn_kwargs)
        parts, sizes = gather_results(local_res, stop - start)
        return merge_results(parts, sizes)
    finally:
        if created:
            dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------- CLI


def _load_images(path: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read ``{"images": (N, C, H, W) float in [0, 1], "targets": (N,) int}`` (or a 2-tuple) from a torch file.

    ``targets`` may be absent (None: the model's own predictions are used)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(data, dict):
        if "images" not in data:
            raise ValueError(f"{path}: expected a dict with 'images' (and optionally 'targets'), got keys {sorted(data)}")
        t = data.get("targets")
        return data["images"].float(), (None if t is None else t.long())
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0].float(), data[1].long()
    raise ValueError(f"{path}: expected {{'images': (N,C,H,W), 'targets': (N,)}}")


def _find_key(obj: Any, key: str, depth: int = 0) -> Any:
    """First value stored under ``key`` in nested dicts (breadth first, skipping state dicts)."""
    if not isinstance(obj, dict) or depth > 4:
        return None
    if key in obj and not isinstance(obj[key], torch.Tensor):
        return obj[key]
    for k, v in obj.items():
        if isinstance(v, dict) and k not in ("state_dict", "model_state"):
            found = _find_key(v, key, depth + 1)
            if found is not None:
                return found
    return None


def _find_state_dict(obj: Any, depth: int = 0) -> dict[str, torch.Tensor] | None:
    if not isinstance(obj, dict) or depth > 4:
        return None
    for k in ("state_dict", "model_state", "model"):
        v = obj.get(k)
        if isinstance(v, dict) and v and all(isinstance(t, torch.Tensor) for t in v.values()):
            return v
    for v in obj.values():
        found = _find_state_dict(v, depth + 1)
        if found is not None:
            return found
    return None


def load_model_checkpoint(path: str, arch: str | None = None) -> nn.Module:
    """Rebuild an :func:`fmask.models.zoo.build_model` network from a checkpoint file (``weights_only=True``):
    :func:`fmask.models.checkpoint.load_model_checkpoint` (layouts: ``{"arch", "state_dict", ["in_channels",
    "num_classes", "width_div"]}`` or the same keys nested, e.g. an :class:`fmask.infra.store.ArtifactStore`
    file; a ``Normalized`` or a bare state dict; ``arch`` overrides the stored one)."""
    from fmask.models.checkpoint import load_model_checkpoint as load

    return load(path, arch=arch)


def _build_parser() -> argparse.ArgumentParser:
    """The worker's parser: the same options as ``fmask distribute`` (:func:`fmask.cli.add_distribute_arguments`)
    without ``--nproc``; one definition, so the CLI and torchrun's per-rank command line cannot drift apart."""
    from fmask.cli import add_distribute_arguments

    p = argparse.ArgumentParser(
        prog="python -m fmask.learners.distributed",
        description="Learn per-image Fourier masks, sharded over torchrun ranks; rank 0 writes the result. "
                    "Same options as `fmask distribute` (which starts torchrun with them).",
    )
    return add_distribute_arguments(p)


def run_worker(args: argparse.Namespace) -> int:
    """Learn this rank's share of the masks from parsed ``fmask distribute`` options; rank 0 writes ``args.out``.

    ``args.space`` / ``args.precision`` (None: the learner's defaults: ``space="auto"``, precision ``fast`` on
    CUDA with AMP, else ``exact``) are passed to :func:`fmask.learners.learn_masks`.
    """
    model = load_model_checkpoint(args.checkpoint, arch=args.arch)
    images, targets = _load_images(args.images)
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
    """Entry point of ``python -m fmask.learners.distributed`` (what torchrun starts on every rank)."""
    return run_worker(_build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
