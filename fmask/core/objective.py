"""The method in one file: the objective and both stopping rules (Karantzas et al., 2022).

Objective, per sample ``i`` (the filtered image x̄ = Re F⁻¹(M ⊙ F x), see :mod:`fmask.core.mask`)::

    loss_i = exp[(CE(Φ(x̄_i), y_i) − CE(Φ(x_i), y_i))²] + λ · mean(|M_i|)

* The exponential is taken **per sample** (never of a difference of batch means); a dataset mask averages
  ``loss_i`` over its batch, per-image masks sum their independent losses (so each mask's gradient is exactly
  its own image's).
* The original writes the sparsity term as ``λ / ‖M₀‖₁ · ‖M‖₁`` with M₀ = ones, i.e. ``λ · mean(|M|)``; we keep
  the absolute value like its L1 norm (the gradient at an entry clamped to 0 is then the same as there).
* The reference ``CE(Φ(x), y)`` is computed like the original's ``m_out``: through a mask of ones.
* Optimiser Adam; after every step the mask is projected to [0, 1] (:meth:`fmask.core.mask.FourierMask.project_`).

Stopping rules:

* **per-image masks** (``train_single_img_masks.py``): after step t (t ≥ 2), if the masked prediction with the
  updated mask equals the initial prediction, ``count += 1`` when ``|inv_t − inv_{t−1}| ≤ 1e-6`` and
  ``|sp_t − sp_{t−1}| ≤ 1e-5`` (``inv`` = squared CE difference, ``sp`` = mean(|M|), both from the forward
  pass of step t, i.e. before its update), else ``count = 0``; a step whose prediction differs from the initial
  one leaves ``count`` unchanged (as in the original). Converged when ``count == patience``; at most
  ``steps`` steps (:data:`PER_IMAGE_DEFAULTS`: 300 and 20000). :func:`per_image_count` is that counter, for a vector of masks, on the device.
* **dataset mask** (``train_masks.py``): after every epoch the masked accuracy on the same data is measured.
  From the second epoch on, if masked/initial accuracy ≥ 0.99, the mask is snapshot and ``count += 1`` if the
  epoch mean of mean(|M|) changed by ≤ 1e-5 from the previous epoch, else ``count = 0``. Stop when
  ``count == patience`` or after ``epochs`` (:data:`DATASET_DEFAULTS`: 7 and 100). :class:`DatasetStopping` is
  that rule.

Defaults: :data:`PER_IMAGE_DEFAULTS` and :data:`DATASET_DEFAULTS` are the one table of the learners'
hyper-parameters (the learners' signatures, :func:`fmask.learners.learn_masks` and the profile sections read
them). :func:`check_lam`, :func:`check_count` and :func:`check_precision` are the one check of λ, of the
step / epoch / patience counts and of the precision, for the learners and the profile files alike.

Precision (the network's arithmetic, :data:`PRECISIONS`): ``"exact"`` -- float32; ``"fast"`` -- the network
under bf16 autocast (the loss in float32); ``"auto"`` (where a caller offers it) -- ``"fast"`` on CUDA,
``"exact"`` elsewhere (:func:`resolve_precision`).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["TOL_INVARIANCE", "TOL_SPARSITY", "ACCURACY_RATIO", "PER_IMAGE_DEFAULTS", "DATASET_DEFAULTS",
           "PRECISIONS", "check_lam", "check_count", "check_precision", "resolve_precision", "invariance_loss",
           "sparsity", "per_sample_objective", "per_image_count", "DatasetStopping"]

#: |Δ invariance| tolerance of the per-image rule (original: 1e-6)
TOL_INVARIANCE = 1e-6
#: |Δ sparsity| tolerance of both rules (original: 1e-5)
TOL_SPARSITY = 1e-5
#: the dataset rule's accuracy criterion: masked accuracy ≥ 0.99 × initial accuracy
ACCURACY_RATIO = 0.99

#: per-image masks: λ 0.07 (the paper; the original's ``single_img_mask_decay``), at most 20000 steps and
#: patience 300 (``train_single_img_masks.py``), Adam lr 0.01 with a constant schedule (the paper's text; the
#: original's one-cycle never leaves its warm-up), 64 masks learned at once (memory, not the method)
PER_IMAGE_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"lam": 0.07, "lr": 0.01, "steps": 20000, "patience": 300, "batch_size": 64, "schedule": "constant"})
#: dataset masks: λ 0.2 (the original's ``mask_decay``), Adam lr 1e-3 under OneCycleLR with pct_start 0.1, at
#: most 100 epochs, patience 7 epochs, batch size 1 (``train_masks.py``)
DATASET_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"lam": 0.2, "lr": 1e-3, "epochs": 100, "patience": 7, "batch_size": 1, "schedule": "onecycle",
     "pct_start": 0.1})
#: the network's arithmetic while a mask learns (see the module docstring); ``"auto"`` resolves to one of these
PRECISIONS: tuple[str, ...] = ("exact", "fast")


def check_lam(lam: Any, name: str = "lam") -> float:
    """λ as a float if it is a finite real number >= 0 (bools refused); else ``ValueError`` naming ``name``."""
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise ValueError(f"{name} must be a number, got {lam!r}")
    if not math.isfinite(lam):
        raise ValueError(f"{name} must be a finite number, got {lam!r}")
    if lam < 0:
        raise ValueError(f"{name} must be >= 0, got {lam!r}")
    return float(lam)


def check_count(v: Any, name: str) -> int:
    """``v`` if it is an int >= 1 (steps, epochs, patience, batch sizes; bools refused); else ``ValueError``."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def check_precision(precision: Any, name: str = "precision", auto: bool = False) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` (or ``"auto"`` when ``auto``); else ``ValueError``."""
    allowed = (("auto",) if auto else ()) + PRECISIONS
    if precision not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {precision!r}")
    return precision


def resolve_precision(precision: str, device_type: str) -> str:
    """``"exact"`` or ``"fast"``: ``"auto"`` is ``"fast"`` on CUDA and ``"exact"`` on every other device."""
    check_precision(precision, auto=True)
    if precision == "auto":
        return "fast" if device_type == "cuda" else "exact"
    return precision


def invariance_loss(logits: Tensor, targets: Tensor, ref_ce: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample invariance: ``(exp(d²), d²)``, each (B,) float32, with d = CE(logits, y) − ref_ce.

    logits (B, K) (any float dtype; cast to float32), targets (B,) int64, ref_ce (B,) float32.
    """
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    d2 = (ce - ref_ce) ** 2
    return torch.exp(d2), d2


def sparsity(masks: Tensor) -> Tensor:
    """mean(|M|) per mask: masks (B, C, H, W) → (B,) (the original's λ/‖M₀‖₁·‖M‖₁ without λ)."""
    return masks.abs().mean(dim=(1, 2, 3))


def per_sample_objective(logits: Tensor, targets: Tensor, ref_ce: Tensor, masks: Tensor,
                         lam: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(loss_i, inv_i, sp_i)``, each (B,): loss_i = exp(inv_i) + λ·sp_i for masks (B or 1, C, H, W)."""
    ex, inv = invariance_loss(logits, targets, ref_ce)
    sp = sparsity(masks)
    return ex + lam * sp, inv, sp


@torch.no_grad()
def per_image_count(count: Tensor, eligible: Tensor, same_prediction: Tensor, d_invariance: Tensor,
                    d_sparsity: Tensor) -> Tensor:
    """One step of the original per-image counter for a vector of masks (no host sync).

    count (B,) int64; eligible (B,) bool: the mask is still learning and has done ≥ 2 steps;
    same_prediction (B,) bool: prediction with the updated mask == initial prediction;
    d_invariance, d_sparsity (B,): inv_t − inv_{t−1}, sp_t − sp_{t−1}. Returns the new count.
    """
    small = (d_invariance.abs() <= TOL_INVARIANCE) & (d_sparsity.abs() <= TOL_SPARSITY)
    new = torch.where(small, count + 1, torch.zeros_like(count))
    return torch.where(eligible & same_prediction, new, count)


@dataclass
class DatasetStopping:
    """The original's dataset-mask epoch rule (``train_masks.py``); call :meth:`update` after every epoch.

    ``initial_accuracy`` in % (masked with a mask of ones); ``patience`` epochs of unchanged sparsity.
    """

    initial_accuracy: float
    patience: int = DATASET_DEFAULTS["patience"]
    count: int = 0
    sparsity: list[float] = field(default_factory=list)

    def update(self, accuracy: float, sparsity_mean: float) -> tuple[bool, bool]:
        """Record one epoch (masked accuracy %, epoch mean of mean(|M|)); returns (snapshot, stop)."""
        self.sparsity.append(float(sparsity_mean))
        epoch = len(self.sparsity)
        snapshot = epoch > 1 and accuracy >= ACCURACY_RATIO * self.initial_accuracy
        if snapshot:
            if abs(self.sparsity[-1] - self.sparsity[-2]) <= TOL_SPARSITY:
                self.count += 1
            else:
                self.count = 0
        return snapshot, self.count == self.patience
