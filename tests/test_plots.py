"""fmask.plots: every function returns a Figure with the expected axes and images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from fmask import plots as P


def _n_images(fig: Figure) -> int:
    return sum(len(ax.images) for ax in fig.axes)


def _masks(k: int, size: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"({chr(65 + i)})": torch.rand(1, 1, size, size, generator=g) for i in range(k)}


def test_mask_grid_draws_one_image_per_mask_and_a_colourbar():
    fig = P.mask_grid(_masks(5))
    assert isinstance(fig, Figure)
    assert _n_images(fig) == 5
    assert len(fig.axes) == 6  # 5 panels + colourbar


def test_difference_grid_is_centred_at_zero():
    diffs = {"B-A": torch.tensor([[0.0, 0.5], [-0.1, 0.0]]), "C-A": torch.zeros(2, 2)}
    fig = P.difference_grid(diffs)
    assert _n_images(fig) == 2
    norms = [im.norm for ax in fig.axes for im in ax.images]
    assert all(isinstance(n, TwoSlopeNorm) and n.vcenter == 0.0 for n in norms)
    assert norms[0].vmin == -norms[0].vmax == -0.5
    # zero difference maps to the colormap's middle
    assert float(norms[0](0.0)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="centred"):
        P.difference_grid({"x": torch.zeros(1, 2, 2)})


def test_dataset_masks_figure_has_masks_and_differences():
    masks = _masks(5)
    diffs = {f"{k}-(A)": (torch.rand(8, 8) - 0.5) for k in list(masks)[1:]}
    fig = P.dataset_masks_figure(masks, diffs)
    assert _n_images(fig) == 9
    assert len(fig.axes) == 10 + 2  # 2 x 5 grid + two colourbars


def test_band_partitions_and_energy_plots():
    fig = P.band_partitions((16, 16), 8)
    assert _n_images(fig) == 2
    lines = P.band_energy_lines({"B-A": np.zeros(8), "C-A": np.ones(8)}, {"B-A": np.zeros(8)})
    assert len(lines.axes) == 2
    assert len(lines.axes[0].get_lines()) == 3  # two series + zero line
    bars = P.band_dominance_bars(np.linspace(0, 1, 8), np.full(8, 0.5))
    assert len(bars.axes) == 2
    assert len(bars.axes[0].patches) == 8
    assert bars.axes[0].patches[-1].get_height() == pytest.approx(100.0)


def test_image_grid_rows_and_columns():
    imgs = torch.rand(3, 1, 8, 8)
    masks = torch.rand(3, 1, 8, 8)
    fig = P.image_grid({"X": imgs, "M(X)": imgs - 3.0, "mask": masks}, col_titles=["a", "b", "c"], mask_rows=["mask"],
                       rescale_rows=["M(X)"])
    assert _n_images(fig) == 9
    assert len(fig.axes) == 10  # 9 panels + the colour bar of the mask row
    rescaled = np.asarray(fig.axes[3].images[0].get_array())  # row 2, column 1: shifted image, rescaled
    assert rescaled.min() == pytest.approx(0.0) and rescaled.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same number of columns"):
        P.image_grid({"X": imgs, "Y": imgs[:2]})


def test_learning_curves_and_umap_scatter():
    hist = {"vanilla": {"train_loss": [1.0, 0.5], "val_acc": [0.3, 0.6]}, "rotate": {"train_loss": [1.2, 0.9]}}
    fig = P.learning_curves(hist)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 2 and len(fig.axes[1].get_lines()) == 1
    emb = np.random.default_rng(0).normal(size=(12, 2))
    y = np.repeat(np.arange(3), 4)
    sc = P.umap_scatter({"masks": emb, "outputs": emb}, y, class_names=["a", "b", "c"])
    assert len(sc.axes) == 2
    assert len(sc.axes[0].collections) == 3
    with pytest.raises(ValueError, match="N, 2"):
        P.umap_scatter({"m": emb[:, :1]}, y)


def test_book_figures_fit_the_column_with_10pt_text():
    from fmask.plots.style import FONT_PT, MAX_WIDTH_IN

    figs = [P.mask_grid(_masks(5)), P.dataset_masks_figure(_masks(5), {"B": torch.rand(8, 8) - 0.5}),
            P.band_energy_lines({"B-A": np.zeros(8)}, {"B-A": np.zeros(8)}),
            P.image_grid({"X": torch.rand(5, 1, 8, 8), "M": torch.rand(5, 1, 8, 8)}, mask_rows=["M"])]
    for fig in figs:
        assert fig.get_figwidth() <= MAX_WIDTH_IN + 1e-9
        fig.canvas.draw()
        sizes = [t.get_fontsize() for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label,
                                                              *ax.get_xticklabels(), *ax.get_yticklabels())
                 if t.get_text()]
        assert sizes and min(sizes) >= FONT_PT
        data, meta = fig._repr_png_()
        assert data[:4] == b"\x89PNG" and meta["width"] <= 7.2 * 96


def test_blue_shift_and_data_figures():
    from fmask.analysis import blueshift

    fig = P.signals.activation_spectra(blueshift.activation_spectra(n=64, base=4))
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 5
    im = P.signals.intermodulation(blueshift.intermodulation(n=128, f1=5, f2=12))
    assert len(im.axes) == 2 and len(im.axes[1].texts) == 4
    imgs = torch.rand(3, 1, 8, 8)
    sp = P.data.samples_and_spectra(imgs, imgs, ["a", "b", "c"])
    assert _n_images(sp) == 6
    rp = P.data.radial_power(np.array([4.0, 1.0, 0.5, 0.2]), alpha=2.0)
    assert len(rp.axes[0].get_lines()) == 2
    with pytest.raises(ValueError):
        P.data.samples_and_spectra(imgs, imgs[:2], ["a", "b", "c"])


def test_no_pyplot_outside_the_plots_package():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = [str(p.relative_to(root)) for p in [*root.glob("fmask/**/*.py"), *root.glob("notebooks/*.py")]
                 if "matplotlib.pyplot" in p.read_text() and "fmask/plots" not in str(p)]
    assert offenders == []


def test_display_mask_is_the_centred_channel_mean():
    from fmask.plots.masks import display_mask

    m = torch.zeros(1, 3, 4, 4)
    m[0, :, 0, 0] = torch.tensor([0.3, 0.6, 0.9])  # DC in fft2 layout
    m[0, 0, 0, 1] = 0.6
    out = display_mask(m)
    assert out.shape == (4, 4) and out.dtype == np.float32
    assert out[2, 2] == pytest.approx(0.6) and out[2, 3] == pytest.approx(0.2)  # DC at (H//2, W//2)
    assert out.sum() == pytest.approx(0.8)  # nothing else is kept
    assert np.array_equal(display_mask(out, already_centered=True), out)
    with pytest.raises(ValueError, match="single mask"):
        display_mask(torch.zeros(2, 3, 4, 4))
