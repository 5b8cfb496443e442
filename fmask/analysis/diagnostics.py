"""Network and mask diagnostics shown beside the single-image masks (issue #9 §3).

A weak network (low confidence, high loss) lets the mask objective drive many masks to a trivial solution --
keep only the DC entry (the image's mean), or nothing at all -- because removing everything costs almost no
change in cross-entropy. Such collapses look like an extreme "low-frequency bias" in band plots. These
diagnostics make them visible:

* :func:`network_diagnostics`: mean cross-entropy, mean max-softmax and accuracy of a network on images;
* :func:`degenerate_masks`: how many masks keep at most the DC entry (``dc_only``) or nothing (``all_zero``)
  above a stated threshold.

Images are (N, C, H, W) in [0, 1]; masks (N, C, H, W) in fft2 layout (DC at [0, 0]).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmask.analysis.masks import COMPLEMENT_THRESHOLD
from fmask.infra.runtime import model_device

__all__ = ["DEGENERATE_THRESHOLDS", "network_diagnostics", "degenerate_masks"]

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
