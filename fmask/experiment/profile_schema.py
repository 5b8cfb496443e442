"""The profile schema: one typed, frozen section per concern and :class:`Profile`, the whole validated profile.

A profile has the top-level keys ``name``, ``seed``, ``device`` (``auto``|``cpu``|``cuda``|``cuda:K``) and one
section per concern, each a frozen dataclass that knows its defaults and validates itself when it is built
(before anything is trained):

==================  =====================================================================================
``data``            :class:`DataSection`: which Imagenette images, at which size (:mod:`fmask.data`)
``model``           :class:`ModelSection`: the architecture (:func:`fmask.models.zoo.build_model`)
``train``           :class:`TrainSection`: regimes and optimisation (:mod:`fmask.training.fit`)
``dataset_mask``    :class:`DatasetMaskSection`: exactly the keyword arguments of :class:`fmask.learners.DatasetMask`
``single_mask``     :class:`SingleMaskSection`: exactly the keyword arguments of :class:`fmask.learners.PerImageMasks`
``selection``       :class:`SelectionSection`: how many images get single-image masks (Table 2)
``analysis``        :class:`AnalysisSection`: bands, PGD for the analyses, linear probe, UMAP
``heatmap``         :class:`HeatmapSection`: Fourier heat maps and pass-band curves (chapters 9-10)
``compare``         :class:`CompareSection`: the second architecture of chapter 11 (:mod:`fmask.experiment.compare`)
==================  =====================================================================================

Within a section the keys of its ``REQUIRED`` must be written out in a profile file, the others take the
defaults given by the dataclass; the mask sections' defaults are :data:`fmask.core.objective.PER_IMAGE_DEFAULTS`
and :data:`~fmask.core.objective.DATASET_DEFAULTS`, and their λ, counts and precision are checked by
:mod:`fmask.core.objective`'s checks, as the learners check them. Field kinds and the generic checks:
:mod:`fmask.experiment.profile_fields`. Reading files and overrides: :mod:`fmask.experiment.profiles`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import yaml

from fmask.core.objective import (DATASET_DEFAULTS, PER_IMAGE_DEFAULTS, check_count, check_lam,
                                  check_precision)
from fmask.data.regimes import REGIMES
from fmask.experiment.profile_fields import Section, setting
from fmask.training.config import KEY_PRECISION, DataConfig, FitConfig, ModelConfig, TrainingConfig

__all__ = ["TOP_LEVEL_KEYS", "SECTIONS", "REQUIRED", "Profile", "DataSection", "ModelSection", "TrainSection",
           "DatasetMaskSection", "SingleMaskSection", "SelectionSection", "AnalysisSection", "HeatmapSection",
           "CompareSection"]

TOP_LEVEL_KEYS = ("name", "seed", "device", "data", "model", "train", "dataset_mask", "single_mask", "selection",
                  "analysis", "heatmap", "compare")
_PI, _DS = PER_IMAGE_DEFAULTS, DATASET_DEFAULTS


@dataclass(frozen=True)
class DataSection(Section):
    """Which images (:func:`fmask.data.load_split`). ``max_per_class_val`` null: same as ``max_per_class``."""

    NAME: ClassVar[str] = "data"
    REQUIRED: ClassVar[tuple[str, ...]] = ("root", "classes", "image_size", "channels", "max_per_class")
    root: str | None = setting(None, "path", optional=True)
    classes: Any = setting("paper", "classes")
    image_size: int = setting(128, "int", min=8)
    channels: int = setting(1, "choice", choices=(1, 3))
    max_per_class: int | None = setting(None, "int", optional=True, min=1)
    max_per_class_val: int | None = setting(None, "int", optional=True, min=1)
    skip_corrupt: bool = setting(False, "bool")


@dataclass(frozen=True)
class ModelSection(Section):
    """The classifier (:func:`fmask.models.zoo.build_model`); ``width_div`` only for the architectures in
    :data:`fmask.models.zoo.WIDTH_ARCHS` (``vgg_small``, ``resnet_small``; null: their default)."""

    NAME: ClassVar[str] = "model"
    REQUIRED: ClassVar[tuple[str, ...]] = ("arch",)
    arch: str = setting("vgg11_bn", "str")
    width_div: int | None = setting(None, "int", optional=True, min=1)

    def _validate(self) -> None:
        from fmask.models.zoo import ARCHS, WIDTH_ARCHS

        if self.arch not in ARCHS:
            raise ValueError(f"model.arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        if self.width_div is not None and self.arch not in WIDTH_ARCHS:
            raise ValueError(f"model.width_div applies to arch {' / '.join(WIDTH_ARCHS)} only, not {self.arch!r}")

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`fmask.models.zoo.build_model` besides the channels and classes."""
        return {k: v for k, v in self.to_dict().items() if v is not None}


#: the dtype names a train section may give its precision (the artifact key's spelling), read as the learners' words
_DTYPE_NAMES = {dtype: word for word, dtype in KEY_PRECISION.items()}


@dataclass(frozen=True)
class TrainSection(Section):
    """Training (:func:`fmask.training.fit.train_model`); defaults are the original ``flags.py`` values.

    PGD (pixel units): training uses ``adv_eps``, ``adv_steps``, ``adv_alpha`` (null: ε/8). The robust accuracy
    in the training metrics uses ``robust_eval_steps`` / ``robust_eval_alpha`` when set, else the training
    attack (see :func:`fmask.training.attacks.pgd_settings`), on ``robust_eval_n`` val images (null: all).

    ``replicates`` (int >= 1): training-seed replicates per regime for Table 1 and the band energies.
    Replicate ``k`` trains with seed ``profile.seed + k`` and learns its dataset mask with the
    same seed; replicate 0 (seed ``profile.seed``) is the run's main model that every other chapter uses.
    It chooses how many models to make, not how one is made, so it is not part of a model's artifact key.

    ``precision``: the network's arithmetic while training, in the vocabulary of the mask learners
    (:data:`fmask.core.objective.PRECISIONS`): ``auto`` (``exact`` on CPU, ``fast`` on CUDA; left out of the
    artifact key), ``exact`` (fp32) or ``fast`` (bf16 autocast; the loss in fp32). The dtype names ``fp32`` /
    ``bf16`` are read as ``exact`` / ``fast``.
    """

    NAME: ClassVar[str] = "train"
    REQUIRED: ClassVar[tuple[str, ...]] = ("regimes", "epochs", "batch_size", "lr", "pct_start", "adv_eps",
                                           "adv_steps", "replicates")
    regimes: tuple[str, ...] = setting(REGIMES, "regimes", nonempty=True)
    epochs: int = setting(50, "int", min=1)
    batch_size: int = setting(128, "int", min=1)
    lr: float = setting(1e-3, "float", min=0, min_inclusive=False)
    pct_start: float = setting(0.1, "float", min=0, max=1, min_inclusive=False, max_inclusive=False)
    weight_decay: float = setting(0.0, "float", min=0)
    adv_eps: float = setting(0.0136, "float", min=0, min_inclusive=False)
    adv_steps: int = setting(10, "int", min=1)
    adv_alpha: float | None = setting(None, "float", optional=True, min=0, min_inclusive=False)
    robust_eval_steps: int | None = setting(None, "int", optional=True, min=1)
    robust_eval_alpha: float | None = setting(None, "float", optional=True, min=0, min_inclusive=False)
    robust_eval_regimes: tuple[str, ...] = setting(("vanilla", "adversarial"), "regimes")
    robust_eval_n: int | None = setting(None, "int", optional=True, min=1)
    replicates: int = setting(1, "int", min=1)
    precision: str = setting("auto", "str")

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", _DTYPE_NAMES.get(self.precision, self.precision))
        super().__post_init__()

    def _validate(self) -> None:
        check_precision(self.precision, "train.precision", auto=True)

    def fit_config(self) -> FitConfig:
        """The optimisation settings of :mod:`fmask.training.fit` (every field but ``regimes`` / ``replicates``)."""
        return FitConfig(**{k: getattr(self, k) for k in self.keys_() if k not in ("regimes", "replicates")})


@dataclass(frozen=True)
class _LearnerSection(Section):
    """The keyword arguments both mask learners share (:mod:`fmask.learners.base`): where the mask acts
    (``space``), the network's precision (``exact`` | ``fast``; no ``auto``: the artifact key names the
    arithmetic), ``torch.compile``, mask channels, channels_last and BN folding."""

    space: str = setting("auto", "str")
    precision: str = setting("exact", "str")
    compile: bool = setting(False, "bool")
    channels: int | None = setting(None, "int", optional=True, min=1)
    channels_last: bool = setting(True, "bool")
    fuse_bn: bool = setting(True, "bool")

    def _validate(self) -> None:
        from fmask.core.mask import SPACES

        if self.space not in SPACES:
            raise ValueError(f"{self.NAME}.space must be one of {list(SPACES)}, got {self.space!r}")
        check_lam(getattr(self, "lam"), f"{self.NAME}.lam")
        check_precision(self.precision, f"{self.NAME}.precision")
        for key in ("steps", "epochs", "patience"):
            if hasattr(self, key):
                check_count(getattr(self, key), f"{self.NAME}.{key}")


@dataclass(frozen=True)
class DatasetMaskSection(_LearnerSection):
    """Exactly :class:`fmask.learners.DatasetMask`'s keyword arguments, with its defaults
    (:data:`fmask.core.objective.DATASET_DEFAULTS`).

    ``schedule``: ``onecycle`` (the original's OneCycleLR, pct_start 0.1) or ``constant``. A pct_start number
    (``0.1``) is read as ``onecycle``; other numbers are rejected.
    """

    NAME: ClassVar[str] = "dataset_mask"
    REQUIRED: ClassVar[tuple[str, ...]] = ("lam", "lr", "epochs", "batch_size", "patience", "schedule")
    lam: float = setting(_DS["lam"], "float")
    lr: float = setting(_DS["lr"], "float", min=0, min_inclusive=False)
    epochs: int = setting(_DS["epochs"], "int")
    patience: int = setting(_DS["patience"], "int")
    batch_size: int = setting(_DS["batch_size"], "int", min=1)
    schedule: str = setting(_DS["schedule"], "choice", choices=("onecycle", "constant"))

    def __post_init__(self) -> None:
        s = self.schedule
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            if abs(float(s) - _DS["pct_start"]) > 1e-12:
                raise ValueError(f"dataset_mask.schedule: pct_start {s} is not supported (one-cycle uses "
                                 f"{_DS['pct_start']}); "
                                 "write 'onecycle' or 'constant'")
            object.__setattr__(self, "schedule", "onecycle")
        elif s is None or s == "default":
            object.__setattr__(self, "schedule", "onecycle" if s == "default" else "constant")
        super().__post_init__()


@dataclass(frozen=True)
class SingleMaskSection(_LearnerSection):
    """Exactly :class:`fmask.learners.PerImageMasks`' keyword arguments, with its defaults
    (:data:`fmask.core.objective.PER_IMAGE_DEFAULTS`).

    ``lr``: null means the learner's default for the schedule (the default lr for ``constant``, the original's
    flag for ``original``). ``schedule``: ``constant`` or ``original`` (the original's never-finished one-cycle
    warm-up). A pct_start number or null means the original's schedule run with the paper's lr, whose
    effective lr is almost constant, so it is read as ``constant``.
    """

    NAME: ClassVar[str] = "single_mask"
    REQUIRED: ClassVar[tuple[str, ...]] = ("lam", "lr", "steps", "patience", "batch_size", "schedule")
    MOVED: ClassVar[dict[str, str]] = {"n_images": "selection.n_images"}
    lam: float = setting(_PI["lam"], "float")
    lr: float | None = setting(None, "float", optional=True, min=0, min_inclusive=False)
    steps: int = setting(_PI["steps"], "int")
    patience: int = setting(_PI["patience"], "int")
    batch_size: int = setting(_PI["batch_size"], "int", min=1)
    schedule: str = setting(_PI["schedule"], "choice", choices=("constant", "original"))
    log_every: int = setting(50, "int", min=1)
    compaction: bool = setting(True, "bool")

    def __post_init__(self) -> None:
        s = self.schedule
        if s is None or s == "default" or (isinstance(s, (int, float)) and not isinstance(s, bool)):
            object.__setattr__(self, "schedule", "constant")
        super().__post_init__()


@dataclass(frozen=True)
class SelectionSection(Section):
    """Which validation images get single-image masks (:func:`fmask.experiment.selection.select_images`); null: all."""

    NAME: ClassVar[str] = "selection"
    REQUIRED: ClassVar[tuple[str, ...]] = ("n_images",)
    n_images: int | None = setting(None, "int", optional=True, min=1)
    #: the three other single-mask kinds (M_A,X, M_N,X_A, M_A,X_A; :meth:`fmask.experiment.run.Run.paired_subset`)
    #: are learned on a seeded class-balanced subset of this many selected images; null: on all of them
    n_paired: int | None = setting(None, "int", optional=True, min=1)


@dataclass(frozen=True)
class AnalysisSection(Section):
    """Analyses: band counts, the analyses' PGD (null: the training section's, see
    :func:`fmask.training.attacks.pgd_settings`), the linear probe of Table 3 (with a permutation null of
    ``probe_null_permutations`` label shuffles) and UMAP
    (the original: 85 %, 20 neighbours)."""

    NAME: ClassVar[str] = "analysis"
    REQUIRED: ClassVar[tuple[str, ...]] = ("n_bands",)
    n_bands: int = setting(64, "int", min=1)
    pgd_eps: float | None = setting(None, "float", optional=True, min=0, min_inclusive=False)
    pgd_steps: int | None = setting(None, "int", optional=True, min=1)
    pgd_alpha: float | None = setting(None, "float", optional=True, min=0, min_inclusive=False)
    umap_neighbors: int = setting(20, "int", min=2)
    probe_repeats: int = setting(1, "int", min=1)
    probe_train_fraction: float = setting(0.85, "float", min=0, max=1, min_inclusive=False, max_inclusive=False)
    probe_C: float = setting(1.0, "float", min=0, min_inclusive=False)
    probe_null_permutations: int = setting(200, "int", min=1)  # label shuffles for the probe's permutation null


@dataclass(frozen=True)
class HeatmapSection(Section):
    """Fourier heat maps (Yin et al., 2019) and pass-band curves of chapter 9, the own-model appendix (10).

    * ``n_images``: validation images per heat map / pass-band curve, a subset drawn with the profile's seed
      (the same images for every network); the heat map's random signs use the profile's seed too.
    * ``eps``: L2 norm of the Fourier-basis perturbation in pixel units of [0, 1] images. Yin et al. use
      4 at 32 px (CIFAR-10) and 15.7 at 224 px (ImageNet): a per-pixel RMS ``eps / size`` of 0.125 and 0.070;
      the shipped profiles use ``eps = size / 16`` (RMS 0.0625, close to the ImageNet setting).
    * ``stride`` / ``window``: evaluate only frequencies whose signed components are multiples of ``stride``
      and (``window`` not null) at most ``window`` from DC (:func:`fmask.analysis.heatmap.heatmap_frequencies`).
    * ``batch_size``: perturbed images per forward pass.
    * ``n_radii``: radii of the low/high pass-band curves, ``linspace(0, max radius, n_radii)``.
    * ``n_bands``: radial bands of the rank correlation between mask and heat map.
    * ``n_bootstrap``: resamples of the images for the correlation's interval (0: no interval).
    * ``planted_train`` / ``planted_test``: images of the planted-frequency benchmark
      (:func:`fmask.data.synthetic.planted_frequency_dataset`, 32 px, 4 classes); its heat map uses the first
      ``n_images`` test images.
    * ``own_images`` / ``own_steps``: images and steps of the per-image masks of the own-model appendix.
    """

    NAME: ClassVar[str] = "heatmap"
    REQUIRED: ClassVar[tuple[str, ...]] = ("n_images", "eps", "stride", "batch_size")
    n_images: int = setting(64, "int", min=1)
    eps: float = setting(4.0, "float", min=0, min_inclusive=False)
    stride: int = setting(1, "int", min=1)
    window: int | None = setting(None, "int", optional=True, min=0)
    batch_size: int = setting(512, "int", min=1)
    n_radii: int = setting(12, "int", min=2)
    n_bands: int = setting(16, "int", min=2)
    n_bootstrap: int = setting(1000, "int", min=0)
    planted_train: int = setting(640, "int", min=8)
    planted_test: int = setting(256, "int", min=8)
    own_images: int = setting(4, "int", min=1)
    own_steps: int = setting(200, "int", min=1)

    def _validate(self) -> None:
        if 0 < self.n_bootstrap < 100:
            raise ValueError(f"heatmap.n_bootstrap must be 0 (no interval) or >= 100, got {self.n_bootstrap}")


@dataclass(frozen=True)
class CompareSection(Section):
    """The second architecture (chapter 11; the paper's "ResNet18 ... qualitatively similar").

    The second run is the main profile with ``model.arch = arch``, ``model.width_div = width_div`` and
    ``train.epochs = epochs`` (and ``dataset_mask.epochs = dataset_mask_epochs`` when set), built by
    :func:`fmask.experiment.compare.second_profile`; everything else (data, regimes, optimiser, PGD, mask settings, seed)
    is the main profile's, so the two differ only in the network and its training length, and the artifact
    store keys (which contain the model and train sections) keep the two runs apart.

    * ``arch`` / ``width_div``: :func:`fmask.models.zoo.build_model` (``width_div`` null for ``resnet18``);
    * ``epochs``: training epochs of the five networks of the second architecture;
    * ``dataset_mask_epochs``: null -> the main profile's ``dataset_mask.epochs``;
    * ``n_images``: size of the seeded class-balanced subset of the Table 2 images (both architectures);
    * ``verdict_margin``: Table 1 "masked ≈ clean" part of the verdict: |masked − clean| at most this (fraction).
    """

    NAME: ClassVar[str] = "compare"
    REQUIRED: ClassVar[tuple[str, ...]] = ("arch", "width_div", "epochs", "n_images")
    arch: str = setting("resnet18", "str")
    width_div: int | None = setting(None, "int", optional=True, min=1)
    epochs: int = setting(50, "int", min=1)
    dataset_mask_epochs: int | None = setting(None, "int", optional=True, min=1)
    n_images: int = setting(150, "int", min=1)
    verdict_margin: float = setting(0.05, "float", min=0, max=1)

    def _validate(self) -> None:
        from fmask.models.zoo import ARCHS, WIDTH_ARCHS

        if self.arch not in ARCHS:
            raise ValueError(f"compare.arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        if self.width_div is not None and self.arch not in WIDTH_ARCHS:
            raise ValueError(f"compare.width_div applies to arch {' / '.join(WIDTH_ARCHS)} only, not {self.arch!r}")

    def model_overrides(self) -> dict[str, Any]:
        """The ``model`` section of the second run (``{"arch", "width_div"}``)."""
        return {"arch": self.arch, "width_div": self.width_div}


SECTIONS: dict[str, type[Section]] = {
    c.NAME: c for c in (DataSection, ModelSection, TrainSection, DatasetMaskSection, SingleMaskSection,
                        SelectionSection, AnalysisSection, HeatmapSection, CompareSection)
}
#: keys every profile file must write out in each section (the others have defaults)
REQUIRED: dict[str, tuple[str, ...]] = {name: cls.REQUIRED for name, cls in SECTIONS.items()}


@dataclass(frozen=True)
class Profile(Mapping):
    """A validated profile: typed sections as attributes, plain dicts through the mapping view.

    ``profile.train.epochs`` (typed); ``profile["train"]`` (a fresh plain dict); ``profile.to_dict()`` (the
    whole profile as plain data, e.g. for YAML).
    """

    name: str
    seed: int
    device: str
    data: DataSection
    model: ModelSection
    train: TrainSection
    dataset_mask: DatasetMaskSection
    single_mask: SingleMaskSection
    selection: SelectionSection
    analysis: AnalysisSection
    heatmap: HeatmapSection
    compare: CompareSection

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        d = str(self.device)
        if d not in ("auto", "cpu", "cuda") and not (d.startswith("cuda:") and d[5:].isdigit()):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:K, got {self.device!r}")
        for sec, cls in SECTIONS.items():
            if not isinstance(getattr(self, sec), cls):
                raise ValueError(f"section {sec!r} must be a {cls.__name__}")

    def __getitem__(self, key: str) -> Any:
        if key not in TOP_LEVEL_KEYS:
            raise KeyError(key)
        v = getattr(self, key)
        return v.to_dict() if isinstance(v, Section) else v

    def __iter__(self) -> Iterator[str]:
        return iter(TOP_LEVEL_KEYS)

    def __len__(self) -> int:
        return len(TOP_LEVEL_KEYS)

    def to_dict(self) -> dict[str, Any]:
        """The whole profile as plain data (a fresh dict)."""
        return {k: self[k] for k in TOP_LEVEL_KEYS}

    def training_config(self) -> TrainingConfig:
        """What :func:`fmask.training.fit.train_model` needs: seed, device, data, model and the train section
        (without ``regimes`` / ``replicates``)."""
        return TrainingConfig(seed=self.seed, device=self.device, data=DataConfig(**self["data"]),
                              model=ModelConfig(**self["model"]), fit=self.train.fit_config())


# a profile prints as YAML (``fmask profiles --show``) like the plain dict it was read from
yaml.SafeDumper.add_representer(Profile, lambda dumper, p: dumper.represent_dict(p.to_dict()))
for _cls in SECTIONS.values():
    yaml.SafeDumper.add_representer(_cls, lambda dumper, s: dumper.represent_dict(s.to_dict()))

