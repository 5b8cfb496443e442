"""Fig. 5 and Fig. 7 (Sec. 3.2): single-image masks are sparse, texture-like, and lower-frequency for the
adversarially trained network."""
from __future__ import annotations

from typing import Any

import numpy as np

from fmask.analysis import stats
from fmask.claims.base import (NOT_TESTABLE, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, INCONCLUSIVE, KEPT_THRESHOLD,
                               NOT_REPRODUCED, REPRODUCED, SPARSE_KEPT_FRACTION, Results, as_interval, outcome,
                               sign_verdict, spec)

__all__ = ["specs"]


def _masks_sparse(R: Results) -> dict[str, Any]:
    kept = R.array("single_image", "per_image", "kept_fraction", "vanilla")
    mean_m = R.number("single_image", "mask_mean", "vanilla")
    details = {} if mean_m is None else {"mask_mean_lower_bound": mean_m}
    if kept is None or kept.size < 2:
        return outcome(ours=None, missing=["single_image.per_image.kept_fraction.vanilla (n,): fraction of "
                                           f"entries of each mask above {KEPT_THRESHOLD:g}"], details=details)
    iv = stats.bootstrap_interval(kept, np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence=CONFIDENCE,
                                  seed=BOOTSTRAP_SEED)
    verdict = (REPRODUCED if iv[1] < SPARSE_KEPT_FRACTION else
               NOT_REPRODUCED if iv[0] > SPARSE_KEPT_FRACTION else INCONCLUSIVE)
    return outcome(ours=float(kept.mean()), interval=iv, n=int(kept.size), verdict=verdict, details=details)


def _low_share_difference(R: Results, kind: str) -> tuple[np.ndarray | None, str]:
    """Per image, low-half radial energy share of the ``kind`` masks minus the vanilla network's (M_N,X).

    When the other kinds were learned on a subset of the selected images (``selection.n_paired``), their
    row i belongs to selected image ``per_image.paired_indices[i]``; the vanilla shares are taken there."""
    a = R.array("single_image", "per_image", "low_share", kind)
    v = R.array("single_image", "per_image", "low_share", "vanilla")
    idx = R.array("single_image", "per_image", "paired_indices")
    what = (f"single_image.per_image.low_share{{{kind}, vanilla}} (n,): each mask's energy share in the lower "
            "half of the radial bands")
    if a is not None and v is not None and idx is not None and idx.size == a.size and a.shape != v.shape:
        ii = idx.astype(np.int64)
        if ii.size and (ii.min() < 0 or ii.max() >= v.size):
            raise ValueError(f"single_image.per_image.paired_indices out of range for {v.size} vanilla masks")
        v = v[ii]
    if a is None or v is None or a.shape != v.shape or a.size < 2:
        return None, what
    return a - v, what


def _fig7(R: Results) -> dict[str, Any]:
    """The paper's Fig. 7: M_A,X_A (adversarially trained network, images attacked against it; kind
    ``adversarial_pgd``) vs M_N,X. The original code's comparison (M_A,X: the same network's masks of the
    clean images; kind ``adversarial``) is reported in ``details["code_version"]``, not used for the verdict."""
    details: dict[str, Any] = {"compared": "M_A,X_A vs M_N,X (paper's caption)"}
    for kind, key in (("adversarial_pgd", "dominance_adversarial_pgd_vs_vanilla"),
                      ("adversarial", "dominance_adversarial_vs_vanilla")):
        dom = R.array("single_image", key, "radial")
        if dom is not None and dom.size >= 2:
            half = dom.size // 2
            tag = "" if kind == "adversarial_pgd" else "code_"
            details[f"{tag}dominance_low_half_mean"] = float(dom[:half].mean())
            details[f"{tag}dominance_high_half_mean"] = float(dom[half:].mean())
    code, _ = _low_share_difference(R, "adversarial")
    if code is not None:
        civ = stats.bootstrap_interval(code, np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence=CONFIDENCE,
                                       seed=BOOTSTRAP_SEED)
        details["code_version"] = {"compared": "M_A,X vs M_N,X (original code)", "mean_difference":
                                   float(code.mean()), "interval": as_interval(civ), "n": int(code.size),
                                   "verdict": sign_verdict(civ, +1),
                                   "images_with_more_low_share": float(np.mean(code > 0))}
    d, what = _low_share_difference(R, "adversarial_pgd")
    if d is None:
        return outcome(ours=None, details=details, missing=[what])
    iv = stats.bootstrap_interval(d, np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence=CONFIDENCE,
                                  seed=BOOTSTRAP_SEED)
    details["images_with_more_low_share"] = float(np.mean(d > 0))
    return outcome(ours=float(d.mean()), interval=iv, n=int(d.size), verdict=sign_verdict(iv, +1),
                   details=details)


def _texture_proxy(R: Results) -> dict[str, Any]:
    cm = R.array("single_image", "per_image", "pixel_correlation", "masked")
    cc = R.array("single_image", "per_image", "pixel_correlation", "complement")
    if cm is None or cc is None or cm.shape != cc.shape:
        return outcome(verdict=NOT_TESTABLE,
                       missing=["single_image.per_image.pixel_correlation{masked, complement} (n,): Pearson "
                                "correlation of each image x with M(x) and with M^c(x)"])
    k, n = int(np.sum(cm < cc)), int(cm.size)
    iv = stats.wilson_interval(k, n, CONFIDENCE)
    proxy = REPRODUCED if iv[0] > 0.5 else NOT_REPRODUCED if iv[1] < 0.5 else INCONCLUSIVE
    return outcome(ours=k / n, interval=iv, n=n, verdict=NOT_TESTABLE,
                   details={"median_corr_masked": float(np.median(cm)),
                            "median_corr_complement": float(np.median(cc)), "pixel_correlation_proxy": proxy})


def specs() -> list[dict[str, Any]]:
    """The claims of this group, in the paper's order (static text and rule; see :func:`fmask.claims.base.spec`)."""
    return [
        spec("fig5.masks_sparse",
             "Single-image masks are very sparse: very few frequencies are essential for the network's "
             "prediction (Sec. 3.2, Fig. 5; Sec. 4).",
             "'the masks are very sparse' (Sec. 3.2; no number printed)",
             f"Mean over images of the fraction of mask entries above {KEPT_THRESHOLD:g} (the paper's threshold "
             f"for M^c), vanilla network, 95% percentile bootstrap (seed {BOOTSTRAP_SEED}). Upper end below "
             f"{100 * SPARSE_KEPT_FRACTION:g}% -> reproduced; lower end above it -> not reproduced; otherwise "
             "inconclusive.",
             "06_single_image_masks", _masks_sparse),
        spec("fig7.adversarial_lower_frequency",
             "Single-image masks of the adversarially trained network concentrate more toward lower frequencies "
             "than those of the vanilla network (Sec. 3.2, Fig. 7; Sec. 4).",
             "Fig. 7: lower frequencies are preferred for a robust representation",
             "Per image, the low-half radial energy share of the adversarially trained network's mask of the "
             "image attacked against it (M_A,X_A, as the paper's caption) minus the vanilla network's mask of the "
             f"clean image (M_N,X); 95% percentile bootstrap interval of the mean (seed {BOOTSTRAP_SEED}): "
             "excludes 0 and is positive -> reproduced; excludes 0 and is negative -> not reproduced; otherwise "
             "inconclusive. (The original code compares M_A,X, the clean images' masks; that comparison is "
             "reported in details.code_version.)",
             "06_single_image_masks", _fig7),
        spec("fig5.texture_like",
             "Images filtered by their masks are not recognisable and resemble texture-like patterns, while "
             "complement-filtered images stay recognisable (Sec. 3.2, Fig. 5 bottom; abstract).",
             "qualitative (Fig. 5B, 5C); no number printed",
             "Not testable as stated: 'recognisable' and 'texture-like' are judgements of human viewers, and the "
             "paper gives no measure; no computed number can decide them. Shown for the reader (not a verdict): "
             "the share of images whose pixel correlation with M(x) is below their correlation with M^c(x), with "
             "its 95% Wilson interval, and what a 50% threshold on it would say (details).",
             "06_single_image_masks", _texture_proxy),
    ]
