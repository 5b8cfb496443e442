"""The book's figure conventions: at most 7 in wide, text at 10 pt, high-dpi PNG.

A figure is displayed at 96 CSS px per inch of figure size (:func:`fmask.book.chapter.figure_png` and
:meth:`BookFigure._repr_png_` send the display size with the PNG), so a 7 in figure fills ~670 px of the
~690 px text column and text set at 10 pt appears at 10 pt. The PNG itself has twice that resolution.

* :class:`BookFigure` -- a :class:`~matplotlib.figure.Figure` without pyplot state whose requested size is
  scaled down (aspect kept) to :data:`MAX_WIDTH_IN`; Jupyter shows it through ``_repr_png_``.
* :func:`styled` -- decorator: run a plotting function under :data:`STYLE` (all text 10 pt).
"""
from __future__ import annotations

import functools
import io
import struct
from typing import Any, Callable, TypeVar

import matplotlib
from matplotlib.figure import Figure

__all__ = ["MAX_WIDTH_IN", "FONT_PT", "STYLE", "PNG_DPI", "BookFigure", "styled", "band_axes"]

MAX_WIDTH_IN = 7.0
FONT_PT = 10.0
PNG_DPI = 192  # 2 x 96: sharp on high-density screens
STYLE = {
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": FONT_PT,
    "ytick.labelsize": FONT_PT,
    "legend.fontsize": FONT_PT,
    "figure.titlesize": FONT_PT,
    "figure.dpi": 96,
}

F = TypeVar("F", bound=Callable[..., Any])


class BookFigure(Figure):
    """A Figure (no pyplot) at most :data:`MAX_WIDTH_IN` wide that renders itself as a high-dpi PNG."""

    def __init__(self, *args: Any, figsize: tuple[float, float] | None = None, **kwargs: Any) -> None:
        if figsize is not None:
            w, h = float(figsize[0]), float(figsize[1])
            if w <= 0 or h <= 0:
                raise ValueError(f"figsize must be positive; got {figsize}")
            if w > MAX_WIDTH_IN:
                w, h = MAX_WIDTH_IN, h * MAX_WIDTH_IN / w
            figsize = (w, h)
        super().__init__(*args, figsize=figsize, **kwargs)

    def _repr_png_(self) -> tuple[bytes, dict[str, int]]:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=PNG_DPI, bbox_inches="tight")
        data = buf.getvalue()
        w, h = struct.unpack(">II", data[16:24])
        scale = PNG_DPI / 96
        return data, {"width": int(round(w / scale)), "height": int(round(h / scale))}


def styled(fn: F) -> F:
    """Run ``fn`` with the book's text sizes (:data:`STYLE`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def band_axes(radial, angular, *, height: float, ylabel: str):
    """The Fig. 4 layout shared by the band-curve figures: one axis for the ``radial`` series and, when
    ``angular`` is given, one for the angular series, x and y labelled. Returns ``(fig, [(ax, series), ...])``;
    ``ValueError`` when ``radial`` is empty."""
    if not radial:
        raise ValueError("radial is empty")
    panels = [("radial frequency band (low → high)", radial)]
    if angular:
        panels.append(("angular frequency band (0 → 2π)", angular))
    fig = BookFigure(figsize=(3.5 * len(panels), height), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (xlabel, _) in zip(axes, panels):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    return fig, [(ax, series) for ax, (_, series) in zip(axes, panels)]
