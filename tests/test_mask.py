"""fmask.core.mask: the FFT filter layer, filter_images, complement."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fmask.core.mask import FourierMask, complement, filter_images, filter_spectrum
from fmask.core.spectral import radial_bands, uncentered

from conftest import make_tiny_cnn


def _imgs(n=3, c=1, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_ones_mask_is_identity_and_output_real():
    x = _imgs(4, 2, 16, 12)
    layer = FourierMask((16, 12), n_masks=1, channels=1)
    assert torch.equal(layer.masks, torch.ones(1, 1, 16, 12))
    y = layer(x)
    assert not y.is_complex() and y.dtype == torch.float32 and y.shape == x.shape
    assert torch.allclose(y, x, atol=1e-6)
    assert torch.allclose(layer.forward_spectrum(torch.fft.fft2(x)), x, atol=1e-6)


def test_band_mask_equals_numpy_fft_filter():
    x = _imgs(2, 1, 16, 16, seed=1)
    band = uncentered((radial_bands(16, 16, 4) == 1).float())  # fft2 layout
    layer = FourierMask((16, 16))
    layer.set_masks(band)
    y = layer(x).detach().numpy()
    ref = np.real(np.fft.ifft2(band.numpy()[None, None] * np.fft.fft2(x.double().numpy())))
    assert np.allclose(y, ref, atol=1e-5)
    assert np.allclose(filter_images(x, band).numpy(), ref, atol=1e-5)
    assert not np.allclose(ref, x.numpy(), atol=1e-2)  # the band filter really changed the images


def test_per_image_masks_and_channel_broadcast():
    x = _imgs(3, 2, 8, 8)
    layer = FourierMask((8, 8), n_masks=3, channels=2)
    with torch.no_grad():
        layer.weight[1] = 0.0
    y = layer(x)
    assert torch.allclose(y[0], x[0], atol=1e-6) and torch.allclose(y[2], x[2], atol=1e-6)
    assert torch.allclose(y[1], torch.zeros_like(y[1]), atol=1e-7)
    # a (H, W) mask broadcasts over images and channels
    m = torch.rand(8, 8, generator=torch.Generator().manual_seed(3))
    full = filter_images(x, m.expand(3, 2, 8, 8))
    assert torch.allclose(filter_images(x, m), full, atol=1e-6)


def test_gradients_reach_the_mask_only():
    model = make_tiny_cnn(1, 3, seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    layer = FourierMask((16, 16))
    x = _imgs(2)
    loss = model(layer(x)).square().sum()
    loss.backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    assert x.grad is None


def test_filter_and_complement_never_mutate_inputs():
    x = _imgs(2)
    m = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    m[0, 0, :4] = 0.0
    x0, m0 = x.clone(), m.clone()
    filter_images(x, m)
    filter_spectrum(torch.fft.fft2(x), m)
    c = complement(m)
    assert torch.equal(x, x0) and torch.equal(m, m0)
    assert c.dtype == m.dtype and c.shape == m.shape
    assert torch.equal(c, (m0 <= 1e-8).float())
    assert c[0, 0, :4].eq(1).all() and c.sum() == 4 * 16  # only the zeroed rows (rand is never exactly 0 here)
    assert torch.equal(complement(m, threshold=0.5), (m0 <= 0.5).float())
    layer = FourierMask((16, 16))
    w = layer.masks
    w.zero_()  # .masks is a copy
    assert torch.equal(layer.weight.detach(), torch.ones(1, 1, 16, 16))


def test_project_clamps_to_unit_interval():
    layer = FourierMask((4, 4))
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(-1, 2, 16).view(1, 1, 4, 4))
    layer.project_()
    assert layer.weight.min() == 0 and layer.weight.max() == 1


def test_wrong_shapes_raise_value_error_naming_shapes():
    layer = FourierMask((16, 16), n_masks=2)
    with pytest.raises(ValueError, match=r"\(16, 12\)"):
        layer(torch.rand(2, 1, 16, 12))
    with pytest.raises(ValueError, match="3 images"):
        layer(torch.rand(3, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        layer(torch.rand(1, 16, 16))
    with pytest.raises(ValueError, match="channels"):
        filter_images(torch.rand(2, 3, 8, 8), torch.ones(1, 2, 8, 8))
    with pytest.raises(ValueError, match="complex"):
        layer.forward_spectrum(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError):
        FourierMask((16,))
    with pytest.raises(ValueError):
        FourierMask((16, 16), n_masks=0)


def test_nan_or_inf_masks_raise():
    x = _imgs(2)
    for bad in (float("nan"), float("inf")):
        m = torch.ones(1, 1, 16, 16)
        m[0, 0, 3, 4] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            filter_images(x, m)
        with pytest.raises(ValueError, match="NaN or inf"):
            filter_spectrum(torch.fft.fft2(x), m)
        with pytest.raises(ValueError, match="NaN or inf"):
            complement(m)


def test_offset_filter_equals_filtering_the_normalised_image():
    """x̄ = Re F⁻¹(M ⊙ F x) + (1 − M[c,0,0])·μ_c is, in pixel units, the filter of (x − μ)/σ (the original's
    space); FourierMask.forward / forward_spectrum and filter_images agree on it."""
    from fmask.core.mask import pixel_offset
    from fmask.models.zoo import Normalized

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    model = Normalized(torch.nn.Identity(), mean, std)
    x = _imgs(2, 3, 8, 8, seed=7)
    m = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(8))
    off = pixel_offset(model)  # "auto" on a Normalized model: its mean
    assert torch.allclose(off, torch.tensor(mean))
    mu, sd = model.mean, model.std
    want = torch.fft.ifft2(m * torch.fft.fft2((x - mu) / sd)).real * sd + mu
    got = filter_images(x, m, offset=off)
    assert torch.allclose(got, want, atol=1e-5)
    layer = FourierMask((8, 8), n_masks=2, channels=3)
    layer.set_masks(m)
    assert torch.allclose(layer(x, offset=off), got, atol=1e-6)
    assert torch.allclose(layer.forward_spectrum(torch.fft.fft2(x), offset=off), got, atol=1e-6)
    assert torch.equal(pixel_offset(model, "pixel"), torch.zeros(3))
    assert torch.equal(pixel_offset(torch.nn.Identity(), "auto"), torch.zeros(1))
    with pytest.raises(ValueError, match="normalised"):
        pixel_offset(torch.nn.Identity(), "normalised")
    assert not torch.allclose(got, filter_images(x, m), atol=1e-3)  # the offset matters


@pytest.mark.parametrize("mask_shape", [(3, 2, 8, 6), (1, 1, 8, 6), (3, 1, 8, 6), (1, 2, 8, 6)])
def test_filter_gradient_equals_autograd_through_ifft2(mask_shape):
    """The filter's hand-written backward (adjoint of Re∘ifft2) equals autograd through ifft2(...).real, incl.
    masks broadcast over images and/or channels; gradcheck in float64."""
    from fmask.core.mask import _apply

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 8, 6, generator=g, dtype=torch.float64)
    spec = torch.fft.fft2(x)
    m = torch.rand(*mask_shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 8, 6, generator=g, dtype=torch.float64)
    off = torch.tensor([0.3, 0.7], dtype=torch.float64)
    (ours,) = torch.autograd.grad((_apply(spec, m, off) * w).sum(), m)
    plain = torch.fft.ifft2(m * spec).real + (1 - m[:, :, :1, :1]) * off.view(1, -1, 1, 1)
    (ref,) = torch.autograd.grad((plain * w).sum(), m)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-10)
    assert torch.autograd.gradcheck(lambda mm: _apply(spec, mm, off), (m,))
