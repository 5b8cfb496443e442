"""Colour ground truth: the class lives in ONE channel's planted frequencies; per-channel masks must keep the
support in that channel only, and the per-channel heat map must see only that channel."""
from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_cnn
from fmask.analysis.agreement import recall_at_k
from fmask.analysis.heatmap import fourier_heat_map
from fmask.learners import learn_masks
from fmask.core.mask import filter_images
from fmask.data.synthetic import fit_in_memory, planted_frequency_dataset, planted_frequency_rgb_dataset

CLASS_CHANNEL = 1


def _accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def planted_rgb():
    """A 3-channel TinyCNN (mean-centred, blind to DC) trained ~2 s on RGB planted data (class in channel 1,
    the same frequencies planted at random in channels 0 and 2)."""
    x, y, support = planted_frequency_rgb_dataset(640, size=32, n_classes=4, seed=0, class_channel=CLASS_CHANNEL)
    xt, yt, support_t = planted_frequency_rgb_dataset(256, size=32, n_classes=4, seed=1,
                                                      class_channel=CLASS_CHANNEL)
    assert torch.equal(support, support_t)
    model = fit_in_memory(make_tiny_cnn(3, 4, seed=0, centre=True), x, y, epochs=4, seed=0)
    return {"model": model, "test": (xt, yt), "support": support, "test_accuracy": _accuracy(model, xt, yt)}


def test_rgb_dataset_carries_the_class_in_one_channel_only():
    x, y, support = planted_frequency_rgb_dataset(96, size=16, n_classes=3, seed=5, class_channel=2)
    assert x.shape == (96, 3, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert support.shape == (3, 16, 16) and support.dtype == torch.bool
    assert int(support[2].sum()) == 6 and not bool(support[:2].any())
    # the class channel is exactly the grayscale ground truth (same labels, same pixels)
    xg, yg, sg = planted_frequency_dataset(96, size=16, n_classes=3, seed=5)
    assert torch.equal(x[:, 2:3], xg) and torch.equal(y, yg) and torch.equal(support[2], sg)
    # each channel's strongest non-DC frequency is one of the planted ones; only the class channel's tells y
    freqs = [tuple(f) for f in sg.nonzero().tolist()]
    for c in range(3):
        spec = torch.fft.fft2(x[:, c].double()).abs()
        spec[:, 0, 0] = 0
        peak = spec.flatten(1).argmax(1)
        assert all((int(p) // 16, int(p) % 16) in freqs for p in peak)
        # the planted class of a channel: which planted pair holds its peak
        cls = torch.tensor([min(freqs.index((int(p) // 16, int(p) % 16)), freqs.index(
            ((-(int(p) // 16)) % 16, (-(int(p) % 16)) % 16))) for p in peak])
        agree = (cls.unsqueeze(1) == cls.unsqueeze(0)) == (y.unsqueeze(1) == y.unsqueeze(0))
        if c == 2:
            assert bool(agree.all())  # the class channel's planted frequency is a function of the label
        else:
            assert float(agree.float().mean()) < 0.75  # distractors: independent of the label
    # noise distractors: no planted structure outside the class channel, still in [0, 1]
    xn, yn, sn = planted_frequency_rgb_dataset(32, size=16, n_classes=3, seed=5, class_channel=0,
                                               distractors="noise")
    assert torch.equal(xn[:, 0:1], planted_frequency_dataset(32, size=16, n_classes=3, seed=5)[0])
    assert float(xn.min()) >= 0 and float(xn.max()) <= 1 and not bool(sn[1:].any())
    # seeded
    x2, y2, s2 = planted_frequency_rgb_dataset(96, size=16, n_classes=3, seed=5, class_channel=2)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(support, s2)
    assert not torch.equal(planted_frequency_rgb_dataset(96, size=16, n_classes=3, seed=6, class_channel=2)[0], x)


def test_rgb_dataset_rejects_bad_arguments():
    for kw in (dict(channels=1), dict(channels=3, class_channel=3), dict(class_channel=-1),
               dict(distractors="zeros"), dict(channels=2.0)):
        with pytest.raises(ValueError):
            planted_frequency_rgb_dataset(8, size=16, n_classes=2, **kw)
    with pytest.raises(ValueError):  # errors of the grayscale generator pass through
        planted_frequency_rgb_dataset(8, size=16, n_classes=1)


def test_per_channel_dataset_mask_keeps_the_support_in_the_class_channel_only(planted_rgb):
    model, (xt, yt), support = planted_rgb["model"], planted_rgb["test"], planted_rgb["support"]
    assert planted_rgb["test_accuracy"] >= 0.95, "the tiny CNN failed to learn the RGB planted task"
    res = learn_masks(model, xt, yt, per_image=False, lr=0.05, steps=12, batch_size=32, patience=3, seed=0,
                      progress=False)
    masks = res.masks[0]
    assert masks.shape == (3, 32, 32)
    k = int(support.sum())
    sup = support[CLASS_CHANNEL]
    # measured: recall 1.0 in the class channel, the other channels' masks all ~0 (recall = chance k/1024)
    assert recall_at_k(masks[CLASS_CHANNEL], sup, k) >= 0.9
    for c in range(3):
        if c != CLASS_CHANNEL:
            assert recall_at_k(masks[c], sup, k) <= 0.25
            assert float(masks[c][sup].mean()) < 0.1, f"channel {c}'s mask keeps the planted frequencies"
    assert float(masks[CLASS_CHANNEL][sup].mean()) > 5 * float(masks[CLASS_CHANNEL][~sup].mean())
    # the masked images keep the accuracy
    assert abs(_accuracy(model, filter_images(xt, res.masks), yt) - _accuracy(model, xt, yt)) <= 0.01
    # the whole-support recall over all three channels (support given per channel) agrees
    assert recall_at_k(masks, support, k) >= 0.9


def test_per_image_rgb_masks_find_each_images_frequency_in_the_class_channel(planted_rgb):
    model, (xt, yt), support = planted_rgb["model"], planted_rgb["test"], planted_rgb["support"]
    idx = torch.stack([torch.nonzero(yt == c)[0, 0] for c in range(4)])
    x = xt[idx]
    res = learn_masks(model, x, per_image=True, lr=0.05, steps=60, patience=300, batch_size=4, progress=False)
    assert res.masks.shape == (4, 3, 32, 32)
    assert torch.equal(res.history["prediction"], res.history["initial_prediction"])
    sup = support[CLASS_CHANNEL]
    for i in range(4):
        spec = torch.fft.fft2(x[i, CLASS_CHANNEL].double()).abs()
        own = sup & (spec >= spec[sup].max() * 0.5)
        assert int(own.sum()) == 2
        top = torch.topk(res.masks[i, CLASS_CHANNEL].flatten(), 2).indices
        assert own.flatten()[top].all(), f"image {i}: top-2 of its class-channel mask miss its frequency"
        # the distractor channels carry planted frequencies too, but their masks drop them
        for c in range(3):
            if c != CLASS_CHANNEL:
                spec_c = torch.fft.fft2(x[i, c].double()).abs()
                own_c = sup & (spec_c >= spec_c[sup].max() * 0.5)
                assert float(res.masks[i, c][own_c].max()) < 0.5 * float(res.masks[i, CLASS_CHANNEL][own].min())


def test_per_channel_heat_map_sees_only_the_class_channel(planted_rgb):
    """Measured (48 images, eps 4, the planted frequencies): the distractor channels' heat maps are exactly 0, the class
    channel's is 0.31–0.67 there."""
    model, (xt, yt), support = planted_rgb["model"], planted_rgb["test"], planted_rgb["support"]
    sup = support[CLASS_CHANNEL]
    freqs = [tuple(f) for f in sup.nonzero().tolist()]
    hm = fourier_heat_map(model, xt[:48], yt[:48], eps=4.0, channels="each", frequencies=freqs, progress=False)
    assert hm.shape == (3, 32, 32)
    assert torch.equal(~torch.isnan(hm[CLASS_CHANNEL]), sup)
    assert float(hm[CLASS_CHANNEL][sup].mean()) >= 0.2
    for c in range(3):
        if c != CLASS_CHANNEL:
            assert float(hm[c][sup].max()) <= 0.05
