"""Network, training and mask diagnostics: whether a network is trained out and whether its masks collapsed.

A weak network (low confidence, high loss) lets the mask objective drive many masks to a trivial solution --
keep only the DC entry (the image's mean), or nothing at all -- because removing everything costs almost no
change in cross-entropy. Such collapses look like an extreme "low-frequency bias" in band plots. These
diagnostics make them visible:

* :func:`network_diagnostics`: mean cross-entropy, mean max-softmax and accuracy of a network on images;
* :func:`degenerate_masks`: how many masks keep at most the DC entry (``dc_only``) or nothing (``all_zero``)
  above a stated threshold.

Whether training ran out (chapter 3): :func:`late_gain` (the gain of a run's last epochs) and
:func:`late_gain_summary` over networks, with the targets :data:`VANILLA_TARGET` and :data:`LATE_GAIN_PLATEAU`.

Images are (N, C, H, W) in [0, 1]; masks (N, C, H, W) in fft2 layout (DC at [0, 0]).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmask.analysis.complements import COMPLEMENT_THRESHOLD
from fmask.infra.runtime import model_device

__all__ = ["DEGENERATE_THRESHOLDS", "network_diagnostics", "degenerate_masks", "late_gain", "late_gain_summary",
           "VANILLA_TARGET", "LATE_GAIN_PLATEAU"]

#: thresholds for "kept": the paper's 1e-8 (its M' rule, Sec. 3.2) and 0.05 (5% of the maximal mask value;
#: entries below it pass a negligible share of their frequency)
DEGENERATE_THRESHOLDS: tuple[float, ...] = (COMPLEMENT_THRESHOLD, 0.05)


@torch.no_grad()
def network_diagnostics(model: nn.Module, images: Tensor, labels: Tensor | Sequence[int],
                        batch_size: int = 128) -> dict[str, Any]:
    """Mean cross-entropy (nats), mean max-softmax and accuracy of ``model`` on ``images`` / ``labels``.

    ``images``: (N, C, H, W); ``labels``: (N,) class indices. The model runs in eval mode (restored after).
    Returns ``{"n", "mean_cross_entropy", "mean_max_softmax", "accuracy"}`` (floats, accuracy a fraction).
    """
    x = torch.as_tensor(images)
    y = torch.as_tensor(labels).long().reshape(-1)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0 or y.numel() != x.shape[0]:
        raise ValueError(f"need a non-empty batch with one label per image: {x.shape[0]} images, {y.numel()} labels")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = model_device(model)
    was = model.training
    model.eval()
    ce = conf = correct = 0.0
    try:
        for i in range(0, x.shape[0], batch_size):
            logits = model(x[i:i + batch_size].float().to(dev)).float().cpu()
            yb = y[i:i + batch_size]
            if int(yb.max()) >= logits.shape[1] or int(yb.min()) < 0:
                raise ValueError(f"labels must be in 0..{logits.shape[1] - 1}")
            ce += float(F.cross_entropy(logits, yb, reduction="sum"))
            p = logits.softmax(dim=1)
            conf += float(p.max(dim=1).values.sum())
            correct += float((logits.argmax(dim=1) == yb).sum())
    finally:
        model.train(was)
    n = x.shape[0]
    return {"n": int(n), "mean_cross_entropy": ce / n, "mean_max_softmax": conf / n, "accuracy": correct / n}


def degenerate_masks(masks: Tensor, threshold: float = COMPLEMENT_THRESHOLD) -> dict[str, Any]:
    """Count degenerate masks: ``all_zero`` (no entry > ``threshold``) and ``dc_only`` (in every channel at
    most the DC entry [0, 0] is > ``threshold``, and at least one channel keeps it).

    ``masks``: (N, C, H, W) or (N, H, W). Returns ``{"n", "threshold", "dc_only", "all_zero", "degenerate"
    (their sum), "dc_only_pct", "all_zero_pct", "degenerate_pct"}`` (percent of ``n``).
    """
    m = torch.as_tensor(masks)
    if m.ndim == 3:
        m = m.unsqueeze(1)
    if m.ndim != 4 or m.shape[0] == 0:
        raise ValueError(f"masks must be a non-empty (N, C, H, W) tensor, got {tuple(m.shape)}")
    if not (threshold >= 0):
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    kept = m > threshold
    n_kept = kept.flatten(1).sum(dim=1)
    dc = kept[:, :, 0, 0]
    all_zero = n_kept == 0
    dc_only = (n_kept == dc.sum(dim=1)) & ~all_zero
    n = int(m.shape[0])
    out = {"n": n, "threshold": float(threshold), "dc_only": int(dc_only.sum()), "all_zero": int(all_zero.sum())}
    out["degenerate"] = out["dc_only"] + out["all_zero"]
    for k in ("dc_only", "all_zero", "degenerate"):
        out[f"{k}_pct"] = 100.0 * out[k] / n
    return out


def late_gain(val_acc: Sequence[float], window: int = 5) -> float | None:
    """How much a training run still gained at its end: the validation accuracy of the last epoch minus the best
    one up to ``window`` epochs before it (fractions; None when the run has ``window`` epochs or fewer).

    A best epoch that is not the last one is a sign that a network is trained out; but with the
    original's one-cycle schedule the learning rate anneals to ~0 at the end, so the last epoch is often the
    best by a hair; a late gain near 0 (a plateau) says the same thing without that artefact, and a large one
    says the network was still learning.
    """
    v = [float(a) for a in val_acc]
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if len(v) <= window:
        return None
    return v[-1] - max(v[: len(v) - window])


#: validation-accuracy target for the cpu profile's vanilla network (the paper's VGG11-bn reaches 89.56%, paper
#: Table 1); chapter 3 says whether every seed reaches it
VANILLA_TARGET = 0.80
#: a :func:`late_gain` of at most this much (a fraction: 2 points) counts as a plateau
LATE_GAIN_PLATEAU = 0.02


def late_gain_summary(best_epochs: Sequence[int | None], gains: Sequence[float | None], n_epochs: int,
                      plateau: float = LATE_GAIN_PLATEAU) -> dict[str, Any]:
    """Summary over networks of whether training ran out: ``best_epochs`` and ``gains`` (:func:`late_gain`) are
    per network (None where unknown / too short), ``n_epochs`` the schedule's length.

    Returns ``{"n_networks", "best_is_last": networks whose best epoch is the last, "min_gain", "max_gain"
    (None without any gain), "plateau": max gain <= ``plateau`` (None without any gain)}``."""
    if len(best_epochs) != len(gains):
        raise ValueError(f"best_epochs and gains must have one entry per network: {len(best_epochs)} vs {len(gains)}")
    if int(n_epochs) < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    g = [float(x) for x in gains if x is not None]
    return {"n_networks": len(gains), "best_is_last": sum(e == int(n_epochs) for e in best_epochs),
            "min_gain": min(g) if g else None, "max_gain": max(g) if g else None,
            "plateau": (max(g) <= plateau) if g else None}
