"""Which validation images get single-image masks (the paper's Table 2 / Figs. 5-7): a pure function.

The original ``train_single_img_masks.py`` kept the images on which the vanilla and the adversarially trained
model agree on correctness and where PGD (attacking the vanilla model) flips the vanilla model's correctness;
restricted to correctly classified images, as the paper describes, that is:

    ``both_correct_and_fooled``: vanilla correct AND adversarial correct AND vanilla wrong on the PGD image.

Barely trained models (the smoke profile) may leave no such image; then the first non-empty of the weaker
criteria ``vanilla_fooled`` (vanilla correct, PGD fools it), ``vanilla_correct`` and ``all`` is used and named,
so a caller can say which rule produced its images.

:func:`balanced_subset` draws a seeded class-balanced subset of selected images (chapter 6's pixel-convention
Table 2, chapter 11's architecture comparison).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor

__all__ = ["CRITERIA", "Selection", "select_images", "balanced_subset"]

#: the selection rules, strictest (the paper's) first
CRITERIA: tuple[str, ...] = ("both_correct_and_fooled", "vanilla_fooled", "vanilla_correct", "all")


def _vec(t: Tensor, name: str, n: int | None) -> Tensor:
    t = torch.as_tensor(t)
    if t.ndim != 1 or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be a 1-D tensor of class indices, got dtype {t.dtype} shape {tuple(t.shape)}")
    if n is not None and t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} entries, labels have {n}")
    return t.long().cpu()


def select_images(
    pred_vanilla: Tensor,
    pred_adversarial: Tensor,
    pred_vanilla_on_pgd: Tensor,
    labels: Tensor,
    n_images: int | None,
    seed: int,
) -> tuple[Tensor, str, dict[str, int]]:
    """Indices of the images that get single-image masks.

    Args:
        pred_vanilla: (N,) the vanilla model's predictions on the clean images.
        pred_adversarial: (N,) the adversarially trained model's predictions on the clean images.
        pred_vanilla_on_pgd: (N,) the vanilla model's predictions on the PGD images (attacking it).
        labels: (N,) true labels.
        n_images: keep at most this many (a seeded random choice); None keeps all.
        seed: seeds that choice (``torch.Generator().manual_seed(seed)``, a permutation).

    Returns:
        ``(idx, criterion, counts)``: ``idx`` int64 (n,) sorted (validation order); ``criterion`` one of
        :data:`CRITERIA` (see the module docstring); ``counts``: how many images pass each test
        (``validation``, ``vanilla_correct``, ``adversarial_correct``, ``both_correct``, ``vanilla_fooled``,
        ``candidates`` (the paper's rule), ``eligible`` (images meeting ``criterion``), ``selected`` (after the
        ``n_images`` cap)).
    """
    y = _vec(labels, "labels", None)
    n = y.numel()
    pv = _vec(pred_vanilla, "pred_vanilla", n)
    pa = _vec(pred_adversarial, "pred_adversarial", n)
    pp = _vec(pred_vanilla_on_pgd, "pred_vanilla_on_pgd", n)
    if n_images is not None and (isinstance(n_images, bool) or int(n_images) != n_images or n_images < 1):
        raise ValueError(f"n_images must be a positive integer or None, got {n_images!r}")
    ok_van, ok_adv = pv == y, pa == y
    fooled = ok_van & (pp != y)
    strict = fooled & ok_adv
    counts = {"validation": n, "vanilla_correct": int(ok_van.sum()), "adversarial_correct": int(ok_adv.sum()),
              "both_correct": int((ok_van & ok_adv).sum()), "vanilla_fooled": int(fooled.sum()),
              "candidates": int(strict.sum())}
    rules = dict(zip(CRITERIA, (strict, fooled, ok_van, torch.ones_like(ok_van))))
    criterion = next((c for c in CRITERIA if bool(rules[c].any())), "all")
    idx = torch.nonzero(rules[criterion]).flatten()
    counts["eligible"] = int(idx.numel())
    if n_images is not None and idx.numel() > int(n_images):
        g = torch.Generator().manual_seed(int(seed))
        idx = torch.sort(idx[torch.randperm(idx.numel(), generator=g)[: int(n_images)]]).values
    counts["selected"] = int(idx.numel())
    return idx, criterion, counts


@dataclass
class Selection:
    """Validation images chosen for single-image masks by :func:`select_images` (what
    :meth:`fmask.experiment.run.Run.single_image_selection` returns and caches).

    ``idx``: indices into the validation set (sorted); ``images`` (n, C, S, S) in [0, 1]; ``labels`` (n,)
    true labels; ``adv_images`` (n, C, S, S) PGD images of the vanilla model; ``adv_predictions`` (n,) its
    predictions on them; ``counts``: how many validation images passed each criterion; ``criterion``: the rule
    used; ``predictions``: the vanilla model's predictions on ``images``; ``params``: the artifact key.
    """

    idx: Tensor
    images: Tensor
    labels: Tensor
    adv_images: Tensor
    adv_predictions: Tensor
    counts: dict[str, int]
    params: dict[str, Any] = field(default_factory=dict)
    criterion: str = "both_correct_and_fooled"
    predictions: Tensor | None = None

    def to_payload(self) -> dict[str, Any]:
        """Tensors and counts for the artifact store (``params`` is the artifact's key, not stored twice)."""
        return {**{k: getattr(self, k) for k in _TENSORS}, "counts": dict(self.counts), "criterion": self.criterion}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> "Selection":
        """Inverse of :meth:`to_payload`; ``params``: the artifact key it was stored under."""
        return cls(**{k: payload[k] for k in _TENSORS}, counts={k: int(v) for k, v in payload["counts"].items()},
                   params=dict(params or {}), criterion=str(payload["criterion"]))


_TENSORS = ("idx", "images", "labels", "adv_images", "adv_predictions", "predictions")


def balanced_subset(labels: Tensor, n: int, seed: int) -> Tensor:
    """A seeded class-balanced subset: indices (sorted, int64) of ``min(n, len(labels))`` items.

    Classes are visited round-robin (in label order), each drawing from its own seeded random permutation
    (``torch.Generator().manual_seed(seed)``), so the counts per class differ by at most one unless a class
    runs out (then the others fill up). Same ``(labels, n, seed)`` -> same indices.
    """
    y = torch.as_tensor(labels)
    if y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D tensor of class indices, got {y.dtype} {tuple(y.shape)}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if y.numel() == 0:
        raise ValueError("labels is empty")
    g = torch.Generator().manual_seed(int(seed))
    pools = []
    for k in torch.unique(y).tolist():
        idx = torch.nonzero(y == k).flatten()
        pools.append(idx[torch.randperm(idx.numel(), generator=g)].tolist())
    out: list[int] = []
    n = min(int(n), y.numel())
    depth = 0
    while len(out) < n:
        for p in pools:
            if depth < len(p) and len(out) < n:
                out.append(p[depth])
        depth += 1
    return torch.sort(torch.tensor(out, dtype=torch.long)).values
