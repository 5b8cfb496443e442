"""Learning Fourier masks for a frozen classifier (Karantzas et al., 2022).

Objective (per sample ``i``, then averaged over a batch for dataset masks, summed over independent
masks for per-image learning)::

    loss_i = exp[(CE(Φ(x̄_i), y_i) − CE(Φ(x_i), y_i))²] + λ · mean(|M|),   x̄ = Re F⁻¹(M ⊙ F x)

The exponential is taken **per sample** (never of a difference of batch means). The original writes the
sparsity term as λ/‖M₀‖₁ · ‖M‖₁; with M₀ = ones that is λ·mean(|M|) (we use |M| like the original's L1 norm,
so the gradient at an entry clamped to 0 is 0, exactly as there). Optimiser: Adam; after every step the
mask is projected to [0, 1]. The network Φ is put in eval mode with ``requires_grad=False`` on all its
parameters for the duration; both are restored afterwards. The reference CE(Φ(x), y) is computed like the
original, through a mask of ones (x → Re F⁻¹(F x)).

Stopping rules (those of the original ``train_single_img_masks.py`` and ``train_masks.py``):

* **per-image masks** (``per_image=True``): after step t (t ≥ 2), if the masked prediction (after the
  step) equals the initial prediction, then ``count += 1`` when ``|inv_t − inv_{t−1}| ≤ 1e-6`` and
  ``|sp_t − sp_{t−1}| ≤ 1e-5`` (``inv`` = squared CE difference, ``sp`` = mean(|M|), both measured in the
  forward pass of the step, i.e. before the update), else ``count = 0``. As in the original, a step whose
  prediction differs from the initial one leaves ``count`` unchanged. The mask is converged (frozen) when
  ``count == patience`` (default 300); at most ``steps`` (default 20000) steps. Default targets are the
  model's own predictions (``targets=None``), as in the original.
* **dataset mask** (``per_image=False``): one optimiser step per batch (the original used batch size 1
  over the validation set, up to 100 epochs). After each epoch the masked accuracy on the same data is
  measured. From the second epoch on, if masked/initial accuracy ≥ 0.99, the mask is snapshot and
  ``count += 1`` if the epoch-mean of mean(|M|) changed by ≤ 1e-5 from the previous epoch, else
  ``count = 0``. Stop when ``count == patience`` (default 7). The returned mask is the last snapshot; if
  there is none, the final mask is returned with ``converged=False``. Data order is shuffled every epoch
  with a ``torch.Generator`` seeded from ``seed`` (tensor input).

Learning rates and schedules:

* dataset masks: λ = 0.2, lr = 1e-3 with the original's OneCycleLR (max_lr = lr, pct_start = 0.1,
  total = epochs × batches per epoch; it also cycles Adam's β₁ between 0.95 and 0.85, as in the original);
  ``schedule=None`` gives a constant lr.
* per-image masks: λ = 0.07 and a **constant lr 0.01**. The original's flag says lr 0.2, but its
  OneCycleLR(max_lr=0.2, epochs=20000, steps_per_epoch=200, pct_start=0.1) spans 4 000 000 steps and never
  leaves its warm-up within the ≤ 20000 steps actually taken: the lr runs from 0.2/25 = 0.008 to ≈ 0.0092
  (and β₁ from 0.95 to ≈ 0.949). ``schedule="original"`` reproduces exactly that per-step schedule (with
  lr defaulting to the flag's 0.2).

Per-image masks are learned **batched**: one (B, C, H, W) parameter per chunk of ``batch_size`` images and
the sum of the per-image losses, so each mask's gradient is exactly its own image's and (Adam being
element-wise) the result equals learning the masks one at a time, up to float rounding of the batched
network. A mask that meets its stopping rule is frozen: its value is restored after every later step.
A chunk stops when all its masks are frozen (checked every ``log_every`` steps, the only host syncs in the
step loop; freezing itself happens on-device at the exact step, so the masks do not depend on
``log_every``) or after ``steps`` steps.

On CUDA with ``amp=True`` the network runs under bf16 autocast on channels_last inputs, while masks, FFTs
and the loss stay float32. On CPU everything is float32 and the results are deterministic.
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["MaskResult", "learn_masks", "invariance_loss", "original_single_image_lr", "DEFAULTS"]

DEFAULTS: dict[str, dict[str, Any]] = {
    "per_image": {"lam": 0.07, "lr": 0.01, "steps": 20000, "patience": 300, "batch_size": 64,
                  "schedule": None, "original_lr": 0.2, "original_steps_per_epoch": 200,
                  "pct_start": 0.1},
    "dataset": {"lam": 0.2, "lr": 1e-3, "steps": 100, "patience": 7, "batch_size": 1,
                "schedule": "onecycle", "pct_start": 0.1, "accuracy_ratio": 0.99},
}
TOL_INVARIANCE = 1e-6
TOL_SPARSITY = 1e-5
_RANGE_TOL = 1e-4
_FORMAT = "fmask.MaskResult/1"


def _version() -> str:
    try:
        from fmask import __version__
        return str(__version__)
    except Exception:  # pragma: no cover
        return "unknown"


@dataclass
class MaskResult:
    """Masks learned by :func:`learn_masks`.

    Attributes:
        masks: float32 CPU (N, C, H, W) per-image masks, or (1, C, H, W) for a dataset mask; fft2 layout.
        steps: int64 (n_masks,): per-image → optimisation steps run for each mask (up to its freezing);
            dataset → optimiser steps taken up to the returned mask (the snapshot).
        converged: bool (n_masks,): the stopping rule was met.
        history: dict of 1-D float tensors. Dataset mask, one entry per epoch: ``loss``, ``invariance``
            (squared CE difference), ``sparsity`` (mean of |M|) – epoch means of the pre-step values – and
            ``accuracy`` (masked accuracy, %) plus ``initial_accuracy`` (1 entry) and ``snapshot_epoch``
            (1 entry, 0 if none). Per-image masks, one entry per mask, values at its last step:
            ``loss``, ``invariance``, ``sparsity``, ``initial_prediction``, ``prediction`` (masked
            prediction with the returned mask), ``target``.
        params: the settings used (plain Python values).
        metadata: free-form metadata stored by :meth:`save` (e.g. which model / data).
    """

    masks: Tensor
    steps: Tensor
    converged: Tensor
    history: dict[str, Tensor]
    params: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        """Write atomically (temp file in the same directory, then ``os.replace``).

        Stores masks, steps, converged, history, params (incl. seed), ``metadata`` (merged over
        ``self.metadata``; plain Python values only) and the torch / fmask versions.
        """
        path = os.fspath(path)
        meta = dict(self.metadata)
        if metadata:
            meta.update(dict(metadata))
        payload = {
            "format": _FORMAT,
            "masks": self.masks.detach().cpu(),
            "steps": self.steps.detach().cpu(),
            "converged": self.converged.detach().cpu(),
            "history": {k: v.detach().cpu() for k, v in self.history.items()},
            "params": dict(self.params),
            "metadata": meta,
            "versions": {"torch": str(torch.__version__), "fmask": _version()},
        }
        from .store import atomic_torch_save

        atomic_torch_save(payload, path)

    def to_payload(self) -> dict[str, Any]:
        """The tensors and settings as a plain dict (the artifact store's and :meth:`save`'s format)."""
        return {
            "format": _FORMAT,
            "masks": self.masks.detach().cpu().float(),
            "steps": self.steps.detach().cpu(),
            "converged": self.converged.detach().cpu(),
            "history": {k: v.detach().cpu() for k, v in self.history.items()},
            "params": dict(self.params),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> "MaskResult":
        """Inverse of :meth:`to_payload`."""
        return cls(masks=payload["masks"], steps=payload["steps"], converged=payload["converged"],
                   history=dict(payload["history"]), params=dict(payload["params"]),
                   metadata=dict(metadata or {}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MaskResult":
        """Read a file written by :meth:`save` (``torch.load(weights_only=True)``)."""
        payload = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a MaskResult file (format {_FORMAT})")
        meta = dict(payload.get("metadata", {}))
        meta.setdefault("versions", payload.get("versions", {}))
        return cls(masks=payload["masks"], steps=payload["steps"], converged=payload["converged"],
                   history=dict(payload["history"]), params=dict(payload["params"]), metadata=meta)


def invariance_loss(logits: Tensor, targets: Tensor, ref_ce: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample invariance: returns (exp(d²) (B,), d² (B,)) with d = CE(logits, y) − ref_ce, float32."""
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    d2 = (ce - ref_ce) ** 2
    return torch.exp(d2), d2


def original_single_image_lr(step: int, lr: float = 0.2, steps: int = 20000,
                             steps_per_epoch: int = 200, pct_start: float = 0.1) -> float:
    """The lr the original single-image code used at optimiser step ``step`` (0-based): OneCycleLR warm-up
    (cosine from lr/25 towards lr over pct_start · steps · steps_per_epoch steps)."""
    total = steps * steps_per_epoch
    warm = float(pct_start * total) - 1
    start = lr / 25.0
    pct = step / warm
    return lr + (start - lr) * (math.cos(math.pi * pct) + 1) / 2 if pct <= 1 else float("nan")


# --------------------------------------------------------------------------------------------- helpers
class _FrozenModel:
    """Context: model.eval() and requires_grad=False on all params; restores both on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> nn.Module:
        self.training = {m: m.training for m in self.model.modules()}
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.eval()
        for p, _ in self.flags:
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc: object) -> None:
        for p, flag in self.flags:
            p.requires_grad_(flag)
        for m, t in self.training.items():
            m.training = t


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _check_batch(x: Tensor, name: str = "images") -> None:
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


def _check_targets(t: Tensor, n: int, name: str = "targets") -> Tensor:
    t = torch.as_tensor(t)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match the images, got {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name} must be integer class indices, got dtype {t.dtype}")
    return t.long()


def _stop_count(pred: Tensor, init_pred: Tensor, inv: Tensor, inv_prev: Tensor, sp: Tensor, sp_prev: Tensor,
                count: Tensor, frozen: Tensor) -> Tensor:
    """One step of the original's per-image stopping counter, for B masks at once (all tensors (B,)).

    +1 where the masked prediction equals the initial one and the invariance and sparsity moved by at most
    ``TOL_INVARIANCE`` / ``TOL_SPARSITY``; reset to 0 where the prediction is unchanged but they moved more;
    unchanged where the prediction differs (as the original); frozen masks keep their count.
    """
    same = pred == init_pred
    small = ((inv - inv_prev).abs() <= TOL_INVARIANCE) & ((sp - sp_prev).abs() <= TOL_SPARSITY)
    new_count = torch.where(same, torch.where(small, count + 1, torch.zeros_like(count)), count)
    return torch.where(frozen, count, new_count)


class _Net:
    """Calls the frozen network with the amp / channels_last policy; returns float32 logits."""

    def __init__(self, model: nn.Module, device: torch.device, amp: bool) -> None:
        self.model, self.device = model, device
        self.amp = bool(amp) and device.type == "cuda"
        if device.type == "cuda":
            # fixed input shapes for the whole run: let cuDNN pick the fastest convolution algorithms
            torch.backends.cudnn.benchmark = True

    def __call__(self, x: Tensor) -> Tensor:
        if self.amp:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = self.model(x)
        else:
            out = self.model(x)
        if not isinstance(out, Tensor) or out.dim() != 2:
            raise ValueError(f"model must return logits (B, n_classes), got "
                             f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
        return out.float()


def _make_scheduler(opt: torch.optim.Optimizer, schedule: str | None, lr: float, total: int,
                    pct_start: float) -> torch.optim.lr_scheduler.LRScheduler | None:
    if schedule is None:
        return None
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=pct_start)


# --------------------------------------------------------------------------------------------- main API
def learn_masks(
    model: nn.Module,
    images: Tensor | Iterable,
    targets: Tensor | None = None,
    *,
    per_image: bool,
    lam: float | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    patience: int | None = None,
    schedule: str | None = "default",
    device: str | torch.device | None = None,
    amp: bool = True,
    channels: int | None = None,
    log_every: int = 50,
    progress: bool = True,
    desc: str | None = None,
) -> MaskResult:
    """Learn per-image Fourier masks or one dataset mask for a frozen classifier (see module docstring).

    Args:
        model: classifier mapping images (B, C, H, W) in [0, 1] to logits (B, K). Not modified (its
            train/eval modes and requires_grad flags are restored; if ``device`` differs from the
            model's device a copy is moved there).
        images: float tensor (N, C, H, W) in [0, 1], or (dataset masks only) an iterable/DataLoader of
            (images, targets) batches – then ``targets`` must be None.
        targets: int64 (N,) labels for tensor input; None → the model's own predictions (the original's
            choice for single-image masks).
        per_image: True → one mask per image (N, C, H, W); False → one dataset mask (1, C, H, W).
        lam: sparsity weight λ (≥ 0). Default 0.07 per-image, 0.2 dataset.
        steps: per-image: max optimisation steps per mask (default 20000); dataset: max epochs
            (default 100; ``epochs`` is an alias).
        lr: Adam learning rate (max lr of the one-cycle schedule). Default 0.01 per-image (0.2 with
            ``schedule="original"``), 1e-3 dataset.
        batch_size: per-image: images per chunk (memory bound; default 64); dataset: batch size of the
            optimiser steps for tensor input (default 1, like the original).
        seed: seeds the data shuffling generator (dataset masks) and torch's RNG for the run.
        patience: see the stopping rules. Default 300 per-image, 7 dataset.
        schedule: ``"default"`` (per-image: constant; dataset: ``"onecycle"``), ``None``/``"constant"``,
            ``"onecycle"`` (dataset), or ``"original"`` (per-image: the original's never-finished
            warm-up; dataset: same as ``"onecycle"``).
        device: where to learn; default the model's device.
        amp: on CUDA run the network in bf16 autocast with channels_last inputs (ignored on CPU).
        channels: mask channels (default: the images' C; 1 shares one mask over colour channels).
        log_every: steps between host syncs (progress update, early stop of a finished chunk).
        progress: show tqdm bars.
        desc: tqdm description.

    Returns:
        :class:`MaskResult` (masks float32 on CPU).

    Raises:
        ValueError: wrong shapes, λ < 0, steps/epochs/patience/batch_size/log_every < 1, lr ≤ 0,
            NaN/inf images, images outside [0, 1], targets of the wrong length, unknown schedule.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    mode = "per_image" if per_image else "dataset"
    d = DEFAULTS[mode]
    if epochs is not None:
        if per_image:
            raise ValueError("epochs applies to dataset masks; use steps= for per-image masks")
        if steps is not None and steps != epochs:
            raise ValueError(f"steps={steps} and epochs={epochs} disagree (for dataset masks they are aliases)")
        steps = epochs
    if schedule == "default":
        schedule = d["schedule"]
    if schedule == "constant":
        schedule = None
    if schedule not in (None, "onecycle", "original"):
        raise ValueError(f"schedule must be 'default', None, 'constant', 'onecycle' or 'original', got {schedule!r}")
    if per_image and schedule == "onecycle":
        raise ValueError("schedule='onecycle' is for dataset masks; per-image masks take None or 'original'")
    if not per_image and schedule == "original":
        schedule = "onecycle"
    lam = d["lam"] if lam is None else float(lam)
    steps = d["steps"] if steps is None else steps
    patience = d["patience"] if patience is None else patience
    batch_size = d["batch_size"] if batch_size is None else batch_size
    if lr is None:
        lr = d["original_lr"] if (per_image and schedule == "original") else d["lr"]
    lr = float(lr)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam (λ) must be a finite number >= 0, got {lam}")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    for name, v in (("steps", steps), ("patience", patience), ("batch_size", batch_size),
                    ("log_every", log_every)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")

    dev = torch.device(device) if device is not None else _model_device(model)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    net_model = model
    mdev = _model_device(model)
    if mdev.type == "cuda" and mdev.index is None:  # pragma: no cover
        mdev = torch.device("cuda", torch.cuda.current_device())
    if mdev != dev:
        net_model = copy.deepcopy(model).to(dev)

    params: dict[str, Any] = {
        "per_image": bool(per_image), "lam": lam, "lr": lr, "steps": int(steps), "patience": int(patience),
        "batch_size": int(batch_size), "seed": int(seed), "schedule": schedule, "device": str(dev),
        "amp": bool(amp and dev.type == "cuda"), "log_every": int(log_every),
        "tol_invariance": TOL_INVARIANCE, "tol_sparsity": TOL_SPARSITY,
    }
    if not per_image:
        params["accuracy_ratio"] = d["accuracy_ratio"]
        params["pct_start"] = d["pct_start"]
    elif schedule == "original":
        params["original_steps_per_epoch"] = d["original_steps_per_epoch"]
        params["pct_start"] = d["pct_start"]

    is_tensor = isinstance(images, Tensor)
    if is_tensor:
        _check_batch(images)
        if channels is None:
            channels = images.shape[1]
        if targets is not None:
            targets = _check_targets(targets, images.shape[0])
    else:
        if per_image:
            raise ValueError("per-image masks need images as a tensor (N, C, H, W); got "
                             f"{type(images).__name__}")
        if targets is not None:
            raise ValueError("targets must be None when images is a DataLoader/iterable of (images, targets)")
    if channels is not None and (not isinstance(channels, int) or channels < 1):
        raise ValueError(f"channels must be a positive int, got {channels!r}")

    net = _Net(net_model, dev, amp)
    with _FrozenModel(net_model), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        if per_image:
            res = _learn_per_image(net, images, targets, dev, lam=lam, steps=steps, lr=lr, chunk=batch_size,
                                   patience=patience, schedule=schedule, channels=channels,
                                   log_every=log_every, progress=progress, desc=desc)
        else:
            res = _learn_dataset(net, images, targets, dev, lam=lam, epochs=steps, lr=lr,
                                 batch_size=batch_size, patience=patience, schedule=schedule,
                                 channels=channels, seed=seed, progress=progress, desc=desc,
                                 is_tensor=is_tensor)
    masks, nsteps, conv, hist = res
    params["channels"] = int(masks.shape[1])
    return MaskResult(masks=masks, steps=nsteps, converged=conv, history=hist, params=params)


# --------------------------------------------------------------------------------------------- per image
def _learn_per_image(net: _Net, images: Tensor, targets: Tensor | None, dev: torch.device, *, lam: float,
                     steps: int, lr: float, chunk: int, patience: int, schedule: str | None,
                     channels: int, log_every: int, progress: bool, desc: str | None):
    n, c, h, w = images.shape
    if channels not in (1, c):
        raise ValueError(f"channels must be 1 or the images' C={c}, got {channels}")
    out_masks = torch.empty(n, channels, h, w, dtype=torch.float32)
    out_steps = torch.empty(n, dtype=torch.long)
    out_conv = torch.empty(n, dtype=torch.bool)
    hist = {k: torch.empty(n) for k in ("loss", "invariance", "sparsity")}
    hist.update({k: torch.empty(n, dtype=torch.long) for k in ("initial_prediction", "prediction", "target")})
    sd = DEFAULTS["per_image"]
    outer = tqdm(total=n, desc=desc or "per-image masks", unit="img", disable=None if progress else True)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        x = images[s:e].to(dev, torch.float32)
        y = None if targets is None else targets[s:e].to(dev)
        r = _learn_chunk(net, x, y, lam=lam, steps=steps, lr=lr, patience=patience, schedule=schedule,
                         channels=channels, log_every=log_every, progress=progress,
                         sched_spe=sd["original_steps_per_epoch"], pct_start=sd["pct_start"])
        out_masks[s:e] = r["masks"]
        out_steps[s:e] = r["steps"]
        out_conv[s:e] = r["converged"]
        for k in hist:
            hist[k][s:e] = r[k]
        outer.update(e - s)
    outer.close()
    return out_masks, out_steps, out_conv, hist


def _learn_chunk(net: _Net, x: Tensor, y: Tensor | None, *, lam: float, steps: int, lr: float,
                 patience: int, schedule: str | None, channels: int, log_every: int, progress: bool,
                 sched_spe: int, pct_start: float) -> dict[str, Tensor]:
    """Learn B independent masks for the B images x (B, C, H, W) on x's device."""
    b, c, h, w = x.shape
    dev = x.device
    spec = torch.fft.fft2(x)  # (B, C, H, W) complex64, computed once
    with torch.no_grad():
        logits0 = net(torch.fft.ifft2(spec).real)  # through a mask of ones, like the original
        init_pred = logits0.argmax(1)
        y = init_pred if y is None else y
        ref_ce = F.cross_entropy(logits0, y, reduction="none")
    weight = torch.ones(b, channels, h, w, device=dev, requires_grad=True)
    opt = torch.optim.Adam([weight], lr=lr, fused=weight.is_cuda)  # fused: no per-step host sync on CUDA
    sched = None
    if schedule == "original":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=steps, steps_per_epoch=sched_spe,
                                                    pct_start=pct_start)
    frozen = torch.zeros(b, dtype=torch.bool, device=dev)
    frozen_val = torch.ones_like(weight, requires_grad=False)
    count = torch.zeros(b, dtype=torch.long, device=dev)
    n_steps = torch.full((b,), steps, dtype=torch.long, device=dev)
    last = {k: torch.zeros(b, device=dev) for k in ("loss", "invariance", "sparsity")}
    fr4 = frozen.view(b, 1, 1, 1)
    bar = tqdm(total=steps, desc="mask steps", leave=False, disable=None if progress else True)
    done_at = steps
    t = 0
    for t in range(1, steps + 1):
        xb = torch.fft.ifft2(weight * spec).real
        logits = net(xb)
        ex, inv = invariance_loss(logits, y, ref_ce)
        sp = weight.abs().mean(dim=(1, 2, 3))
        loss_i = ex + lam * sp
        with torch.no_grad():
            inv_d, sp_d = inv.detach(), sp.detach()
            if t >= 3:
                # stopping rule for step t-1: logits here come from the mask after step t-1
                count = _stop_count(logits.detach().argmax(1), init_pred, inv_prev_step, inv_prev2,
                                    sp_prev_step, sp_prev2, count, frozen)
                newly = (~frozen) & (count == patience)
                frozen_val = torch.where(newly.view(b, 1, 1, 1), weight.detach(), frozen_val)
                n_steps = torch.where(newly, torch.full_like(n_steps, t - 1), n_steps)
                for k, v in (("loss", loss_prev), ("invariance", inv_prev_step), ("sparsity", sp_prev_step)):
                    last[k] = torch.where(newly, v, last[k])
                frozen = frozen | newly
                fr4 = frozen.view(b, 1, 1, 1)
            if t >= 2:
                inv_prev2, sp_prev2 = inv_prev_step, sp_prev_step
            inv_prev_step, sp_prev_step, loss_prev = inv_d, sp_d, loss_i.detach()
        if t % log_every == 0 or t == steps:
            bar.update(t - bar.n)
            nf = int(frozen.sum())
            bar.set_postfix(frozen=f"{nf}/{b}", refresh=False)
            if nf == b:
                done_at = t - 1
                break
        opt.zero_grad(set_to_none=True)
        loss_i.sum().backward()
        opt.step()
        if sched is not None:
            sched.step()
        with torch.no_grad():
            weight.clamp_(0.0, 1.0)
            weight.copy_(torch.where(fr4, frozen_val, weight))
    else:
        done_at = steps
    bar.close()
    with torch.no_grad():
        if done_at == steps:
            # the check for the very last step needs one more forward pass with the final masks
            logits = net(torch.fft.ifft2(weight * spec).real)
            pred = logits.argmax(1)
            if steps >= 2:
                count = _stop_count(pred, init_pred, inv_prev_step, inv_prev2, sp_prev_step, sp_prev2, count,
                                    frozen)
                newly = (~frozen) & (count == patience)
                frozen = frozen | newly
            not_fz = ~frozen | (n_steps == steps)
            for k, v in (("loss", loss_prev), ("invariance", inv_prev_step), ("sparsity", sp_prev_step)):
                last[k] = torch.where(not_fz, v, last[k])
        final = torch.where(fr4, frozen_val, weight.detach())
        final_pred = net(torch.fft.ifft2(final * spec).real).argmax(1)
    return {"masks": final.float().cpu(), "steps": n_steps.cpu(), "converged": frozen.cpu(),
            "loss": last["loss"].float().cpu(), "invariance": last["invariance"].float().cpu(),
            "sparsity": last["sparsity"].float().cpu(), "initial_prediction": init_pred.cpu(),
            "prediction": final_pred.cpu(), "target": y.cpu()}


# --------------------------------------------------------------------------------------------- dataset
def _learn_dataset(net: _Net, images, targets, dev: torch.device, *, lam: float, epochs: int, lr: float,
                   batch_size: int, patience: int, schedule: str | None, channels: int | None, seed: int,
                   progress: bool, desc: str | None, is_tensor: bool):
    gen = torch.Generator().manual_seed(int(seed))
    ref_all = None
    if is_tensor:
        n, c, h, w = images.shape
        if targets is None:
            with torch.no_grad():
                preds = []
                for s in range(0, n, 256):
                    xs = images[s:s + 256].to(dev, torch.float32)
                    preds.append(net(torch.fft.ifft2(torch.fft.fft2(xs)).real).argmax(1).cpu())
                targets = torch.cat(preds)
        n_batches = math.ceil(n / batch_size)

        def epoch_batches(shuffle: bool):
            order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
            for s in range(0, n, batch_size):
                idx = order[s:s + batch_size]
                yield idx, images[idx], targets[idx]
        # reference CE for every image, once
        with torch.no_grad():
            ref_all = torch.empty(n)
            for s in range(0, n, 256):
                xs = images[s:s + 256].to(dev, torch.float32)
                lg = net(torch.fft.ifft2(torch.fft.fft2(xs)).real)
                ref_all[s:s + 256] = F.cross_entropy(lg, targets[s:s + 256].to(dev), reduction="none").cpu()
        ref_all = ref_all.to(dev)
    else:
        loader = images
        try:
            n_batches = len(loader)
        except TypeError as e:
            raise ValueError("a DataLoader/iterable of batches must define len() (batches per epoch)") from e
        c = h = w = None

        def epoch_batches(shuffle: bool):
            for i, batch in enumerate(loader):
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise ValueError("the DataLoader must yield (images, targets) batches")
                xb, yb = batch[0], batch[1]
                _check_batch(xb, f"images (batch {i})")
                yb = _check_targets(yb, xb.shape[0], f"targets (batch {i})")
                yield None, xb, yb

    weight = None
    opt = sched = None

    def init_weight(shape):
        nonlocal weight, opt, sched, c, h, w
        _, c_, h_, w_ = shape
        c, h, w = c_, h_, w_
        ch = c_ if channels is None else channels
        if ch not in (1, c_):
            raise ValueError(f"channels must be 1 or the images' C={c_}, got {ch}")
        weight = torch.ones(1, ch, h_, w_, device=dev, requires_grad=True)
        opt = torch.optim.Adam([weight], lr=lr, fused=weight.is_cuda)  # fused: no per-step host sync on CUDA
        sched = _make_scheduler(opt, schedule, lr, epochs * n_batches, DEFAULTS["dataset"]["pct_start"])

    def accuracy(mask: Tensor | None) -> float:
        correct = torch.zeros((), dtype=torch.long, device=dev)
        total = 0
        with torch.no_grad():
            for _, xb, yb in epoch_batches(False):
                xb = xb.to(dev, torch.float32)
                if (c, h, w) != tuple(xb.shape[1:]) and c is not None:
                    raise ValueError(f"batch shape {tuple(xb.shape)} differs from the first batch's (…, {c}, {h}, {w})")
                spec = torch.fft.fft2(xb)
                xm = torch.fft.ifft2(spec if mask is None else mask * spec).real
                correct += (net(xm).argmax(1) == yb.to(dev)).sum()
                total += xb.shape[0]
        if total == 0:
            raise ValueError("no images to learn a dataset mask from")
        return 100.0 * float(correct) / total

    init_acc = accuracy(None)
    hist: dict[str, list[float]] = {"loss": [], "invariance": [], "sparsity": [], "accuracy": []}
    snapshot = None
    snapshot_epoch = 0
    snapshot_steps = 0
    count = 0
    total_steps = 0
    stopped = False
    ratio = DEFAULTS["dataset"]["accuracy_ratio"]
    bar = tqdm(range(1, epochs + 1), desc=desc or "dataset mask", unit="epoch", disable=None if progress else True)
    for epoch in bar:
        acc_loss = torch.zeros((), device=dev)
        acc_inv = torch.zeros((), device=dev)
        acc_sp = torch.zeros((), device=dev)
        nb = 0
        for idx, xb, yb in epoch_batches(True):
            xb = xb.to(dev, torch.float32)
            yb = yb.to(dev)
            if weight is None:
                init_weight(xb.shape)
            if tuple(xb.shape[1:]) != (c, h, w):
                raise ValueError(f"batch shape {tuple(xb.shape)} differs from (…, {c}, {h}, {w})")
            spec = torch.fft.fft2(xb)
            if ref_all is not None:
                ref = ref_all[idx.to(dev)]
            else:
                with torch.no_grad():
                    ref = F.cross_entropy(net(torch.fft.ifft2(spec).real), yb, reduction="none")
            logits = net(torch.fft.ifft2(weight * spec).real)
            ex, inv = invariance_loss(logits, yb, ref)
            sp = weight.abs().mean()
            loss = ex.mean() + lam * sp
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            with torch.no_grad():
                weight.clamp_(0.0, 1.0)
            acc_loss += loss.detach()
            acc_inv += inv.detach().mean()
            acc_sp += sp.detach()
            nb += 1
            total_steps += 1
        if nb == 0:
            raise ValueError("no images to learn a dataset mask from")
        hist["loss"].append(float(acc_loss) / nb)
        hist["invariance"].append(float(acc_inv) / nb)
        hist["sparsity"].append(float(acc_sp) / nb)
        acc = accuracy(weight.detach())
        hist["accuracy"].append(acc)
        if epoch > 1 and acc >= ratio * init_acc:
            snapshot = weight.detach().clone()
            snapshot_epoch, snapshot_steps = epoch, total_steps
            if abs(hist["sparsity"][-1] - hist["sparsity"][-2]) <= TOL_SPARSITY:
                count += 1
            else:
                count = 0
        bar.set_postfix(inv=f"{hist['invariance'][-1]:.3g}", sparsity=f"{hist['sparsity'][-1]:.3f}",
                        acc=f"{acc:.1f}/{init_acc:.1f}", count=count, refresh=False)
        if count == patience:
            stopped = True
            break
    bar.close()
    if snapshot is None:
        final, nsteps = weight.detach(), total_steps
    else:
        final, nsteps = snapshot, snapshot_steps
    history = {k: torch.tensor(v, dtype=torch.float32) for k, v in hist.items()}
    history["initial_accuracy"] = torch.tensor([init_acc], dtype=torch.float32)
    history["snapshot_epoch"] = torch.tensor([float(snapshot_epoch)])
    return (final.float().cpu(), torch.tensor([nsteps], dtype=torch.long),
            torch.tensor([stopped and snapshot is not None]), history)
