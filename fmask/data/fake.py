"""Test and demo fixtures (no real data needed): a tiny fake Imagenette folder.

:func:`write_fake_imagenette` writes all ten class folders of Imagenette's layout with a few JPEGs each;
``fmask.data.write_fake_imagenette`` re-exports it.
"""
from __future__ import annotations

import os
from pathlib import Path

from fmask.data.imagenette import IMAGENETTE_WNIDS

__all__ = ["write_fake_imagenette"]


def write_fake_imagenette(
    root: str | os.PathLike, n_train: int = 8, n_val: int = 4, size: tuple[int, int] = (40, 48), seed: int = 0
) -> Path:
    """Write a tiny Imagenette-layout folder (all 10 wnids, RGB JPEGs) for tests and demos; returns ``root``.

    Class k (folder index) has mean brightness ``30 + 20 k`` plus noise and a class-dependent stripe
    frequency, so a classifier can learn it quickly. Images are ``size`` = (height, width).
    """
    import numpy as np
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    yy = np.arange(h)[:, None]
    for split, n in (("train", n_train), ("val", n_val)):
        for k, wnid in enumerate(IMAGENETTE_WNIDS):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                stripes = 25 * np.sin(2 * np.pi * (k + 1) * yy / h) * np.ones((1, w))
                base = 30 + 20 * k + stripes + rng.normal(0, 8, (h, w))
                rgb = np.clip(np.stack([base, base * 0.9, base * 1.1], -1), 0, 255).astype(np.uint8)
                Image.fromarray(rgb).save(folder / f"{wnid}_{i:04d}.JPEG", quality=90)
    return root
