"""Serial reference: the original paper code's per-image mask procedure, re-implemented.

This mirrors ``train_single_img_masks.py`` of the original repository (nkarantzas/FourierMasks) step for
step, so that the speed comparison with :func:`fmask.learners.learn_masks` is honest:

* one image at a time, batch size 1;
* a *fresh* classifier per image: the checkpoint is loaded again from disk (``torch.load``), its weights
  are frozen, a new all-ones mask and a new Adam optimiser are built, seeds are reset;
* per step: forward + backward through mask and network, ``.item()`` logging of the invariance and
  sparsity terms, Adam step, zero_grad, optional scheduler step, clamp of the mask to [0, 1], then a
  prediction check (an extra no-grad forward with ``.item()``) and the original convergence counter.

Where the mask acts: like the original (``networks.MaskCore`` filters the loader's output), on the
*normalised* image. For a model that declares its normalisation (fmask's ``Normalized`` wrapper: ``mean``,
``std`` buffers and the bare network ``net``) and ``space="auto"``/``"normalised"``, every forward here is
``net(Re F⁻¹(M ⊙ F((x − μ)/σ)))`` -- normalise first, then filter, then the bare network -- independent of
fmask's pixel-offset formula; ``space="pixel"`` (or a plain module) filters the [0, 1] image and calls the model.

The loss is the paper's: ``exp[(CE(Φ(x̄), y) − CE(Φ(x), y))²] + λ·mean(M)`` (the original writes the
second term as ``λ / ‖1‖₁ · ‖M‖₁``, which equals ``λ·mean(M)`` for M ≥ 0).

Shapes: images (N, C, H, W) float32 in [0, 1]; targets (N,) int64; masks (N, C, H, W) in ``torch.fft.fft2``
layout (DC at [0, 0]).

This is a benchmark / test reference, not library code: it is deliberately as slow as the original.
"""
from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SerialResult", "checkpoint_factory", "learn_masks_serial", "serial_mask_forward"]


@dataclass
class SerialResult:
    """Output of :func:`learn_masks_serial`.

    masks: (N, C, H, W) float32, fft2 layout; steps: (N,) int64 steps taken per image;
    converged: (N,) bool (patience reached); predictions: (N,) final predicted class;
    history: per image, dict of lists ``invariance`` ((CE − CE₀)², before exp) and ``sparsity`` (mean M).
    seconds: wall time of the whole run; loop_seconds: time spent in the step loops only (per-step work:
    forward, backward, logging, Adam, clamp, prediction check), without the per-image set-up;
    step_seconds: the duration of every single step (all images, in order).
    """

    masks: torch.Tensor
    steps: torch.Tensor
    converged: torch.Tensor
    predictions: torch.Tensor
    history: list[dict[str, list[float]]] = field(default_factory=list)
    seconds: float = 0.0
    loop_seconds: float = 0.0
    step_seconds: list[float] = field(default_factory=list)


def checkpoint_factory(model: nn.Module, directory: str | None = None) -> tuple[Callable[[], nn.Module], str]:
    """Save ``model``'s state_dict once and return a factory that rebuilds the model *from disk*.

    Each call of the factory deep-copies the architecture and loads the checkpoint with
    ``torch.load(..., weights_only=True)``, like the original's ``MaskCore(pretrained_model=path)``.
    Returns ``(factory, path)``; the caller removes ``path`` when done.
    """
    fd, path = tempfile.mkstemp(suffix=".pt", prefix="fmask-serial-", dir=directory)
    os.close(fd)
    torch.save({"state_dict": model.state_dict()}, path)
    skeleton = copy.deepcopy(model).cpu()

    def factory() -> nn.Module:
        fresh = copy.deepcopy(skeleton)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        fresh.load_state_dict(ckpt["state_dict"])
        return fresh

    return factory, path


def serial_mask_forward(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x̄ = Re F⁻¹(M ⊙ F x) for one mask (1, C, H, W) and images (B, C, H, W)."""
    return torch.fft.ifft2(mask * torch.fft.fft2(x)).real


def _split(model: nn.Module, space: str) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module]:
    """(input transform, network the filtered input goes through) for ``space``."""
    if space not in ("auto", "normalised", "pixel"):
        raise ValueError(f"space must be 'auto', 'normalised' or 'pixel', got {space!r}")
    declares = isinstance(getattr(model, "mean", None), torch.Tensor) and hasattr(model, "net")
    if space == "normalised" and not declares:
        raise ValueError("space='normalised' needs a Normalized model (mean, std, net)")
    if declares and space != "pixel":
        return (lambda x: (x - model.mean) / model.std), model.net
    return (lambda x: x), model


def _prediction(model: nn.Module, mask: torch.Tensor, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(torch.argmax(model(serial_mask_forward(mask, x)), dim=1).item())


def learn_masks_serial(
    make_model: Callable[[], nn.Module],
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    lam: float = 0.07,
    steps: int = 20000,
    lr: float = 0.2,
    seed: int = 31,
    patience: int | None = 300,
    schedule: float | None = None,
    schedule_total_steps: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    space: str = "auto",
) -> SerialResult:
    """Learn one mask per image, one image at a time, exactly like the original serial script.

    make_model: builds a fresh classifier Φ (e.g. from :func:`checkpoint_factory`); called once per image.
    images: (N, C, H, W) float in [0, 1]; targets: (N,) int64 class used in both CE terms.
    lam: λ in ``λ·mean(M)``; steps: maximal steps per image; lr: Adam learning rate.
    patience: the original's stopping rule (prediction unchanged and |Δinvariance| ≤ 1e-6 and
    |Δsparsity| ≤ 1e-5 for ``patience`` consecutive steps); ``None`` disables early stopping.
    schedule: if not None, OneCycleLR with ``pct_start=schedule`` over ``schedule_total_steps`` total
    scheduler steps (the original uses ``epochs * 200``), stepped once per step.
    space: ``"auto"`` (normalise then filter for a ``Normalized`` model, as the original), ``"normalised"``,
    ``"pixel"`` (filter the [0, 1] image: fmask's old behaviour).
    """
    if space not in ("auto", "normalised", "pixel"):
        raise ValueError(f"space must be 'auto', 'normalised' or 'pixel', got {space!r}")
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if targets.ndim != 1 or targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets must be (N,) matching images, got {tuple(targets.shape)} for N={images.shape[0]}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if schedule is not None and (schedule_total_steps is None or schedule_total_steps < steps):
        raise ValueError("schedule needs schedule_total_steps >= steps")
    device = torch.device(device)
    n, c, h, w = images.shape
    masks = torch.zeros(n, c, h, w)
    steps_taken = torch.zeros(n, dtype=torch.long)
    converged = torch.zeros(n, dtype=torch.bool)
    preds = torch.zeros(n, dtype=torch.long)
    history: list[dict[str, list[float]]] = []
    loop_seconds = 0.0
    step_seconds: list[float] = []
    t0 = time.perf_counter()

    from fmask.infra.runtime import progress_bar

    outer = progress_bar(range(n), progress=progress, desc="serial reference")

    for i in outer:
        torch.manual_seed(seed)
        full = make_model()
        for p in full.parameters():
            p.requires_grad_(False)
        full = full.to(device).eval()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        transform, model = _split(full, space)  # the loader's normalisation, then MaskCore on its output

        x = transform(images[i : i + 1].to(device))
        y = targets[i : i + 1].to(device)
        with torch.no_grad():  # the original precomputes m_out through MaskCore with its all-ones mask
            m_out = model(serial_mask_forward(torch.ones(1, c, h, w, device=device), x))
        mask = nn.Parameter(torch.ones(1, c, h, w, device=device))
        init_sparsity = float(mask.detach().abs().sum())
        decay = lam / init_sparsity
        opt = torch.optim.Adam([mask], lr=lr)
        sched = None
        if schedule is not None:
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, lr, total_steps=schedule_total_steps, pct_start=schedule
            )
        init_pred = _prediction(model, mask.detach(), x)
        inv_log: list[float] = []
        sp_log: list[float] = []
        cnt = 0
        done = False
        t = 0
        pred = init_pred
        t_loop = time.perf_counter()
        for t in range(1, steps + 1):
            t_step = time.perf_counter()
            out = model(serial_mask_forward(mask, x))
            invariance = (F.cross_entropy(out, y) - F.cross_entropy(m_out, y)) ** 2
            inv_log.append(invariance.item())
            norm = mask.abs().sum()
            sp_log.append(norm.item() / init_sparsity)
            loss = torch.exp(invariance) + decay * norm
            loss.backward()
            opt.step()
            opt.zero_grad()
            if sched is not None:
                sched.step()
            with torch.no_grad():
                mask.clamp_(0.0, 1.0)
            pred = _prediction(model, mask.detach(), x)
            if t > 1 and pred == init_pred:
                dl = abs(inv_log[-1] - inv_log[-2])
                dn = abs(sp_log[-1] - sp_log[-2])
                cnt = cnt + 1 if (dl <= 1e-6 and dn <= 1e-5) else 0
            step_seconds.append(time.perf_counter() - t_step)
            if patience is not None and cnt == patience:
                done = True
                break
        loop_seconds += time.perf_counter() - t_loop
        masks[i] = mask.detach()[0].cpu()
        steps_taken[i] = t
        converged[i] = done
        preds[i] = pred
        history.append({"invariance": inv_log, "sparsity": sp_log})
        del model, full, opt, mask

    return SerialResult(
        masks=masks,
        steps=steps_taken,
        converged=converged,
        predictions=preds,
        history=history,
        seconds=time.perf_counter() - t0,
        loop_seconds=loop_seconds,
        step_seconds=step_seconds,
    )
