"""Spectral bookkeeping for Fourier masks: centring, radial / angular band maps and band energies.

Layouts
-------
* **fft2 layout**: how :func:`torch.fft.fft2` returns a spectrum and how masks are stored
  (DC at ``[0, 0]``).
* **centred layout**: after :func:`centered` (``fftshift`` over the last two dims); DC sits at
  ``(h // 2, w // 2)``. Band maps are defined in the centred layout because that is how masks are
  displayed (rows grow downwards, columns grow to the right).

Paper conventions (Karantzas et al., 2022), with one deliberate fix
-----------------------------------------------------------------
* Each mask is divided by its global L2 norm; the energy of a band is the L2 norm (not squared) of the
  normalised mask restricted to that band. 64 bands by default.
* Radial band ``i`` holds the frequencies whose distance ``d`` from the centre satisfies
  ``edges[i] <= d < edges[i+1]``, ``edges = linspace(0, d_max, n + 1)``, ``d_max`` the largest distance
  on the grid (a corner); the last band also holds ``d == d_max``.
* Angular sector ``i`` holds the angles ``edges[i] <= a < edges[i+1]``, ``edges = linspace(0, 2π, n + 1)``,
  where ``a = atan2(-(row - h//2), col - w//2) mod 2π``: 0 points right and angles grow
  counter-clockwise *as displayed*.
* Unlike the original code, the bands **partition** the plane: every frequency (the corners included)
  falls in exactly one radial band and one angular sector. The centre pixel (DC, distance 0, no angle)
  is put in radial band 0 and angular sector 0. Hence, for every non-zero mask,
  ``(band_energy(m, bands) ** 2).sum(-1) == 1``.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

__all__ = ["centered", "uncentered", "radial_bands", "angular_bands", "band_energy"]


def centered(m: Tensor) -> Tensor:
    """Move DC from ``[0, 0]`` (fft2 layout) to ``(h//2, w//2)`` (``fftshift`` over the last two dims).

    Works on any tensor with at least 2 dims, e.g. masks (N, C, H, W) or a single (H, W) mask.
    Returns a new tensor; the input is not modified.
    """
    if not isinstance(m, Tensor) or m.dim() < 2:
        raise ValueError(f"centered expects a tensor with >= 2 dims, got {type(m).__name__} "
                         f"with shape {tuple(getattr(m, 'shape', ()))}")
    return torch.fft.fftshift(m, dim=(-2, -1))


def uncentered(m: Tensor) -> Tensor:
    """Inverse of :func:`centered` (``ifftshift`` over the last two dims): centred layout → fft2 layout."""
    if not isinstance(m, Tensor) or m.dim() < 2:
        raise ValueError(f"uncentered expects a tensor with >= 2 dims, got {type(m).__name__} "
                         f"with shape {tuple(getattr(m, 'shape', ()))}")
    return torch.fft.ifftshift(m, dim=(-2, -1))


def _check_hwn(h: int, w: int, n: int) -> None:
    for name, v in (("h", h), ("w", w), ("n", n)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def _grid(h: int, w: int) -> tuple[Tensor, Tensor]:
    """Row offsets ``dy`` (downwards) and column offsets ``dx`` from the centre, float64 (h, w)."""
    dy = (torch.arange(h, dtype=torch.float64) - h // 2).view(h, 1).expand(h, w)
    dx = (torch.arange(w, dtype=torch.float64) - w // 2).view(1, w).expand(h, w)
    return dy, dx


def _bucket(values: Tensor, hi: float, n: int) -> Tensor:
    """Index ``i`` with ``edges[i] <= v < edges[i+1]`` for ``edges = linspace(0, hi, n+1)``; v == hi → n-1."""
    edges = torch.linspace(0.0, hi, n + 1, dtype=torch.float64)
    idx = torch.bucketize(values, edges[1:-1].contiguous(), right=True)
    return idx.clamp_(0, n - 1).to(torch.long)


@functools.lru_cache(maxsize=64)
def _radial_cached(h: int, w: int, n: int) -> Tensor:
    dy, dx = _grid(h, w)
    dist = torch.sqrt(dy * dy + dx * dx)
    d_max = float(dist.max())
    if d_max == 0.0:  # 1x1 grid: only DC
        return torch.zeros(h, w, dtype=torch.long)
    return _bucket(dist, d_max, n)


@functools.lru_cache(maxsize=64)
def _angular_cached(h: int, w: int, n: int) -> Tensor:
    dy, dx = _grid(h, w)
    ang = torch.remainder(torch.atan2(-dy, dx), 2 * math.pi)
    ang[(dy == 0) & (dx == 0)] = 0.0  # the centre pixel goes to sector 0
    return _bucket(ang, 2 * math.pi, n)


def radial_bands(h: int, w: int, n: int = 64) -> Tensor:
    """Radial band index map, LongTensor (h, w) in the **centred** layout, values 0..n-1.

    Band ``i``: ``edges[i] <= distance-from-(h//2, w//2) < edges[i+1]`` with
    ``edges = linspace(0, max distance, n + 1)``; the farthest corner is in band n-1 and the centre in
    band 0. Cached per (h, w, n); a fresh copy is returned so callers may modify it.
    """
    _check_hwn(h, w, n)
    return _radial_cached(h, w, n).clone()


def angular_bands(h: int, w: int, n: int = 64) -> Tensor:
    """Angular sector index map, LongTensor (h, w) in the **centred** layout, values 0..n-1.

    Sector ``i``: ``edges[i] <= angle < edges[i+1]``, ``edges = linspace(0, 2π, n + 1)``,
    ``angle = atan2(-(row - h//2), col - w//2) mod 2π`` (0 points right, counter-clockwise as displayed).
    The centre pixel is put in sector 0. Cached per (h, w, n); a fresh copy is returned.
    """
    _check_hwn(h, w, n)
    return _angular_cached(h, w, n).clone()


def band_energy(masks: Tensor, bands: Tensor | str = "radial", n_bands: int = 64) -> Tensor:
    """Band energies of masks, shape (N, n_bands), float (masks' dtype, at least float32).

    Args:
        masks: real masks in **fft2 layout** (DC at [0, 0]), shape (N, C, H, W) or (N, H, W). They are
            centred internally. With C > 1 the C channels of one mask are treated as one mask (one
            global norm; a band's energy sums over channels).
        bands: a band index map LongTensor (H, W) in the **centred** layout (as returned by
            :func:`radial_bands` / :func:`angular_bands`), or ``"radial"`` / ``"angular"`` to use the
            cached map with ``n_bands`` bands.
        n_bands: number of bands when ``bands`` is a string; with a tensor, ``bands.max() + 1``.

    Returns:
        ``E[i, b] = ‖ m_i / ‖m_i‖₂ restricted to band b ‖₂``. Because the bands partition the plane,
        ``(E ** 2).sum(-1) == 1`` for every non-zero mask. An all-zero mask gets all-zero energies.
    """
    if not isinstance(masks, Tensor) or masks.dim() not in (3, 4):
        raise ValueError("band_energy expects masks of shape (N, C, H, W) or (N, H, W) in fft2 layout, "
                         f"got shape {tuple(getattr(masks, 'shape', ()))}")
    if masks.is_complex():
        raise ValueError("band_energy expects real masks, got a complex tensor")
    if masks.is_floating_point() and not bool(torch.isfinite(masks).all()):
        raise ValueError("band_energy: masks contain NaN or inf values")
    h, w = masks.shape[-2:]
    if isinstance(bands, str):
        if bands == "radial":
            bmap = _radial_cached(h, w, n_bands) if n_bands >= 1 else None
        elif bands == "angular":
            bmap = _angular_cached(h, w, n_bands) if n_bands >= 1 else None
        else:
            raise ValueError(f"bands must be 'radial', 'angular' or a LongTensor (H, W), got {bands!r}")
        if bmap is None:
            raise ValueError(f"n_bands must be >= 1, got {n_bands}")
        nb = n_bands
    elif isinstance(bands, Tensor):
        if bands.shape != (h, w):
            raise ValueError(f"band map shape {tuple(bands.shape)} does not match the masks' spatial "
                             f"shape {(h, w)}")
        if bands.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise ValueError(f"band map must be an integer tensor, got dtype {bands.dtype}")
        if bands.numel() and int(bands.min()) < 0:
            raise ValueError("band map values must be >= 0")
        bmap = bands.to(torch.long)
        nb = int(bmap.max()) + 1
    else:
        raise ValueError(f"bands must be 'radial', 'angular' or a LongTensor (H, W), got {type(bands)}")

    m = masks if masks.dim() == 4 else masks.unsqueeze(1)
    dtype = m.dtype if m.dtype in (torch.float32, torch.float64) else torch.float32
    m = centered(m.to(dtype))
    n = m.shape[0]
    sq = (m * m).sum(dim=1).reshape(n, h * w)  # (N, H*W): squared values, channels summed
    total = sq.sum(dim=1, keepdim=True)
    sq = torch.where(total > 0, sq / total.clamp_min(torch.finfo(dtype).tiny), torch.zeros_like(sq))
    idx = bmap.to(m.device).reshape(1, h * w).expand(n, h * w)
    per_band = torch.zeros(n, nb, dtype=dtype, device=m.device).scatter_add_(1, idx, sq)
    return per_band.sqrt()
