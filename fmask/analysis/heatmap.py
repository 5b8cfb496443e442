"""Beyond the paper: Fourier heat maps (Yin et al., 2019), pass-band accuracy curves, and scores that compare
what a Fourier mask finds with what a heat map finds.

Conventions (as in the rest of fmask)
-------------------------------------
* Images are float tensors in [0, 1], shaped (N, C, H, W); the model normalises internally.
* Frequency maps (heat maps, masks, supports) are in :func:`torch.fft.fft2` **index layout**: entry
  ``[i, j]`` belongs to the frequency with ``i`` cycles per image height along the rows and ``j`` cycles
  per image width along the columns, i.e. to ``X[i, j] = Σ_{r,c} x[r, c] e^{-2πi(i r/H + j c/W)}``; DC is at
  ``[0, 0]``, negative frequencies wrap (``-1 ≡ H-1``). Use :func:`fmask.core.spectral.centered` for display.
* Radii are those of :func:`fmask.core.spectral.radial_bands`: the Euclidean distance, in frequency-index units,
  from the centre ``(H//2, W//2)`` of the **centred** layout, i.e. ``sqrt(f_y² + f_x²)`` for the signed
  frequencies ``f_y ∈ [-H//2, (H-1)//2]``, ``f_x ∈ [-W//2, (W-1)//2]``.

Fourier heat map (Yin, Gontijo Lopes, Shlens, Cubuk, Gilmer, NeurIPS 2019, "A Fourier Perspective on Model
Robustness in Computer Vision", Sec. 3)
-------------------------------------------------------------------------------------------------------------
Each test image is perturbed by ``v · r · U_{i,j}`` where ``U_{i,j}`` is the real, unit-L2-norm Fourier basis
image of frequency (i, j) (:func:`fourier_basis`), ``v`` the L2 norm of the perturbation and ``r`` a random
sign; the heat map is the model's error rate as a function of (i, j). Yin et al. use ``v = 4`` on CIFAR-10 and
``v = 15.7`` on ImageNet, for images in [0, 1] (the perturbation is added before normalisation; the public
re-implementation github:gatheluck/FourierHeatmap then clips to [0, 1] and adds the *same* basis image to every
RGB channel, each channel with its own random sign). Because ``U_{i,j} = U_{-i,-j}``, only one frequency of
every conjugate pair is evaluated and its value is written to both entries, so the map is conjugate-symmetric.

Comparing the tools (chapter 9)
-------------------------------
:func:`band_rank_agreement` ranks the radial bands by the mask's mean value and by the heat map's mean error
and gives Spearman's ρ with a bootstrap interval over images (from ``fourier_heat_map(..., per_image=True)``);
:func:`agreement_verdict` is the chapter's stated rule (agree / disagree / undecided). :func:`recall_at_k`
scores either tool against a known support, e.g. the planted-frequency benchmark of
:func:`planted_benchmark` (a small :class:`PlantedNet` trained in seconds on
:func:`fmask.data.synthetic.planted_frequency_dataset`).
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import Tensor, nn

from fmask.core.mask import filter_images, pixel_offset
from fmask.infra.runtime import model_device, progress_bar, resolve_device
from fmask.core.spectral import centered, radial_bands, uncentered

__all__ = [
    "fourier_basis",
    "heatmap_frequencies",
    "fourier_heat_map",
    "pass_band_mask",
    "pass_band_accuracy",
    "band_mean",
    "rank_agreement",
    "recall_at_k",
    "band_rank_agreement",
    "agreement_verdict",
    "PlantedNet",
    "planted_benchmark",
    "YIN_EPS",
]

#: L2 norm ``v`` of the Fourier-basis perturbation used by Yin et al. (2019), for images in [0, 1].
YIN_EPS: dict[str, float] = {"cifar10": 4.0, "imagenet": 15.7}

_RANGE_TOL = 1e-4


# --------------------------------------------------------------------------------------------- checks
def _check_int(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def _check_images(images: Tensor, *, in_unit_range: bool) -> Tensor:
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got shape {tuple(images.shape)}")
    if images.numel() == 0:
        raise ValueError(f"images is empty: shape {tuple(images.shape)}")
    if images.is_complex() or not images.is_floating_point():
        raise ValueError(f"images must be a real float tensor in [0, 1], got dtype {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or inf values")
    if in_unit_range:
        lo, hi = float(images.min()), float(images.max())
        if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
            raise ValueError(f"images must lie in [0, 1] (pixel units), got range [{lo:.4g}, {hi:.4g}]")
    return images


def _check_labels(labels, n: int) -> Tensor:
    t = torch.as_tensor(labels)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},) to match the images, got {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {t.dtype}")
    return t.long()


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    out = model(x)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"model must return logits (B, n_classes) for a batch of {x.shape[0]} images, got "
                         f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
    return out


class _Eval:
    """Context: the model on ``device`` in eval mode (a copy if it lives elsewhere); modes restored on exit."""

    def __init__(self, model: nn.Module, device) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.device = model_device(model) if device is None else resolve_device(device)

    def __enter__(self) -> tuple[nn.Module, torch.device]:
        same = model_device(self.model) == self.device
        net = self.model if same else copy.deepcopy(self.model).to(self.device)
        self.modes = {m: m.training for m in self.model.modules()}
        net.eval()
        return net, self.device

    def __exit__(self, *exc) -> None:
        for m, t in self.modes.items():
            m.training = t


def _predict(net: nn.Module, images: Tensor, batch_size: int, device: torch.device) -> Tensor:
    out = []
    with torch.no_grad():
        for s in range(0, images.shape[0], batch_size):
            out.append(_logits(net, images[s:s + batch_size].to(device, torch.float32)).argmax(1).cpu())
    return torch.cat(out)


# --------------------------------------------------------------------------------------------- basis
def _mirror(i: int, j: int, h: int, w: int) -> tuple[int, int]:
    return ((-i) % h, (-j) % w)


def _basis_stack(h: int, w: int, freqs: Tensor, dtype=torch.float32) -> Tensor:
    """Unit-norm cosines for frequencies ``freqs`` (F, 2) (fft2 indices): (F, h, w).

    Separable: cos(a + b) = cos a cos b − sin a sin b with a = 2π i r / h, b = 2π j c / w, each phase reduced
    exactly (integer arithmetic) before the float64 cos/sin, so large images keep full accuracy.
    """
    f = freqs.to(torch.long)
    a = 2 * math.pi * torch.remainder(f[:, 0:1] * torch.arange(h).view(1, h), h).to(torch.float64) / h  # (F, h)
    b = 2 * math.pi * torch.remainder(f[:, 1:2] * torch.arange(w).view(1, w), w).to(torch.float64) / w  # (F, w)
    u = torch.cos(a).unsqueeze(2) * torch.cos(b).unsqueeze(1) - torch.sin(a).unsqueeze(2) * torch.sin(b).unsqueeze(1)
    u = u / u.flatten(1).norm(dim=1).view(-1, 1, 1)
    return u.to(dtype)


def fourier_basis(h: int, w: int, i: int, j: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The real Fourier basis image ``U_{i,j}`` of Yin et al. (2019): shape (h, w), unit L2 norm.

    ``U_{i,j}[r, c] = cos(2π (i r / h + j c / w)) / ‖·‖₂``. In the fft2 index convention of this module its
    spectrum ``torch.fft.fft2(U)`` is zero except at ``[i mod h, j mod w]`` and at the conjugate entry
    ``[-i mod h, -j mod w]``, where it is real and positive: the pair of conjugate frequencies is combined so
    the image is real (this is ``irfft`` of a one-hot half-spectrum, as in Yin et al.'s construction). Hence
    ``U_{i,j} = U_{-i,-j}``. For a self-conjugate frequency (DC, or Nyquist along both axes) the single entry
    is used and the image has values ``±1/sqrt(h w)``. ``i``, ``j`` may be negative (taken modulo h, w).
    """
    h, w = _check_int("h", h), _check_int("w", w)
    for name, v in (("i", i), ("j", j)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name} must be an int frequency index, got {v!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return _basis_stack(h, w, torch.tensor([[i % h, j % w]]), dtype)[0]


def _signed(i: int, n: int) -> int:
    """Signed frequency of fft2 index ``i`` on an axis of length n: the centred-layout offset, in
    [-n//2, (n-1)//2]."""
    return i if i <= (n - 1) // 2 else i - n


def heatmap_frequencies(h: int, w: int, frequencies: str | int | Sequence[Sequence[int]] = "all",
                        window: int | None = None) -> Tensor:
    """The frequencies a heat map evaluates: LongTensor (F, 2) of fft2 indices, one per conjugate pair.

    ``frequencies``:
      * ``"all"``: every frequency of the (h, w) grid;
      * an int stride ``k >= 1``: frequencies whose signed components (f_y, f_x) (centred layout, see the
        module docstring) are both multiples of ``k`` — a grid through DC, symmetric under k → -k;
      * a sequence of (i, j) pairs (fft2 indices, negative values allowed).

    ``window``: keep only frequencies with ``max(|f_y|, |f_x|) <= window`` (signed components), a
    (2·window+1)² square around DC — Yin et al. show the central 63×63 region (``window=31``) for ImageNet.

    Of every conjugate pair {k, -k} only the lexicographically smaller fft2 index is returned (the heat map
    value of -k equals that of k because ``U_k = U_{-k}``); duplicates are removed; the result is sorted.
    """
    h, w = _check_int("h", h), _check_int("w", w)
    if isinstance(frequencies, str):
        if frequencies != "all":
            raise ValueError(f"frequencies must be 'all', an int stride or a list of (i, j); got {frequencies!r}")
        cand = [(i, j) for i in range(h) for j in range(w)]
    elif isinstance(frequencies, int) and not isinstance(frequencies, bool):
        k = _check_int("frequencies (stride)", frequencies)
        cand = [(i, j) for i in range(h) for j in range(w) if _signed(i, h) % k == 0 and _signed(j, w) % k == 0]
    else:
        try:
            pairs = [tuple(p) for p in frequencies]
        except TypeError as e:
            raise ValueError(f"frequencies must be 'all', an int stride or a list of (i, j); got "
                             f"{frequencies!r}") from e
        if not pairs:
            raise ValueError("frequencies is an empty list")
        cand = []
        for p in pairs:
            if len(p) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in p):
                raise ValueError(f"each frequency must be a pair of ints (i, j), got {p!r}")
            cand.append((p[0] % h, p[1] % w))
    if window is not None:
        window = _check_int("window", window, lo=0)
        cand = [(i, j) for i, j in cand if max(abs(_signed(i, h)), abs(_signed(j, w))) <= window]
    reps = sorted({min((i, j), _mirror(i, j, h, w)) for i, j in cand})
    if not reps:
        raise ValueError(f"no frequency of {frequencies!r} lies in the window {window}")
    return torch.tensor(reps, dtype=torch.long).view(-1, 2)


# --------------------------------------------------------------------------------------------- heat map
_CHANNEL_MODES = ("all", "each")
_SIGN_MODES = ("per_channel", "per_image")


def _unit_seed(seed: int, unit: int, i: int, j: int, h: int, w: int) -> int:
    """A seed for the signs of one (channel-mode unit, frequency): independent of which other frequencies
    are evaluated and of the batch size, so the same (seed, frequency) always gives the same signs."""
    return (int(seed) * 1_000_003 + (unit * h + i) * w + j) % (2 ** 63 - 1)


def fourier_heat_map(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | None = None,
    *,
    eps: float = 4.0,
    frequencies: str | int | Sequence[Sequence[int]] = "all",
    window: int | None = None,
    channels: str = "all",
    sign: str = "per_channel",
    clamp: bool = True,
    batch_size: int = 512,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    per_image: bool = False,
) -> Tensor:
    """Fourier heat map of Yin et al. (2019): error rate under Fourier-basis perturbations, per frequency.

    For every evaluated frequency (i, j), every image ``x_n`` becomes ``x_n + eps · r · U_{i,j}`` (clamped to
    [0, 1] when ``clamp``) and the error rate is the fraction of images whose prediction differs from
    ``labels``. Perturbations of several frequencies are stacked into one forward batch of ``batch_size``
    images (the work is flattened over frequencies × images).

    Args:
        model: classifier on images in [0, 1] returning logits (B, K) (e.g. :class:`fmask.models.zoo.Normalized`).
        images: float (N, C, H, W) in [0, 1].
        labels: int (N,) true labels; ``None`` uses the model's own clean predictions (the heat map then
            measures prediction flips).
        eps: L2 norm ``v`` of the perturbation of one channel, in pixel units of [0, 1] images (Yin et al.:
            4.0 on CIFAR-10, 15.7 on ImageNet — :data:`YIN_EPS`). With ``channels="all"`` every channel gets
            a perturbation of norm ``eps`` (total norm ``eps·sqrt(C)``), as in Yin et al.
        frequencies: ``"all"``, an int stride or a list of (i, j); see :func:`heatmap_frequencies`.
        window: evaluate only ``max(|f_y|, |f_x|) <= window`` (e.g. 31 for Yin et al.'s 63×63 ImageNet map).
        channels: ``"all"`` (Yin et al.: the same basis image added to every channel) → map (H, W);
            ``"each"``: perturb one channel at a time (the others untouched) → map (C, H, W), entry ``[c]``
            is the heat map of channel c.
        sign: ``"per_channel"`` (Yin et al. / github:gatheluck/FourierHeatmap: an independent random sign
            r ∈ {-1, 1} for every image and channel) or ``"per_image"`` (one sign per image shared by its
            channels). Signs are drawn per (frequency, channel mode) from a generator seeded by ``seed`` and
            the frequency, so results do not depend on ``batch_size`` or on which other frequencies are run.
        clamp: clip perturbed images to [0, 1] (True, as the re-implementation does, keeps valid images;
            False adds the pure basis perturbation, e.g. for analytic checks).
        batch_size: perturbed images per forward pass (≥ 1).
        seed: seed of the random signs.
        device: where to run (default: the model's device; a copy of the model is moved if needed).
        progress: show a terminal progress bar (:func:`fmask.infra.runtime.progress_bar`).
        per_image: return every image's error (0 or 1) instead of the rate: a leading image axis, so
            ``fourier_heat_map(..., per_image=True).mean(0)`` equals the heat map (images are then
            resampled for bootstrap intervals, :func:`band_rank_agreement`).

    Returns:
        float32 CPU tensor (H, W) (``channels="all"``) or (C, H, W) (``"each"``) in fft2 layout with the error
        rate in [0, 1] at every evaluated frequency and its conjugate, NaN elsewhere; with ``per_image`` an
        (N, H, W) or (N, C, H, W) tensor of 0/1 errors (NaN where not evaluated).
    """
    images = _check_images(images, in_unit_range=clamp)
    n, c, h, w = images.shape
    if channels not in _CHANNEL_MODES:
        raise ValueError(f"channels must be one of {_CHANNEL_MODES}, got {channels!r}")
    if sign not in _SIGN_MODES:
        raise ValueError(f"sign must be one of {_SIGN_MODES}, got {sign!r}")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    batch_size = _check_int("batch_size", batch_size)
    freqs = heatmap_frequencies(h, w, frequencies, window)
    n_units = 1 if channels == "all" else c  # channel modes
    n_freq = freqs.shape[0]
    n_work = n_units * n_freq  # (unit, frequency) pairs, unit-major

    # signs (n_work, N, C), drawn per (unit, frequency)
    signs = torch.empty(n_work, n, c, dtype=torch.int8)
    for u in range(n_units):
        for f in range(n_freq):
            i, j = int(freqs[f, 0]), int(freqs[f, 1])
            g = torch.Generator().manual_seed(_unit_seed(seed, u, i, j, h, w))
            r = torch.randint(0, 2, (n, c if sign == "per_channel" else 1), generator=g, dtype=torch.int8) * 2 - 1
            if channels == "each":  # unit u perturbs channel u only
                r = r.expand(n, c) * (torch.arange(c) == u).to(torch.int8)
            signs[u * n_freq + f] = r.expand(n, c)

    wrong_all = torch.zeros(n_work, n, dtype=torch.bool)
    total = n_work * n
    with _Eval(model, device) as (net, dev):
        if labels is None:
            labels_t = _predict(net, images, batch_size, dev)
        else:
            labels_t = _check_labels(labels, n)
        x_dev = images.to(dev, torch.float32)
        y_dev = labels_t.to(dev)
        signs_dev = signs.to(dev)
        bar = progress_bar(total=total, progress=progress, desc="Fourier heat map", unit="img")
        with torch.no_grad():
            for s in range(0, total, batch_size):
                flat = torch.arange(s, min(s + batch_size, total), device=dev)
                work, img = flat // n, flat % n
                w_lo = int(work[0])
                basis = _basis_stack(h, w, freqs[(torch.arange(w_lo, int(work[-1]) + 1) % n_freq)]).to(dev)
                scale = eps * signs_dev[work, img].to(torch.float32).view(-1, c, 1, 1)
                xb = x_dev[img].addcmul_(scale, basis[work - w_lo].unsqueeze(1))
                if clamp:
                    xb = xb.clamp_(0.0, 1.0)
                wrong = _logits(net, xb).argmax(1) != y_dev[img]
                wrong_all[work.cpu(), img.cpu()] = wrong.cpu()
                bar.update(int(flat.numel()))
        bar.close()

    if per_image:  # (n_units, n_freq, N) -> (N, n_units, h, w)
        rate = wrong_all.to(torch.float32).view(n_units, n_freq, n).permute(2, 0, 1)
    else:
        rate = wrong_all.to(torch.float64).mean(1).to(torch.float32).view(1, n_units, n_freq)
    out = torch.full((rate.shape[0], n_units, h, w), float("nan"))
    for f in range(n_freq):
        i, j = int(freqs[f, 0]), int(freqs[f, 1])
        mi, mj = _mirror(i, j, h, w)
        out[:, :, i, j] = rate[:, :, f]
        out[:, :, mi, mj] = rate[:, :, f]
    out = out[:, 0] if channels == "all" else out
    return out if per_image else out[0]


# --------------------------------------------------------------------------------------------- pass band
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
    h, w = _check_int("h", h), _check_int("w", w)
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
    images = _check_images(images, in_unit_range=False)
    n, c, h, w = images.shape
    if kind not in ("low", "high"):
        raise ValueError(f"kind must be 'low' or 'high', got {kind!r}")
    radii_t = torch.as_tensor(radii, dtype=torch.float64).reshape(-1) if not isinstance(radii, Tensor) \
        else radii.detach().to(torch.float64).reshape(-1)
    if radii_t.numel() == 0:
        raise ValueError("radii is empty")
    if not bool(torch.isfinite(radii_t).all()) or float(radii_t.min()) < 0:
        raise ValueError(f"radii must be finite numbers >= 0, got {radii_t.tolist()}")
    batch_size = _check_int("batch_size", batch_size)
    offset = pixel_offset(model, space, channels=c)
    if offset.numel() not in (1, c):
        raise ValueError(f"the model declares {offset.numel()} channel means but the images have {c} channels")
    acc = torch.zeros(radii_t.numel(), dtype=torch.float64)
    with _Eval(model, device) as (net, dev):
        y = _predict(net, images, batch_size, dev) if labels is None else _check_labels(labels, n)
        off = offset.to(dev)
        bar = progress_bar(total=radii_t.numel() * n, progress=progress, desc=f"{kind}-pass accuracy", unit="img")
        with torch.no_grad():
            for k, r in enumerate(radii_t.tolist()):
                m = pass_band_mask(h, w, r, kind).to(dev)
                correct = 0
                for s in range(0, n, batch_size):
                    xb = filter_images(images[s:s + batch_size].to(dev, torch.float32), m, off)
                    correct += int((_logits(net, xb).argmax(1).cpu() == y[s:s + batch_size]).sum())
                    bar.update(xb.shape[0])
                acc[k] = correct / n
        bar.close()
    return acc


# --------------------------------------------------------------------------------------------- scores
def band_mean(values: Tensor, bands: str | Tensor = "radial", n_bands: int = 16) -> Tensor:
    """NaN-ignoring mean of a frequency map over bands: (H, W) → (n_bands,), (C, H, W) → (C, n_bands).

    ``values`` is in **fft2 layout** (e.g. a heat map); ``bands`` is ``"radial"`` (the
    :func:`fmask.core.spectral.radial_bands` map with ``n_bands`` bands) or a LongTensor (H, W) band map in the
    **centred** layout (then ``n_bands = bands.max() + 1``). A band with no finite value gets NaN. Use with
    :func:`fmask.core.spectral.band_energy` of a mask to compare both per band (:func:`rank_agreement`).
    """
    if not isinstance(values, Tensor) or values.dim() not in (2, 3) or values.is_complex():
        raise ValueError("values must be a real tensor (H, W) or (C, H, W) in fft2 layout, got "
                         f"{type(values).__name__} {tuple(getattr(values, 'shape', ()))}")
    h, w = values.shape[-2:]
    if isinstance(bands, str):
        if bands != "radial":
            raise ValueError(f"bands must be 'radial' or a LongTensor (H, W), got {bands!r}")
        bmap = radial_bands(h, w, _check_int("n_bands", n_bands))
        nb = n_bands
    elif isinstance(bands, Tensor):
        if tuple(bands.shape) != (h, w) or bands.is_floating_point() or bands.dtype == torch.bool:
            raise ValueError(f"band map must be an integer tensor of shape {(h, w)}, got "
                             f"{bands.dtype} {tuple(bands.shape)}")
        if int(bands.min()) < 0:
            raise ValueError("band map values must be >= 0")
        bmap = bands.long()
        nb = int(bmap.max()) + 1
    else:
        raise ValueError(f"bands must be 'radial' or a LongTensor (H, W), got {type(bands).__name__}")
    v = centered(values.to(torch.float64)).reshape(-1, h * w)
    ok = torch.isfinite(v)
    idx = bmap.reshape(1, -1).expand_as(v)
    s = torch.zeros(v.shape[0], nb, dtype=torch.float64).scatter_add_(1, idx, torch.where(ok, v, 0.0))
    cnt = torch.zeros(v.shape[0], nb, dtype=torch.float64).scatter_add_(1, idx, ok.double())
    out = torch.where(cnt > 0, s / cnt.clamp_min(1), torch.full_like(s, float("nan")))
    return out[0] if values.dim() == 2 else out


def _average_ranks(v: Tensor) -> Tensor:
    """Ranks 1..n with ties given their average rank (float64)."""
    order = torch.argsort(v, stable=True)
    sv = v[order]
    ranks = torch.empty_like(v)
    n = v.numel()
    i = 0
    while i < n:
        j = i
        while j + 1 < n and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _spearman_own(a: Tensor, b: Tensor) -> float:
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / den if den > 0 else float("nan")


def rank_agreement(mask_energy_by_band, heatmap_by_band, *, method: str = "auto") -> float:
    """Spearman rank correlation between two per-band profiles (e.g. a mask's band energy and a heat map's
    band mean), in [-1, 1].

    Both inputs are 1-D of equal length (tensors, arrays or sequences). Pairs where either value is NaN are
    dropped (bands a heat map did not evaluate). Tied values get average ranks. Returns NaN when fewer than two
    pairs remain or one side is constant (the correlation is undefined). ``method``: ``"auto"`` (scipy's
    ``spearmanr`` when scipy is importable, else fmask's own implementation), ``"scipy"`` or ``"own"``.
    """
    if method not in ("auto", "scipy", "own"):
        raise ValueError(f"method must be 'auto', 'scipy' or 'own', got {method!r}")
    a = torch.as_tensor(mask_energy_by_band, dtype=torch.float64).detach().cpu()
    b = torch.as_tensor(heatmap_by_band, dtype=torch.float64).detach().cpu()
    if a.dim() != 1 or b.dim() != 1 or a.shape != b.shape:
        raise ValueError(f"rank_agreement expects two 1-D profiles of equal length, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    keep = ~(torch.isnan(a) | torch.isnan(b))
    a, b = a[keep], b[keep]
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        raise ValueError("profiles must not contain inf")
    if a.numel() < 2 or bool((a == a[0]).all()) or bool((b == b[0]).all()):
        return float("nan")
    if method in ("auto", "scipy"):
        try:
            from scipy.stats import spearmanr
        except ImportError:
            if method == "scipy":
                raise
        else:
            return float(spearmanr(a.numpy(), b.numpy()).statistic)
    return _spearman_own(a, b)


def recall_at_k(score_map: Tensor, support: Tensor, k: int, *, exclude: Tensor | None = None) -> float:
    """Fraction of the ``support`` entries found among the ``k`` highest entries of ``score_map``.

    ``score_map`` (e.g. a mask or a heat map) and ``support`` (bool, e.g. planted frequencies) have the same
    shape — (H, W) or (C, H, W), fft2 layout; ``exclude`` (bool, same shape, optional) removes entries from the
    ranking and from the support (e.g. DC). NaN scores (frequencies a heat map did not evaluate) are never
    selected, so a support entry with a NaN score counts as missed. Ties at the k-th value are resolved by
    their expected value under uniform random tie-breaking (a mask of all ones scores ``k / #entries`` rather
    than whatever order a sort happens to give), so the result is deterministic and unbiased. Returns
    ``E|top-k ∩ support| / |support ∖ exclude|`` in [0, 1]; with ``k = |support|`` this is also the precision.
    """
    if not isinstance(score_map, Tensor) or not isinstance(support, Tensor):
        raise ValueError("score_map and support must be tensors")
    if score_map.is_complex() or score_map.dim() not in (2, 3):
        raise ValueError(f"score_map must be real (H, W) or (C, H, W), got shape {tuple(score_map.shape)}")
    if support.dtype != torch.bool or support.shape != score_map.shape:
        raise ValueError(f"support must be a bool tensor shaped like score_map {tuple(score_map.shape)}, got "
                         f"{support.dtype} {tuple(support.shape)}")
    k = _check_int("k", k)
    keep = torch.ones(score_map.shape, dtype=torch.bool)
    if exclude is not None:
        if not isinstance(exclude, Tensor) or exclude.dtype != torch.bool or exclude.shape != score_map.shape:
            raise ValueError("exclude must be a bool tensor shaped like score_map")
        keep = ~exclude.cpu()
    n_sup = int((support.cpu() & keep).sum())
    if n_sup == 0:
        raise ValueError("support has no (non-excluded) entries")
    valid = keep & ~torch.isnan(score_map.detach().cpu().double())
    s = score_map.detach().cpu().double()[valid]
    t = support.cpu()[valid]
    if k >= s.numel():
        return float(t.sum()) / n_sup
    kth = torch.topk(s, k).values[-1]
    above = s > kth
    tied = s == kth
    need = k - int(above.sum())
    hits = float(t[above].sum()) + need * float(t[tied].sum()) / float(tied.sum())
    return hits / n_sup


def band_rank_agreement(
    mask: Tensor,
    per_image_errors: Tensor,
    n_bands: int = 16,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Spearman ρ between a mask's and a heat map's radial-band profiles, with a bootstrap interval over images.

    Both profiles are **band means** (:func:`band_mean`): the mean mask value of a band (the fraction of the
    band the mask keeps) and the mean error rate of the band's evaluated frequencies. Means, not
    :func:`fmask.core.spectral.band_energy` norms, so neither profile grows with the band's area.

    Args:
        mask: real (H, W) or (C, H, W) / (1, C, H, W) mask in fft2 layout (channels are averaged).
        per_image_errors: (N, H, W) 0/1 errors from :func:`fourier_heat_map` with ``per_image=True``
            (NaN at frequencies not evaluated); their mean over images is the heat map.
        n_bands: radial bands (:func:`fmask.core.spectral.radial_bands`).
        n_resamples: bootstrap resamples of the N images (0: no interval); the mask is fixed.
        confidence: of the percentile interval.
        seed: of ``numpy.random.default_rng`` (same inputs and seed → same interval).

    Returns:
        dict with ``rho`` (Spearman ρ of the two profiles, NaN if undefined), ``lo``/``hi`` (the percentile
        interval of ρ over resamples whose ρ is defined; NaN without resamples), ``n_undefined`` (resamples
        whose heat-map profile was constant), ``mask_profile`` and ``heat_profile`` (lists, NaN for a band
        without evaluated frequency) and ``n_bands``.
    """
    import numpy as np

    if not isinstance(per_image_errors, Tensor) or per_image_errors.dim() != 3:
        raise ValueError("per_image_errors must be an (N, H, W) tensor (fourier_heat_map(..., per_image=True)), "
                         f"got {tuple(getattr(per_image_errors, 'shape', ()))}")
    m = torch.as_tensor(mask).detach().cpu().to(torch.float64)
    while m.dim() > 3 and m.shape[0] == 1:
        m = m[0]
    if m.dim() == 3:
        m = m.mean(0)
    if m.dim() != 2 or tuple(m.shape) != tuple(per_image_errors.shape[-2:]):
        raise ValueError(f"mask must be (H, W) or (C, H, W) with (H, W) = {tuple(per_image_errors.shape[-2:])}, "
                         f"got {tuple(torch.as_tensor(mask).shape)}")
    n_bands = _check_int("n_bands", n_bands, lo=2)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise ValueError(f"n_resamples must be an int >= 0, got {n_resamples!r}")
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    mask_prof = band_mean(m, "radial", n_bands)
    per_img = band_mean(per_image_errors.to(torch.float64), "radial", n_bands)  # (N, n_bands)
    heat_prof = per_img.mean(0)
    rho = rank_agreement(mask_prof, heat_prof)
    lo = hi = float("nan")
    n_undef = 0
    if n_resamples > 0:
        rng = np.random.default_rng(int(seed))
        arr = per_img.numpy()
        n = arr.shape[0]
        stats = []
        for _ in range(n_resamples):
            r = rank_agreement(mask_prof, torch.from_numpy(arr[rng.integers(0, n, size=n)].mean(0)), method="own")
            if r == r:
                stats.append(r)
            else:
                n_undef += 1
        if stats:
            lo, hi = (float(v) for v in np.quantile(np.asarray(stats), [(1 - confidence) / 2, (1 + confidence) / 2]))
    return {"rho": rho, "lo": lo, "hi": hi, "n_undefined": n_undef, "n_resamples": int(n_resamples),
            "mask_profile": mask_prof.tolist(), "heat_profile": heat_prof.tolist(), "n_bands": n_bands}


def agreement_verdict(lo: float, hi: float, rho: float) -> str:
    """The rule chapter 9 states before its numbers: ``"agree"`` when the whole interval of ρ lies above 0
    (the mask keeps most where the heat map shows most sensitivity), ``"disagree"`` when it lies below 0,
    ``"undecided"`` when it contains 0. Without an interval (NaN bounds) the point estimate decides with the
    bar |ρ| >= 0.5; an undefined ρ is ``"undecided"``."""
    if rho != rho:
        return "undecided"
    if lo == lo and hi == hi:
        return "agree" if lo > 0 else "disagree" if hi < 0 else "undecided"
    return "agree" if rho >= 0.5 else "disagree" if rho <= -0.5 else "undecided"


# --------------------------------------------------------------------------------------------- planted
class PlantedNet(nn.Module):
    """A few-thousand-parameter CNN for (N, 1, S, S) images in [0, 1] (the test suite's ``TinyCNN``).

    It subtracts each image's mean first (ignores DC), then conv 5×5 → ReLU → max-pool → conv 3×3 → ReLU →
    global average pool → linear. It takes [0, 1] images directly, declares no ``mean``, so masks act on
    pixels (:func:`fmask.core.mask.pixel_offset`).
    """

    def __init__(self, in_ch: int = 1, n_classes: int = 4, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(2 * width, n_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body((x - x.mean(dim=(-2, -1), keepdim=True)) / 0.2)


def planted_benchmark(n_train: int = 640, n_test: int = 256, *, size: int = 32, n_classes: int = 4,
                      epochs: int = 6, seed: int = 0) -> dict:
    """Train a :class:`PlantedNet` on :func:`fmask.data.synthetic.planted_frequency_dataset` (seconds on a CPU).

    Train images use ``seed``, test images ``seed + 1`` (same planted frequencies, ``freq_seed=0``); Adam,
    lr 1e-2, batches of 64, ``epochs`` epochs, all seeded (same arguments → same network). As
    ``tests/conftest.py``'s ``planted`` fixture, which reaches ≥ 95 % test accuracy.

    Returns:
        dict with ``model`` (eval mode), ``train`` and ``test`` (images (n, 1, size, size), labels (n,)),
        ``support`` (bool (size, size), fft2 layout: the planted frequencies and their mirrors) and
        ``test_accuracy``.
    """
    from fmask.data.synthetic import fit_in_memory, planted_frequency_dataset

    n_train, n_test, epochs = _check_int("n_train", n_train, 2), _check_int("n_test", n_test), \
        _check_int("epochs", epochs)
    x, y, support = planted_frequency_dataset(n_train, size=size, n_classes=n_classes, seed=seed)
    xt, yt, _ = planted_frequency_dataset(n_test, size=size, n_classes=n_classes, seed=seed + 1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = PlantedNet(1, n_classes)
    fit_in_memory(model, x, y, epochs=epochs, seed=seed)
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
    return {"model": model, "train": (x, y), "test": (xt, yt), "support": support, "test_accuracy": acc}
