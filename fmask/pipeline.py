"""Cached stages the notebooks call: models -> validation data -> dataset masks -> single-image masks.

Every stage result is an artifact of :class:`fmask.store.ArtifactStore`, keyed by *all* parameters that
shape it (the profile's relevant section, the seed, the identity of the upstream artifacts and a stage
format version). A second call with the same parameters loads the artifact instead of recomputing it;
different parameters give a different key, so artifacts are never mixed. Stages that compute record
their wall-clock time through :func:`fmask.report.record_runtime` (stage names ``dataset_mask.<regime>``,
``single_image_selection``, ``single_image_masks.<which>``, ``robust_accuracy.<regime>``) and in the
artifact's metadata (``seconds``), so the time is known when the artifact is later loaded.

Usage (what the notebooks do)::

    run = Run.from_profile("cpu", data_root=None, artifacts=None, results_dir="results")
    models = run.models()                  # regime -> TrainedModel (model, metrics, history)
    x, y = run.val_data()                  # (N, C, S, S) in [0, 1], (N,)
    masks = run.dataset_masks()            # regime -> MaskResult (1, C, S, S)
    sel = run.single_image_selection()     # Selection (images, labels, PGD images, counts)
    sm = run.single_image_masks()          # {"vanilla", "adversarial", "pgd"} -> MaskResult (n, C, S, S)

Regimes: ``vanilla``, ``adversarial``, ``scale``, ``translate``, ``rotate`` (the paper's A-E).
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from fmask import report
from fmask.analysis import REGIMES, predict
from fmask.learn import MaskResult, learn_masks
from fmask.store import ArtifactStore

__all__ = ["Run", "TrainedModel", "Selection", "STAGE_VERSION", "SINGLE_MASK_KINDS"]

#: bump when a stage's computation changes so that old artifacts are not reused
STAGE_VERSION = 2
#: which single-image mask sets :meth:`Run.single_image_masks` learns
SINGLE_MASK_KINDS: tuple[str, ...] = ("vanilla", "adversarial", "pgd")


@dataclass
class TrainedModel:
    """A trained, frozen classifier and what training recorded.

    ``model``: the network (eval mode, on the run's device), taking (N, C, S, S) images in [0, 1];
    ``metrics``: final numbers from training (e.g. best validation accuracy); ``history``: per-epoch
    series (metric name -> list); ``key``: the artifact identity of the checkpoint (params dict).
    """

    regime: str
    model: nn.Module
    metrics: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    key: dict[str, Any] = field(default_factory=dict)


@dataclass
class Selection:
    """Validation images chosen for single-image masks (see :meth:`Run.single_image_selection`).

    ``idx``: indices into :meth:`Run.val_data` (sorted); ``images`` (n, C, S, S) in [0, 1]; ``labels``
    (n,) true labels (= the vanilla and the adversarially trained models' predictions); ``adv_images``
    (n, C, S, S) PGD images of the vanilla model; ``adv_predictions`` (n,) its predictions on them;
    ``counts``: how many validation images passed each criterion; ``criterion``: the rule used
    (``both_correct_and_fooled`` normally; a weaker one only if that leaves no image, see
    :meth:`Run.single_image_selection`); ``predictions``: the vanilla model's predictions on ``images``.
    """

    idx: Tensor
    images: Tensor
    labels: Tensor
    adv_images: Tensor
    adv_predictions: Tensor
    counts: dict[str, int]
    params: dict[str, Any] = field(default_factory=dict)
    criterion: str = "both_correct_and_fooled"
    predictions: Tensor | None = None


def _section(profile: Mapping[str, Any], name: str) -> dict[str, Any]:
    sec = profile.get(name)
    if sec is None:
        return {}
    if not isinstance(sec, Mapping):
        raise ValueError(f"profile section {name!r} must be a mapping; got {type(sec).__name__}")
    return dict(sec)


def _resolve_device(device: str | torch.device | None, profile_device: str | None) -> torch.device:
    d = device if device is not None else (profile_device or "auto")
    if isinstance(d, torch.device):
        return d
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d not in ("cpu", "cuda") and not str(d).startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {d!r}")
    return torch.device(d)


def _mask_schedule(value: Any, per_image: bool) -> str | None:
    """Translate a profile's ``schedule`` entry into :func:`fmask.learn.learn_masks`'s ``schedule``.

    Profiles may give the original's flag, a OneCycleLR ``pct_start`` number (e.g. ``0.1``): for dataset
    masks that is the one-cycle schedule (learn uses pct_start 0.1, the original's value; other numbers are
    rejected); for per-image masks it means the original's never-finished warm-up, whose effective lr is
    almost constant, so it maps to a constant lr (``None``) unless ``"original"`` is asked for explicitly.
    Strings (``default``, ``constant``, ``onecycle``, ``original``) and ``None`` pass through.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"mask schedule must be a string, null or a pct_start number; got {value!r}")
    if per_image:
        return None
    if abs(float(value) - 0.1) > 1e-12:
        raise ValueError(f"dataset-mask schedule pct_start {value} is not supported (fmask.learn uses 0.1)")
    return "onecycle"


def _mask_payload(res: MaskResult) -> dict[str, Any]:
    return {
        "masks": res.masks.detach().cpu().float(),
        "steps": res.steps.detach().cpu(),
        "converged": res.converged.detach().cpu(),
        "history": {k: v.detach().cpu() for k, v in res.history.items()},
        "params": dict(res.params),
    }


def _mask_from_payload(payload: Mapping[str, Any], metadata: Mapping[str, Any]) -> MaskResult:
    return MaskResult(
        masks=payload["masks"],
        steps=payload["steps"],
        converged=payload["converged"],
        history=dict(payload["history"]),
        params=dict(payload["params"]),
        metadata=dict(metadata),
    )


class Run:
    """One profile's run of the pipeline: where data, artifacts and results live, and the cached stages.

    Args:
        profile: a profile dict as returned by :func:`fmask.profiles.load_profile` (keys ``name``,
            ``seed``, ``device``, ``data``, ``model``, ``train``, ``dataset_mask``, ``single_mask``,
            ``analysis``).
        data_root: Imagenette folder; None -> ``$FMASK_DATA`` (then the download cache, see
            :func:`fmask.data.find_data_root`).
        artifacts: artifact folder; None -> ``$FMASK_ARTIFACTS`` or ``./artifacts``.
        results_dir: where :mod:`fmask.report` result files go; None -> ``./results``.
        device: overrides the profile's ``device`` (``auto`` | ``cpu`` | ``cuda``).
    """

    def __init__(
        self,
        profile: Mapping[str, Any],
        data_root: str | os.PathLike | None = None,
        artifacts: str | os.PathLike | ArtifactStore | None = None,
        results_dir: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        progress: bool = True,
    ) -> None:
        if not isinstance(profile, Mapping):
            raise ValueError(f"profile must be a dict (see fmask.profiles.load_profile); got {type(profile).__name__}")
        for key in ("name", "seed"):
            if key not in profile:
                raise ValueError(f"profile lacks the key {key!r}")
        self.profile: dict[str, Any] = dict(profile)
        self.name: str = str(profile["name"])
        self.seed: int = int(profile["seed"])
        if data_root in (None, ""):
            data_root = _section(profile, "data").get("root")
        self.data_root = None if data_root in (None, "") else Path(data_root)
        self.store = artifacts if isinstance(artifacts, ArtifactStore) else ArtifactStore(artifacts)
        self.results_dir = Path(results_dir) if results_dir is not None else Path("results")
        self.device = _resolve_device(device, profile.get("device"))
        self.progress = progress
        self._models: dict[str, TrainedModel] = {}
        self._ds = None
        self._val: tuple[Tensor, Tensor] | None = None
        self._val_meta: dict[str, Any] | None = None
        self._dataset_masks: dict[str, MaskResult] = {}
        self._selection: Selection | None = None
        self._single: dict[str, MaskResult] = {}
        self._robust: dict[str, dict[str, float]] = {}
        #: stage name -> "computed" | "loaded" for everything this Run produced
        self.provenance: dict[str, str] = {}

    # ------------------------------------------------------------------------------------ construction
    @classmethod
    def from_profile(
        cls,
        profile: str | os.PathLike | Mapping[str, Any],
        data_root: str | os.PathLike | None = None,
        artifacts: str | os.PathLike | ArtifactStore | None = None,
        results_dir: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        progress: bool = True,
    ) -> "Run":
        """A :class:`Run` for a profile name / YAML path (loaded with :func:`fmask.profiles.load_profile`) or dict."""
        if not isinstance(profile, Mapping):
            from fmask.profiles import load_profile

            profile = load_profile(profile)
        return cls(profile, data_root=data_root, artifacts=artifacts, results_dir=results_dir, device=device,
                   progress=progress)

    def __repr__(self) -> str:
        return f"Run(profile={self.name!r}, store={self.store!r}, results_dir={str(self.results_dir)!r}, device={self.device})"

    # ---------------------------------------------------------------------------------------- sections
    @property
    def data_params(self) -> dict[str, Any]:
        return _section(self.profile, "data")

    @property
    def dataset_mask_params(self) -> dict[str, Any]:
        return _section(self.profile, "dataset_mask")

    @property
    def single_mask_params(self) -> dict[str, Any]:
        return _section(self.profile, "single_mask")

    @property
    def analysis_params(self) -> dict[str, Any]:
        return _section(self.profile, "analysis")

    @property
    def regimes(self) -> list[str]:
        r = _section(self.profile, "train").get("regimes", list(REGIMES))
        bad = [x for x in r if x not in REGIMES]
        if bad:
            raise ValueError(f"unknown regimes {bad} in profile {self.name!r}; known: {list(REGIMES)}")
        return [x for x in REGIMES if x in r]  # the paper's order A-E

    # ------------------------------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time a block and record it with :func:`fmask.report.record_runtime` under this profile."""
        with report.timed(self.results_dir, stage, profile=self.name):
            yield

    def save_result(self, name: str, values: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
        """:func:`fmask.report.save_result` with this run's profile and seed recorded."""
        m = {"seed": self.seed}
        if meta:
            m.update(dict(meta))
        return report.save_result(self.results_dir, name, values, profile=self.name, meta=m)

    def _record(self, stage: str, seconds: float) -> None:
        report.record_runtime(self.results_dir, stage, seconds, profile=self.name)

    def _cached(self, kind: str, params: Mapping[str, Any]):
        return self.store.load(kind, params)

    # ------------------------------------------------------------------------------------------- models
    def models(self, regimes: Sequence[str] | None = None) -> dict[str, TrainedModel]:
        """Trained models for ``regimes`` (default: the profile's), trained or loaded via :mod:`fmask.train`."""
        return {r: self.model(r) for r in (regimes or self.regimes)}

    def model(self, regime: str) -> TrainedModel:
        """The trained model of one regime (cached in memory and in the artifact store)."""
        if regime not in REGIMES:
            raise ValueError(f"unknown regime {regime!r}; choose one of {list(REGIMES)}")
        if regime not in self._models:
            self._models[regime] = self._get_or_train(regime)
        return self._models[regime]

    def _datasets(self):
        """(train, val) :class:`fmask.data.TensorImageDataset` of the profile (decoded once, cached in the store)."""
        if self._ds is None:
            from fmask.train import load_datasets

            self._ds = load_datasets(self.profile, self.data_root, self.store, self.progress)
        return self._ds

    def _get_or_train(self, regime: str) -> TrainedModel:
        from fmask import train

        t0 = time.perf_counter()
        kw = dict(data_root=self.data_root, store=self.store, device=self.device, datasets=self._datasets(),
                  progress=self.progress)
        tm = train.load_model(regime, self.profile, **kw)
        if tm is not None:
            self.provenance[f"train.{regime}"] = "loaded"
        else:
            tm = train.get_or_train(regime, self.profile, **kw)
            self._record(f"train.{regime}", time.perf_counter() - t0)
            self.provenance[f"train.{regime}"] = "computed"
        tm.model.eval()
        return TrainedModel(regime=regime, model=tm.model, metrics=dict(tm.metrics), history=dict(tm.history),
                            key=dict(tm.params))

    # ----------------------------------------------------------------------------------------- val data
    def val_data(self) -> tuple[Tensor, Tensor]:
        """The validation images (N, C, S, S) float32 in [0, 1] and labels (N,), eval transform.

        Sized by the profile's ``data`` section (``image_size``, ``channels``, ``classes``, ``max_per_class``
        or ``max_per_class_val``), loaded with :func:`fmask.train.load_datasets` exactly as for training
        (the decoded images are cached in the store).
        """
        if self._val is None:
            ds = self._datasets()[1]
            x, y = ds.tensors()
            d = self.data_params
            self._val = (x.float(), y.long())
            self._val_meta = {
                "n": int(y.numel()),
                "classes": list(ds.classes),
                "image_size": int(x.shape[-1]),
                "channels": int(x.shape[1]),
                "files": list(ds.paths),
                "data": {k: d[k] for k in sorted(d) if k != "root"},
            }
        return self._val

    @property
    def class_names(self) -> list[str]:
        """Human-readable names of the classes, in label order."""
        from fmask.data import CLASS_NAMES

        self.val_data()
        assert self._val_meta is not None
        return [CLASS_NAMES.get(w, w) for w in self._val_meta["classes"]]

    def _val_identity(self) -> dict[str, Any]:
        """What identifies the validation tensors: the data section and a hash of the file list."""
        import hashlib

        self.val_data()
        assert self._val_meta is not None
        files = "\n".join(self._val_meta["files"])
        return {
            "data": self._val_meta["data"],
            "n": self._val_meta["n"],
            "files_sha256": hashlib.sha256(files.encode()).hexdigest(),
        }

    # ------------------------------------------------------------------------------------ dataset masks
    def dataset_masks(self, regimes: Sequence[str] | None = None) -> dict[str, MaskResult]:
        """One dataset mask per model, learned on the validation set (the original's choice), cached."""
        return {r: self.dataset_mask(r) for r in (regimes or self.regimes)}

    def dataset_mask_key(self, regime: str) -> dict[str, Any]:
        """The artifact parameters of a dataset mask (model identity, data, settings, seed)."""
        return {
            "stage": "dataset_mask",
            "version": STAGE_VERSION,
            "regime": regime,
            "model": self.model(regime).key,
            "val": self._val_identity(),
            "settings": self.dataset_mask_params,
            "seed": self.seed,
        }

    def dataset_mask(self, regime: str) -> MaskResult:
        """The dataset mask (1, C, S, S) of one regime's model (loaded when already learned)."""
        if regime in self._dataset_masks:
            return self._dataset_masks[regime]
        key = self.dataset_mask_key(regime)
        hit = self._cached("dataset_mask", key)
        if hit is not None:
            res = _mask_from_payload(*hit)
            self.provenance[f"dataset_mask.{regime}"] = "loaded"
        else:
            x, y = self.val_data()
            s = self.dataset_mask_params
            t0 = time.perf_counter()
            res = learn_masks(
                self.model(regime).model, x, y, per_image=False,
                lam=s.get("lam"), lr=s.get("lr"), steps=s.get("epochs", s.get("steps")),
                batch_size=s.get("batch_size"), patience=s.get("patience"), schedule=_mask_schedule(s.get("schedule", "default"), False),
                seed=self.seed, device=self.device, progress=self.progress, desc=f"dataset mask ({regime})",
            )
            secs = time.perf_counter() - t0
            res.metadata.update({"seconds": secs, "regime": regime, "profile": self.name})
            self.store.save("dataset_mask", key, _mask_payload(res), res.metadata)
            self._record(f"dataset_mask.{regime}", secs)
            self.provenance[f"dataset_mask.{regime}"] = "computed"
        self._dataset_masks[regime] = res
        return res

    # ---------------------------------------------------------------------------------------- PGD
    def pgd_settings(self) -> dict[str, Any]:
        """PGD settings (L_inf, pixel units): ``eps``, ``alpha`` (default eps/8 as the original), ``steps``.

        Read from ``analysis.pgd_eps`` / ``pgd_alpha`` / ``pgd_steps``, else the training section's
        ``adv_eps`` / ``adv_alpha`` / ``adv_steps`` (the original attacked with its training ε), else
        :data:`fmask.attacks.DEFAULT_EPS` and 10 steps.
        """
        from fmask.attacks import DEFAULT_EPS

        a = self.analysis_params
        t = _section(self.profile, "train")
        eps = a.get("pgd_eps", t.get("adv_eps", t.get("eps", DEFAULT_EPS)))
        steps = int(a.get("pgd_steps", t.get("adv_steps", 10)))
        alpha = a.get("pgd_alpha", t.get("adv_alpha"))
        alpha = float(alpha) if alpha is not None else float(eps) / 8.0
        return {"eps": float(eps), "alpha": alpha, "steps": steps}

    def _pgd(self, model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 128) -> Tensor:
        """PGD images (CPU) of ``x`` against ``model``; random starts seeded with the run's seed."""
        from fmask.attacks import PGD

        s = self.pgd_settings()
        atk = PGD(model, eps=s["eps"], alpha=s["alpha"], steps=s["steps"])
        outs = []
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            for i in range(0, x.shape[0], batch_size):
                xb = x[i : i + batch_size].to(self.device)
                yb = y[i : i + batch_size].to(self.device)
                outs.append(atk(xb, yb).cpu())
        return torch.cat(outs) if outs else x[:0].clone()

    def robust_accuracy(self, regime: str) -> dict[str, float]:
        """Clean and PGD accuracy (fractions) of one regime's model on the validation set, cached."""
        if regime in self._robust:
            return self._robust[regime]
        key = {"stage": "robust_accuracy", "version": STAGE_VERSION, "regime": regime,
               "model": self.model(regime).key, "val": self._val_identity(), "pgd": self.pgd_settings(),
               "seed": self.seed}
        hit = self._cached("robust_accuracy", key)
        if hit is not None:
            payload, _ = hit
            out = {k: float(v) for k, v in payload.items()}
            self.provenance[f"robust_accuracy.{regime}"] = "loaded"
        else:
            x, y = self.val_data()
            m = self.model(regime).model
            t0 = time.perf_counter()
            clean = float((predict(m, x, device=self.device) == y).float().mean())
            xa = self._pgd(m, x, y)
            robust = float((predict(m, xa, device=self.device) == y).float().mean())
            secs = time.perf_counter() - t0
            out = {"clean": clean, "pgd": robust}
            self.store.save("robust_accuracy", key, out, {"seconds": secs, "profile": self.name})
            self._record(f"robust_accuracy.{regime}", secs)
            self.provenance[f"robust_accuracy.{regime}"] = "computed"
        self._robust[regime] = out
        return out

    # -------------------------------------------------------------------------------- single images
    def single_image_selection(self) -> Selection:
        """Validation images for single-image masks, as in the original ``train_single_img_masks.py``.

        Kept: images that the vanilla **and** the adversarially trained model classify correctly and
        whose PGD image (attacking the vanilla model) the vanilla model misclassifies. (The original
        kept images where the two models agree on correctness and PGD flips the vanilla model's
        correctness; restricted to correctly classified images, as the paper describes, that is this.)
        At most ``single_mask.n_images`` are kept, drawn with a seeded generator, in validation order.

        If no image meets that rule (e.g. barely trained smoke-profile models) the first non-empty of
        ``vanilla_fooled`` (vanilla correct, PGD fools it), ``vanilla_correct`` and ``all`` is used
        instead; ``Selection.criterion`` says which, and the notebook prints it.
        """
        if self._selection is not None:
            return self._selection
        s = self.single_mask_params
        n_images = s.get("n_images")
        key = {"stage": "single_image_selection", "version": STAGE_VERSION,
               "vanilla": self.model("vanilla").key, "adversarial": self.model("adversarial").key,
               "val": self._val_identity(), "pgd": self.pgd_settings(),
               "n_images": None if n_images is None else int(n_images), "seed": self.seed}
        hit = self._cached("single_image_selection", key)
        if hit is not None:
            p, _ = hit
            sel = Selection(idx=p["idx"], images=p["images"], labels=p["labels"], adv_images=p["adv_images"],
                            adv_predictions=p["adv_predictions"], counts={k: int(v) for k, v in p["counts"].items()},
                            params=key, criterion=str(p["criterion"]), predictions=p["predictions"])
            self.provenance["single_image_selection"] = "loaded"
        else:
            t0 = time.perf_counter()
            x, y = self.val_data()
            van = self.model("vanilla").model
            adv = self.model("adversarial").model
            p_van = predict(van, x, device=self.device)
            ok_van = p_van == y
            ok_adv = predict(adv, x, device=self.device) == y
            xa = self._pgd(van, x, y)
            pa = predict(van, xa, device=self.device)
            flipped = ok_van & (pa != y)
            strict = flipped & ok_adv
            counts = {"validation": int(y.numel()), "vanilla_correct": int(ok_van.sum()),
                      "adversarial_correct": int(ok_adv.sum()), "both_correct": int((ok_van & ok_adv).sum()),
                      "vanilla_fooled": int(flipped.sum()), "candidates": int(strict.sum())}
            # the paper's criterion first; weaker ones only when it leaves nothing (tiny smoke models)
            criterion, mask = next(
                (name, m) for name, m in (("both_correct_and_fooled", strict), ("vanilla_fooled", flipped),
                                          ("vanilla_correct", ok_van), ("all", torch.ones_like(ok_van)))
                if bool(m.any())
            )
            idx = torch.nonzero(mask).flatten()
            if n_images is not None and idx.numel() > int(n_images):
                g = torch.Generator().manual_seed(self.seed)
                idx = torch.sort(idx[torch.randperm(idx.numel(), generator=g)[: int(n_images)]]).values
            counts["selected"] = int(idx.numel())
            sel = Selection(idx=idx, images=x[idx].clone(), labels=y[idx].clone(), adv_images=xa[idx].clone(),
                            adv_predictions=pa[idx].clone(), counts=counts, params=key, criterion=criterion,
                            predictions=p_van[idx].clone())
            secs = time.perf_counter() - t0
            self.store.save("single_image_selection", key,
                            {"idx": sel.idx, "images": sel.images, "labels": sel.labels,
                             "adv_images": sel.adv_images, "adv_predictions": sel.adv_predictions,
                             "predictions": sel.predictions, "counts": counts, "criterion": criterion},
                            {"seconds": secs, "profile": self.name})
            self._record("single_image_selection", secs)
            self.provenance["single_image_selection"] = "computed"
        self._selection = sel
        return sel

    def single_image_masks(self, which: Sequence[str] = SINGLE_MASK_KINDS) -> dict[str, MaskResult]:
        """Per-image masks of the selected images, batched through :func:`fmask.learn.learn_masks`.

        * ``vanilla``: vanilla model, clean images (targets: its predictions = the true labels);
        * ``adversarial``: adversarially trained model, the same clean images and targets;
        * ``pgd``: vanilla model, the PGD images (targets: its predictions on them, as the original).
        """
        out = {}
        for w in which:
            if w not in SINGLE_MASK_KINDS:
                raise ValueError(f"unknown single-image mask set {w!r}; choose from {SINGLE_MASK_KINDS}")
            out[w] = self._single_masks(w)
        return out

    def _single_masks(self, which: str) -> MaskResult:
        if which in self._single:
            return self._single[which]
        sel = self.single_image_selection()
        regime = "adversarial" if which == "adversarial" else "vanilla"
        settings = {k: v for k, v in self.single_mask_params.items() if k != "n_images"}
        key = {"stage": "single_image_masks", "version": STAGE_VERSION, "which": which,
               "model": self.model(regime).key, "selection": sel.params, "settings": settings,
               "seed": self.seed}
        hit = self._cached("single_image_masks", key)
        if hit is not None:
            res = _mask_from_payload(*hit)
            self.provenance[f"single_image_masks.{which}"] = "loaded"
        else:
            images = sel.adv_images if which == "pgd" else sel.images
            # the original's targets: the vanilla model's predictions (= the labels for the paper's criterion)
            targets = sel.adv_predictions if which == "pgd" else (
                sel.predictions if sel.predictions is not None else sel.labels)
            s = settings
            t0 = time.perf_counter()
            res = learn_masks(
                self.model(regime).model, images, targets, per_image=True,
                lam=s.get("lam"), lr=s.get("lr"), steps=s.get("steps"), patience=s.get("patience"),
                batch_size=s.get("batch_size"), schedule=_mask_schedule(s.get("schedule", "default"), True),
                seed=self.seed, device=self.device, progress=self.progress, desc=f"single-image masks ({which})",
            )
            secs = time.perf_counter() - t0
            res.metadata.update({"seconds": secs, "which": which, "profile": self.name})
            self.store.save("single_image_masks", key, _mask_payload(res), res.metadata)
            self._record(f"single_image_masks.{which}", secs)
            self.provenance[f"single_image_masks.{which}"] = "computed"
        self._single[which] = res
        return res
