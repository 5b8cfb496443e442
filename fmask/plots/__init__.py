"""All of the book's figures (the only place in fmask that draws). Every function returns a
:class:`~fmask.plots.style.BookFigure` (no pyplot state; at most 7 in wide; 10 pt text; high-dpi PNG).

* :mod:`fmask.plots.masks` -- masks, mask differences, band partitions and energies, image grids, learning
  curves, UMAP scatter (Figs. 3-8);
* :mod:`fmask.plots.signals` -- the blue-shift spectra (Fig. 1) and Fig. 4 with seed spread
  (:func:`band_energy_spread`), the dataset masks' training traces (:func:`dataset_mask_trace`);
* :mod:`fmask.plots.data` -- sample images, their spectra, the radial power spectrum (chapter 2);
* :mod:`fmask.plots.heatmaps` -- masks beside Fourier heat maps and pass-band curves (chapter 9).

Inputs follow CONTRIBUTING.md: images (N, C, H, W) in [0, 1]; masks in ``torch.fft.fft2`` layout (centred
here with :func:`fmask.spectral.centered` before drawing).
"""
from __future__ import annotations

from fmask.plots import data, heatmaps, masks, signals
from fmask.plots.masks import *  # noqa: F401,F403 - the mask figures are the package's main API
from fmask.plots.masks import __all__ as _MASK_FIGURES
from fmask.plots.signals import band_energy_spread, dataset_mask_trace

__all__ = [*_MASK_FIGURES, "band_energy_spread", "dataset_mask_trace", "masks", "data", "signals", "heatmaps"]
