"""Blue shift (paper Fig. 1): pointwise nonlinearities move signal energy to higher frequencies.

A pure sinusoid has all its (non-DC) energy at its own frequency. After a pointwise nonlinearity the
output contains harmonics (k·f) and, for a sum of sinusoids, intermodulation products (|f1 ± f2|, ...):
energy appears at frequencies the input did not have. This module computes those spectra exactly (an
integer number of periods over the window, so there is no leakage) and the fraction of energy that
moved above the input's highest frequency.

Conventions: signals are 1-D, ``t = arange(n) / n`` over one window; ``spectrum`` returns one-sided
magnitudes ``|rfft(s)| / n`` indexed by integer frequency (cycles per window), DC at index 0.
The original notebook (BlueShift.ipynb) sampled ``sin`` on ``arange(-2π, 2π, 0.2)`` (a non-integer number
of periods, hence leakage) and plotted the shifted |FFT| against the sample positions; we plot against
frequency and use hardtanh's limits ±0.3 like the original. The figures are drawn by :mod:`fmask.plots.signals`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ACTIVATIONS",
    "sinusoid",
    "spectrum",
    "blue_shift_fraction",
    "ActivationSpectra",
    "activation_spectra",
    "intermodulation",
    "plot_activation_spectra",
    "plot_intermodulation",
]

#: The nonlinearities of Fig. 1 (B-E) plus the identity (A).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda s: s,
    "softplus": F.softplus,
    "tanh": torch.tanh,
    "relu": F.relu,
    "hardtanh": lambda s: F.hardtanh(s, min_val=-0.3, max_val=0.3),
}


def _check_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def sinusoid(n: int, freqs: Sequence[int], amplitudes: Sequence[float] | None = None) -> torch.Tensor:
    """``sum_i a_i sin(2π f_i t)`` on ``t = arange(n)/n`` (float64, shape (n,)); ``f_i`` integer cycles per window."""
    if not isinstance(n, int) or n < 4:
        raise ValueError(f"n must be an integer >= 4; got {n!r}")
    freqs = list(freqs)
    if not freqs:
        raise ValueError("freqs must contain at least one frequency")
    for f in freqs:
        if not isinstance(f, (int, np.integer)) or not 0 < f < n // 2:
            raise ValueError(f"each frequency must be an integer in (0, n/2) = (0, {n // 2}); got {f!r}")
    amps = [1.0] * len(freqs) if amplitudes is None else list(amplitudes)
    if len(amps) != len(freqs):
        raise ValueError(f"got {len(amps)} amplitudes for {len(freqs)} frequencies")
    t = torch.arange(n, dtype=torch.float64) / n
    return sum(a * torch.sin(2 * torch.pi * f * t) for a, f in zip(amps, freqs))


def spectrum(signal: torch.Tensor) -> torch.Tensor:
    """One-sided magnitude spectrum ``|rfft(s)| / n`` of a 1-D signal, shape (n // 2 + 1,), DC at 0."""
    if signal.ndim != 1:
        raise ValueError(f"signal must be 1-D; got shape {tuple(signal.shape)}")
    return torch.fft.rfft(signal).abs() / signal.shape[0]


def blue_shift_fraction(signal: torch.Tensor, cutoff: int) -> float:
    """Fraction of the non-DC energy of ``signal`` at frequencies strictly above ``cutoff`` (cycles/window)."""
    power = spectrum(signal)[1:] ** 2
    if cutoff < 0 or cutoff >= power.shape[0] + 1:
        raise ValueError(f"cutoff must be in [0, {power.shape[0]}]; got {cutoff}")
    total = float(power.sum())
    if total == 0.0:
        return 0.0
    return float(power[cutoff:].sum()) / total  # power[k-1] is frequency k


@dataclass
class ActivationSpectra:
    """Spectra of ``act(sin(2π f t))`` for several activations.

    ``freqs`` (n//2+1,) integer frequencies; ``spectra[name]`` magnitudes; ``shifted[name]`` the fraction
    of non-DC energy above the input frequency ``base``.
    """

    n: int
    base: int
    freqs: np.ndarray
    spectra: dict[str, np.ndarray]
    shifted: dict[str, float]


def activation_spectra(
    n: int = 128, base: int = 4, activations: Sequence[str] = tuple(ACTIVATIONS)
) -> ActivationSpectra:
    """Fig. 1: the spectrum of a sinusoid of ``base`` cycles per window after each activation."""
    s = sinusoid(n, [base])
    spectra, shifted = {}, {}
    for name in activations:
        out = _check_activation(name)(s)
        spectra[name] = spectrum(out).numpy()
        shifted[name] = blue_shift_fraction(out, base)
    return ActivationSpectra(n=n, base=base, freqs=np.arange(n // 2 + 1), spectra=spectra, shifted=shifted)


def intermodulation(
    n: int = 256, f1: int = 5, f2: int = 12, activation: str = "relu", rel_threshold: float = 1e-3
) -> dict[str, object]:
    """Spectrum of ``act(sin 2πf1t + sin 2πf2t)`` and the frequencies where energy appears.

    Returns ``{"freqs", "magnitude", "input_magnitude", "present": sorted list of frequencies whose
    magnitude exceeds ``rel_threshold`` times the largest non-DC one, "new": those absent from the
    input, "products": the low-order intermodulation frequencies |f2-f1|, f1+f2, 2f1, 2f2 and which of
    them are present, "shifted": fraction of non-DC energy above max(f1, f2)}``.
    """
    if f1 == f2:
        raise ValueError("f1 and f2 must differ")
    s = sinusoid(n, [f1, f2])
    out = _check_activation(activation)(s)
    mag, mag_in = spectrum(out), spectrum(s)
    ref = float(mag[1:].max())
    present = [int(k) for k in range(1, mag.shape[0]) if ref > 0 and float(mag[k]) > rel_threshold * ref]
    present_in = {int(k) for k in range(1, mag_in.shape[0]) if float(mag_in[k]) > rel_threshold * float(mag_in[1:].max())}
    products = {
        "f2-f1": abs(f2 - f1),
        "f1+f2": f1 + f2,
        "2f1": 2 * f1,
        "2f2": 2 * f2,
    }
    return {
        "f1": f1,
        "f2": f2,
        "activation": activation,
        "freqs": np.arange(n // 2 + 1),
        "magnitude": mag.numpy(),
        "input_magnitude": mag_in.numpy(),
        "present": present,
        "new": [k for k in present if k not in present_in],
        "products": {k: {"freq": v, "present": v in present} for k, v in products.items()},
        "shifted": blue_shift_fraction(out, max(f1, f2)),
    }


def plot_activation_spectra(res: ActivationSpectra, *, max_freq: int | None = None):
    """Deprecated alias of :func:`fmask.plots.signals.activation_spectra` (figures live in :mod:`fmask.plots`)."""
    from fmask.plots.signals import activation_spectra as draw

    return draw(res, max_freq=max_freq)


def plot_intermodulation(res: Mapping[str, object], *, max_freq: int | None = None):
    """Deprecated alias of :func:`fmask.plots.signals.intermodulation` (figures live in :mod:`fmask.plots`)."""
    from fmask.plots.signals import intermodulation as draw

    return draw(res, max_freq=max_freq)
