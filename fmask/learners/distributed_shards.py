"""Splitting N images over ranks and merging the ranks' results, for :mod:`fmask.learners.distributed`.

Rank r of K owns the contiguous slice :func:`shard_bounds` gives it; :func:`gather_results` all-gathers the
ranks' results in rank order and :func:`merge_results` concatenates them into one result of the same type.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
import torch.distributed as dist

__all__ = ["shard_bounds", "merge_results", "gather_results"]


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
