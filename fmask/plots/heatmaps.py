"""Chapter 9's figures: Fourier masks beside Fourier heat maps and pass-band curves, band profiles, and the
planted-frequency benchmark. Every function returns a :class:`~fmask.plots.style.BookFigure` (≤ 7 in wide,
10 pt text).

Inputs: masks and heat maps in ``torch.fft.fft2`` layout (DC at [0, 0]; centred here with
:func:`fmask.core.spectral.centered`). A heat map evaluated on a frequency grid with a stride (NaN elsewhere,
:func:`fmask.analysis.heatmap.fourier_heat_map`) is drawn on its evaluated grid only: the rows and columns of the
centred map that hold no value are dropped and the axes are labelled in signed frequency units.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from fmask.plots.masks import MASK_CMAP, display_mask
from fmask.plots.style import BookFigure, styled
from fmask.core.spectral import centered

__all__ = ["HEAT_CMAP", "compact_heat_map", "masks_heatmaps_passbands", "band_profiles", "planted_comparison"]

HEAT_CMAP = "magma"  # error rate 0 (black) → 1 (white): sequential, distinct from the masks' turbo


def compact_heat_map(heat: Tensor | np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A heat map (H, W) in fft2 layout → (its centred evaluated sub-grid, imshow extent in signed frequencies).

    Rows/columns of the centred map without any finite value are dropped; ``extent`` is
    ``(f_x min, f_x max, f_y max, f_y min)`` with half-step padding, for ``imshow(..., extent=extent)``.
    """
    t = torch.as_tensor(heat).detach().float().cpu()
    if t.dim() != 2:
        raise ValueError(f"a heat map must have shape (H, W), got {tuple(t.shape)}")
    h, w = t.shape
    c = centered(t).numpy()
    ok = np.isfinite(c)
    if not ok.any():
        raise ValueError("the heat map has no finite value")
    rows, cols = np.flatnonzero(ok.any(1)), np.flatnonzero(ok.any(0))
    sub = c[np.ix_(rows, cols)]
    fy, fx = rows - h // 2, cols - w // 2
    sy = (fy[1] - fy[0]) / 2 if fy.size > 1 else 0.5
    sx = (fx[1] - fx[0]) / 2 if fx.size > 1 else 0.5
    return sub, (fx[0] - sx, fx[-1] + sx, fy[-1] + sy, fy[0] - sy)


@styled
def masks_heatmaps_passbands(
    masks: Mapping[str, Tensor],
    heatmaps: Mapping[str, Tensor],
    radii: Sequence[float] | np.ndarray,
    low: Mapping[str, Sequence[float]],
    high: Mapping[str, Sequence[float]],
    *,
    clean: Mapping[str, float] | None = None,
) -> BookFigure:
    """One column per network: its dataset mask (top, centred, [0, 1]), its Fourier heat map (middle, error
    rate, [0, 1]) and its low-/high-pass accuracy against the cut-off radius (bottom).

    ``masks``/``heatmaps``/``low``/``high`` share their keys (the column titles); ``low[k]``/``high[k]`` are
    accuracies at ``radii``; ``clean`` (optional) draws each network's unfiltered accuracy as a dotted line.
    """
    names = list(masks)
    if not names:
        raise ValueError("nothing to draw (no networks)")
    for what, d in (("heatmaps", heatmaps), ("low", low), ("high", high)):
        if list(d) != names:
            raise ValueError(f"{what} must have the same keys as masks ({names}), got {list(d)}")
    r = np.asarray(radii, dtype=float)
    for k in names:
        if len(low[k]) != r.size or len(high[k]) != r.size:
            raise ValueError(f"low/high[{k!r}] must have one accuracy per radius ({r.size})")
    n = len(names)
    fig = BookFigure(figsize=(min(7.0, 1.45 * n + 0.9), 5.0), layout="constrained")
    axes = fig.subplots(3, n, squeeze=False)
    im_m = im_h = None
    for j, k in enumerate(names):
        ax = axes[0, j]
        im_m = ax.imshow(display_mask(masks[k]), cmap=MASK_CMAP, vmin=0, vmax=1)
        ax.set_title(k)
        ax.set_xticks([])
        ax.set_yticks([])
        ax = axes[1, j]
        sub, extent = compact_heat_map(heatmaps[k])
        im_h = ax.imshow(sub, cmap=HEAT_CMAP, vmin=0, vmax=1, extent=extent, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax = axes[2, j]
        ax.plot(r, np.asarray(low[k], float), marker=".", ms=3, lw=1.2, label="low-pass")
        ax.plot(r, np.asarray(high[k], float), marker=".", ms=3, lw=1.2, label="high-pass")
        if clean is not None and k in clean:
            ax.axhline(float(clean[k]), color="grey", lw=0.8, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("radius")
        if j:
            ax.set_yticklabels([])
    axes[0, 0].set_ylabel("mask")
    axes[1, 0].set_ylabel("heat map")
    axes[2, 0].set_ylabel("accuracy")
    fig.colorbar(im_m, ax=axes[0, :].tolist(), shrink=0.8, label="M")
    fig.colorbar(im_h, ax=axes[1, :].tolist(), shrink=0.8, label="error")
    h_, l_ = axes[2, 0].get_legend_handles_labels()
    fig.legend(h_, l_, loc="outside lower center", ncols=2, frameon=False)
    return fig


@styled
def band_profiles(profiles: Mapping[str, Mapping[str, object]]) -> BookFigure:
    """Per network, the radial-band profiles of the mask (mean M per band) and of the heat map (mean error
    per band), each scaled to [0, 1] by its own min and max so their *ranks* can be compared; the title gives
    Spearman ρ. ``profiles[k]`` holds ``mask_profile``, ``heat_profile`` (sequences, NaN allowed) and ``rho``
    (as returned by :func:`fmask.analysis.agreement.band_rank_agreement`)."""
    names = list(profiles)
    if not names:
        raise ValueError("nothing to draw (no networks)")
    n = len(names)
    fig = BookFigure(figsize=(min(7.0, 1.45 * n + 0.6), 2.3), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False, sharey=True)[0]

    def scaled(v) -> np.ndarray:
        a = np.asarray(v, dtype=float)
        lo, hi = np.nanmin(a), np.nanmax(a)
        return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)

    for ax, k in zip(axes, names):
        p = profiles[k]
        if "mask_profile" not in p or "heat_profile" not in p:
            raise ValueError(f"profiles[{k!r}] needs 'mask_profile' and 'heat_profile'")
        m, hp = scaled(p["mask_profile"]), scaled(p["heat_profile"])
        b = np.arange(m.size)
        ax.plot(b, m, marker=".", ms=3, lw=1.2, label="mask (mean M)")
        ax.plot(b, hp, marker=".", ms=3, lw=1.2, label="heat map (mean error)")
        rho = p.get("rho", float("nan"))
        ax.set_title(f"{k}\nρ = {rho:+.2f}" if rho == rho else f"{k}\nρ = n/a")
        ax.set_xlabel("radial band")
    axes[0].set_ylabel("scaled to [0, 1]")
    h_, l_ = axes[0].get_legend_handles_labels()
    fig.legend(h_, l_, loc="outside lower center", ncols=2, frameon=False)
    return fig


@styled
def planted_comparison(
    support: Tensor,
    mask: Tensor,
    heatmap: Tensor,
    recall: Mapping[str, Mapping[int, float]],
) -> BookFigure:
    """The planted-frequency benchmark: the planted support, the learned dataset mask, the heat map (all
    centred), and recall@k against k for each tool (``recall[tool][k]``)."""
    if not recall:
        raise ValueError("recall is empty")
    fig = BookFigure(figsize=(7.0, 2.1), layout="constrained")
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 1.4]})
    sup = torch.as_tensor(support)
    if sup.dtype != torch.bool or sup.dim() != 2:
        raise ValueError(f"support must be a bool (H, W) map, got {sup.dtype} {tuple(sup.shape)}")
    panels = [("planted", centered(sup.float()).numpy(), "Greys", None),
              ("mask", display_mask(mask), MASK_CMAP, None)]
    sub, extent = compact_heat_map(heatmap)
    panels.append(("heat map", sub, HEAT_CMAP, extent))
    for ax, (title, img, cmap, ext) in zip(axes[:3], panels):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, extent=ext, interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[3]
    for tool, by_k in recall.items():
        pairs = sorted((int(k), float(v)) for k, v in by_k.items())  # keys may be str (read back from JSON)
        ax.plot([k for k, _ in pairs], [v for _, v in pairs], marker="o", ms=3, lw=1.2, label=tool)
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("k (top entries)")
    ax.set_ylabel("recall@k")
    ax.legend(frameon=False)
    return fig
