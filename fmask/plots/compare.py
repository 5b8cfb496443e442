"""Chapter 11's figures: two architectures side by side (dataset masks; Fig. 4 radial curves; accuracies).

Masks are in ``torch.fft.fft2`` layout (centred here before drawing); curves are per-band values in the
band order of :func:`fmask.core.spectral.radial_bands` (low -> high). Every function returns a
:class:`~fmask.plots.style.BookFigure`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from fmask.plots.masks import MASK_CMAP, display_mask
from fmask.plots.style import BookFigure, styled

__all__ = ["architecture_masks_grid", "architecture_band_curves", "architecture_accuracy_bars"]


@styled
def architecture_masks_grid(rows: Mapping[str, Mapping[str, Tensor]], *, panel_size: float = 1.4,
                            cmap: str = MASK_CMAP) -> Figure:
    """One row per architecture (``rows``: row label -> {column title -> mask (1, C, H, W)}), centred masks
    on a shared [0, 1] scale and one colourbar; columns follow the first row's order."""
    if not rows or not all(rows.values()):
        raise ValueError("need at least one architecture with at least one mask")
    cols = list(next(iter(rows.values())))
    fig = BookFigure(figsize=(panel_size * len(cols) + 1.2, panel_size * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    im = None
    for i, (label, masks) in enumerate(rows.items()):
        missing = [c for c in cols if c not in masks]
        if missing:
            raise ValueError(f"row {label!r} lacks the masks {missing}")
        for j, c in enumerate(cols):
            ax = axes[i, j]
            im = ax.imshow(display_mask(masks[c]), cmap=cmap, vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(c)
            if j == 0:
                ax.set_ylabel(label)
    fig.colorbar(im, ax=list(axes.ravel()), shrink=0.8, label="mask")
    return fig


@styled
def architecture_band_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], *,
                             ylabel: str = "energy share difference") -> Figure:
    """Fig. 4 (radial) per architecture: one panel per architecture (``curves``: panel title -> {line label
    -> per-band values}), shared y axis, zero line, one legend."""
    if not curves or not all(curves.values()):
        raise ValueError("need at least one architecture with at least one curve")
    fig = BookFigure(figsize=(3.5 * len(curves), 3.4), layout="constrained")
    axes = fig.subplots(1, len(curves), squeeze=False, sharey=True)[0]
    for ax, (title, series) in zip(axes, curves.items()):
        for name, v in series.items():
            v = np.asarray(v, dtype=float)
            ax.plot(np.arange(v.size), v, marker=".", ms=3, lw=1.2, label=name)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("radial frequency band (low → high)")
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)
    return fig


@styled
def architecture_accuracy_bars(values: Mapping[str, Mapping[str, float]],
                               intervals: Mapping[str, Mapping[str, Sequence[float]]] | None = None, *,
                               ylabel: str = "accuracy (%)") -> Figure:
    """Grouped bars: ``values`` architecture -> {column -> fraction in [0, 1]} drawn in percent, optional
    ``intervals`` (same keys, (lo, hi) fractions) as error bars. Columns follow the first architecture."""
    if not values or not all(values.values()):
        raise ValueError("need at least one architecture with at least one value")
    cols = list(next(iter(values.values())))
    fig = BookFigure(figsize=(max(3.5, 1.1 * len(cols) + 1.5), 3.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(values)
    x = np.arange(len(cols))
    for k, (arch, vals) in enumerate(values.items()):
        v = np.array([100 * float(vals[c]) for c in cols])
        err = None
        if intervals and arch in intervals:
            iv = np.array([[100 * float(intervals[arch][c][0]), 100 * float(intervals[arch][c][1])] for c in cols])
            err = np.clip(np.vstack([v - iv[:, 0], iv[:, 1] - v]), 0, None)
        ax.bar(x + (k - (len(values) - 1) / 2) * width, v, width, yerr=err, capsize=3, label=arch)
    ax.set_xticks(x, cols)
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)
    return fig
