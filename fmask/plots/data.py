"""Figures of chapter 2: sample images with their spectra, and the radially averaged power spectrum."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from fmask.plots.style import BookFigure, styled

__all__ = ["samples_and_spectra", "radial_power"]


@styled
def samples_and_spectra(images: torch.Tensor, log_spectra: torch.Tensor, titles: Sequence[str]) -> BookFigure:
    """Two rows: the images ((K, 1, H, W) in [0, 1], grey) and their centred log-magnitude spectra (K, 1, H, W),
    one column per image titled by ``titles``; one colour bar for the spectra."""
    k = int(images.shape[0])
    if k < 1 or log_spectra.shape[0] != k or len(titles) != k:
        raise ValueError(f"need K >= 1 images, K spectra and K titles; got {images.shape[0]}, "
                         f"{log_spectra.shape[0]}, {len(titles)}")
    fig = BookFigure(figsize=(1.4 * k + 0.8, 3.2), layout="constrained")
    axes = fig.subplots(2, k, squeeze=False)
    im = None
    for j in range(k):
        axes[0, j].imshow(images[j, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(titles[j])
        im = axes[1, j].imshow(log_spectra[j, 0].cpu().numpy(), cmap="magma")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("log |FFT|")
    fig.colorbar(im, ax=list(axes[1]), shrink=0.9, label="log magnitude")
    return fig


@styled
def radial_power(radial: np.ndarray, alpha: float | None = None) -> BookFigure:
    """Log-log plot of a radially averaged power spectrum (band k = radius k+1), with the fitted
    ``1/f^alpha`` line when ``alpha`` is given (fitted through the curve's geometric centre)."""
    r = np.asarray(radial, dtype=float)
    if r.ndim != 1 or r.size < 2:
        raise ValueError(f"radial must be a 1-D array with >= 2 bands; got shape {r.shape}")
    f = np.arange(1, r.size + 1)
    fig = BookFigure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.loglog(f, r, label="mean power")
    if alpha is not None:
        ok = r > 0
        c = np.exp(np.mean(np.log(r[ok]) + alpha * np.log(f[ok])))
        ax.loglog(f, c * f ** (-alpha), ls="--", color="gray", label=f"1/f^{alpha:.2f}")
        ax.legend(frameon=False)
    ax.set_xlabel("radial band (low → high frequency)")
    ax.set_ylabel("mean power")
    return fig
