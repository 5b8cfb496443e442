"""Single-image mask figures as the paper lays them out: Fig. 5 (class masks first), Fig. 6 (panels A-G) and
Fig. 7 (the paper's comparison beside the code's). Every function returns a :class:`BookFigure`.

Images (N, C, H, W) in [0, 1]; masks (N, C, H, W) in fft2 layout (centred for display).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from fmask.plots.masks import MASK_CMAP, image_grid
from fmask.plots.style import BookFigure, styled

__all__ = ["FIG6_PANELS", "class_masks_figure", "fig6_panels", "dominance_comparison"]

#: the paper's Fig. 6 panels, in its order
FIG6_PANELS: tuple[str, ...] = ("(A) x", "(B) x_A", "(C) M", "(D) M(x)", "(E) M(x_A)", "(F) M'", "(G) M'(x)")


def class_masks_figure(class_masks: Tensor, single_masks: Sequence[Tensor], class_names: Sequence[str]) -> Figure:
    """Fig. 5 (top): one row per class; first column the class's dataset mask, then that class's single masks.

    ``class_masks``: (K, C, H, W), one per class; ``single_masks``: K tensors (k, C, H, W) with the same k for
    every class (pick them with a seeded choice); ``class_names``: K names (row labels).
    """
    cm = torch.as_tensor(class_masks)
    k = cm.shape[0]
    if len(single_masks) != k or len(class_names) != k or k == 0:
        raise ValueError(f"need one class mask, one set of single masks and one name per class; got {k}, "
                         f"{len(single_masks)}, {len(class_names)}")
    sizes = {int(s.shape[0]) for s in single_masks}
    if len(sizes) != 1:
        raise ValueError(f"every class needs the same number of single masks; got {sorted(sizes)}")
    rows = {str(name): torch.cat([cm[i:i + 1], torch.as_tensor(single_masks[i])]) for i, name in
            enumerate(class_names)}
    n = sizes.pop()
    titles = ["class mask"] + [f"single {j + 1}" for j in range(n)]
    return image_grid(rows, col_titles=titles, mask_rows=list(rows), cmap_masks=MASK_CMAP, panel_size=1.3)


def fig6_panels(panels: Mapping[str, Tensor], col_titles: Sequence[str] | None = None) -> Figure:
    """Fig. 6: rows (A)-(G) of :data:`FIG6_PANELS`, one column per example.

    ``panels`` maps each name of :data:`FIG6_PANELS` to (k, C, H, W): images for (A), (B); masks (fft2
    layout) for (C), (F); filtered images for (D), (E), (G) (min-max rescaled per image for display only).
    """
    missing = [p for p in FIG6_PANELS if p not in panels]
    if missing:
        raise ValueError(f"missing panels {missing}; need {FIG6_PANELS}")
    rows = {p: panels[p] for p in FIG6_PANELS}
    return image_grid(rows, col_titles=col_titles, mask_rows=["(C) M", "(F) M'"],
                      rescale_rows=["(D) M(x)", "(E) M(x_A)", "(G) M'(x)"], panel_size=1.3)


@styled
def dominance_comparison(panels: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Fig. 7 side by side: one row per comparison (label -> (radial, angular) fractions), bars in percent of
    images whose first mask has more energy in the band than the second; a dashed 50% line."""
    if not panels:
        raise ValueError("panels is empty")
    fig = BookFigure(figsize=(7.0, 2.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for i, (label, (rad, ang)) in enumerate(panels.items()):
        for j, (v, xl) in enumerate(((rad, "radial band (low → high)"), (ang, "angular band (0 → 2π)"))):
            v = np.asarray(v, dtype=float)
            if v.ndim != 1 or v.size == 0:
                raise ValueError(f"{label}: expected non-empty 1-D fractions, got shape {v.shape}")
            ax = axes[i, j]
            ax.bar(np.arange(v.size), 100.0 * v, color="tab:blue", edgecolor="black", lw=0.3)
            ax.axhline(50.0, color="gray", ls="--", lw=0.8)
            ax.set_ylim(0, 100)
            ax.set_xlabel(xl)
            ax.set_ylabel("images (%)")
            ax.set_title(label, fontsize="small")
    return fig
