"""fmask.models.zoo and fmask.training.attacks: architectures, the [0, 1] wrapper, PGD in pixel units."""
from __future__ import annotations

import pytest
import torch

from fmask.training.attacks import DEFAULT_EPS, PGD, robust_accuracy
from fmask.models.zoo import Normalized, build_model


def test_vgg11_bn_layout_on_meta_device():
    """The paper's VGG11-bn (built on the meta device: its 100M-parameter head is slow to initialise on CPU)."""
    with torch.device("meta"):
        m = build_model("vgg11_bn", in_channels=1, num_classes=5)
    convs = [l for l in m.net.features if isinstance(l, torch.nn.Conv2d)]
    assert len(convs) == 8 and convs[0].in_channels == 1 and convs[0].out_channels == 64
    assert sum(isinstance(l, torch.nn.BatchNorm2d) for l in m.net.features) == 8
    assert m.net.classifier[-1].out_features == 5


@pytest.mark.parametrize("arch,kw,size", [("resnet18", {}, 32), ("vgg_small", {"width_div": 16}, 32)])
def test_build_model_shapes(arch, kw, size):
    torch.manual_seed(0)
    m = build_model(arch, in_channels=1, num_classes=5, **kw).eval()
    assert isinstance(m, Normalized)
    with torch.no_grad():
        out = m(torch.rand(2, 1, size, size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    first = m.net.features[0] if arch != "resnet18" else m.net.conv1
    assert first.in_channels == 1


def test_rgb_and_seeded_init():
    torch.manual_seed(3)
    a = build_model("vgg_small", in_channels=3, num_classes=4, width_div=16)
    torch.manual_seed(3)
    b = build_model("vgg_small", in_channels=3, num_classes=4, width_div=16)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a(torch.rand(1, 3, 32, 32)).shape == (1, 4)


def test_normalized_applies_mean_std():
    net = torch.nn.Identity()
    m = Normalized(net, (0.449,), (0.226,))
    x = torch.full((1, 1, 2, 2), 0.449 + 0.226)
    assert torch.allclose(m(x), torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        m(torch.rand(1, 3, 2, 2))


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("vgg19")
    with pytest.raises(ValueError, match="width_div"):
        build_model("vgg_small", width_div=5)
    with pytest.raises(ValueError, match="no extra options"):
        build_model("resnet18", width_div=4)


def test_pgd_pixel_units_within_eps_and_hurts():
    torch.manual_seed(0)
    m = build_model("vgg_small", num_classes=5, width_div=16).eval()
    x = torch.rand(8, 1, 32, 32)
    y = m(x).argmax(1).detach()
    atk = PGD(m, steps=5)
    assert atk.eps == DEFAULT_EPS and atk.alpha == pytest.approx(DEFAULT_EPS / 8)
    adv = atk(x, y)
    d = (adv - x).abs()
    assert adv.min() >= 0 and adv.max() <= 1
    assert d.max() <= DEFAULT_EPS + 1e-6 and d.max() > DEFAULT_EPS / 2  # really moved, inside the ball
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert ce(m(adv), y) > ce(m(x), y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        atk(x * 3, y)
    # a linear classifier: a 0.05 L-inf budget flips its decisions
    lin = Normalized(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 5)), (0.449,), (0.226,)).eval()
    yl = lin(x).argmax(1).detach()
    r = robust_accuracy(lin, x, yl, eps=0.05, steps=5, seed=0)
    assert r["clean_acc"] == 1.0 and r["robust_acc"] < 0.5 and r["n"] == 8
    assert robust_accuracy(lin, x, yl, eps=0.05, steps=5, seed=0) == r  # seeded
    assert robust_accuracy(lin, x, yl, eps=1e-6, steps=1, seed=0)["robust_acc"] == 1.0


def test_pgd_settings_one_rule_for_training_metrics_and_analyses():
    from fmask.training.attacks import PGDSettings, pgd_settings
    from fmask.experiment.profiles import load_profile

    cpu = load_profile("cpu")
    # training metric: robust_eval_steps with its own (null -> eps/8) alpha, not the training step eps/4
    s = pgd_settings(cpu.train)
    assert s == PGDSettings(eps=cpu.train.adv_eps, alpha=cpu.train.adv_eps / 8, steps=10)
    # analyses: analysis.pgd_steps with pgd_alpha null -> eps/8 (not the training adv_alpha = eps/4)
    a = pgd_settings(cpu.train, cpu.analysis)
    assert a.steps == cpu.analysis.pgd_steps == 10 and a.alpha == pytest.approx(cpu.train.adv_eps / 8)
    smoke = load_profile("smoke")  # nothing set for evaluation: the training attack
    assert pgd_settings(smoke.train, smoke.analysis).as_dict() == {
        "eps": smoke.train.adv_eps, "alpha": smoke.train.adv_eps / 8, "steps": smoke.train.adv_steps}
    assert pgd_settings({"adv_eps": 0.02, "adv_steps": 5, "adv_alpha": 0.01}).alpha == 0.01
    assert pgd_settings(None) == PGDSettings(eps=DEFAULT_EPS, alpha=DEFAULT_EPS / 8, steps=10)
    assert pgd_settings({"adv_eps": 0.02}, {"pgd_eps": 0.05}).eps == 0.05
    with pytest.raises(ValueError, match="eps > 0"):
        pgd_settings({"adv_eps": -1.0})


def test_pgd_result_does_not_depend_on_the_input_layout_rgb():
    """PGD attacks a channels_last copy of the images: for RGB images, where NCHW and NHWC
    differ in memory, both input layouts give the same adversarial values, and the result keeps the
    caller's layout; the model's weights keep their layout."""
    torch.manual_seed(0)
    m = build_model("vgg_small", in_channels=3, num_classes=5, width_div=16).eval()
    strides = [p.stride() for p in m.parameters()]
    x = torch.rand(4, 3, 32, 32)
    y = m(x).argmax(1).detach()
    outs = []
    for xx in (x, x.contiguous(memory_format=torch.channels_last)):
        with torch.random.fork_rng():
            torch.manual_seed(5)
            outs.append(PGD(m, steps=3)(xx, y))
    assert torch.equal(outs[0], outs[1]) and (outs[0] - x).abs().max() > 0
    assert outs[0].is_contiguous() and outs[1].is_contiguous(memory_format=torch.channels_last)
    assert [p.stride() for p in m.parameters()] == strides


def test_describe_training_attack_names_fgsm_rs_and_pgd():
    from fmask.training.attacks import describe_training_attack
    from fmask.experiment.profiles import load_profile

    one = describe_training_attack(0.0136, 1, 0.017)
    assert one.startswith("FGSM with random start") and "1.25 ε" in one
    assert describe_training_attack(0.0136, 1, 0.001).startswith("one PGD step")  # α < ε: not Wong et al.'s FGSM-RS
    assert describe_training_attack(0.0136, 10, None) == "PGD: 10 steps of size 0.0017 = ε/8 within ε = 0.0136"
    assert "5 steps" in describe_training_attack(0.0136, 5, 0.0034) and "ε/4" in describe_training_attack(0.0136, 5, 0.0034)
    for bad in ((0.0, 1, None), (0.01, 0, None), (0.01, 2, -1.0)):
        with pytest.raises(ValueError):
            describe_training_attack(*bad)
    # the cpu profile trains one-step (time budget), the paper profile with the original code's 10 steps
    t = load_profile("cpu").train
    assert t.adv_steps == 1 and t.adv_alpha >= t.adv_eps
    assert load_profile("paper").train.adv_steps == 10


def test_compare_training_attacks_gives_the_difference_its_interval_and_the_speedup():
    from fmask.training.attacks import compare_training_attacks
    from fmask.analysis.stats import newcombe_interval

    runs = {"one": {"pgd_robust_acc": 0.532, "pgd_n": 500, "seconds": 343.0},
            "five": {"pgd_robust_acc": 0.542, "pgd_n": 500, "seconds": 838.0}}
    c = compare_training_attacks(runs, "one", "five")
    assert c["difference"] == pytest.approx(-0.010)
    assert c["interval"] == pytest.approx(tuple(newcombe_interval(266, 500, 271, 500)))
    assert c["interval"][0] < c["difference"] < c["interval"][1]
    assert c["speedup"] == pytest.approx(838 / 343)
    assert (c["first"]["n"], c["second"]["robust"]) == (500, 0.542)
    with pytest.raises(KeyError, match="no run 'x'"):
        compare_training_attacks(runs, "x", "five")
    with pytest.raises(KeyError, match="lacks"):
        compare_training_attacks({"a": {"pgd_n": 5}, "five": runs["five"]}, "a", "five")
    with pytest.raises(ValueError, match="pgd_n must be"):
        compare_training_attacks({"a": {**runs["one"], "pgd_n": 0}, "five": runs["five"]}, "a", "five")
