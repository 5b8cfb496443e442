"""Cached stages the notebooks call: models -> validation data -> dataset masks -> single-image masks.

:class:`Run` is wiring only: models from :mod:`fmask.training.fit`, data from :mod:`fmask.data`, PGD from
:mod:`fmask.training.attacks`, the single-image rule from :func:`fmask.experiment.selection.select_images`, masks from
:class:`fmask.learners.DatasetMask` / :class:`~fmask.learners.PerImageMasks` (given their profile sections as keyword
arguments), load-or-compute-save-time from :func:`fmask.experiment.stages.cached_stage`. Every stage is an artifact keyed
by *all* parameters that shape it (profile section, seed, upstream identities, :data:`STAGE_VERSION`);
computed stages record their seconds (``dataset_mask.<regime>``, ``single_image_selection``,
``single_image_masks.<which>``, ``single_image_adversarial_attack``, ``robust_accuracy.<regime>``,
``train.<regime>``; replicate ``k > 0`` of a model or dataset mask: ``train.<regime>.rK``,
``dataset_mask.<regime>.rK``).

Usage (what the notebooks do)::

    run = Run.from_profile("cpu", data_root=None, artifacts=None, results_dir="results")
    models = run.models()                  # regime -> fmask.training.fit.TrainedModel (model, metrics, history)
    reps = run.replicate_models()          # regime -> [TrainedModel of seed + k for k < train.replicates]
    x, y = run.val_data()                  # (N, C, S, S) in [0, 1], (N,)
    masks = run.dataset_masks()            # regime -> MaskResult (1, C, S, S)
    rmasks = run.replicate_dataset_masks() # regime -> [MaskResult per replicate]
    sel = run.single_image_selection()     # Selection (images, labels, PGD images, counts)
    sm = run.single_image_masks()          # {"vanilla", "adversarial", "pgd", "adversarial_pgd"} -> MaskResult

Regimes: :data:`fmask.data.regimes.REGIMES` (the paper's A-E order).

Replicates (``train.replicates``): replicate ``k`` of a regime is trained with seed ``seed + k`` and its
dataset mask is learned with the same seed; replicate 0 is the main model (single-image masks, attacks, heat
maps use only it). Stage names of replicate ``k > 0`` end in ``.rK`` (``train.vanilla.r1``,
``dataset_mask.vanilla.r1``); replicate 0's carry no suffix, and the number of replicates never enters a key.

Other modules add stages of their own (:mod:`fmask.experiment.variants`, :mod:`fmask.experiment.compare`) with
:meth:`Run.stage`, keyed by :meth:`Run.stage_key` and :meth:`Run.val_identity`.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from fmask.experiment import results as report
from fmask.analysis.accuracy import predict
from fmask.training.attacks import PGDSettings, pgd_images, pgd_settings, robust_accuracy
from fmask.learners import DatasetMask, MaskResult, PerImageMasks
from fmask.experiment.profile_schema import Profile
from fmask.experiment.profiles import load_profile, profile_from_mapping
from fmask.data.regimes import REGIMES, check_regime
from fmask.infra.runtime import resolve_device
from fmask.experiment.selection import Selection, balanced_subset, select_images
from fmask.experiment.stages import MASK_RESULT_IO, cached_stage
from fmask.infra.store import ArtifactStore
from fmask.training.fit import TrainedModel

__all__ = ["Run", "TrainedModel", "Selection", "STAGE_VERSION", "SINGLE_MASK_KINDS", "REGIMES"]  # re-exports too

#: part of every stage key (:meth:`Run.stage_key`): bump when a stage's computation changes so that artifacts
#: of the earlier computation are not reused
STAGE_VERSION = 3
#: which single-image mask sets :meth:`Run.single_image_masks` learns: ``vanilla`` M_N,X, ``adversarial`` M_A,X
#: (what the original code compares in Fig. 7), ``pgd`` M_N,X_A, ``adversarial_pgd`` M_A,X_A (the paper's Fig. 7)
SINGLE_MASK_KINDS: tuple[str, ...] = ("vanilla", "adversarial", "pgd", "adversarial_pgd")
#: kind -> (network regime, images): "clean", "pgd" (attacking the vanilla network) or "pgd_adversarial"
#: (attacking the adversarially trained network, :meth:`Run.adversarial_attack`)
_SINGLE_KIND_SOURCES: dict[str, tuple[str, str]] = {
    "vanilla": ("vanilla", "clean"), "adversarial": ("adversarial", "clean"), "pgd": ("vanilla", "pgd"),
    "adversarial_pgd": ("adversarial", "pgd_adversarial")}


class Run:
    """One profile's run of the pipeline: where data, artifacts and results live, and the cached stages.

    ``profile``: a :class:`fmask.experiment.profile_schema.Profile` or a plain dict (validated; missing sections: defaults);
    ``data_root``: None -> ``data.root``, else ``$FMASK_DATA`` (:func:`fmask.data.find_data_root`);
    ``artifacts``: folder or store (None -> :func:`fmask.infra.store.default_root`: ``$FMASK_ARTIFACTS``, else
    ``<repo>/artifacts`` in a source checkout, else ``~/.cache/fmask/artifacts``); ``results_dir``: for
    :mod:`fmask.experiment.results` (None -> ``results`` beside the store's root, i.e. ``<store root>/../results``, an
    absolute path that does not depend on the working directory; the book passes ``<out>/book/results``);
    ``device``: overrides the profile's.
    """

    def __init__(self, profile: Profile | Mapping[str, Any], data_root: str | os.PathLike | None = None,
                 artifacts: str | os.PathLike | ArtifactStore | None = None,
                 results_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
                 progress: bool = True) -> None:
        self.profile: Profile = profile_from_mapping(profile, strict=False)
        self.name: str = self.profile.name
        self.seed: int = self.profile.seed
        root = data_root if data_root not in (None, "") else self.profile.data.root
        self.data_root = None if root in (None, "") else Path(root)
        self.store = artifacts if isinstance(artifacts, ArtifactStore) else ArtifactStore(artifacts)
        self.results_dir = (Path(results_dir).expanduser().absolute() if results_dir is not None
                            else self.store.root.parent / "results")
        self.device = resolve_device(device if device is not None else self.profile.device)
        self.progress = progress
        self._models: dict[tuple[str, int], TrainedModel] = {}
        self._ds = None
        self._val: tuple[Tensor, Tensor] | None = None
        self._stages: dict[tuple[str, str], Any] = {}
        #: stage name -> "computed" | "loaded" for everything this Run produced
        self.provenance: dict[str, str] = {}

    @classmethod
    def from_profile(cls, profile: str | os.PathLike | Mapping[str, Any], data_root=None, artifacts=None,
                     results_dir=None, device=None, progress: bool = True) -> "Run":
        """A :class:`Run` for a profile name / YAML path (:func:`fmask.experiment.profiles.load_profile`), Profile or dict."""
        if not isinstance(profile, Mapping):
            profile = load_profile(profile)
        return cls(profile, data_root=data_root, artifacts=artifacts, results_dir=results_dir, device=device,
                   progress=progress)

    def __repr__(self) -> str:
        return f"Run(profile={self.name!r}, store={self.store!r}, results_dir={str(self.results_dir)!r}, device={self.device})"

    data_params = property(lambda self: self.profile["data"], doc="The ``data`` section as a plain dict.")
    dataset_mask_params = property(lambda self: self.profile["dataset_mask"], doc="``dataset_mask`` as a dict.")
    single_mask_params = property(lambda self: self.profile["single_mask"], doc="``single_mask`` as a dict.")

    @property
    def regimes(self) -> list[str]:
        """The profile's regimes in the paper's order A-E."""
        return list(self.profile.train.regimes)

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time a block and record it with :func:`fmask.experiment.results.record_runtime` under this profile."""
        with report.timed(self.results_dir, stage, profile=self.name):
            yield

    def save_result(self, name: str, values: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
        """:func:`fmask.experiment.results.save_result` with this run's profile and seed recorded."""
        return report.save_result(self.results_dir, name, values, profile=self.name,
                                  meta={"seed": self.seed, **dict(meta or {})})

    def stage(self, kind: str, name: str, key: Mapping[str, Any], compute: Callable[[], Any], **io: Any) -> Any:
        """One cached stage of this run: :func:`fmask.experiment.stages.cached_stage` on the run's store.

        ``kind``: the store folder; ``name``: the stage's name (its run time is recorded under it with the
        profile's name, its metadata carries it, and :attr:`provenance` records ``"computed"`` / ``"loaded"``
        under it); ``key``: the artifact parameters (usually :meth:`stage_key`); ``compute``: makes the value;
        ``io``: ``serialise`` / ``deserialise`` for ``cached_stage`` (:data:`fmask.experiment.stages.MASK_RESULT_IO`
        for a :class:`fmask.learners.MaskResult`). The value is kept in memory per ``(kind, key)``, so asking
        again with the same parameters returns the same object and other parameters never share it.
        """
        memo = (kind, self.store.key(key))
        if memo not in self._stages:
            value, status = cached_stage(self.store, kind, key, compute, runtime=(self.results_dir, self.name, name),
                                         metadata={"profile": self.name, "stage": name}, **io)
            self.provenance[name] = status
            self._stages[memo] = value
        return self._stages[memo]

    def models(self, regimes: Sequence[str] | None = None) -> dict[str, TrainedModel]:
        """Trained models (replicate 0) for ``regimes`` (default: the profile's), trained or loaded via
        :mod:`fmask.training.fit`."""
        return {r: self.model(r) for r in (regimes or self.regimes)}

    @property
    def n_replicates(self) -> int:
        """Training-seed replicates per regime (``train.replicates``; replicate ``k`` uses seed ``seed + k``)."""
        return int(self.profile.train.replicates)

    def replicate_seed(self, replicate: int) -> int:
        """The seed of replicate ``replicate``: ``profile.seed + replicate`` (0 <= replicate < n_replicates)."""
        if isinstance(replicate, bool) or not isinstance(replicate, int):
            raise ValueError(f"replicate must be an int, got {replicate!r}")
        if not 0 <= replicate < self.n_replicates:
            raise ValueError(f"replicate must be in [0, {self.n_replicates}) (train.replicates = "
                             f"{self.n_replicates}), got {replicate}")
        return self.seed + replicate

    def replicate_models(self, regimes: Sequence[str] | None = None) -> dict[str, list[TrainedModel]]:
        """All replicates of every regime: ``{regime: [replicate 0, 1, ...]}`` (seeds ``seed + k``).

        Trains what is not in the store, regime by regime and seed by seed, with an outer progress bar
        whose description names the regime, the replicate and its seed (the inner bars are
        :func:`fmask.training.fit.train_model`'s)."""
        from fmask.infra.runtime import progress_bar

        regimes = list(regimes or self.regimes)
        jobs = [(r, k) for r in regimes for k in range(self.n_replicates)]
        out: dict[str, list[TrainedModel]] = {r: [] for r in regimes}
        bar = progress_bar(jobs, progress=self.progress, desc="replicates", unit="model")
        for r, k in bar:
            bar.set_description(f"{r} replicate {k + 1}/{self.n_replicates} (seed {self.replicate_seed(k)})")
            out[r].append(self.model(r, replicate=k))
        bar.close()
        return out

    def _replicate_profile(self, replicate: int) -> Profile:
        """The profile that trains replicate ``k``: seed ``seed + k``; ``train.replicates`` set to its
        default 1 so that the number of replicates never enters a model's artifact key (it chooses how many
        models exist, not how one is made)."""
        from dataclasses import replace

        seed = self.replicate_seed(replicate)
        return replace(self.profile, seed=seed, train=replace(self.profile.train, replicates=1))

    @staticmethod
    def _suffix(replicate: int) -> str:
        """Stage-name suffix of a replicate: none for replicate 0, ``.rK`` else."""
        return "" if replicate == 0 else f".r{replicate}"

    def model(self, regime: str, replicate: int = 0) -> TrainedModel:
        """The trained model of one regime and replicate (cached in memory and in the artifact store).

        Replicate ``k`` is trained with seed ``profile.seed + k`` on the same data (the data subset is drawn
        with the profile's seed); replicate 0 is the model every chapter uses."""
        from fmask.training import fit as train

        check_regime(regime)
        self.replicate_seed(replicate)  # validates
        if (regime, replicate) not in self._models:
            kw = dict(data_root=self.data_root, store=self.store, device=self.device, datasets=self._datasets(),
                      progress=self.progress)
            prof = self._replicate_profile(replicate)
            stage = f"train.{regime}{self._suffix(replicate)}"
            tm = train.load_model(regime, prof, **kw)
            self.provenance[stage] = "loaded" if tm is not None else "computed"
            if tm is None:
                with self.timed(stage):
                    tm = train.get_or_train(regime, prof, **kw)
            tm.model.eval()
            self._models[(regime, replicate)] = tm
        return self._models[(regime, replicate)]

    def _datasets(self):
        """(train, val) :class:`fmask.data.TensorImageDataset` of the profile (decoded once, cached in the store)."""
        if self._ds is None:
            from fmask.training.fit import load_datasets

            self._ds = load_datasets(self.profile, self.data_root, self.store, self.progress)
        return self._ds

    def val_data(self) -> tuple[Tensor, Tensor]:
        """The validation images (N, C, S, S) float32 in [0, 1] and labels (N,), eval transform (as training)."""
        if self._val is None:
            x, y = self._datasets()[1].tensors()
            self._val = (x.float(), y.long())
        return self._val

    @property
    def class_names(self) -> list[str]:
        """Human-readable names of the classes, in label order."""
        from fmask.data import CLASS_NAMES

        return [CLASS_NAMES.get(w, w) for w in self._datasets()[1].classes]

    def val_identity(self) -> dict[str, Any]:
        """What identifies the validation tensors in stage keys: ``{"data": the data section minus root, "n": the
        number of images, "content_sha256": the fingerprint of their decoded content}``."""
        ds = self._datasets()[1]
        return {"data": {k: v for k, v in self.data_params.items() if k != "root"}, "n": len(ds),
                "content_sha256": ds.fingerprint()}

    def stage_key(self, stage: str, seed: int | None = None, **parts: Any) -> dict[str, Any]:
        """The artifact parameters of a stage: ``{"stage": stage, "version": STAGE_VERSION, **parts, "seed": seed}``
        (``seed`` default: the profile's). ``parts`` are everything else that shapes the stage (upstream model
        keys, :meth:`val_identity`, profile sections)."""
        return {"stage": stage, "version": STAGE_VERSION, **parts, "seed": self.seed if seed is None else seed}

    def dataset_masks(self, regimes: Sequence[str] | None = None) -> dict[str, MaskResult]:
        """One dataset mask per model (replicate 0), learned on the validation set (the original's choice)."""
        return {r: self.dataset_mask(r) for r in (regimes or self.regimes)}

    def replicate_dataset_masks(self, regimes: Sequence[str] | None = None) -> dict[str, list[MaskResult]]:
        """The dataset masks of every replicate: ``{regime: [replicate 0, 1, ...]}``."""
        return {r: [self.dataset_mask(r, k) for k in range(self.n_replicates)] for r in (regimes or self.regimes)}

    def dataset_mask_key(self, regime: str, replicate: int = 0) -> dict[str, Any]:
        """The artifact parameters of a dataset mask: model identity, validation data, ``dataset_mask`` settings and
        the replicate's seed ``seed + replicate``."""
        return self.stage_key("dataset_mask", seed=self.replicate_seed(replicate), regime=regime,
                              model=self.model(regime, replicate).key, val=self.val_identity(),
                              settings=self.dataset_mask_params)

    def dataset_mask(self, regime: str, replicate: int = 0) -> MaskResult:
        """The dataset mask (1, C, S, S) of one regime's model, replicate ``replicate`` (loaded when already
        learned); the mask learner's seed is the replicate's, ``seed + replicate``."""
        check_regime(regime)
        seed = self.replicate_seed(replicate)

        def compute() -> MaskResult:
            x, y = self.val_data()
            learner = DatasetMask(self.model(regime, replicate).model, **asdict(self.profile.dataset_mask),
                                  seed=seed, device=self.device, progress=self.progress)
            tag = "" if replicate == 0 else f", replicate {replicate + 1}/{self.n_replicates}, seed {seed}"
            return learner(x, y, desc=f"dataset mask ({regime}{tag})")

        return self.stage("dataset_mask", f"dataset_mask.{regime}{self._suffix(replicate)}",
                          self.dataset_mask_key(regime, replicate), compute, **MASK_RESULT_IO)

    def pgd_settings(self) -> dict[str, Any]:
        """The analyses' PGD (pixel units) ``{"eps", "alpha", "steps"}``: :func:`fmask.training.attacks.pgd_settings`
        of the profile's ``train`` and ``analysis`` sections."""
        return self._pgd.as_dict()

    @property
    def _pgd(self) -> PGDSettings:
        return pgd_settings(self.profile.train, self.profile.analysis)

    def robust_accuracy(self, regime: str) -> dict[str, float]:
        """Clean and PGD accuracy (fractions) ``{"clean", "pgd"}`` of one regime's model on the validation set."""
        key = self.stage_key("robust_accuracy", regime=check_regime(regime), model=self.model(regime).key,
                             val=self.val_identity(), pgd=self.pgd_settings())

        def compute() -> dict[str, float]:
            x, y = self.val_data()
            r = robust_accuracy(self.model(regime).model, x, y, self._pgd, seed=self.seed, device=self.device)
            return {"clean": float(r["clean_acc"]), "pgd": float(r["robust_acc"])}

        return self.stage("robust_accuracy", f"robust_accuracy.{regime}", key, compute,
                          deserialise=lambda p, m: {k: float(v) for k, v in p.items()})

    def single_image_selection(self) -> Selection:
        """Validation images for single-image masks: :func:`fmask.experiment.selection.select_images` (the paper's rule,
        weaker ones only if it leaves nothing; ``Selection.criterion`` says which) on the vanilla and the
        adversarially trained models, PGD against the vanilla model, at most ``selection.n_images``."""
        n_images = self.profile.selection.n_images
        key = self.stage_key("single_image_selection", vanilla=self.model("vanilla").key,
                             adversarial=self.model("adversarial").key, val=self.val_identity(),
                             pgd=self.pgd_settings(), n_images=n_images)

        def compute() -> Selection:
            x, y = self.val_data()
            van, adv = self.model("vanilla").model, self.model("adversarial").model
            p_van = predict(van, x, device=self.device)
            p_adv = predict(adv, x, device=self.device)
            xa = pgd_images(van, x, y, self._pgd, seed=self.seed, device=self.device)
            p_pgd = predict(van, xa, device=self.device)
            idx, criterion, counts = select_images(p_van, p_adv, p_pgd, y, n_images, self.seed)
            return Selection(idx=idx, images=x[idx].clone(), labels=y[idx].clone(), adv_images=xa[idx].clone(),
                             adv_predictions=p_pgd[idx].clone(), counts=counts, params=key, criterion=criterion,
                             predictions=p_van[idx].clone())

        return self.stage("single_image_selection", "single_image_selection", key, compute,
                          serialise=Selection.to_payload, deserialise=lambda p, m: Selection.from_payload(p, key))

    def adversarial_attack(self) -> dict[str, Tensor]:
        """PGD images of the selected images attacking the *adversarially trained* network (the analysis PGD,
        :meth:`pgd_settings`, seeded), for M_A,X_A (the paper's Fig. 7: "X_A-trained masks obtained for an
        adversarially trained network"). The original code never attacks that network for single-image
        masks (``train_single_img_masks.py`` calls ``model_predictions(..._adv.pt, adv_epsilon=0.)``), so
        the selection rule is the paper's: the same images as the other kinds (paired with M_N,X), whether or
        not the attack fools the robust network (``fooled`` says per image).

        Returns ``{"adv_images": (n, C, S, S) in [0, 1], "adv_predictions": (n,) int64 the adversarially
        trained network's predictions on them, "fooled": (n,) bool prediction != label}``; cached.
        """
        sel = self.single_image_selection()
        key = self.stage_key("single_image_adversarial_attack", adversarial=self.model("adversarial").key,
                             selection=sel.params, pgd=self.pgd_settings())

        def compute() -> dict[str, Tensor]:
            adv = self.model("adversarial").model
            xa = pgd_images(adv, sel.images, sel.labels, self._pgd, seed=self.seed, device=self.device)
            p = predict(adv, xa, device=self.device)
            return {"adv_images": xa.clone(), "adv_predictions": p.clone(), "fooled": (p != sel.labels).clone()}

        return self.stage("single_image_adversarial_attack", "single_image_adversarial_attack", key, compute)

    def paired_subset(self) -> Tensor:
        """Indices (sorted, int64) into the selection of the images whose ``adversarial``, ``pgd`` and
        ``adversarial_pgd`` masks are learned: a seeded class-balanced subset of ``selection.n_paired`` of
        them (:func:`fmask.experiment.selection.balanced_subset`, the profile's seed), or all when ``n_paired`` is null
        or not smaller than the selection. The ``vanilla`` masks are always learned for every selected image;
        comparisons with them (Fig. 7, band dominance) take the vanilla masks at these indices."""
        sel = self.single_image_selection()
        n = len(sel.labels)
        k = self.profile.selection.n_paired
        if k is None or int(k) >= n:
            return torch.arange(n, dtype=torch.long)
        return balanced_subset(sel.labels, int(k), self.seed)

    def single_image_masks(self, which: Sequence[str] = SINGLE_MASK_KINDS) -> dict[str, MaskResult]:
        """Per-image masks of the selected images (:class:`fmask.learners.PerImageMasks`, ``single_mask`` section).
        ``vanilla`` masks are learned for every selected image, the other kinds for the images of
        :meth:`paired_subset` only (row ``i`` of their masks belongs to selected image ``paired_subset()[i]``;
        their ``params["selection_indices"]`` lists those indices when the subset is a strict one).

        * ``vanilla`` (M_N,X): vanilla model, clean images (targets: its predictions = the true labels);
        * ``adversarial`` (M_A,X): adversarially trained model, the same clean images and targets (what the
          original code compares with M_N,X in its Fig. 7 notebook);
        * ``pgd`` (M_N,X_A): vanilla model, the PGD images (targets: its predictions on them, as the original);
        * ``adversarial_pgd`` (M_A,X_A, the paper's Fig. 7): adversarially trained model, the images attacked
          against it (:meth:`adversarial_attack`; targets: its predictions on them, as for ``pgd``).
        """
        bad = [w for w in which if w not in SINGLE_MASK_KINDS]
        if bad:
            raise ValueError(f"unknown single-image mask set {bad[0]!r}; choose from {SINGLE_MASK_KINDS}")
        return {w: self._single_masks(w) for w in which}

    def _single_masks(self, which: str) -> MaskResult:
        sel = self.single_image_selection()
        regime, source = _SINGLE_KIND_SOURCES[which]
        key = self.stage_key("single_image_masks", which=which, model=self.model(regime).key, selection=sel.params,
                             settings=self.single_mask_params)
        if source == "pgd_adversarial":
            key["attack"] = "pgd_adversarial"
        sub = None
        if which != "vanilla":
            pi = self.paired_subset()
            if pi.numel() < len(sel.labels):
                sub = pi
                key["n_paired"] = int(pi.numel())

        def compute() -> MaskResult:
            if source == "pgd_adversarial":
                att = self.adversarial_attack()
                images, targets = att["adv_images"], att["adv_predictions"]
            elif source == "pgd":
                images, targets = sel.adv_images, sel.adv_predictions
            else:
                # the original's targets: the vanilla model's predictions (= the labels for the paper's criterion)
                images, targets = sel.images, (sel.predictions if sel.predictions is not None else sel.labels)
            if sub is not None:
                images, targets = images[sub], targets[sub]
            learner = PerImageMasks(self.model(regime).model, **asdict(self.profile.single_mask), seed=self.seed,
                                    device=self.device, progress=self.progress)
            res = learner(images, targets, desc=f"single-image masks ({which})")
            if sub is not None:
                res.params["selection_indices"] = sub.tolist()
            return res

        return self.stage("single_image_masks", f"single_image_masks.{which}", key, compute, **MASK_RESULT_IO)
