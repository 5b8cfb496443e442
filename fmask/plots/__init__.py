"""All of the book's figures (the only place in fmask that draws). Every function returns a
:class:`~fmask.plots.style.BookFigure` (no pyplot state; at most 7 in wide; 10 pt text; high-dpi PNG).

* :mod:`fmask.plots.masks` -- masks, mask differences, band partitions and energies, image grids, learning
  curves, UMAP scatter (Figs. 3-8);
* :mod:`fmask.plots.signals` -- the blue-shift spectra (Fig. 1);
* :mod:`fmask.plots.data` -- sample images, their spectra, the radial power spectrum (chapter 2).

Inputs follow CONTRIBUTING.md: images (N, C, H, W) in [0, 1]; masks in ``torch.fft.fft2`` layout (centred
here with :func:`fmask.spectral.centered` before drawing).
"""
from __future__ import annotations

from fmask.plots import data, heatmaps, signals
from fmask.plots.masks import (
    DIFF_CMAP,
    MASK_CMAP,
    band_dominance_bars,
    band_energy_lines,
    band_partitions,
    dataset_masks_figure,
    difference_grid,
    image_grid,
    learning_curves,
    mask_grid,
    umap_scatter,
)
from fmask.plots.style import BookFigure

__all__ = [
    "BookFigure",
    "MASK_CMAP",
    "DIFF_CMAP",
    "mask_grid",
    "difference_grid",
    "dataset_masks_figure",
    "band_partitions",
    "band_energy_lines",
    "band_dominance_bars",
    "image_grid",
    "learning_curves",
    "umap_scatter",
    "data",
    "signals",
]
