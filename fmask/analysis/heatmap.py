"""Beyond the paper: Fourier heat maps (Yin et al., 2019), the error rate of a network under Fourier-basis
perturbations, per frequency.

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

Pass-band accuracy curves are in :mod:`~fmask.analysis.passband`, the scores that compare a heat map with a
mask in :mod:`~fmask.analysis.agreement`, the planted-frequency benchmark in :mod:`~fmask.analysis.planted`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from fmask.analysis.evaluation import EvalMode, check_images, check_int, check_labels, model_logits, predict_labels
from fmask.infra.runtime import progress_bar

__all__ = ["fourier_basis", "heatmap_frequencies", "fourier_heat_map", "YIN_EPS"]

#: L2 norm ``v`` of the Fourier-basis perturbation used by Yin et al. (2019), for images in [0, 1].
YIN_EPS: dict[str, float] = {"cifar10": 4.0, "imagenet": 15.7}


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
    h, w = check_int("h", h), check_int("w", w)
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
    h, w = check_int("h", h), check_int("w", w)
    if isinstance(frequencies, str):
        if frequencies != "all":
            raise ValueError(f"frequencies must be 'all', an int stride or a list of (i, j); got {frequencies!r}")
        cand = [(i, j) for i in range(h) for j in range(w)]
    elif isinstance(frequencies, int) and not isinstance(frequencies, bool):
        k = check_int("frequencies (stride)", frequencies)
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
        window = check_int("window", window, lo=0)
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
    images = check_images(images, in_unit_range=clamp)
    n, c, h, w = images.shape
    if channels not in _CHANNEL_MODES:
        raise ValueError(f"channels must be one of {_CHANNEL_MODES}, got {channels!r}")
    if sign not in _SIGN_MODES:
        raise ValueError(f"sign must be one of {_SIGN_MODES}, got {sign!r}")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    batch_size = check_int("batch_size", batch_size)
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
    with EvalMode(model, device) as (net, dev):
        if labels is None:
            labels_t = predict_labels(net, images, batch_size, dev)
        else:
            labels_t = check_labels(labels, n)
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
                wrong = model_logits(net, xb).argmax(1) != y_dev[img]
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
