"""Variants of the single-image analyses beside the paper's defaults.

* **Table 2 under both conventions** (:func:`convention_table2`): the original code filters the *normalised*
  image (``loaddata.py`` applies ``transforms.Normalize`` before ``MaskCore``'s mask; fmask's default
  ``space="auto"``); the other convention filters the [0, 1] *pixel* image (``space="pixel"``). On
  one seeded class-balanced subset of the selected images (:func:`balanced_subset`) the vanilla network's
  single masks are learned in the pixel convention (:func:`pixel_single_masks`, clean and attacked images) and
  Table 2 is scored under both, every cell with its Wilson 95% interval and the paired (Newcombe hybrid score)
  interval of the difference pixel - normalised on the same images.
* **Per-class dataset masks** (:func:`class_dataset_masks`): one :class:`fmask.learners.DatasetMask` per class,
  learned on that class's validation images with the profile's ``dataset_mask`` settings (the first column of
  the paper's Fig. 5: "masks trained on all the images belonging to each class separately").

Pure functions take tensors; the ``pixel_single_masks`` / ``class_dataset_masks`` stages take a
:class:`fmask.experiment.run.Run` and are cached through :meth:`~fmask.experiment.run.Run.stage` (keyed by every
parameter that shapes them).
Accuracies are fractions in [0, 1]; masks are in fft2 layout (DC at [0, 0]).
"""
from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from fmask.analysis import stats
from fmask.analysis.accuracy import correct_predictions
from fmask.analysis.complements import COMPLEMENT_THRESHOLD, binarize, complement_mask
from fmask.learners import DatasetMask, MaskResult, PerImageMasks
from fmask.experiment.stages import MASK_RESULT_IO
from fmask.experiment.selection import balanced_subset  # noqa: F401 - re-exported: the subset chapter 6 uses

if TYPE_CHECKING:  # pragma: no cover
    from fmask.experiment.run import Run

__all__ = ["CONVENTIONS", "TABLE2_CELLS", "balanced_subset", "convention_table2", "pixel_single_masks",
           "class_dataset_masks", "summary_rows", "VARIANTS_VERSION"]

#: the two conventions: mask on the normalised image (the original code; fmask's default) / on the pixel image
CONVENTIONS: tuple[str, ...] = ("normalised", "pixel")
#: Table 2's cells (the paper's columns, + the binarised M(X_A) and the attacked image's own mask M_{X_A}(X_A))
TABLE2_CELLS: tuple[str, ...] = ("original", "adversarial", "masked", "masked_adversarial",
                                 "masked_adversarial_binary", "complement", "pgd_masked_pgd")
#: bump when a stage here changes its computation
VARIANTS_VERSION = 1


def _outcomes(model: nn.Module, x: Tensor, y: Tensor, xa: Tensor, m: Tensor, m_pgd: Tensor | None, space: str,
              threshold: float) -> dict[str, Tensor]:
    out = {
        "original": correct_predictions(model, x, y),
        "adversarial": correct_predictions(model, xa, y),
        "masked": correct_predictions(model, x, y, m, space=space),
        "masked_adversarial": correct_predictions(model, xa, y, m, space=space),
        "masked_adversarial_binary": correct_predictions(model, xa, y, binarize(m, threshold), space=space),
        "complement": correct_predictions(model, x, y, complement_mask(m, threshold), space=space),
    }
    if m_pgd is not None:
        out["pgd_masked_pgd"] = correct_predictions(model, xa, y, m_pgd, space=space)
    return out


def _cell(k: int, n: int) -> dict[str, Any]:
    lo, hi = stats.wilson_interval(k, n)
    return {"accuracy": k / n, "correct": k, "n": n, "wilson95": [lo, hi]}


def convention_table2(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    adv_images: Tensor,
    masks: Mapping[str, Tensor],
    pgd_masks: Mapping[str, Tensor] | None = None,
    threshold: float = COMPLEMENT_THRESHOLD,
) -> dict[str, Any]:
    """Table 2 of one network under both conventions on the same images, with intervals.

    Args:
        model: the frozen classifier (with its normalisation, :class:`fmask.models.zoo.Normalized`).
        images, adv_images: (n, C, H, W) in [0, 1], the clean images and their PGD images.
        labels: (n,) true labels.
        masks: ``{"normalised": (n, C, H, W), "pixel": (n, C, H, W)}`` each image's mask of the clean image,
            learned in that convention (``space="normalised"`` / ``"pixel"``); scored in the same convention.
        pgd_masks: optional, the same for the masks of the attacked images (adds ``pgd_masked_pgd``: the
            attacked image filtered with its own mask, M_{X_A}(X_A)).
        threshold: "kept" threshold of M' and of the binarised masks (the original's 1e-8).

    Returns:
        ``{"n", "cells": {convention: {cell: {"accuracy", "correct", "n", "wilson95": [lo, hi]}}},
        "difference": {cell: {"pixel_minus_normalised", "newcombe95": [lo, hi], "both", "pixel_only",
        "normalised_only", "neither"}}}`` for the cells of :data:`TABLE2_CELLS` (``original`` / ``adversarial``
        do not depend on the convention: their difference is 0). JSON-ready (floats / ints / lists).
    """
    bad = sorted(set(masks) - set(CONVENTIONS)) or sorted(set(CONVENTIONS) - set(masks))
    if bad:
        raise ValueError(f"masks must have exactly the keys {CONVENTIONS}; bad or missing: {bad}")
    if pgd_masks is not None and set(pgd_masks) != set(CONVENTIONS):
        raise ValueError(f"pgd_masks must have exactly the keys {CONVENTIONS}, got {sorted(pgd_masks)}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("images is empty")
    if adv_images.shape != images.shape:
        raise ValueError(f"adv_images {tuple(adv_images.shape)} must match images {tuple(images.shape)}")
    for conv in CONVENTIONS:
        for what, d in (("masks", masks), ("pgd_masks", pgd_masks)):
            if d is not None and d[conv].shape[0] != n:
                raise ValueError(f"{what}[{conv!r}] has {d[conv].shape[0]} masks for {n} images")
    y = torch.as_tensor(labels).long()
    outs = {conv: _outcomes(model, images, y, adv_images, masks[conv], None if pgd_masks is None else
                            pgd_masks[conv], conv, threshold) for conv in CONVENTIONS}
    cells = {conv: {c: _cell(int(v.sum()), n) for c, v in o.items()} for conv, o in outs.items()}
    diff = {}
    for c in outs["pixel"]:
        p, q = outs["pixel"][c].bool(), outs["normalised"][c].bool()
        a, b, cc, d = (int((p & q).sum()), int((p & ~q).sum()), int((~p & q).sum()), int((~p & ~q).sum()))
        diff[c] = {"pixel_minus_normalised": (b - cc) / n, "newcombe95": list(stats.paired_difference_interval(
            a, b, cc, d)), "both": a, "pixel_only": b, "normalised_only": cc, "neither": d}
    return {"n": n, "cells": cells, "difference": diff}


def _subset_key(run: "Run", idx: Tensor) -> dict[str, Any]:
    sel = run.single_image_selection()
    return {"selection": sel.params, "subset": [int(i) for i in idx]}


def _learn_pixel(run: "Run", which: str, idx: Tensor) -> MaskResult:
    sel = run.single_image_selection()
    settings = {**dict(run.single_mask_params), "space": "pixel"}
    key = run.stage_key("variant_pixel_single_masks", which=which, model=run.model("vanilla").key,
                        settings=settings, variants_version=VARIANTS_VERSION, **_subset_key(run, idx))

    def compute() -> MaskResult:
        if which == "pgd":
            images, targets = sel.adv_images[idx], sel.adv_predictions[idx]
        else:
            images = sel.images[idx]
            targets = (sel.predictions if sel.predictions is not None else sel.labels)[idx]
        section = replace(run.profile.single_mask, space="pixel")
        learner = PerImageMasks(run.model("vanilla").model, **asdict(section), seed=run.seed, device=run.device,
                                progress=run.progress)
        return learner(images, targets, desc=f"pixel-space single masks ({which})")

    return run.stage("variant_pixel_single_masks", f"variants.pixel_single_masks.{which}", key, compute,
                     **MASK_RESULT_IO)


def pixel_single_masks(run: "Run", idx: Tensor) -> dict[str, MaskResult]:
    """The vanilla network's single-image masks in the pixel convention (``single_mask`` settings with
    ``space="pixel"``) of the selected images ``idx`` (indices into :meth:`Run.single_image_selection`):
    ``{"vanilla": masks of the clean images, "pgd": masks of the PGD images}`` (targets as in
    :meth:`Run.single_image_masks`), each (len(idx), C, S, S); cached stages ``variants.pixel_single_masks.*``.
    """
    idx = torch.as_tensor(idx).long()
    n_sel = run.single_image_selection().images.shape[0]
    if idx.ndim != 1 or idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= n_sel:
        raise ValueError(f"idx must be a non-empty 1-D index into the {n_sel} selected images")
    return {w: _learn_pixel(run, w, idx) for w in ("vanilla", "pgd")}


def class_dataset_masks(run: "Run", regime: str = "vanilla") -> dict[int, MaskResult]:
    """One dataset mask (1, C, S, S) per class: :class:`fmask.learners.DatasetMask` with the profile's
    ``dataset_mask`` settings on that class's validation images (the paper's Fig. 5, first column; the
    whole-set dataset mask is likewise learned on the validation set, as the original). Targets: the labels.
    Returns ``{class index: MaskResult}``; cached stages ``variants.class_dataset_mask.<regime>.<k>``."""
    x, y = run.val_data()
    out: dict[int, MaskResult] = {}
    for k in torch.unique(y).tolist():
        sub = torch.nonzero(y == k).flatten()
        key = run.stage_key("variant_class_dataset_mask", regime=regime, cls=int(k), model=run.model(regime).key,
                            val=run.val_identity(), settings=dict(run.dataset_mask_params),
                            variants_version=VARIANTS_VERSION)

        def compute(sub=sub, k=k) -> MaskResult:
            learner = DatasetMask(run.model(regime).model, **asdict(run.profile.dataset_mask), seed=run.seed,
                                  device=run.device, progress=run.progress)
            return learner(x[sub], y[sub], desc=f"class dataset mask ({regime}, class {k})")

        out[int(k)] = run.stage("variant_class_dataset_mask", f"variants.class_dataset_mask.{regime}.{k}", key,
                                compute, **MASK_RESULT_IO)
    return out


def summary_rows(table: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Rows for a book table from :func:`convention_table2`'s result: per cell the two accuracies (percent) with
    their Wilson intervals and the paired difference with its interval (points)."""
    labels = dict(labels or {})
    rows = []
    for c, d in table["difference"].items():
        cn, cp = table["cells"]["normalised"][c], table["cells"]["pixel"][c]
        rows.append({
            "cell": labels.get(c, c),
            "normalised (%)": _pct_iv(cn["accuracy"], cn["wilson95"]),
            "pixel (%)": _pct_iv(cp["accuracy"], cp["wilson95"]),
            "pixel - normalised (points)": _pct_iv(d["pixel_minus_normalised"], d["newcombe95"], signed=True),
        })
    return rows


def _pct_iv(v: float, iv: Sequence[float], signed: bool = False) -> str:
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(100 * v)} [{f.format(100 * iv[0])}, {f.format(100 * iv[1])}]"

