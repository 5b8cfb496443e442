"""All of the book's figures (the only place in fmask that draws). Every function returns a
:class:`~fmask.plots.style.BookFigure` (no pyplot state; at most 7 in wide; 10 pt text; high-dpi PNG).

* :mod:`fmask.plots.masks` -- masks, mask differences, band partitions and energies, image grids, learning
  curves, UMAP scatter (Figs. 3-8);
* :mod:`fmask.plots.signals` -- the blue-shift spectra (Fig. 1) and Fig. 4 with seed spread
  (:func:`band_energy_spread`), the dataset masks' training traces (:func:`dataset_mask_trace`);
* :mod:`fmask.plots.data` -- sample images, their spectra, the radial power spectrum (chapter 2);
* :mod:`fmask.plots.heatmaps` -- masks beside Fourier heat maps and pass-band curves (chapter 9).
* :mod:`fmask.plots.singles` -- Figs. 5-7 of the single-image chapter (class masks, Fig. 6 panels, Fig. 7 variants);
* :mod:`fmask.plots.compare` -- two architectures side by side (chapter 11).

Inputs follow CONTRIBUTING.md: images (N, C, H, W) in [0, 1]; masks in ``torch.fft.fft2`` layout (centred
here with :func:`fmask.core.spectral.centered` before drawing).
"""
from __future__ import annotations

from fmask.plots import compare, data, heatmaps, masks, signals, singles
from fmask.plots.compare import architecture_accuracy_bars, architecture_band_curves, architecture_masks_grid
from fmask.plots.masks import *  # noqa: F401,F403 - the mask figures are the package's main API
from fmask.plots.masks import __all__ as _MASK_FIGURES
from fmask.plots.signals import band_energy_spread, dataset_mask_trace
from fmask.plots.singles import class_masks_figure, dominance_comparison, fig6_panels

__all__ = [*_MASK_FIGURES, "band_energy_spread", "dataset_mask_trace", "class_masks_figure", "fig6_panels",
           "dominance_comparison", "architecture_masks_grid", "architecture_band_curves",
           "architecture_accuracy_bars", "masks", "data", "signals", "heatmaps", "singles", "compare"]
