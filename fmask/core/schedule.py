"""Learning-rate (and Adam β₁) schedules of the original code, in one place.

The original uses ``torch.optim.lr_scheduler.OneCycleLR`` (torch defaults: ``div_factor=25``,
``final_div_factor=1e4``, cosine annealing, ``cycle_momentum=True``, which for Adam cycles β₁ between
``max_momentum=0.95`` and ``base_momentum=0.85``):

* dataset masks (``train_masks.py``): ``OneCycleLR(max_lr=1e-3, epochs=100, steps_per_epoch=len(loader),
  pct_start=0.1)`` -- :func:`make_onecycle` builds exactly that scheduler for fmask's dataset mask.
* single-image masks (``train_single_img_masks.py``): ``OneCycleLR(max_lr=0.2, epochs=20000,
  steps_per_epoch=200, pct_start=0.1)``, i.e. 4 000 000 scheduler steps of which at most 20 000 are ever
  taken: the schedule never leaves its warm-up (lr 0.008 → ≈ 0.0092, β₁ 0.95 → ≈ 0.949).
  :func:`original_single_image_lr` / :func:`original_single_image_beta1` give the values per step, and
  :func:`onecycle_tensor` the same for a vector of per-mask step counts (fmask's per-image learner keeps one
  step count per mask, because masks enter and leave its batch at different times).

``"constant"``: a constant lr and Adam's default β₁ = 0.9 (fmask's per-image default, lr 0.01, which is what
the original's warm-up effectively was).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["SCHEDULES_PER_IMAGE", "SCHEDULES_DATASET", "ORIGINAL_SINGLE_IMAGE", "onecycle_at",
           "onecycle_tensor", "original_single_image_lr", "original_single_image_beta1", "make_onecycle",
           "onecycle_lr_trace", "ADAM_BETA1", "ADAM_BETA2", "ADAM_EPS"]

SCHEDULES_PER_IMAGE: tuple[str, ...] = ("constant", "original")
SCHEDULES_DATASET: tuple[str, ...] = ("onecycle", "constant")
#: the original single-image scheduler's settings (``train_single_img_masks.py``)
ORIGINAL_SINGLE_IMAGE = {"lr": 0.2, "steps_per_epoch": 200, "pct_start": 0.1}
#: torch's OneCycleLR defaults (used by the original)
DIV_FACTOR, FINAL_DIV_FACTOR, BASE_MOMENTUM, MAX_MOMENTUM = 25.0, 1e4, 0.85, 0.95
#: torch.optim.Adam defaults (the original's optimiser)
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


def _check(total_steps: int, pct_start: float) -> None:
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}")
    if not 0 < pct_start < 1:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}")
    end1 = float(pct_start * total_steps) - 1
    if end1 == 0 or end1 == total_steps - 1:
        raise ValueError(f"a one-cycle schedule over {total_steps} steps with pct_start {pct_start} has an empty "
                         "phase (torch's OneCycleLR divides by zero); use more steps or schedule='constant'")


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def onecycle_at(step: int, max_lr: float, total_steps: int, pct_start: float = 0.1) -> tuple[float, float]:
    """(lr, β₁) that torch's two-phase ``OneCycleLR`` sets for scheduler step ``step`` (0-based, i.e. the values
    used by optimiser step ``step + 1``)."""
    _check(total_steps, pct_start)
    if step < 0 or step >= total_steps:
        raise ValueError(f"step must be in [0, {total_steps}), got {step}")
    initial, minimum = max_lr / DIV_FACTOR, max_lr / DIV_FACTOR / FINAL_DIV_FACTOR
    end1 = float(pct_start * total_steps) - 1
    if step <= end1:
        pct = step / end1
        return _cos(initial, max_lr, pct), _cos(MAX_MOMENTUM, BASE_MOMENTUM, pct)
    pct = (step - end1) / (total_steps - 1 - end1)
    return _cos(max_lr, minimum, pct), _cos(BASE_MOMENTUM, MAX_MOMENTUM, pct)


def onecycle_tensor(step: Tensor, max_lr: float, total_steps: int, pct_start: float = 0.1) -> tuple[Tensor, Tensor]:
    """:func:`onecycle_at` for a tensor of per-mask step counts (any shape, on any device): float64 (lr, β₁)."""
    _check(total_steps, pct_start)
    s = step.to(torch.float64)
    initial, minimum = max_lr / DIV_FACTOR, max_lr / DIV_FACTOR / FINAL_DIV_FACTOR
    end1 = float(pct_start * total_steps) - 1
    warm = s <= end1
    pct = torch.where(warm, s / end1, (s - end1) / (total_steps - 1 - end1))
    c = torch.cos(math.pi * pct) + 1
    lr = torch.where(warm, max_lr + (initial - max_lr) / 2 * c, minimum + (max_lr - minimum) / 2 * c)
    b1 = torch.where(warm, BASE_MOMENTUM + (MAX_MOMENTUM - BASE_MOMENTUM) / 2 * c,
                     MAX_MOMENTUM + (BASE_MOMENTUM - MAX_MOMENTUM) / 2 * c)
    return lr, b1


def original_single_image_lr(step: int, lr: float = 0.2, steps: int = 20000, steps_per_epoch: int = 200,
                             pct_start: float = 0.1) -> float:
    """The lr the original single-image code used at optimiser step ``step + 1`` (``step`` 0-based):
    ``OneCycleLR(max_lr=lr, epochs=steps, steps_per_epoch=steps_per_epoch, pct_start)``."""
    return onecycle_at(step, lr, steps * steps_per_epoch, pct_start)[0]


def original_single_image_beta1(step: int, lr: float = 0.2, steps: int = 20000, steps_per_epoch: int = 200,
                                pct_start: float = 0.1) -> float:
    """Adam's β₁ at optimiser step ``step + 1`` under the original single-image schedule (cycle_momentum)."""
    return onecycle_at(step, lr, steps * steps_per_epoch, pct_start)[1]


def make_onecycle(optimizer: torch.optim.Optimizer, schedule: str, lr: float, total_steps: int,
                  pct_start: float = 0.1):
    """The dataset-mask scheduler: ``"onecycle"`` → torch's ``OneCycleLR(max_lr=lr, total_steps, pct_start)``
    (the original's, incl. β₁ cycling); ``"constant"`` → None (constant lr, β₁ = 0.9)."""
    if schedule not in SCHEDULES_DATASET:
        raise ValueError(f"dataset-mask schedule must be one of {SCHEDULES_DATASET}, got {schedule!r}")
    if schedule == "constant":
        return None
    _check(total_steps, pct_start)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=pct_start)


def onecycle_lr_trace(max_lr: float, *, epochs: int, steps_per_epoch: int, pct_start: float,
                      steps_taken: int) -> list[float]:
    """The lrs of ``OneCycleLR(max_lr, epochs, steps_per_epoch, pct_start)`` for the first ``steps_taken``
    optimiser steps (same signature as ``fmask.experiment.results.onecycle_lr_trace``, which should use this one)."""
    total = epochs * steps_per_epoch
    if steps_taken < 1 or steps_taken > total:
        raise ValueError(f"steps_taken must be in [1, {total}]; got {steps_taken}")
    return [onecycle_at(s, max_lr, total, pct_start)[0] for s in range(steps_taken)]
