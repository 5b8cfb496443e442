"""Single-image mask variants (issue #9 §1, §3): M_A,X_A, Table 2 under both conventions, per-class dataset
masks, Figs. 5-7 as the paper lays them out, network / mask diagnostics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_tiny_cnn
from test_pipeline import _profile, fake_imagenette  # noqa: F401 - the fixture is used by name

from fmask.analysis import diagnostics

from fmask.experiment import run as pipeline

from fmask.analysis import stats

from fmask.experiment import variants
from fmask.experiment.run import Run
from fmask.plots import singles as psingles


# ------------------------------------------------------------------------------------------- pure parts
def test_balanced_subset_is_seeded_balanced_and_sorted():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 5)
    idx = variants.balanced_subset(y, 40, seed=3)
    assert torch.equal(idx, variants.balanced_subset(y, 40, seed=3))
    assert not torch.equal(idx, variants.balanced_subset(y, 40, seed=4))
    assert torch.equal(idx, torch.sort(idx).values) and idx.unique().numel() == 40
    counts = torch.bincount(y[idx], minlength=3).tolist()
    assert counts[2] == 5 and abs(counts[0] - counts[1]) <= 1  # class 2 runs out, the others fill up
    assert variants.balanced_subset(y, 1000, seed=0).numel() == y.numel()
    with pytest.raises(ValueError):
        variants.balanced_subset(y, 0, seed=0)
    with pytest.raises(ValueError):
        variants.balanced_subset(y.float(), 5, seed=0)


class _MeanNet(torch.nn.Module):
    """Classifies by the sign of the image mean minus 0.5 (class 1 brighter), declared normalisation mean 0.5:
    a mask that removes the DC changes the prediction in the pixel convention, not in the normalised one."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5]))

    def forward(self, x):
        s = x.mean(dim=(1, 2, 3)) - 0.5
        return torch.stack([-s, s], dim=1)


def test_convention_table2_knows_the_dc_answer_and_its_intervals():
    n = 20
    y = torch.arange(n) % 2
    x = torch.where(y.view(-1, 1, 1, 1) == 1, 0.8, 0.2) * torch.ones(n, 1, 8, 8)
    xa = 1 - x  # flips every prediction
    m_dc_off = torch.ones(n, 1, 8, 8)
    m_dc_off[:, :, 0, 0] = 0
    t = variants.convention_table2(_MeanNet(), x, y, xa, {"normalised": m_dc_off, "pixel": m_dc_off})
    cells = t["cells"]
    # normalised: removing the DC sets the image mean to the normalisation mean 0.5 -> score 0 -> argmax 0
    # pixel: the image mean becomes 0 -> class 0 as well; class-1 images are then wrong under both
    assert cells["normalised"]["original"]["correct"] == n and cells["normalised"]["adversarial"]["correct"] == 0
    assert cells["pixel"]["masked"]["correct"] == n // 2
    # the complement M' keeps only the DC: the normalised convention leaves the mean as is (all right),
    # the pixel one too (DC kept) -> no difference, interval contains 0
    d = t["difference"]["complement"]
    assert d["pixel_minus_normalised"] == 0 and d["newcombe95"][0] <= 0 <= d["newcombe95"][1]
    for conv in variants.CONVENTIONS:
        for c in cells[conv].values():
            lo, hi = stats.wilson_interval(c["correct"], c["n"])
            assert c["wilson95"] == [lo, hi] and math.isclose(c["accuracy"], c["correct"] / n)
    rows = variants.summary_rows(t)
    assert len(rows) == len(t["difference"]) and "pixel - normalised (points)" in rows[0]
    with pytest.raises(ValueError):
        variants.convention_table2(_MeanNet(), x, y, xa, {"pixel": m_dc_off})


def test_convention_table2_differs_where_the_conventions_do():
    """A mask keeping only the DC on a normalised-mean network: in the pixel convention the filtered image is
    the image mean (correct class kept), in the normalised convention too; a mask with DC off flips class 1
    only in the pixel convention when the offset puts the mean back. Check the paired counts add up."""
    n = 10
    y = torch.ones(n, dtype=torch.long)
    x = 0.7 * torch.ones(n, 1, 8, 8) + 0.01 * torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    m = torch.zeros(n, 1, 8, 8)  # all-zero mask: pixel -> black image (class 0); normalised -> mean 0.5 (tie -> 0)
    m_keep = torch.ones(n, 1, 8, 8)
    t = variants.convention_table2(_MeanNet(), x, y, x, {"normalised": m_keep, "pixel": m})
    d = t["difference"]["masked"]
    assert d["both"] + d["pixel_only"] + d["normalised_only"] + d["neither"] == n
    assert d["pixel_minus_normalised"] == -1.0 and d["newcombe95"][1] < 0


def test_degenerate_masks_counts_dc_only_and_all_zero():
    m = torch.rand(6, 2, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.4
    m[0] = 0  # all zero
    m[1] = 0
    m[1, 0, 0, 0] = 1.0  # DC only (one channel)
    m[2] = 0
    m[2, :, 0, 0] = 0.3  # DC only (both channels)
    m[3] = 0
    m[3, 0, 0, 1] = 0.2  # one non-DC entry: not degenerate
    d = diagnostics.degenerate_masks(m)
    assert (d["all_zero"], d["dc_only"], d["degenerate"], d["n"]) == (1, 2, 3, 6)
    assert math.isclose(d["degenerate_pct"], 50.0)
    d5 = diagnostics.degenerate_masks(m, threshold=0.25)  # m[3]'s entry is now "off" -> all zero
    assert d5["all_zero"] == 2 and d5["threshold"] == 0.25
    with pytest.raises(ValueError):
        diagnostics.degenerate_masks(torch.zeros(0, 1, 4, 4))


def test_network_diagnostics_matches_a_direct_computation():
    net = make_tiny_cnn(1, 4, seed=0)
    x = torch.rand(13, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.arange(13) % 4
    d = diagnostics.network_diagnostics(net, x, y, batch_size=5)
    with torch.no_grad():
        logits = net(x)
    assert math.isclose(d["mean_cross_entropy"], float(torch.nn.functional.cross_entropy(logits, y)), rel_tol=1e-5)
    assert math.isclose(d["mean_max_softmax"], float(logits.softmax(1).max(1).values.mean()), rel_tol=1e-5)
    assert d["accuracy"] == int((logits.argmax(1) == y).sum()) / 13 and d["n"] == 13
    with pytest.raises(ValueError):
        diagnostics.network_diagnostics(net, x, y[:3])


def test_figures_have_the_papers_panels():
    k = 3
    g = torch.Generator().manual_seed(0)
    panels = {p: torch.rand(k, 1, 8, 8, generator=g) for p in psingles.FIG6_PANELS}
    fig = psingles.fig6_panels(panels, col_titles=["a", "b", "c"])
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels[:7] == list(psingles.FIG6_PANELS) and labels[7:] == ["mask value"]  # + the colour bar
    with pytest.raises(ValueError):
        psingles.fig6_panels({p: v for p, v in panels.items() if p != "(E) M(x_A)"})
    fig5 = psingles.class_masks_figure(torch.rand(2, 1, 8, 8, generator=g),
                                       [torch.rand(3, 1, 8, 8, generator=g)] * 2, ["dog", "cat"])
    assert [ax.get_title() for ax in fig5.axes[:4]] == ["class mask", "single 1", "single 2", "single 3"]
    with pytest.raises(ValueError):
        psingles.class_masks_figure(torch.rand(2, 1, 8, 8), [torch.rand(3, 1, 8, 8), torch.rand(2, 1, 8, 8)],
                                    ["a", "b"])
    fig7 = psingles.dominance_comparison({"paper": (np.full(4, 0.6), np.full(4, 0.5)),
                                          "code": (np.full(4, 0.4), np.full(4, 0.5))})
    assert [ax.get_title() for ax in fig7.axes] == ["paper", "paper", "code", "code"]


# ------------------------------------------------------------------------------------ cached stages
@pytest.fixture(scope="module")
def singles_run(fake_imagenette, tmp_path_factory):  # noqa: F811 - the imported fixture
    art = tmp_path_factory.mktemp("artifacts")
    res = tmp_path_factory.mktemp("results")
    prof = _profile(fake_imagenette)
    run = Run.from_profile(prof, artifacts=art, results_dir=res, progress=False)
    return {"run": run, "prof": prof, "art": art, "res": res}


def test_adversarial_pgd_kind_attacks_the_adversarial_network(singles_run):
    run = singles_run["run"]
    sel = run.single_image_selection()
    att = run.adversarial_attack()
    n = sel.images.shape[0]
    assert att["adv_images"].shape == sel.images.shape
    assert float((att["adv_images"] - sel.images).abs().max()) <= run.pgd_settings()["eps"] + 1e-6
    assert torch.equal(att["fooled"], att["adv_predictions"] != sel.labels)
    sm = run.single_image_masks(["adversarial_pgd"])["adversarial_pgd"]
    assert sm.masks.shape == (n, 1, 32, 32)
    assert torch.equal(sm.history["target"], att["adv_predictions"])
    assert "adversarial_pgd" in pipeline.SINGLE_MASK_KINDS
    # cached: a new Run on the same store loads both stages
    run2 = Run.from_profile(singles_run["prof"], artifacts=singles_run["art"], results_dir=singles_run["res"],
                            progress=False)
    sm2 = run2.single_image_masks(["adversarial_pgd"])["adversarial_pgd"]
    assert run2.provenance["single_image_masks.adversarial_pgd"] == "loaded"
    assert "single_image_adversarial_attack" not in run2.provenance  # a loaded mask needs no attack
    assert torch.equal(run2.adversarial_attack()["adv_images"], att["adv_images"])
    assert run2.provenance["single_image_adversarial_attack"] == "loaded"
    assert torch.equal(sm2.masks, sm.masks)


def test_pixel_masks_and_class_masks_stages(singles_run):
    run = singles_run["run"]
    sel = run.single_image_selection()
    idx = variants.balanced_subset(sel.labels, 2, seed=run.seed)
    pm = variants.pixel_single_masks(run, idx)
    assert set(pm) == {"vanilla", "pgd"}
    for r in pm.values():
        assert r.masks.shape == (idx.numel(), 1, 32, 32) and r.params["space"] == "pixel"
    assert torch.equal(pm["pgd"].history["target"], sel.adv_predictions[idx])
    with pytest.raises(ValueError):
        variants.pixel_single_masks(run, torch.tensor([10 ** 6]))
    cm = variants.class_dataset_masks(run)
    _, y = run.val_data()
    assert sorted(cm) == sorted(torch.unique(y).tolist())
    assert all(r.masks.shape == (1, 1, 32, 32) for r in cm.values())
    # same parameters -> loaded, identical
    run2 = Run.from_profile(singles_run["prof"], artifacts=singles_run["art"], results_dir=singles_run["res"],
                            progress=False)
    cm2 = variants.class_dataset_masks(run2)
    assert all(run2.provenance[f"variants.class_dataset_mask.vanilla.{k}"] == "loaded" for k in cm2)
    assert all(torch.equal(cm[k].masks, cm2[k].masks) for k in cm)
    t = variants.convention_table2(run.model("vanilla").model, sel.images[idx], sel.labels[idx],
                                   sel.adv_images[idx],
                                   {"normalised": run.single_image_masks(["vanilla"])["vanilla"].masks[idx],
                                    "pixel": pm["vanilla"].masks},
                                   {"normalised": run.single_image_masks(["pgd"])["pgd"].masks[idx],
                                    "pixel": pm["pgd"].masks})
    assert t["n"] == idx.numel() and "pgd_masked_pgd" in t["cells"]["pixel"]


def test_chapter8_conventions_rows_put_the_papers_values_beside_both():
    from fmask.book import tables
    from fmask.experiment.results import paper_values

    n = 20
    y = torch.arange(n) % 2
    x = torch.where(y.view(-1, 1, 1, 1) == 1, 0.8, 0.2) * torch.ones(n, 1, 8, 8)
    m = torch.ones(n, 1, 8, 8)
    m[:, :, 0, 0] = 0
    t = variants.convention_table2(_MeanNet(), x, y, 1 - x, {"normalised": m, "pixel": m})
    rows = tables.table2_conventions_rows(t)
    assert [r["cell"] for r in rows] == [tables.TABLE2_CONVENTION_LABELS[k] for k in
                                         ("original", "adversarial", "masked", "masked_adversarial", "complement",
                                          "masked_adversarial_binary")]
    paper = {e["column"]: e["value"] for e in paper_values() if e["table"] == "table2"}
    assert rows[3]["paper"] == paper["masked_adversarial"] and rows[5]["paper"] is None
    c = t["cells"]["pixel"]["masked"]
    assert rows[2]["pixel (%)"] == (f"{100 * c['accuracy']:.1f} [{100 * c['wilson95'][0]:.1f}, "
                                    f"{100 * c['wilson95'][1]:.1f}]")
    assert tables.table2_conventions_rows(None) == [] and tables.table2_conventions_rows({}) == []


def test_fig7_claim_decides_on_the_papers_masks_and_reports_the_codes():
    from fmask import claims

    rng = np.random.default_rng(0)
    van = rng.uniform(0.3, 0.6, 100)
    code = van - 0.1 + rng.normal(0, 0.02, 100)   # the code's M_A,X: less low-frequency energy
    paper = van + 0.1 + rng.normal(0, 0.02, 100)  # the paper's M_A,X_A: more
    res = {"single_image": {"per_image": {"low_share": {"vanilla": van.tolist(), "adversarial": code.tolist(),
                                                        "adversarial_pgd": paper.tolist()}}}}
    e = next(c for c in claims.evaluate_claims(res) if c["id"] == "fig7.adversarial_lower_frequency")
    assert e["verdict"] == claims.REPRODUCED and e["ours"] == pytest.approx(float(np.mean(paper - van)))
    cv = e["details"]["code_version"]
    assert cv["verdict"] == claims.NOT_REPRODUCED and cv["mean_difference"] == pytest.approx(float(np.mean(code - van)))
    # without the paper's masks the claim is undecided, whatever the code's comparison says
    del res["single_image"]["per_image"]["low_share"]["adversarial_pgd"]
    e = next(c for c in claims.evaluate_claims(res) if c["id"] == "fig7.adversarial_lower_frequency")
    assert e["verdict"] == claims.INCONCLUSIVE and e["missing"] and "code_version" in e["details"]


def test_paired_subset_learns_the_other_kinds_on_a_balanced_subset(fake_imagenette, tmp_path):  # noqa: F811
    """selection.n_paired: vanilla masks for every selected image, the other three kinds for a seeded
    class-balanced subset; row i of those belongs to selected image paired_subset()[i], and the masks are the
    ones the learner gives on exactly those images."""
    prof = _profile(fake_imagenette, **{"selection.n_images": 4, "selection.n_paired": 2})
    run = Run.from_profile(prof, artifacts=tmp_path / "a", results_dir=tmp_path / "r", progress=False)
    sel = run.single_image_selection()
    n = len(sel.labels)
    assert n == 4
    pi = run.paired_subset()
    assert pi.dtype == torch.long and pi.numel() == 2 and torch.equal(pi, torch.sort(pi).values)
    assert torch.equal(pi, variants.balanced_subset(sel.labels, 2, run.seed))
    sm = run.single_image_masks()
    assert sm["vanilla"].masks.shape[0] == n and "selection_indices" not in sm["vanilla"].params
    for w in ("adversarial", "pgd", "adversarial_pgd"):
        assert sm[w].masks.shape[0] == 2, w
        assert sm[w].params["selection_indices"] == pi.tolist()
    # the pgd kind = the learner on the paired images' PGD images with their targets
    learner = pipeline.PerImageMasks(run.model("vanilla").model, **pipeline.asdict(run.profile.single_mask),
                                     seed=run.seed, device="cpu", progress=False)
    direct = learner(sel.adv_images[pi], sel.adv_predictions[pi])
    assert torch.allclose(direct.masks, sm["pgd"].masks, atol=1e-5)
    # a different n_paired is a different artifact; null pairs every selected image
    full = Run.from_profile(_profile(fake_imagenette, **{"selection.n_images": 4, "selection.n_paired": None}),
                            artifacts=tmp_path / "a",
                            results_dir=tmp_path / "r", progress=False)
    assert torch.equal(full.paired_subset(), torch.arange(n))
    assert full.single_image_masks(["pgd"])["pgd"].masks.shape[0] == n
    assert full.provenance["single_image_masks.pgd"] == "computed"
    assert full.provenance["single_image_selection"] == "loaded"  # n_paired does not change the selection
