"""Pass-band accuracy curves: the accuracy of a network on images low-pass or high-pass filtered with an ideal
radial mask, as a function of the cut-off radius (chapter 9, beside the Fourier heat maps).

Masks are in :func:`torch.fft.fft2` **index layout** (DC at ``[0, 0]``); radii are those of
:func:`fmask.core.spectral.radial_bands`: the Euclidean distance, in frequency-index units, from the centre
``(H//2, W//2)`` of the **centred** layout. Images are float (N, C, H, W) in [0, 1].
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from fmask.analysis.evaluation import EvalMode, check_images, check_int, check_labels, model_logits, predict_labels
from fmask.core.mask import filter_images, pixel_offset
from fmask.core.spectral import uncentered
from fmask.infra.runtime import progress_bar

__all__ = ["pass_band_mask", "pass_band_accuracy"]


def _radius_map(h: int, w: int) -> Tensor:
    """Distance of each entry from the centre (h//2, w//2) of the centred layout, float64 (h, w), centred."""
    dy = (torch.arange(h, dtype=torch.float64) - h // 2).view(h, 1)
    dx = (torch.arange(w, dtype=torch.float64) - w // 2).view(1, w)
    return torch.sqrt(dy * dy + dx * dx)


def pass_band_mask(h: int, w: int, radius: float, kind: str = "low") -> Tensor:
    """Ideal radial pass-band mask, float32 (h, w) in **fft2 layout** (ready for :func:`filter_images`).

    ``kind="low"`` keeps the frequencies with radius ``< radius``; ``"high"`` keeps radius ``>= radius``
    (complementary: the two masks sum to one). Radius as in :func:`fmask.core.spectral.radial_bands`: distance
    from (h//2, w//2) in the centred layout, in frequency-index units. DC has radius 0, so a low-pass with
    ``radius > 0`` keeps DC and a high-pass with ``radius > 0`` removes it.
    """
    h, w = check_int("h", h), check_int("w", w)
    if kind not in ("low", "high"):
        raise ValueError(f"kind must be 'low' or 'high', got {kind!r}")
    r = float(radius)
    if not math.isfinite(r) or r < 0:
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
    keep = _radius_map(h, w) < r
    if kind == "high":
        keep = ~keep
    return uncentered(keep.to(torch.float32))


def pass_band_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | None,
    radii: Sequence[float] | Tensor,
    kind: str = "low",
    *,
    space: str = "auto",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Tensor:
    """Accuracy of ``model`` on images low-pass (``kind="low"``: radius < r kept) or high-pass (``"high"``:
    radius ≥ r kept) filtered, for every r in ``radii``.

    The filter is :func:`fmask.core.mask.filter_images` with the ideal mask :func:`pass_band_mask` and the offset
    :func:`fmask.core.mask.pixel_offset(model, space) <fmask.core.mask.pixel_offset>`, so it acts exactly where fmask's
    learned masks act (``space="auto"``: on the normalised image for a model that declares its ``mean``,
    e.g. :class:`fmask.models.zoo.Normalized`, as the original code; ``"pixel"``: on x in [0, 1]). In the
    normalised space a filter that removes DC replaces each channel's mean by the model's ``mean``.

    Args:
        model: classifier on [0, 1] images → logits (B, K).
        images: float (N, C, H, W) in [0, 1].
        labels: int (N,); ``None`` → the model's clean predictions (accuracy = agreement with them).
        radii: radii r ≥ 0 (frequency-index units, see :func:`fmask.core.spectral.radial_bands`).
        kind: ``"low"`` or ``"high"``.
        space: ``"auto"``, ``"normalised"`` or ``"pixel"`` (see :data:`fmask.core.mask.SPACES`).
        batch_size: images per forward pass.
        device, progress: as in :func:`fourier_heat_map`.

    Returns:
        float64 CPU tensor (len(radii),): accuracy in [0, 1] at each radius (same order as ``radii``).
    """
    images = check_images(images, in_unit_range=False)
    n, c, h, w = images.shape
    if kind not in ("low", "high"):
        raise ValueError(f"kind must be 'low' or 'high', got {kind!r}")
    radii_t = torch.as_tensor(radii, dtype=torch.float64).reshape(-1) if not isinstance(radii, Tensor) \
        else radii.detach().to(torch.float64).reshape(-1)
    if radii_t.numel() == 0:
        raise ValueError("radii is empty")
    if not bool(torch.isfinite(radii_t).all()) or float(radii_t.min()) < 0:
        raise ValueError(f"radii must be finite numbers >= 0, got {radii_t.tolist()}")
    batch_size = check_int("batch_size", batch_size)
    offset = pixel_offset(model, space, channels=c)
    if offset.numel() not in (1, c):
        raise ValueError(f"the model declares {offset.numel()} channel means but the images have {c} channels")
    acc = torch.zeros(radii_t.numel(), dtype=torch.float64)
    with EvalMode(model, device) as (net, dev):
        y = predict_labels(net, images, batch_size, dev) if labels is None else check_labels(labels, n)
        off = offset.to(dev)
        bar = progress_bar(total=radii_t.numel() * n, progress=progress, desc=f"{kind}-pass accuracy", unit="img")
        with torch.no_grad():
            for k, r in enumerate(radii_t.tolist()):
                m = pass_band_mask(h, w, r, kind).to(dev)
                correct = 0
                for s in range(0, n, batch_size):
                    xb = filter_images(images[s:s + batch_size].to(dev, torch.float32), m, off)
                    correct += int((model_logits(net, xb).argmax(1).cpu() == y[s:s + batch_size]).sum())
                    bar.update(xb.shape[0])
                acc[k] = correct / n
        bar.close()
    return acc
