"""fmask.analysis.heatmap, passband and agreement: Fourier basis, Yin et al.'s heat map, pass-band curves, rank agreement and recall@k."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fmask.analysis.agreement import band_mean, rank_agreement, recall_at_k
from fmask.analysis.heatmap import fourier_basis, fourier_heat_map, heatmap_frequencies
from fmask.analysis.passband import pass_band_accuracy, pass_band_mask
from fmask.learners import learn_masks
from fmask.core.mask import filter_images, pixel_offset
from fmask.models.zoo import Normalized
from fmask.core.spectral import band_energy, centered, radial_bands, uncentered
from fmask.data.synthetic import planted_frequency_dataset


def _mirror(i, j, h, w):
    return (-i) % h, (-j) % w


# --------------------------------------------------------------------------------------------- basis
@pytest.mark.parametrize("h,w,i,j", [(8, 8, 1, 2), (8, 6, 2, 1), (7, 5, -1, 3), (6, 6, 3, 3), (6, 6, 0, 0)])
def test_fourier_basis_is_real_unit_norm_and_lives_on_k_and_minus_k(h, w, i, j):
    u = fourier_basis(h, w, i, j, dtype=torch.float64)
    assert u.shape == (h, w) and u.dtype == torch.float64
    assert math.isclose(float(u.norm()), 1.0, rel_tol=1e-12)
    spec = torch.fft.fft2(u)
    k, mk = (i % h, j % w), _mirror(i, j, h, w)
    on = torch.zeros(h, w, dtype=torch.bool)
    on[k] = on[mk] = True
    assert float(spec.abs()[~on].max()) < 1e-9
    assert float(spec[k].real) > 0 and abs(float(spec[k].imag)) < 1e-9
    assert torch.allclose(spec[k], spec[mk])
    assert torch.allclose(u, fourier_basis(h, w, -i, -j, dtype=torch.float64))  # U_k = U_{-k}


def test_fourier_basis_equals_the_irfft_of_a_one_hot_half_spectrum():
    # Yin et al.'s construction (as in github:gatheluck/FourierHeatmap): irfft of a one-hot (H, W//2+1)
    # spectrum, L2-normalised. Independent of our cosine formula.
    h = w = 10
    for i in range(h):
        for j in range(w // 2 + 1):
            one_hot = torch.zeros(h, w // 2 + 1, dtype=torch.complex128)
            one_hot[i, j] = 1
            ref = torch.fft.irfftn(one_hot, s=(h, w), dim=(-2, -1))
            ref = ref / ref.norm()
            assert torch.allclose(fourier_basis(h, w, i, j, dtype=torch.float64), ref, atol=1e-12), (i, j)


def test_fourier_basis_rejects_bad_arguments():
    for args in ((0, 4, 1, 1), (4, 4, 1.5, 1), (4, "4", 1, 1)):
        with pytest.raises(ValueError):
            fourier_basis(*args)
    with pytest.raises(ValueError):
        fourier_basis(4, 4, 1, 1, dtype=torch.int64)


def test_heatmap_frequencies_one_per_conjugate_pair():
    for h, w in ((8, 8), (7, 5), (6, 9)):
        f = heatmap_frequencies(h, w, "all")
        n_self = sum(1 for i in range(h) for j in range(w) if _mirror(i, j, h, w) == (i, j))
        assert f.shape == ((h * w + n_self) // 2, 2)
        covered = {tuple(p) for p in f.tolist()} | {_mirror(*p, h, w) for p in f.tolist()}
        assert covered == {(i, j) for i in range(h) for j in range(w)}
    # stride: signed components multiples of k, grid through DC
    f2 = heatmap_frequencies(8, 8, 2)
    signed = [((i + 4) % 8 - 4, (j + 4) % 8 - 4) for i, j in f2.tolist()]
    assert all(a % 2 == 0 and b % 2 == 0 for a, b in signed) and [0, 0] in f2.tolist()
    assert len({*map(tuple, f2.tolist())} | {_mirror(*p, 8, 8) for p in f2.tolist()}) == 16
    # list: mirrors and duplicates collapse, negative indices wrap
    assert heatmap_frequencies(8, 8, [(1, 2), (-1, -2), (7, 6), (0, 3)]).tolist() == [[0, 3], [1, 2]]
    for bad in ("some", 0, -1, [], [(1,)], [(1.0, 2)], 3.5):
        with pytest.raises(ValueError):
            heatmap_frequencies(8, 8, bad)
    # window: the (2·window+1)² square around DC (Yin et al.'s 63×63 ImageNet region is window=31)
    win = heatmap_frequencies(16, 16, "all", window=2)
    cover = {tuple(p) for p in win.tolist()} | {_mirror(*p, 16, 16) for p in win.tolist()}
    assert cover == {(a % 16, b % 16) for a in range(-2, 3) for b in range(-2, 3)}
    assert heatmap_frequencies(16, 16, "all", window=0).tolist() == [[0, 0]]
    with pytest.raises(ValueError):
        heatmap_frequencies(16, 16, "all", window=-1)
    with pytest.raises(ValueError):  # nothing left in the window
        heatmap_frequencies(16, 16, [(5, 5)], window=2)


# --------------------------------------------------------------------------------------------- heat map
class MatchedFilter(nn.Module):
    """Two classes, logit difference ⟨x − 0.5, U_k⟩ for one basis image U_k (linear, 'identity-like')."""

    def __init__(self, h, w, k, channel=None):
        super().__init__()
        self.register_buffer("u", fourier_basis(h, w, *k))
        self.channel = channel

    def forward(self, x):
        xs = x if self.channel is None else x[:, self.channel:self.channel + 1]
        m = ((xs - 0.5) * self.u).sum(dim=(1, 2, 3))
        return torch.stack([m, -m], dim=1)


def _margins(x, k):
    u = fourier_basis(x.shape[-2], x.shape[-1], *k)
    return ((x - 0.5) * u).sum(dim=(1, 2, 3))


def test_heat_map_of_a_matched_filter_is_exactly_its_frequency_pair():
    h = w = 12
    k = (2, 9)
    x = 0.5 + 0.1 * torch.randn(48, 1, h, w, generator=torch.Generator().manual_seed(0))
    model = MatchedFilter(h, w, k)
    m = _margins(x, k).abs()
    # eps below every margin: no frequency can flip any prediction (other bases are orthogonal to U_k)
    quiet = fourier_heat_map(model, x, eps=0.99 * float(m.min()), clamp=False, progress=False)
    assert quiet.shape == (h, w) and not bool(torch.isnan(quiet).any())
    assert float(quiet.max()) == 0.0
    # eps above every margin: the prediction follows the random sign at ±k only
    loud = fourier_heat_map(model, x, eps=1.01 * float(m.max()), clamp=False, progress=False)
    on = torch.zeros(h, w, dtype=torch.bool)
    on[k] = on[_mirror(*k, h, w)] = True
    assert float(loud[~on].max()) == 0.0
    assert loud[on][0] == loud[on][1]
    assert 0.2 <= float(loud[k]) <= 0.8  # about half of the random signs oppose the label
    # every map is conjugate-symmetric
    flipped = torch.roll(torch.flip(loud, dims=(0, 1)), shifts=(1, 1), dims=(0, 1))
    assert torch.equal(loud, flipped)


def test_heat_map_of_a_blind_model_is_zero_and_labels_count():
    class Blind(nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 1.0, 0.0]]).expand(x.shape[0], 3)

    x = torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    hm = fourier_heat_map(Blind(), x, eps=50.0, progress=False)
    assert torch.equal(hm, torch.zeros(8, 8))
    labels = torch.tensor([1] * 7 + [0] * 3)
    hm_wrong = fourier_heat_map(Blind(), x, labels, eps=50.0, progress=False)
    assert torch.allclose(hm_wrong, torch.full((8, 8), 0.3))


def test_heat_map_is_seeded_and_independent_of_batch_size_and_frequency_choice():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 10 * 10, 4))
    x = torch.rand(9, 2, 10, 10, generator=torch.Generator().manual_seed(2))
    a = fourier_heat_map(net, x, eps=3.0, batch_size=64, progress=False)
    b = fourier_heat_map(net, x, eps=3.0, batch_size=7, progress=False)
    assert torch.equal(a, b)
    assert bool((a > 0).any()), "the perturbation should flip some predictions of a random linear model"
    sub = fourier_heat_map(net, x, eps=3.0, frequencies=[(1, 3), (4, 0)], progress=False)
    ev = ~torch.isnan(sub)
    assert int(ev.sum()) == 4 and torch.equal(sub[ev], a[ev])
    strided = fourier_heat_map(net, x, eps=3.0, frequencies=2, progress=False)
    ev2 = ~torch.isnan(strided)
    assert torch.equal(strided[ev2], a[ev2]) and 0 < int(ev2.sum()) < 100
    windowed = fourier_heat_map(net, x, eps=3.0, window=1, progress=False)
    ev3 = ~torch.isnan(windowed)
    assert int(ev3.sum()) == 9 and torch.equal(windowed[ev3], a[ev3])
    c = fourier_heat_map(net, x, eps=3.0, seed=1, progress=False)
    assert not torch.equal(a, c)  # other random signs


def test_heat_map_clamps_to_unit_range_only_when_asked():
    seen = {}

    class Record(nn.Module):
        def forward(self, x):
            seen["lo"] = min(seen.get("lo", 1.0), float(x.min()))
            seen["hi"] = max(seen.get("hi", 0.0), float(x.max()))
            return torch.zeros(x.shape[0], 2)

    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    fourier_heat_map(Record(), x, eps=10.0, frequencies=[(1, 1)], progress=False)
    assert 0.0 <= seen["lo"] and seen["hi"] <= 1.0
    seen.clear()
    fourier_heat_map(Record(), x, eps=10.0, frequencies=[(1, 1)], clamp=False, progress=False)
    assert seen["lo"] < 0.0 and seen["hi"] > 1.0


def test_heat_map_per_channel_sees_only_the_channel_the_model_reads():
    h = w = 8
    k = (1, 2)
    x = 0.5 + 0.05 * torch.randn(16, 3, h, w, generator=torch.Generator().manual_seed(4))
    x = x.clamp(0, 1)
    model = MatchedFilter(h, w, k, channel=2)
    eps = 1.5 * float(_margins(x[:, 2:3], k).abs().max())
    each = fourier_heat_map(model, x, eps=eps, channels="each", clamp=False, progress=False)
    assert each.shape == (3, h, w)
    assert float(each[:2].max()) == 0.0 and float(each[2, 1, 2]) > 0
    both = fourier_heat_map(model, x, eps=eps, channels="all", clamp=False, progress=False)
    assert both.shape == (h, w) and float(both[1, 2]) > 0
    # one shared sign per image: channel-2 errors equal the 'each' map's at ±k only if signs coincide; here we
    # only check the option is accepted and deterministic
    s1 = fourier_heat_map(model, x, eps=eps, sign="per_image", clamp=False, progress=False)
    assert torch.equal(s1, fourier_heat_map(model, x, eps=eps, sign="per_image", clamp=False, progress=False))


def test_heat_map_rejects_bad_input():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    x = torch.rand(3, 1, 4, 4)
    bad_calls = [
        dict(images=x[0]), dict(images=x * 3), dict(images=x.double().to(torch.int64)),
        dict(images=x, labels=torch.zeros(2, dtype=torch.long)), dict(images=x, labels=torch.zeros(3)),
        dict(images=x, eps=-1.0), dict(images=x, eps=float("nan")), dict(images=x, channels="rgb"),
        dict(images=x, sign="always"), dict(images=x, batch_size=0), dict(images=x, frequencies="low"),
        dict(images=x, device="tpu"),
    ]
    for kw in bad_calls:
        with pytest.raises(ValueError):
            fourier_heat_map(net, progress=False, **kw)
    with pytest.raises(ValueError):
        fourier_heat_map(lambda z: z, x, progress=False)
    with pytest.raises(ValueError):  # model output is not (B, K) logits
        fourier_heat_map(nn.Identity(), x, progress=False)


# --------------------------------------------------------------------------------------------- pass band
def test_pass_band_masks_partition_the_plane_by_radius():
    for h, w in ((16, 16), (9, 12)):
        dist = torch.sqrt((torch.arange(h) - h // 2).double().view(-1, 1) ** 2
                          + (torch.arange(w) - w // 2).double().view(1, -1) ** 2)
        for r in (0.0, 1.0, 2.5, 4.0, 100.0):
            lo, hi = pass_band_mask(h, w, r, "low"), pass_band_mask(h, w, r, "high")
            assert torch.equal(lo + hi, torch.ones(h, w))
            assert torch.equal(centered(lo).bool(), dist < r)
        # radial_bands' convention: band 0 (centre) is inside any positive low-pass radius
        assert bool(centered(pass_band_mask(h, w, 0.5))[radial_bands(h, w, 64) == 0].all())
    # even size: the mask is conjugate-symmetric, so filtering keeps images real
    m = pass_band_mask(16, 16, 5.0)
    assert torch.equal(m, torch.roll(torch.flip(m, dims=(0, 1)), shifts=(1, 1), dims=(0, 1)))
    for bad in ((16, 16, -1.0), (16, 16, float("inf")), (0, 16, 1.0)):
        with pytest.raises(ValueError):
            pass_band_mask(*bad)
    with pytest.raises(ValueError):
        pass_band_mask(8, 8, 1.0, "band")


class SpectralDetector(nn.Module):
    """Logit c = |X(k_c)|, the spectrum magnitude at class c's planted frequency: uses only those few (low)
    frequencies, so it is a low-pass-only model on planted data whose frequencies have radius <= size/4.
    Magnitudes below 1e-3 (float32 rounding of a removed component; a planted one is > 1) count as 0."""

    def __init__(self, freqs):
        super().__init__()
        self.freqs = list(freqs)

    def forward(self, x):
        spec = torch.fft.fft2(x[:, 0].double()).abs()
        mag = torch.stack([spec[:, i, j] for i, j in self.freqs], dim=1)
        return torch.where(mag > 1e-3, mag, torch.zeros_like(mag)).float()


def test_pass_band_curves_are_monotone_and_match_the_planted_radii():
    size = 16
    from fmask.data.synthetic import planted_frequencies
    freqs = planted_frequencies(size, 3, seed=0)
    x, y, _ = planted_frequency_dataset(60, size=size, n_classes=3, seed=3)
    model = SpectralDetector(freqs)
    radii = torch.arange(0.0, 12.0, 0.5)
    low = pass_band_accuracy(model, x, y, radii, "low", progress=False)
    high = pass_band_accuracy(model, x, y, radii, "high", progress=False)
    assert low.shape == high.shape == (len(radii),) and low.dtype == torch.float64
    assert bool((low[1:] >= low[:-1]).all()) and bool((high[1:] <= high[:-1]).all())
    assert float(low[-1]) == 1.0 and float(high[0]) == 1.0
    # the exact curves: an image is classified right iff its planted frequency is kept, or all logits vanish
    # (nothing kept) and argmax's first index is its class
    rad = torch.tensor([math.hypot((i + size // 2) % size - size // 2, (j + size // 2) % size - size // 2)
                        for i, j in freqs], dtype=torch.float64)[y]
    exp_low = torch.stack([((rad < r) | (y == 0)).double().mean() for r in radii.double()])
    exp_high = torch.stack([((rad >= r) | (y == 0)).double().mean() for r in radii.double()])
    assert torch.allclose(low, exp_low) and torch.allclose(high, exp_high)


def test_pass_band_filter_acts_where_the_masks_act():
    seen = []

    class Record(nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros(x.shape[0], 2)

    x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    model = Normalized(Record(), (0.4, 0.5, 0.6), (0.2, 0.2, 0.2))
    for space in ("auto", "normalised", "pixel"):
        seen.clear()
        pass_band_accuracy(model, x, torch.zeros(5, dtype=torch.long), [3.0], "high", space=space,
                           progress=False)
        want = filter_images(x, pass_band_mask(8, 8, 3.0, "high"), pixel_offset(model, space))
        got_normalised = seen[-1]
        assert torch.allclose(got_normalised, (want - model.mean) / model.std, atol=1e-5), space
    with pytest.raises(ValueError):  # no declared normalisation
        pass_band_accuracy(Record(), x, None, [1.0], space="normalised", progress=False)
    for bad in (dict(radii=[]), dict(radii=[-1.0]), dict(radii=[float("nan")]), dict(radii=[1.0], kind="band"),
                dict(radii=[1.0], labels=torch.zeros(4, dtype=torch.long))):
        kw = dict(labels=None, kind="low") | bad
        with pytest.raises(ValueError):
            pass_band_accuracy(model, x, kw.pop("labels"), kw.pop("radii"), kw.pop("kind"), progress=False)


# --------------------------------------------------------------------------------------------- scores
def test_rank_agreement_handles_ties_nans_and_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(6)
    for _ in range(5):
        a = torch.randint(0, 5, (20,), generator=g).double()  # many ties
        b = a + torch.randn(20, generator=g, dtype=torch.float64)
        ref = scipy_stats.spearmanr(a.numpy(), b.numpy()).statistic
        assert math.isclose(rank_agreement(a, b, method="own"), ref, abs_tol=1e-12)
        assert math.isclose(rank_agreement(a, b, method="scipy"), ref, abs_tol=1e-12)
    assert rank_agreement([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert rank_agreement([1, 2, 3], [3, 2, 1], method="own") == pytest.approx(-1.0)
    assert rank_agreement([1, 2, float("nan"), 4], [1, 2, 0, 3]) == pytest.approx(1.0)  # NaN pair dropped
    assert math.isnan(rank_agreement([1, 1, 1], [1, 2, 3]))
    assert math.isnan(rank_agreement([1, float("nan")], [1, 2]))
    for a, b, kw in (([1, 2], [1, 2, 3], {}), ([[1, 2]], [[1, 2]], {}), ([1, 2], [1, 2], {"method": "x"}),
                     ([1, float("inf")], [1, 2], {})):
        with pytest.raises(ValueError):
            rank_agreement(a, b, **kw)


def test_recall_at_k_counts_hits_and_splits_ties_fairly():
    score = torch.tensor([[5.0, 4.0, 3.0], [2.0, 1.0, 0.0]])
    sup = torch.tensor([[True, False, True], [False, False, False]])
    assert recall_at_k(score, sup, 1) == 0.5
    assert recall_at_k(score, sup, 2) == 0.5
    assert recall_at_k(score, sup, 3) == 1.0
    assert recall_at_k(score, sup, 100) == 1.0
    # all tied: expected recall of a random pick of k entries
    ones = torch.ones(4, 4)
    sup4 = torch.zeros(4, 4, dtype=torch.bool)
    sup4[0, :2] = True
    assert recall_at_k(ones, sup4, 4) == pytest.approx(4 / 16)
    # NaN never chosen; exclude removes entries from the ranking and from the support
    nan_score = score.clone()
    nan_score[0, 0] = float("nan")
    assert recall_at_k(nan_score, sup, 2) == 0.5  # top-2 of the rest: (0, 1), (0, 2); (0, 0) is missed
    assert recall_at_k(nan_score, sup, 100) == 0.5
    excl = torch.zeros_like(sup)
    excl[0, 1] = True
    assert recall_at_k(score, sup, 2, exclude=excl) == 1.0
    for args in ((score, sup.float(), 1), (score, sup[0], 1), (score, sup, 0), (score, torch.zeros_like(sup), 1),
                 (score[0], sup[0], 1)):
        with pytest.raises(ValueError):
            recall_at_k(*args)


def test_band_mean_ignores_nans_and_averages_per_radial_band():
    h = w = 16
    v = uncentered(radial_bands(h, w, 8).double())  # fft2-layout map whose value is its own band index
    assert torch.equal(band_mean(v, "radial", 8), torch.arange(8, dtype=torch.float64))
    v2 = v.clone()
    v2[v2 == 0] = float("nan")  # every entry of band 0 → a NaN band
    bm = band_mean(torch.stack([v, v2]), "radial", 8)
    assert bm.shape == (2, 8) and math.isnan(float(bm[1, 0])) and torch.equal(bm[1, 1:], bm[0, 1:])
    with pytest.raises(ValueError):
        band_mean(v, "angular")
    with pytest.raises(ValueError):
        band_mean(v[0])


# --------------------------------------------------------------------------------------------- planted
def test_mask_and_heat_map_on_the_planted_model(planted):
    """Which tool finds the planted frequencies? Measured (32 test images, eps = 4, Yin et al.'s CIFAR value):
    the dataset mask's top-k is exactly the support (recall@k = 1.0 for k = |support| = 8), while the heat map
    lights up whole neighbourhoods of each planted frequency (the CNN's filters are not frequency-sharp):
    recall@k ≈ 0.05–0.10, recall@8k ≈ 0.83–1.0 (seeds 0 and 1, 32 and 64 images). The bounds below hold with
    a wide margin."""
    model, (xt, yt), support = planted["model"], planted["test"], planted["support"]
    assert planted["test_accuracy"] >= 0.95
    k = int(support.sum())
    res = learn_masks(model, xt, yt, per_image=False, lr=0.05, steps=12, batch_size=32, patience=3, seed=0,
                      progress=False)
    mask_recall = recall_at_k(res.masks[0, 0], support, k)
    hm = fourier_heat_map(model, xt[:32], yt[:32], eps=4.0, progress=False)
    assert not bool(torch.isnan(hm).any()) and float(hm.min()) >= 0 and float(hm.max()) <= 1
    heat_recall = recall_at_k(hm, support, k)
    heat_recall_wide = recall_at_k(hm, support, 8 * k)
    assert mask_recall >= 0.9
    assert heat_recall <= 0.5 < mask_recall
    assert heat_recall_wide >= 0.6
    # the heat map is high on the planted frequencies: far above its average
    assert float(hm[support].mean()) >= 3 * float(hm.mean())
    # both tools concentrate on the same radial bands: their 8-band profiles agree in rank (measured 0.78;
    # 0.95 with 4 bands, 0.47 with 16)
    mask_bands = band_energy(res.masks, "radial", 8)[0]
    heat_bands = band_mean(hm, "radial", 8)
    assert rank_agreement(mask_bands, heat_bands) >= 0.5
