"""The Fourier-mask filter x̄ = Re F⁻¹(M ⊙ F x), as a module and as pure functions.

All masks are real tensors in :func:`torch.fft.fft2` layout (DC at ``[0, 0]``), shaped
(n_masks, C, H, W). Images are (N, C, H, W). A mask with ``n_masks == 1`` is shared by every image;
``n_masks == N`` gives each image its own mask; a mask with C == 1 is shared by all image channels.
Like the original code, the mask covers the full fft2 plane (M[k] and M[-k] are separate entries); for
a real image only their average matters for the output, and the gradients of both are equal, so a mask
that starts symmetric stays symmetric.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = ["FourierMask", "filter_images", "filter_spectrum", "complement", "pixel_offset", "SPACES"]

#: where the mask acts: ``"normalised"`` (the original code: on (x - mean) / std, the default for a model that
#: declares its normalisation), ``"pixel"`` (on x in [0, 1]), ``"auto"`` (normalised when the model declares
#: a ``mean``, as :class:`fmask.models.zoo.Normalized` does, else pixel).
SPACES: tuple[str, ...] = ("auto", "normalised", "pixel")


def _check_images(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")


def _check_mask_vs(masks: Tensor, spec_shape: Sequence[int], what: str) -> None:
    """Check a (M, Cm, H, W) mask broadcasts against a (N, C, H, W) image/spectrum batch."""
    n, c, h, w = spec_shape
    mm, cm, hm, wm = masks.shape
    if (hm, wm) != (h, w):
        raise ValueError(f"mask spatial shape {(hm, wm)} (masks {tuple(masks.shape)}) does not match "
                         f"{what} spatial shape {(h, w)} ({what} {tuple(spec_shape)})")
    if mm not in (1, n):
        raise ValueError(f"masks {tuple(masks.shape)} hold {mm} masks but {what} {tuple(spec_shape)} holds "
                         f"{n} images: need 1 shared mask or one mask per image")
    if cm not in (1, c):
        raise ValueError(f"masks {tuple(masks.shape)} have {cm} channels but {what} {tuple(spec_shape)} has "
                         f"{c}: need 1 (shared) or {c}")


def _as_4d_mask(masks: Tensor) -> Tensor:
    if not isinstance(masks, Tensor):
        raise ValueError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
    if masks.is_complex():
        raise ValueError("masks must be real, got a complex tensor")
    if masks.dim() == 2:
        return masks.view(1, 1, *masks.shape)
    if masks.dim() == 3:
        return masks.unsqueeze(1)
    if masks.dim() == 4:
        return masks
    raise ValueError(f"masks must have shape (H, W), (M, H, W) or (M, C, H, W), got {tuple(masks.shape)}")


def pixel_offset(model: nn.Module | None, space: str = "auto", channels: int | None = None) -> Tensor:
    """The per-channel offset μ (C,) that makes a pixel-space filter act on the normalised image.

    The original code filters the *normalised* image x_n = (x − μ)/σ. Filtering x_n and mapping back to
    pixels is, exactly, x̄ = Re F⁻¹(M ⊙ F x) + (1 − M[c, 0, 0]) · μ_c per channel (σ cancels; only the
    DC entry sees the mean). ``space="pixel"`` returns zeros (filter x itself); ``"normalised"`` returns the
    model's ``mean`` (ValueError if it declares none); ``"auto"`` returns the model's ``mean`` when it has
    one (fmask's :class:`~fmask.models.zoo.Normalized` wrapper) and zeros otherwise. ``channels`` sizes the
    zeros when the model declares no mean (default 1).
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    mean = getattr(model, "mean", None) if model is not None else None
    if isinstance(mean, Tensor) and space != "pixel":
        return mean.detach().reshape(-1).float().cpu().clone()
    if space == "normalised":
        raise ValueError("space='normalised' needs a model that declares its normalisation (a `mean` buffer, "
                         "e.g. fmask.models.zoo.Normalized(net, mean, std)); use space='pixel' otherwise")
    n = channels if channels is not None else (int(mean.numel()) if isinstance(mean, Tensor) else 1)
    return torch.zeros(n)


def _check_finite_mask(m: Tensor, name: str = "masks") -> None:
    """ValueError if a mask holds NaN or inf (one host sync: for analysis calls, not the learner's hot loop)."""
    if m.is_floating_point() and not bool(torch.isfinite(m).all()):
        raise ValueError(f"{name} contain NaN or inf values")


def _add_offset(out: Tensor, m: Tensor, offset: Tensor | None) -> Tensor:
    """out + (1 − M[:, :, 0, 0]) · offset, broadcast over (N, C, H, W)."""
    if offset is None:
        return out
    off = torch.as_tensor(offset, dtype=out.dtype, device=out.device).reshape(1, -1, 1, 1)
    if off.shape[1] not in (1, out.shape[1]):
        raise ValueError(f"offset has {off.shape[1]} channels but the images have {out.shape[1]}")
    dc = m[:, :, :1, :1].to(out.dtype)
    return out + (1 - dc) * off


def filter_spectrum(spectrum: Tensor, masks: Tensor, offset: Tensor | None = None) -> Tensor:
    """Re F⁻¹(M ⊙ X) for a precomputed complex spectrum ``X = torch.fft.fft2(x)`` (N, C, H, W).

    ``masks``: real (M, Cm, H, W) with M ∈ {1, N}, Cm ∈ {1, C} (or (H, W) / (M, H, W)).
    ``offset``: per-channel μ (C,) from :func:`pixel_offset` (None: pure pixel-space filter).
    Returns a new real tensor (N, C, H, W); inputs are not modified. Differentiable in ``masks``.
    """
    _check_images(spectrum, "spectrum")
    if not spectrum.is_complex():
        raise ValueError("spectrum must be complex (the output of torch.fft.fft2)")
    m = _as_4d_mask(masks)
    _check_mask_vs(m, spectrum.shape, "spectrum")
    _check_finite_mask(m)
    return _apply(spectrum, m, offset)


class _ReIfft2Masked(torch.autograd.Function):
    """y = Re F⁻¹(M ⊙ X) for a real mask M (M, Cm, H, W) and a constant spectrum X (N, C, H, W).

    Backward (M only; X is data): ∂L/∂M = Σ_broadcast Re(conj(X) ⊙ F(∂L/∂y)) / (H·W) -- the adjoint of
    Re∘ifft2 is fft2/(H·W). Same values as autograd through ``torch.fft.ifft2(...).real`` (float rounding), without
    its complex zero-fill and slice of the ``.real`` backward (≈ 10 % of a small network's step on CPU).
    """

    @staticmethod
    def forward(ctx, m: Tensor, spectrum: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(spectrum)
        ctx.mask_shape = m.shape
        return torch.fft.ifft2(m * spectrum).real

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (spectrum,) = ctx.saved_tensors
        h, w = spectrum.shape[-2:]
        g = (torch.fft.fft2(grad) * spectrum.conj()).real / (h * w)
        shape = ctx.mask_shape
        dims = [d for d in range(4) if shape[d] == 1 and g.shape[d] != 1]
        if dims:
            g = g.sum(dim=dims, keepdim=True)
        return g, None


def _apply(spectrum: Tensor, m: Tensor, offset: Tensor | None) -> Tensor:
    """THE filter (the one place in fmask that multiplies a spectrum by a mask and inverts it):
    Re F⁻¹(M ⊙ X) + (1 − M[:, :, 0, 0]) · offset. No checks, no host syncs (the learners' hot loop).
    Differentiable in the mask only (the spectrum is data)."""
    m = m.to(spectrum.real.dtype)
    if m.requires_grad and torch.is_grad_enabled() and not spectrum.requires_grad:
        out = _ReIfft2Masked.apply(m, spectrum)
    else:
        out = torch.fft.ifft2(m * spectrum).real
    return _add_offset(out, m, offset)


def filter_images(x: Tensor, masks: Tensor, offset: Tensor | None = None) -> Tensor:
    """Filter images: Re F⁻¹(M ⊙ F x) (+ (1 − M[c,0,0])·offset_c). Never modifies ``x`` or ``masks``.

    Args:
        x: real images (N, C, H, W).
        masks: real masks in fft2 layout, (M, Cm, H, W) with M ∈ {1, N}, Cm ∈ {1, C}; (H, W) and
            (M, H, W) are accepted as shorthand for Cm = 1.
        offset: per-channel μ (C,) so that the mask acts on the normalised image, as the original code
            does (see :func:`pixel_offset`); None filters the pixel image.
    Returns:
        real tensor (N, C, H, W) with the dtype of ``x`` (float32 for integer inputs).
    """
    _check_images(x)
    if x.is_complex():
        raise ValueError("x must be real images, got a complex tensor")
    if not x.is_floating_point():
        x = x.float()
    m = _as_4d_mask(masks)
    _check_mask_vs(m, x.shape, "images")
    _check_finite_mask(m)
    return _apply(torch.fft.fft2(x), m, offset)


def complement(masks: Tensor, threshold: float = 1e-8) -> Tensor:
    """Binary complement of masks: 1.0 where ``mask <= threshold``, else 0.0 (same shape and dtype).

    Returns a new tensor; the input is never modified (the original code binarised in place, which
    corrupted later uses of the mask). NaN/inf masks raise ValueError (NaN would silently count as "kept").
    """
    if not isinstance(masks, Tensor):
        raise ValueError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
    if masks.is_complex():
        raise ValueError("masks must be real, got a complex tensor")
    _check_finite_mask(masks)
    dtype = masks.dtype if masks.is_floating_point() else torch.float32
    return (masks <= threshold).to(dtype)


class FourierMask(nn.Module):
    """Learnable real Fourier mask(s): ``forward(x) = Re F⁻¹(M ⊙ F x)``.

    Args:
        size: (H, W) of the images (and of their fft2).
        n_masks: 1 (one mask shared by every image) or the batch size N (mask i filters image i).
        channels: mask channels C; 1 shares the mask across image channels.

    The parameter ``weight`` has shape (n_masks, channels, H, W), starts at ones and is stored in
    :func:`torch.fft.fft2` layout (DC at [0, 0]), exactly like the original code.
    """

    def __init__(self, size: Sequence[int], n_masks: int = 1, channels: int = 1) -> None:
        super().__init__()
        if len(tuple(size)) != 2 or any((not isinstance(s, int)) or s < 1 for s in size):
            raise ValueError(f"size must be (H, W) with positive ints, got {size!r}")
        if not isinstance(n_masks, int) or n_masks < 1:
            raise ValueError(f"n_masks must be a positive int, got {n_masks!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.size = (int(size[0]), int(size[1]))
        self.weight = nn.Parameter(torch.ones(n_masks, channels, *self.size))

    @property
    def n_masks(self) -> int:
        return self.weight.shape[0]

    @property
    def masks(self) -> Tensor:
        """A detached copy of the masks, real (n_masks, C, H, W) in fft2 layout."""
        return self.weight.detach().clone()

    @torch.no_grad()
    def set_masks(self, masks: Tensor) -> None:
        """Copy ``masks`` (shape of ``weight``, or broadcastable to it) into the parameter."""
        m = _as_4d_mask(masks)
        try:
            self.weight.copy_(m.expand_as(self.weight))
        except RuntimeError as e:
            raise ValueError(f"masks {tuple(m.shape)} do not fit weight {tuple(self.weight.shape)}") from e

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp the masks to [0, 1] in place (the projection after every optimiser step)."""
        self.weight.clamp_(0.0, 1.0)

    def forward_spectrum(self, spectrum: Tensor, offset: Tensor | None = None) -> Tensor:
        """Re F⁻¹(M ⊙ X) (+ (1 − M[c,0,0])·offset_c) for a precomputed complex spectrum X = fft2(x)
        (N, C, H, W) → real (N, C, H, W). The learners' per-step filter: shape checks only (no host sync).

        ``offset``: per-channel μ (C,) from :func:`pixel_offset` so that the mask acts on the normalised
        image as in the original code; None filters the pixel image."""
        _check_images(spectrum, "spectrum")
        if not spectrum.is_complex():
            raise ValueError("spectrum must be complex (the output of torch.fft.fft2)")
        _check_mask_vs(self.weight, spectrum.shape, "spectrum")
        return _apply(spectrum, self.weight, offset)

    def forward(self, x: Tensor, offset: Tensor | None = None) -> Tensor:
        """Filter real images x (N, C, H, W) → real (N, C, H, W) (``offset`` as in :meth:`forward_spectrum`)."""
        _check_images(x)
        if x.is_complex():
            raise ValueError("x must be real images, got a complex tensor")
        _check_mask_vs(self.weight, x.shape, "images")
        return _apply(torch.fft.fft2(x), self.weight, offset)

    def extra_repr(self) -> str:
        n, c, h, w = self.weight.shape
        return f"size=({h}, {w}), n_masks={n}, channels={c}"
