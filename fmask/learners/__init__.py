"""Floor 2, learning Fourier masks for a frozen classifier (Karantzas et al., 2022).

torchattacks-style API: hyper-parameters (with the paper's defaults) in the constructor, data in the call::

    masks = PerImageMasks(model, lam=0.07)(images, targets)      # MaskResult, masks (N, C, H, W)
    mask = DatasetMask(model, lam=0.2)(images, targets)           # MaskResult, masks (1, C, H, W)

:mod:`~fmask.learners.base` holds the chores (checks, private frozen model copy, device, seeding, precision,
space), :mod:`~fmask.learners.per_image` and :mod:`~fmask.learners.dataset` the two learners,
:mod:`~fmask.learners.result` the result type, :mod:`~fmask.learners.functional` the functional form
:func:`learn_masks`, :mod:`~fmask.learners.distributed` the sharding over ranks and :mod:`~fmask.learners.own`
the entry for your own classifier and images. The loss and stopping rules are the method's, in
:mod:`fmask.core.objective`.
"""
from __future__ import annotations

from fmask.learners.base import MaskLearner, frozen  # noqa: F401
from fmask.learners.dataset import DatasetMask
from fmask.learners.functional import DEFAULTS, learn_masks
from fmask.core.objective import DatasetStopping, invariance_loss, per_image_count, per_sample_objective  # noqa: F401
from fmask.learners.per_image import PerImageMasks
from fmask.learners.result import MaskResult
from fmask.core.schedule import onecycle_lr_trace, original_single_image_beta1, original_single_image_lr  # noqa: F401

__all__ = ["PerImageMasks", "DatasetMask", "MaskResult", "learn_masks", "invariance_loss",
           "original_single_image_lr", "original_single_image_beta1", "onecycle_lr_trace", "DEFAULTS"]
