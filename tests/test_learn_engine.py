"""fmask.learners's engine: the class API, per-mask Adam and compaction, channels_last / bf16 paths, space,
schedules, stopping rules and the result payload."""
from __future__ import annotations

import copy
import inspect
import math

import pytest
import torch

from fmask.learners import DatasetMask, MaskResult, PerImageMasks, learn_masks
from fmask.core.objective import DatasetStopping, per_image_count
from fmask.core.schedule import (make_onecycle, onecycle_at, onecycle_lr_trace, onecycle_tensor,
                                  original_single_image_beta1)
from fmask.core.mask import filter_images, pixel_offset
from fmask.models.zoo import Normalized

from conftest import make_tiny_cnn

S = 16


def _images(n, seed=0, size=S):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def _normalized_tiny(seed=0):
    return Normalized(make_tiny_cnn(1, 3, seed=seed), (0.449,), (0.226,)).eval()


# ------------------------------------------------------------------------------------------------ API
def test_every_default_and_check_comes_from_core_objective():
    """The learners, learn_masks, the profile sections and the dataset stopping rule read their defaults from
    fmask.core.objective's one table; λ, counts and precision fail with the same message in a learner and in
    a profile; the precision vocabulary is one (exact / fast, and auto resolved per device)."""
    from fmask.core import objective as O
    from fmask.experiment.profile_schema import DatasetMaskSection, SingleMaskSection
    from fmask.experiment.profiles import load_profile
    from fmask.learners import DEFAULTS

    per = inspect.signature(PerImageMasks).parameters
    ds = inspect.signature(DatasetMask).parameters
    for key, value in O.PER_IMAGE_DEFAULTS.items():
        assert DEFAULTS["per_image"][key] == value
        if key != "lr":  # the learner's lr default depends on the schedule (None)
            assert per[key].default == value == getattr(SingleMaskSection(), key)
    for key, value in O.DATASET_DEFAULTS.items():
        assert DEFAULTS["dataset"][key] == value
        if key != "pct_start":
            assert ds[key].default == value == getattr(DatasetMaskSection(), key)
    assert O.DatasetStopping(50.0).patience == O.DATASET_DEFAULTS["patience"]
    model = make_tiny_cnn(1, 3)
    assert PerImageMasks(model).lr == O.PER_IMAGE_DEFAULTS["lr"]
    for bad, msg in ((dict(lam=-0.5), "lam.* must be >= 0, got -0.5"), (dict(steps=0), "steps must be a positive integer"),
                     (dict(precision="bf16"), r"precision must be one of \['auto', 'exact', 'fast'\]")):
        with pytest.raises(ValueError, match=msg):
            PerImageMasks(model, **bad)
    with pytest.raises(ValueError, match=r"single_mask\.lam must be >= 0, got -0\.5"):
        load_profile("smoke", {"single_mask.lam": -0.5})
    with pytest.raises(ValueError, match=r"single_mask\.precision must be one of \['exact', 'fast'\]"):
        load_profile("smoke", {"single_mask.precision": "auto"})  # a mask key names the arithmetic
    with pytest.raises(ValueError, match=r"train\.precision must be one of \['auto', 'exact', 'fast'\]"):
        load_profile("smoke", {"train.precision": "half"})
    assert PerImageMasks(model, precision="auto", device="cpu").precision == "exact"
    assert O.resolve_precision("auto", "cuda") == "fast" and O.resolve_precision("exact", "cuda") == "exact"


def test_constructor_arguments_are_the_profile_keys_with_paper_defaults():
    per = inspect.signature(PerImageMasks).parameters
    ds = inspect.signature(DatasetMask).parameters
    for key in ("lam", "lr", "steps", "patience", "batch_size", "schedule", "space", "precision"):
        assert key in per
    for key in ("lam", "lr", "epochs", "patience", "batch_size", "schedule", "space", "precision"):
        assert key in ds
    assert (per["lam"].default, per["steps"].default, per["patience"].default) == (0.07, 20000, 300)
    assert (ds["lam"].default, ds["lr"].default, ds["epochs"].default, ds["patience"].default,
            ds["batch_size"].default, ds["schedule"].default) == (0.2, 1e-3, 100, 7, 1, "onecycle")
    model = make_tiny_cnn(1, 3)
    assert PerImageMasks(model).lr == 0.01 and PerImageMasks(model, schedule="original").lr == 0.2
    for bad in (dict(schedule="onecycle"), dict(space="fourier"), dict(precision="half"), dict(steps=0),
                dict(lam=-1.0), dict(lr=0.0), dict(batch_size=0), dict(log_every=0)):
        with pytest.raises(ValueError):
            PerImageMasks(model, **bad)
    with pytest.raises(ValueError, match="schedule"):
        DatasetMask(model, schedule="original")
    with pytest.raises(ValueError, match="normalised"):
        PerImageMasks(model, space="normalised")  # a plain module declares no normalisation


def test_targets_out_of_the_models_classes_raise():
    model = make_tiny_cnn(1, 3)
    x = _images(2)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        PerImageMasks(model, steps=1, progress=False)(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        DatasetMask(model, epochs=1, progress=False)(x, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="integer"):
        PerImageMasks(model, steps=1, progress=False)(x, torch.tensor([0.0, 1.0]))


def test_class_call_equals_learn_masks_and_records_settings():
    model = _normalized_tiny()
    x = _images(3, seed=1)
    a = PerImageMasks(model, lr=0.05, steps=5, batch_size=2, progress=False)(x)
    b = learn_masks(model, x, per_image=True, lr=0.05, steps=5, batch_size=2, progress=False)
    assert torch.equal(a.masks, b.masks) and a.params == b.params
    assert a.params["space"] == "normalised" and a.params["precision"] == "exact"
    d = DatasetMask(model, lr=0.05, epochs=2, batch_size=3, progress=False)(x)
    assert d.masks.shape == (1, 1, S, S) and d.params["space"] == "normalised" and d.params["epochs"] == 2


def test_callers_model_is_never_modified():
    model = _normalized_tiny().train()
    state = copy.deepcopy(model.state_dict())
    next(model.parameters()).requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    PerImageMasks(model, lr=0.05, steps=3, progress=False, precision="fast")(_images(2))
    DatasetMask(model, lr=0.05, epochs=1, batch_size=2, progress=False)(_images(2))
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    conv = model.net.body[3].weight  # (16, 8, 3, 3): the two memory formats differ
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=torch.channels_last)
    assert all(p.grad is None for p in model.parameters())


def test_final_prediction_uses_the_learning_filter():
    """history['prediction'] is the model's prediction on the image filtered with the returned mask in the
    learning space (normalised: with the offset (1 − M[c,0,0])·μ_c)."""
    model = _normalized_tiny(seed=2)
    x = _images(6, seed=3)
    for space in ("normalised", "pixel"):
        r = PerImageMasks(model, lr=0.2, steps=20, batch_size=4, space=space, progress=False)(x)
        off = pixel_offset(model, space)
        with torch.no_grad():
            pred = model(filter_images(x, r.masks, offset=off)).argmax(1)
        assert torch.equal(pred, r.history["prediction"])


# ------------------------------------------------------------------------------------------- compaction
def _mixed_images():
    x = _images(7, seed=4)
    x[[1, 4]] = 0.0  # constant images: only the sparsity term acts, their masks converge early
    return x


@pytest.mark.parametrize("schedule", ["constant", "original"])
def test_compaction_equals_fixed_chunks_and_one_by_one(schedule):
    """Masks leave the batch when they stop and queued images take their slots, each slot with its own Adam
    moments and step count (and, for the original schedule, its own position in the lr/β₁ schedule): the masks,
    step counts and stopping flags equal learning each image alone (float rounding of the batched network)."""
    model = make_tiny_cnn(1, 3, seed=0)
    x = _mixed_images()
    lr = 0.1 if schedule == "constant" else 2.0  # 'original' starts at lr/25 = 0.08
    kw = dict(lam=0.07, lr=lr, steps=40, patience=5, schedule=schedule, progress=False)
    comp = PerImageMasks(model, batch_size=3, log_every=3, **kw)(x)
    fixed = PerImageMasks(model, batch_size=3, log_every=3, compaction=False, **kw)(x)
    alone = [PerImageMasks(model, batch_size=1, log_every=1, **kw)(x[i:i + 1]) for i in range(len(x))]
    assert comp.converged[[1, 4]].all() and int(comp.steps[1]) < 40, "nothing converged early: vacuous"
    assert not comp.converged.all()
    for other in [fixed] + [None]:
        ref_m = fixed.masks if other is not None else torch.cat([a.masks for a in alone])
        ref_s = fixed.steps if other is not None else torch.cat([a.steps for a in alone])
        ref_c = fixed.converged if other is not None else torch.cat([a.converged for a in alone])
        assert torch.equal(comp.steps, ref_s) and torch.equal(comp.converged, ref_c)
        torch.testing.assert_close(comp.masks, ref_m, atol=1e-5, rtol=0)
    assert (1 - comp.masks).abs().mean() > 1e-2  # the masks did move


def test_results_do_not_depend_on_log_every():
    model = make_tiny_cnn(1, 3, seed=0)
    x = _mixed_images()
    kw = dict(lam=0.07, lr=0.1, steps=30, patience=4, batch_size=3, progress=False)
    runs = [PerImageMasks(model, log_every=k, **kw)(x) for k in (1, 5, 1000)]
    for r in runs[1:]:
        assert torch.equal(r.steps, runs[0].steps) and torch.equal(r.converged, runs[0].converged)
        torch.testing.assert_close(r.masks, runs[0].masks, atol=1e-5, rtol=0)
        for k in runs[0].history:
            torch.testing.assert_close(r.history[k], runs[0].history[k], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------- precision
def test_exact_channels_last_and_bn_folding_equal_the_plain_network():
    """precision='exact' runs a private copy in float32 with BN folded into the convolutions and channels_last
    tensors: the same masks as the plain contiguous network up to float rounding. Bound 1e-5 on |ΔM| after 15
    steps at lr 0.05 (measured: 6e-8)."""
    from fmask.learners.base import fuse_conv_bn
    from fmask.models.zoo import build_model

    torch.manual_seed(0)
    model = build_model("vgg_small", in_channels=1, num_classes=5, width_div=16).eval()
    assert fuse_conv_bn(copy.deepcopy(model)) == 8  # vgg_small: 8 conv-bn pairs
    x = _images(4, seed=5, size=32)
    kw = dict(lam=0.07, lr=0.05, steps=15, patience=1000, batch_size=4, progress=False)
    fast_path = PerImageMasks(model, **kw)(x)
    plain = PerImageMasks(model, channels_last=False, fuse_bn=False, **kw)(x)
    assert fast_path.params["channels_last"] and fast_path.params["fuse_bn"] and not plain.params["fuse_bn"]
    d = (fast_path.masks - plain.masks).abs().max().item()
    print(f"exact (channels_last + BN folded) vs plain: max |dM| = {d:.3g}")
    torch.testing.assert_close(fast_path.masks, plain.masks, atol=1e-5, rtol=0)
    assert torch.equal(fast_path.history["prediction"], plain.history["prediction"])
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 8  # the caller's model: unfolded


def test_fast_bf16_masks_close_to_exact(planted):
    """precision='fast': bf16 autocast for the network only. On a trained network (where the invariance term
    matters) the relative error of the learned change, ‖M_fast − M_exact‖ / ‖1 − M_exact‖, stays below 1e-2
    (measured 6.8e-5 here, lam 0.07, 40 steps; 1.6e-4 at lam 0.01) and the final predictions agree."""
    model, (xt, yt) = planted["model"], planted["test"]
    x = xt[:8]
    kw = dict(lam=0.07, lr=0.05, steps=40, patience=1000, batch_size=8, progress=False)
    exact = PerImageMasks(model, **kw)(x)
    fast = PerImageMasks(model, precision="fast", **kw)(x)
    assert fast.params["precision"] == "fast"
    change = 1 - exact.masks
    rel = ((fast.masks - exact.masks).norm() / change.norm()).item()
    print(f"fast vs exact: rel dM = {rel:.3g}, |1 - M| mean = {change.abs().mean():.3g}")
    assert change.abs().mean() > 1e-2
    assert 0 < rel < 1e-2  # > 0: the bf16 path really ran
    assert torch.equal(fast.history["prediction"], exact.history["prediction"])


# ------------------------------------------------------------------------------------------- schedules
def test_onecycle_matches_torch_lr_and_beta1_in_both_phases():
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=50, pct_start=0.1)
    steps = torch.arange(50)
    lr_t, b1_t = onecycle_tensor(steps, 1e-3, 50, 0.1)
    for s in range(50):
        lr, b1 = onecycle_at(s, 1e-3, 50, 0.1)
        assert math.isclose(opt.param_groups[0]["lr"], lr, rel_tol=1e-9)
        assert math.isclose(opt.param_groups[0]["betas"][0], b1, rel_tol=1e-9)
        assert math.isclose(float(lr_t[s]), lr, rel_tol=1e-12) and math.isclose(float(b1_t[s]), b1, rel_tol=1e-12)
        opt.step()
        sch.step()
    assert math.isclose(original_single_image_beta1(0), 0.95) and 0.948 < original_single_image_beta1(19999) < 0.95
    sched = make_onecycle(torch.optim.Adam([torch.zeros(1, requires_grad=True)]), "onecycle", 1e-3, 20)
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
    assert make_onecycle(opt, "constant", 1e-3, 10) is None
    with pytest.raises(ValueError, match="one-cycle"):  # torch would divide by zero
        make_onecycle(opt, "onecycle", 1e-3, 10)


def test_onecycle_lr_trace_equals_report_copy():
    from fmask.experiment import results as report

    ours = onecycle_lr_trace(0.2, epochs=10, steps_per_epoch=10, pct_start=0.1, steps_taken=100)
    theirs = report.onecycle_lr_trace(0.2, epochs=10, steps_per_epoch=10, pct_start=0.1, steps_taken=100)
    assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15) for a, b in zip(ours, theirs))


# ------------------------------------------------------------------------------------------- stopping
def test_per_image_counter_rule():
    count = torch.tensor([0, 2, 2, 2, 2])
    eligible = torch.tensor([True, True, True, True, False])
    same = torch.tensor([True, True, False, True, True])
    d_inv = torch.tensor([0.0, 5e-7, 0.0, 2e-6, 0.0])
    d_sp = torch.tensor([0.0, -5e-6, 0.0, 0.0, 0.0])
    out = per_image_count(count, eligible, same, d_inv, d_sp)
    # +1 when both small; unchanged when the prediction differs or not eligible; reset when a change is large
    assert out.tolist() == [1, 3, 2, 0, 2]


def test_dataset_stopping_rule():
    rule = DatasetStopping(initial_accuracy=80.0, patience=2)
    assert rule.update(90.0, 0.5) == (False, False)           # epoch 1: never a snapshot
    assert rule.update(79.5, 0.5) == (True, False) and rule.count == 1   # 79.5 ≥ 0.99·80, Δsp = 0
    assert rule.update(70.0, 0.5) == (False, False) and rule.count == 1  # accuracy too low: unchanged
    assert rule.update(80.0, 0.4) == (True, False) and rule.count == 0   # sparsity moved: reset
    assert rule.update(80.0, 0.4) == (True, False) and rule.count == 1
    assert rule.update(80.0, 0.4 + 5e-6) == (True, True)


# ------------------------------------------------------------------------------------------- result
def test_payload_is_the_one_serialisation(tmp_path):
    r = PerImageMasks(make_tiny_cnn(1, 3), lr=0.05, steps=3, progress=False)(_images(2))
    p = r.to_payload()
    back = MaskResult.from_payload(p, {"k": 1})
    assert torch.equal(back.masks, r.masks) and back.params == r.params and back.metadata == {"k": 1}
    r.save(tmp_path / "m.pt", metadata={"k": 2})
    loaded = MaskResult.load(tmp_path / "m.pt")
    assert torch.equal(loaded.masks, r.masks) and loaded.metadata["k"] == 2
    with pytest.raises(ValueError, match="format"):
        MaskResult.from_payload({**p, "format": "other"})
    with pytest.raises(ValueError, match="lacks"):
        MaskResult.from_payload({k: v for k, v in p.items() if k != "masks"})


def test_dataset_mask_acts_on_the_normalised_image_like_the_original():
    """DatasetMask on a Normalized model = the original's loop written directly: normalise, FourierMask on the
    normalised image, the bare network, Adam, projection; the returned mask is the rule's snapshot."""
    import torch.nn.functional as F

    from fmask.core.mask import FourierMask

    model = _normalized_tiny(seed=3)
    x = _images(6, seed=9)
    with torch.no_grad():
        y = model(x).argmax(1)
    epochs, lr, lam = 3, 0.05, 0.2
    # one batch holding every image: the shuffle only permutes the batch, so the loop below is the same problem
    r = DatasetMask(model, lam=lam, lr=lr, epochs=epochs, batch_size=6, schedule="constant", progress=False)(x, y)
    xn = (x - model.mean) / model.std
    layer = FourierMask((S, S))
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    with torch.no_grad():
        ref = F.cross_entropy(model.net(layer(xn)), y, reduction="none")
    per_epoch = []
    for _ in range(epochs):
        ce = F.cross_entropy(model.net(layer(xn)), y, reduction="none")
        loss = (torch.exp((ce - ref) ** 2) + lam * layer.weight.abs().mean()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        layer.project_()
        per_epoch.append(layer.masks)
    snap = int(r.history["snapshot_epoch"][0])
    want = per_epoch[snap - 1] if snap else per_epoch[-1]
    assert (1 - want).abs().mean() > 1e-2  # the mask moved
    torch.testing.assert_close(r.masks, want, atol=1e-5, rtol=0)
    assert r.params["space"] == "normalised"


def test_frozen_context_restores_modes_and_flags():
    from fmask.learners import frozen

    model = make_tiny_cnn(1, 3).train()
    next(model.parameters()).requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    with frozen(model) as m:
        assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
