"""Ground truth for the method: a CNN trained on images whose class lives only in a few planted
frequencies; the learned masks must find exactly those frequencies while keeping the accuracy.

The test network subtracts each image's mean (see ``conftest.TinyCNN(centre=True)``), so it is blind to
the DC component; otherwise the mask would also (rightly) keep DC, the image's brightness, which the
network's operating point depends on but which carries no class information.
"""
from __future__ import annotations

import torch

from fmask.learners import learn_masks
from fmask.core.mask import filter_images
from fmask.data.synthetic import planted_frequency_dataset


def _accuracy(model, x, y):
    with torch.no_grad():
        return 100.0 * (model(x).argmax(1) == y).float().mean().item()


def test_dataset_is_well_formed_and_class_lives_only_on_the_support():
    x, y, support = planted_frequency_dataset(64, size=16, n_classes=3, seed=5)
    assert x.shape == (64, 1, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert y.shape == (64,) and torch.equal(torch.bincount(y, minlength=3).sort().values,
                                            torch.tensor([21, 21, 22]))
    assert support.dtype == torch.bool and int(support.sum()) == 6
    # the support is closed under mirroring k -> -k
    mirrored = torch.roll(torch.flip(support, dims=(0, 1)), shifts=(1, 1), dims=(0, 1))
    assert torch.equal(support, mirrored)
    spec = torch.fft.fft2(x[:, 0].double()).abs()
    spec[:, 0, 0] = 0  # DC
    # outside the support there is only (weaker) noise; each image's strongest frequency is planted
    assert support[spec.flatten(1).argmax(1) // 16, spec.flatten(1).argmax(1) % 16].all()
    # noise is removed at every planted frequency: an image's spectrum on the support is zero except at
    # its own class's pair (k, -k)
    own = spec >= 0.5 * spec[:, support].amax(dim=1).view(-1, 1, 1)
    on_support = spec[:, support]
    assert ((own[:, support]).sum(1) == 2).all()
    assert on_support[~own[:, support]].max() < 1e-6 * on_support.max()
    # without noise only the planted pair (and DC) remain in the spectrum
    xc, yc, sc = planted_frequency_dataset(12, size=16, n_classes=3, seed=1, noise=0.0)
    sp = torch.fft.fft2(xc[:, 0].double()).abs()
    sp[:, 0, 0] = 0
    assert sp[:, ~sc].max() < 1e-4 * sp.max()
    # same seed → same data
    x2, y2, s2 = planted_frequency_dataset(64, size=16, n_classes=3, seed=5)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(support, s2)


def test_dataset_mask_recovers_planted_support(planted):
    model, (xt, yt), support = planted["model"], planted["test"], planted["support"]
    assert planted["test_accuracy"] >= 0.95, "the tiny CNN failed to learn the planted task"
    res = learn_masks(model, xt, yt, per_image=False, lr=0.05, steps=12, batch_size=32, patience=3,
                      seed=0, progress=False)
    mask = res.masks[0, 0]
    k = int(support.sum())
    top = torch.topk(mask.flatten(), k).indices
    recovered = support.flatten()[top].float().mean().item()
    assert recovered >= 0.9, f"top-{k} of the mask recovers only {recovered:.0%} of the planted support"
    assert float(mask[~support].mean()) < 0.05, "the mask did not become sparse off the support"
    acc0 = _accuracy(model, xt, yt)
    acc_m = _accuracy(model, filter_images(xt, res.masks), yt)
    assert abs(acc0 - acc_m) <= 1.0, (acc0, acc_m)
    assert float(res.history["accuracy"][-1]) >= 0.99 * float(res.history["initial_accuracy"][0])


def test_per_image_masks_recover_each_images_planted_frequency(planted):
    model, (xt, yt), support = planted["model"], planted["test"], planted["support"]
    idx = torch.stack([torch.nonzero(yt == c)[0, 0] for c in range(4)])  # one image per class
    x = xt[idx]
    res = learn_masks(model, x, per_image=True, lr=0.05, steps=60, patience=300, batch_size=4,
                      progress=False)
    assert torch.equal(res.history["prediction"], res.history["initial_prediction"])
    for i in range(4):
        # the image's own planted pair (k, -k) is the support entry with the largest spectrum magnitude
        spec = torch.fft.fft2(x[i, 0].double()).abs()
        own = support & (spec >= spec[support].max() * 0.5)
        assert int(own.sum()) == 2
        top = torch.topk(res.masks[i, 0].flatten(), 2).indices
        assert own.flatten()[top].all(), f"image {i}: top-2 of its mask miss its planted frequency"
