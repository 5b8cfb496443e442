"""Figures of chapter 1 (paper Fig. 1): spectra of sinusoids after pointwise nonlinearities.

Inputs are the results of :func:`fmask.blueshift.activation_spectra` and :func:`fmask.blueshift.intermodulation`
(one-sided magnitude spectra indexed by integer frequency, cycles per window).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from fmask.plots.style import BookFigure, styled

__all__ = ["activation_spectra", "intermodulation"]


@styled
def activation_spectra(res: Any, *, max_freq: int | None = None) -> BookFigure:
    """One panel per activation (|spectrum| vs frequency, the input frequency dashed), two rows when more
    than three activations. ``res``: an :class:`fmask.blueshift.ActivationSpectra`."""
    names = list(res.spectra)
    if not names:
        raise ValueError("no spectra to draw")
    top = max_freq if max_freq is not None else min(res.n // 2, 6 * res.base)
    ncols = min(3, len(names))
    nrows = (len(names) + ncols - 1) // ncols
    fig = BookFigure(figsize=(7.0, 2.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for ax in axes[len(names):]:
        ax.remove()
    for ax, letter, name in zip(axes, "ABCDEFGH", names):
        f = res.freqs[: top + 1]
        ax.stem(f, res.spectra[name][: top + 1], basefmt=" ")
        ax.axvline(res.base, color="tab:red", lw=0.8, ls="--")
        ax.set_title(f"({letter}) {name}")
        ax.set_xlabel("frequency (cycles/window)")
    for ax in axes[::ncols][:nrows]:
        ax.set_ylabel("magnitude")
    return fig


@styled
def intermodulation(res: Mapping[str, Any], *, max_freq: int | None = None) -> BookFigure:
    """Input vs output spectrum of the two-tone example; low-order intermodulation products dashed and
    labelled. ``res``: the dict of :func:`fmask.blueshift.intermodulation`."""
    freqs = np.asarray(res["freqs"])
    top = max_freq if max_freq is not None else min(len(freqs) - 1, 3 * max(res["f1"], res["f2"]))
    fig = BookFigure(figsize=(7.0, 2.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    axes[0].stem(freqs[: top + 1], np.asarray(res["input_magnitude"])[: top + 1], basefmt=" ")
    axes[0].set_title(f"input: frequencies {res['f1']} and {res['f2']}")
    axes[1].stem(freqs[: top + 1], np.asarray(res["magnitude"])[: top + 1], basefmt=" ")
    axes[1].set_title(f"after {res['activation']}")
    ymax = axes[1].get_ylim()[1]
    for name, p in res["products"].items():
        if p["freq"] <= top:
            axes[1].axvline(p["freq"], color="tab:red", lw=0.8, ls="--")
            axes[1].text(p["freq"], ymax * 0.95, name, rotation=90, ha="right", va="top")
    for ax in axes:
        ax.set_xlabel("frequency (cycles/window)")
    axes[0].set_ylabel("magnitude")
    return fig
