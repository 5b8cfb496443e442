"""Scores that compare what a Fourier mask finds with what a Fourier heat map finds (chapter 9, beyond the paper).

Frequency maps (heat maps, masks, supports) are in :func:`torch.fft.fft2` **index layout** (DC at ``[0, 0]``);
bands are the radial bands of :func:`fmask.core.spectral.radial_bands` or a band map in the centred layout.

:func:`band_rank_agreement` ranks the radial bands by the mask's mean value and by the heat map's mean error
and gives Spearman's ρ with a bootstrap interval over images (from
``fmask.analysis.heatmap.fourier_heat_map(..., per_image=True)``); :func:`agreement_verdict` is the chapter's
stated rule (agree / disagree / undecided). :func:`recall_at_k` scores either tool against a known support,
e.g. the planted-frequency benchmark of :func:`fmask.analysis.planted.planted_benchmark` (a small
:class:`~fmask.analysis.planted.PlantedNet` trained in seconds on
:func:`fmask.data.synthetic.planted_frequency_dataset`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from fmask.analysis.evaluation import check_int
from fmask.core.spectral import centered, radial_bands

__all__ = ["band_mean", "rank_agreement", "recall_at_k", "band_rank_agreement", "agreement_verdict"]


def band_mean(values: Tensor, bands: str | Tensor = "radial", n_bands: int = 16) -> Tensor:
    """NaN-ignoring mean of a frequency map over bands: (H, W) → (n_bands,), (C, H, W) → (C, n_bands).

    ``values`` is in **fft2 layout** (e.g. a heat map); ``bands`` is ``"radial"`` (the
    :func:`fmask.core.spectral.radial_bands` map with ``n_bands`` bands) or a LongTensor (H, W) band map in the
    **centred** layout (then ``n_bands = bands.max() + 1``). A band with no finite value gets NaN. Use with
    :func:`fmask.core.spectral.band_energy` of a mask to compare both per band (:func:`rank_agreement`).
    """
    if not isinstance(values, Tensor) or values.dim() not in (2, 3) or values.is_complex():
        raise ValueError("values must be a real tensor (H, W) or (C, H, W) in fft2 layout, got "
                         f"{type(values).__name__} {tuple(getattr(values, 'shape', ()))}")
    h, w = values.shape[-2:]
    if isinstance(bands, str):
        if bands != "radial":
            raise ValueError(f"bands must be 'radial' or a LongTensor (H, W), got {bands!r}")
        bmap = radial_bands(h, w, check_int("n_bands", n_bands))
        nb = n_bands
    elif isinstance(bands, Tensor):
        if tuple(bands.shape) != (h, w) or bands.is_floating_point() or bands.dtype == torch.bool:
            raise ValueError(f"band map must be an integer tensor of shape {(h, w)}, got "
                             f"{bands.dtype} {tuple(bands.shape)}")
        if int(bands.min()) < 0:
            raise ValueError("band map values must be >= 0")
        bmap = bands.long()
        nb = int(bmap.max()) + 1
    else:
        raise ValueError(f"bands must be 'radial' or a LongTensor (H, W), got {type(bands).__name__}")
    v = centered(values.to(torch.float64)).reshape(-1, h * w)
    ok = torch.isfinite(v)
    idx = bmap.reshape(1, -1).expand_as(v)
    s = torch.zeros(v.shape[0], nb, dtype=torch.float64).scatter_add_(1, idx, torch.where(ok, v, 0.0))
    cnt = torch.zeros(v.shape[0], nb, dtype=torch.float64).scatter_add_(1, idx, ok.double())
    out = torch.where(cnt > 0, s / cnt.clamp_min(1), torch.full_like(s, float("nan")))
    return out[0] if values.dim() == 2 else out


def _average_ranks(v: Tensor) -> Tensor:
    """Ranks 1..n with ties given their average rank (float64)."""
    order = torch.argsort(v, stable=True)
    sv = v[order]
    ranks = torch.empty_like(v)
    n = v.numel()
    i = 0
    while i < n:
        j = i
        while j + 1 < n and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _spearman_own(a: Tensor, b: Tensor) -> float:
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / den if den > 0 else float("nan")


def rank_agreement(mask_energy_by_band, heatmap_by_band, *, method: str = "auto") -> float:
    """Spearman rank correlation between two per-band profiles (e.g. a mask's band energy and a heat map's
    band mean), in [-1, 1].

    Both inputs are 1-D of equal length (tensors, arrays or sequences). Pairs where either value is NaN are
    dropped (bands a heat map did not evaluate). Tied values get average ranks. Returns NaN when fewer than two
    pairs remain or one side is constant (the correlation is undefined). ``method``: ``"auto"`` (scipy's
    ``spearmanr`` when scipy is importable, else fmask's own implementation), ``"scipy"`` or ``"own"``.
    """
    if method not in ("auto", "scipy", "own"):
        raise ValueError(f"method must be 'auto', 'scipy' or 'own', got {method!r}")
    a = torch.as_tensor(mask_energy_by_band, dtype=torch.float64).detach().cpu()
    b = torch.as_tensor(heatmap_by_band, dtype=torch.float64).detach().cpu()
    if a.dim() != 1 or b.dim() != 1 or a.shape != b.shape:
        raise ValueError(f"rank_agreement expects two 1-D profiles of equal length, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    keep = ~(torch.isnan(a) | torch.isnan(b))
    a, b = a[keep], b[keep]
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        raise ValueError("profiles must not contain inf")
    if a.numel() < 2 or bool((a == a[0]).all()) or bool((b == b[0]).all()):
        return float("nan")
    if method in ("auto", "scipy"):
        try:
            from scipy.stats import spearmanr
        except ImportError:
            if method == "scipy":
                raise
        else:
            return float(spearmanr(a.numpy(), b.numpy()).statistic)
    return _spearman_own(a, b)


def recall_at_k(score_map: Tensor, support: Tensor, k: int, *, exclude: Tensor | None = None) -> float:
    """Fraction of the ``support`` entries found among the ``k`` highest entries of ``score_map``.

    ``score_map`` (e.g. a mask or a heat map) and ``support`` (bool, e.g. planted frequencies) have the same
    shape — (H, W) or (C, H, W), fft2 layout; ``exclude`` (bool, same shape, optional) removes entries from the
    ranking and from the support (e.g. DC). NaN scores (frequencies a heat map did not evaluate) are never
    selected, so a support entry with a NaN score counts as missed. Ties at the k-th value are resolved by
    their expected value under uniform random tie-breaking (a mask of all ones scores ``k / #entries`` rather
    than whatever order a sort happens to give), so the result is deterministic and unbiased. Returns
    ``E|top-k ∩ support| / |support ∖ exclude|`` in [0, 1]; with ``k = |support|`` this is also the precision.
    """
    if not isinstance(score_map, Tensor) or not isinstance(support, Tensor):
        raise ValueError("score_map and support must be tensors")
    if score_map.is_complex() or score_map.dim() not in (2, 3):
        raise ValueError(f"score_map must be real (H, W) or (C, H, W), got shape {tuple(score_map.shape)}")
    if support.dtype != torch.bool or support.shape != score_map.shape:
        raise ValueError(f"support must be a bool tensor shaped like score_map {tuple(score_map.shape)}, got "
                         f"{support.dtype} {tuple(support.shape)}")
    k = check_int("k", k)
    keep = torch.ones(score_map.shape, dtype=torch.bool)
    if exclude is not None:
        if not isinstance(exclude, Tensor) or exclude.dtype != torch.bool or exclude.shape != score_map.shape:
            raise ValueError("exclude must be a bool tensor shaped like score_map")
        keep = ~exclude.cpu()
    n_sup = int((support.cpu() & keep).sum())
    if n_sup == 0:
        raise ValueError("support has no (non-excluded) entries")
    valid = keep & ~torch.isnan(score_map.detach().cpu().double())
    s = score_map.detach().cpu().double()[valid]
    t = support.cpu()[valid]
    if k >= s.numel():
        return float(t.sum()) / n_sup
    kth = torch.topk(s, k).values[-1]
    above = s > kth
    tied = s == kth
    need = k - int(above.sum())
    hits = float(t[above].sum()) + need * float(t[tied].sum()) / float(tied.sum())
    return hits / n_sup


def band_rank_agreement(
    mask: Tensor,
    per_image_errors: Tensor,
    n_bands: int = 16,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Spearman ρ between a mask's and a heat map's radial-band profiles, with a bootstrap interval over images.

    Both profiles are **band means** (:func:`band_mean`): the mean mask value of a band (the fraction of the
    band the mask keeps) and the mean error rate of the band's evaluated frequencies. Means, not
    :func:`fmask.core.spectral.band_energy` norms, so neither profile grows with the band's area.

    Args:
        mask: real (H, W) or (C, H, W) / (1, C, H, W) mask in fft2 layout (channels are averaged).
        per_image_errors: (N, H, W) 0/1 errors from :func:`fourier_heat_map` with ``per_image=True``
            (NaN at frequencies not evaluated); their mean over images is the heat map.
        n_bands: radial bands (:func:`fmask.core.spectral.radial_bands`).
        n_resamples: bootstrap resamples of the N images (0: no interval); the mask is fixed.
        confidence: of the percentile interval.
        seed: of ``numpy.random.default_rng`` (same inputs and seed → same interval).

    Returns:
        dict with ``rho`` (Spearman ρ of the two profiles, NaN if undefined), ``lo``/``hi`` (the percentile
        interval of ρ over resamples whose ρ is defined; NaN without resamples), ``n_undefined`` (resamples
        whose heat-map profile was constant), ``mask_profile`` and ``heat_profile`` (lists, NaN for a band
        without evaluated frequency) and ``n_bands``.
    """
    import numpy as np

    if not isinstance(per_image_errors, Tensor) or per_image_errors.dim() != 3:
        raise ValueError("per_image_errors must be an (N, H, W) tensor (fourier_heat_map(..., per_image=True)), "
                         f"got {tuple(getattr(per_image_errors, 'shape', ()))}")
    m = torch.as_tensor(mask).detach().cpu().to(torch.float64)
    while m.dim() > 3 and m.shape[0] == 1:
        m = m[0]
    if m.dim() == 3:
        m = m.mean(0)
    if m.dim() != 2 or tuple(m.shape) != tuple(per_image_errors.shape[-2:]):
        raise ValueError(f"mask must be (H, W) or (C, H, W) with (H, W) = {tuple(per_image_errors.shape[-2:])}, "
                         f"got {tuple(torch.as_tensor(mask).shape)}")
    n_bands = check_int("n_bands", n_bands, lo=2)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise ValueError(f"n_resamples must be an int >= 0, got {n_resamples!r}")
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    mask_prof = band_mean(m, "radial", n_bands)
    per_img = band_mean(per_image_errors.to(torch.float64), "radial", n_bands)  # (N, n_bands)
    heat_prof = per_img.mean(0)
    rho = rank_agreement(mask_prof, heat_prof)
    lo = hi = float("nan")
    n_undef = 0
    if n_resamples > 0:
        rng = np.random.default_rng(int(seed))
        arr = per_img.numpy()
        n = arr.shape[0]
        stats = []
        for _ in range(n_resamples):
            r = rank_agreement(mask_prof, torch.from_numpy(arr[rng.integers(0, n, size=n)].mean(0)), method="own")
            if r == r:
                stats.append(r)
            else:
                n_undef += 1
        if stats:
            lo, hi = (float(v) for v in np.quantile(np.asarray(stats), [(1 - confidence) / 2, (1 + confidence) / 2]))
    return {"rho": rho, "lo": lo, "hi": hi, "n_undefined": n_undef, "n_resamples": int(n_resamples),
            "mask_profile": mask_prof.tolist(), "heat_profile": heat_prof.tolist(), "n_bands": n_bands}


def agreement_verdict(lo: float, hi: float, rho: float) -> str:
    """The rule chapter 9 states ahead of its numbers: ``"agree"`` when the whole interval of ρ lies above 0
    (the mask keeps most where the heat map shows most sensitivity), ``"disagree"`` when it lies below 0,
    ``"undecided"`` when it contains 0. Without an interval (NaN bounds) the point estimate decides with the
    bar |ρ| >= 0.5; an undefined ρ is ``"undecided"``."""
    if rho != rho:
        return "undecided"
    if lo == lo and hi == hi:
        return "agree" if lo > 0 else "disagree" if hi < 0 else "undecided"
    return "agree" if rho >= 0.5 else "disagree" if rho <= -0.5 else "undecided"
