"""Reading model checkpoints: one reader for the book's trained models and for users' own classifiers.

:func:`read_checkpoint` opens a checkpoint (a path, or an already loaded dict) and returns a
:class:`Checkpoint`: the network's state dict with wrapper prefixes stripped, the ``mean``/``std`` of an fmask
:class:`~fmask.models.zoo.Normalized` model when the file holds them, and the file's stored settings
(``arch``, ``in_channels``, ...). Every read is ``torch.load(..., map_location="cpu", weights_only=True)``:
nothing in the file is executed. With ``verify=True`` the file must be an fmask artifact and is read through
:func:`fmask.infra.integrity.read_artifact` (sidecar present, size and SHA-256 match).

Accepted layouts: a plain state dict; a dict whose ``"payload"`` / ``"state_dict"`` / ``"model_state"`` /
``"model"`` entry holds one (searched to depth 4, named entries first); keys may carry a ``net.`` (fmask's
wrapper), ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefix.

:func:`load_strict` loads a state dict into a network with a short, readable error; :func:`load_model_checkpoint`
rebuilds an fmask architecture (:func:`fmask.models.zoo.build_model`) from a checkpoint.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from fmask.models.zoo import Normalized, build_model

__all__ = ["PREFIXES", "Checkpoint", "CheckpointNotFoundError", "read_checkpoint", "load_strict",
           "load_model_checkpoint", "classifier_out", "conv_in"]

#: key prefixes stripped from a state dict: Normalized, DataParallel/DDP, torch.compile
PREFIXES: tuple[str, ...] = ("net.", "module.", "_orig_mod.")
_SD_KEYS: tuple[str, ...] = ("payload", "state_dict", "model_state", "model")
_MAX_DEPTH = 4


class CheckpointNotFoundError(FileNotFoundError, ValueError):
    """The checkpoint path does not exist (an ``OSError`` and a ``ValueError``, so either kind of handler
    catches it)."""


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _find_state_dict(obj: Any, depth: int = 0) -> Mapping[str, Tensor] | None:
    """The first dict of tensors: ``obj`` itself, then its named entries (:data:`_SD_KEYS`), then the rest."""
    if _is_state_dict(obj):
        return obj
    if not isinstance(obj, Mapping) or depth >= _MAX_DEPTH:
        return None
    named = [obj[k] for k in _SD_KEYS if isinstance(obj.get(k), Mapping)]
    others = [v for k, v in obj.items() if k not in _SD_KEYS and isinstance(v, Mapping)]
    for v in named + others:
        found = _find_state_dict(v, depth + 1)
        if found is not None:
            return found
    return None


def _find_key(obj: Any, key: str, depth: int = 0) -> Any:
    """First non-tensor value stored under ``key`` in nested dicts (this level first; state dicts skipped)."""
    if not isinstance(obj, Mapping) or depth > _MAX_DEPTH or _is_state_dict(obj):
        return None
    if key in obj and not isinstance(obj[key], (Tensor, Mapping)):
        return obj[key]
    for v in obj.values():
        found = _find_key(v, key, depth + 1)
        if found is not None:
            return found
    return None


def classifier_out(sd: Mapping[str, Tensor]) -> int | None:
    """Number of classes from a state dict: rows of the last 2-D weight (the final linear layer)."""
    last = None
    for k, v in sd.items():
        if k.endswith("weight") and v.dim() == 2:
            last = v
    return None if last is None else int(last.shape[0])


def conv_in(sd: Mapping[str, Tensor]) -> int | None:
    """Input channels from a state dict: dim 1 of the first 4-D weight (the first conv)."""
    for k, v in sd.items():
        if k.endswith("weight") and v.dim() == 4:
            return int(v.shape[1])
    return None


@dataclass
class Checkpoint:
    """A checkpoint as read by :func:`read_checkpoint`.

    Attributes:
        blob: the loaded object (for a verified artifact: ``{"payload", "params", "metadata"}``).
        source: the file's path as given (None for a dict).
        params, metadata: an fmask artifact's parameters and metadata (empty dicts otherwise).
        verified: True when the file went through :func:`fmask.infra.integrity.read_artifact`.
    """

    blob: Any
    source: str | None = None
    params: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    verified: bool = False

    @property
    def payload(self) -> Any:
        """An fmask artifact's payload (None for other files)."""
        return self.blob.get("payload") if isinstance(self.blob, Mapping) else None

    def _where(self) -> str:
        return "checkpoint" if self.source is None else f"checkpoint {self.source!r}"

    @cached_property
    def _weights(self) -> tuple[dict[str, Tensor], Tensor | None, Tensor | None]:
        if not isinstance(self.blob, Mapping):
            raise ValueError(f"{self._where()} holds a {type(self.blob).__name__}, expected a state_dict or a dict "
                             "with a 'state_dict' or 'model' entry")
        found = _find_state_dict(self.blob)
        if found is None:
            raise ValueError(f"{self._where()} is not a state_dict: expected a dict of tensors, or a dict with a "
                             "'state_dict' or 'model' entry holding one; top-level keys: "
                             f"{sorted(map(str, self.blob))[:10]}")
        sd = dict(found)
        for prefix in PREFIXES:
            if all(k.startswith(prefix) or k in ("mean", "std") for k in sd):
                sd = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}
        mean = std = None
        if "mean" in sd and "std" in sd:
            mean, std = sd.pop("mean").reshape(-1), sd.pop("std").reshape(-1)
        return sd, mean, std

    @property
    def state_dict(self) -> dict[str, Tensor]:
        """The bare network's state dict (prefixes :data:`PREFIXES` stripped, without ``mean``/``std``);
        a fresh dict on every access. ValueError when the file holds none."""
        return dict(self._weights[0])

    @property
    def mean(self) -> Tensor | None:
        """The stored normalisation mean, shape (C,), or None (also for ``std``)."""
        return self._weights[1]

    @property
    def std(self) -> Tensor | None:
        return self._weights[2]

    def stored(self, key: str) -> Any:
        """A setting stored in the file under ``key`` (e.g. ``arch``, ``in_channels``), nested dicts included."""
        return _find_key(self.blob, key)


def read_checkpoint(source: str | os.PathLike | Mapping[str, Any], *, verify: bool = False) -> Checkpoint:
    """Read a checkpoint from a path (``weights_only=True``) or wrap an already loaded dict.

    ``verify=True``: ``source`` must be an fmask artifact (``<key>.pt`` with its ``<key>.json`` sidecar), read
    with :func:`fmask.infra.integrity.read_artifact`; damage raises :class:`fmask.infra.integrity.ArtifactCorruptError`
    naming the file and the reason. A path that does not exist raises :class:`CheckpointNotFoundError`; a file
    ``torch.load(weights_only=True)`` refuses (e.g. a pickled ``nn.Module``) raises ValueError naming it.
    """
    if isinstance(source, Mapping):
        return Checkpoint(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"checkpoint must be a path or a dict, got {type(source).__name__}")
    path = Path(source)
    if not path.exists():
        raise CheckpointNotFoundError(errno.ENOENT, "no such model checkpoint", str(path))
    if verify:
        from fmask.infra.integrity import read_artifact

        payload, params, meta = read_artifact(path, "cpu")
        return Checkpoint({"payload": payload, "params": params, "metadata": meta}, str(path),
                          params if isinstance(params, dict) else {}, meta, verified=True)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is a folder, not a checkpoint file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses pickled objects: say so clearly
        raise ValueError(f"could not read checkpoint {str(path)!r} with torch.load(weights_only=True) "
                         f"({type(e).__name__}: {e}); save a state_dict (model.state_dict()), not a "
                         "pickled model") from e
    params = blob.get("params") if isinstance(blob, Mapping) and isinstance(blob.get("params"), dict) else {}
    meta = blob.get("metadata") if isinstance(blob, Mapping) and isinstance(blob.get("metadata"), dict) else {}
    return Checkpoint(blob, str(path), dict(params), dict(meta))


def load_strict(net: nn.Module, sd: Mapping[str, Tensor], what: str) -> None:
    """``net.load_state_dict(sd, strict=True)`` with a short, readable error (ValueError)."""
    want, got = set(net.state_dict()), set(sd)
    missing, unexpected = sorted(want - got), sorted(got - want)
    if missing or unexpected:
        def show(keys):
            return ", ".join(keys[:5]) + (f" … ({len(keys)} in all)" if len(keys) > 5 else "")
        raise ValueError(f"checkpoint does not fit {what}: missing keys [{show(missing)}], unexpected keys "
                         f"[{show(unexpected)}] (prefixes {', '.join(PREFIXES)} are stripped automatically)")
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:  # shape mismatches
        msg = str(e)
        raise ValueError(f"checkpoint does not fit {what}: {msg[:800]}{' …' if len(msg) > 800 else ''}") from e


def load_model_checkpoint(source: str | os.PathLike | Mapping[str, Any] | Checkpoint,
                          arch: str | None = None) -> Normalized:
    """Rebuild an fmask architecture (:func:`fmask.models.zoo.build_model`) from a checkpoint, in eval mode.

    The file stores ``arch`` anywhere in its nested dicts (e.g. ``{"arch", "state_dict"}`` or an fmask model
    artifact, ``arch`` in its params); ``arch`` overrides it. ``in_channels`` / ``num_classes`` / ``width_div``
    are read from the file when stored, else off the state dict's shapes (first conv's input channels, last
    linear layer's rows, ``vgg_small``'s first conv width = 64 / width_div). A ``Normalized`` state dict's
    ``mean``/``std`` are kept; a bare network gets :func:`fmask.models.zoo.default_stats`.
    """
    ck = source if isinstance(source, Checkpoint) else read_checkpoint(source)
    where = ck.source or "checkpoint"
    arch = arch or ck.stored("arch")
    if not isinstance(arch, str):
        raise ValueError(f"{where}: no 'arch' stored; pass --arch")
    sd = ck.state_dict
    weights = [v for k, v in sd.items() if k.endswith("weight") and v.ndim >= 2]
    if not weights:
        raise ValueError(f"{where}: state dict holds no conv/linear weights")
    in_channels = int(ck.stored("in_channels") or weights[0].shape[1])
    num_classes = int(ck.stored("num_classes") or weights[-1].shape[0])
    kw: dict[str, Any] = {}
    if arch == "vgg_small":
        kw["width_div"] = int(ck.stored("width_div") or 64 // int(weights[0].shape[0]))
    stats = {} if ck.mean is None else {"mean": ck.mean.tolist(), "std": ck.std.tolist()}
    model = build_model(arch, in_channels=in_channels, num_classes=num_classes, **stats, **kw)
    load_strict(model.net, sd, f"{arch} ({in_channels} ch, {num_classes} classes) from {where}")
    return model.eval()
