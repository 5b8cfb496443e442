"""The chores every mask learner shares (one home each): input checks, a private frozen copy of the
classifier, device, seeding, precision, memory format and where the mask acts (space / offset).

* **Input checks**: images (N, C, H, W) float, finite, in [0, 1] (pixel units; the model normalises);
  targets int (N,) within the model's classes. All raise ``ValueError``.
* **Model**: the learners never touch the caller's model. They learn on a private ``copy.deepcopy`` moved to
  the device, in eval mode with ``requires_grad=False`` (the original freezes Φ the same way), converted to
  ``channels_last`` (default on CPU and CUDA: 1.8-1.9x faster for VGG on this project's CPU, same fp32
  arithmetic up to float rounding) and optionally ``torch.compile``-d.
* **BN folding** (default): eval-mode BatchNorm after a convolution is folded into it on the private copy
  (same function up to float rounding; saves the BN passes).
* **Precision** (:data:`fmask.core.objective.PRECISIONS`): ``"exact"`` -- everything float32; ``"fast"`` -- the
  network alone under bf16 autocast (CPU or CUDA); masks, FFTs, the loss, Adam and the stopping statistics stay
  float32; ``"auto"`` -- ``"fast"`` on CUDA, ``"exact"`` elsewhere (resolved once, recorded resolved).
* **Space** (where the mask acts): ``"normalised"`` -- like the original (``train_single_img_masks.py``,
  ``networks.MaskCore``), on the normalised image (x − μ)/σ: x̄ = Re F⁻¹(M ⊙ F x) + (1 − M[c,0,0])·μ_c in
  pixel units (:func:`fmask.core.mask.pixel_offset`); ``"pixel"`` -- on x ∈ [0, 1];
  ``"auto"`` -- normalised when the model declares its normalisation (:class:`fmask.models.zoo.Normalized`'s
  ``mean`` buffer), else pixel.
"""
from __future__ import annotations

import contextlib
import copy
import math
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from fmask.core.mask import SPACES, pixel_offset
from fmask.core.objective import check_count, check_lam, check_precision, resolve_precision
from fmask.infra.runtime import model_device, resolve_device

__all__ = ["MaskLearner", "check_images", "check_targets", "frozen"]

_RANGE_TOL = 1e-4


def check_images(x: Any, name: str = "images") -> Tensor:
    """``x`` if it is a float tensor (N, C, H, W), N ≥ 1, finite, within [0, 1] (± 1e-4); else ValueError."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contain NaN or inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(f"{name} must lie in [0, 1] (pixel units; normalise inside the model), "
                         f"got range [{lo:.4g}, {hi:.4g}]")
    return x


def check_targets(t: Any, n: int, n_classes: int | None = None, name: str = "targets") -> Tensor:
    """int64 CPU (n,) copy of ``t``; ValueError unless integer, shape (n,) and (if given) in [0, n_classes)."""
    t = torch.as_tensor(t)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class indices, got dtype {t.dtype}")
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
    t = t.detach().cpu().long()
    if n_classes is not None and t.numel() and (int(t.min()) < 0 or int(t.max()) >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}) (the model's classes), got range "
                         f"[{int(t.min())}, {int(t.max())}]")
    return t


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` and ``requires_grad=False`` on all its parameters inside the block; both restored."""
    training = {m: m.training for m in model.modules()}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in flags:
            p.requires_grad_(f)
        for m, t in training.items():
            m.training = t


def fuse_conv_bn(net: nn.Module) -> int:
    """Fold every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` inside an ``nn.Sequential`` into
    the convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``; the BN becomes ``Identity``), in place on
    ``net`` -- only ever called on the learners' private copy. The network is the same function (float rounding
    aside) and skips the BN forward and backward (~20 % of a VGG11-bn step on CPU). Returns the number folded."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training
                    and bn.track_running_stats and bn.running_mean is not None):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
                folded += 1
    return folded


class MaskLearner:
    """Base of :class:`~fmask.learners.PerImageMasks` and :class:`~fmask.learners.DatasetMask` (see module doc).

    Subclasses set their hyper-parameters, call :meth:`_setup` and implement ``__call__``.
    """

    def __init__(self, model: nn.Module, *, lam: float, lr: float, patience: int, batch_size: int,
                 space: str, precision: str, seed: int, device: str | torch.device | None, progress: bool,
                 compile: bool, channels: int | None, channels_last: bool, fuse_bn: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        lam, lr = check_lam(lam, "lam (λ)"), float(lr)
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {lr}")
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        check_precision(precision, auto=True)
        if channels is not None:
            check_count(channels, "channels")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.model = model
        self.lam, self.lr = lam, lr
        self.patience = check_count(patience, "patience")
        self.batch_size = check_count(batch_size, "batch_size")
        self.space, self.seed = space, int(seed)
        self.device = model_device(model) if device is None else resolve_device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.precision = resolve_precision(precision, self.device.type)
        self.progress, self.compile = bool(progress), bool(compile)
        self.channels, self.channels_last, self.fuse_bn = channels, bool(channels_last), bool(fuse_bn)
        # where the mask acts, resolved once from the caller's model (ValueError for "normalised" without mean)
        self.resolved_space = "pixel" if not isinstance(getattr(model, "mean", None), Tensor) or space == "pixel" \
            else "normalised"
        pixel_offset(model, space)  # validates "normalised"

    # ------------------------------------------------------------------------------------------ chores
    def _params(self) -> dict[str, Any]:
        return {"lam": self.lam, "lr": self.lr, "patience": self.patience, "batch_size": self.batch_size,
                "seed": self.seed, "space": self.resolved_space, "precision": self.precision,
                "device": str(self.device), "channels_last": self.channels_last, "fuse_bn": self.fuse_bn,
                "compile": self.compile}

    def _private_model(self) -> nn.Module:
        """A frozen private copy of the model on the device (channels_last / compiled as configured)."""
        net = copy.deepcopy(self.model).to(self.device)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
            p.grad = None
        if self.fuse_bn:
            fuse_conv_bn(net)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.precision == "fast":
            # autocast runs convolutions / linear layers in bf16 and would re-cast their fp32 weights at every
            # forward (its weight cache only serves parameters that require grad, and Φ's are frozen): cast
            # them once on the private copy instead -- the same bf16 values, ~10 % faster on vgg11_bn (CPU)
            for mod in net.modules():
                if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                    mod.to(torch.bfloat16)
        if self.compile:
            net = torch.compile(net)
        return net

    def _offset(self, c: int) -> Tensor:
        """Per-channel μ (c,) on the device (zeros in pixel space)."""
        off = pixel_offset(self.model, self.space, channels=c).to(self.device)
        if off.numel() not in (1, c):
            raise ValueError(f"the model normalises {off.numel()} channels but the images have {c}")
        return off

    def _forward(self, net: nn.Module, x: Tensor) -> Tensor:
        """Logits (B, K) float32 of the (filtered, pixel-unit) images x (B, C, H, W); bf16 autocast if fast."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.precision == "fast":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return net(x).float()
        return net(x).float()

    def _mask_channels(self, c: int) -> int:
        ch = c if self.channels is None else self.channels
        if ch not in (1, c):
            raise ValueError(f"channels must be 1 or the images' C={c}, got {ch}")
        return ch

    def _num_classes(self, net: nn.Module, x: Tensor) -> int:
        """K from one no-grad forward of one image."""
        with torch.no_grad():
            out = self._forward(net, x[:1].to(self.device, torch.float32))
        if out.dim() != 2:
            raise ValueError(f"the model must return logits (B, K), got shape {tuple(out.shape)}")
        return int(out.shape[1])
