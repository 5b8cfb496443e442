"""Mask, band and image figures (Figs. 3-8). Every function returns a :class:`BookFigure`.

Never calls ``plt.show()``; figures are created without pyplot state (:class:`BookFigure`, a
:class:`matplotlib.figure.Figure` that renders itself as PNG in Jupyter), so the library runs headless and
a notebook shows a figure by leaving it as the last expression of a cell (or ``IPython.display.display``).

Inputs follow CONTRIBUTING.md: images (N, C, H, W) in [0, 1]; masks in ``torch.fft.fft2`` layout (they
are centred here with :func:`fmask.core.spectral.centered` before drawing).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from torch import Tensor

from fmask.plots.style import BookFigure, band_axes, styled
from fmask.core.spectral import angular_bands, centered, radial_bands

__all__ = [
    "BookFigure",
    "MASK_CMAP",
    "DIFF_CMAP",
    "display_mask",
    "mask_grid",
    "difference_grid",
    "dataset_masks_figure",
    "band_partitions",
    "band_energy_lines",
    "band_dominance_bars",
    "image_grid",
    "learning_curves",
    "umap_scatter",
]

MASK_CMAP = "turbo"  # the original's colormap for masks
DIFF_CMAP = "coolwarm"  # diverging; with a TwoSlopeNorm centred at 0, "no difference" is the middle colour


def display_mask(m: Tensor | np.ndarray, already_centered: bool = False) -> np.ndarray:
    """What a mask figure draws: a (C, H, W) / (1, C, H, W) / (H, W) mask in fft2 layout -> the (H, W) float32
    array of its channel mean with DC moved to the centre (:func:`fmask.core.spectral.centered`; skipped when
    ``already_centered``). ``ValueError`` for a batch of several masks or another shape."""
    t = torch.as_tensor(m).detach().float().cpu()
    while t.dim() > 3:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single mask, got shape {tuple(t.shape)}")
        t = t[0]
    if t.dim() == 3:
        t = t.mean(dim=0)
    if t.dim() != 2:
        raise ValueError(f"a mask must have shape (H, W), (C, H, W) or (1, C, H, W); got {tuple(t.shape)}")
    return (t if already_centered else centered(t)).numpy()


def _grid_axes(fig: Figure, n: int, ncols: int):
    if n < 1:
        raise ValueError("nothing to draw (0 panels)")
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return axes[:n]


def _image_grid(arrays: Mapping[str, np.ndarray], *, ncols: int, panel_size: float, colorbar: bool, label: str,
                **imshow_kw) -> Figure:
    """Titled (H, W) images in a grid, one shared colourbar labelled ``label``; ``imshow_kw`` sets the colours."""
    n = len(arrays)
    ncols = max(1, min(ncols, n or 1))
    nrows = (n + ncols - 1) // ncols if n else 1
    fig = BookFigure(figsize=(panel_size * ncols + (0.8 if colorbar else 0), panel_size * nrows), layout="constrained")
    axes = _grid_axes(fig, n, ncols)
    im = None
    for ax, (title, a) in zip(axes, arrays.items()):
        im = ax.imshow(a, **imshow_kw)
        ax.set_title(title)
        ax.set_axis_off()
    if colorbar and im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.8, label=label)
    return fig


@styled
def mask_grid(
    masks: Mapping[str, Tensor],
    *,
    ncols: int = 5,
    cmap: str = MASK_CMAP,
    colorbar: bool = True,
    panel_size: float = 2.2,
) -> Figure:
    """Centred masks side by side (Fig. 3 top row). ``masks``: title -> mask in fft2 layout.

    All panels share the colour range [0, 1]. One image per panel plus one shared colourbar.
    """
    arrays = {title: display_mask(m) for title, m in masks.items()}
    return _image_grid(arrays, ncols=ncols, panel_size=panel_size, colorbar=colorbar, label="mask value",
                       cmap=cmap, vmin=0.0, vmax=1.0)


@styled
def difference_grid(
    diffs: Mapping[str, Tensor | np.ndarray],
    *,
    ncols: int = 4,
    cmap: str = DIFF_CMAP,
    colorbar: bool = True,
    panel_size: float = 2.2,
    vmax: float | None = None,
) -> Figure:
    """Centred mask differences (already centred, (H, W)) with a diverging map centred at 0.

    Uses :class:`~matplotlib.colors.TwoSlopeNorm` with ``vcenter=0`` and a symmetric range
    ``[-vmax, vmax]`` (default: the largest absolute difference), so zero difference is the colormap's
    middle (white for ``coolwarm``) in every panel. The original min-max normalised the differences
    instead, which moves zero off the middle whenever the extremes are not symmetric.
    """
    n = len(diffs)
    arrays = {k: np.asarray(torch.as_tensor(v).detach().float().cpu()) for k, v in diffs.items()}
    for k, a in arrays.items():
        if a.ndim != 2:
            raise ValueError(f"difference {k!r} must be a centred (H, W) array; got shape {a.shape}")
    if vmax is None:
        vmax = max((float(np.abs(a).max()) for a in arrays.values()), default=0.0)
    vmax = vmax if vmax > 0 else 1e-12
    norm = TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax)
    return _image_grid(arrays, ncols=ncols, panel_size=panel_size, colorbar=colorbar, label="difference",
                       cmap=cmap, norm=norm)


@styled
def dataset_masks_figure(
    masks: Mapping[str, Tensor],
    diffs: Mapping[str, Tensor | np.ndarray],
    *,
    mask_cmap: str = MASK_CMAP,
    diff_cmap: str = DIFF_CMAP,
    panel_size: float = 2.0,
) -> Figure:
    """Fig. 3: the centred masks (top row) and their differences to the reference (bottom row).

    ``masks``: title -> mask (fft2 layout); ``diffs``: title -> centred (H, W) difference. Masks use
    [0, 1]; differences a symmetric :class:`TwoSlopeNorm` centred at 0. Two colourbars.
    """
    if not masks or not diffs:
        raise ValueError("need at least one mask and one difference")
    ncols = max(len(masks), len(diffs))
    fig = BookFigure(figsize=(panel_size * ncols + 1.0, 2 * panel_size + 0.3), layout="constrained")
    axes = fig.subplots(2, ncols, squeeze=False)
    im = None
    for j, (title, m) in enumerate(masks.items()):
        im = axes[0, j].imshow(display_mask(m), cmap=mask_cmap, vmin=0.0, vmax=1.0)
        axes[0, j].set_title(title)
    fig.colorbar(im, ax=list(axes[0, : len(masks)]), shrink=0.8, label="mask")
    arrays = {k: np.asarray(torch.as_tensor(v).detach().float().cpu()) for k, v in diffs.items()}
    vmax = max(float(np.abs(a).max()) for a in arrays.values()) or 1e-12
    norm = TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax)
    offset = ncols - len(arrays)  # right-aligned: (B−A) under (B) when the first mask is the reference
    for j, (title, a) in enumerate(arrays.items()):
        im = axes[1, j + offset].imshow(a, cmap=diff_cmap, norm=norm)
        axes[1, j + offset].set_title(title)
    fig.colorbar(im, ax=list(axes[1, offset : offset + len(arrays)]), shrink=0.8, label="difference")
    for ax in axes.ravel():
        ax.set_axis_off()
    return fig


@styled
def band_partitions(size: tuple[int, int] = (64, 64), n_bands: int = 64, *, cmap: str = "viridis") -> Figure:
    """The radial and angular band maps (centred layout) side by side: 2 images."""
    h, w = size
    fig = BookFigure(figsize=(7.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (title, bmap) in zip(
        axes, (("radial bands", radial_bands(h, w, n_bands)), ("angular bands", angular_bands(h, w, n_bands)))
    ):
        im = ax.imshow(bmap.numpy(), cmap=cmap, vmin=0, vmax=n_bands - 1)
        ax.set_title(f"{title} ({n_bands})")
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="band index (low → high)")
    return fig


@styled
def band_energy_lines(
    radial: Mapping[str, np.ndarray],
    angular: Mapping[str, np.ndarray] | None = None,
    *,
    ylabel: str = "energy difference",
) -> Figure:
    """Fig. 4: per-band curves (one line per comparison, e.g. ``B−A``) for radial and angular bands.

    One axis for ``radial`` and, when given, one for ``angular``; a zero line on each.
    """
    fig, panels = band_axes(radial, angular, height=3.4, ylabel=ylabel)
    for ax, series in panels:
        for name, v in series.items():
            v = np.asarray(v, dtype=float)
            ax.plot(np.arange(v.size), v, marker=".", ms=3, lw=1.2, label=name)
        ax.axhline(0.0, color="black", lw=0.8)
    handles, labels = panels[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=10, frameon=False)
    return fig


@styled
def band_dominance_bars(
    radial: np.ndarray, angular: np.ndarray | None = None, *, ylabel: str = "images (%)"
) -> Figure:
    """Fig. 7: per band, the percentage of images whose mask ``a`` beats mask ``b`` (input: fractions).

    One bar axis for ``radial`` and, when given, one for ``angular``; a dashed 50 % line.
    """
    panels = [("radial frequency band (low → high)", np.asarray(radial, dtype=float))]
    if angular is not None:
        panels.append(("angular frequency band (0 → 2π)", np.asarray(angular, dtype=float)))
    fig = BookFigure(figsize=(3.5 * len(panels), 3.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (xlabel, v) in zip(axes, panels):
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"expected a non-empty 1-D array of fractions; got shape {v.shape}")
        ax.bar(np.arange(v.size), 100.0 * v, color="tab:blue", edgecolor="black", lw=0.3)
        ax.axhline(50.0, color="gray", ls="--", lw=0.8)
        ax.set_ylim(0, 100)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    return fig


def _to_display_image(x: Tensor | np.ndarray) -> tuple[np.ndarray, str | None]:
    t = torch.as_tensor(x).detach().float().cpu()
    if t.dim() == 3:
        if t.shape[0] == 1:
            return t[0].clamp(0, 1).numpy(), "gray"
        if t.shape[0] == 3:
            return t.permute(1, 2, 0).clamp(0, 1).numpy(), None
    if t.dim() == 2:
        return t.numpy(), "gray"
    raise ValueError(f"an image must be (1|3, H, W) or (H, W); got {tuple(t.shape)}")


@styled
def image_grid(
    rows: Mapping[str, Tensor | Sequence[Tensor]],
    *,
    col_titles: Sequence[str] | None = None,
    panel_size: float = 1.8,
    mask_rows: Sequence[str] = (),
    rescale_rows: Sequence[str] = (),
    cmap_masks: str = MASK_CMAP,
) -> Figure:
    """A grid of images: one row per entry of ``rows`` (label -> (K, C, H, W) images), K columns.

    Rows named in ``mask_rows`` are drawn as centred masks (fft2 layout in, ``cmap_masks``, range
    [0, 1]); rows named in ``rescale_rows`` are min-max rescaled per image for display (e.g. filtered
    images, which leave [0, 1]); others are drawn as images in [0, 1] (grey for one channel). Used for
    Figs. 5-6 (images, M(X), M'(X), X_A, masks).
    """
    if not rows:
        raise ValueError("rows is empty")
    data = {k: (torch.stack(list(v)) if not isinstance(v, Tensor) else v) for k, v in rows.items()}
    ks = {k: v.shape[0] for k, v in data.items()}
    if len(set(ks.values())) != 1:
        raise ValueError(f"every row needs the same number of columns; got {ks}")
    ncols = next(iter(ks.values()))
    if col_titles is not None and len(col_titles) != ncols:
        raise ValueError(f"{len(col_titles)} column titles for {ncols} columns")
    fig = BookFigure(figsize=(panel_size * ncols + 1.2, panel_size * len(data)), layout="constrained")
    axes = fig.subplots(len(data), ncols, squeeze=False)
    mask_im = None
    for i, (label, imgs) in enumerate(data.items()):
        for j in range(ncols):
            ax = axes[i, j]
            if label in mask_rows:
                mask_im = ax.imshow(display_mask(imgs[j]), cmap=cmap_masks, vmin=0.0, vmax=1.0)
            else:
                img = torch.as_tensor(imgs[j]).detach().float().cpu()
                if label in rescale_rows:
                    lo, hi = img.min(), img.max()
                    img = (img - lo) / (hi - lo) if float(hi - lo) > 0 else torch.zeros_like(img)
                arr, cmap = _to_display_image(img)
                ax.imshow(arr, cmap=cmap, vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
            if i == 0 and col_titles is not None:
                ax.set_title(col_titles[j])
    if mask_im is not None:  # one shared scale for every mask row (all masks are drawn in [0, 1])
        rows_with_masks = [i for i, label in enumerate(data) if label in mask_rows]
        fig.colorbar(mask_im, ax=[axes[i, j] for i in rows_with_masks for j in range(ncols)], shrink=0.9,
                     label="mask value")
    return fig


@styled
def learning_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], *, keys: Sequence[str] | None = None) -> Figure:
    """Training histories: one axis per metric key, one line per regime.

    ``histories``: regime -> {metric name: per-epoch values}, e.g. ``{"train_loss": [...], "val_acc": [...]}``.
    ``keys`` picks the metrics (default: all keys present in any history, in first-seen order).
    """
    if not histories:
        raise ValueError("histories is empty")
    if keys is None:
        keys = []
        for h in histories.values():
            for k in h:
                if k not in keys and _is_series(h[k]):
                    keys.append(k)
    if not keys:
        raise ValueError("no per-epoch series found in the histories")
    fig = BookFigure(figsize=(3.8 * len(keys), 3.2), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, k in zip(axes, keys):
        for regime, h in histories.items():
            if k in h and _is_series(h[k]) and len(h[k]):
                v = np.asarray(h[k], dtype=float)
                ax.plot(np.arange(1, v.size + 1), v, marker=".", label=regime)
        ax.set_xlabel("epoch")
        ax.set_title(k)
        ax.legend(fontsize=10)
    return fig


def _is_series(v) -> bool:
    try:
        a = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        return False
    return a.ndim == 1


@styled
def umap_scatter(
    embeddings: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray] | np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    cmap: str = "tab10",
) -> Figure:
    """One scatter axis per embedding ((N, 2) arrays), points coloured by class.

    ``labels``: one (N,) array for all panels or a mapping panel -> (N,) labels.
    """
    if not embeddings:
        raise ValueError("embeddings is empty")
    fig = BookFigure(figsize=(4.0 * len(embeddings), 3.8), layout="constrained")
    axes = fig.subplots(1, len(embeddings), squeeze=False)[0]
    import matplotlib

    colours = matplotlib.colormaps[cmap]
    for ax, (title, emb) in zip(axes, embeddings.items()):
        e = np.asarray(emb)
        y = np.asarray(labels[title] if isinstance(labels, Mapping) else labels).reshape(-1)
        if e.ndim != 2 or e.shape[1] != 2 or e.shape[0] != y.size:
            raise ValueError(f"embedding {title!r} must be (N, 2) with N = {y.size} labels; got {e.shape}")
        for c in np.unique(y):
            sel = y == c
            name = class_names[int(c)] if class_names is not None and int(c) < len(class_names) else str(c)
            ax.scatter(e[sel, 0], e[sel, 1], s=8, color=colours(int(c) % colours.N), label=name)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[-1].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize=10, markerscale=2, frameon=False)
    return fig
