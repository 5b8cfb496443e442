"""Learning Fourier masks for a frozen classifier (Karantzas et al., 2022).

torchattacks-style API: hyper-parameters (with the paper's defaults) in the constructor, data in the call::

    masks = PerImageMasks(model, lam=0.07)(images, targets)      # MaskResult, masks (N, C, H, W)
    mask = DatasetMask(model, lam=0.2)(images, targets)           # MaskResult, masks (1, C, H, W)

The method reads in four files: :mod:`~fmask.learn.objective` (loss and stopping rules),
:mod:`~fmask.learn.schedule` (the original's lr schedules), :mod:`~fmask.learn.per_image` and
:mod:`~fmask.learn.dataset` (the two learners); :mod:`~fmask.learn.base` holds the chores (checks, private
frozen model copy, device, seeding, precision, space) and :mod:`~fmask.learn.result` the result type.
:func:`learn_masks` is the functional form kept for existing calls.
"""
from __future__ import annotations

from .base import MaskLearner, frozen  # noqa: F401
from .dataset import DatasetMask
from .functional import DEFAULTS, learn_masks
from .objective import DatasetStopping, invariance_loss, per_image_count, per_sample_objective  # noqa: F401
from .per_image import PerImageMasks
from .result import MaskResult
from .schedule import onecycle_lr_trace, original_single_image_beta1, original_single_image_lr  # noqa: F401

__all__ = ["PerImageMasks", "DatasetMask", "MaskResult", "learn_masks", "invariance_loss",
           "original_single_image_lr", "original_single_image_beta1", "onecycle_lr_trace", "DEFAULTS"]
