"""Second architecture (chapter 11): resnet_small, the compare profile section, fmask.experiment.compare, its figures and
the ledger's sec2.resnet_similar claim."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from fmask import claims

from fmask.experiment import compare
from fmask.models.zoo import ARCHS, ResNetSmall, build_model, resnet18
from fmask.experiment.profiles import list_profiles, load_profile
from fmask.data.regimes import PAPER_LETTERS, REGIMES
from fmask.training.fit import training_params


# ------------------------------------------------------------------------------------------ the network
def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_resnet_small_is_registered_and_maps_shapes():
    assert "resnet_small" in ARCHS
    torch.manual_seed(0)
    m = build_model("resnet_small", in_channels=1, num_classes=5, width_div=8).eval()
    sizes = []
    hooks = [stage.register_forward_hook(lambda mod, i, o: sizes.append(tuple(o.shape[1:])))
             for stage in m.net.layers]
    with torch.no_grad():
        out = m(torch.rand(3, 1, 64, 64))
    for h in hooks:
        h.remove()
    assert out.shape == (3, 5)
    # widths 64..512 / 8; at 64 px the stages see 32, 16, 8, 4 px (ResNet18 at 128 px: the same)
    assert sizes == [(w // 8, 64 // 2 ** (k + 1), 64 // 2 ** (k + 1)) for k, w in enumerate(ResNetSmall.WIDTHS)]


def test_resnet_small_full_width_differs_from_resnet18_only_in_the_stem():
    ours = ResNetSmall(in_channels=1, num_classes=5, width_div=1)
    ref = resnet18(in_channels=1, num_classes=5)
    stem_ref, stem_ours = ref.conv1.weight.numel(), ours.stem[0].weight.numel()
    assert (stem_ref, stem_ours) == (64 * 1 * 7 * 7, 64 * 1 * 3 * 3)
    assert _n_params(ours) == _n_params(ref) - stem_ref + stem_ours
    # narrowing by 8 divides every conv's weight count by 64 (in and out channels), except the 1-channel stem
    narrow = ResNetSmall(in_channels=1, num_classes=5, width_div=8)
    conv_w = lambda net: [c.weight.numel() for c in net.modules() if isinstance(c, nn.Conv2d)]  # noqa: E731
    full, small = conv_w(ours), conv_w(narrow)
    assert full[0] == 8 * small[0] and all(f == 64 * s for f, s in zip(full[1:], small[1:]))


def test_resnet_small_is_deterministic_given_the_seed():
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = build_model("resnet_small", width_div=16).eval()
        with torch.no_grad():
            outs.append(m(x))
    assert torch.equal(outs[0], outs[1])
    torch.manual_seed(4)
    other = build_model("resnet_small", width_div=16).eval()
    with torch.no_grad():
        assert not torch.equal(other(x), outs[0])


def test_stride2_shortcut_equals_torchvisions_1x1_stride2_conv():
    from fmask.models.zoo import _Subsample2

    torch.manual_seed(0)
    m = ResNetSmall(in_channels=1, num_classes=5, width_div=8).eval()
    down = m.layers[1][0].downsample  # first block of stage 2: stride 2, 8 -> 16 channels
    assert isinstance(down[0], _Subsample2)
    ref = nn.Conv2d(8, 16, kernel_size=1, stride=2, bias=False)
    ref.weight.data.copy_(down[1].weight.data)
    x = torch.rand(3, 8, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(down[1](down[0](x)), ref(x), atol=1e-6)


def test_channels_last_training_with_an_odd_batch_does_not_crash():
    """Regression (torch 2.14.1 CPU): a 1x1 stride-2 conv's channels_last backward with batch 63 corrupted memory.
    Run in a subprocess so that a crash fails this test instead of killing pytest."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from fmask.models.zoo import build_model\n"
        "torch.manual_seed(0)\n"
        "m = build_model('resnet_small', width_div=8).to(memory_format=torch.channels_last)\n"
        "opt = torch.optim.Adam(m.parameters(), 1e-3)\n"
        "for bs in (63, 17, 63, 1, 63):\n"
        "    x = torch.rand(bs, 1, 64, 64).contiguous(memory_format=torch.channels_last)\n"
        "    loss = torch.nn.functional.cross_entropy(m(x), torch.randint(0, 5, (bs,)))\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n"
        "print('ok')\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


@pytest.mark.parametrize("kw, match", [({"width_div": 3}, "divisor of 64"), ({"width_div": 0}, "divisor of 64"),
                                       ({"hidden": 4}, "only width_div")])
def test_resnet_small_rejects_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        build_model("resnet_small", **kw)


def test_resnet_small_rejects_tiny_inputs():
    m = build_model("resnet_small", width_div=16).eval()
    with pytest.raises(ValueError, match=">= 16"):
        m(torch.rand(1, 1, 8, 8))


# ------------------------------------------------------------------------------------------- profiles
def test_every_profile_has_a_compare_section_and_paper_uses_resnet18():
    for name in list_profiles():
        c = load_profile(name).compare
        assert c.arch in ARCHS and c.epochs >= 1 and c.n_images >= 1
    assert load_profile("paper").compare.arch == "resnet18"
    assert load_profile("cpu").compare.n_images >= 150


def test_compare_section_validates():
    with pytest.raises(ValueError, match="compare.arch"):
        load_profile("smoke", {"compare.arch": "resnet50"})
    with pytest.raises(ValueError, match="compare.width_div"):
        load_profile("smoke", {"compare.arch": "resnet18", "compare.width_div": 8})


def test_second_profile_differs_only_in_model_and_training_length_and_keys_apart():
    p = load_profile("cpu")
    q = compare.second_profile(p)
    assert q.model.arch == p.compare.arch and q.model.width_div == p.compare.width_div
    assert q.train.epochs == p.compare.epochs
    assert q.dataset_mask.epochs == (p.compare.dataset_mask_epochs or p.dataset_mask.epochs)
    for sec in ("data", "selection", "analysis", "single_mask"):
        assert q[sec] == p[sec]
    assert {k: v for k, v in q["train"].items() if k != "epochs"} == {
        k: v for k, v in p["train"].items() if k != "epochs"}
    for r in REGIMES:
        a, b = training_params(r, p, "hash"), training_params(r, q, "hash")
        assert a != b and a["model"] != b["model"]
        assert {k: v for k, v in a.items() if k not in ("model", "train")} == {
            k: v for k, v in b.items() if k not in ("model", "train")}
    # the second run's artifacts are told apart by the model section even with equal epochs
    same_epochs = compare.second_profile(load_profile("cpu", {"compare.epochs": p.train.epochs}))
    assert training_params("vanilla", p, "h") != training_params("vanilla", same_epochs, "h")


# -------------------------------------------------------------------------------------------- subsets
def test_balanced_subset_is_seeded_and_balanced():
    y = torch.tensor([0] * 50 + [1] * 7 + [2] * 30 + [3] * 40)
    a = compare.balanced_subset(y, 40, seed=0)
    assert torch.equal(a, compare.balanced_subset(y, 40, seed=0))
    assert not torch.equal(a, compare.balanced_subset(y, 40, seed=1))
    assert a.numel() == 40 and a.unique().numel() == 40 and torch.equal(a, a.sort().values)
    counts = torch.bincount(y[a], minlength=4).tolist()
    assert counts[1] == 7  # the small class is used up, the others fill in evenly
    others = [counts[0], counts[2], counts[3]]
    assert max(others) - min(others) <= 1 and sum(others) == 40 - 7
    assert compare.balanced_subset(y, 10_000, seed=0).numel() == y.numel()
    with pytest.raises(ValueError, match="positive"):
        compare.balanced_subset(y, 0, seed=0)


# ------------------------------------------------------------------------------------ radial summary
def test_radial_summary_delta_low_matches_the_shares():
    g = torch.Generator().manual_seed(0)
    masks = {r: torch.rand(1, 1, 16, 16, generator=g) for r in REGIMES}
    s = compare.radial_summary(masks, 8)
    for r in REGIMES[1:]:
        diff = np.array(s["radial_difference"][r])
        assert np.allclose(diff, np.array(s["radial_share"][r]) - np.array(s["radial_share"]["vanilla"]))
        assert s["delta_low"][r] == pytest.approx(diff[:4].sum())
    same = compare.radial_summary({"vanilla": masks["vanilla"], "rotate": masks["vanilla"].clone()}, 8)
    assert same["delta_low"]["rotate"] == 0.0
    with pytest.raises(ValueError, match="reference"):
        compare.radial_summary({"rotate": masks["rotate"]}, 8)


# ------------------------------------------------------------------------------------------- verdict
def _summary(delta_low, t1_gap, masked, complement, adversarial, masked_adversarial):
    return {"energies": {"delta_low": dict(zip(REGIMES[1:], delta_low))},
            "table1": {r: {"standard": 0.6, "masked": 0.6 + t1_gap} for r in REGIMES},
            "table2": {"masked": masked, "complement": complement, "adversarial": adversarial,
                       "masked_adversarial": masked_adversarial}}


def test_similarity_verdict_follows_the_rule():
    vgg = _summary([0.01, 0.02, -0.01, -0.03], 0.01, 0.9, 0.3, 0.0, 0.5)
    items = compare.similarity_items(vgg, copy.deepcopy(vgg), margin=0.05)
    assert len(items) == 7 and all(i["agree"] for i in items)
    assert compare.similarity_verdict(items)["verdict"] == compare.SIMILAR
    one_off = _summary([-0.01, 0.02, -0.01, -0.03], 0.01, 0.9, 0.3, 0.0, 0.5)
    v = compare.similarity_verdict(compare.similarity_items(vgg, one_off, 0.05))
    assert (v["verdict"], v["disagree"]) == (compare.MIXED, [f"delta_low_sign.{PAPER_LETTERS['adversarial']}"])
    flipped = _summary([-0.01, -0.02, 0.01, 0.03], 0.2, 0.9, 0.3, 0.0, 0.5)
    v = compare.similarity_verdict(compare.similarity_items(vgg, flipped, 0.05))
    assert v["verdict"] == compare.DIFFERENT and v["n_disagree"] == 5
    # float rounding of equal shares is a 0, not a sign
    tiny = _summary([1e-15, 0.02, -0.01, -0.03], 0.01, 0.9, 0.3, 0.0, 0.5)
    assert compare.similarity_items(tiny, tiny, 0.05)[0]["first"] == 0
    missing = compare.similarity_items(vgg, {"table1": vgg["table1"]}, 0.05)
    assert compare.similarity_verdict(missing)["verdict"] == compare.MIXED
    with pytest.raises(ValueError):
        compare.similarity_items(vgg, vgg, margin=2.0)


# ------------------------------------------------------------------------------------------- the claim
def _claim(results):
    return next(e for e in claims.evaluate_claims(results) if e["id"] == "sec2.resnet_similar")


def test_arch_claim_reads_architectures_json():
    vgg = _summary([0.01, 0.02, -0.01, -0.03], 0.01, 0.9, 0.3, 0.0, 0.5)
    for other, verdict in ((copy.deepcopy(vgg), claims.REPRODUCED),
                           (_summary([-0.01, 0.02, -0.01, -0.03], 0.01, 0.9, 0.3, 0.0, 0.5), claims.INCONCLUSIVE),
                           (_summary([-0.01, -0.02, 0.01, 0.03], 0.2, 0.9, 0.3, 0.0, 0.5), claims.NOT_REPRODUCED)):
        items = compare.similarity_items(vgg, other, 0.05)
        e = _claim({"architectures": {"values": {"items": items, "first": vgg, "second": other},
                                      "meta": {"first": "vgg", "second": "resnet"}}})
        assert e["verdict"] == verdict and e["chapter"] == "11_architectures"
        assert e["ours"] == pytest.approx(sum(i["agree"] is True for i in items) / len(items))
        assert e["n"] == len(items)
    e = _claim({})
    assert e["verdict"] == claims.INCONCLUSIVE and e["missing"]
    assert claims.CLAIMS[-1]["id"] == "sec2.resnet_similar"


def test_arch_claim_is_inconclusive_when_the_premise_of_comparable_accuracy_fails():
    vgg = _summary([0.01, 0.02, -0.01, -0.03], 0.01, 0.9, 0.3, 0.0, 0.5)
    items = compare.similarity_items(vgg, copy.deepcopy(vgg), 0.05)  # every item agrees
    weak = copy.deepcopy(vgg)
    for r in REGIMES:
        weak["table1"][r]["standard"] = 0.6 - 0.051  # just over 5 points below the main network
    e = _claim({"architectures": {"values": {"items": items, "first": vgg, "second": weak}, "meta": {}}})
    assert e["verdict"] == claims.INCONCLUSIVE and "premise fails" in e["details"]["premise"]
    weak_ok = copy.deepcopy(vgg)
    for r in REGIMES:
        weak_ok["table1"][r]["standard"] = 0.6 - 0.049
    e = _claim({"architectures": {"values": {"items": items, "first": vgg, "second": weak_ok}, "meta": {}}})
    assert e["verdict"] == claims.REPRODUCED and "premise" not in e["details"]
    e = _claim({"architectures": {"values": {"items": items}, "meta": {}}})  # accuracies not recorded
    assert e["verdict"] == claims.INCONCLUSIVE and any("premise" in m for m in e["missing"])


# ------------------------------------------------------------------------------------------- figures
def test_compare_figures_render():
    from fmask import plots

    g = torch.Generator().manual_seed(0)
    masks = {f"({PAPER_LETTERS[r]})": torch.rand(1, 1, 16, 16, generator=g) for r in REGIMES}
    figs = [
        plots.architecture_masks_grid({"vgg": masks, "resnet": masks}),
        plots.architecture_band_curves({"vgg": {"B−A": [0.1, -0.1]}, "resnet": {"B−A": [0.0, 0.1]}}),
        plots.architecture_accuracy_bars({"vgg": {"M(X)": 0.9}, "resnet": {"M(X)": 0.8}},
                                         {"vgg": {"M(X)": (0.8, 0.95)}, "resnet": {"M(X)": (0.7, 0.9)}}),
    ]
    from fmask.plots.style import FONT_PT, MAX_WIDTH_IN

    for f in figs:
        assert f.get_figwidth() <= MAX_WIDTH_IN + 1e-9
        f.canvas.draw()
        sizes = [t.get_fontsize() for ax in f.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label,
                                                            *ax.get_xticklabels(), *ax.get_yticklabels())
                 if t.get_text()]
        assert sizes and min(sizes) >= FONT_PT
        data, size = f._repr_png_()
        assert data[:4] == b"\x89PNG" and 0 < size["width"] <= 7.2 * 96
    with pytest.raises(ValueError, match="lacks"):
        plots.architecture_masks_grid({"vgg": masks, "resnet": {"(A)": masks["(A)"]}})


def test_accuracy_gaps_checks_the_papers_premise_regime_by_regime():
    from fmask.experiment.compare import accuracy_gaps

    a = {"vanilla": {"val_acc": 0.80}, "scale": {"val_acc": 0.70}, "rotate": {"val_acc": 0.60}}
    b = {"vanilla": {"val_acc": 0.47}, "scale": {"val_acc": 0.68}}  # rotate only in the first: not compared
    g = accuracy_gaps(a, b, 0.05)
    assert g["gaps"] == pytest.approx({"vanilla": 0.33, "scale": 0.02})
    assert (g["within"], g["worst"], g["holds"]) == (["scale"], "vanilla", False)
    assert accuracy_gaps(a, {"scale": {"val_acc": 0.72}}, 0.05)["holds"] is True
    assert accuracy_gaps(a, {}, 0.05) == {"gaps": {}, "within": [], "worst": None, "holds": False}
    with pytest.raises(ValueError, match="margin"):
        accuracy_gaps(a, b, -0.1)
