"""Table 2 (Sec. 3.2): the single-image masks' selection, M(x) preserving the decision, the complement's drop,
the complement's necessity and the attack reversal M(x_A)."""
from __future__ import annotations

from typing import Any, Callable

from fmask.analysis import stats
from fmask.claims.base import (CHECK, CONFIDENCE, INCONCLUSIVE, NOT_REPRODUCED, PRESERVED_ACCURACY, MAX_HALF_WIDTH, REPRODUCED,
                               Results, accuracy_count, as_interval, includes_verdict, outcome, paired_table,
                               paper_value, pct, sign_verdict, spec, to_int)

__all__ = ["specs"]


def _table2_selection(R: Results) -> dict[str, Any]:
    x = R.number("table2", "vanilla", "original")
    xa = R.number("table2", "vanilla", "adversarial")
    missing = [f"table2.vanilla.{k}" for k, v in (("original", x), ("adversarial", xa)) if v is None]
    n = R.count("table2", "vanilla", "n") or to_int(R.meta_value("table2", "n_images"))
    ours = {k: v for k, v in (("original", x), ("adversarial", xa)) if v is not None} or None
    if missing:
        verdict = NOT_REPRODUCED if (x is not None and x != 1.0) or (xa is not None and xa != 0.0) else INCONCLUSIVE
        return outcome(ours=ours, n=n, verdict=verdict, missing=missing)
    return outcome(ours=ours, n=n, verdict=REPRODUCED if (x == 1.0 and xa == 0.0) else NOT_REPRODUCED)


def _make_table2_cell(column: str, mode: str) -> Callable[[Results], dict[str, Any]]:
    def evaluate(R: Results) -> dict[str, Any]:
        ours = R.number("table2", "vanilla", column)
        kn = accuracy_count(R, "table2", "vanilla", column, "n_images")
        details: dict[str, Any] = {}
        if column == "masked_adversarial":  # for information: the original's binarised masks (not decisive)
            kb = accuracy_count(R, "table2", "vanilla", "masked_adversarial_binary", "n_images")
            binary = R.number("table2", "vanilla", "masked_adversarial_binary")
            if kb is not None:
                details["masked_adversarial_binary"] = {
                    "accuracy": kb[0] / kb[1], "interval": as_interval(stats.wilson_interval(kb[0], kb[1], CONFIDENCE))}
            elif binary is not None:
                details["masked_adversarial_binary"] = {"accuracy": binary, "interval": None}
        if kn is None:
            what = "table2.vanilla." + column if ours is None else f"table2.vanilla.n and correct.{column}"
            return outcome(ours=ours, missing=[what], details=details)
        k, n, how = kn
        iv = stats.wilson_interval(k, n, CONFIDENCE)
        details["counts"] = {"k": k, "n": n, "from": how}
        if mode == "preserved":
            verdict = (REPRODUCED if iv[0] >= PRESERVED_ACCURACY else
                       NOT_REPRODUCED if iv[1] < PRESERVED_ACCURACY else INCONCLUSIVE)
        else:
            target = paper_value("table2", "vanilla", column)
            verdict = INCONCLUSIVE if target is None else includes_verdict(iv, target / 100.0)
        return outcome(ours=k / n, interval=iv, n=n, verdict=verdict, details=details)

    return evaluate


def _complement_necessary(R: Results) -> dict[str, Any]:
    km = accuracy_count(R, "table2", "vanilla", "masked", "n_images")
    kc = accuracy_count(R, "table2", "vanilla", "complement", "n_images")
    if km is None or kc is None:
        m, c = R.number("table2", "vanilla", "masked"), R.number("table2", "vanilla", "complement")
        return outcome(ours=None if m is None or c is None else m - c,
                       missing=["table2.vanilla.n and correct{masked, complement}"])
    (k1, n1, _), (k2, n2, _) = km, kc
    table = paired_table(km, kc, R.count("table2", "vanilla", "discordant", "masked_only"),
                         R.count("table2", "vanilla", "discordant", "complement_only"))
    missing = []
    if table is not None:
        iv, how = stats.paired_difference_interval(*table, CONFIDENCE), "paired (recorded discordant counts)"
    elif n1 == n2 and k1 in (0, n1):
        # every image right (or wrong) on M(x): the joint outcomes follow from the two accuracies
        table = (k2, n1 - k2, 0, 0) if k1 == n1 else (0, 0, k2, n1 - k2)
        iv, how = stats.paired_difference_interval(*table, CONFIDENCE), "paired (implied by M(x) at 0 or 100%)"
    else:
        iv, how = stats.newcombe_interval(k1, n1, k2, n2, CONFIDENCE), "Newcombe, independent"
        missing.append("table2.vanilla.discordant{masked_only, complement_only}")
    return outcome(ours=k1 / n1 - k2 / n2, interval=iv, n=n1, verdict=sign_verdict(iv, +1), missing=missing,
                   details={"method": how})



def specs() -> list[dict[str, Any]]:
    """The claims of this group, in the paper's order (static text and rule; see :func:`fmask.claims.base.spec`)."""
    pv = paper_value
    return [
        spec("table2.selection",
             "The single-image analysis uses correctly classified validation images whose PGD counterparts are "
             "all misclassified (Sec. 3.2, Table 2: x and x_A).",
             f"x {pct(pv('table2', 'vanilla', 'original'))}, x_A {pct(pv('table2', 'vanilla', 'adversarial'))} "
             "(paper Table 2)",
             "By construction: reproduced if the vanilla network's accuracy is exactly 100% on x and exactly 0% "
             "on x_A; not reproduced otherwise.",
             "06_single_image_masks", _table2_selection, kind=CHECK,
             why="the selection: only images the vanilla network gets right and its attack gets wrong are used"),
        spec("table2.masked_preserves",
             "Filtering an image with its own mask M_N,x does not alter the network's decision (Sec. 1, "
             "Sec. 3.2, Table 2: M_N,x(x)).",
             f"{pct(pv('table2', 'vanilla', 'masked'))} (paper Table 2, M_N,x(x))",
             f"95% Wilson interval of the accuracy on M(x): lower end >= {100 * PRESERVED_ACCURACY:g}% -> "
             f"reproduced; upper end below {100 * PRESERVED_ACCURACY:g}% -> not reproduced; otherwise "
             "inconclusive.",
             "06_single_image_masks", _make_table2_cell("masked", "preserved"), kind=CHECK,
             why="the objective: each single-image mask is learned to keep its image's prediction"),
        spec("table2.complement_drop",
             "Accuracy drops by ~45% on images filtered by the complementary masks M^c_N,x (Sec. 3.2, Table 2).",
             f"{pct(pv('table2', 'vanilla', 'complement'))} (paper Table 2, M^c_N,x(x))",
             "95% Wilson interval of the accuracy on M^c(x) includes the paper's value and has a half-width of "
             f"at most {100 * MAX_HALF_WIDTH:g} points -> reproduced; excludes it -> not reproduced; otherwise "
             "inconclusive.",
             "06_single_image_masks", _make_table2_cell("complement", "includes")),
        spec("table2.complement_necessary",
             "The mask's frequencies are not only sufficient but also necessary: accuracy on M^c(x) is below "
             "that on M(x) (Sec. 3.2, second bullet).",
             "M_N,x(x) {} vs M^c_N,x(x) {} (paper Table 2)".format(pct(pv("table2", "vanilla", "masked")),
                                                                 pct(pv("table2", "vanilla", "complement"))),
             "95% interval of accuracy(M(x)) - accuracy(M^c(x)) on the same images (paired when the discordant "
             "counts are known or implied, else Newcombe): excludes 0 and is positive -> reproduced; excludes 0 "
             "and is negative -> not reproduced; otherwise inconclusive.",
             "06_single_image_masks", _complement_necessary, kind=CHECK,
             why="the objective: M(x) keeps the prediction by construction, so any drop on M^c(x) makes it hold"),
        spec("table2.attack_reversal",
             "Filtering adversarial examples with the clean image's mask reverses the attack in ~60% of the "
             "samples (Sec. 3.2, Table 2: M_N,x(x_A)).",
             f"{pct(pv('table2', 'vanilla', 'masked_adversarial'))} (paper Table 2, M_N,x(x_A))",
             "95% Wilson interval of the accuracy on M(x_A) (continuous masks, as the paper describes) includes "
             f"the paper's value and has a half-width of at most {100 * MAX_HALF_WIDTH:g} points -> reproduced; "
             "excludes it -> not reproduced; otherwise inconclusive.",
             "06_single_image_masks", _make_table2_cell("masked_adversarial", "includes")),
    ]
