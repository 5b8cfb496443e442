"""The data chapter's numbers: class subsets and their sizes, sample images, the mean power spectrum.

* :func:`subset_counts` -- images per class and split of the code's subset (``"paper"``: Imagenette folders
  ``[1, 3, 4, 5, 6]``, what the original code uses) and of the first five folders (``"first5"``: the counts
  the paper's text prints); counted from the file lists, nothing decoded.
* :func:`sample_images` -- one seeded validation image per class after the evaluation transform.
* :func:`radial_power_spectrum` / :func:`power_law_exponent` -- mean power over rings of equal radius
  (:func:`fmask.core.spectral.radial_bands`) and the slope of its log-log fit, :math:`P(f) \\propto 1/f^\\alpha`.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from fmask import data

from fmask.core import spectral

__all__ = ["subset_counts", "sample_images", "spectrum_images", "log_spectra", "radial_power_spectrum",
           "power_law_exponent"]


def subset_counts(root: str | os.PathLike[str], subsets: Sequence[str] = ("paper", "first5")) -> dict[str, Any]:
    """``{subset: {"classes": [names], "train": n, "val": n, "per_class": {name: {"train", "val"}}}}``."""
    counts: dict[str, Any] = {}
    for subset in subsets:
        wnids = data.resolve_classes(subset)
        c: dict[str, Any] = {"classes": [data.CLASS_NAMES[w] for w in wnids], "train": 0, "val": 0, "per_class": {}}
        for split in ("train", "val"):
            _, labels = data.list_split(root, split, subset)
            per = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(wnids))
            c[split] = int(per.sum())
            for w, n in zip(wnids, per):
                c["per_class"].setdefault(data.CLASS_NAMES[w], {})[split] = int(n)
        counts[subset] = c
    return counts


def _val_list(root, classes) -> tuple[list, np.ndarray]:
    paths, labels = data.list_split(root, "val", classes)
    return list(paths), np.asarray(labels, dtype=np.int64)


def sample_images(root: str | os.PathLike[str], classes: str, size: int, *, seed: int) -> tuple[torch.Tensor, list[str]]:
    """One validation image per class (seeded choice), evaluation transform: ((K, 1, S, S) in [0, 1], names)."""
    wnids = data.resolve_classes(classes)
    paths, labels = _val_list(root, classes)
    rng = np.random.default_rng(int(seed))
    tf = data.eval_transform(int(size))
    chosen = [int(rng.choice(np.flatnonzero(labels == k))) for k in range(len(wnids)) if (labels == k).any()]
    imgs = torch.stack([tf(data.decode_image(paths[i], int(size))) for i in chosen])
    return imgs, [data.CLASS_NAMES[wnids[int(labels[i])]] for i in chosen]


def spectrum_images(root: str | os.PathLike[str], classes: str, size: int, *, per_class: int, seed: int) -> torch.Tensor:
    """Up to ``per_class`` seeded validation images per class, evaluation transform: (N, 1, S, S)."""
    if int(per_class) < 1:
        raise ValueError(f"per_class must be >= 1; got {per_class}")
    paths, labels = _val_list(root, classes)
    rng = np.random.default_rng(int(seed) + 1)
    tf = data.eval_transform(int(size))
    pick: list[int] = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        pick += [int(i) for i in rng.choice(idx, size=min(int(per_class), idx.size), replace=False)]
    return torch.stack([tf(data.decode_image(paths[i], int(size))) for i in pick])


def log_spectra(images: torch.Tensor) -> torch.Tensor:
    """Centred log-magnitude spectra (DC in the middle) of (N, C, H, W) images, clamped at 1e-6."""
    return spectral.centered(torch.fft.fft2(images).abs()).clamp_min(1e-6).log()


def radial_power_spectrum(images: torch.Tensor, n_bands: int | None = None) -> np.ndarray:
    """Mean power per radial band (low to high) of (N, C, S, S) images with their means removed.

    Power is averaged over images and channels, then over the frequencies of each of the ``n_bands``
    (default S // 2) rings of :func:`fmask.core.spectral.radial_bands`. Returns an (n_bands,) float64 array.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W); got {tuple(images.shape)}")
    h, w = images.shape[-2:]
    n_bands = int(n_bands or min(h, w) // 2)
    x = images.double()
    power = (torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs() ** 2).mean(dim=(0, 1))
    bands = spectral.radial_bands(h, w, n_bands)
    sums = torch.zeros(n_bands, dtype=torch.float64).index_add_(0, bands.flatten(), spectral.centered(power).flatten())
    counts = torch.bincount(bands.flatten(), minlength=n_bands).clamp_min(1)
    return (sums / counts).numpy()


def power_law_exponent(radial: np.ndarray) -> float:
    """α of a least-squares line through log P vs log f (bands f = 1, 2, ...; the first band and empty
    bands are left out), i.e. P(f) ≈ c / f^α."""
    r = np.asarray(radial, dtype=float)
    f = np.arange(1, r.size + 1)
    ok = r > 0
    ok[0] = False
    if ok.sum() < 2:
        raise ValueError("need at least two non-empty bands beyond the first to fit a power law")
    return float(-np.polyfit(np.log(f[ok]), np.log(r[ok]), 1)[0])
