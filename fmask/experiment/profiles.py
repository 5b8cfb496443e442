"""Parameter profiles: YAML files in ``fmask/params/`` (``smoke``, ``cpu``, ``paper``) read into typed, frozen sections.

A profile has the top-level keys ``name``, ``seed``, ``device`` (``auto``|``cpu``|``cuda``|``cuda:K``) and one
section per concern, each a frozen dataclass that knows its defaults and validates itself when the profile is
loaded (before anything is trained):

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

Every section is required in a profile file; within a section the keys of :data:`REQUIRED` must be written
out, the others take the defaults given by the dataclass. Unknown keys are errors that name the nearest valid
key (``unknown key 'lamda' in section 'single_mask'; did you mean 'lam'?``); a value of the wrong type names
the key (``single_mask.lr must be a number, got 'fast'``). PyYAML reads ``1e-3`` (no dot) as a string; number
fields convert such strings.

Access::

    p = load_profile("cpu", {"train.epochs": 2})      # dotted overrides, same checks as the file
    p.single_mask.lam                                  # typed attribute access
    PerImageMasks(model, **asdict(p.single_mask), seed=p.seed)
    p["train"]["epochs"]; p.to_dict()                  # plain-dict views (notebooks, YAML, artifact keys)

The mapping view (``p["data"]``) returns a fresh plain dict per section, so mutating it changes nothing.
"""
from __future__ import annotations

import copy
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import yaml

from fmask.data.regimes import REGIMES, in_paper_order

__all__ = [
    "PROFILE_DIR", "TOP_LEVEL_KEYS", "REQUIRED", "REGIMES", "SECTIONS", "Profile", "Section", "DataSection",
    "ModelSection", "TrainSection", "DatasetMaskSection", "SingleMaskSection", "SelectionSection",
    "AnalysisSection", "HeatmapSection", "CompareSection", "asdict", "list_profiles", "load_profile", "profile_from_mapping",
    "apply_overrides",
    "parse_override",
]

PROFILE_DIR = Path(__file__).resolve().parents[1] / "params"
TOP_LEVEL_KEYS = ("name", "seed", "device", "data", "model", "train", "dataset_mask", "single_mask", "selection",
                  "analysis", "heatmap", "compare")
#: keys every profile file must write out in each section (the others have defaults)
REQUIRED: dict[str, tuple[str, ...]] = {
    "data": ("root", "classes", "image_size", "channels", "max_per_class"),
    "model": ("arch",),
    "train": ("regimes", "epochs", "batch_size", "lr", "pct_start", "adv_eps", "adv_steps", "replicates"),
    "dataset_mask": ("lam", "lr", "epochs", "batch_size", "patience", "schedule"),
    "single_mask": ("lam", "lr", "steps", "patience", "batch_size", "schedule"),
    "selection": ("n_images",),
    "analysis": ("n_bands",),
    "heatmap": ("n_images", "eps", "stride", "batch_size"),
    "compare": ("arch", "width_div", "epochs", "n_images"),
}
#: keys that moved to another section (old profile files get told where)
_MOVED = {("single_mask", "n_images"): "selection.n_images"}


def _did_you_mean(key: str, choices) -> str:
    close = difflib.get_close_matches(str(key), list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {sorted(choices)}"


# --------------------------------------------------------------------------------------- value checks
def _num(sec: str, key: str, v: Any) -> float:
    """A real number: ints, floats and numeric strings (YAML's ``1e-3``); not bools, lists, words."""
    if isinstance(v, bool):
        raise ValueError(f"{sec}.{key} must be a number, got {v!r}")
    if isinstance(v, (int, float)):
        out = float(v)
    elif isinstance(v, str):
        try:
            out = float(v.strip())
        except ValueError:
            raise ValueError(f"{sec}.{key} must be a number, got {v!r}") from None
    else:
        raise ValueError(f"{sec}.{key} must be a number, got {v!r}")
    if not math.isfinite(out):
        raise ValueError(f"{sec}.{key} must be a finite number, got {v!r}")
    return out


def _int(sec: str, key: str, v: Any) -> int:
    x = _num(sec, key, v) if not isinstance(v, int) or isinstance(v, bool) else v
    if isinstance(x, float):
        if not x.is_integer():
            raise ValueError(f"{sec}.{key} must be an integer, got {v!r}")
        x = int(x)
    return int(x)


def _check(sec: str, key: str, v: Any, kind: str, spec: Mapping[str, Any]) -> Any:
    """Coerce and validate one value. ``kind``: int, float, str, path, bool, choice, regimes, classes, any."""
    if v is None:
        if spec.get("optional"):
            return None
        raise ValueError(f"{sec}.{key} must be set (null is not allowed)")
    if kind == "int":
        v = _int(sec, key, v)
    elif kind == "float":
        v = _num(sec, key, v)
    elif kind == "bool":
        if not isinstance(v, bool):
            raise ValueError(f"{sec}.{key} must be true or false, got {v!r}")
    elif kind == "path":
        if not isinstance(v, (str, os.PathLike)) or not os.fspath(v):
            raise ValueError(f"{sec}.{key} must be a folder path (or null), got {v!r}")
        v = os.fspath(v)
    elif kind == "str":
        if not isinstance(v, str):
            raise ValueError(f"{sec}.{key} must be a string, got {v!r}")
    elif kind == "choice":
        if v not in spec["choices"]:
            raise ValueError(f"{sec}.{key} must be one of {list(spec['choices'])}, got {v!r}")
    elif kind == "regimes":
        if isinstance(v, str) or not isinstance(v, (list, tuple)):
            raise ValueError(f"{sec}.{key} must be a list of regimes, got {v!r}")
        bad = [r for r in v if r not in REGIMES]
        if bad:
            raise ValueError(f"{sec}.{key}: unknown regimes {bad}; choose from {list(REGIMES)}")
        v = tuple(in_paper_order(v))
        if spec.get("nonempty") and not v:
            raise ValueError(f"{sec}.{key} must name at least one regime")
    elif kind == "classes":
        from fmask.data import resolve_classes

        try:
            resolve_classes(v)
        except ValueError as exc:
            raise ValueError(f"{sec}.{key}: {exc}") from None
        v = v if isinstance(v, str) else tuple(v)
    lo, hi = spec.get("min"), spec.get("max")
    if kind == "int" and lo == 1 and v < 1:
        raise ValueError(f"{sec}.{key} must be a positive integer, got {v!r}")
    if lo is not None and (v < lo if spec.get("min_inclusive", True) else v <= lo):
        rel = ">=" if spec.get("min_inclusive", True) else ">"
        raise ValueError(f"{sec}.{key} must be {rel} {lo}, got {v!r}")
    if hi is not None and (v > hi if spec.get("max_inclusive", True) else v >= hi):
        rel = "<=" if spec.get("max_inclusive", True) else "<"
        raise ValueError(f"{sec}.{key} must be {rel} {hi}, got {v!r}")
    return v


def _f(default: Any, kind: str, **spec: Any) -> Any:
    """A section field: its default, its kind (see :func:`_check`) and bounds."""
    return field(default=default, metadata={"kind": kind, **spec})


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


# -------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class Section(Mapping):
    """Base of the profile sections: a frozen dataclass that is also a read-only mapping of its fields.

    :meth:`from_mapping` builds it from a YAML dict, rejecting unknown keys (with the nearest valid name),
    coercing numbers and checking every value; :meth:`to_dict` is the plain-dict (YAML/JSON) form.
    """

    NAME: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            spec = dict(f.metadata)
            kind = spec.pop("kind", "any")
            object.__setattr__(self, f.name, _check(self.NAME, f.name, getattr(self, f.name), kind, spec))
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks (subclasses)."""

    @classmethod
    def keys_(cls) -> tuple[str, ...]:
        """Field names, the section's own fields before those it inherits (as a profile lists them)."""
        inherited = {f.name for base in cls.__mro__[1:] if is_dataclass(base) for f in fields(base)}
        names = [f.name for f in fields(cls)]
        return tuple([n for n in names if n not in inherited] + [n for n in names if n in inherited])

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, *, strict: bool = False) -> "Section":
        """The section from a dict; ``strict`` also requires the keys of :data:`REQUIRED`."""
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ValueError(f"section {cls.NAME!r} must be a mapping, got {type(values).__name__}")
        known = cls.keys_()
        for k in values:
            if k not in known:
                moved = _MOVED.get((cls.NAME, k))
                hint = f"; it moved to {moved}" if moved else _did_you_mean(k, known)
                raise ValueError(f"unknown key {k!r} in section {cls.NAME!r}{hint}")
        if strict:
            miss = [k for k in REQUIRED.get(cls.NAME, ()) if k not in values]
            if miss:
                raise ValueError(f"section {cls.NAME!r} lacks {miss}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples): what YAML/JSON and the artifact keys see."""
        return {k: _plain(getattr(self, k)) for k in self.keys_()}

    # read-only mapping protocol (``section["lam"]``, ``dict(section)``, ``section.get``)
    def __getitem__(self, key: str) -> Any:
        if key not in self.keys_():
            raise KeyError(key)
        return _plain(getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_())

    def __len__(self) -> int:
        return len(fields(self))


@dataclass(frozen=True)
class DataSection(Section):
    """Which images (:func:`fmask.data.load_split`). ``max_per_class_val`` null: same as ``max_per_class``."""

    NAME: ClassVar[str] = "data"
    root: str | None = _f(None, "path", optional=True)
    classes: Any = _f("paper", "classes")
    image_size: int = _f(128, "int", min=8)
    channels: int = _f(1, "choice", choices=(1, 3))
    max_per_class: int | None = _f(None, "int", optional=True, min=1)
    max_per_class_val: int | None = _f(None, "int", optional=True, min=1)
    skip_corrupt: bool = _f(False, "bool")


@dataclass(frozen=True)
class ModelSection(Section):
    """The classifier (:func:`fmask.models.zoo.build_model`); ``width_div`` only for the architectures in
    :data:`fmask.models.zoo.WIDTH_ARCHS` (``vgg_small``, ``resnet_small``; null: their default)."""

    NAME: ClassVar[str] = "model"
    arch: str = _f("vgg11_bn", "str")
    width_div: int | None = _f(None, "int", optional=True, min=1)

    def _validate(self) -> None:
        from fmask.models.zoo import ARCHS, WIDTH_ARCHS

        if self.arch not in ARCHS:
            raise ValueError(f"model.arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        if self.width_div is not None and self.arch not in WIDTH_ARCHS:
            raise ValueError(f"model.width_div applies to arch {' / '.join(WIDTH_ARCHS)} only, not {self.arch!r}")

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`fmask.models.zoo.build_model` besides the channels and classes."""
        return {k: v for k, v in self.to_dict().items() if v is not None}


@dataclass(frozen=True)
class TrainSection(Section):
    """Training (:func:`fmask.training.fit.train_model`); defaults are the original ``flags.py`` values.

    PGD (pixel units): training uses ``adv_eps``, ``adv_steps``, ``adv_alpha`` (null: ε/8). The robust accuracy
    in the training metrics uses ``robust_eval_steps`` / ``robust_eval_alpha`` when set, else the training
    attack (see :func:`fmask.training.attacks.pgd_settings`), on ``robust_eval_n`` val images (null: all).

    ``replicates`` (int >= 1): training-seed replicates per regime for Table 1 and the band energies (issue #9
    "Replicates"). Replicate ``k`` trains with seed ``profile.seed + k`` and learns its dataset mask with the
    same seed; replicate 0 (seed ``profile.seed``) is the run's main model that every other chapter uses.
    It chooses how many models to make, not how one is made, so it is not part of a model's artifact key.

    ``precision``: the network's arithmetic while training (:func:`fmask.training.fit.train_model`): ``auto`` (fp32
    on CPU, bf16 autocast on CUDA; left out of the artifact key), ``fp32``, or ``bf16`` (autocast; loss in fp32).
    """

    NAME: ClassVar[str] = "train"
    regimes: tuple[str, ...] = _f(REGIMES, "regimes", nonempty=True)
    epochs: int = _f(50, "int", min=1)
    batch_size: int = _f(128, "int", min=1)
    lr: float = _f(1e-3, "float", min=0, min_inclusive=False)
    pct_start: float = _f(0.1, "float", min=0, max=1, min_inclusive=False, max_inclusive=False)
    weight_decay: float = _f(0.0, "float", min=0)
    adv_eps: float = _f(0.0136, "float", min=0, min_inclusive=False)
    adv_steps: int = _f(10, "int", min=1)
    adv_alpha: float | None = _f(None, "float", optional=True, min=0, min_inclusive=False)
    robust_eval_steps: int | None = _f(None, "int", optional=True, min=1)
    robust_eval_alpha: float | None = _f(None, "float", optional=True, min=0, min_inclusive=False)
    robust_eval_regimes: tuple[str, ...] = _f(("vanilla", "adversarial"), "regimes")
    robust_eval_n: int | None = _f(None, "int", optional=True, min=1)
    replicates: int = _f(1, "int", min=1)
    precision: str = _f("auto", "choice", choices=("auto", "fp32", "bf16"))


@dataclass(frozen=True)
class _LearnerSection(Section):
    """The keyword arguments both mask learners share (:mod:`fmask.learners.base`): where the mask acts
    (``space``), the network's precision, ``torch.compile``, mask channels, channels_last and BN folding."""

    space: str = _f("auto", "str")
    precision: str = _f("exact", "choice", choices=("exact", "fast"))
    compile: bool = _f(False, "bool")
    channels: int | None = _f(None, "int", optional=True, min=1)
    channels_last: bool = _f(True, "bool")
    fuse_bn: bool = _f(True, "bool")

    def _validate(self) -> None:
        from fmask.core.mask import SPACES

        if self.space not in SPACES:
            raise ValueError(f"{self.NAME}.space must be one of {list(SPACES)}, got {self.space!r}")


@dataclass(frozen=True)
class DatasetMaskSection(_LearnerSection):
    """Exactly :class:`fmask.learners.DatasetMask`'s keyword arguments (defaults: the paper's, λ = 0.2).

    ``schedule``: ``onecycle`` (the original's OneCycleLR, pct_start 0.1) or ``constant``. Old profiles wrote
    the pct_start number (``0.1``): it is read as ``onecycle``; other numbers are rejected.
    """

    NAME: ClassVar[str] = "dataset_mask"
    lam: float = _f(0.2, "float", min=0)
    lr: float = _f(1e-3, "float", min=0, min_inclusive=False)
    epochs: int = _f(100, "int", min=1)
    patience: int = _f(7, "int", min=1)
    batch_size: int = _f(1, "int", min=1)
    schedule: str = _f("onecycle", "choice", choices=("onecycle", "constant"))

    def __post_init__(self) -> None:
        s = self.schedule
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            if abs(float(s) - 0.1) > 1e-12:
                raise ValueError(f"dataset_mask.schedule: pct_start {s} is not supported (one-cycle uses 0.1); "
                                 "write 'onecycle' or 'constant'")
            object.__setattr__(self, "schedule", "onecycle")
        elif s is None or s == "default":
            object.__setattr__(self, "schedule", "onecycle" if s == "default" else "constant")
        super().__post_init__()


@dataclass(frozen=True)
class SingleMaskSection(_LearnerSection):
    """Exactly :class:`fmask.learners.PerImageMasks`' keyword arguments (defaults: the paper's, λ = 0.07).

    ``lr``: null means the learner's default for the schedule (0.01 constant, 0.2 = the original's flag for
    ``original``). ``schedule``: ``constant`` or ``original`` (the original's never-finished one-cycle
    warm-up). Old profiles wrote a pct_start number or null: both mean the original's schedule run with the
    paper's lr, whose effective lr is almost constant, so they are read as ``constant``.
    """

    NAME: ClassVar[str] = "single_mask"
    lam: float = _f(0.07, "float", min=0)
    lr: float | None = _f(None, "float", optional=True, min=0, min_inclusive=False)
    steps: int = _f(20000, "int", min=1)
    patience: int = _f(300, "int", min=1)
    batch_size: int = _f(64, "int", min=1)
    schedule: str = _f("constant", "choice", choices=("constant", "original"))
    log_every: int = _f(50, "int", min=1)
    compaction: bool = _f(True, "bool")

    def __post_init__(self) -> None:
        s = self.schedule
        if s is None or s == "default" or (isinstance(s, (int, float)) and not isinstance(s, bool)):
            object.__setattr__(self, "schedule", "constant")
        super().__post_init__()


@dataclass(frozen=True)
class SelectionSection(Section):
    """Which validation images get single-image masks (:func:`fmask.experiment.selection.select_images`); null: all."""

    NAME: ClassVar[str] = "selection"
    n_images: int | None = _f(None, "int", optional=True, min=1)
    #: the three other single-mask kinds (M_A,X, M_N,X_A, M_A,X_A; :meth:`fmask.experiment.run.Run.paired_subset`)
    #: are learned on a seeded class-balanced subset of this many selected images; null: on all of them
    n_paired: int | None = _f(None, "int", optional=True, min=1)


@dataclass(frozen=True)
class AnalysisSection(Section):
    """Analyses: band counts, the analyses' PGD (null: the training section's, see
    :func:`fmask.training.attacks.pgd_settings`), the linear probe of Table 3 (with a permutation null of
    ``probe_null_permutations`` label shuffles) and UMAP
    (the original: 85 %, 20 neighbours)."""

    NAME: ClassVar[str] = "analysis"
    n_bands: int = _f(64, "int", min=1)
    pgd_eps: float | None = _f(None, "float", optional=True, min=0, min_inclusive=False)
    pgd_steps: int | None = _f(None, "int", optional=True, min=1)
    pgd_alpha: float | None = _f(None, "float", optional=True, min=0, min_inclusive=False)
    umap_neighbors: int = _f(20, "int", min=2)
    probe_repeats: int = _f(1, "int", min=1)
    probe_train_fraction: float = _f(0.85, "float", min=0, max=1, min_inclusive=False, max_inclusive=False)
    probe_C: float = _f(1.0, "float", min=0, min_inclusive=False)
    probe_null_permutations: int = _f(200, "int", min=1)  # label shuffles for the probe's permutation null


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
    n_images: int = _f(64, "int", min=1)
    eps: float = _f(4.0, "float", min=0, min_inclusive=False)
    stride: int = _f(1, "int", min=1)
    window: int | None = _f(None, "int", optional=True, min=0)
    batch_size: int = _f(512, "int", min=1)
    n_radii: int = _f(12, "int", min=2)
    n_bands: int = _f(16, "int", min=2)
    n_bootstrap: int = _f(1000, "int", min=0)
    planted_train: int = _f(640, "int", min=8)
    planted_test: int = _f(256, "int", min=8)
    own_images: int = _f(4, "int", min=1)
    own_steps: int = _f(200, "int", min=1)

    def _validate(self) -> None:
        if 0 < self.n_bootstrap < 100:
            raise ValueError(f"heatmap.n_bootstrap must be 0 (no interval) or >= 100, got {self.n_bootstrap}")


@dataclass(frozen=True)
class CompareSection(Section):
    """The second architecture (chapter 11, issue #13: the paper's "ResNet18 ... qualitatively similar").

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
    arch: str = _f("resnet18", "str")
    width_div: int | None = _f(None, "int", optional=True, min=1)
    epochs: int = _f(50, "int", min=1)
    dataset_mask_epochs: int | None = _f(None, "int", optional=True, min=1)
    n_images: int = _f(150, "int", min=1)
    verdict_margin: float = _f(0.05, "float", min=0, max=1)

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


# a profile prints as YAML (``fmask profiles --show``) like the plain dict it was read from
yaml.SafeDumper.add_representer(Profile, lambda dumper, p: dumper.represent_dict(p.to_dict()))
for _cls in SECTIONS.values():
    yaml.SafeDumper.add_representer(_cls, lambda dumper, s: dumper.represent_dict(s.to_dict()))


# -------------------------------------------------------------------------------------------- loading
def list_profiles() -> list[str]:
    """Names of the profiles shipped in ``fmask/params/``."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` → ``("train.epochs", 3)``; the value is parsed as YAML (numbers, lists, null...)."""
    if "=" not in text:
        raise ValueError(f"override must look like section.key=value, got {text!r}")
    k, v = text.split("=", 1)
    if not k.strip():
        raise ValueError(f"empty key in override {text!r}")
    return k.strip(), yaml.safe_load(v)


def apply_overrides(profile: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict:
    """A deep-copied plain dict of ``profile`` with ``overrides`` (nested dicts merge; dotted keys address leaves).

    Unknown sections and top-level keys are errors naming the nearest valid one; unknown keys inside a
    section are caught when the result is validated (:func:`profile_from_mapping`).
    """
    out = copy.deepcopy(profile.to_dict() if isinstance(profile, Profile) else dict(profile))
    for key, value in (overrides or {}).items():
        parts = str(key).split(".")
        if len(parts) > 2:
            raise ValueError(f"override {key!r}: use section.key (profiles are two levels deep)")
        if parts[0] not in TOP_LEVEL_KEYS:
            what = "no section" if len(parts) == 2 else "unknown top-level key"
            raise ValueError(f"override {key!r}: {what} {parts[0]!r} in the profile"
                             + _did_you_mean(parts[0], TOP_LEVEL_KEYS))
        if len(parts) == 1:
            if isinstance(value, Mapping) and isinstance(out.get(parts[0]), dict):
                out[parts[0]] = {**out[parts[0]], **copy.deepcopy(dict(value))}
            else:
                out[parts[0]] = copy.deepcopy(value)
            continue
        sec, leaf = parts
        if sec not in SECTIONS:
            raise ValueError(f"override {key!r}: no section {sec!r} in the profile ({sec!r} is a value)")
        node = out.setdefault(sec, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {key!r}: no section {sec!r} in the profile (it is not a mapping)")
        if leaf not in SECTIONS[sec].keys_():
            moved = _MOVED.get((sec, leaf))
            hint = f"; it moved to {moved}" if moved else _did_you_mean(leaf, SECTIONS[sec].keys_())
            raise ValueError(f"override {key!r}: unknown key {leaf!r} in section {sec!r}{hint}")
        node[leaf] = copy.deepcopy(value)
    return out


def profile_from_mapping(p: Mapping[str, Any], origin: str = "given as a dict", *, strict: bool = True) -> Profile:
    """Validate a plain profile dict into a :class:`Profile` (a :class:`Profile` is returned as is).

    ``strict``: every top-level key and the :data:`REQUIRED` keys of each section must be present (profile
    files); otherwise missing sections take their defaults. Errors name ``origin``.
    """
    if isinstance(p, Profile):
        return p
    if not isinstance(p, Mapping):
        raise ValueError(f"profile {origin} must be a mapping, got {type(p).__name__}")
    extra = [k for k in p if k not in TOP_LEVEL_KEYS]
    if extra:
        raise ValueError(f"profile {origin}: unknown keys {extra}" + _did_you_mean(extra[0], TOP_LEVEL_KEYS))
    needed = TOP_LEVEL_KEYS if strict else ("name", "seed")
    missing = [k for k in needed if k not in p]
    if missing:
        raise ValueError(f"profile {origin}: missing keys {missing}")
    try:
        secs = {name: cls.from_mapping(p.get(name), strict=strict) for name, cls in SECTIONS.items()}
        return Profile(name=p["name"], seed=p["seed"], device=p.get("device", "auto"), **secs)
    except ValueError as exc:
        raise ValueError(f"profile {origin}: {exc}") from None


def load_profile(name_or_path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> Profile:
    """Load a profile by name (``smoke``, ``cpu``, ``paper``) or YAML path, apply ``overrides``, validate.

    ``overrides``: dotted keys (``{"train.epochs": 2, "seed": 1}``) or nested dicts; they pass the same
    checks as the file. Returns a frozen :class:`Profile`.
    """
    s = str(name_or_path)
    path = Path(s)
    if not (s.endswith((".yaml", ".yml")) or path.is_file()):
        path = PROFILE_DIR / f"{s}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown profile {s!r}; choose one of {list_profiles()} or give a YAML path")
    elif not path.is_file():
        raise ValueError(f"profile file {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    profile_from_mapping(raw, str(path))
    if not overrides:
        return profile_from_mapping(raw, str(path))
    return profile_from_mapping(apply_overrides(raw, overrides), f"{path} with overrides {dict(overrides)}")
