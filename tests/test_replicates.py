"""Training-seed replicates (issue #9 "Replicates"): the profile key, Run's replicate plumbing, the replicate
arrays of Table 1 and the band energies, Fig. 4 with spread, and the claims decided against the seed spread.

The pipeline tests reuse test_pipeline's tiny fake Imagenette (32 px, one epoch, one regime)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fmask import plots

from fmask.analysis import accuracy, bands, stats

from fmask import claims

from fmask.experiment import results as report
from fmask.core.objective import ACCURACY_RATIO
from fmask.experiment.run import Run
from fmask.experiment.profiles import load_profile, list_profiles
from fmask.data.regimes import REGIMES

from test_pipeline import N_PER_CLASS, _profile, fake_imagenette  # noqa: F401 - the fixture is used below

R, N, I = claims.REPRODUCED, claims.NOT_REPRODUCED, claims.INCONCLUSIVE


def by_id(entries):
    return {e["id"]: e for e in entries}


def verdict(results, cid):
    return by_id(claims.evaluate_claims(results))[cid]["verdict"]


# ----------------------------------------------------------------------------------------------- profile
def test_every_profile_sets_replicates_and_bad_values_fail():
    for name in list_profiles():
        p = load_profile(name)
        assert isinstance(p.train.replicates, int) and p.train.replicates >= 1, name
    assert load_profile("cpu").train.replicates >= claims.MIN_REPLICATES  # the book's claims can be decided
    for bad in (0, -1, 1.5, "three"):
        with pytest.raises(ValueError, match="replicates"):
            load_profile("smoke", {"train.replicates": bad})


# ---------------------------------------------------------------------------------------------- pipeline
@pytest.fixture(scope="module")
def rep_run(fake_imagenette, tmp_path_factory):  # noqa: F811 - pytest fixture injection
    art = tmp_path_factory.mktemp("rep_artifacts")
    res = tmp_path_factory.mktemp("rep_results")
    prof = _profile(fake_imagenette, **{"train.regimes": ["vanilla"], "train.replicates": 2, "seed": 5})
    run = Run.from_profile(prof, artifacts=art, results_dir=res, progress=False)
    reps = run.replicate_models()
    masks = run.replicate_dataset_masks()
    return {"run": run, "art": art, "res": res, "prof": prof, "reps": reps, "masks": masks}


def test_replicate_k_trains_with_seed_plus_k(rep_run):
    run, reps, masks = rep_run["run"], rep_run["reps"], rep_run["masks"]
    assert run.n_replicates == 2 and [run.replicate_seed(k) for k in range(2)] == [5, 6]
    assert [m.key["seed"] for m in reps["vanilla"]] == [5, 6]
    assert reps["vanilla"][0] is run.model("vanilla") is run.models()["vanilla"]  # replicate 0 = main model
    w0, w1 = (next(m.model.parameters()) for m in reps["vanilla"])
    assert not torch.equal(w0, w1)  # another seed, another network
    assert [run.dataset_mask_key("vanilla", k)["seed"] for k in range(2)] == [5, 6]
    assert masks["vanilla"][0] is run.dataset_mask("vanilla") and len(masks["vanilla"]) == 2
    assert masks["vanilla"][1].params["seed"] == 6
    for stage in ("train.vanilla", "train.vanilla.r1", "dataset_mask.vanilla", "dataset_mask.vanilla.r1"):
        assert run.provenance[stage] == "computed", stage
    for bad in (2, -1, True, 1.0):
        with pytest.raises(ValueError, match="replicate"):
            run.model("vanilla", bad)


def test_replicate_count_is_not_part_of_the_keys(rep_run, fake_imagenette):  # noqa: F811
    """A run with 3 replicates loads the 2-replicate run's models and masks (the count chooses how many models
    exist, not how one is made); replicate 0's dataset-mask key keeps the profile's seed."""
    prof3 = _profile(fake_imagenette, **{"train.regimes": ["vanilla"], "train.replicates": 3, "seed": 5})
    run3 = Run.from_profile(prof3, artifacts=rep_run["art"], results_dir=rep_run["res"], progress=False)
    assert run3.n_replicates == 3
    for k in range(2):
        assert run3.model("vanilla", k).key == rep_run["reps"]["vanilla"][k].key
        assert run3.dataset_mask_key("vanilla", k) == rep_run["run"].dataset_mask_key("vanilla", k)
        run3.dataset_mask("vanilla", k)
    for stage in ("train.vanilla", "train.vanilla.r1", "dataset_mask.vanilla", "dataset_mask.vanilla.r1"):
        assert run3.provenance[stage] == "loaded", stage
    assert rep_run["run"].dataset_mask_key("vanilla")["seed"] == 5


# ---------------------------------------------------------------------------------------------- analysis
def _radial_mask(size=16, power=1.0):
    """A radially symmetric mask in fft2 layout (1, 1, size, size): 1 at DC falling with the radius."""
    dy = torch.arange(size) - size // 2
    r = torch.sqrt(dy.view(-1, 1).float() ** 2 + dy.view(1, -1).float() ** 2)
    m = (1.0 - r / r.max()) ** power
    return torch.fft.ifftshift(m).view(1, 1, size, size)


def test_ring_averaged_keeps_radial_masks_and_rings_constant():
    radial = _radial_mask()
    assert torch.allclose(bands.ring_averaged(radial), radial, atol=1e-6)
    m = torch.rand(3, 2, 12, 12, generator=torch.Generator().manual_seed(0))
    iso = bands.ring_averaged(m)
    assert iso.shape == m.shape
    assert torch.allclose(iso.mean(dim=(-2, -1)), m.mean(dim=(-2, -1)), atol=1e-6)  # rings partition the plane
    c = torch.fft.fftshift(iso, dim=(-2, -1))
    h = 12 // 2
    # (dy, dx) = (1, 2), (2, -1), (-2, 1), (-1, -2) are on one ring: equal values
    vals = [c[..., h + a, h + b] for a, b in ((1, 2), (2, -1), (-2, 1), (-1, -2))]
    assert all(torch.allclose(v, vals[0]) for v in vals)
    with pytest.raises(ValueError):
        bands.ring_averaged(torch.rand(12, 12, 3, 3, 3))


def test_replicate_band_energies_and_difference_spread():
    flat = torch.ones(1, 1, 16, 16)
    masks = {"vanilla": [flat * (1 - 0.01 * k) for k in range(3)],
             "adversarial": [_radial_mask(power=2.0 + 0.1 * k) for k in range(3)]}
    rep = bands.replicate_band_energies(masks, n_bands=8)
    for r in masks:
        for key in ("radial_share", "angular_share", "angular_share_isotropic"):
            assert rep[r][key].shape == (3, 8)
            assert np.allclose(rep[r][key].sum(axis=1), 1.0, atol=1e-5)
    spread = bands.band_difference_spread(rep, "vanilla", "radial")
    assert list(spread) == ["adversarial"]
    d = spread["adversarial"]
    assert np.allclose(d["per_seed"], rep["adversarial"]["radial_share"] - rep["vanilla"]["radial_share"])
    assert np.allclose(d["mean"], d["per_seed"].mean(axis=0))
    assert np.all(d["lo"] <= d["mean"] + 1e-12) and np.all(d["mean"] <= d["hi"] + 1e-12)
    assert np.any(d["hi"] > d["lo"])
    one = bands.band_difference_spread({r: {k: v[:1] for k, v in x.items()} for r, x in rep.items()})
    assert np.array_equal(one["adversarial"]["lo"], one["adversarial"]["hi"])  # one seed: no band
    with pytest.raises(ValueError, match="same number"):
        bands.replicate_band_energies({"vanilla": masks["vanilla"], "scale": masks["vanilla"][:2]}, 8)
    with pytest.raises(ValueError, match="reference"):
        bands.band_difference_spread(rep, "rotate")
    fig = plots.band_energy_spread({"B−A": d}, bands.band_difference_spread(rep, "vanilla", "angular"))
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="mean"):
        plots.band_energy_spread({"B−A": {"mean": d["mean"]}})


def test_replicate_spread_table1_replicates_and_text():
    s = stats.replicate_spread([0.8, 0.82, 0.84])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.82) and s["min"] == 0.8 and s["max"] == 0.84
    lo, hi = s["interval"]
    assert lo < 0.8 and hi > 0.84  # t(0.975, 2) = 4.30: wider than the range of three seeds
    assert stats.spread_text(s) == f"82.0 ± {100 * (hi - lo) / 2:.1f} (80.0–84.0)"
    assert stats.spread_text(stats.replicate_spread([0.5])) == "50.0"
    rows = [{"standard": 0.5, "masked": 0.25, "n": 4, "correct": {"standard": 2, "masked": 1},
             "discordant": {"standard_only": 1, "masked_only": 0}, "mask_mean": 0.3}] * 2
    t = accuracy.table1_replicates(rows, [0, 1])
    assert t["seed"] == [0, 1] and t["correct"]["masked"] == [1, 1] and t["mask_mean"] == [0.3, 0.3]
    with pytest.raises(ValueError):
        accuracy.table1_replicates(rows, [0])


# ------------------------------------------------------------------------------------------------ claims
def test_fig4_claims_from_replicate_band_energies():
    """The chapter's computation (replicate_band_energies) feeds the radial claim: adversarial masks that
    keep low frequencies (radial fall-off) against flat vanilla masks -> a low-frequency bias, reproduced
    with 3 seeds, inconclusive with 2."""
    n_bands = 8
    gen = torch.Generator().manual_seed(0)
    van = [torch.clamp(torch.ones(1, 1, 16, 16) - 0.05 * torch.rand(1, 1, 16, 16, generator=gen), 0, 1)
           for _ in range(3)]
    adv = [_radial_mask(power=1.5 + 0.1 * k) for k in range(3)]
    rep = bands.replicate_band_energies({"vanilla": van, "adversarial": adv}, n_bands)
    energies = {"n_bands": n_bands,
                "radial_share": {r: v["radial_share"][0].tolist() for r, v in rep.items()},
                "replicates": {r: {k: a.tolist() for k, a in v.items()} for r, v in rep.items()}}
    e = by_id(claims.evaluate_claims({"energies": energies}))["fig4.adversarial_low_frequency"]
    assert e["verdict"] == R and e["n"] == 3 and e["interval"][0] > 0
    two = {**energies, "replicates": {r: {k: a[:2] for k, a in v.items()} for r, v in energies["replicates"].items()}}
    assert verdict({"energies": two}, "fig4.adversarial_low_frequency") == I


def test_fig4_direction_claim_from_replicate_band_energies():
    """Adversarial masks that keep a horizontal stripe of frequencies (direction dependent) against nearly
    flat vanilla masks: the direction-dependent change exceeds the seed-to-seed one -> reproduced."""
    gen = torch.Generator().manual_seed(1)
    van = [1.0 - 0.05 * torch.rand(1, 1, 16, 16, generator=gen) for _ in range(3)]
    stripe = torch.full((16, 16), 0.1)
    stripe[16 // 2 - 1:16 // 2 + 2, :] = 1.0  # |dy| <= 1 in the centred layout
    adv = [torch.fft.ifftshift(stripe * (1.0 - 0.02 * k)).view(1, 1, 16, 16) for k in range(3)]
    rep = bands.replicate_band_energies({"vanilla": van, "adversarial": adv}, 8)
    energies = {"n_bands": 8, "replicates": {r: {k: a.tolist() for k, a in v.items()} for r, v in rep.items()}}
    e = by_id(claims.evaluate_claims({"energies": energies}))["fig4.adversarial_direction_dependent"]
    assert e["verdict"] == R and e["n"] == 3
    assert e["interval"][0] > e["details"]["adversarial"]["seed_to_seed_mean"]


def _table1(std, msk, n=2000, disc=None):
    """table1 result with replicates: ``std[r]``/``msk[r]`` lists of accuracies per seed (same for all regimes
    if given as lists); ``disc``: (standard_only, masked_only) per seed, default the smallest consistent one."""
    out = {}
    for r in REGIMES:
        s, m = (std[r], msk[r]) if isinstance(std, dict) else (std, msk)
        cs, cm = [round(a * n) for a in s], [round(a * n) for a in m]
        so = [max(a - b, 0) for a, b in zip(cs, cm)] if disc is None else [d[0] for d in disc]
        mo = [max(b - a, 0) for a, b in zip(cs, cm)] if disc is None else [d[1] for d in disc]
        rep = {"seed": list(range(len(s))), "standard": [c / n for c in cs], "masked": [c / n for c in cm],
               "n": [n] * len(s), "correct": {"standard": cs, "masked": cm},
               "discordant": {"standard_only": so, "masked_only": mo}}
        out[r] = {"standard": rep["standard"][0], "masked": rep["masked"][0], "n": n,
                  "correct": {"standard": cs[0], "masked": cm[0]},
                  "discordant": {"standard_only": so[0], "masked_only": mo[0]}, "replicates": rep}
    return {"table1": out}


def test_table1_masked_claim_uses_the_seed_spread():
    cid = "table1.masked_matches_standard"
    assert verdict(_table1([0.80, 0.81, 0.80], [0.80, 0.805, 0.80], disc=[(10, 10), (15, 5), (10, 10)]), cid) == R
    assert verdict(_table1([0.80, 0.81, 0.80], [0.60, 0.62, 0.61]), cid) == N
    # tight on the images of every seed, but the seeds disagree: the t interval over seeds is too wide
    assert verdict(_table1([0.80, 0.80, 0.80], [0.80, 0.77, 0.83], disc=[(10, 10), (70, 10), (10, 70)]), cid) == I
    two = _table1([0.80, 0.81], [0.80, 0.81], disc=[(10, 10)] * 2)
    e = by_id(claims.evaluate_claims(two))[cid]
    assert e["verdict"] == I and any("2 seeds" in m for m in e["missing"]) and e["n"]["vanilla"] == 2
    # single seed without replicates: point estimate only, undecided
    single = {"table1": {r: {k: v for k, v in row.items() if k != "replicates"}
                         for r, row in _table1([0.8] * 3, [0.8] * 3, disc=[(10, 10)] * 3)["table1"].items()}}
    e = by_id(claims.evaluate_claims(single))[cid]
    assert e["verdict"] == I and e["ours"]["vanilla"] == 0.0 and any("replicates" in m for m in e["missing"])


def test_table1_ranking_claim_uses_the_seed_spread():
    cid = "table1.accuracy_ranking"
    paper = {e["row"]: e["value"] for e in report.paper_values() if e["table"] == "table1" and e["column"] == "standard"}
    ranked = sorted(REGIMES, key=lambda r: -paper[r])
    same = {r: [0.9 - 0.1 * i + d for d in (0.0, 0.005, -0.005)] for i, r in enumerate(ranked)}
    assert verdict(_table1(same, same), cid) == R
    reverse = {r: [0.5 + 0.1 * i + d for d in (0.0, 0.005, -0.005)] for i, r in enumerate(ranked)}
    assert verdict(_table1(reverse, reverse), cid) == N
    # the mean order is the paper's, but the seeds flip it: inconclusive
    noisy = {r: [0.8 - 0.01 * i + d for d in (0.0, 0.08, -0.08)] for i, r in enumerate(ranked)}
    noisy = {r: v[i % 3:] + v[:i % 3] for i, (r, v) in enumerate(noisy.items())}
    assert verdict(_table1(noisy, noisy), cid) == I
    e = by_id(claims.evaluate_claims(_table1({r: v[:2] for r, v in same.items()}, {r: v[:2] for r, v in same.items()})))
    assert e[cid]["verdict"] == I


def test_dataset_mask_trace_figure():
    h = {"loss": torch.tensor([1.2, 1.1, 1.05]), "accuracy": torch.tensor([80.0, 79.5, 79.8]),
         "sparsity": torch.tensor([0.9, 0.7, 0.7]), "initial_accuracy": torch.tensor([80.0]),
         "snapshot_epoch": torch.tensor([3.0])}
    fig = plots.dataset_mask_trace({"(A) vanilla": h, "(B) adversarial": {**h, "snapshot_epoch": torch.tensor([0.0])}})
    assert [ax.get_title() for ax in fig.axes] == ["objective", "masked accuracy (%)", "sparsity mean(M)"]
    threshold = [ln for ln in fig.axes[1].get_lines() if ln.get_linestyle() == "--"]
    assert len(threshold) == 2 and threshold[0].get_ydata()[0] == pytest.approx(ACCURACY_RATIO * 80.0)
    with pytest.raises(ValueError, match="lacks"):
        plots.dataset_mask_trace({"x": {"loss": [1.0]}})
