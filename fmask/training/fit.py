"""The five training regimes of the paper, one-cycle Adam, best-validation checkpointing, resume.

Regimes (:data:`fmask.data.regimes.REGIMES`, the paper's order A-E): ``vanilla`` (crop + flip only), ``adversarial``
(vanilla augmentation, then every batch is replaced by its L∞ PGD version, below), ``scale`` (RandomAffine
scale 0.5–1.5), ``translate`` (RandomAffine translate 0.4, 0.4), ``rotate`` (RandomAffine ±180°). The
adversarial attack: ε = ``adv_eps`` in pixel units, ``adv_steps`` steps, α = ``adv_alpha`` (null: ε/8), random
start. As in the original ``train_models.py`` the adversarial model trains on adversarial
batches only (no clean/adversarial mix), the attack running with the model in eval mode.

Optimisation as the original: Adam (lr ``lr``, weight decay ``weight_decay``), ``OneCycleLR`` (max lr ``lr``,
``pct_start``) stepped every batch, cross-entropy; after each epoch the validation accuracy is measured and
the weights with the best one (ties: the later epoch, as ``>=`` in the original) are kept.

Artifacts (in an :class:`fmask.infra.store.ArtifactStore`, keyed by :func:`training_params`):

* ``train-state/<key>.pt``: the resumable state, rewritten atomically after every epoch (model, optimizer,
  scheduler, data generator and global RNG states, history, best weights). An interrupted run resumes from
  it and ends with the same weights as an uninterrupted one (same device and thread count).
* ``model/<key>.pt`` (+ ``.json``): the finished model (best weights) with metadata (regime, parameters, seed,
  library versions, best epoch, metrics, per-epoch history). A finished model is reused, never retrained;
  once it is saved the train-state is deleted (:meth:`fmask.infra.store.ArtifactStore.delete`).

Reliability (``docs/guarantees.md``): the store is checked writable (:meth:`~fmask.infra.store.ArtifactStore.check_writable`)
before the first epoch, so a read-only store fails before any time is spent; training runs under
``store.claim("model", params)`` and looks for the finished model again once it holds the claim, so two
processes on one store train a model once (the second waits and loads it). A stored model whose bytes do not
verify (truncated, flipped bits) is moved aside by the store and retrained, never returned with its old
metrics; :func:`load_checkpoint` verifies the file too and raises :class:`fmask.infra.store.ArtifactCorruptError`.

Speed: the network the trainer builds is ``channels_last`` like every batch (:mod:`fmask.training.loop`); the
validation images are decoded and centre-cropped once per training and evaluated as one NHWC tensor.
``benchmarks/bench_train.py`` measures this loop against a plain contiguous one; for grayscale images the
default fp32 path gives the same weights bit for bit (``tests/test_train.py``), for RGB channels_last equals
contiguous up to rounding. Precision (``fit.precision``, :data:`fmask.core.objective.PRECISIONS`): ``auto``
(default: ``exact`` on CPU, ``fast`` on CUDA), ``exact`` (fp32) or ``fast`` (bf16 autocast of the network; the
loss is taken in fp32). Same seed, same weights, in every precision.

The functions take a :class:`fmask.training.config.TrainingConfig` or a profile (anything with a
``training_config()`` method, e.g. :class:`fmask.experiment.profile_schema.Profile`). Everything is read with
``torch.load(..., weights_only=True)``; device resolution and progress bars come from :mod:`fmask.infra.runtime`.
A resumed training says so in one line on its progress bar's stream (``train <regime>: resuming from epoch k of
n``).
"""
from __future__ import annotations

import hashlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from fmask.data import TensorImageDataset, load_split, resolve_classes
from fmask.data.regimes import REGIMES, check_regime
from fmask.models.zoo import build_model
from fmask.training.attacks import PGD, pgd_settings, robust_accuracy
from fmask.training.config import DataConfig, FitConfig, TrainingConfig, as_training_config
from fmask.training.loop import eval_tensors, nhwc, train_epoch
from fmask.infra.runtime import progress_bar, resolve_device, seeded
from fmask.infra.integrity import versions
from fmask.infra.store import ArtifactStore

__all__ = [
    "REGIMES",
    "TrainedModel",
    "resolve_device",
    "load_datasets",
    "data_id",
    "training_params",
    "evaluate",
    "train_model",
    "get_or_train",
    "load_model",
    "load_checkpoint",
]

STATE_KIND, MODEL_KIND = "train-state", "model"


@dataclass
class TrainedModel:
    """A trained classifier and what produced it (the one record of a model, for :mod:`fmask.experiment.run` too).

    ``model``: the network (:class:`fmask.models.zoo.Normalized` wrapper, eval mode, frozen, inputs (N, C, S, S) in
    [0, 1]); ``regime``: one of :data:`REGIMES`; ``params``: the artifact key (:func:`training_params`);
    ``metrics``: final numbers (fractions; see :func:`train_model`); ``history``: per-epoch series;
    ``checkpoint``: the ``model/<key>.pt`` file; ``metadata``: what the store recorded with it.
    """

    model: nn.Module
    regime: str
    params: dict
    metrics: dict
    history: dict
    checkpoint: Path
    metadata: dict = field(default_factory=dict)

    @property
    def key(self) -> dict:
        """The artifact identity of the checkpoint (= ``params``; the name the pipeline's keys use)."""
        return self.params


def load_datasets(
    config: TrainingConfig | Any, data_root=None, store: ArtifactStore | None = None, progress: bool = True
) -> tuple[TensorImageDataset, TensorImageDataset]:
    """(train, val) datasets of ``config.data`` (a :class:`TrainingConfig` or a profile; train with the vanilla
    transform). ``max_per_class`` limits both splits; ``max_per_class_val`` (None: the same) overrides it for val.
    """
    cfg = as_training_config(config)
    d: DataConfig = cfg.data
    root = data_root if data_root is not None else d.root
    common = dict(
        root=root, classes=d.classes, image_size=d.image_size, channels=d.channels,
        seed=cfg.seed, skip_corrupt=d.skip_corrupt, store=store, progress=progress,
    )
    train = load_split("train", max_per_class=d.max_per_class, train=True, **common)
    val = load_split("val", max_per_class=d.val_limit, train=False, **common)
    return train, val


def data_id(train: TensorImageDataset, val: TensorImageDataset) -> str:
    """Content hash (16 hex) of the decoded train and val images and labels: names the data a model saw."""
    return hashlib.sha256(f"{train.fingerprint()}:{val.fingerprint()}".encode()).hexdigest()[:16]


def training_params(regime: str, config: TrainingConfig | Any, data_hash: str) -> dict:
    """The parameters that define a trained model (the store key): regime, seed, data identity and subset,
    model (unset options left out) and the fit settings (:meth:`fmask.training.config.FitConfig.key`)."""
    check_regime(regime)
    cfg = as_training_config(config)
    d = cfg.data
    return {
        "stage": "train",
        "version": 1,
        "regime": regime,
        "seed": cfg.seed,
        "data": {
            "content": data_hash,
            "classes": resolve_classes(d.classes),
            "image_size": d.image_size,
            "channels": d.channels,
            "max_per_class": d.max_per_class,
            "max_per_class_val": d.val_limit,
        },
        "model": cfg.model.build_kwargs(),
        "train": cfg.fit.key(),
    }


def evaluate(model: nn.Module, ds: TensorImageDataset, device: torch.device | str = "cpu", batch_size: int = 256,
             precision: str = "auto") -> dict:
    """Clean accuracy (fraction) and mean cross-entropy of ``model`` on ``ds`` (eval transform, no shuffle).

    The model runs in eval mode and gets its previous mode back; it is not otherwise changed (the images are
    converted to channels_last, the model's own layout is left alone).
    """
    device = torch.device(device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x, y = ds.with_options(train=False).tensors()
    if len(y) == 0:
        raise ValueError("evaluate needs a non-empty dataset")
    was = model.training
    model.eval()
    try:
        return eval_tensors(model, x, y, device, batch_size, precision)
    finally:
        model.train(was)


def _build(params: Mapping[str, Any], device: torch.device) -> nn.Module:
    m = {k: v for k, v in params["model"].items() if v is not None}
    arch = m.pop("arch")
    model = build_model(arch, in_channels=params["data"]["channels"], num_classes=len(params["data"]["classes"]), **m)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last)


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "python_v": random.getstate()[0]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: Mapping[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((st["python_v"], tuple(st["python"]), None))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(st["cuda"]))


def _cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _trained(model: nn.Module, params: dict, payload: Mapping, meta: Mapping, path: Path) -> TrainedModel:
    model.load_state_dict(payload["state_dict"])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return TrainedModel(model, params["regime"], params, dict(meta.get("metrics", {})), dict(meta.get("history", {})), path, dict(meta))


def load_model(
    regime: str,
    config: TrainingConfig | Any,
    *,
    data_root=None,
    store: ArtifactStore | None = None,
    device: str | torch.device | None = None,
    datasets: tuple[TensorImageDataset, TensorImageDataset] | None = None,
    progress: bool = True,
) -> TrainedModel | None:
    """The finished model of ``regime`` for ``config`` (a :class:`TrainingConfig` or a profile) from the store,
    or ``None`` if not trained yet. The data are loaded (or taken from ``datasets``): their hash is in the key.
    """
    cfg = as_training_config(config)
    store = store if store is not None else ArtifactStore()
    train_ds, val_ds = datasets if datasets is not None else load_datasets(cfg, data_root, store, progress)
    params = training_params(regime, cfg, data_id(train_ds, val_ds))
    found = store.load(MODEL_KIND, params)
    if found is None:
        return None
    dev = resolve_device(device if device is not None else cfg.device)
    return _trained(_build(params, dev), params, found[0], found[1], store.path(MODEL_KIND, params))


def load_checkpoint(path: str | Path, device: str | torch.device | None = "cpu") -> TrainedModel:
    """A finished model straight from its ``model/<key>.pt`` file (parameters are read from the file).

    The file is read with :func:`fmask.models.checkpoint.read_checkpoint` (``verify=True``: through
    :func:`fmask.infra.integrity.read_artifact`, sidecar ``<key>.json`` present, size and SHA-256 match,
    ``torch.load(..., weights_only=True)``); a missing file raises ``FileNotFoundError``, a damaged file raises
    :class:`fmask.infra.store.ArtifactCorruptError` naming the file and the reason (the file is left in place),
    a file that is not a trained model raises ``ValueError``.
    """
    from fmask.models.checkpoint import read_checkpoint

    path = Path(path)
    ck = read_checkpoint(path, verify=True)
    params, payload = ck.params, ck.payload
    if params.get("stage") != "train" or not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"{path} is not an fmask trained-model artifact")
    return _trained(_build(params, resolve_device(device)), params, payload, ck.metadata, path)


def train_model(
    regime: str,
    config: TrainingConfig | Any,
    *,
    data_root=None,
    store: ArtifactStore | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    reuse: bool = True,
    datasets: tuple[TensorImageDataset, TensorImageDataset] | None = None,
    callback: Callable[[int, dict], None] | None = None,
) -> TrainedModel:
    """Train (or reuse / resume) the ``regime`` model of ``config``; returns it in eval mode.

    Args:
        regime: one of :data:`REGIMES`.
        config: a :class:`fmask.training.config.TrainingConfig` (``seed``, ``device``, ``data``, ``model``,
            ``fit``) or a profile (:func:`fmask.experiment.profiles.load_profile`), whose
            ``training_config()`` is used.
        data_root: Imagenette folder (else the profile's ``data.root``, else ``$FMASK_DATA``, else download).
        store: artifact store (default: ``ArtifactStore()``: ``$FMASK_ARTIFACTS``, else ``<repo>/artifacts`` in
            a source checkout, else ``~/.cache/fmask/artifacts``; :func:`fmask.infra.store.default_root`).
        device: overrides the config's ``device`` (``auto``: CUDA if present).
        reuse: return the finished model from the store when it exists (else retrain and overwrite). A stored
            model that fails verification counts as absent (moved aside with a warning, then retrained).
        datasets: ``(train, val)`` :class:`fmask.data.TensorImageDataset` to use instead of loading Imagenette
            (their content hash keys the artifact).
        callback: called as ``callback(epoch, history)`` after each epoch's state is saved (an exception
            raised there interrupts training; the next call resumes).

    Metrics (fractions in [0, 1]): ``val_acc`` (best), ``best_epoch``, ``final_val_acc``, ``train_acc``,
    ``train_loss`` (of the best epoch), ``seconds``; for regimes in ``robust_eval_regimes`` also
    ``pgd_clean_acc``, ``pgd_robust_acc``, ``pgd_n``, ``pgd_eps``, ``pgd_steps`` on a seeded random subset of
    ``robust_eval_n`` val images (all when null).
    """
    check_regime(regime)
    cfg = as_training_config(config)
    seed = cfg.seed
    store = store if store is not None else ArtifactStore()
    train_ds, val_ds = datasets if datasets is not None else load_datasets(cfg, data_root, store, progress)
    train_ds = train_ds.with_options(train=True, regime=regime)
    params = training_params(regime, cfg, data_id(train_ds, val_ds))
    dev = resolve_device(device if device is not None else cfg.device)

    def stored() -> TrainedModel | None:
        found = store.load(MODEL_KIND, params) if reuse else None
        if found is None:
            return None
        return _trained(_build(params, dev), params, found[0], found[1], store.path(MODEL_KIND, params))

    tm = stored()  # fast path without the lock
    if tm is not None:
        return tm
    store.check_writable(STATE_KIND, MODEL_KIND)  # fail now, not after the first epoch
    with store.claim(MODEL_KIND, params):
        tm = stored()  # another process may have finished it while we waited for the claim
        if tm is not None:
            return tm
        with seeded(seed, dev):  # the caller's global random state is left as it was
            return _fit(regime, cfg.fit, seed, params, train_ds, val_ds, store, dev, progress, callback)


def _fit(regime: str, t: FitConfig, seed: int, params: dict, train_ds: TensorImageDataset,
         val_ds: TensorImageDataset, store: ArtifactStore, dev: torch.device, progress: bool,
         callback) -> TrainedModel:
    """The training loop of :func:`train_model` (global RNGs already seeded with ``seed``; resumes from the
    stored state when there is one, and says so on the progress bar's stream)."""
    epochs, bs, lr = t.epochs, t.batch_size, t.lr
    precision = t.precision
    model = _build(params, dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=t.weight_decay)
    steps_per_epoch = math.ceil(len(train_ds) / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=t.pct_start
    )
    gen = torch.Generator().manual_seed(seed)
    xv, yv = val_ds.with_options(train=False).tensors()  # decoded + centre-cropped once, not every epoch
    xv, yv = nhwc(xv.to(dev)), yv.to(dev)
    attack = PGD(model, eps=t.adv_eps, alpha=t.adv_alpha, steps=t.adv_steps) if regime == "adversarial" else None

    history: dict[str, list] = {"train_loss": [], "train_acc": [], "val_acc": [], "val_loss": [], "lr": [], "seconds": []}
    best_state, best_epoch, start = None, 0, 0
    prev = store.load(STATE_KIND, params)
    if prev is not None:
        st = prev[0]
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        gen.set_state(st["generator"])
        _set_rng_state(st["rng"])
        history = {k: list(v) for k, v in st["history"].items()}
        best_state, best_epoch, start = st["best_state"], int(st["best_epoch"]), int(st["epoch"])

    bar = progress_bar(range(start, epochs), progress=progress, initial=start, total=epochs, desc=f"train {regime}")
    if prev is not None and not bar.disable:
        bar.write(f"train {regime}: resuming from epoch {start} of {epochs} (the stored train-state)", file=bar.fp)
    for epoch in bar:
        t0 = time.time()
        inner = progress_bar(train_ds.batches(bs, gen, dev), progress=progress, total=steps_per_epoch, leave=False,
                             desc=f"epoch {epoch + 1}")
        loss_sum, correct, n = train_epoch(model, opt, sched, inner, attack, dev, precision)
        model.eval()
        ev = eval_tensors(model, xv, yv, dev, 256, precision)
        history["train_loss"].append(loss_sum / n)
        history["train_acc"].append(correct / n)
        history["val_acc"].append(ev["acc"])
        history["val_loss"].append(ev["loss"])
        history["lr"].append(float(sched.get_last_lr()[0]))
        history["seconds"].append(time.time() - t0)
        if best_state is None or ev["acc"] >= max(history["val_acc"][:-1] or [-1.0]):
            best_state, best_epoch = _cpu_state_dict(model), epoch + 1
        bar.set_postfix(loss=f"{loss_sum / n:.3f}", train_acc=f"{correct / n:.3f}", val_acc=f"{ev['acc']:.3f}")
        store.save(
            STATE_KIND,
            params,
            {
                "model": _cpu_state_dict(model), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "generator": gen.get_state(), "rng": _rng_state(), "history": history,
                "best_state": best_state, "best_epoch": best_epoch, "epoch": epoch + 1,
            },
            {"regime": regime, "epoch": epoch + 1, "device": str(dev)},
        )
        if callback is not None:
            callback(epoch + 1, history)

    assert best_state is not None
    bad = [k for k, v in best_state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad or not math.isfinite(history["train_loss"][best_epoch - 1]):
        raise RuntimeError(f"training the {regime} model diverged (non-finite {'weights ' + bad[0] if bad else 'loss'} "
                           f"at epoch {best_epoch}); not saved. Lower train.lr or check the data")
    model.load_state_dict(best_state)
    model.eval()
    b = best_epoch - 1
    metrics: dict[str, Any] = {
        "val_acc": history["val_acc"][b], "best_epoch": best_epoch, "final_val_acc": history["val_acc"][-1],
        "train_acc": history["train_acc"][b], "train_loss": history["train_loss"][b],
        "seconds": float(sum(history["seconds"])), "n_train": len(train_ds), "n_val": len(val_ds),
    }
    if regime in t.robust_eval_regimes:
        x, y = val_ds.with_options(train=False).tensors()
        k = t.robust_eval_n
        if k is not None and k < len(y):  # a seeded random subset (val is sorted by class)
            idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:k].sort().values
            x, y = x[idx], y[idx]
        r = robust_accuracy(model, x, y, pgd_settings(t.as_dict()), seed=seed, progress=progress)
        metrics.update({f"pgd_{k2}": v for k2, v in r.items()})
    meta = {
        "regime": regime, "seed": seed, "epoch": best_epoch, "metrics": metrics, "history": history,
        "device": str(dev), "versions": versions(), "classes": list(val_ds.classes),
    }
    path = store.save(MODEL_KIND, params, {"state_dict": best_state}, meta)
    store.delete(STATE_KIND, params)  # the finished model supersedes the resumable state
    for p in model.parameters():
        p.requires_grad_(False)
    return TrainedModel(model, regime, params, metrics, history, path, meta)


def get_or_train(regime: str, config: TrainingConfig | Any, **kw) -> TrainedModel:
    """The finished model from the store if present, else train it (resuming an interrupted run)."""
    kw.setdefault("reuse", True)
    return train_model(regime, config, **kw)
