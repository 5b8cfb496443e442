"""Density-fair reading of dataset masks (Fig. 4): where a mask puts its largest entries, not how many it
keeps. Numpy only, so the claims ledger can read these settings without importing torch.

* :data:`TOP_FRACTION` -- the share of a mask's entries that :func:`fmask.analysis.bands.top_fraction_low_share`
  reads (fixed before any book run);
* :func:`density_correlations` -- how strongly each Fig. 4 statistic follows the mask's mean over a build's masks.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["TOP_FRACTION", "density_correlations"]

#: the fraction of a mask's entries whose location the density-fair Fig. 4 statistic reads (fixed in advance)
TOP_FRACTION = 0.05



def density_correlations(replicates: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
    """How much each Fig. 4 statistic follows the mask's density: over every dataset mask in ``replicates``
    (:func:`fmask.analysis.bands.replicate_band_energies`; all regimes and seeds), the Pearson correlation of the mask mean with
    the low-half energy share (the paper's unit-norm energies) and with :func:`fmask.analysis.bands.top_fraction_low_share`.
    Returns ``{"n_masks": int, "correlation": {statistic: r or None}}`` (None when a statistic is constant)."""
    mean = np.concatenate([np.asarray(rep["mask_mean"], float) for rep in replicates.values()])
    stats_ = {
        "low-half energy share (paper's unit-norm energies)": np.concatenate(
            [np.asarray(rep["radial_share"], float)[:, : np.asarray(rep["radial_share"]).shape[1] // 2].sum(axis=1)
             for rep in replicates.values()]),
        f"low-half share of the top {100 * TOP_FRACTION:g}% entries": np.concatenate(
            [np.asarray(rep["top_low_share"], float) for rep in replicates.values()]),
    }
    out = {}
    for name, v in stats_.items():
        ok = mean.size >= 2 and np.std(mean) > 0 and np.std(v) > 0
        out[name] = float(np.corrcoef(mean, v)[0, 1]) if ok else None
    return {"n_masks": int(mean.size), "correlation": out}
