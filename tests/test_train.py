"""fmask.train: every regime learns, adversarial batches are real PGD, resume == uninterrupted, store reuse."""
from __future__ import annotations

import pytest
import torch

from fmask import train as T
from fmask.testing import write_fake_imagenette
from fmask.profiles import load_profile
from fmask.store import ArtifactStore


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
