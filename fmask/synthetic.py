"""Synthetic ground truth for the method: images whose class lives only in a few known frequencies.

:func:`planted_frequency_dataset` draws grayscale images x = 0.5 + a·cos(2π⟨k_y, k_x⟩·⟨r, c⟩/size + φ) + noise,
where the class ``y`` picks the planted frequency ``k_y`` (one per class), ``a`` and ``φ`` are random, and the
noise is white noise with **all planted frequencies (and their mirrors) removed**. So the label is carried
only by the planted Fourier components: a mask that keeps them (and nothing else) keeps the accuracy of a
network trained on the data, and a good mask-learning method must find exactly that support.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["planted_frequency_dataset", "planted_frequencies"]


def _mirror(k: tuple[int, int], size: int) -> tuple[int, int]:
    return ((-k[0]) % size, (-k[1]) % size)


def planted_frequencies(size: int, n_classes: int, seed: int = 0,
                        min_radius: float = 2.0, max_radius: float | None = None) -> list[tuple[int, int]]:
    """Pick ``n_classes`` distinct frequencies (row, col) in fft2 index layout, seeded.

    Frequencies have radius in [min_radius, max_radius] (default size/4) measured in cycles per image,
    are not self-mirrored (so each occupies two fft2 entries, k and -k), and no two are equal or mirrors
    of each other, nor adjacent (Chebyshev distance ≥ 2, mirrors included).
    """
    if max_radius is None:
        max_radius = size / 4
    g = torch.Generator().manual_seed(int(seed))
    cand = []
    half = size // 2
    for fy in range(-half + 1, half):
        for fx in range(0, half):
            r = (fy * fy + fx * fx) ** 0.5
            if min_radius <= r <= max_radius and not (fx == 0 and fy <= 0):
                cand.append((fy, fx))
    order = torch.randperm(len(cand), generator=g).tolist()
    chosen: list[tuple[int, int]] = []
    for i in order:
        fy, fx = cand[i]
        ok = True
        for (cy, cx) in chosen:
            for (sy, sx) in ((cy, cx), (-cy, -cx)):
                if max(abs(fy - sy), abs(fx - sx)) < 2:
                    ok = False
        if ok:
            chosen.append((fy, fx))
        if len(chosen) == n_classes:
            break
    if len(chosen) < n_classes:
        raise ValueError(f"cannot place {n_classes} separated frequencies in a {size}x{size} grid with "
                         f"radius in [{min_radius}, {max_radius}]")
    return [(fy % size, fx % size) for fy, fx in chosen]


def planted_frequency_dataset(
    n: int,
    size: int = 32,
    n_classes: int = 4,
    seed: int = 0,
    *,
    amplitude: Sequence[float] = (0.12, 0.2),
    noise: float = 0.08,
    frequencies: Sequence[tuple[int, int]] | None = None,
    freq_seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Images whose label is carried only by a few planted Fourier components.

    Args:
        n: number of images.
        size: images are (1, size, size).
        n_classes: number of classes; class ``c`` plants frequency ``frequencies[c]``.
        seed: seed for labels, amplitudes, phases and noise.
        amplitude: (low, high) of the planted cosine amplitude, drawn uniformly per image.
        noise: standard deviation of the white noise (before the planted frequencies are removed from it).
        frequencies: explicit planted frequencies as fft2 indices (row, col); by default
            :func:`planted_frequencies(size, n_classes, freq_seed) <planted_frequencies>` — fixed by
            ``freq_seed``, so train/test sets drawn with different ``seed`` share the same frequencies.
        freq_seed: seed used to choose the frequencies when ``frequencies`` is None.

    Returns:
        images: float32 (n, 1, size, size) in [0, 1] (an image that would leave [0, 1] is contracted
            affinely about 0.5, which adds no frequencies);
        labels: int64 (n,), balanced (class ``i % n_classes`` shuffled);
        support: bool (size, size) in fft2 layout, True at every planted frequency **and its mirror**
            (2 × n_classes entries).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(size, int) or size < 4:
        raise ValueError(f"size must be an int >= 4, got {size!r}")
    if not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
    lo, hi = float(amplitude[0]), float(amplitude[1])
    if not 0 < lo <= hi:
        raise ValueError(f"amplitude must be (low, high) with 0 < low <= high, got {amplitude!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if frequencies is None:
        freqs = planted_frequencies(size, n_classes, seed=freq_seed)
    else:
        freqs = [(int(a) % size, int(b) % size) for a, b in frequencies]
        if len(freqs) != n_classes:
            raise ValueError(f"need {n_classes} frequencies, got {len(freqs)}")
    support = torch.zeros(size, size, dtype=torch.bool)
    for k in freqs:
        if _mirror(k, size) == k:
            raise ValueError(f"frequency {k} is its own mirror (Nyquist/DC); choose another")
        for e in (k, _mirror(k, size)):
            if support[e]:
                raise ValueError(f"frequencies {freqs} overlap (incl. mirrors)")
            support[e] = True

    g = torch.Generator().manual_seed(int(seed))
    labels = (torch.arange(n) % n_classes)[torch.randperm(n, generator=g)]
    amp = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    phase = 2 * torch.pi * torch.rand(n, generator=g, dtype=torch.float64)
    white = noise * torch.randn(n, size, size, generator=g, dtype=torch.float64)
    spec = torch.fft.fft2(white)
    spec[:, support] = 0
    bg = torch.fft.ifft2(spec).real

    fk = torch.tensor(freqs, dtype=torch.float64)[labels]  # (n, 2)
    rr = torch.arange(size, dtype=torch.float64).view(1, size, 1)
    cc = torch.arange(size, dtype=torch.float64).view(1, 1, size)
    arg = 2 * torch.pi * (fk[:, 0].view(n, 1, 1) * rr + fk[:, 1].view(n, 1, 1) * cc) / size
    img = 0.5 + amp.view(n, 1, 1) * torch.cos(arg + phase.view(n, 1, 1)) + bg
    dev = (img - 0.5).abs().amax(dim=(1, 2), keepdim=True)
    scale = torch.where(dev > 0.5, 0.5 / dev, torch.ones_like(dev))
    img = (0.5 + (img - 0.5) * scale).clamp(0.0, 1.0)
    return img.to(torch.float32).unsqueeze(1), labels.to(torch.long), support
