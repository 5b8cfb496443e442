"""Accuracies of networks on images and on images filtered with masks: predictions, masked accuracies, the
per-image outcomes and paired counts behind them, and the rows of paper Tables 1 and 2 with those counts.

Conventions (see CONTRIBUTING.md):

* images are float tensors in [0, 1], shaped (N, C, H, W); masks are real tensors (N, C, H, W) or
  (C, H, W) in ``torch.fft.fft2`` layout (DC at [0, 0]);
* accuracies are returned as *fractions in [0, 1]* (the unit :mod:`fmask.experiment.results` stores);
* nothing here mutates its inputs (the original notebook binarised masks in place, which silently
  changed later numbers; :func:`table2_accuracies` reports both the continuous and the binarised value);
* filtering (masked, complement and Table 2 accuracies) uses the learner's convention: with ``space="auto"``
  (default) a model that declares its normalisation (:class:`fmask.models.zoo.Normalized`) has its masks act on the
  normalised image, ``x̄ = Re F⁻¹(M ⊙ F x) + (1 − M[c,0,0])·μ_c`` (:func:`fmask.core.mask.pixel_offset`), as the
  original code does; ``space="pixel"`` filters the pixel image. Pass the profile's mask section's ``space``;
* labels must be class indices the model can output (0..K-1); others raise ``ValueError``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from fmask.analysis.complements import COMPLEMENT_THRESHOLD, binarize, complement_mask
from fmask.analysis.maps import as_4d
from fmask.core.mask import filter_images, pixel_offset
from fmask.infra.runtime import model_device

__all__ = [
    "predict",
    "accuracy",
    "masked_accuracy",
    "correct_predictions",
    "paired_counts",
    "table1_row",
    "table1_counts",
    "table1_replicates",
    "table2_accuracies",
    "table2_counts",
]


# ----------------------------------------------------------------------------------------- accuracy
def predict(model: nn.Module, images: Tensor, batch_size: int = 128, device: str | torch.device | None = None) -> Tensor:
    """Arg-max predictions of ``model`` (eval mode) on (N, C, H, W) images in [0, 1]; returns (N,) long, CPU."""
    return _predict_checked(model, images, batch_size, device)[0]


def accuracy(
    model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 128, device: str | torch.device | None = None
) -> float:
    """Fraction of ``images`` (N, C, H, W) that ``model`` classifies as ``labels`` (N,)."""
    labels = _labels(labels, images.shape[0])
    if labels.numel() == 0:
        raise ValueError("accuracy of an empty set is undefined")
    preds, n_out = _predict_checked(model, images, batch_size, device)
    _check_label_range(labels, n_out)
    return float((preds == labels).float().mean())


def _labels(labels: Tensor | Sequence[int], n: int) -> Tensor:
    y = torch.as_tensor(labels)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    y = y.long().cpu().reshape(-1)
    if y.numel() != n:
        raise ValueError(f"expected {n} labels, got {y.numel()}")
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"labels must be class indices >= 0, got {int(y.min())}")
    return y


def _check_label_range(y: Tensor, n_classes: int | None) -> None:
    """ValueError when a label is no class the model can output (e.g. label 7 for a 5-class model)."""
    if n_classes is not None and y.numel() and int(y.max()) >= n_classes:
        raise ValueError(f"label {int(y.max())} is out of range for a model with {n_classes} classes (0..{n_classes - 1})")


@torch.no_grad()
def _predict_checked(model: nn.Module, images: Tensor, batch_size: int, device) -> tuple[Tensor, int | None]:
    """(predictions (N,), number of model outputs K) — K from the logits, to check labels against."""
    x = as_4d(images, "images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    dev = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    preds, k = [], None
    try:
        for i in range(0, x.shape[0], batch_size):
            out = model(x[i : i + batch_size].to(dev))
            k = int(out.shape[1])
            preds.append(out.argmax(dim=1).cpu())
    finally:
        model.train(was_training)
    return (torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)), k


def masked_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    space: str = "auto",
) -> float:
    """Accuracy on images filtered with ``masks`` ((1, C, H, W) dataset mask or (N, C, H, W) per image).

    ``space``: where the mask acts (see the module docstring and :func:`fmask.core.mask.pixel_offset`); use the
    value the masks were learned with (the profile's ``dataset_mask.space`` / ``single_mask.space``).
    """
    x = as_4d(images, "images")
    m = as_4d(masks, "masks").to(x.dtype)
    if m.shape[0] not in (1, x.shape[0]) or m.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"masks {tuple(m.shape)} do not fit images {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("accuracy of an empty set is undefined")
    y = _labels(labels, x.shape[0])
    offset = pixel_offset(model, space, channels=x.shape[1])
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        mi = m if m.shape[0] == 1 else m[i : i + batch_size]
        xb = filter_images(x[i : i + batch_size], mi, offset=offset)
        preds, k = _predict_checked(model, xb, batch_size, device)
        _check_label_range(y[i : i + batch_size], k)
        correct += int((preds == y[i : i + batch_size]).sum())
    return correct / x.shape[0]


def table1_row(
    model: nn.Module, images: Tensor, labels: Tensor, mask: Tensor, batch_size: int = 128, space: str = "auto"
) -> dict[str, float]:
    """Table 1 entries for one network: ``{"standard": acc on X, "masked": acc on M(X)}`` (fractions; the
    fraction part of :func:`table1_counts`)."""
    c = table1_counts(model, images, labels, mask, batch_size, space=space)
    return {"standard": c["standard"], "masked": c["masked"]}


def table2_accuracies(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    adv_images: Tensor | None = None,
    batch_size: int = 128,
    threshold: float = COMPLEMENT_THRESHOLD,
    space: str = "auto",
) -> dict[str, float]:
    """Table 2 for one model's single-image masks (fractions in [0, 1]; inputs are not modified).

    * ``masked``: accuracy on M(X), each image filtered with its own mask;
    * ``complement``: on M'(X), M' the binary complement of M (:func:`complement_mask`);
    * ``adversarial``: on the PGD images X_A (when ``adv_images`` is given);
    * ``masked_adversarial``: on M(X_A), the PGD image filtered with its clean image's continuous mask;
    * ``masked_adversarial_binary``: the same with binarised masks, as the original notebook computed it
      after its complement had overwritten the masks.

    ``space``: where the masks act (:func:`masked_accuracy`); the learner's value (``single_mask.space``).
    The fraction part of :func:`table2_counts` (which adds ``original``, ``n`` and the counts).
    """
    c = table2_counts(model, images, labels, masks, adv_images, batch_size, threshold, space)
    return {k: c[k] for k in _TABLE2_COLUMNS if k in c}


#: the columns :func:`table2_accuracies` reports, in the paper's order
_TABLE2_COLUMNS = ("masked", "complement", "adversarial", "masked_adversarial", "masked_adversarial_binary")


# ------------------------------------------------------------------ counts for the claims ledger
def correct_predictions(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    masks: Tensor | None = None,
    batch_size: int = 128,
    space: str = "auto",
) -> Tensor:
    """(N,) bool: whether ``model`` classifies each image (filtered with ``masks`` when given) as its label.

    ``masks``: None (the images as they are), a (1, C, H, W) dataset mask or (N, C, H, W) per-image masks,
    applied as in :func:`masked_accuracy` (same ``space`` convention). ``mean()`` of the result is the
    accuracy those functions return; the per-image outcomes are what paired intervals need.
    """
    x = as_4d(images, "images")
    if x.shape[0] == 0:
        raise ValueError("images is empty")
    y = _labels(labels, x.shape[0])
    if masks is None:
        preds, k = _predict_checked(model, x, batch_size, None)
        _check_label_range(y, k)
        return preds == y
    m = as_4d(masks, "masks").to(x.dtype)
    if m.shape[0] not in (1, x.shape[0]) or m.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"masks {tuple(m.shape)} do not fit images {tuple(x.shape)}")
    offset = pixel_offset(model, space, channels=x.shape[1])
    out = []
    for i in range(0, x.shape[0], batch_size):
        mi = m if m.shape[0] == 1 else m[i : i + batch_size]
        preds, k = _predict_checked(model, filter_images(x[i : i + batch_size], mi, offset=offset), batch_size, None)
        _check_label_range(y[i : i + batch_size], k)
        out.append(preds == y[i : i + batch_size])
    return torch.cat(out)


def paired_counts(outcomes: Mapping[str, Tensor | np.ndarray], pair: tuple[str, str] | None = None) -> dict:
    """Counts behind accuracies measured on the same images: ``{"n", "correct": {name: k}}`` and, for
    ``pair=(a, b)``, ``"discordant": {"a_only": #right on a only, "b_only": #right on b only}``.

    ``outcomes`` maps names to (N,) bool vectors (:func:`correct_predictions`) of equal length. With the two
    correct counts the discordant counts give the full 2x2 table of a paired (McNemar-type) interval
    (:mod:`fmask.claims.rules`). All values are Python ints (JSON-ready).
    """
    if not outcomes:
        raise ValueError("outcomes is empty")
    vecs = {k: np.asarray(v.cpu().numpy() if isinstance(v, Tensor) else v).astype(bool).reshape(-1)
            for k, v in outcomes.items()}
    sizes = {v.size for v in vecs.values()}
    if len(sizes) != 1:
        raise ValueError(f"outcome vectors differ in length: { {k: v.size for k, v in vecs.items()} }")
    out: dict = {"n": int(sizes.pop()), "correct": {k: int(v.sum()) for k, v in vecs.items()}}
    if pair is not None:
        a, b = pair
        if a not in vecs or b not in vecs:
            raise ValueError(f"pair {pair} names an outcome not in {sorted(vecs)}")
        out["discordant"] = {f"{a}_only": int((vecs[a] & ~vecs[b]).sum()),
                             f"{b}_only": int((vecs[b] & ~vecs[a]).sum())}
    return out


def table1_counts(
    model: nn.Module, images: Tensor, labels: Tensor, mask: Tensor, batch_size: int = 128, space: str = "auto"
) -> dict:
    """Table 1 for one network with its counts: ``{"standard", "masked"}`` (fractions, as :func:`table1_row`)
    plus ``"n"``, ``"correct": {"standard", "masked"}`` and ``"discordant": {"standard_only", "masked_only"}``
    (images right on x only / on M(x) only), the paired 2x2 table the claims ledger needs."""
    std = correct_predictions(model, images, labels, None, batch_size)
    msk = correct_predictions(model, images, labels, mask, batch_size, space=space)
    c = paired_counts({"standard": std, "masked": msk}, pair=("standard", "masked"))
    return {"standard": c["correct"]["standard"] / c["n"], "masked": c["correct"]["masked"] / c["n"], **c}


def table1_replicates(rows: Sequence[Mapping], seeds: Sequence[int]) -> dict:
    """Per-seed Table 1 arrays of one network from its replicates' :func:`table1_counts` rows (+ ``mask_mean``).

    ``rows[i]`` belongs to seed ``seeds[i]`` (``profile.seed + i``). Returns ``{"seed", "standard", "masked",
    "mask_mean", "n", "correct": {"standard", "masked"}, "discordant": {"standard_only", "masked_only"}}``,
    each a list over the replicates (``mask_mean`` only if every row has it): the ``replicates`` entry that
    chapter 4 writes into ``table1.json`` and :mod:`fmask.claims.rules` reads.
    """
    if len(rows) == 0 or len(rows) != len(seeds):
        raise ValueError(f"need one Table 1 row per seed (>= 1); got {len(rows)} rows and {len(seeds)} seeds")
    out = {"seed": [int(s) for s in seeds],
           "standard": [float(r["standard"]) for r in rows], "masked": [float(r["masked"]) for r in rows],
           "n": [int(r["n"]) for r in rows],
           "correct": {k: [int(r["correct"][k]) for r in rows] for k in ("standard", "masked")},
           "discordant": {k: [int(r["discordant"][k]) for r in rows] for k in ("standard_only", "masked_only")}}
    if all("mask_mean" in r for r in rows):
        out["mask_mean"] = [float(r["mask_mean"]) for r in rows]
    return out


def table2_counts(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    adv_images: Tensor | None = None,
    batch_size: int = 128,
    threshold: float = COMPLEMENT_THRESHOLD,
    space: str = "auto",
) -> dict:
    """:func:`table2_accuracies` plus ``"original"`` (accuracy on x), ``"n"``, ``"correct"`` per column
    (``original``, ``masked``, ``complement`` and, with ``adv_images``, ``adversarial``, ``masked_adversarial``,
    ``masked_adversarial_binary``) and ``"discordant": {"masked_only", "complement_only"}`` (M(x) vs M^c(x),
    same images). Fractions equal ``correct / n`` exactly."""
    x = as_4d(images, "images")
    m = as_4d(masks, "masks")
    if m.shape[0] != x.shape[0]:
        raise ValueError(f"need one mask per image: masks {tuple(m.shape)}, images {tuple(x.shape)}")
    outcomes = {
        "original": correct_predictions(model, x, labels, None, batch_size),
        "masked": correct_predictions(model, x, labels, m, batch_size, space=space),
        "complement": correct_predictions(model, x, labels, complement_mask(m, threshold), batch_size, space=space),
    }
    if adv_images is not None:
        xa = as_4d(adv_images, "adv_images")
        if xa.shape != x.shape:
            raise ValueError(f"adv_images {tuple(xa.shape)} must match images {tuple(x.shape)}")
        outcomes["adversarial"] = correct_predictions(model, xa, labels, None, batch_size)
        outcomes["masked_adversarial"] = correct_predictions(model, xa, labels, m, batch_size, space=space)
        outcomes["masked_adversarial_binary"] = correct_predictions(model, xa, labels, binarize(m, threshold),
                                                                    batch_size, space=space)
    c = paired_counts(outcomes, pair=("masked", "complement"))
    return {**{k: v / c["n"] for k, v in c["correct"].items()}, **c}
