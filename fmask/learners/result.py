"""The learners' result, :class:`MaskResult`, and its one serialisation (``to_payload`` / ``from_payload``)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor

__all__ = ["MaskResult", "FORMAT"]

FORMAT = "fmask.MaskResult/1"


def _version() -> str:
    try:
        from fmask import __version__
        return str(__version__)
    except Exception:  # pragma: no cover
        return "unknown"


@dataclass
class MaskResult:
    """Masks learned by :class:`~fmask.learners.PerImageMasks` / :class:`~fmask.learners.DatasetMask`.

    Attributes:
        masks: float32 CPU (N, C, H, W) per-image masks, or (1, C, H, W) for a dataset mask; fft2 layout
            (DC at [0, 0]), values in [0, 1].
        steps: int64 (n_masks,): per-image → optimisation steps run for each mask (up to its stopping);
            dataset → optimiser steps taken up to the returned mask (the snapshot).
        converged: bool (n_masks,): the stopping rule was met.
        history: dict of 1-D tensors. Dataset mask, one entry per epoch: ``loss``, ``invariance``
            (squared CE difference), ``sparsity`` (mean |M|) -- epoch means of the pre-step values -- and
            ``accuracy`` (masked accuracy, %) plus ``initial_accuracy`` (1 entry) and ``snapshot_epoch``
            (1 entry, 0 if none). Per-image masks, one entry per mask, values at its last step: ``loss``,
            ``invariance``, ``sparsity``, ``initial_prediction``, ``prediction`` (masked prediction with the
            returned mask, same filter/space as learning), ``target``.
        params: the settings used (plain Python values, incl. ``space``, ``precision`` and ``seed``).
        metadata: free-form metadata (e.g. which model / data), stored by :meth:`save`.
    """

    masks: Tensor
    steps: Tensor
    converged: Tensor
    history: dict[str, Tensor]
    params: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """Tensors and settings as a plain dict: the artifact store's and :meth:`save`'s format."""
        return {
            "format": FORMAT,
            "masks": self.masks.detach().cpu().float(),
            "steps": self.steps.detach().cpu(),
            "converged": self.converged.detach().cpu(),
            "history": {k: v.detach().cpu() for k, v in self.history.items()},
            "params": dict(self.params),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> "MaskResult":
        """Inverse of :meth:`to_payload` (``metadata`` is attached as :attr:`metadata`)."""
        fmt = payload.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"not a MaskResult payload (format {fmt!r}, expected {FORMAT!r})")
        missing = {"masks", "steps", "converged", "history", "params"} - set(payload)
        if missing:
            raise ValueError(f"MaskResult payload lacks {sorted(missing)}")
        return cls(masks=payload["masks"], steps=payload["steps"], converged=payload["converged"],
                   history=dict(payload["history"]), params=dict(payload["params"]),
                   metadata=dict(metadata or {}))

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        """Write :meth:`to_payload` + metadata (merged over :attr:`metadata`) + versions, atomically."""
        from fmask.infra.atomic import atomic_torch_save

        meta = dict(self.metadata)
        meta.update(dict(metadata or {}))
        meta.setdefault("versions", {"torch": str(torch.__version__), "fmask": _version()})
        atomic_torch_save({**self.to_payload(), "metadata": meta}, os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MaskResult":
        """Read a file written by :meth:`save` (``torch.load(weights_only=True)``)."""
        payload = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not a MaskResult file (format {FORMAT})")
        return cls.from_payload(payload, payload.get("metadata", {}))
