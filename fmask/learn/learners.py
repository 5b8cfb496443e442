"""One class per learner (SKELETON: thin wrappers over ``learn_masks`` until the learn package is rebuilt)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ._core import MaskResult, learn_masks

__all__ = ["PerImageMasks", "DatasetMask"]


class PerImageMasks:
    """One mask per image. Defaults: the paper's single-image settings (λ = 0.07, ≤ 20000 steps, patience 300)."""

    def __init__(self, model: nn.Module, *, lam: float = 0.07, lr: float = 0.01, steps: int = 20000,
                 patience: int = 300, batch_size: int = 64, schedule: str = "constant", space: str = "auto",
                 precision: str = "exact", seed: int = 0, device: str | torch.device | None = None,
                 progress: bool = True) -> None:
        self.model = model
        self.kw: dict[str, Any] = dict(lam=lam, lr=lr, steps=steps, patience=patience, batch_size=batch_size,
                                       schedule=None if schedule == "constant" else schedule, seed=seed,
                                       device=device, progress=progress)

    def __call__(self, images: Tensor, targets: Tensor | None = None, *, desc: str | None = None) -> MaskResult:
        return learn_masks(self.model, images, targets, per_image=True, desc=desc, **self.kw)


class DatasetMask:
    """One mask for a whole data set. Defaults: the paper's (λ = 0.2, lr 1e-3 one-cycle, ≤ 100 epochs, patience 7)."""

    def __init__(self, model: nn.Module, *, lam: float = 0.2, lr: float = 1e-3, epochs: int = 100,
                 patience: int = 7, batch_size: int = 1, schedule: str = "onecycle", space: str = "auto",
                 precision: str = "exact", seed: int = 0, device: str | torch.device | None = None,
                 progress: bool = True) -> None:
        self.model = model
        self.kw: dict[str, Any] = dict(lam=lam, lr=lr, steps=epochs, patience=patience, batch_size=batch_size,
                                       schedule=None if schedule == "constant" else schedule, seed=seed,
                                       device=device, progress=progress)

    def __call__(self, images: Tensor, targets: Tensor | None = None, *, desc: str | None = None) -> MaskResult:
        return learn_masks(self.model, images, targets, per_image=False, desc=desc, **self.kw)
