"""fmask.core.spectral: centring, band maps (a partition, paper orientation) and band energies."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from fmask.core import spectral
from fmask.core.spectral import angular_bands, band_energy, centered, radial_bands, uncentered

SHAPES = [(16, 16), (15, 17), (32, 24)]


def test_centered_is_fftshift_and_puts_dc_in_the_middle():
    m = torch.zeros(2, 1, 15, 16)
    m[..., 0, 0] = 1.0
    c = centered(m)
    assert c[0, 0, 15 // 2, 16 // 2] == 1 and c.sum() == 2
    assert np.array_equal(c.numpy(), np.fft.fftshift(m.numpy(), axes=(-2, -1)))
    assert torch.equal(uncentered(c), m)


@pytest.mark.parametrize("h,w", SHAPES)
@pytest.mark.parametrize("kind", ["radial", "angular"])
@pytest.mark.parametrize("n", [1, 7, 64])
def test_band_maps_partition_the_plane(h, w, kind, n):
    fn = radial_bands if kind == "radial" else angular_bands
    b = fn(h, w, n)
    assert b.shape == (h, w) and b.dtype == torch.long
    assert int(b.min()) >= 0 and int(b.max()) <= n - 1
    # one-hot over bands: every pixel (corners included) exactly once
    onehot = torch.nn.functional.one_hot(b, n)
    assert torch.equal(onehot.sum(-1), torch.ones(h, w, dtype=torch.long))
    # centre pixel (DC after centring) in band 0
    assert b[h // 2, w // 2] == 0


def test_radial_bands_follow_linspace_edges():
    h = w = 16
    n = 8
    b = radial_bands(h, w, n)
    r = torch.arange(h).view(-1, 1) - h // 2
    c = torch.arange(w).view(1, -1) - w // 2
    d = torch.sqrt((r ** 2 + c ** 2).double())
    edges = np.linspace(0, float(d.max()), n + 1)
    for i in range(h):
        for j in range(w):
            k = int(b[i, j])
            assert edges[k] <= d[i, j] + 1e-12
            assert d[i, j] < edges[k + 1] or (k == n - 1 and abs(d[i, j] - edges[-1]) < 1e-9)
    # the farthest corner (row 0, col 0 in centred layout) lies in the last band
    assert b[0, 0] == n - 1


def test_angular_orientation_counter_clockwise_as_displayed():
    h = w = 16
    n = 4
    b = angular_bands(h, w, n)
    cy, cx = h // 2, w // 2
    assert b[cy, cx + 3] == 0          # right: angle 0
    assert b[cy - 3, cx + 1] == 0      # up (row index smaller), slightly right: angle just below π/2
    assert b[cy - 3, cx - 1] == 1      # up, slightly left: just above π/2
    assert b[cy - 3, cx] == 1          # straight up: angle π/2 → sector 1 of 4
    assert b[cy, cx - 3] == 2          # left: π
    assert b[cy + 3, cx] == 3          # down: 3π/2
    assert b[cy + 1, cx + 3] == 3      # slightly below the right axis: angle just under 2π


def test_band_maps_are_cached_and_copies_are_safe():
    spectral._radial_cached.cache_clear()
    a = radial_bands(20, 20, 5)
    b = radial_bands(20, 20, 5)
    info = spectral._radial_cached.cache_info()
    assert info.misses == 1 and info.hits == 1
    a[:] = 99  # modifying a returned map must not poison the cache
    assert torch.equal(radial_bands(20, 20, 5), b)


@pytest.mark.parametrize("kind", ["radial", "angular"])
def test_mask_on_one_band_lights_exactly_that_band(kind):
    h, w, n = 24, 24, 12
    bmap = (radial_bands if kind == "radial" else angular_bands)(h, w, n)
    for k in (0, 5, n - 1):
        centred_mask = (bmap == k).float() * 0.7
        m = uncentered(centred_mask).view(1, 1, h, w)  # to fft2 layout
        e = band_energy(m, bmap)
        expected = torch.zeros(1, n)
        expected[0, k] = 1.0
        assert torch.allclose(e, expected, atol=1e-6), (k, e)
        # string form with the cached map gives the same answer
        assert torch.allclose(band_energy(m, kind, n_bands=n), e)


def test_energies_squared_sum_to_one_and_shapes():
    g = torch.Generator().manual_seed(0)
    m4 = torch.rand(5, 1, 32, 32, generator=g)
    m3 = m4[:, 0]
    for bands in ("radial", "angular"):
        e4 = band_energy(m4, bands)
        e3 = band_energy(m3, bands)
        assert e4.shape == (5, 64)
        assert torch.allclose(e4, e3)
        assert torch.allclose((e4 ** 2).sum(-1), torch.ones(5), atol=1e-5)
        # invariant to the mask's scale (global L2 normalisation)
        assert torch.allclose(band_energy(3.0 * m4, bands), e4, atol=1e-6)
    # numpy reference for one band map
    bmap = radial_bands(32, 32, 64).numpy()
    mc = np.fft.fftshift(m3[0].double().numpy())
    mc = mc / np.linalg.norm(mc)
    ref = np.array([np.linalg.norm(mc[bmap == k]) for k in range(64)])
    assert np.allclose(band_energy(m3, "radial")[0].double().numpy(), ref, atol=1e-6)
    # all-zero mask: zero energies, no NaN
    z = band_energy(torch.zeros(1, 8, 8), "radial", n_bands=4)
    assert torch.equal(z, torch.zeros(1, 4))


def test_band_energy_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        band_energy(torch.rand(8, 8), "radial")
    with pytest.raises(ValueError, match="does not match"):
        band_energy(torch.rand(2, 8, 8), radial_bands(9, 8, 4))
    with pytest.raises(ValueError, match="radial"):
        band_energy(torch.rand(2, 8, 8), "spiral")
    with pytest.raises(ValueError, match="positive"):
        radial_bands(0, 8, 4)
    with pytest.raises(ValueError):
        centered(torch.rand(3))


def test_band_energy_rejects_nan_or_inf_masks():
    for bad in (float("nan"), float("inf"), -float("inf")):
        m = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        m[1, 0, 2, 2] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            band_energy(m, "radial", 4)
