"""Figures of spectra: chapter 1 (paper Fig. 1), sinusoids after pointwise nonlinearities; chapter 5 (paper
Fig. 4 with seed spread), band-energy differences of dataset masks over training-seed replicates; chapter 4,
the dataset masks' training traces.

Inputs are the results of :func:`fmask.analysis.blueshift.activation_spectra` and :func:`fmask.analysis.blueshift.intermodulation`
(one-sided magnitude spectra indexed by integer frequency, cycles per window), and of
:func:`fmask.analysis.bands.band_difference_spread` (per band: mean and interval over seeds).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from matplotlib.ticker import MaxNLocator

from fmask.plots.style import BookFigure, band_axes, styled

__all__ = ["activation_spectra", "intermodulation", "band_energy_spread", "dataset_mask_trace"]


@styled
def activation_spectra(res: Any, *, max_freq: int | None = None) -> BookFigure:
    """One panel per activation (|spectrum| vs frequency, the input frequency dashed), two rows when more
    than three activations. ``res``: an :class:`fmask.analysis.blueshift.ActivationSpectra`."""
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
    labelled. ``res``: the dict of :func:`fmask.analysis.blueshift.intermodulation`."""
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


@styled
def band_energy_spread(
    radial: Mapping[str, Mapping[str, Any]],
    angular: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    ylabel: str = "energy share difference",
    band_label: str = "95% t interval over seeds",
) -> BookFigure:
    """Fig. 4 with spread: per band, the mean difference over seeds (line) and its interval (shaded band).

    ``radial`` / ``angular``: comparison name (e.g. ``"B−A (adversarial)"``) -> ``{"mean", "lo", "hi"}``,
    each (n_bands,) (:func:`fmask.analysis.bands.band_difference_spread`; with one seed ``lo == hi == mean`` and
    no band is drawn), optionally ``"per_seed"`` (k, n_bands), drawn as thin lines. One axis per
    partition with a zero line; ``band_label`` names the shaded band in the legend.
    """
    fig, panels = band_axes(radial, angular, height=3.6, ylabel=ylabel)
    for ax, series in panels:
        for i, (name, v) in enumerate(series.items()):
            if not all(k in v for k in ("mean", "lo", "hi")):
                raise ValueError(f"series {name!r} needs 'mean', 'lo' and 'hi'")
            mean, lo, hi = (np.asarray(v[k], dtype=float) for k in ("mean", "lo", "hi"))
            if not (mean.shape == lo.shape == hi.shape) or mean.ndim != 1:
                raise ValueError(f"series {name!r}: mean, lo, hi must be 1-D of one length")
            x = np.arange(mean.size)
            color = f"C{i % 10}"
            ax.plot(x, mean, marker=".", ms=3, lw=1.2, color=color, label=name)
            if np.any(hi > lo):
                ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)
            for row in np.atleast_2d(np.asarray(v.get("per_seed", np.empty((0, mean.size))), dtype=float)):
                ax.plot(x, row, color=color, lw=0.4, alpha=0.5)
        ax.axhline(0.0, color="black", lw=0.8)
    handles, labels = panels[0][0].get_legend_handles_labels()
    from matplotlib.patches import Patch

    handles.append(Patch(color="grey", alpha=0.3))
    labels.append(band_label)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=10, frameon=False)
    return fig


@styled
def dataset_mask_trace(traces: Mapping[str, Mapping[str, Any]], *, accuracy_ratio: float | None = None) -> BookFigure:
    """Dataset-mask training per epoch: objective, masked accuracy, sparsity; one line per network.

    ``traces``: network name -> ``MaskResult.history`` of a dataset mask (:class:`fmask.learners.DatasetMask`):
    ``loss``, ``accuracy`` (%), ``sparsity`` (per epoch), ``initial_accuracy`` (1 entry, unmasked %) and
    ``snapshot_epoch`` (1 entry, 0: none). The epoch of the kept snapshot is ringed on every panel; the
    accuracy panel draws the original's snapshot threshold ``accuracy_ratio`` x the unmasked accuracy
    (dashed; default :data:`fmask.core.objective.ACCURACY_RATIO`, 0.99) per network.
    """
    if not traces:
        raise ValueError("traces is empty")
    if accuracy_ratio is None:
        from fmask.core.objective import ACCURACY_RATIO as accuracy_ratio
    panels = (("loss", "objective"), ("accuracy", "masked accuracy (%)"), ("sparsity", "sparsity mean(M)"))
    fig = BookFigure(figsize=(7.0, 2.8), layout="constrained")
    axes = fig.subplots(1, 3)
    for i, (name, h) in enumerate(traces.items()):
        missing = [k for k, _ in panels if k not in h]
        if missing:
            raise ValueError(f"trace {name!r} lacks {missing}")
        color = f"C{i % 10}"
        snap = int(np.asarray(h.get("snapshot_epoch", [0]), dtype=float).reshape(-1)[0])
        for ax, (key, title) in zip(axes, panels):
            v = np.asarray(h[key], dtype=float).reshape(-1)
            x = np.arange(1, v.size + 1)
            ax.plot(x, v, marker=".", ms=3, lw=1.2, color=color, label=name if key == "loss" else None)
            if 1 <= snap <= v.size:
                ax.plot([snap], [v[snap - 1]], marker="o", ms=7, mfc="none", color=color)
            if key == "accuracy" and "initial_accuracy" in h:
                init = float(np.asarray(h["initial_accuracy"], dtype=float).reshape(-1)[0])
                ax.axhline(accuracy_ratio * init, color=color, lw=0.8, ls="--")
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5), fontsize=10, frameon=False)
    return fig
