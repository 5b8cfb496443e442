"""Chapter 9 (Fourier masks vs Fourier heat maps) and chapter 10 (own model): the helpers behind them
(per-image heat maps, band rank agreement with a bootstrap interval, the agree/disagree rule, the planted
benchmark), their figures on tiny inputs, the profile section, and both notebooks executed with papermill on
the smoke profile (a fresh artifact store: the smoke pipeline's models and masks take seconds)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fmask.analysis.agreement import agreement_verdict, band_rank_agreement, rank_agreement, recall_at_k
from fmask.analysis.heatmap import fourier_heat_map
from fmask.analysis.planted import planted_benchmark
from fmask.plots import heatmaps as hplots
from fmask.plots.style import MAX_WIDTH_IN
from fmask.experiment.profile_schema import HeatmapSection
from fmask.experiment.profiles import load_profile

from conftest import make_tiny_cnn


# ----------------------------------------------------------------------------------------- helpers
def test_per_image_heat_map_averages_to_the_heat_map():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 8, 8)
    y = torch.randint(0, 3, (6,))
    model = make_tiny_cnn(1, 3, seed=1)
    kw = dict(eps=3.0, frequencies=2, seed=5, progress=False, batch_size=7)
    rate = fourier_heat_map(model, x, y, **kw)
    per = fourier_heat_map(model, x, y, per_image=True, **kw)
    assert per.shape == (6, 8, 8)
    ok = ~torch.isnan(rate)
    assert torch.equal(ok, ~torch.isnan(per[0]))
    vals = per[:, ok]
    assert bool(((vals == 0) | (vals == 1)).all())
    torch.testing.assert_close(per.mean(0)[ok], rate[ok])
    each = fourier_heat_map(make_tiny_cnn(3, 3, seed=2), torch.rand(4, 3, 8, 8), None, channels="each", per_image=True, frequencies=4,
                            progress=False)
    assert each.shape == (4, 3, 8, 8)


def _errors_from_profile(profile: torch.Tensor, n: int, h: int, seed: int = 0) -> torch.Tensor:
    """(n, h, h) 0/1 errors whose expected value at radius-band b is profile[b] (fft2 layout)."""
    from fmask.core.spectral import radial_bands, uncentered

    bands = radial_bands(h, h, profile.numel())
    p = uncentered(profile[bands].double())
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, h, h, generator=g, dtype=torch.float64) < p).float()


def test_band_rank_agreement_recovers_a_planted_ordering_and_is_seeded():
    h, nb = 16, 4
    from fmask.core.spectral import radial_bands, uncentered

    mask = uncentered(torch.tensor([1.0, 0.7, 0.3, 0.0])[radial_bands(h, h, nb)])
    same = _errors_from_profile(torch.tensor([0.9, 0.6, 0.3, 0.05]), 40, h)
    opposite = _errors_from_profile(torch.tensor([0.05, 0.3, 0.6, 0.9]), 40, h)
    a = band_rank_agreement(mask, same, nb, n_resamples=200, seed=3)
    b = band_rank_agreement(mask, opposite, nb, n_resamples=200, seed=3)
    assert a["rho"] == pytest.approx(1.0) and a["lo"] > 0
    assert b["rho"] == pytest.approx(-1.0) and b["hi"] < 0
    assert agreement_verdict(a["lo"], a["hi"], a["rho"]) == "agree"
    assert agreement_verdict(b["lo"], b["hi"], b["rho"]) == "disagree"
    # the point estimate is rank_agreement of the band means; the same seed gives the same interval
    assert a["rho"] == pytest.approx(rank_agreement(a["mask_profile"], a["heat_profile"]))
    assert band_rank_agreement(mask, same, nb, n_resamples=200, seed=3) == a
    assert math.isnan(band_rank_agreement(mask, same, nb, n_resamples=0)["lo"])
    with pytest.raises(ValueError, match="per_image_errors"):
        band_rank_agreement(mask, same.mean(0), nb)
    with pytest.raises(ValueError, match="mask must be"):
        band_rank_agreement(torch.ones(8, 8), same, nb)


def test_band_rank_agreement_ignores_bands_without_evaluated_frequencies():
    """A strided heat map leaves NaN at the frequencies it skips; constant error gives an undefined ρ."""
    h = 16
    torch.manual_seed(0)
    model = make_tiny_cnn(1, 3, seed=0)
    x, y = torch.rand(5, 1, h, h), torch.randint(0, 3, (5,))
    per = fourier_heat_map(model, x, y, eps=2.0, frequencies=4, progress=False, per_image=True)
    # keep the evaluated pattern (NaN elsewhere), but random 0/1 errors so the profile is not constant
    noise = (torch.rand(per.shape, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    per = torch.where(torch.isnan(per), per, noise)
    mask = torch.rand(1, 1, h, h, generator=torch.Generator().manual_seed(1))
    res = band_rank_agreement(mask, per, 8, n_resamples=100)
    assert len(res["mask_profile"]) == len(res["heat_profile"]) == 8
    heat = np.asarray(res["heat_profile"])
    skipped = np.isnan(heat)
    assert skipped.any() and not skipped.all()  # stride 4 on 16 px leaves some of the 8 rings empty
    assert not np.isnan(res["mask_profile"]).any()
    finite = ~skipped
    assert res["rho"] == pytest.approx(rank_agreement(np.asarray(res["mask_profile"])[finite], heat[finite]))
    flat = torch.zeros(5, h, h)
    assert math.isnan(band_rank_agreement(mask, flat, 4, n_resamples=100)["rho"])


@pytest.mark.parametrize("lo, hi, rho, verdict", [
    (0.1, 0.9, 0.5, "agree"), (-0.9, -0.2, -0.6, "disagree"), (-0.3, 0.8, 0.4, "undecided"),
    (float("nan"), float("nan"), 0.7, "agree"), (float("nan"), float("nan"), -0.5, "disagree"),
    (float("nan"), float("nan"), 0.2, "undecided"), (float("nan"), float("nan"), float("nan"), "undecided")])
def test_agreement_verdict_rule(lo, hi, rho, verdict):
    assert agreement_verdict(lo, hi, rho) == verdict


def test_planted_benchmark_is_seeded_and_learns_the_planted_classes():
    a = planted_benchmark(320, 64, seed=0)
    b = planted_benchmark(320, 64, seed=0)
    for p, q in zip(a["model"].state_dict().values(), b["model"].state_dict().values()):
        assert torch.equal(p, q)
    assert a["test_accuracy"] == b["test_accuracy"] >= 0.8
    assert a["support"].dtype == torch.bool and int(a["support"].sum()) == 8
    # the test images are not the training images
    assert not torch.equal(a["train"][0][:64], a["test"][0])
    k = int(a["support"].sum())
    assert 0 <= recall_at_k(fourier_heat_map(a["model"], a["test"][0][:8], a["test"][1][:8], frequencies=2,
                                             progress=False), a["support"], k) <= 1
    with pytest.raises(ValueError):
        planted_benchmark(1, 8)


# ----------------------------------------------------------------------------------------- profile
def test_heatmap_section_in_every_profile_and_validated():
    for name in ("smoke", "cpu", "paper"):
        hs = load_profile(name).heatmap
        assert isinstance(hs, HeatmapSection)
        size = load_profile(name).data.image_size
        assert hs.eps == pytest.approx(size / 16)  # the shipped rule: per-pixel RMS 0.0625
        assert hs.n_bootstrap == 0 or hs.n_bootstrap >= 100
    with pytest.raises(ValueError, match="heatmap.n_bootstrap"):
        load_profile("smoke", {"heatmap.n_bootstrap": 50})
    with pytest.raises(ValueError, match="unknown key 'stide' in section 'heatmap'; did you mean 'stride'"):
        load_profile("smoke", {"heatmap.stide": 2})
    with pytest.raises(ValueError, match="heatmap.eps must be > 0"):
        load_profile("smoke", {"heatmap.eps": 0})


# ----------------------------------------------------------------------------------------- figures
def _heat(h: int, stride: int, seed: int = 0) -> torch.Tensor:
    model = make_tiny_cnn(1, 3, seed=seed)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(4, 1, h, h, generator=g), torch.randint(0, 3, (4,), generator=g)
    return fourier_heat_map(model, x, y, eps=2.0, frequencies=stride, progress=False)


def test_compact_heat_map_keeps_the_evaluated_grid():
    hm = _heat(16, 4)
    sub, extent = hplots.compact_heat_map(hm)
    assert sub.shape == (4, 4) and np.isfinite(sub).all()  # signed multiples of 4 in [-8, 7]: -8, -4, 0, 4
    assert extent == (-10.0, 6.0, 6.0, -10.0)
    full, _ = hplots.compact_heat_map(_heat(8, 1))
    assert full.shape == (8, 8)
    with pytest.raises(ValueError, match="no finite"):
        hplots.compact_heat_map(torch.full((4, 4), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        hplots.compact_heat_map(torch.zeros(1, 4, 4))


def test_chapter_figures_on_tiny_inputs():
    names = ["(A) vanilla", "(B) adversarial"]
    masks = {n: torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(i)) for i, n in enumerate(names)}
    heats = {n: _heat(16, 2, seed=i) for i, n in enumerate(names)}
    radii = [0.0, 4.0, 8.0, 12.0]
    low = {n: [0.2, 0.5, 0.8, 0.9] for n in names}
    high = {n: [0.9, 0.6, 0.3, 0.2] for n in names}
    fig = hplots.masks_heatmaps_passbands(masks, heats, radii, low, high, clean={n: 0.9 for n in names})
    assert fig.get_size_inches()[0] <= MAX_WIDTH_IN + 1e-9
    assert len(fig.axes) == 3 * len(names) + 2  # panels and two colour bars
    with pytest.raises(ValueError, match="same keys"):
        hplots.masks_heatmaps_passbands(masks, {names[0]: heats[names[0]]}, radii, low, high)
    with pytest.raises(ValueError, match="one accuracy per radius"):
        hplots.masks_heatmaps_passbands(masks, heats, radii[:2], low, high)

    prof = {n: {"mask_profile": [1.0, 0.5, float("nan"), 0.1], "heat_profile": [0.9, 0.4, 0.2, 0.1],
                "rho": 0.8} for n in names}
    fig = hplots.band_profiles(prof)
    assert fig.get_size_inches()[0] <= MAX_WIDTH_IN + 1e-9 and "0.80" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="mask_profile"):
        hplots.band_profiles({"x": {"rho": 0.1}})

    support = torch.zeros(16, 16, dtype=torch.bool)
    support[1, 2] = support[15, 14] = True
    recall = {"mask": {2: 1.0, 4: 1.0}, "heat map": {"2": 0.0, "4": 0.5}}  # str keys: as read back from JSON
    fig = hplots.planted_comparison(support, masks[names[0]], heats[names[0]], recall)
    assert fig.get_size_inches()[0] <= MAX_WIDTH_IN + 1e-9
    xs, ys = fig.axes[3].get_lines()[1].get_data()
    assert list(xs) == [2, 4] and list(ys) == [0.0, 0.5]
    with pytest.raises(ValueError, match="support"):
        hplots.planted_comparison(support.float(), masks[names[0]], heats[names[0]], recall)


# ------------------------------------------------------------------------------------- notebooks
@pytest.fixture(scope="module")
def smoke_chapters(tmp_path_factory):
    """Chapters 9 and 10 executed with papermill on the smoke profile into a temp dir."""
    from fmask import book

    data = os.environ.get("FMASK_DATA")
    if not data:
        pytest.skip("FMASK_DATA is not set: the chapters need the Imagenette copy")
    if not Path(data).is_dir():
        pytest.fail(f"FMASK_DATA={data} does not exist")
    root = tmp_path_factory.mktemp("chapters")
    results = root / "results"
    out = {}
    for name in ("09_heatmaps", "10_own_model"):
        out[name] = book.execute_notebook(
            book.REPO_ROOT / "notebooks" / f"{name}.py", root / f"{name}.ipynb",
            {"profile": "smoke", "data_root": data, "artifacts_dir": str(root / "artifacts"),
             "results_dir": str(results)}, cwd=root)
    return out, results


@pytest.mark.parametrize("name", ["09_heatmaps", "10_own_model"])
def test_smoke_chapter_runs_cleanly(smoke_chapters, name):
    paths, _ = smoke_chapters
    nb = json.loads(Path(paths[name]).read_text())
    figures = 0
    for c in nb["cells"]:
        if c["cell_type"] != "code":
            continue
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", f"{name}: {o}"
            assert o.get("name") != "stderr", f"{name} has stderr output: {o.get('text', '')[:300]}"
        if c["metadata"].get("mystnb", {}).get("figure"):
            figures += 1
    assert figures == (3 if name == "09_heatmaps" else 1)


def test_smoke_chapter_results(smoke_chapters):
    from fmask.experiment import results as report
    from fmask.data.regimes import REGIMES

    _, results_dir = smoke_chapters
    res = report.load_results(results_dir, with_meta=True)
    hm = res["heatmaps"]["values"]
    p = load_profile("smoke")
    assert set(hm["networks"]) == set(p.train.regimes) == set(REGIMES)
    for r, v in hm["networks"].items():
        assert v["verdict"] in ("agree", "disagree", "undecided")
        assert agreement_verdict(*(float("nan") if v[k] is None else v[k] for k in ("lo", "hi", "rho"))) \
            == v["verdict"]
        assert len(v["low_pass"]) == len(v["high_pass"]) == len(hm["radii"]) == p.heatmap.n_radii
        assert len(v["mask_profile"]) == p.heatmap.n_bands
        assert v["high_pass"][0] == v["clean_accuracy"]  # high-pass at radius 0 keeps everything
    k = hm["planted"]["support_size"]
    assert sorted(int(x) for x in hm["planted"]["recall_mask"]) == [k, 2 * k, 4 * k, 8 * k]
    assert res["heatmaps"]["meta"]["n_images"] == p.heatmap.n_images
    own = res["own_model"]["values"]
    assert own["same_predictions"] is True and own["file_round_trip"] is True
    assert own["n_images"] == p.heatmap.own_images
