"""Table 3 (Sec. 3.2): single-image masks are class specific, and a linear probe cannot fit shuffled labels."""
from __future__ import annotations

from typing import Any

from fmask.analysis import stats
from fmask.claims.base import (CONFIDENCE, INCONCLUSIVE, MAX_HALF_WIDTH, MIN_NULL, NOT_REPRODUCED, PAPER_N_CLASSES,
                               REPRODUCED, Results, half_width, outcome, paper_value, pct, recover_count,
                               sign_verdict, spec, to_float, to_int)

__all__ = ["specs"]


def _n_classes(R: Results) -> int:
    k = R.count("class_specificity", "n_classes")
    return k if k is not None and k >= 2 else PAPER_N_CLASSES


def _probe_split(R: Results, part: str) -> int | None:
    """Probe train/test sizes: recorded, else from table3's metadata as fmask.analysis.probe.linear_probe splits
    (n_train = int(n_masks * train_fraction), n_test = n_masks - n_train)."""
    for labels in ("true_labels", "random_labels"):
        n = R.count("table3", labels, f"n_{part}")
        if n is not None:
            return n
    n = R.count("class_specificity", f"n_{part}")
    if n is not None:
        return n
    n_masks = to_int(R.meta_value("table3", "n_masks"))
    frac = to_float(R.meta_value("table3", "train_fraction"))
    if n_masks is None or frac is None:
        return None
    n_train = int(n_masks * frac)
    return n_train if part == "train" else n_masks - n_train


def _class_specific(R: Results) -> dict[str, Any]:
    true_test = R.number("table3", "true_labels", "test")
    shuf_test = R.number("table3", "random_labels", "test")
    ours = None if true_test is None else true_test
    details: dict[str, Any] = {"shuffled_test": shuf_test, "chance": 1.0 / _n_classes(R)}
    null = R.array("class_specificity", "null_test_accuracy")
    if true_test is not None and null is not None and null.size >= MIN_NULL:
        s = stats.permutation_null_summary(true_test, null, alternative="greater", confidence=CONFIDENCE)
        details["permutation"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()}
        verdict = REPRODUCED if s["p_value"] <= 1 - CONFIDENCE else NOT_REPRODUCED
        n_test = _probe_split(R, "test")
        k = recover_count(true_test, n_test)
        iv = None if k is None else stats.wilson_interval(k, n_test, CONFIDENCE)
        return outcome(ours=ours, interval=iv, n=n_test, verdict=verdict, details=details)
    missing = [f"class_specificity.null_test_accuracy (B,), B >= {MIN_NULL} label permutations"]
    n_test = _probe_split(R, "test")
    k1, k2 = recover_count(true_test, n_test), recover_count(shuf_test, n_test)
    if k1 is None or k2 is None:
        missing.append("table3.{true_labels,random_labels}.test and n_test")
        return outcome(ours=ours, n=n_test, missing=missing, details=details)
    iv = stats.newcombe_interval(k1, n_test, k2, n_test, CONFIDENCE)
    details["method"] = "Newcombe interval of test accuracy, true - shuffled labels (no permutation null recorded)"
    details["true_test"] = true_test
    return outcome(ours=(k1 - k2) / n_test, interval=iv, n=n_test, verdict=sign_verdict(iv, +1),
                   missing=missing, details=details)


def _geometry_not_capacity(R: Results) -> dict[str, Any]:
    train = R.number("table3", "random_labels", "train")
    chance = 1.0 / _n_classes(R)
    n_train = _probe_split(R, "train")
    details: dict[str, Any] = {"chance": chance}
    null = R.array("class_specificity", "null_train_accuracy")
    if null is not None:
        details["null_train_accuracy_mean"] = float(null.mean())
    k = recover_count(train, n_train)
    if k is None:
        return outcome(ours=train, n=n_train, details=details,
                       missing=["table3.random_labels.train and n_train"])
    iv = stats.wilson_interval(k, n_train, CONFIDENCE)
    if iv[0] > chance:
        verdict = NOT_REPRODUCED
    else:
        verdict = REPRODUCED if half_width(iv) <= MAX_HALF_WIDTH else INCONCLUSIVE
    return outcome(ours=k / n_train, interval=iv, n=n_train, verdict=verdict, details=details)


def specs() -> list[dict[str, Any]]:
    """The claims of this group, in the paper's order (static text and rule; see :func:`fmask.claims.base.spec`)."""
    pv = paper_value
    return [
        spec("table3.class_specific",
             "Single-image masks are class specific: a linear classifier separates them by class, unlike "
             "shuffled labels (Sec. 3.2, Table 3, Fig. 8).",
             "test accuracy {} with true labels vs {} with shuffled labels (paper Table 3)".format(
                  pct(pv("table3", "true_labels", "test")), pct(pv("table3", "random_labels", "test"))),
             f"With >= {MIN_NULL} label permutations recorded: permutation p-value (+1 correction) of the "
             "true-label test accuracy <= 0.05 -> reproduced, else not reproduced (ours: the true-label test "
             "accuracy, interval: its Wilson interval). Otherwise ours is the test accuracy with true minus "
             "shuffled labels and its 95% Newcombe interval: excludes 0 and is positive -> reproduced; excludes 0 "
             "and is negative -> not reproduced; otherwise inconclusive.",
             "07_class_specificity", _class_specific),
        spec("table3.geometry_not_capacity",
             "With shuffled labels the linear classifier cannot separate the masks, so their separability is "
             "due to their geometry, not to the representation power of the classifier (Sec. 3.2, Table 3).",
             "training accuracy {} with shuffled labels, chance 20% (paper Table 3)".format(
                  pct(pv("table3", "random_labels", "train"))),
             f"95% Wilson interval of the shuffled-label TRAINING accuracy: lower end above chance (1/{PAPER_N_CLASSES} "
             "unless the number of classes is recorded) -> not reproduced (the classifier fits arbitrary labels); "
             f"reaches chance with a half-width of at most {100 * MAX_HALF_WIDTH:g} points -> reproduced; "
             "otherwise inconclusive.",
             "07_class_specificity", _geometry_not_capacity),
    ]
