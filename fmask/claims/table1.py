"""Table 1 (Sec. 3.1): the dataset mask keeps each network's accuracy, and the regimes' accuracy ranking,
decided against both the training-seed spread and the image sampling."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from fmask.analysis import stats
from fmask.claims.base import (CHECK, CONFIDENCE, EQUIVALENCE_MARGIN, INCONCLUSIVE, MIN_REPLICATES, NOT_REPRODUCED,
                               REPRODUCED, Results, as_interval, combine, hull, outcome, paired_table, paper_value,
                               pct, sign_verdict, spec, to_int)
from fmask.data.regimes import PAPER_LETTERS, REGIMES

__all__ = ["specs"]


def _table1_reps(R: Results, regime: str) -> dict[str, Any] | None:
    """The per-seed arrays ``table1.<regime>.replicates`` (chapter 4; :func:`fmask.analysis.accuracy.table1_replicates`)
    as ``{"standard", "masked"}`` float arrays (k,), ``"n"`` / ``"correct"`` / ``"discordant"`` int lists or
    None, ``"k"``; None when absent or malformed (unequal lengths, non-finite values)."""
    rep = R.get("table1", regime, "replicates")
    if not isinstance(rep, Mapping):
        return None
    std, msk = R.array("table1", regime, "replicates", "standard"), R.array("table1", regime, "replicates", "masked")
    if std is None or msk is None or std.shape != msk.shape:
        return None
    k = int(std.size)

    def ints(*keys: str) -> list[int] | None:
        v = R.get("table1", regime, "replicates", *keys)
        if not isinstance(v, Sequence) or len(v) != k:
            return None
        out = [to_int(x) for x in v]
        return None if any(x is None for x in out) else out

    return {"k": k, "standard": std, "masked": msk, "n": ints("n"),
            "correct": {c: ints("correct", c) for c in ("standard", "masked")},
            "discordant": {c: ints("discordant", c) for c in ("standard_only", "masked_only")}}


def _seed_image_interval(rep: Mapping[str, Any], i: int) -> tuple[list[float] | None, str]:
    """Image-sampling interval of masked - standard for seed ``i``: paired from the counts, else Newcombe."""
    n = rep["n"][i] if rep["n"] is not None else None
    ks = rep["correct"]["standard"][i] if rep["correct"]["standard"] is not None else None
    km = rep["correct"]["masked"][i] if rep["correct"]["masked"] is not None else None
    if n is None or ks is None or km is None:
        return None, "counts not recorded"
    so = rep["discordant"]["standard_only"]
    mo = rep["discordant"]["masked_only"]
    table = None if so is None or mo is None else paired_table((km, n, ""), (ks, n, ""), mo[i], so[i])
    if table is not None:
        return list(stats.paired_difference_interval(*table, CONFIDENCE)), "paired"
    return list(stats.newcombe_interval(km, n, ks, n, CONFIDENCE)), "Newcombe"


def _table1_differences(R: Results) -> tuple[dict, dict, dict, list[str], dict]:
    """Per regime: masked - standard over the training-seed replicates: point (mean over seeds), the
    interval the verdict uses, n seeds, what is missing, per-seed details.

    The interval is the hull of the 95% Student-t interval over seeds (seed-to-seed spread of the network
    and its mask) and every seed's 95% image-level interval (paired from the discordant counts, Newcombe if
    they are not recorded), so a verdict has to hold against both sources of variation. With fewer than
    :data:`MIN_REPLICATES` seeds (or none recorded) there is no interval: the single-seed numbers go to the
    details and the regime is undecided."""
    ours, ivs, ns, missing, how = {}, {}, {}, [], {}
    for r in REGIMES:
        s, m = R.number("table1", r, "standard"), R.number("table1", r, "masked")
        rep = _table1_reps(R, r)
        if rep is None:
            if s is None or m is None:
                missing.append(f"table1.{r}.standard/masked")
                continue
            ours[r], ns[r] = m - s, 1
            how[r] = {"note": "single training seed: no seed spread"}
            missing.append(f"table1.{r}.replicates (>= {MIN_REPLICATES} training seeds)")
            continue
        d = rep["masked"] - rep["standard"]
        summ = stats.replicate_summary(d, CONFIDENCE)
        per_seed = [_seed_image_interval(rep, i) for i in range(rep["k"])]
        ours[r], ns[r] = summ["mean"], rep["k"]
        how[r] = {"per_seed": d.tolist(), "seed_interval": as_interval(summ["interval"]),
                  "image_intervals": [as_interval(iv) for iv, _ in per_seed], "image_method": [h for _, h in per_seed]}
        if rep["k"] < MIN_REPLICATES:
            missing.append(f"table1.{r}.replicates: {rep['k']} seeds, need >= {MIN_REPLICATES}")
            continue
        if any(iv is None for iv, _ in per_seed):
            missing.append(f"table1.{r}.replicates.n/correct (per-seed counts)")
            continue
        ivs[r] = hull([summ["interval"], *[iv for iv, _ in per_seed]])
    return ours, ivs, ns, missing, how


def _table1_masked(R: Results) -> dict[str, Any]:
    ours, ivs, ns, missing, how = _table1_differences(R)
    parts = {}
    for r in REGIMES:
        iv = ivs.get(r)
        if iv is None:
            parts[r] = INCONCLUSIVE
        elif -EQUIVALENCE_MARGIN <= iv[0] and iv[1] <= EQUIVALENCE_MARGIN:
            parts[r] = REPRODUCED
        elif iv[0] > EQUIVALENCE_MARGIN or iv[1] < -EQUIVALENCE_MARGIN:
            parts[r] = NOT_REPRODUCED
        else:
            parts[r] = INCONCLUSIVE
    details = {r: {"difference": ours.get(r), "interval": as_interval(ivs.get(r)), "verdict": parts[r],
                   **how.get(r, {})} for r in REGIMES}
    return outcome(ours=ours or None, interval=hull(list(ivs.values())), n=ns or None,
                   verdict=combine(list(parts.values())), missing=missing, details=details)


def _paper_ranking() -> list[str]:
    vals = {r: paper_value("table1", r, "standard") for r in REGIMES}
    return sorted((r for r in REGIMES if vals[r] is not None), key=lambda r: -vals[r])


def _table1_ranking(R: Results) -> dict[str, Any]:
    """Each pair ordered by the paper, seed by seed (replicate i of every regime has seed ``profile.seed + i``):
    the pair holds in a seed when that seed's 95% Newcombe interval of the accuracy difference lies above 0; the
    pair is reproduced when it holds in every seed, not reproduced when every seed shows the reverse order, else
    inconclusive. The reported interval is the 95% t interval over seeds; fewer than :data:`MIN_REPLICATES`
    seeds: undecided."""
    order = _paper_ranking()
    ours, missing, parts, details, ns = {}, [], [], {}, {}
    reps = {}
    for r in order:
        rep = _table1_reps(R, r)
        v = R.number("table1", r, "standard")
        if rep is not None:
            ours[r] = float(rep["standard"].mean())
            ns[r] = rep["k"]
            if rep["k"] < MIN_REPLICATES:
                missing.append(f"table1.{r}.replicates: {rep['k']} seeds, need >= {MIN_REPLICATES}")
            elif rep["n"] is None or rep["correct"]["standard"] is None:
                missing.append(f"table1.{r}.replicates.n/correct (per-seed counts)")
            else:
                reps[r] = rep
        elif v is None:
            missing.append(f"table1.{r}.standard")
        else:
            ours[r], ns[r] = v, 1
            missing.append(f"table1.{r}.replicates (>= {MIN_REPLICATES} training seeds)")
    for i, hi_r in enumerate(order):
        for lo_r in order[i + 1:]:
            key = f"{PAPER_LETTERS[hi_r]}>{PAPER_LETTERS[lo_r]}"
            iv, verdict, det = None, INCONCLUSIVE, {}
            a, b = reps.get(hi_r), reps.get(lo_r)
            if a is not None and b is not None and a["k"] != b["k"]:
                missing.append(f"table1.{{{hi_r},{lo_r}}}.replicates: unequal seed counts ({a['k']}, {b['k']})")
            elif a is not None and b is not None:
                d = a["standard"] - b["standard"]
                seed_iv = stats.replicate_summary(d, CONFIDENCE)["interval"]
                img = [stats.newcombe_interval(a["correct"]["standard"][j], a["n"][j], b["correct"]["standard"][j],
                                               b["n"][j], CONFIDENCE) for j in range(a["k"])]
                iv = seed_iv
                per_seed = [sign_verdict(x, +1) for x in img]  # each seed's own ranking of the pair
                verdict = (REPRODUCED if all(v == REPRODUCED for v in per_seed) else
                           NOT_REPRODUCED if all(v == NOT_REPRODUCED for v in per_seed) else INCONCLUSIVE)
                det["per_seed_verdicts"] = per_seed
                det.update({"per_seed": d.tolist(), "seed_interval": as_interval(seed_iv),
                            "image_intervals": [as_interval(x) for x in img]})
            parts.append(verdict)
            details[key] = {"difference": (ours[hi_r] - ours[lo_r]) if hi_r in ours and lo_r in ours else None,
                            "interval": as_interval(iv), "verdict": verdict, **det}
    our_order = sorted(ours, key=lambda r: -ours[r])
    details["paper_order"] = [PAPER_LETTERS[r] for r in order]
    details["our_order"] = [PAPER_LETTERS[r] for r in our_order]
    return outcome(ours=ours or None, interval=None, n=ns or None, verdict=combine(parts), missing=missing,
                   details=details)


def specs() -> list[dict[str, Any]]:
    """The claims of this group, in the paper's order (static text and rule; see :func:`fmask.claims.base.spec`)."""
    pv = paper_value
    t1 = {r: (pv("table1", r, "standard"), pv("table1", r, "masked")) for r in REGIMES}
    t1_diffs = [m - s for s, m in t1.values() if s is not None and m is not None]
    rank = " > ".join(f"{PAPER_LETTERS[r]} {pct(t1[r][0])}" for r in _paper_ranking())
    return [
        spec("table1.masked_matches_standard",
             "The dataset mask minimally alters each network's validation accuracy (Sec. 3.1, Table 1).",
             "masked - standard between {:+.2f} and {:+.2f} points over the five networks (paper Table 1)".format(
                  min(t1_diffs), max(t1_diffs)) if t1_diffs else "paper Table 1",
             f"Per network, over >= {MIN_REPLICATES} training-seed replicates: the hull of the 95% Student-t "
             f"interval over seeds of accuracy(masked) - accuracy(standard) and each seed's 95% interval on the "
             f"same images (paired from the discordant counts; Newcombe independent interval if those are not "
             f"recorded). Reproduced if every network's interval lies within ±{100 * EQUIVALENCE_MARGIN:g} "
             f"points; not reproduced if any lies entirely outside; otherwise (or with fewer seeds) inconclusive.",
             "04_dataset_masks", _table1_masked, kind=CHECK,
             why="the objective: each dataset mask is learned to keep every image's cross-entropy, and it stops "
                 "only while the masked accuracy stays within 1% of the standard one"),
        spec("table1.accuracy_ranking",
             "Standard validation accuracy ranks the five training regimes as printed in Table 1 (Sec. 3.1).",
             f"{rank} (paper Table 1, 'Standard')",
             f"For each of the 10 pairs ordered by the paper, over >= {MIN_REPLICATES} training-seed replicates "
             "(seeds paired across regimes), seed by seed: a pair holds in a seed when that seed's 95% Newcombe "
             "interval of the accuracy difference excludes 0 with the paper's sign, and is reversed when it excludes "
             "0 with the opposite sign. A pair is reproduced when it holds in every seed and not reproduced when it "
             "is reversed in every seed. Reproduced if every pair is; not reproduced if any pair is; otherwise (or "
             "with fewer seeds) inconclusive. The interval shown is the 95% t interval over seeds.",
             "04_dataset_masks", _table1_ranking),
    ]
