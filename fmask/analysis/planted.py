"""The planted-frequency benchmark: a small CNN trained in seconds on images whose class lives only in a few
known frequencies (:func:`fmask.data.synthetic.planted_frequency_dataset`), so that a mask and a heat map can
be scored against the true support (:func:`fmask.analysis.agreement.recall_at_k`, chapter 9).

Images are (N, 1, S, S) in [0, 1]; the support is a bool (S, S) map in :func:`torch.fft.fft2` layout.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from fmask.analysis.evaluation import check_int

__all__ = ["PlantedNet", "planted_benchmark"]


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

    n_train, n_test, epochs = check_int("n_train", n_train, 2), check_int("n_test", n_test), \
        check_int("epochs", epochs)
    x, y, support = planted_frequency_dataset(n_train, size=size, n_classes=n_classes, seed=seed)
    xt, yt, _ = planted_frequency_dataset(n_test, size=size, n_classes=n_classes, seed=seed + 1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = PlantedNet(1, n_classes)
    fit_in_memory(model, x, y, epochs=epochs, seed=seed)
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
    return {"model": model, "train": (x, y), "test": (xt, yt), "support": support, "test_accuracy": acc}
