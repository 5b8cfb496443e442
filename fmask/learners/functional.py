""":func:`learn_masks`, the functional form: a thin wrapper over the two learners (:class:`PerImageMasks`,
:class:`DatasetMask`) that picks one by ``per_image``."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from fmask.infra.runtime import model_device, resolve_device

from fmask.core.objective import DATASET_DEFAULTS, PER_IMAGE_DEFAULTS
from fmask.learners.dataset import DatasetMask
from fmask.learners.per_image import PerImageMasks
from fmask.learners.result import MaskResult

__all__ = ["learn_masks", "DEFAULTS"]

#: the paper's defaults per mode as plain dicts (:data:`fmask.core.objective.PER_IMAGE_DEFAULTS`, ``DATASET_DEFAULTS``)
DEFAULTS = {"per_image": dict(PER_IMAGE_DEFAULTS), "dataset": dict(DATASET_DEFAULTS)}


def learn_masks(model: nn.Module, images: Tensor | Iterable, targets: Tensor | None = None, *, per_image: bool,
                lam: float | None = None, steps: int | None = None, epochs: int | None = None,
                lr: float | None = None, batch_size: int | None = None, seed: int = 0,
                patience: int | None = None, schedule: str | None = "default",
                device: str | torch.device | None = None, amp: bool = True, channels: int | None = None,
                log_every: int = 50, progress: bool = True, desc: str | None = None, space: str = "auto",
                precision: str | None = None) -> MaskResult:
    """Per-image masks (:class:`PerImageMasks`) or one dataset mask (:class:`DatasetMask`); None → defaults.

    ``steps``: per-image max steps; for dataset masks the max epochs (``epochs`` is its alias there).
    ``schedule``: ``"default"`` (per-image ``"constant"``, dataset ``"onecycle"``), ``None``/``"constant"``,
    ``"onecycle"`` (dataset), ``"original"`` (per-image: the original's warm-up, lr default 0.2; dataset: same
    as ``"onecycle"``). ``precision``: None → ``"auto"`` (``"fast"`` on CUDA, ``"exact"`` elsewhere) when ``amp``,
    else ``"exact"``. ``log_every`` applies to per-image masks.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if schedule in ("default",):
        schedule = "constant" if per_image else "onecycle"
    if schedule is None:
        schedule = "constant"
    if schedule not in ("constant", "onecycle", "original"):
        raise ValueError(f"schedule must be 'default', None, 'constant', 'onecycle' or 'original', got {schedule!r}")
    dev = model_device(model) if device is None else resolve_device(device)
    if precision is None:
        precision = "auto" if amp else "exact"
    common = dict(seed=seed, device=dev, progress=progress, channels=channels, space=space, precision=precision)
    if per_image:
        if epochs is not None:
            raise ValueError("epochs applies to dataset masks; use steps= for per-image masks")
        if schedule == "onecycle":
            raise ValueError("schedule='onecycle' is for dataset masks; per-image masks take None or 'original'")
        d = PER_IMAGE_DEFAULTS
        learner = PerImageMasks(model, lam=d["lam"] if lam is None else lam, lr=lr,
                                steps=d["steps"] if steps is None else steps,
                                patience=d["patience"] if patience is None else patience,
                                batch_size=d["batch_size"] if batch_size is None else batch_size,
                                schedule=schedule, log_every=log_every, **common)
        if not isinstance(images, Tensor):
            raise ValueError(f"per-image masks need images as a tensor (N, C, H, W); got {type(images).__name__}")
    else:
        if epochs is not None and steps is not None and steps != epochs:
            raise ValueError(f"steps={steps} and epochs={epochs} disagree (for dataset masks they are aliases)")
        epochs = epochs if epochs is not None else steps
        d = DATASET_DEFAULTS
        if not isinstance(log_every, int) or log_every < 1:
            raise ValueError(f"log_every must be an int >= 1, got {log_every!r}")
        learner = DatasetMask(model, lam=d["lam"] if lam is None else lam, lr=d["lr"] if lr is None else lr,
                              epochs=d["epochs"] if epochs is None else epochs,
                              patience=d["patience"] if patience is None else patience,
                              batch_size=d["batch_size"] if batch_size is None else batch_size,
                              schedule="onecycle" if schedule == "original" else schedule, **common)
    return learner(images, targets, desc=desc)
