"""What a mask keeps and what it switches off: the threshold of the paper's complement, binarised masks,
the complement M', the kept share of a mask, and how close a filtered image stays to its original.

Masks are real tensors (N, C, H, W) or (C, H, W) in ``torch.fft.fft2`` layout (DC at [0, 0]); images are
(N, C, H, W) in [0, 1]. Nothing here mutates its inputs: the original notebook binarised masks in place,
which silently changed later numbers, so :func:`binarize` returns a new tensor (and
:func:`fmask.analysis.accuracy.table2_accuracies` reports both the continuous and the binarised value).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fmask.analysis.maps import as_4d
from fmask.core.mask import complement

__all__ = ["COMPLEMENT_THRESHOLD", "binarize", "complement_mask", "kept_fraction", "pixel_correlation"]

#: The original's complement threshold: a mask entry counts as "kept" when it exceeds this value.
COMPLEMENT_THRESHOLD: float = 1e-8


def binarize(masks: Tensor, threshold: float = COMPLEMENT_THRESHOLD) -> Tensor:
    """A new tensor with ``1`` where ``masks > threshold`` and the original value elsewhere.

    This is what the original's complement did *in place* (``mask[mask > 1e-8] = 1``); here the input is
    left unchanged.
    """
    m = as_4d(masks, "masks")
    return torch.where(m > threshold, torch.ones_like(m), m)


def complement_mask(masks: Tensor, threshold: float = COMPLEMENT_THRESHOLD) -> Tensor:
    """M': 1 where ``M <= threshold`` (the frequencies the mask switched off), else 0; a new tensor."""
    return complement(as_4d(masks, "masks"), threshold=threshold)


def kept_fraction(masks: Tensor, threshold: float = COMPLEMENT_THRESHOLD) -> np.ndarray:
    """Per mask, the fraction of entries above ``threshold`` (the paper's "kept" frequencies: M^c = 1 where
    M < 1e-8, Sec. 3.2): (N, C, H, W) -> (N,) float64 in [0, 1]."""
    m = as_4d(masks, "masks")
    return (m > threshold).reshape(m.shape[0], -1).double().mean(dim=1).numpy()


def pixel_correlation(images: Tensor, filtered: Tensor) -> np.ndarray:
    """Per image, the Pearson correlation of the pixels of ``images[i]`` and ``filtered[i]`` (all channels
    flattened): (N, C, H, W) twice -> (N,) in [-1, 1]; NaN where either image is constant."""
    x, f = as_4d(images, "images"), as_4d(filtered, "filtered")
    if x.shape != f.shape:
        raise ValueError(f"images {tuple(x.shape)} and filtered {tuple(f.shape)} differ in shape")
    a = x.reshape(x.shape[0], -1).double()
    b = f.reshape(f.shape[0], -1).double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(dim=1) / den
    return torch.where(den > 0, r, torch.full_like(r, float("nan"))).numpy()
