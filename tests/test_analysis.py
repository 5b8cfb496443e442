"""fmask.analysis.maps, bands, complements, accuracy, probe and diagnostics on synthetic inputs with known answers (tiny tensors, no data needed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fmask.analysis import accuracy, bands, complements, maps, probe
from fmask.core.spectral import radial_bands, uncentered


class MeanThreshold(nn.Module):
    """Class 1 iff the image mean exceeds 0.5 (a 'network' that only looks at the DC coefficient)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1)


def _lowpass(h: int, w: int, radius_band: int, n: int = 8) -> torch.Tensor:
    """A (1, 1, h, w) fft2-layout mask that keeps the radial bands < radius_band (of n)."""
    centred = (radial_bands(h, w, n) < radius_band).float()
    return uncentered(centred).view(1, 1, h, w)


# ------------------------------------------------------------------------------ differences
def test_difference_of_identical_masks_is_exactly_zero():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(1, 1, 16, 16, generator=g)
    d = maps.mask_differences({"vanilla": m, "adversarial": m.clone()}, reference="vanilla")
    assert list(d) == ["adversarial"]
    assert d["adversarial"].shape == (16, 16)
    assert torch.count_nonzero(d["adversarial"]) == 0


def test_difference_is_centred_and_signed():
    ones = torch.ones(1, 1, 8, 8)
    m = ones.clone()
    m[0, 0, 0, 0] = 0.25  # DC in fft2 layout
    d = maps.mask_differences({"vanilla": ones, "scale": m})["scale"]
    assert d[4, 4].item() == pytest.approx(-0.75)  # DC is at the centre after centring
    assert torch.count_nonzero(d) == 1


def test_difference_rejects_unknown_reference_and_batches():
    m = torch.ones(1, 1, 4, 4)
    with pytest.raises(ValueError, match="reference"):
        maps.mask_differences({"a": m}, reference="vanilla")
    with pytest.raises(ValueError, match="single mask"):
        maps.mask_differences({"vanilla": torch.ones(2, 1, 4, 4), "b": torch.ones(2, 1, 4, 4)})


def test_minmax_normalisation_moves_zero_off_centre():
    # asymmetric extremes: +1 and -0.25; a zero difference is mapped to 0.25/1.25 - 0.5 = -0.3
    d = {"b": torch.tensor([[0.0, 1.0], [-0.25, 0.0]])}
    out = maps.minmax_normalised_differences(d)["b"]
    assert out[0, 0].item() == pytest.approx(0.2 - 0.5)
    assert out[0, 0].item() != 0.0


# ------------------------------------------------------------------------------ band energies
def test_band_energies_are_fractions_summing_to_one():
    g = torch.Generator().manual_seed(1)
    m = torch.rand(3, 1, 16, 16, generator=g)
    e = bands.band_energies(m, n_bands=8, kind="angular")
    assert e.shape == (3, 8)
    assert torch.all(e >= 0)
    assert torch.allclose(e.sum(dim=1), torch.ones(3), atol=1e-5)


def test_dc_only_mask_has_all_energy_in_band_zero():
    m = torch.zeros(1, 1, 16, 16)
    m[0, 0, 0, 0] = 1.0
    e = bands.band_energies(m, n_bands=8, kind="radial")[0]
    assert e[0].item() == pytest.approx(1.0)
    assert e[1:].sum().item() == pytest.approx(0.0)


def test_band_energy_differences_and_dominance():
    low = _lowpass(16, 16, 2)
    high = 1.0 - low
    diffs = bands.band_energy_differences({"vanilla": low, "adversarial": high, "same": low.clone()}, n_bands=8)
    assert set(diffs) == {"adversarial", "same"}
    assert np.allclose(diffs["same"], 0.0)
    assert diffs["adversarial"][0] < 0 and diffs["adversarial"][-1] > 0
    dom = bands.band_dominance(high.repeat(4, 1, 1, 1), low.repeat(4, 1, 1, 1), n_bands=8)
    assert dom.shape == (8,)
    assert dom[0] == 0.0 and dom[-1] == 1.0
    with pytest.raises(ValueError, match="same shape"):
        bands.band_dominance(high, low.repeat(2, 1, 1, 1), n_bands=8)


# ------------------------------------------------------------------------------ accuracies
def _constant_images(values, h=8, w=8):
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, h, w).contiguous()


def test_accuracy_and_masked_accuracy_known_answers():
    model = MeanThreshold()
    x = _constant_images([0.2, 0.4, 0.7, 0.9])
    y = torch.tensor([0, 0, 1, 1])
    assert accuracy.accuracy(model, x, y, batch_size=3) == 1.0
    keep_all = torch.ones(1, 1, 8, 8)
    assert accuracy.masked_accuracy(model, x, y, keep_all, batch_size=3) == 1.0
    halve_dc = keep_all.clone()
    halve_dc[0, 0, 0, 0] = 0.5  # images become 0.1, 0.2, 0.35, 0.45 -> all class 0
    assert accuracy.masked_accuracy(model, x, y, halve_dc) == 0.5
    row = accuracy.table1_row(model, x, y, halve_dc)
    assert row == {"standard": 1.0, "masked": 0.5}
    with pytest.raises(ValueError, match="labels"):
        accuracy.accuracy(model, x, y[:3])


def test_table2_continuous_and_binarised_differ_and_inputs_unchanged():
    model = MeanThreshold()
    x = _constant_images([0.9, 0.8, 0.1])
    y = torch.tensor([1, 1, 0])
    masks = torch.ones(3, 1, 8, 8)
    masks[:, 0, 0, 0] = 0.6  # continuous DC gain 0.6: X_A = 0.8 -> 0.48 (wrong); binarised -> 0.8 (right)
    masks[:, 0, 1:, :] = 0.0  # switch many frequencies off (complement keeps them)
    x_adv = _constant_images([0.8, 0.8, 0.3])
    masks_before, x_before, xa_before = masks.clone(), x.clone(), x_adv.clone()
    t2 = accuracy.table2_accuracies(model, x, y, masks, x_adv)
    assert set(t2) == {"masked", "complement", "adversarial", "masked_adversarial", "masked_adversarial_binary"}
    assert t2["adversarial"] == 1.0
    assert t2["masked_adversarial"] == pytest.approx(1 / 3)  # 0.48, 0.48 -> class 0; 0.18 -> class 0 (right)
    assert t2["masked_adversarial_binary"] == 1.0
    assert t2["masked_adversarial"] != t2["masked_adversarial_binary"]
    # the complement has DC switched off -> every image has mean 0 -> class 0
    assert t2["complement"] == pytest.approx(1 / 3)
    assert torch.equal(masks, masks_before) and torch.equal(x, x_before) and torch.equal(x_adv, xa_before)


def test_binarize_and_complement_are_new_tensors():
    m = torch.tensor([0.0, 1e-9, 0.3, 1.0]).view(1, 1, 2, 2)
    before = m.clone()
    b = complements.binarize(m)
    c = complements.complement_mask(m)
    assert torch.equal(m, before)
    assert b.flatten().tolist() == pytest.approx([0.0, 1e-9, 1.0, 1.0])
    assert c.flatten().tolist() == [1.0, 1.0, 0.0, 0.0]


# ------------------------------------------------------------------------------ class specificity
def _separable_masks(n_per_class: int = 30, k: int = 4, size: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    masks, labels = [], []
    for c in range(k):
        base = _lowpass(size, size, c + 1, n=6)
        noise = 0.15 * torch.rand(n_per_class, 1, size, size, generator=g)
        masks.append((base + noise).clamp(0, 1))
        labels += [c] * n_per_class
    perm = torch.randperm(n_per_class * k, generator=g)
    return torch.cat(masks)[perm], torch.tensor(labels)[perm]


def test_fixed_permutation_is_fixed_and_a_permutation():
    y = np.repeat(np.arange(5), 20)
    p1 = probe.fixed_permutation(y, seed=3)
    p2 = probe.fixed_permutation(y.copy(), seed=3)
    assert np.array_equal(p1, p2)
    assert np.array_equal(np.sort(p1), np.sort(y))
    assert not np.array_equal(p1, y)
    assert not np.array_equal(p1, probe.fixed_permutation(y, seed=4))


def test_probe_beats_chance_on_true_labels_and_not_on_permuted():
    masks, labels = _separable_masks()
    res = probe.class_specificity(masks, labels, seed=0, train_fraction=0.85)
    true, rand = res["true_labels"], res["random_labels"]
    assert true.test_idx.size == 120 - int(120 * 0.85)
    assert true.test_accuracy >= 0.9
    assert rand.test_accuracy <= 0.55  # 4 classes: chance is ~0.25
    assert true.outputs.shape == (120, 4)
    assert set(true.as_dict()) == {"train", "test", "chance"}
    # deterministic: the same call gives the same numbers and the same permuted labels
    again = probe.class_specificity(masks, labels, seed=0)
    assert again["random_labels"].test_accuracy == rand.test_accuracy
    assert np.array_equal(again["random_labels"].labels, rand.labels)
    assert np.allclose(again["true_labels"].outputs, true.outputs)
    # another split keeps the same permuted labels
    other = probe.class_specificity(masks, labels, seed=0, split_seed=1)
    assert np.array_equal(other["random_labels"].labels, rand.labels)
    assert not np.array_equal(other["true_labels"].test_idx, true.test_idx)


def test_probe_rejects_bad_input():
    with pytest.raises(ValueError, match="train_fraction"):
        probe.linear_probe(np.zeros((10, 3)), np.arange(10) % 2, seed=0, train_fraction=1.0)
    with pytest.raises(ValueError, match="labels"):
        probe.linear_probe(np.zeros((10, 3)), np.arange(9) % 2, seed=0)


def test_umap_is_seeded_and_shaped():
    masks, labels = _separable_masks(n_per_class=10, k=3, size=8)
    X = probe.mask_features(masks)
    assert X.shape == (30, 64)
    e1 = probe.umap_embedding(X, seed=7, n_neighbors=5)
    e2 = probe.umap_embedding(X, seed=7, n_neighbors=5)
    assert e1.shape == (30, 2)
    assert np.allclose(e1, e2)
    with pytest.raises(ValueError, match="at least 4"):
        probe.umap_embedding(X[:3], seed=0)


# ------------------------------------------------------------------------- filter convention, labels
class _ShiftedMeanThreshold(nn.Module):
    """On normalised input x - 0.4: class 1 iff the mean exceeds 0.1 (i.e. the pixel mean exceeds 0.5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.1 - m, m - 0.1], dim=1)


def test_masked_accuracy_filters_in_the_learners_space():
    from fmask.models.zoo import Normalized

    model = Normalized(_ShiftedMeanThreshold(), mean=(0.4,), std=(1.0,))
    x = _constant_images([0.2, 0.4, 0.7, 0.9])
    y = torch.tensor([0, 0, 1, 1])
    halve_dc = torch.ones(1, 1, 8, 8)
    halve_dc[0, 0, 0, 0] = 0.5
    # pixel space: x -> x / 2 = 0.1, 0.2, 0.35, 0.45, all class 0
    assert accuracy.masked_accuracy(model, x, y, halve_dc, space="pixel") == 0.5
    # normalised space (the original's, the default for a Normalized model): (x - 0.4) / 2 + 0.4 = 0.3, 0.4,
    # 0.55, 0.65 -> classes 0, 0, 1, 1
    assert accuracy.masked_accuracy(model, x, y, halve_dc) == 1.0
    assert accuracy.masked_accuracy(model, x, y, halve_dc, space="normalised") == 1.0
    assert accuracy.table1_row(model, x, y, halve_dc, space="pixel")["masked"] == 0.5
    t2 = accuracy.table2_accuracies(model, x, y, halve_dc.expand(4, -1, -1, -1), space="pixel")
    assert t2["masked"] == 0.5 and accuracy.table2_accuracies(model, x, y, halve_dc.expand(4, -1, -1, -1))["masked"] == 1.0
    with pytest.raises(ValueError, match="space"):
        accuracy.masked_accuracy(model, x, y, halve_dc, space="fourier")
    with pytest.raises(ValueError, match="normalisation"):
        accuracy.masked_accuracy(MeanThreshold(), x, y, halve_dc, space="normalised")


def test_out_of_range_labels_are_errors():
    model = MeanThreshold()  # 2 classes
    x = _constant_images([0.2, 0.9])
    keep_all = torch.ones(1, 1, 8, 8)
    with pytest.raises(ValueError, match="label 7 is out of range.*2 classes"):
        accuracy.accuracy(model, x, torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="out of range"):
        accuracy.masked_accuracy(model, x, torch.tensor([7, 1]), keep_all)
    with pytest.raises(ValueError, match="out of range"):
        accuracy.table2_accuracies(model, x, torch.tensor([0, 2]), keep_all.expand(2, -1, -1, -1))
    with pytest.raises(ValueError, match=">= 0"):
        accuracy.accuracy(model, x, torch.tensor([-1, 1]))
    with pytest.raises(ValueError, match="integer"):
        accuracy.accuracy(model, x, torch.tensor([0.0, 1.0]))


# ------------------------------------------------------------------ counts for the claims ledger
def _four_constant_images(h: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Constant images of value 0.2, 0.8, 0.8, 0.2 with labels 0, 1, 0, 1: MeanThreshold gets the first two."""
    vals = torch.tensor([0.2, 0.8, 0.8, 0.2])
    return vals.view(4, 1, 1, 1).expand(4, 1, h, h).clone(), torch.tensor([0, 1, 0, 1])


def test_table1_counts_hand_computed():
    x, y = _four_constant_images()
    zero_mask = torch.zeros(1, 1, 8, 8)  # filters every image to 0 -> class 0 for all
    c = accuracy.table1_counts(MeanThreshold(), x, y, zero_mask)
    # standard: right on images 0, 1; masked (all predicted 0): right on images 0, 2
    assert c["n"] == 4
    assert c["correct"] == {"standard": 2, "masked": 2}
    assert c["discordant"] == {"standard_only": 1, "masked_only": 1}
    assert c["standard"] == 0.5 and c["masked"] == 0.5
    assert c["standard"] == accuracy.table1_row(MeanThreshold(), x, y, zero_mask)["standard"]


def test_table2_counts_hand_computed():
    x, y = _four_constant_images()
    ones, zeros = torch.ones(1, 8, 8), torch.zeros(1, 8, 8)
    masks = torch.stack([ones, zeros, ones, zeros])  # complements: zeros, ones, zeros, ones
    c = accuracy.table2_counts(MeanThreshold(), x, y, masks, adv_images=x.flip(0))
    # M(x): 0.2 -> 0 (ok), 0 -> 0 (label 1), 0.8 -> 1 (label 0), 0 -> 0 (label 1): 1 right (image 0)
    # M^c(x): 0 -> 0 (ok), 0.8 -> 1 (ok), 0 -> 0 (ok), 0.2 -> 0 (label 1): 3 right (images 0, 1, 2)
    assert c["n"] == 4
    assert c["correct"]["original"] == 2 and c["original"] == 0.5
    assert c["correct"]["masked"] == 1 and c["correct"]["complement"] == 3
    assert c["discordant"] == {"masked_only": 0, "complement_only": 2}
    # x_A = flipped images (0.2, 0.8, 0.8, 0.2 reversed is the same sequence): same outcomes as x
    assert c["correct"]["adversarial"] == 2
    for k in ("masked", "complement", "adversarial", "masked_adversarial", "masked_adversarial_binary"):
        assert c[k] == c["correct"][k] / c["n"]
    ref = accuracy.table2_accuracies(MeanThreshold(), x, y, masks, adv_images=x.flip(0))
    assert {k: c[k] for k in ref} == ref


def test_paired_counts_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        accuracy.paired_counts({})
    with pytest.raises(ValueError, match="differ in length"):
        accuracy.paired_counts({"a": np.array([True]), "b": np.array([True, False])})
    with pytest.raises(ValueError, match="names an outcome"):
        accuracy.paired_counts({"a": np.array([True])}, pair=("a", "c"))


def test_kept_fraction_uses_the_paper_threshold():
    m = torch.tensor([[1.0, 0.5], [1e-8, 0.0]]).view(1, 1, 2, 2)
    m2 = torch.ones(1, 1, 2, 2)
    kept = complements.kept_fraction(torch.cat([m, m2]))
    assert kept.shape == (2,)
    assert kept.tolist() == [0.5, 1.0]  # 1e-8 itself is not kept (M^c = 1 where M <= 1e-8)


def test_low_frequency_share_dc_only_and_high_only():
    dc = torch.zeros(1, 1, 8, 8)
    dc[0, 0, 0, 0] = 1.0  # fft2 layout: DC at [0, 0] -> innermost radial band
    high = torch.zeros(1, 1, 8, 8)
    high[0, 0, 4, 4] = 1.0  # Nyquist corner -> outermost band
    share = bands.low_frequency_share(torch.cat([dc, high]), n_bands=4)
    assert share.tolist() == pytest.approx([1.0, 0.0])
    with pytest.raises(ValueError, match="n_bands"):
        bands.low_frequency_share(dc, n_bands=1)


def test_pixel_correlation_known_values():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 4, generator=g)
    f = torch.stack([2 * x[0] + 1, -x[1], torch.full_like(x[2], 0.3)])
    r = complements.pixel_correlation(x, f)
    assert r[:2].tolist() == pytest.approx([1.0, -1.0])
    assert np.isnan(r[2])  # a constant image has no correlation
    with pytest.raises(ValueError, match="differ in shape"):
        complements.pixel_correlation(x, f[:2])


def test_permutation_null_matches_the_direct_probe_and_is_seeded():
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 300)), rng.integers(0, 4, 40)  # more features than training rows
    null = probe.permutation_null(X, y, seed=3, n_permutations=3)
    assert null["train"].shape == null["test"].shape == (3,)
    for b in range(3):  # the training-span projection is exact for the L2-penalised probe
        direct = probe.linear_probe(X, probe.fixed_permutation(y, 3 + 1 + b), seed=3)
        assert null["train"][b] == pytest.approx(direct.train_accuracy)
        assert null["test"][b] == pytest.approx(direct.test_accuracy)
    again = probe.permutation_null(X, y, seed=3, n_permutations=3)
    assert np.array_equal(again["test"], null["test"])
    with pytest.raises(ValueError, match="n_permutations"):
        probe.permutation_null(X, y, seed=0, n_permutations=0)


def test_late_gain_separates_a_plateau_from_a_run_still_learning():
    from fmask.analysis.diagnostics import late_gain

    plateau = [0.3, 0.6, 0.75, 0.80, 0.805, 0.80, 0.806, 0.807, 0.808, 0.81]
    assert late_gain(plateau) == pytest.approx(0.81 - 0.805)  # the last epoch vs the best of epochs 1-5
    rising = [0.1 * k for k in range(1, 11)]
    assert late_gain(rising) == pytest.approx(1.0 - 0.5)
    assert late_gain([0.5, 0.6], window=5) is None
    with pytest.raises(ValueError):
        late_gain(plateau, window=0)


def test_late_gain_summary_counts_last_epochs_and_calls_a_plateau():
    from fmask.analysis.diagnostics import LATE_GAIN_PLATEAU, late_gain_summary

    s = late_gain_summary([25, 20, 25, None], [0.01, -0.02, None, 0.005], 25)
    assert s == {"n_networks": 4, "best_is_last": 2, "min_gain": -0.02, "max_gain": 0.01, "plateau": True}
    assert late_gain_summary([25], [LATE_GAIN_PLATEAU + 0.001], 25)["plateau"] is False
    assert late_gain_summary([3], [None], 3) == {"n_networks": 1, "best_is_last": 1, "min_gain": None,
                                                  "max_gain": None, "plateau": None}
    with pytest.raises(ValueError, match="one entry per network"):
        late_gain_summary([1, 2], [0.0], 5)
    with pytest.raises(ValueError, match="n_epochs"):
        late_gain_summary([1], [0.0], 0)


def test_analysis_and_plots_modules_are_small_and_share_no_private_names():
    """Every module of fmask.analysis and fmask.plots has at most 450 lines and neither imports a private name
    (``from m import _x``) nor reads one of another module (``m._x``)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = sorted([*root.glob("fmask/analysis/*.py"), *root.glob("fmask/plots/*.py")])
    assert len(files) > 10
    long = {f.name: n for f in files if (n := len(f.read_text().splitlines())) > 450}
    assert long == {}
    private = []
    for f in files:
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                private += [f"{f.name}: from {node.module} import {a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                  and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
                private.append(f"{f.name}: {ast.unparse(node)}")
    assert private == []


def test_top_fraction_low_share_reads_where_the_largest_entries_are_not_how_many():
    from fmask.analysis.bands import top_fraction_low_share
    from fmask.core.spectral import radial_bands, uncentered

    bands = radial_bands(64, 64, 32)
    ones = torch.ones(1, 1, 64, 64)
    area_low = float((bands < 16).double().mean())
    assert top_fraction_low_share(ones, 32, q=0.05)[0] == pytest.approx(area_low)  # ties: the area share
    graded = uncentered((1.0 - bands.double() / 32).float()[None, None])  # larger towards DC
    dense = 0.5 + 0.5 * graded  # the same order of entries, a denser mask
    assert top_fraction_low_share(graded, 32, q=0.05)[0] == pytest.approx(1.0)
    assert top_fraction_low_share(dense, 32, q=0.05)[0] == pytest.approx(1.0)  # density does not move it
    highpass = uncentered((bands.double() / 32).float()[None, None])
    assert top_fraction_low_share(highpass, 32, q=0.05)[0] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        top_fraction_low_share(ones, 32, q=0.0)


def test_density_correlations_cover_every_mask_and_name_both_statistics():
    from fmask.analysis.bands import replicate_band_energies
    from fmask.analysis.density import density_correlations

    g = torch.Generator().manual_seed(0)
    masks = {r: [torch.rand(1, 1, 32, 32, generator=g) ** k for k in (1, 2, 3)] for r in ("vanilla", "rotate")}
    d = density_correlations(replicate_band_energies(masks, 16))
    assert d["n_masks"] == 6 and len(d["correlation"]) == 2
    assert all(v is None or -1 <= v <= 1 for v in d["correlation"].values())
    same = {r: [torch.ones(1, 1, 32, 32)] * 3 for r in ("vanilla", "rotate")}
    assert set(density_correlations(replicate_band_energies(same, 16))["correlation"].values()) == {None}
