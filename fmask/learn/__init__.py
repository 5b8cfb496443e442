"""Learning Fourier masks for a frozen classifier (Karantzas et al., 2022).

torchattacks-style API: hyper-parameters (with the paper's defaults) in the constructor, data in the call::

    masks = PerImageMasks(model, lam=0.07)(images, targets)      # MaskResult, masks (N, C, H, W)
    mask = DatasetMask(model, lam=0.2)(images, targets)           # MaskResult, masks (1, C, H, W)

:func:`learn_masks` is the functional form kept for existing calls.
"""
from __future__ import annotations

from ._core import (DEFAULTS, MaskResult, invariance_loss, learn_masks,  # noqa: F401
                    original_single_image_lr)
from .learners import DatasetMask, PerImageMasks  # noqa: F401

__all__ = ["PerImageMasks", "DatasetMask", "MaskResult", "learn_masks", "invariance_loss",
           "original_single_image_lr", "DEFAULTS"]
