"""Shared pytest fixtures (keep small): tiny CPU networks and a classifier trained on planted frequencies."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

# The suite's networks are tiny: intra-op threading only adds overhead, and on the shared 2-core machines
# it oversubscribes the CPU (measured: the planted-frequency tests take ~4 s with 1 thread, ~30 s with 2
# under load). Override with FMASK_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("FMASK_TEST_THREADS", "1")))


class TinyCNN(nn.Module):
    """A few-thousand-parameter CNN for (N, C, S, S) images in [0, 1].

    ``centre=True`` subtracts each image's mean first, so the network ignores the DC component
    (brightness) and only the image's structure matters.
    """

    def __init__(self, in_ch: int = 1, n_classes: int = 4, width: int = 8, centre: bool = False) -> None:
        super().__init__()
        self.centre = centre
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(2 * width, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.centre:
            x = x - x.mean(dim=(-2, -1), keepdim=True)
        return self.body((x - 0.5) / 0.2 if not self.centre else x / 0.2)


def make_tiny_cnn(in_ch: int = 1, n_classes: int = 4, seed: int = 0, centre: bool = False) -> TinyCNN:
    """A freshly initialised :class:`TinyCNN` (seeded), in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = TinyCNN(in_ch, n_classes, centre=centre)
    return net.eval()


@pytest.fixture(scope="session")
def planted():
    """A TinyCNN trained (a few seconds) on ``planted_frequency_dataset``; returns a dict with
    ``model``, ``train`` / ``test`` (images, labels) and the planted ``support`` (fft2 layout, bool)."""
    from fmask.data.synthetic import fit_in_memory, planted_frequency_dataset

    x, y, support = planted_frequency_dataset(640, size=32, n_classes=4, seed=0)
    xt, yt, support_t = planted_frequency_dataset(256, size=32, n_classes=4, seed=1)
    assert torch.equal(support, support_t)
    model = fit_in_memory(make_tiny_cnn(1, 4, seed=0, centre=True), x, y, epochs=6, seed=0)
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    return {"model": model, "train": (x, y), "test": (xt, yt), "support": support, "test_accuracy": acc}


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def chromium() -> str:
    """Path of headless Chromium for the page checks: skipped (with the reason) on a developer machine
    without it, a failure under CI=true, where .ci/run installs it."""
    from fmask.book import find_chromium

    exe = find_chromium()
    if exe is None:
        if IN_CI:
            pytest.fail("CI is set but no Chromium was found (install the Debian package 'chromium')")
        pytest.skip("headless Chromium not installed (apt-get install chromium); set CI=true to make this fail")
    return exe
