"""Synthetic ground truth for the method: images whose class lives only in a few known frequencies.

:func:`planted_frequency_dataset` draws grayscale images x = 0.5 + a·cos(2π⟨k_y, k_x⟩·⟨r, c⟩/size + φ) + noise,
where the class ``y`` picks the planted frequency ``k_y`` (one per class), ``a`` and ``φ`` are random, and the
noise is white noise with **all planted frequencies (and their mirrors) removed**. So the label is carried
only by the planted Fourier components: a mask that keeps them (and nothing else) keeps the accuracy of a
network trained on the data, and a good mask-learning method must find exactly that support.

:func:`planted_frequency_rgb_dataset` is the colour variant: the class lives in one channel's planted
frequencies only, the other channels carry class-independent content, and the support is returned per channel
(a per-channel mask must keep the support in the class channel and nothing of it elsewhere).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["planted_frequency_dataset", "planted_frequencies", "planted_frequency_rgb_dataset", "fit_in_memory"]


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


def planted_frequency_rgb_dataset(
    n: int,
    size: int = 32,
    n_classes: int = 4,
    seed: int = 0,
    *,
    class_channel: int = 0,
    channels: int = 3,
    distractors: str = "frequencies",
    amplitude: Sequence[float] = (0.12, 0.2),
    noise: float = 0.08,
    frequencies: Sequence[tuple[int, int]] | None = None,
    freq_seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Colour variant of :func:`planted_frequency_dataset`: the class lives **only** in one channel.

    Channel ``class_channel`` is exactly the grayscale planted-frequency image of
    :func:`planted_frequency_dataset(n, size, n_classes, seed, ...) <planted_frequency_dataset>` (same labels,
    same pixels). Every other channel is class-independent:

    * ``distractors="frequencies"`` (default): the channel is another planted-frequency image built from the
      **same** planted frequencies but with its own balanced, independently shuffled labels (drawn from a seed
      derived from ``seed`` and the channel), so the planted frequencies appear in every channel and only the
      class channel's choice among them tells the class. A network must therefore tell the channels apart,
      and a per-channel mask must keep the planted support in the class channel only.
    * ``distractors="noise"``: the channel is ``0.5 +`` white noise of standard deviation ``noise`` (clamped to
      [0, 1]); the planted frequencies are not removed from it (it carries no label either way).

    Args:
        n, size, n_classes, seed, amplitude, noise, frequencies, freq_seed: as in
            :func:`planted_frequency_dataset` (``seed`` fixes labels and all channels; ``freq_seed`` the
            planted frequencies, shared by train and test sets drawn with different ``seed``).
        class_channel: index of the channel that carries the class (0 ≤ class_channel < channels).
        channels: number of channels C (≥ 2).
        distractors: ``"frequencies"`` or ``"noise"`` (see above).

    Returns:
        images: float32 (n, C, size, size) in [0, 1];
        labels: int64 (n,), balanced (identical to the grayscale function's for the same arguments);
        support: bool (C, size, size) in fft2 layout: the planted frequencies and their mirrors in channel
            ``class_channel`` and nothing in the other channels (the class information per channel).
    """
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 2:
        raise ValueError(f"channels must be an int >= 2, got {channels!r}")
    if not isinstance(class_channel, int) or isinstance(class_channel, bool) or not 0 <= class_channel < channels:
        raise ValueError(f"class_channel must be an int in [0, {channels}), got {class_channel!r}")
    if distractors not in ("frequencies", "noise"):
        raise ValueError(f"distractors must be 'frequencies' or 'noise', got {distractors!r}")
    x, labels, support = planted_frequency_dataset(n, size, n_classes, seed, amplitude=amplitude, noise=noise,
                                                   frequencies=frequencies, freq_seed=freq_seed)
    # one derived seed per channel, from a generator of its own (never equal to `seed`'s stream)
    g = torch.Generator().manual_seed(int(seed) * 2 + 1)
    sub_seeds = torch.randint(0, 2 ** 62, (channels,), generator=g).tolist()
    planes = []
    for ch in range(channels):
        if ch == class_channel:
            planes.append(x[:, 0])
        elif distractors == "frequencies":
            xd, _, _ = planted_frequency_dataset(n, size, n_classes, int(sub_seeds[ch]), amplitude=amplitude,
                                                  noise=noise, frequencies=frequencies, freq_seed=freq_seed)
            planes.append(xd[:, 0])
        else:
            gd = torch.Generator().manual_seed(int(sub_seeds[ch]))
            planes.append((0.5 + noise * torch.randn(n, size, size, generator=gd)).clamp(0.0, 1.0))
    images = torch.stack(planes, dim=1).to(torch.float32)
    support_c = torch.zeros(channels, size, size, dtype=torch.bool)
    support_c[class_channel] = support
    return images, labels, support_c


def fit_in_memory(model: torch.nn.Module, x: Tensor, y: Tensor, *, epochs: int, seed: int, lr: float = 1e-2,
                  batch_size: int = 64) -> torch.nn.Module:
    """Train ``model`` in place on in-memory ``x`` (n, C, H, W) / ``y`` (n,): Adam(``lr``), cross-entropy,
    ``epochs`` passes over a permutation drawn from ``torch.Generator().manual_seed(seed)`` in batches of
    ``batch_size``. The planted-frequency networks' trainer (:func:`fmask.analysis.planted.planted_benchmark`, the tests'
    planted fixtures): same arguments and initial weights -> same network. Returns ``model`` in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
