"""Running a classifier for the frequency analyses (:mod:`~fmask.analysis.heatmap`,
:mod:`~fmask.analysis.passband`, :mod:`~fmask.analysis.agreement`, :mod:`~fmask.analysis.planted`): argument
checks with one-line errors, the model's logits checked for shape, the eval-mode context and batched label
predictions.

Images are float tensors (N, C, H, W) in [0, 1]; labels are (N,) integer class indices.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from fmask.infra.runtime import model_device, resolve_device

__all__ = ["check_int", "check_images", "check_labels", "model_logits", "EvalMode", "predict_labels"]

_RANGE_TOL = 1e-4


def check_int(name: str, v, lo: int = 1) -> int:
    """``v`` as an int, or a ``ValueError`` naming ``name`` when it is no int (bools refused) or below ``lo``."""
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def check_images(images: Tensor, *, in_unit_range: bool) -> Tensor:
    """``images`` unchanged if it is a non-empty, finite, real float tensor (N, C, H, W), else ``ValueError``;
    with ``in_unit_range`` its values must also lie in [0, 1] (to within 1e-4)."""
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got shape {tuple(images.shape)}")
    if images.numel() == 0:
        raise ValueError(f"images is empty: shape {tuple(images.shape)}")
    if images.is_complex() or not images.is_floating_point():
        raise ValueError(f"images must be a real float tensor in [0, 1], got dtype {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or inf values")
    if in_unit_range:
        lo, hi = float(images.min()), float(images.max())
        if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
            raise ValueError(f"images must lie in [0, 1] (pixel units), got range [{lo:.4g}, {hi:.4g}]")
    return images


def check_labels(labels, n: int) -> Tensor:
    """``labels`` as a LongTensor (n,) of class indices; ``ValueError`` for another shape or a non-integer dtype."""
    t = torch.as_tensor(labels)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},) to match the images, got {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {t.dtype}")
    return t.long()


def model_logits(model: nn.Module, x: Tensor) -> Tensor:
    """``model(x)``, checked to be logits (B, K) for the B images of ``x``; ``ValueError`` otherwise."""
    out = model(x)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"model must return logits (B, n_classes) for a batch of {x.shape[0]} images, got "
                         f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
    return out


class EvalMode:
    """Context: the model on ``device`` in eval mode (a copy if it lives elsewhere); modes restored on exit."""

    def __init__(self, model: nn.Module, device) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.device = model_device(model) if device is None else resolve_device(device)

    def __enter__(self) -> tuple[nn.Module, torch.device]:
        same = model_device(self.model) == self.device
        net = self.model if same else copy.deepcopy(self.model).to(self.device)
        self.modes = {m: m.training for m in self.model.modules()}
        net.eval()
        return net, self.device

    def __exit__(self, *exc) -> None:
        for m, t in self.modes.items():
            m.training = t


def predict_labels(net: nn.Module, images: Tensor, batch_size: int, device: torch.device) -> Tensor:
    """Arg-max predictions (N,) on the CPU of ``net`` (already on ``device`` and in eval mode, see
    :class:`EvalMode`) for ``images`` (N, C, H, W), in batches of ``batch_size``, without gradients."""
    out = []
    with torch.no_grad():
        for s in range(0, images.shape[0], batch_size):
            out.append(model_logits(net, images[s:s + batch_size].to(device, torch.float32)).argmax(1).cpu())
    return torch.cat(out)
