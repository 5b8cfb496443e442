"""One training epoch and one evaluation pass of :mod:`fmask.training.fit`, on channels_last tensors.

Every batch is converted to ``channels_last`` (NHWC; oneDNN's fast layout on CPU, also for the PGD input
gradients of adversarial training); loss and accuracy sums stay on the device until the pass ends (one host
sync). ``precision``: ``auto`` | ``exact`` | ``fast`` (:data:`fmask.core.objective.PRECISIONS`), turned into an
autocast dtype by :func:`autocast` alone; the cross-entropy is always taken in fp32.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from fmask.core.objective import resolve_precision

__all__ = ["autocast", "nhwc", "eval_tensors", "train_epoch"]


def autocast(device: torch.device, precision: str = "auto"):
    """The autocast context of ``precision`` (``auto`` | ``exact`` | ``fast``, resolved for the device by
    :func:`fmask.core.objective.resolve_precision`): bf16 autocast for ``fast``, nothing (fp32) for ``exact``.
    The one place the precision becomes a dtype."""
    if resolve_precision(precision, device.type) == "fast":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, H, W) in channels_last layout (same values and shape; a copy only if not already)."""
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def eval_tensors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                 batch_size: int = 256, precision: str = "auto") -> dict:
    """Accuracy / mean CE of ``model`` (mode left to the caller) on images ``x`` (N, C, S, S) and labels ``y``
    (N,), in batches of ``batch_size``, sums kept on the device (one host sync at the end)."""
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for s in range(0, len(y), batch_size):
        xb, yb = nhwc(x[s : s + batch_size].to(device)), y[s : s + batch_size].to(device)
        with autocast(device, precision):
            out = model(xb)
        loss_sum += nn.functional.cross_entropy(out.float(), yb, reduction="sum").double()
        correct += (out.argmax(1) == yb).sum()
    n = len(y)
    return {"acc": int(correct) / n, "loss": float(loss_sum) / n, "n": n}


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, sched, batches, attack, device: torch.device,
                precision: str = "auto") -> tuple[float, float, int]:
    """One pass over ``batches`` ((x, y) pairs: x (B, C, S, S) in [0, 1]); PGD-replaced first when ``attack``.

    Returns (summed loss, correct, n) with one host sync per epoch. Each step: channels_last input, forward
    under :func:`autocast`, fp32 cross-entropy, Adam step, one-cycle step (per batch, as the original).
    """
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    for x, y in batches:
        x = nhwc(x)
        if attack is not None:
            x = nhwc(attack(x, y))
        with autocast(device, precision):
            out = model(x)
        loss = nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.detach().double() * len(y)
        correct += (out.detach().argmax(1) == y).sum()
        n += len(y)
    return float(loss_sum), float(correct), n
