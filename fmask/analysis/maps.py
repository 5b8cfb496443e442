"""Masks as maps: the shape check every mask analysis shares, the centred channel-mean map, and the
differences between masks (paper Fig. 3).

Conventions (see CONTRIBUTING.md): masks are real tensors (N, C, H, W) or (C, H, W) in ``torch.fft.fft2``
layout (DC at [0, 0]); :func:`fmask.core.spectral.centered` moves DC to the centre for display and band maps;
nothing here mutates its inputs.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from fmask.core.spectral import centered

__all__ = ["as_4d", "centered_mask", "mask_differences", "minmax_normalised_differences"]


def as_4d(x: Tensor, what: str) -> Tensor:
    """``x`` as a real (N, C, H, W) tensor: a (C, H, W) tensor gains a leading axis of 1 (a view, not a copy).

    ``what`` names the argument in the one-line ``ValueError`` raised for a non-tensor, a wrong number of
    dimensions or a complex dtype. Every mask analysis checks its tensor inputs with it.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{what} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"{what} must have shape (N, C, H, W) or (C, H, W); got {tuple(x.shape)}")
    if x.is_complex():
        raise ValueError(f"{what} must be real; got dtype {x.dtype}")
    return x


def centered_mask(mask: Tensor) -> Tensor:
    """Channel-mean of a mask with DC moved to the centre: (N, C, H, W) -> (N, H, W); (C, H, W) -> (H, W)."""
    single = isinstance(mask, Tensor) and mask.dim() == 3
    m = as_4d(mask, "mask").detach().float().cpu()
    out = centered(m).mean(dim=1)
    return out[0] if single else out


# ------------------------------------------------------------------------------- mask differences
def mask_differences(
    masks: Mapping[str, Tensor], reference: str = "vanilla", order: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """Centred differences ``centered(M_k) - centered(M_reference)`` for every other mask.

    ``masks`` maps a name (regime) to a mask (C, H, W) or (1, C, H, W) in fft2 layout. Returns
    ``{name: (H, W) tensor}`` in ``order`` (default: the mapping's order), excluding ``reference``.
    Values lie in [-1, 1] and a zero difference stays exactly 0 (no rescaling; compare
    :func:`minmax_normalised_differences`).
    """
    if reference not in masks:
        raise ValueError(f"reference {reference!r} is not among the masks {sorted(masks)}")
    names = list(order) if order is not None else list(masks)
    unknown = [n for n in names if n not in masks]
    if unknown:
        raise ValueError(f"order names {unknown} are not among the masks {sorted(masks)}")
    ref = _single_centered(masks[reference], reference)
    out: dict[str, Tensor] = {}
    for name in names:
        if name == reference:
            continue
        m = _single_centered(masks[name], name)
        if m.shape != ref.shape:
            raise ValueError(f"mask {name!r} has shape {tuple(m.shape)}, reference has {tuple(ref.shape)}")
        out[name] = m - ref
    return out


def _single_centered(mask: Tensor, name: str) -> Tensor:
    m = as_4d(mask, f"mask {name!r}")
    if m.shape[0] != 1:
        raise ValueError(f"mask {name!r} must be a single mask (C, H, W) or (1, C, H, W); got {tuple(m.shape)}")
    return centered_mask(m)[0]


def minmax_normalised_differences(diffs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The original's display of differences: joint min-max scaling to [0, 1], then ``- 0.5``.

    Kept only to show what it does: unless ``max == -min`` it moves zero difference away from 0, so a
    colormap centred at 0 does not show "no change" as white. Returns the rescaled (H, W) tensors.
    """
    if not diffs:
        raise ValueError("diffs is empty")
    stack = torch.stack([d.float() for d in diffs.values()])
    lo, hi = stack.min(), stack.max()
    if float(hi - lo) == 0.0:
        scaled = torch.zeros_like(stack)
    else:
        scaled = (stack - lo) / (hi - lo) - 0.5
    return dict(zip(diffs.keys(), scaled))
