"""fmask.learners: the loss, stopping rules, batched == one-by-one, freezing, determinism, I/O, validation."""
from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from fmask.learners import MaskResult, invariance_loss, learn_masks, original_single_image_lr
from fmask.core.mask import FourierMask

from conftest import make_tiny_cnn

S = 16


def _images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, S, S, generator=g)
    return x


def _reference_single(model, img, lam, lr, steps, patience):
    """Straightforward one-image loop written from the paper/original's description (log every step)."""
    layer = FourierMask((S, S))
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    with torch.no_grad():
        ref_logits = model(layer(img))
        init_pred = int(ref_logits.argmax(1))
        y = ref_logits.argmax(1)
        ref_ce = F.cross_entropy(ref_logits, y)
    invs, sps, count = [], [], 0
    t = 0
    for t in range(1, steps + 1):
        ce = F.cross_entropy(model(layer(img)), y)
        inv = (ce - ref_ce) ** 2
        sp = layer.weight.abs().sum() / layer.weight.numel()
        loss = torch.exp(inv) + lam * sp
        invs.append(inv.item())
        sps.append(sp.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        layer.project_()
        with torch.no_grad():
            pred = int(model(layer(img)).argmax(1))
        if t > 1 and pred == init_pred:
            if abs(invs[-1] - invs[-2]) <= 1e-6 and abs(sps[-1] - sps[-2]) <= 1e-5:
                count += 1
            else:
                count = 0
        if count == patience:
            return layer.masks[0], t, True
    return layer.masks[0], t, False


def _frozen_flags(model):
    return [p.requires_grad for p in model.parameters()]


def test_invariance_loss_is_per_sample():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0])
    ref = torch.tensor([0.5, 0.5])
    ex, d2 = invariance_loss(logits, y, ref)
    ce = F.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(d2, (ce - ref) ** 2)
    assert torch.allclose(ex, torch.exp((ce - ref) ** 2))
    # not the exp of the squared difference of batch means
    assert not math.isclose(ex.mean().item(), math.exp((ce.mean() - ref.mean()).item() ** 2), rel_tol=1e-3)


def test_matches_reference_loop_including_stopping():
    """log_every=1 and one image at a time reproduce the original's loop: same masks, same step counts.
    lr=5e-6 makes the masks creep slowly, so the stopping rule fires at step patience + 1."""
    model = make_tiny_cnn(1, 3, seed=1)
    x = _images(2, seed=2)
    for lr, steps, patience, expect_conv in ((5e-6, 30, 4, True), (0.05, 12, 50, False)):
        res = learn_masks(model, x, per_image=True, lam=0.07, lr=lr, steps=steps, patience=patience,
                          batch_size=2, log_every=1, progress=False)
        for i in range(2):
            m_ref, t_ref, conv_ref = _reference_single(model, x[i:i + 1], 0.07, lr, steps, patience)
            assert conv_ref is expect_conv
            assert int(res.steps[i]) == t_ref
            assert bool(res.converged[i]) is conv_ref
            assert torch.allclose(res.masks[i], m_ref, atol=1e-5), (lr, i)
        assert not torch.allclose(res.masks, torch.ones_like(res.masks))  # the masks did move
    assert int(res.history["initial_prediction"].numel()) == 2


def test_batched_equals_one_by_one_with_mixed_freezing():
    """A black image's mask converges early (its input is constant), the others keep learning: batched
    learning with one parameter per chunk gives the same masks and step counts as learning each alone."""
    model = make_tiny_cnn(1, 3, seed=0)
    x = _images(4, seed=3)
    x[1] = 0.0
    kw = dict(per_image=True, lam=0.07, lr=0.1, steps=40, patience=5, progress=False)
    batched = learn_masks(model, x, batch_size=4, log_every=7, **kw)
    alone = [learn_masks(model, x[i:i + 1], batch_size=1, log_every=1, **kw) for i in range(4)]
    assert bool(batched.converged[1]) and int(batched.steps[1]) < 40
    assert not bool(batched.converged[0])
    for i in range(4):
        assert int(batched.steps[i]) == int(alone[i].steps[0])
        assert bool(batched.converged[i]) == bool(alone[i].converged[0])
        assert torch.allclose(batched.masks[i], alone[i].masks[0], atol=1e-5)
    # chunking differently gives the same answer too
    chunked = learn_masks(model, x, batch_size=3, log_every=1, **kw)
    assert torch.allclose(chunked.masks, batched.masks, atol=1e-5)
    assert torch.equal(chunked.steps, batched.steps)


def test_frozen_masks_do_not_move_after_convergence():
    """With lr=5e-6 every mask converges at step patience + 1 = 5 while Adam would keep moving it;
    log_every=1000 keeps the chunk stepping to 60, yet the frozen masks equal the 5-step masks."""
    model = make_tiny_cnn(1, 3, seed=1)
    x = _images(3, seed=4)
    kw = dict(per_image=True, lam=0.07, lr=5e-6, batch_size=3, progress=False)
    late = learn_masks(model, x, steps=60, patience=4, log_every=1000, **kw)
    early = learn_masks(model, x, steps=60, patience=4, log_every=1, **kw)
    five = learn_masks(model, x, steps=5, patience=10_000, log_every=1, **kw)
    free = learn_masks(model, x, steps=60, patience=10_000, log_every=1000, **kw)
    assert late.converged.all() and torch.equal(late.steps, torch.full((3,), 5))
    assert torch.equal(late.masks, early.masks)
    assert torch.allclose(late.masks, five.masks, atol=0, rtol=0) or torch.allclose(late.masks, five.masks, atol=1e-7)
    assert not five.converged.any() and not free.converged.any()
    assert (free.masks - late.masks).abs().max() > 1e-5  # without freezing they would have moved


def test_same_seed_same_masks_and_seed_matters_for_dataset_masks():
    model = make_tiny_cnn(1, 3, seed=0)
    x = _images(12, seed=5)
    y = torch.arange(12) % 3
    kw = dict(per_image=False, lam=0.2, lr=0.05, steps=3, batch_size=4, progress=False)
    a = learn_masks(model, x, y, seed=7, **kw)
    b = learn_masks(model, x, y, seed=7, **kw)
    c = learn_masks(model, x, y, seed=8, **kw)
    assert torch.equal(a.masks, b.masks) and torch.equal(a.steps, b.steps)
    assert not torch.equal(a.masks, c.masks)
    assert a.masks.shape == (1, 1, S, S) and a.masks.dtype == torch.float32
    assert set(a.history) >= {"loss", "invariance", "sparsity", "accuracy"}
    assert a.history["loss"].shape == (3,)
    assert a.params["seed"] == 7 and a.params["schedule"] == "onecycle"
    p1 = learn_masks(model, x, per_image=True, steps=6, lr=0.05, progress=False, seed=1)
    p2 = learn_masks(model, x, per_image=True, steps=6, lr=0.05, progress=False, seed=1)
    assert torch.equal(p1.masks, p2.masks)


def test_dataset_mask_from_dataloader_matches_tensor_without_shuffle_effects():
    model = make_tiny_cnn(1, 3, seed=0)
    x = _images(8, seed=6)
    y = torch.arange(8) % 3
    # batch = whole set: shuffling cannot matter, so DataLoader and tensor paths must agree
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    kw = dict(per_image=False, lam=0.2, lr=0.05, steps=3, progress=False, schedule=None)
    a = learn_masks(model, x, y, batch_size=8, **kw)
    b = learn_masks(model, loader, **kw)
    assert torch.allclose(a.masks, b.masks, atol=1e-6)
    assert torch.allclose(a.history["sparsity"], b.history["sparsity"], atol=1e-6)
    assert int(a.steps[0]) in (0, 1, 2, 3)


def test_model_is_restored_and_untouched():
    model = make_tiny_cnn(1, 3, seed=0).train()
    params = [p.detach().clone() for p in model.parameters()]
    next(model.parameters()).requires_grad_(False)
    flags = _frozen_flags(model)
    learn_masks(model, _images(2), per_image=True, steps=3, lr=0.05, progress=False)
    assert model.training and all(m.training for m in model.modules())
    assert _frozen_flags(model) == flags
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
    assert all(p.grad is None for p in model.parameters())


def test_original_schedule_lr():
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.2)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, epochs=20000, steps_per_epoch=200, pct_start=0.1)
    for step in range(0, 3001):
        if step in (0, 1, 500, 3000):
            assert math.isclose(opt.param_groups[0]["lr"], original_single_image_lr(step), rel_tol=1e-9)
        opt.step()
        sch.step()
    assert math.isclose(original_single_image_lr(0), 0.008, rel_tol=1e-9)
    assert 0.0091 < original_single_image_lr(19999) < 0.0093
    # learn_masks with schedule="original" defaults to the flag's lr 0.2 and runs the warm-up
    res = learn_masks(make_tiny_cnn(1, 3), _images(1), per_image=True, steps=2, schedule="original",
                      progress=False)
    assert res.params["lr"] == 0.2 and res.params["schedule"] == "original"


def test_save_load_roundtrip_atomic(tmp_path):
    model = make_tiny_cnn(1, 3, seed=0)
    res = learn_masks(model, _images(2), per_image=True, steps=3, lr=0.05, progress=False, seed=3)
    path = tmp_path / "sub" / "masks.pt"
    res.save(path, metadata={"model": "tiny", "n": 2})
    assert sorted(os.listdir(path.parent)) == ["masks.pt"]  # no temp file left behind
    back = MaskResult.load(path)
    assert torch.equal(back.masks, res.masks) and torch.equal(back.steps, res.steps)
    assert torch.equal(back.converged, res.converged)
    assert back.params == res.params and back.params["seed"] == 3
    assert back.metadata["model"] == "tiny" and "torch" in back.metadata["versions"]
    assert set(back.history) == set(res.history)
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="MaskResult"):
        MaskResult.load(tmp_path / "bad.pt")


def test_bad_input_raises_value_error():
    model = make_tiny_cnn(1, 3)
    x = _images(3)
    with pytest.raises(ValueError, match="shape"):
        learn_masks(model, x[:, 0], per_image=True, steps=1, progress=False)
    with pytest.raises(ValueError, match="lam"):
        learn_masks(model, x, per_image=True, lam=-0.1, steps=1, progress=False)
    with pytest.raises(ValueError, match="steps"):
        learn_masks(model, x, per_image=True, steps=0, progress=False)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        learn_masks(model, bad, per_image=True, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        learn_masks(model, x * 3, per_image=True, steps=1, progress=False)
    learn_masks(model, (x * (1 + 1e-6)).clamp(max=1 + 1e-6), per_image=True, steps=1, progress=False)  # tolerance
    with pytest.raises(ValueError, match="targets"):
        learn_masks(model, x, torch.zeros(2, dtype=torch.long), per_image=False, steps=1, progress=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(3, dtype=torch.long)))
    with pytest.raises(ValueError, match="targets must be None"):
        learn_masks(model, loader, torch.zeros(3, dtype=torch.long), per_image=False, steps=1, progress=False)
    with pytest.raises(ValueError, match="schedule"):
        learn_masks(model, x, per_image=True, steps=1, schedule="cosine", progress=False)


# ------------------------------------------------------------------------------- benchmark: fast-mode decision
def _load_bench():
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))  # bench_learn imports serial_reference from its folder
    spec = importlib.util.spec_from_file_location("fmask_bench_learn", root / "benchmarks" / "bench_learn.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_bench_fast_mode_decision_rule(tmp_path):
    """bench_learn.decide: fast only if it pays (≥ 1.1× exact) AND its masks' prediction flips stay within half
    of the smallest Table 2 Wilson half-width; the half-widths come from fmask.analysis.stats.wilson_interval."""
    import json

    from fmask.models.zoo import Normalized
    from fmask.analysis.stats import wilson_interval

    bench = _load_bench()
    model = Normalized(make_tiny_cnn(1, 3, seed=0), (0.449,), (0.226,)).eval()
    x = _images(6, seed=2)
    kw = dict(lam=0.07, lr=0.05, steps=5, batch_size=6, progress=False)
    exact = learn_masks(model, x, per_image=True, **kw)
    t2 = tmp_path / "table2.json"
    t2.write_text(json.dumps({"values": {"vanilla": {"n": 100, "correct": {"masked": 90, "original": 100}}}}))
    widths = bench.table2_half_widths(t2)
    lo, hi = wilson_interval(90, 100)
    assert widths["vanilla/masked"] == pytest.approx((hi - lo) / 2)
    assert set(widths) == {"vanilla/masked"}  # the 'original' cell involves no mask
    same = bench.decide(model, x, exact, exact, 1.0, 2.0, t2)  # identical masks, 2x faster: use fast
    assert same["use_fast"] and same["cpu_profile_single_mask_precision"] == "fast"
    assert same["masked_prediction_flip_rate"] == 0 and same["rel_dM_fast_vs_exact"] == 0
    slow = bench.decide(model, x, exact, exact, 1.0, 0.9, t2)  # identical masks but slower: exact
    assert not slow["use_fast"] and slow["speedup_fast_vs_exact"] == pytest.approx(0.9)
    flipped = MaskResult(masks=exact.masks, steps=exact.steps, converged=exact.converged, params=exact.params,
                         history={**exact.history, "prediction": (exact.history["prediction"] + 1) % 3})
    bad = bench.decide(model, x, exact, flipped, 1.0, 2.0, t2)  # every masked prediction differs: exact
    assert not bad["use_fast"] and bad["masked_prediction_flip_rate"] == 1.0
    missing = bench.decide(model, x, exact, exact, 1.0, 2.0, tmp_path / "none.json")
    assert not missing["use_fast"] and missing["table2_min_wilson_half_width"] is None
