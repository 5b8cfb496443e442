"""fmask.training.fit: every regime learns, adversarial batches are real PGD, resume == uninterrupted, store reuse."""
from __future__ import annotations

import pytest
import torch

from fmask.training import fit as T
from fmask.training import loop as L
from fmask.data.fake import write_fake_imagenette
from fmask.experiment.profiles import load_profile
from fmask.infra.store import ArtifactStore


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = write_fake_imagenette(tmp_path_factory.mktemp("fake") / "inet", n_train=8, n_val=4, size=(32, 36))
    prof = load_profile("smoke", {
        "data.root": str(root), "data.max_per_class": None, "data.image_size": 32,
        "train.epochs": 3, "train.batch_size": 10, "train.lr": 0.01, "train.adv_steps": 2, "train.robust_eval_n": 10,
    })
    ds = T.load_datasets(prof, progress=False)
    return prof, ds


def _initial_model(regime, prof, ds):
    params = T.training_params(regime, prof, T.data_id(*ds))
    torch.manual_seed(prof["seed"])
    return T._build(params, torch.device("cpu"))


@pytest.mark.parametrize("regime", T.REGIMES)
def test_each_regime_improves_loss(regime, setup, tmp_path):
    prof, ds = setup
    before = T.evaluate(_initial_model(regime, prof, ds), ds[1])
    tm = T.train_model(regime, prof, store=ArtifactStore(tmp_path), datasets=ds, progress=False)
    after = T.evaluate(tm.model, ds[1])
    assert after["loss"] < before["loss"] - 0.05, (before, after)
    assert not tm.model.training and len(tm.history["val_acc"]) == 3
    assert tm.metrics["val_acc"] == max(tm.history["val_acc"]) == pytest.approx(after["acc"])
    meta = tm.metadata
    assert meta["regime"] == regime and meta["seed"] == prof["seed"] and "torch" in meta["versions"]
    assert tm.params["train"]["epochs"] == 3 and tm.params["data"]["classes"] == ds[1].classes
    if regime in ("vanilla", "adversarial"):
        assert 0 <= tm.metrics["pgd_robust_acc"] <= tm.metrics["pgd_clean_acc"] <= 1 and tm.metrics["pgd_n"] == 10
    # checkpoint loads with weights_only and reproduces the model
    again = T.load_checkpoint(tm.checkpoint)
    x, _ = ds[1].tensors()
    with torch.no_grad():
        assert torch.equal(again.model(x), tm.model(x))
    assert not list((tmp_path / "train-state").glob("*.pt"))  # resumable state removed once finished


def test_adversarial_batches_are_pgd_within_eps(setup, tmp_path, monkeypatch):
    prof, ds = setup
    seen = []

    class Spy(T.PGD):
        def __call__(self, images, labels):
            adv = super().__call__(images, labels)
            seen.append((images.clone(), adv.clone()))
            return adv

    monkeypatch.setattr(T, "PGD", Spy)
    T.train_model("adversarial", load_profile(prof["name"], {**_flat(prof), "train.epochs": 1}),
                  store=ArtifactStore(tmp_path), datasets=ds, progress=False)
    eps = prof["train"]["adv_eps"]
    assert len(seen) >= 4  # every training batch (4 of 10) plus the robust evaluation
    for clean, adv in seen:
        d = (adv - clean).abs()
        assert d.max() <= eps + 1e-6 and d.max() > eps / 4 and (d > 0).float().mean() > 0.5
        assert adv.min() >= 0 and adv.max() <= 1


def _flat(prof):
    return {f"{s}.{k}": v for s in ("data", "model", "train") for k, v in prof[s].items()}


def test_resume_equals_uninterrupted(setup, tmp_path):
    prof, ds = setup
    full = T.train_model("adversarial", prof, store=ArtifactStore(tmp_path / "a"), datasets=ds, progress=False)

    class Stop(Exception):
        pass

    def stop_after_1(epoch, history):
        if epoch == 1:
            raise Stop

    st = ArtifactStore(tmp_path / "b")
    with pytest.raises(Stop):
        T.train_model("adversarial", prof, store=st, datasets=ds, progress=False, callback=stop_after_1)
    assert len(list((tmp_path / "b" / "train-state").glob("*.pt"))) == 1
    assert T.load_model("adversarial", prof, store=st, datasets=ds) is None  # not finished
    epochs = []
    resumed = T.train_model("adversarial", prof, store=st, datasets=ds, progress=False,
                            callback=lambda e, h: epochs.append(e))
    assert epochs == [2, 3]
    assert resumed.history["train_loss"] == full.history["train_loss"]
    assert resumed.history["val_acc"] == full.history["val_acc"]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_resumed_training_says_from_which_epoch(setup, tmp_path, capsys, monkeypatch):
    """A training that picks up a stored train-state prints one line naming the epoch it resumes from, on the
    progress bar's stream; a fresh training prints none."""
    from fmask.infra.runtime import PROGRESS_FILE_ENV

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv(PROGRESS_FILE_ENV, raising=False)
    prof, ds = setup
    p = _with(prof, **{"train.epochs": 2, "train.robust_eval_regimes": []})
    st = ArtifactStore(tmp_path)

    class Stop(Exception):
        pass

    def stop(epoch, history):
        raise Stop

    with pytest.raises(Stop):
        T.train_model("vanilla", p, store=st, datasets=ds, progress=True, callback=stop)
    assert "resuming" not in capsys.readouterr().err
    T.train_model("vanilla", p, store=st, datasets=ds, progress=True)
    err = capsys.readouterr().err
    assert err.count("resuming") == 1 and "train vanilla: resuming from epoch 1 of 2" in err


def test_store_reuses_same_params_only(setup, tmp_path):
    prof, ds = setup
    st = ArtifactStore(tmp_path)
    first = T.train_model("vanilla", prof, store=st, datasets=ds, progress=False)
    calls = []
    reused = T.get_or_train("vanilla", prof, store=st, datasets=ds, progress=False, callback=lambda e, h: calls.append(e))
    assert calls == [] and reused.checkpoint == first.checkpoint  # reused, not retrained
    other = load_profile(prof["name"], {**_flat(prof), "seed": 1})
    assert T.load_model("vanilla", other, store=st, datasets=ds) is None
    t2 = T.train_model("vanilla", other, store=st, datasets=ds, progress=False, callback=lambda e, h: calls.append(e))
    assert calls == [1, 2, 3] and t2.checkpoint != first.checkpoint
    assert T.load_model("vanilla", prof, store=st, datasets=ds).checkpoint == first.checkpoint
    assert len(list((tmp_path / "model").glob("*.pt"))) == 2
    with pytest.raises(ValueError, match="unknown regime"):
        T.train_model("shear", prof, store=st, datasets=ds)


def test_missing_data_path_is_clear(tmp_path):
    from fmask.data import ImagenetteUnavailable

    prof = load_profile("smoke")
    with pytest.raises(ImagenetteUnavailable, match="does not exist"):
        T.train_model("vanilla", prof, data_root=tmp_path / "nope", store=ArtifactStore(tmp_path), progress=False)


# ---------------------------------------------------------------- speed paths
def _with(prof, **over):
    return load_profile(prof["name"], {**_flat(prof), **over})


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_precision_key_default_left_out_of_artifact_key(setup):
    prof, ds = setup
    dh = T.data_id(*ds)
    assert "precision" not in T.training_params("vanilla", prof, dh)["train"]  # the default stays out of the key
    assert T.training_params("vanilla", _with(prof, **{"train.precision": "bf16"}), dh)["train"]["precision"] == "bf16"
    # one vocabulary (the learners' exact / fast); the key keeps its dtype spelling, so the same arithmetic
    # written either way names the same model
    for word, dtype in (("fast", "bf16"), ("exact", "fp32")):
        same = [T.training_params("vanilla", _with(prof, **{"train.precision": w}), dh) for w in (word, dtype)]
        assert same[0] == same[1] and same[0]["train"]["precision"] == dtype
    assert _with(prof, **{"train.precision": "bf16"}).train.precision == "fast"
    with pytest.raises(ValueError, match="precision"):
        _with(prof, **{"train.precision": "fp16"})
    with pytest.raises(ValueError, match="precision"):
        L.autocast(torch.device("cpu"), "half")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_same_weights_bitwise(precision, setup, tmp_path):
    """Two trainings with one seed (each precision, the adversarial regime: PGD inside) give identical bits."""
    prof, ds = setup
    p = _with(prof, **{"train.precision": precision, "train.epochs": 2, "train.robust_eval_regimes": []})
    a = T.train_model("adversarial", p, store=ArtifactStore(tmp_path / "a"), datasets=ds, progress=False)
    b = T.train_model("adversarial", p, store=ArtifactStore(tmp_path / "b"), datasets=ds, progress=False)
    assert a.history["train_loss"] == b.history["train_loss"] and a.history["val_acc"] == b.history["val_acc"]
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert all(torch.isfinite(v).all() for v in a.model.state_dict().values() if v.is_floating_point())


def _reference_losses(model, batches, lr):
    """The plain loop on a contiguous-format model (what the channels_last path must reproduce): the loss of
    each batch, Adam with ``lr``."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(model(x.contiguous()), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_last_fp32_matches_contiguous_training(channels):
    """fp32 channels_last (the trainer's layout) computes the contiguous network's training up to rounding:
    the first step's parameter gradients agree to 1e-4 relative (L2 over each tensor), and 4 Adam steps of
    :func:`fmask.training.loop.train_epoch` give the same summed loss to 1e-4 relative. (Weights are not compared
    entry by entry: Adam divides each gradient by its own RMS, so weights whose gradient is at rounding level
    -- e.g. conv biases before batch norm, exactly zero in exact arithmetic -- take lr-sized steps of random
    sign in either layout.)"""
    from fmask.models.zoo import build_model

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4 * 8, channels, 32, 32, generator=g)
    y = torch.randint(0, 5, (32,), generator=g)
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    torch.manual_seed(3)
    ref = build_model("vgg_small", in_channels=channels, num_classes=5, width_div=8)
    fast = build_model("vgg_small", in_channels=channels, num_classes=5, width_div=8)
    fast.load_state_dict(ref.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    # gradients of one step
    for m, xb in ((ref, x[:8].contiguous()), (fast, x[:8].contiguous(memory_format=torch.channels_last))):
        m.train()
        torch.nn.functional.cross_entropy(m(xb), y[:8]).backward()
    for (k, pr), pf in zip(ref.named_parameters(), fast.parameters()):
        if k.startswith("net.features.") and k.endswith(".bias") and pr.ndim == 1 and pr.grad.abs().max() < 1e-6:
            continue  # a pre-BN conv bias: zero gradient up to rounding in both
        rel = float((pr.grad - pf.grad).norm() / pr.grad.norm().clamp_min(1e-12))
        assert rel <= 1e-4, (k, rel)
        pr.grad = pf.grad = None
    # a few steps of the trainer's epoch loop vs the plain loop, both from fresh identical weights
    torch.manual_seed(3)
    ref = build_model("vgg_small", in_channels=channels, num_classes=5, width_div=8)
    fast.load_state_dict(ref.state_dict())
    ref_losses = _reference_losses(ref, batches, 1e-3)
    opt = torch.optim.Adam(fast.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    loss_sum, correct, n = L.train_epoch(fast, opt, sched, batches, None, torch.device("cpu"), "exact")
    assert n == 32 and 0 <= correct <= 32
    want = sum(v * 8 for v in ref_losses)
    assert abs(loss_sum - want) <= 1e-4 * want, (loss_sum, want)
    assert ref_losses[-1] != ref_losses[0]  # the steps did change the network


def test_bf16_training_runs_and_learns(setup, tmp_path):
    prof, ds = setup
    p = _with(prof, **{"train.precision": "bf16", "train.robust_eval_regimes": []})
    before = T.evaluate(_initial_model("vanilla", prof, ds), ds[1])
    tm = T.train_model("vanilla", p, store=ArtifactStore(tmp_path), datasets=ds, progress=False)
    assert tm.params["train"]["precision"] == "bf16"
    assert tm.metrics["val_acc"] == max(tm.history["val_acc"])
    assert T.evaluate(tm.model, ds[1])["loss"] < before["loss"] - 0.05
    assert all(v.dtype == torch.float32 for v in tm.model.state_dict().values() if v.is_floating_point())


def test_eval_and_attack_helpers_leave_caller_model_alone(setup):
    """evaluate / PGD / robust_accuracy: the caller's (contiguous, train-mode) model keeps its weights, their
    memory layout, its mode and requires_grad flags; results are the same for NCHW and NHWC images."""
    from fmask.training.attacks import PGD, robust_accuracy
    from fmask.models.zoo import build_model

    prof, ds = setup
    torch.manual_seed(0)
    model = build_model("vgg_small", in_channels=1, num_classes=5, width_div=8)
    model.train()
    before = _weights(model)
    strides = {k: v.stride() for k, v in model.state_dict().items()}
    ev = T.evaluate(model, ds[1])
    x, y = ds[1].tensors()
    with torch.random.fork_rng():
        torch.manual_seed(1)
        adv = PGD(model, eps=0.03, steps=2)(x, y)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        adv_cl = PGD(model, eps=0.03, steps=2)(x.contiguous(memory_format=torch.channels_last), y)
    r = robust_accuracy(model, x, y, eps=0.03, steps=2)
    assert model.training and all(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]) and v.stride() == strides[k], k
    assert adv.is_contiguous() and torch.equal(adv, adv_cl)  # grayscale: both layouts are the same bits
    assert 0 <= ev["acc"] <= 1 and ev["n"] == len(y) and 0 <= r["robust_acc"] <= r["clean_acc"] <= 1


@pytest.mark.parametrize("regime", ["vanilla", "adversarial", "rotate"])
def test_loop_equals_the_reference_loop_bitwise(regime, setup):
    """The trainer's fp32 epoch loop + validation reproduce the plain reference loop (``legacy_epoch`` /
    ``legacy_eval`` in benchmarks/bench_train.py) bit for bit on grayscale images: same weights, same
    validation numbers."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_train", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py")
    B = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(B)
    prof, (tr, va) = setup
    prof = _with(prof, **{"train.epochs": 2})
    cpu = torch.device("cpu")
    xv, yv = va.with_options(train=False).tensors()
    res = []
    for path in ("before", "fp32"):
        ds = tr.with_options(train=True, regime=regime)
        model, opt, sched, atk = B.setup(prof, regime, ds, va, cpu)
        gen = torch.Generator().manual_seed(prof["seed"])
        with torch.random.fork_rng():
            torch.manual_seed(prof["seed"])
            for _ in range(2):
                batches = ds.batches(prof["train"]["batch_size"], gen, cpu)
                if path == "before":
                    loss, correct, n = B.legacy_epoch(model, opt, sched, batches, atk, cpu)
                    ev = B.legacy_eval(model, va, cpu)
                else:
                    loss, correct, n = L.train_epoch(model, opt, sched, batches, atk, cpu, "exact")
                    model.eval()
                    ev = L.eval_tensors(model, xv, yv, cpu)
        res.append((_weights(model), ev, correct, n, loss))
    (w0, ev0, c0, n0, l0), (w1, ev1, c1, n1, l1) = res
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    assert ev0["acc"] == ev1["acc"] and ev0["loss"] == pytest.approx(ev1["loss"], rel=1e-12)
    assert c0 == c1 and n0 == n1 and l0 == pytest.approx(l1, rel=1e-12)
