"""Band energies of masks: per-band energy shares (radial rings or angular sectors of the centred spectrum),
their differences between regimes (paper Fig. 4) and the spread of those differences over training seeds, the
isotropic (ring-averaged) version of a mask, and per-image band dominance (paper Fig. 7).

Masks are real tensors (N, C, H, W) or (C, H, W) in ``torch.fft.fft2`` layout (DC at [0, 0]); the bands are
those of :mod:`fmask.core.spectral`. Shares are fractions (each mask's row sums to 1). Training-seed
replicates are paired across regimes: row ``i`` of every regime is seed ``profile.seed + i``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from fmask.analysis.density import TOP_FRACTION
from fmask.analysis.maps import as_4d
from fmask.core.spectral import band_energy, centered, radial_bands

__all__ = [
    "band_energies",
    "band_energy_differences",
    "ring_averaged",
    "replicate_band_energies",
    "band_difference_spread",
    "band_dominance",
    "low_frequency_share",
]


def band_energies(masks: Tensor, n_bands: int = 64, kind: str = "radial") -> Tensor:
    """Per-band energy fractions of each mask: (N, C, H, W) -> (N, n_bands); each row sums to 1.

    Bands are the radial (rings around DC) or angular (sectors) partitions of the centred spectrum of
    :mod:`fmask.core.spectral`. Entry ``[i, b]`` is the fraction of mask i's energy (squared values, channels
    summed) inside band b, i.e. ``spectral.band_energy(...) ** 2`` (the paper's band "energy" is its
    square root, the L2 norm of the unit-norm mask in the band; both order masks identically).
    """
    if kind not in ("radial", "angular"):
        raise ValueError(f"kind must be 'radial' or 'angular'; got {kind!r}")
    if not isinstance(n_bands, int) or isinstance(n_bands, bool) or n_bands < 1:
        raise ValueError(f"n_bands must be a positive int; got {n_bands!r}")
    m = as_4d(masks, "masks").detach().float().cpu()
    return band_energy(m, bands=kind, n_bands=n_bands) ** 2


def _single(mask: Tensor, name: str) -> Tensor:
    m = as_4d(mask, f"mask {name!r}")
    if m.shape[0] != 1:
        raise ValueError(f"mask {name!r} must be a single mask; got {tuple(m.shape)}")
    return m


def band_energy_differences(
    masks: Mapping[str, Tensor], reference: str = "vanilla", n_bands: int = 64, kind: str = "radial"
) -> dict[str, np.ndarray]:
    """Per-band energy difference of each mask against ``reference`` (Fig. 4: B-A, C-A, D-A, E-A).

    Returns ``{name: (n_bands,) array}`` of ``energy(M_name) - energy(M_reference)`` (fractions).
    """
    if reference not in masks:
        raise ValueError(f"reference {reference!r} is not among the masks {sorted(masks)}")
    ref = band_energies(_single(masks[reference], reference), n_bands, kind)[0]
    return {
        name: (band_energies(_single(m, name), n_bands, kind)[0] - ref).numpy()
        for name, m in masks.items()
        if name != reference
    }


def ring_averaged(masks: Tensor) -> Tensor:
    """The isotropic version of masks: every frequency replaced by the mean over its ring of equal radius.

    ``masks``: (N, C, H, W) in fft2 layout (DC at [0, 0]). A ring is the set of frequencies of the centred
    spectrum (:func:`fmask.core.spectral.centered`) with the same exact squared distance ``dy² + dx²`` from DC,
    averaged per mask and channel. The result has the mask's radial profile and no direction dependence
    beyond the square grid's own, so ``band_energies(masks, n, "angular") - band_energies(ring_averaged(
    masks), n, "angular")`` is the direction-dependent part of the angular shares that the claims ledger
    (``fig4.*direction_dependent``, its ``angular_share_isotropic``) compares. Returns (N, C, H, W), fft2 layout.
    """
    from fmask.core.spectral import uncentered

    m = as_4d(masks, "masks").detach().float().cpu()
    h, w = m.shape[-2:]
    dy = torch.arange(h) - h // 2
    dx = torch.arange(w) - w // 2
    r2 = (dy.view(h, 1) ** 2 + dx.view(1, w) ** 2).reshape(-1)
    _, ring = torch.unique(r2, return_inverse=True)
    n_rings = int(ring.max()) + 1
    flat = centered(m).reshape(m.shape[0] * m.shape[1], h * w)
    sums = torch.zeros(flat.shape[0], n_rings).index_add_(1, ring, flat)
    counts = torch.bincount(ring, minlength=n_rings).to(flat.dtype)
    avg = (sums / counts)[:, ring].reshape(m.shape)
    return uncentered(avg)



def top_fraction_low_share(masks: Tensor, n_bands: int, q: float = TOP_FRACTION) -> np.ndarray:
    """Per mask, the share of its top-``q`` entries (by value) that lie in the lower half of the ``n_bands``
    radial bands: (N, C, H, W) fft2 layout -> (N,) in [0, 1].

    Unlike the band energy shares, this does not grow with how much of the spectrum a mask keeps: every mask
    is read at the same number of entries, ``round(q · C·H·W)``, so a dense and a sparse mask are compared
    by where they put their largest values. Entries tied with the ``k``-th largest value count with equal
    weight (the expected share under a random tie break), so a mask of ones gives the low half's area share.
    """
    m = as_4d(masks, "masks").detach().double().cpu()
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    n, c, h, w = m.shape
    low = (radial_bands(h, w, int(n_bands)) < int(n_bands) // 2).double()  # centred layout
    low = low.expand(c, h, w).reshape(-1)
    flat = centered(m).reshape(n, -1)
    k = max(1, int(round(q * flat.shape[1])))
    out = np.empty(n)
    for i in range(n):
        v = flat[i]
        t = torch.topk(v, k).values[-1]
        above = v > t
        tied = v == t
        weight = above.double() + tied.double() * (k - int(above.sum())) / int(tied.sum())
        out[i] = float((weight * low).sum() / k)
    return out


def replicate_band_energies(masks: Mapping[str, Sequence[Tensor]], n_bands: int = 64) -> dict[str, dict[str, np.ndarray]]:
    """Band-energy shares of every replicate's dataset mask, the ``energies.json`` ``replicates`` arrays.

    ``masks``: regime -> one (1, C, H, W) mask (fft2 layout) per training-seed replicate, in replicate order
    (row ``i`` = seed ``profile.seed + i`` for every regime, so rows are paired across regimes). Every regime
    must have the same number of replicates. Returns regime -> ``{"radial_share", "angular_share",
    "angular_share_isotropic"}``, each a (replicates, n_bands) float array of :func:`band_energies` rows
    (each row sums to 1); ``angular_share_isotropic`` is the angular share of :func:`ring_averaged` masks;
    plus ``"top_low_share"`` (:func:`top_fraction_low_share`) and ``"mask_mean"``, each (replicates,). This is
    exactly what :mod:`fmask.claims.energies` reads (``energies.replicates.<regime>.<key>``).
    """
    if not masks:
        raise ValueError("masks is empty")
    counts = {r: len(v) for r, v in masks.items()}
    if min(counts.values()) < 1 or len(set(counts.values())) != 1:
        raise ValueError(f"every regime needs the same number (>= 1) of replicate masks; got {counts}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for r, reps in masks.items():
        stack = torch.cat([_single(m, f"{r}[{i}]") for i, m in enumerate(reps)])
        out[r] = {"radial_share": band_energies(stack, n_bands, "radial").numpy(),
                  "angular_share": band_energies(stack, n_bands, "angular").numpy(),
                  "angular_share_isotropic": band_energies(ring_averaged(stack), n_bands, "angular").numpy(),
                  "top_low_share": top_fraction_low_share(stack, n_bands),
                  "mask_mean": stack.double().mean(dim=(1, 2, 3)).numpy()}
    return out


def band_difference_spread(replicates: Mapping[str, Mapping[str, np.ndarray]], reference: str = "vanilla",
                           kind: str = "radial", confidence: float = 0.95) -> dict[str, dict[str, np.ndarray]]:
    """Fig. 4 with spread: per-seed band-share differences of each regime to ``reference`` and their spread.

    ``replicates``: :func:`replicate_band_energies` output. Seeds are paired (row i of every regime is
    seed ``profile.seed + i``), so the difference of seed i is ``share[regime][i] - share[reference][i]``.
    Returns regime (not the reference) -> ``{"per_seed": (k, n_bands), "mean": (n_bands,), "lo": (n_bands,),
    "hi": (n_bands,)}``; ``lo``/``hi`` is the per-band Student-t interval of the mean over the k seeds
    (:func:`fmask.analysis.stats.replicate_summary`), or ``mean`` itself when k = 1 (no spread can be estimated).
    """
    if kind not in ("radial", "angular"):
        raise ValueError(f"kind must be 'radial' or 'angular'; got {kind!r}")
    if reference not in replicates:
        raise ValueError(f"reference {reference!r} is not among the regimes {sorted(replicates)}")
    from fmask.analysis import stats

    key = f"{kind}_share"
    ref = np.asarray(replicates[reference][key], dtype=float)
    out = {}
    for r, v in replicates.items():
        if r == reference:
            continue
        a = np.asarray(v[key], dtype=float)
        if a.shape != ref.shape:
            raise ValueError(f"{r} {key} has shape {a.shape}, {reference} {ref.shape}: replicates must be paired")
        d = a - ref
        mean = d.mean(axis=0)
        lo, hi = mean.copy(), mean.copy()
        if d.shape[0] > 1:
            for b in range(d.shape[1]):
                lo[b], hi[b] = stats.replicate_summary(d[:, b], confidence)["interval"]
        out[r] = {"per_seed": d, "mean": mean, "lo": lo, "hi": hi}
    return out


def band_dominance(masks_a: Tensor, masks_b: Tensor, n_bands: int = 64, kind: str = "radial") -> np.ndarray:
    """Fig. 7: fraction of images whose mask ``a`` has more energy than mask ``b`` in each band.

    ``masks_a``, ``masks_b``: (N, C, H, W) masks of the same N images (e.g. adversarially trained vs
    vanilla model). Each mask is normalised to unit L2 norm first (so the comparison is of spectral
    shape, as in the original), then its per-band energies are compared.
    Returns an (n_bands,) array of fractions of images in [0, 1]. Ties (e.g. both masks empty in a band,
    common for sparse single-image masks) count as "not more", as the original's strict ``> 0`` did.
    """
    a = as_4d(masks_a, "masks_a")
    b = as_4d(masks_b, "masks_b")
    if a.shape != b.shape:
        raise ValueError(f"masks_a {tuple(a.shape)} and masks_b {tuple(b.shape)} must have the same shape")
    ea = band_energies(a, n_bands, kind)
    eb = band_energies(b, n_bands, kind)
    return (ea > eb).float().mean(dim=0).numpy()


def low_frequency_share(masks: Tensor, n_bands: int) -> np.ndarray:
    """Per mask, the share of its energy in the lower half (``n_bands // 2``) of the ``n_bands`` radial bands
    of :func:`band_energies`: (N, C, H, W) -> (N,) in [0, 1] (Fig. 7's comparison as one number per mask)."""
    if int(n_bands) < 2:
        raise ValueError(f"n_bands must be >= 2 for a lower half; got {n_bands}")
    e = band_energies(as_4d(masks, "masks"), int(n_bands), "radial")
    return e[:, : int(n_bands) // 2].sum(dim=1).double().numpy()

