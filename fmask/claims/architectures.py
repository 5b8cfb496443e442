"""Sec. 2.2: a second architecture gives qualitatively similar results (chapter 11's items)."""
from __future__ import annotations

from typing import Any, Mapping

from fmask.claims.base import (ARCHITECTURE_PREMISE_POINTS, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Results,
                               outcome, spec)

__all__ = ["specs"]


def _architectures_similar(R: Results) -> dict[str, Any]:
    """``architectures.items`` (chapter 11, :func:`fmask.experiment.compare.similarity_items`): every item agrees ->
    reproduced; more than half disagree -> not reproduced; otherwise (or any item missing) inconclusive."""
    items = R.get("architectures", "items")
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(i, Mapping) for i in items):
        return outcome(missing=["architectures.items (list of {item, first, second, agree})"])
    flags = [i.get("agree") for i in items]
    n = len(flags)
    agree, disagree = sum(f is True for f in flags), sum(f is False for f in flags)
    missing = [f"architectures.items[{i.get('item', k)}].agree" for k, i in enumerate(items)
               if not isinstance(i.get("agree"), bool)]
    if agree == n:
        verdict = REPRODUCED
    elif disagree > n / 2:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    details = {"disagree": [i.get("item") for i in items if i.get("agree") is False],
               "first": R.meta_value("architectures", "first"), "second": R.meta_value("architectures", "second")}
    acc = {side: R.number("architectures", side, "table1", "vanilla", "standard") for side in ("first", "second")}
    details["vanilla_accuracy"] = acc
    if acc["first"] is None or acc["second"] is None:
        missing.append("architectures.{first,second}.table1.vanilla.standard (the premise: comparable accuracy)")
        verdict = INCONCLUSIVE
    elif acc["first"] - acc["second"] > ARCHITECTURE_PREMISE_POINTS:
        details["premise"] = (f"the second network's vanilla accuracy ({100 * acc['second']:.1f}%) is more than "
                              f"{100 * ARCHITECTURE_PREMISE_POINTS:g} points below the main network's "
                              f"({100 * acc['first']:.1f}%): the comparison's premise fails")
        verdict = INCONCLUSIVE
    return outcome(ours=agree / n, n=n, verdict=verdict, missing=missing, details=details)


def specs() -> list[dict[str, Any]]:
    """The claims of this group, in the paper's order (static text and rule; see :func:`fmask.claims.base.spec`)."""
    return [
        spec("sec2.resnet_similar",
             "ResNet18 gives results qualitatively similar to VGG11 (Sec. 2.2: 'the results produced "
             "qualitatively similar'; only VGG11 is shown).",
             "'qualitatively similar' (Sec. 2.2; no figure or number printed)",
             "Chapter 11's items, computed the same way for the main network and the compare section's second "
             "architecture (one seed each; fmask.experiment.compare.VERDICT_RULE): sign of Δ_low for B, C, D, E; Table 1 "
             "|masked - clean| within compare.verdict_margin for every network; sign of M(X) - M'(X); sign of "
             "M(X_A) - X_A (Table 2 subset). Ours: the share of items on which the two agree. The premise is "
             "'comparable performance': if the second network's vanilla accuracy is more than "
             f"{100 * ARCHITECTURE_PREMISE_POINTS:g} points below the main network's, inconclusive whatever the "
             "items say. Otherwise all agree -> reproduced; more than half disagree -> not reproduced; otherwise "
             "inconclusive.",
             "11_architectures", _architectures_similar),
    ]
