"""What the fit loop needs to make one model: :class:`TrainingConfig`, plain frozen values.

A profile builds it (:meth:`fmask.experiment.profile_schema.Profile.training_config`, validated there);
:func:`fmask.training.fit.train_model` and its helpers take a :class:`TrainingConfig` or any object with a
``training_config()`` method (a profile). The config holds exactly the profile's ``seed``, ``device``, the
``data`` section, the ``model`` section and the ``train`` section without ``regimes`` and ``replicates`` (they
choose which models to make, not how one is made), so the artifact key
(:func:`fmask.training.fit.training_params`) is read off it.

Precision (:data:`fmask.core.objective.PRECISIONS`, plus ``"auto"``: fp32 on CPU, bf16 autocast on CUDA):
the artifact key spells it by its dtype, ``"exact"`` as ``"fp32"`` and ``"fast"`` as ``"bf16"``
(:data:`KEY_PRECISION`), and leaves the default ``"auto"`` out.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["DataConfig", "ModelConfig", "FitConfig", "TrainingConfig", "KEY_PRECISION", "as_training_config"]

#: how the artifact key writes each precision (``"auto"``, the default, is left out of the key)
KEY_PRECISION = {"exact": "fp32", "fast": "bf16"}


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


@dataclass(frozen=True)
class DataConfig:
    """Which images (:func:`fmask.data.load_split`): the profile's ``data`` section.

    ``classes``: a class-set name or a tuple of folders / indices; ``max_per_class_val`` None: as
    ``max_per_class`` (:attr:`val_limit`).
    """

    root: str | None
    classes: Any
    image_size: int
    channels: int
    max_per_class: int | None
    max_per_class_val: int | None
    skip_corrupt: bool

    @property
    def val_limit(self) -> int | None:
        """Images per class of the validation split."""
        return self.max_per_class_val if self.max_per_class_val is not None else self.max_per_class


@dataclass(frozen=True)
class ModelConfig:
    """The classifier (:func:`fmask.models.zoo.build_model`); ``width_div`` None: the architecture's default."""

    arch: str
    width_div: int | None = None

    def build_kwargs(self) -> dict[str, Any]:
        """``build_model``'s keyword arguments besides channels and classes (unset options left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class FitConfig:
    """Optimisation and attacks (the profile's ``train`` section without ``regimes`` / ``replicates``).

    Adam (``lr``, ``weight_decay``) under OneCycleLR (max lr ``lr``, ``pct_start``) for ``epochs`` epochs of
    ``batch_size``; adversarial training with PGD (ε ``adv_eps`` in pixel units, ``adv_steps``, step
    ``adv_alpha``, None: ε/8); the robust evaluation of the regimes ``robust_eval_regimes`` on
    ``robust_eval_n`` val images (None: all) with ``robust_eval_steps`` / ``robust_eval_alpha`` (None: the
    training attack, :func:`fmask.training.attacks.pgd_settings`); ``precision`` ``"auto"`` | ``"exact"`` |
    ``"fast"``.
    """

    epochs: int
    batch_size: int
    lr: float
    pct_start: float
    weight_decay: float
    adv_eps: float
    adv_steps: int
    adv_alpha: float | None
    robust_eval_steps: int | None
    robust_eval_alpha: float | None
    robust_eval_regimes: tuple[str, ...]
    robust_eval_n: int | None
    precision: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (lists, not tuples), e.g. for :func:`fmask.training.attacks.pgd_settings`."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def key(self) -> dict[str, Any]:
        """The ``train`` part of the artifact key: :meth:`as_dict` with the precision spelled by
        :data:`KEY_PRECISION` and left out at its default ``"auto"``."""
        out = self.as_dict()
        if out["precision"] == "auto":
            del out["precision"]
        else:
            out["precision"] = KEY_PRECISION[out["precision"]]
        return out


@dataclass(frozen=True)
class TrainingConfig:
    """One model's recipe: ``seed`` (global RNGs, data order, robust-evaluation subset), ``device``
    (``auto`` | ``cpu`` | ``cuda`` | ``cuda:K``), ``data``, ``model``, ``fit``."""

    seed: int
    device: str
    data: DataConfig
    model: ModelConfig
    fit: FitConfig


def as_training_config(config: Any) -> TrainingConfig:
    """``config`` itself if it is a :class:`TrainingConfig`, else ``config.training_config()`` (a profile);
    ``ValueError`` for anything else (a plain dict: validate it first with
    :func:`fmask.experiment.profiles.profile_from_mapping`)."""
    if isinstance(config, TrainingConfig):
        return config
    make = getattr(config, "training_config", None)
    if callable(make):
        out = make()
        if isinstance(out, TrainingConfig):
            return out
    raise ValueError(f"expected a TrainingConfig or a profile (fmask.experiment.profiles.load_profile / "
                     f"profile_from_mapping), got {type(config).__name__}")
