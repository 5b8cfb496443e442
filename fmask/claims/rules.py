"""The claims ledger: every claim of the paper, our number, an interval and a verdict.

One entry per claim of Karantzas et al. (2022). Each entry is decided by a **rule fixed in this file
before looking at our numbers** and taken from the paper (its printed values in ``fmask/paper_values.yaml``,
its wording for qualitative claims), never tuned to our data. :func:`evaluate_claims` applies the rules to
the result files the chapters write (:mod:`fmask.experiment.results`); :func:`write_claims` writes ``claims.json``.

Entry schema (all JSON types)::

    {"id": "table2.attack_reversal",       # <table|fig|sec><N>.<name>, unique
     "claim": "...",                       # one line, faithful to the paper, with its section
     "paper": "58.83% (paper Table 2 ...)",# the printed value or a short statement
     "ours": 0.875 | {...} | null,         # our point estimate(s); null when the quantity is not recorded
     "interval": [lo, hi] | null,          # 95% interval of the quantity the rule decides on
     "n": 128 | {...} | null,              # independent units behind the interval (images, masks, seeds)
     "verdict": "reproduced" | "not reproduced" | "inconclusive",
     "rule": "...",                        # the decision rule, as fixed in code
     "chapter": "06_single_image_masks",   # the notebook with the detail
     "missing": ["..."],                   # quantities the rule needs that the results do not hold
     "details": {...}}                     # per-part numbers (per regime, per pair, ...)

Verdicts: **reproduced** -- the rule's condition for agreement with the paper holds; **not reproduced** --
the rule's condition for disagreement holds; **inconclusive** -- neither (too few data, an interval that
straddles the decision boundary, or a needed quantity not recorded). A quantity that is not recorded is
never invented: the verdict is inconclusive and ``missing`` names what the chapter should record.

Inputs
------
``results`` maps result names to their ``values`` (``fmask.experiment.results.load_results(d)``) or to full records
(``load_results(d, with_meta=True)``: ``{"values", "meta"}``); with records, sample sizes are also read from
the metadata the chapters store today (``table1`` ``n_val``, ``table2`` ``n_images``, ``table3``
``n_masks``/``train_fraction``). A count ``k`` is recovered from an accuracy ``f`` and its ``n`` only when
``f·n`` is within 0.01 of an integer (accuracies are computed as k/n). Explicitly recorded counts always
take precedence.

Quantities each claim needs (recorded today = ✓; to be added by the chapter = +)::

    blue_shift       ✓ shifted_fraction{act}, ✓ intermodulation.products_present{2f1,2f2,f1+f2,f2-f1}
    table1[regime]   ✓ standard, ✓ masked (fractions); + n, + correct{standard,masked} (ints),
                     + discordant{standard_only, masked_only} (ints: images right on x only / on M(x) only;
                       with the correct counts they give the 2x2 table of a paired interval);
                     + replicates{seed, standard, masked, n, correct{..}, discordant{..}}: lists over the
                       training-seed replicates (row i = seed profile.seed + i for every regime); the two
                       Table 1 claims need >= MIN_REPLICATES of them (top-level entries: replicate 0)
    energies         ✓ n_bands, ✓ radial_share{regime} (n_bands,), ✓ angular_share{regime} (n_bands,);
                     + replicates{regime}{radial_share, angular_share, angular_share_isotropic}
                       (seeds, n_bands) each, row i = seed i for every regime (seeds paired across regimes;
                       "isotropic" = angular shares of the mask after averaging it over rings of equal
                       radius, to remove the square grid's own angular structure)
    table2[vanilla]  ✓ adversarial, ✓ masked, ✓ complement, ✓ masked_adversarial; + original (acc. on x);
                     + n, + correct{original, adversarial, masked, complement, masked_adversarial},
                     + discordant{masked_only, complement_only} (M(x) vs M^c(x), same images)
    single_image     ✓ mask_mean, ✓ dominance_adversarial_vs_vanilla{radial},
                     ✓ dominance_adversarial_pgd_vs_vanilla{radial} (M_A,X_A vs M_N,X: the paper's Fig. 7);
                     + per_image{kept_fraction{vanilla} (n,), low_share{vanilla, adversarial, adversarial_pgd} (n,),
                       pixel_correlation{masked, complement} (n,), paired_indices (m,): the selected images of
                       the adversarial kinds when only m < n have them}
    table3[labels]   ✓ train, ✓ test; + n_train, + n_test
    class_specificity ✓ table3; + n_classes, + null_test_accuracy (B,) and null_train_accuracy (B,):
                     probe accuracies for B >= 99 independent label permutations
"""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fmask.analysis import stats
from fmask.data.regimes import PAPER_LETTERS, REGIMES

__all__ = [
    "paper_value",
    "REPRODUCED",
    "NOT_REPRODUCED",
    "INCONCLUSIVE",
    "VERDICTS",
    "FIELDS",
    "CLAIMS",
    "evaluate_claims",
    "write_claims",
]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
FIELDS = ("id", "claim", "paper", "ours", "interval", "n", "verdict", "rule", "chapter", "missing", "details")

# ---- decision constants: fixed from the paper, before looking at our numbers ------------------------------
CONFIDENCE = 0.95
#: an interval that is to *include* a printed value must also be this precise (half-width, fraction), so
#: that a tiny sample cannot "reproduce" a number by being vague
MAX_HALF_WIDTH = 0.10
#: "model performance is minimally altered by the mask" (Sec. 3.1): |masked - standard| within 2 points;
#: the paper's own largest change is 0.65 points (Table 1, M_A)
EQUIVALENCE_MARGIN = 0.02
#: "mask-filtered images do not alter performance at all" (Sec. 1): accuracy on M(x) of at least 95%
PRESERVED_ACCURACY = 0.95
#: "very few frequencies are essential" (Sec. 3.2): a mask keeps fewer than 10% of the frequencies ...
SPARSE_KEPT_FRACTION = 0.10
#: ... where "kept" is the paper's own threshold for the complement mask (Sec. 3.2: M^c = 1 where M < 1e-8)
KEPT_THRESHOLD = 1e-8
#: seed replicates needed for a t interval of a dataset-mask quantity (Fig. 4 has one mask per network)
MIN_REPLICATES = 3
#: null samples needed so that a permutation p-value can reach 0.05 (smallest p = 1/(B+1))
MIN_NULL = 19
#: the paper's classes: "5 classes of ImageNet" (Sec. 2.2), probe on "a uniformly balanced set" (Sec. 3.2)
PAPER_N_CLASSES = 5
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
#: numerical tolerance for the deterministic blue-shift spectra
SPECTRAL_TOL = 1e-6


# ------------------------------------------------------------------------------------------- results
class _Results:
    """Uniform read access to ``{name: values}`` or ``{name: {"values", "meta"}}``."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        if not isinstance(results, Mapping):
            raise ValueError(f"results must be a mapping of result name -> values; got {type(results).__name__}")
        self.values: dict[str, Any] = {}
        self.meta: dict[str, Mapping[str, Any]] = {}
        for name, v in results.items():
            if isinstance(v, Mapping) and isinstance(v.get("values"), Mapping) and "meta" in v:
                self.values[name] = v["values"]
                self.meta[name] = v.get("meta") or {}
            else:
                self.values[name] = v
                self.meta[name] = {}

    def get(self, name: str, *keys: str) -> Any:
        v: Any = self.values.get(name)
        for k in keys:
            if not isinstance(v, Mapping) or k not in v:
                return None
            v = v[k]
        return v

    def number(self, name: str, *keys: str) -> float | None:
        return _num(self.get(name, *keys))

    def count(self, name: str, *keys: str) -> int | None:
        return _int(self.get(name, *keys))

    def array(self, name: str, *keys: str, ndim: int = 1) -> np.ndarray | None:
        v = self.get(name, *keys)
        if v is None:
            return None
        try:
            a = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            return None
        if a.ndim != ndim or a.size == 0 or not np.all(np.isfinite(a)):
            return None
        return a

    def meta_value(self, name: str, key: str) -> Any:
        return self.meta.get(name, {}).get(key)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _recover_count(fraction: float | None, n: int | None) -> int | None:
    """k from an accuracy k/n and n, if f·n is (numerically) an integer in [0, n]; else None."""
    if fraction is None or n is None or n < 1:
        return None
    kf = fraction * n
    k = int(round(kf))
    return k if abs(kf - k) < 0.01 and 0 <= k <= n else None


def _accuracy_count(R: _Results, table: str, row: str, column: str, meta_n: str | None) -> tuple[int, int, str] | None:
    """(k, n, how) for an accuracy cell: recorded counts, else fraction × n (n recorded or in the metadata)."""
    n = R.count(table, row, "n")
    k = R.count(table, row, "correct", column)
    if n is not None and k is not None and 0 <= k <= n and n >= 1:
        return k, n, "recorded counts"
    how = "recorded n"
    if n is None and meta_n is not None:
        n = _int(R.meta_value(table, meta_n))
        how = f"metadata {meta_n}"
    k = _recover_count(R.number(table, row, column), n)
    if k is None or n is None:
        return None
    return k, n, f"fraction x {how}"


def _paired_table(c1: tuple[int, int, str], c2: tuple[int, int, str], only1: int | None,
                  only2: int | None) -> tuple[int, int, int, int] | None:
    """The 2x2 table (both, only 1, only 2, neither) from two accuracy counts on the same n items and the
    discordant counts; None if anything is missing or the counts are inconsistent."""
    (k1, n1, _), (k2, n2, _) = c1, c2
    if only1 is None or only2 is None or n1 != n2:
        return None
    both = k1 - only1
    neither = n1 - both - only1 - only2
    if both < 0 or neither < 0 or both + only2 != k2:
        return None
    return both, only1, only2, neither


def _half_width(iv: Sequence[float]) -> float:
    return (iv[1] - iv[0]) / 2.0


def _iv(iv: Sequence[float] | None) -> list[float] | None:
    return None if iv is None else [float(iv[0]), float(iv[1])]


def _sign_verdict(iv: Sequence[float] | None, sign: int) -> str:
    """The paper's sign (+1/-1): interval excludes 0 on that side -> reproduced; on the other -> not."""
    if iv is None:
        return INCONCLUSIVE
    lo, hi = sign * iv[0], sign * iv[1]
    lo, hi = min(lo, hi), max(lo, hi)
    if lo > 0:
        return REPRODUCED
    if hi < 0:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _includes_verdict(iv: Sequence[float] | None, target: float) -> str:
    """Interval includes the paper's value and is precise -> reproduced; excludes it -> not reproduced."""
    if iv is None:
        return INCONCLUSIVE
    if not iv[0] <= target <= iv[1]:
        return NOT_REPRODUCED
    return REPRODUCED if _half_width(iv) <= MAX_HALF_WIDTH else INCONCLUSIVE


def _combine(verdicts: Sequence[str]) -> str:
    """All parts reproduced -> reproduced; any part not reproduced -> not reproduced; else inconclusive."""
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _hull(ivs: Sequence[Sequence[float] | None]) -> list[float] | None:
    ivs = [iv for iv in ivs if iv is not None]
    if not ivs:
        return None
    return [float(min(iv[0] for iv in ivs)), float(max(iv[1] for iv in ivs))]


def _outcome(ours=None, interval=None, n=None, verdict=INCONCLUSIVE, missing=(), details=None) -> dict[str, Any]:
    return {"ours": ours, "interval": _iv(interval), "n": n, "verdict": verdict, "missing": list(missing),
            "details": dict(details or {})}


# --------------------------------------------------------------------------------------- paper values
@functools.lru_cache(maxsize=1)
def _paper_entries() -> tuple[tuple[str, str, str, float | None], ...]:
    from fmask.experiment.results import paper_values

    return tuple((e["table"], str(e["row"]), str(e["column"]), None if e["value"] is None else float(e["value"]))
                 for e in paper_values())


def _paper_value(table: str, row: str, column: str) -> float | None:
    """The paper's printed value (percent) of a Table 1-3 cell, from fmask/paper_values.yaml."""
    for t, r, c, v in _paper_entries():
        if (t, r, c) == (table, row, column):
            return v
    return None


paper_value = _paper_value  # public name (chapters quote a printed value without typing it)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:g}%"


# ------------------------------------------------------------------------------------------- claims
def _blue_shift(R: _Results) -> dict[str, Any]:
    acts = ("softplus", "tanh", "relu", "hardtanh")
    products = ("2f1", "2f2", "f1+f2", "f2-f1")
    shares = {a: R.number("blue_shift", "shifted_fraction", a) for a in acts}
    present = R.get("blue_shift", "intermodulation", "products_present") or {}
    baseline = R.number("blue_shift", "shifted_fraction", "identity") or 0.0
    missing = [f"blue_shift.shifted_fraction.{a}" for a, v in shares.items() if v is None]
    missing += [f"blue_shift.intermodulation.products_present.{p}" for p in products
                if not isinstance(present.get(p), bool)]
    details = {"n_samples": R.count("blue_shift", "n_samples"), "identity_share": baseline}
    if missing:  # deterministic spectra: no sampling, hence no interval and no n
        return _outcome(ours={a: v for a, v in shares.items() if v is not None} or None, missing=missing,
                        details=details)
    ok = all(v > baseline + SPECTRAL_TOL for v in shares.values()) and all(present[p] for p in products)
    details["products_present"] = {p: present[p] for p in products}
    return _outcome(ours=shares, verdict=REPRODUCED if ok else NOT_REPRODUCED, details=details)


def _table1_reps(R: _Results, regime: str) -> dict[str, Any] | None:
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
        out = [_int(x) for x in v]
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
    table = None if so is None or mo is None else _paired_table((km, n, ""), (ks, n, ""), mo[i], so[i])
    if table is not None:
        return list(stats.paired_difference_interval(*table, CONFIDENCE)), "paired"
    return list(stats.newcombe_interval(km, n, ks, n, CONFIDENCE)), "Newcombe"


def _table1_differences(R: _Results) -> tuple[dict, dict, dict, list[str], dict]:
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
        how[r] = {"per_seed": d.tolist(), "seed_interval": _iv(summ["interval"]),
                  "image_intervals": [_iv(iv) for iv, _ in per_seed], "image_method": [h for _, h in per_seed]}
        if rep["k"] < MIN_REPLICATES:
            missing.append(f"table1.{r}.replicates: {rep['k']} seeds, need >= {MIN_REPLICATES}")
            continue
        if any(iv is None for iv, _ in per_seed):
            missing.append(f"table1.{r}.replicates.n/correct (per-seed counts)")
            continue
        ivs[r] = _hull([summ["interval"], *[iv for iv, _ in per_seed]])
    return ours, ivs, ns, missing, how


def _table1_masked(R: _Results) -> dict[str, Any]:
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
    details = {r: {"difference": ours.get(r), "interval": _iv(ivs.get(r)), "verdict": parts[r],
                   **how.get(r, {})} for r in REGIMES}
    return _outcome(ours=ours or None, interval=_hull(list(ivs.values())), n=ns or None,
                    verdict=_combine(list(parts.values())), missing=missing, details=details)


def _paper_ranking() -> list[str]:
    vals = {r: _paper_value("table1", r, "standard") for r in REGIMES}
    return sorted((r for r in REGIMES if vals[r] is not None), key=lambda r: -vals[r])


def _table1_ranking(R: _Results) -> dict[str, Any]:
    """Each pair ordered by the paper: per-seed difference of standard accuracy (seeds paired across regimes:
    replicate i of every regime has seed ``profile.seed + i``); the interval is the hull of the 95% t interval
    over seeds and every seed's 95% Newcombe interval; fewer than :data:`MIN_REPLICATES` seeds: undecided."""
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
                iv = _hull([seed_iv, *img])
                verdict = _sign_verdict(iv, +1)
                det = {"per_seed": d.tolist(), "seed_interval": _iv(seed_iv), "image_intervals": [_iv(x) for x in img]}
            parts.append(verdict)
            details[key] = {"difference": (ours[hi_r] - ours[lo_r]) if hi_r in ours and lo_r in ours else None,
                            "interval": _iv(iv), "verdict": verdict, **det}
    our_order = sorted(ours, key=lambda r: -ours[r])
    details["paper_order"] = [PAPER_LETTERS[r] for r in order]
    details["our_order"] = [PAPER_LETTERS[r] for r in our_order]
    return _outcome(ours=ours or None, interval=None, n=ns or None, verdict=_combine(parts), missing=missing,
                    details=details)


def _shares(R: _Results, kind: str, regime: str) -> np.ndarray | None:
    return R.array("energies", f"{kind}_share", regime)


def _replicates(R: _Results, key: str, regime: str) -> np.ndarray | None:
    return R.array("energies", "replicates", regime, key, ndim=2)


def _low_share(share: np.ndarray) -> np.ndarray:
    """Energy share in the lower half of the radial bands (last axis), low = near DC."""
    half = share.shape[-1] // 2
    return share[..., :half].sum(axis=-1)


def _radial_shift(R: _Results, regime: str) -> tuple[float | None, Any, int | None, list[str], dict]:
    """Δ_low = low-half radial share(regime) - (vanilla): point, t interval over seeds, n seeds, missing."""
    missing, details = [], {}
    point = None
    a, b = _shares(R, "radial", "vanilla"), _shares(R, "radial", regime)
    if a is not None and b is not None and a.shape == b.shape:
        point = float(_low_share(b) - _low_share(a))
    ra, rb = _replicates(R, "radial_share", "vanilla"), _replicates(R, "radial_share", regime)
    if ra is None or rb is None or ra.shape != rb.shape:
        missing.append(f"energies.replicates.{{vanilla,{regime}}}.radial_share (seeds, n_bands), "
                       f">= {MIN_REPLICATES} seeds")
        return point, None, None if point is None else 1, missing, details
    deltas = _low_share(rb) - _low_share(ra)
    summ = stats.replicate_summary(deltas, CONFIDENCE)
    details["per_seed"] = deltas.tolist()
    if summ["n"] < MIN_REPLICATES:
        missing.append(f"energies.replicates: {summ['n']} seeds, need >= {MIN_REPLICATES}")
        return summ["mean"], None, summ["n"], missing, details
    return summ["mean"], summ["interval"], summ["n"], missing, details


def _make_radial(regime: str, sign: int, mode: str = "sign") -> Callable[[_Results], dict[str, Any]]:
    """sign +1: the paper reports a low-frequency bias (Δ_low > 0); -1: a high-frequency bias (Δ_low < 0).
    mode "not_low": the paper reports no clear low-frequency bias (only scale has one)."""

    def evaluate(R: _Results) -> dict[str, Any]:
        point, iv, n, missing, details = _radial_shift(R, regime)
        if mode == "sign":
            verdict = _sign_verdict(iv, sign)
        elif iv is None:
            verdict = INCONCLUSIVE
        else:  # "not_low": contradicted only by a clear low-frequency bias
            verdict = NOT_REPRODUCED if iv[0] > 0 else REPRODUCED
        if iv is None and point is not None:
            details["note"] = "single replicate: the point estimate has no interval"
        return _outcome(ours=point, interval=iv, n=n, verdict=verdict, missing=missing, details=details)

    return evaluate


def _tv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Total-variation distance between share vectors (last axis): the share of energy moved."""
    return 0.5 * np.abs(x - y).sum(axis=-1)


def _anisotropy_one(R: _Results, regime: str) -> tuple[Any, Any, Any, str, list[str], dict]:
    """Direction dependence of the angular redistribution regime - vanilla (see the rule text)."""
    missing, details = [], {}
    a, b = _shares(R, "angular", "vanilla"), _shares(R, "angular", regime)
    point = float(_tv(b, a)) if a is not None and b is not None and a.shape == b.shape else None
    if point is not None:
        details["uncorrected_single_seed_tv"] = point
    ra, rb = _replicates(R, "angular_share", "vanilla"), _replicates(R, "angular_share", regime)
    ia, ib = (_replicates(R, "angular_share_isotropic", "vanilla"),
              _replicates(R, "angular_share_isotropic", regime))
    if any(v is None for v in (ra, rb, ia, ib)) or not (ra.shape == rb.shape == ia.shape == ib.shape):
        missing.append(f"energies.replicates.{{vanilla,{regime}}}.angular_share and angular_share_isotropic "
                       f"(seeds, n_bands), >= {MIN_REPLICATES} seeds")
        return point, None, None if point is None else 1, INCONCLUSIVE, missing, details
    k = ra.shape[0]
    if k < MIN_REPLICATES:
        missing.append(f"energies.replicates: {k} seeds, need >= {MIN_REPLICATES}")
        return point, None, k, INCONCLUSIVE, missing, details
    ca, cb = ra - ia, rb - ib  # direction-dependent part of each mask's angular shares
    observed = _tv(cb, ca)  # per seed
    null = [float(_tv(c[i], c[j])) for c in (ca, cb) for i in range(k) for j in range(i + 1, k)]
    summ = stats.replicate_summary(observed, CONFIDENCE)
    bound = max(null)
    details.update({"per_seed": observed.tolist(), "seed_to_seed_max": bound})
    iv = summ["interval"]
    verdict = REPRODUCED if iv[0] > bound else NOT_REPRODUCED if iv[1] <= bound else INCONCLUSIVE
    return summ["mean"], iv, k, verdict, missing, details


def _make_anisotropy(regimes: Sequence[str]) -> Callable[[_Results], dict[str, Any]]:
    def evaluate(R: _Results) -> dict[str, Any]:
        ours, ivs, ns, parts, missing, details = {}, {}, {}, [], [], {}
        for r in regimes:
            point, iv, n, verdict, miss, det = _anisotropy_one(R, r)
            if point is not None:
                ours[r] = point
            if iv is not None:
                ivs[r] = iv
            if n is not None:
                ns[r] = n
            parts.append(verdict)
            missing += miss
            details[r] = {"interval": _iv(iv), "verdict": verdict, **det}
        one = len(regimes) == 1
        r0 = regimes[0]
        return _outcome(ours=(ours.get(r0) if one else ours or None),
                        interval=(ivs.get(r0) if one else _hull(list(ivs.values()))),
                        n=(ns.get(r0) if one else ns or None), verdict=_combine(parts), missing=missing,
                        details=details)

    return evaluate


def _masks_sparse(R: _Results) -> dict[str, Any]:
    kept = R.array("single_image", "per_image", "kept_fraction", "vanilla")
    mean_m = R.number("single_image", "mask_mean", "vanilla")
    details = {} if mean_m is None else {"mask_mean_lower_bound": mean_m}
    if kept is None or kept.size < 2:
        return _outcome(ours=None, missing=["single_image.per_image.kept_fraction.vanilla (n,): fraction of "
                                            f"entries of each mask above {KEPT_THRESHOLD:g}"], details=details)
    iv = stats.bootstrap_interval(kept, np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence=CONFIDENCE,
                                  seed=BOOTSTRAP_SEED)
    verdict = (REPRODUCED if iv[1] < SPARSE_KEPT_FRACTION else
               NOT_REPRODUCED if iv[0] > SPARSE_KEPT_FRACTION else INCONCLUSIVE)
    return _outcome(ours=float(kept.mean()), interval=iv, n=int(kept.size), verdict=verdict, details=details)


def _table2_selection(R: _Results) -> dict[str, Any]:
    x = R.number("table2", "vanilla", "original")
    xa = R.number("table2", "vanilla", "adversarial")
    missing = [f"table2.vanilla.{k}" for k, v in (("original", x), ("adversarial", xa)) if v is None]
    n = R.count("table2", "vanilla", "n") or _int(R.meta_value("table2", "n_images"))
    ours = {k: v for k, v in (("original", x), ("adversarial", xa)) if v is not None} or None
    if missing:
        verdict = NOT_REPRODUCED if (x is not None and x != 1.0) or (xa is not None and xa != 0.0) else INCONCLUSIVE
        return _outcome(ours=ours, n=n, verdict=verdict, missing=missing)
    return _outcome(ours=ours, n=n, verdict=REPRODUCED if (x == 1.0 and xa == 0.0) else NOT_REPRODUCED)


def _make_table2_cell(column: str, mode: str) -> Callable[[_Results], dict[str, Any]]:
    def evaluate(R: _Results) -> dict[str, Any]:
        ours = R.number("table2", "vanilla", column)
        kn = _accuracy_count(R, "table2", "vanilla", column, "n_images")
        details: dict[str, Any] = {}
        if column == "masked_adversarial":  # for information: the original's binarised masks (not decisive)
            kb = _accuracy_count(R, "table2", "vanilla", "masked_adversarial_binary", "n_images")
            binary = R.number("table2", "vanilla", "masked_adversarial_binary")
            if kb is not None:
                details["masked_adversarial_binary"] = {
                    "accuracy": kb[0] / kb[1], "interval": _iv(stats.wilson_interval(kb[0], kb[1], CONFIDENCE))}
            elif binary is not None:
                details["masked_adversarial_binary"] = {"accuracy": binary, "interval": None}
        if kn is None:
            what = "table2.vanilla." + column if ours is None else f"table2.vanilla.n and correct.{column}"
            return _outcome(ours=ours, missing=[what], details=details)
        k, n, how = kn
        iv = stats.wilson_interval(k, n, CONFIDENCE)
        details["counts"] = {"k": k, "n": n, "from": how}
        if mode == "preserved":
            verdict = (REPRODUCED if iv[0] >= PRESERVED_ACCURACY else
                       NOT_REPRODUCED if iv[1] < PRESERVED_ACCURACY else INCONCLUSIVE)
        else:
            target = _paper_value("table2", "vanilla", column)
            verdict = INCONCLUSIVE if target is None else _includes_verdict(iv, target / 100.0)
        return _outcome(ours=k / n, interval=iv, n=n, verdict=verdict, details=details)

    return evaluate


def _complement_necessary(R: _Results) -> dict[str, Any]:
    km = _accuracy_count(R, "table2", "vanilla", "masked", "n_images")
    kc = _accuracy_count(R, "table2", "vanilla", "complement", "n_images")
    if km is None or kc is None:
        m, c = R.number("table2", "vanilla", "masked"), R.number("table2", "vanilla", "complement")
        return _outcome(ours=None if m is None or c is None else m - c,
                        missing=["table2.vanilla.n and correct{masked, complement}"])
    (k1, n1, _), (k2, n2, _) = km, kc
    table = _paired_table(km, kc, R.count("table2", "vanilla", "discordant", "masked_only"),
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
    return _outcome(ours=k1 / n1 - k2 / n2, interval=iv, n=n1, verdict=_sign_verdict(iv, +1), missing=missing,
                    details={"method": how})


def _low_share_difference(R: _Results, kind: str) -> tuple[np.ndarray | None, str]:
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


def _fig7(R: _Results) -> dict[str, Any]:
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
                                   float(code.mean()), "interval": _iv(civ), "n": int(code.size),
                                   "verdict": _sign_verdict(civ, +1),
                                   "images_with_more_low_share": float(np.mean(code > 0))}
    d, what = _low_share_difference(R, "adversarial_pgd")
    if d is None:
        return _outcome(ours=None, details=details, missing=[what])
    iv = stats.bootstrap_interval(d, np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence=CONFIDENCE,
                                  seed=BOOTSTRAP_SEED)
    details["images_with_more_low_share"] = float(np.mean(d > 0))
    return _outcome(ours=float(d.mean()), interval=iv, n=int(d.size), verdict=_sign_verdict(iv, +1),
                    details=details)


def _texture_proxy(R: _Results) -> dict[str, Any]:
    cm = R.array("single_image", "per_image", "pixel_correlation", "masked")
    cc = R.array("single_image", "per_image", "pixel_correlation", "complement")
    if cm is None or cc is None or cm.shape != cc.shape:
        return _outcome(missing=["single_image.per_image.pixel_correlation{masked, complement} (n,): Pearson "
                                 "correlation of each image x with M(x) and with M^c(x)"])
    k, n = int(np.sum(cm < cc)), int(cm.size)
    iv = stats.wilson_interval(k, n, CONFIDENCE)
    verdict = REPRODUCED if iv[0] > 0.5 else NOT_REPRODUCED if iv[1] < 0.5 else INCONCLUSIVE
    return _outcome(ours=k / n, interval=iv, n=n, verdict=verdict,
                    details={"median_corr_masked": float(np.median(cm)),
                             "median_corr_complement": float(np.median(cc))})


def _n_classes(R: _Results) -> int:
    k = R.count("class_specificity", "n_classes")
    return k if k is not None and k >= 2 else PAPER_N_CLASSES


def _probe_split(R: _Results, part: str) -> int | None:
    """Probe train/test sizes: recorded, else from table3's metadata as fmask.analysis.probe.linear_probe splits
    (n_train = int(n_masks * train_fraction), n_test = n_masks - n_train)."""
    for labels in ("true_labels", "random_labels"):
        n = R.count("table3", labels, f"n_{part}")
        if n is not None:
            return n
    n = R.count("class_specificity", f"n_{part}")
    if n is not None:
        return n
    n_masks = _int(R.meta_value("table3", "n_masks"))
    frac = _num(R.meta_value("table3", "train_fraction"))
    if n_masks is None or frac is None:
        return None
    n_train = int(n_masks * frac)
    return n_train if part == "train" else n_masks - n_train


def _class_specific(R: _Results) -> dict[str, Any]:
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
        k = _recover_count(true_test, n_test)
        iv = None if k is None else stats.wilson_interval(k, n_test, CONFIDENCE)
        return _outcome(ours=ours, interval=iv, n=n_test, verdict=verdict, details=details)
    missing = [f"class_specificity.null_test_accuracy (B,), B >= {MIN_NULL} label permutations"]
    n_test = _probe_split(R, "test")
    k1, k2 = _recover_count(true_test, n_test), _recover_count(shuf_test, n_test)
    if k1 is None or k2 is None:
        missing.append("table3.{true_labels,random_labels}.test and n_test")
        return _outcome(ours=ours, n=n_test, missing=missing, details=details)
    iv = stats.newcombe_interval(k1, n_test, k2, n_test, CONFIDENCE)
    details["method"] = "Newcombe interval of test accuracy, true - shuffled labels (no permutation null recorded)"
    details["true_test"] = true_test
    return _outcome(ours=(k1 - k2) / n_test, interval=iv, n=n_test, verdict=_sign_verdict(iv, +1),
                    missing=missing, details=details)


def _geometry_not_capacity(R: _Results) -> dict[str, Any]:
    train = R.number("table3", "random_labels", "train")
    chance = 1.0 / _n_classes(R)
    n_train = _probe_split(R, "train")
    details: dict[str, Any] = {"chance": chance}
    null = R.array("class_specificity", "null_train_accuracy")
    if null is not None:
        details["null_train_accuracy_mean"] = float(null.mean())
    k = _recover_count(train, n_train)
    if k is None:
        return _outcome(ours=train, n=n_train, details=details,
                        missing=["table3.random_labels.train and n_train"])
    iv = stats.wilson_interval(k, n_train, CONFIDENCE)
    if iv[0] > chance:
        verdict = NOT_REPRODUCED
    else:
        verdict = REPRODUCED if _half_width(iv) <= MAX_HALF_WIDTH else INCONCLUSIVE
    return _outcome(ours=k / n_train, interval=iv, n=n_train, verdict=verdict, details=details)


def _architectures_similar(R: _Results) -> dict[str, Any]:
    """``architectures.items`` (chapter 11, :func:`fmask.experiment.compare.similarity_items`): every item agrees ->
    reproduced; more than half disagree -> not reproduced; otherwise (or any item missing) inconclusive."""
    items = R.get("architectures", "items")
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(i, Mapping) for i in items):
        return _outcome(missing=["architectures.items (list of {item, first, second, agree})"])
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
    return _outcome(ours=agree / n, n=n, verdict=verdict, missing=missing, details=details)


# ------------------------------------------------------------------------------------------- ledger
def _spec(id, claim, paper, rule, chapter, evaluate):  # noqa: A002 - "id" is the schema's field name
    return {"id": id, "claim": claim, "paper": paper, "rule": rule, "chapter": chapter, "evaluate": evaluate}


def _claims() -> list[dict[str, Any]]:
    pv = _paper_value
    t1 = {r: (pv("table1", r, "standard"), pv("table1", r, "masked")) for r in REGIMES}
    t1_diffs = [m - s for s, m in t1.values() if s is not None and m is not None]
    rank = " > ".join(f"{PAPER_LETTERS[r]} {_pct(t1[r][0])}" for r in _paper_ranking())
    half = "lower half of the radial bands (Δ_low = low-half energy share of the mask minus the vanilla mask's)"
    rep = (f"95% Student-t interval over >= {MIN_REPLICATES} seed replicates (seeds paired across regimes) of "
           f"Δ_low")
    return [
        _spec("fig1.blue_shift",
              "Pointwise nonlinearities (softplus, tanh, ReLU, hardtanh) applied to a sinusoid add higher-frequency "
              "components (harmonic distortion, 'blue shift'), and mix two input frequencies (intermodulation) "
              "(Sec. 2.1, Fig. 1).",
              "Fig. 1: spectra gain harmonics; intermodulation products w1±w2, 2w1, 2w2 (Sec. 2.1)",
              "Deterministic: reproduced if each of the four activations leaves more than the identity's share "
              f"(+{SPECTRAL_TOL:g}) of the non-DC energy above the input frequency AND all four intermodulation "
              "products 2f1, 2f2, f1+f2, f2-f1 are present after ReLU; otherwise not reproduced.",
              "01_blue_shift", _blue_shift),
        _spec("table1.masked_matches_standard",
              "The dataset mask minimally alters each network's validation accuracy (Sec. 3.1, Table 1).",
              "masked - standard between {:+.2f} and {:+.2f} points over the five networks (paper Table 1)".format(
                  min(t1_diffs), max(t1_diffs)) if t1_diffs else "paper Table 1",
              f"Per network, over >= {MIN_REPLICATES} training-seed replicates: the hull of the 95% Student-t "
              f"interval over seeds of accuracy(masked) - accuracy(standard) and each seed's 95% interval on the "
              f"same images (paired from the discordant counts; Newcombe independent interval if those are not "
              f"recorded). Reproduced if every network's interval lies within ±{100 * EQUIVALENCE_MARGIN:g} "
              f"points; not reproduced if any lies entirely outside; otherwise (or with fewer seeds) inconclusive.",
              "04_dataset_masks", _table1_masked),
        _spec("table1.accuracy_ranking",
              "Standard validation accuracy ranks the five training regimes as printed in Table 1 (Sec. 3.1).",
              f"{rank} (paper Table 1, 'Standard')",
              f"For each of the 10 pairs ordered by the paper, over >= {MIN_REPLICATES} training-seed replicates "
              "(seeds paired across regimes): the hull of the 95% Student-t interval over seeds of the accuracy "
              "difference and each seed's 95% Newcombe interval. Reproduced if every pair's interval excludes 0 "
              "with the paper's sign; not reproduced if any excludes 0 with the opposite sign; otherwise (or with "
              "fewer seeds) inconclusive.",
              "04_dataset_masks", _table1_ranking),
        _spec("fig4.adversarial_low_frequency",
              "Adversarial training gives the dataset mask a net bias toward low frequencies (Sec. 3.1, Fig. 3 B-A, "
              "Fig. 4 (B-A) radial).",
              "Fig. 4 (B-A)-radial: net low-frequency bias",
              f"Δ_low for B (adversarial) with Δ_low over the {half}. {rep} excludes 0 and is positive -> "
              "reproduced; excludes 0 and is negative -> not reproduced; otherwise inconclusive.",
              "05_energies", _make_radial("adversarial", +1)),
        _spec("fig4.adversarial_direction_dependent",
              "The adversarial redistribution of mask energy is anisotropic, i.e. depends on the direction in "
              "frequency space (Sec. 3.1, Fig. 4 (B-A) angular; abstract).",
              "Fig. 4 (B-A)-angular: anisotropic redistribution",
              "Per seed, the total-variation distance between the direction-dependent angular shares (angular "
              "shares minus those of the ring-averaged, isotropic mask) of B and A. Reproduced if its 95% t "
              f"interval over >= {MIN_REPLICATES} seeds lies above the largest seed-to-seed distance within A or "
              "within B; not reproduced if the interval's upper end is at or below it; otherwise inconclusive.",
              "05_energies", _make_anisotropy(["adversarial"])),
        _spec("fig4.scale_low_frequency",
              "Only scale augmentation endows the network with a bias toward low frequencies (Sec. 3.1, "
              "Fig. 4 (C-A) radial; Sec. 1: scale-augmented models show a low-frequency bias).",
              "Fig. 4 (C-A)-radial: low-frequency bias",
              f"Δ_low for C (scale). {rep} excludes 0 and is positive -> reproduced; excludes 0 and is negative "
              "-> not reproduced; otherwise inconclusive.",
              "05_energies", _make_radial("scale", +1)),
        _spec("fig4.translate_no_clear_bias",
              "Translation augmentation gives a less clear effect, mixed for mid and low frequencies, i.e. no clear "
              "low-frequency bias (Sec. 3.1, Fig. 4 (D-A) radial).",
              "Fig. 4 (D-A)-radial: mixed behaviour for mid and low frequencies",
              f"Δ_low for D (translate). With {rep}: entirely above 0 (a clear low-frequency bias, which the paper "
              "attributes to scale only) -> not reproduced; otherwise reproduced (weak: absence of a bias); "
              f"fewer than {MIN_REPLICATES} seeds -> inconclusive.",
              "05_energies", _make_radial("translate", +1, mode="not_low")),
        _spec("fig4.rotate_high_frequency",
              "Rotation augmentation gives the dataset mask a HIGH-frequency bias (Sec. 3.1: 'Figure 4(E-A)-radial "
              "shows a high frequency bias'; Sec. 1: 'mid-high' frequency bias).",
              "Fig. 4 (E-A)-radial: high-frequency bias",
              f"Δ_low for E (rotate); a high-frequency bias is Δ_low < 0 (the shares sum to 1). {rep} excludes 0 "
              "and is negative -> reproduced; excludes 0 and is positive -> not reproduced; otherwise inconclusive.",
              "05_energies", _make_radial("rotate", -1)),
        _spec("fig4.augmentation_direction_dependent",
              "For scale, translation and rotation augmentation the redistribution of mask frequencies is "
              "direction dependent (Sec. 3.1, Fig. 4 (C-A), (D-A), (E-A) angular).",
              "Fig. 4 (C-A), (D-A), (E-A)-angular: directionally dependent redistribution",
              "The rule of fig4.adversarial_direction_dependent for each of C, D and E against A; reproduced if "
              "all three are, not reproduced if any is not, otherwise inconclusive.",
              "05_energies", _make_anisotropy(["scale", "translate", "rotate"])),
        _spec("fig5.masks_sparse",
              "Single-image masks are very sparse: very few frequencies are essential for the network's "
              "prediction (Sec. 3.2, Fig. 5; Sec. 4).",
              "'the masks are very sparse' (Sec. 3.2; no number printed)",
              f"Mean over images of the fraction of mask entries above {KEPT_THRESHOLD:g} (the paper's threshold "
              f"for M^c), vanilla network, 95% percentile bootstrap (seed {BOOTSTRAP_SEED}). Upper end below "
              f"{100 * SPARSE_KEPT_FRACTION:g}% -> reproduced; lower end above it -> not reproduced; otherwise "
              "inconclusive.",
              "06_single_image_masks", _masks_sparse),
        _spec("table2.selection",
              "The single-image analysis uses correctly classified validation images whose PGD counterparts are "
              "all misclassified (Sec. 3.2, Table 2: x and x_A).",
              f"x {_pct(pv('table2', 'vanilla', 'original'))}, x_A {_pct(pv('table2', 'vanilla', 'adversarial'))} "
              "(paper Table 2)",
              "By construction: reproduced if the vanilla network's accuracy is exactly 100% on x and exactly 0% "
              "on x_A; not reproduced otherwise.",
              "06_single_image_masks", _table2_selection),
        _spec("table2.masked_preserves",
              "Filtering an image with its own mask M_N,x does not alter the network's decision (Sec. 1, "
              "Sec. 3.2, Table 2: M_N,x(x)).",
              f"{_pct(pv('table2', 'vanilla', 'masked'))} (paper Table 2, M_N,x(x))",
              f"95% Wilson interval of the accuracy on M(x): lower end >= {100 * PRESERVED_ACCURACY:g}% -> "
              f"reproduced; upper end below {100 * PRESERVED_ACCURACY:g}% -> not reproduced; otherwise "
              "inconclusive.",
              "06_single_image_masks", _make_table2_cell("masked", "preserved")),
        _spec("table2.complement_drop",
              "Accuracy drops by ~45% on images filtered by the complementary masks M^c_N,x (Sec. 3.2, Table 2).",
              f"{_pct(pv('table2', 'vanilla', 'complement'))} (paper Table 2, M^c_N,x(x))",
              "95% Wilson interval of the accuracy on M^c(x) includes the paper's value and has a half-width of "
              f"at most {100 * MAX_HALF_WIDTH:g} points -> reproduced; excludes it -> not reproduced; otherwise "
              "inconclusive.",
              "06_single_image_masks", _make_table2_cell("complement", "includes")),
        _spec("table2.complement_necessary",
              "The mask's frequencies are not only sufficient but also necessary: accuracy on M^c(x) is below "
              "that on M(x) (Sec. 3.2, second bullet).",
              "M_N,x(x) {} vs M^c_N,x(x) {} (paper Table 2)".format(_pct(pv("table2", "vanilla", "masked")),
                                                                 _pct(pv("table2", "vanilla", "complement"))),
              "95% interval of accuracy(M(x)) - accuracy(M^c(x)) on the same images (paired when the discordant "
              "counts are known or implied, else Newcombe): excludes 0 and is positive -> reproduced; excludes 0 "
              "and is negative -> not reproduced; otherwise inconclusive.",
              "06_single_image_masks", _complement_necessary),
        _spec("table2.attack_reversal",
              "Filtering adversarial examples with the clean image's mask reverses the attack in ~60% of the "
              "samples (Sec. 3.2, Table 2: M_N,x(x_A)).",
              f"{_pct(pv('table2', 'vanilla', 'masked_adversarial'))} (paper Table 2, M_N,x(x_A))",
              "95% Wilson interval of the accuracy on M(x_A) (continuous masks, as the paper describes) includes "
              f"the paper's value and has a half-width of at most {100 * MAX_HALF_WIDTH:g} points -> reproduced; "
              "excludes it -> not reproduced; otherwise inconclusive.",
              "06_single_image_masks", _make_table2_cell("masked_adversarial", "includes")),
        _spec("fig7.adversarial_lower_frequency",
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
        _spec("table3.class_specific",
              "Single-image masks are class specific: a linear classifier separates them by class, unlike "
              "shuffled labels (Sec. 3.2, Table 3, Fig. 8).",
              "test accuracy {} with true labels vs {} with shuffled labels (paper Table 3)".format(
                  _pct(pv("table3", "true_labels", "test")), _pct(pv("table3", "random_labels", "test"))),
              f"With >= {MIN_NULL} label permutations recorded: permutation p-value (+1 correction) of the "
              "true-label test accuracy <= 0.05 -> reproduced, else not reproduced (ours: the true-label test "
              "accuracy, interval: its Wilson interval). Otherwise ours is the test accuracy with true minus "
              "shuffled labels and its 95% Newcombe interval: excludes 0 and is positive -> reproduced; excludes 0 "
              "and is negative -> not reproduced; otherwise inconclusive.",
              "07_class_specificity", _class_specific),
        _spec("table3.geometry_not_capacity",
              "With shuffled labels the linear classifier cannot separate the masks, so their separability is "
              "due to their geometry, not to the representation power of the classifier (Sec. 3.2, Table 3).",
              "training accuracy {} with shuffled labels, chance 20% (paper Table 3)".format(
                  _pct(pv("table3", "random_labels", "train"))),
              f"95% Wilson interval of the shuffled-label TRAINING accuracy: lower end above chance (1/{PAPER_N_CLASSES} "
              "unless the number of classes is recorded) -> not reproduced (the classifier fits arbitrary labels); "
              f"reaches chance with a half-width of at most {100 * MAX_HALF_WIDTH:g} points -> reproduced; "
              "otherwise inconclusive.",
              "07_class_specificity", _geometry_not_capacity),
        _spec("fig5.texture_like",
              "Images filtered by their masks are not recognisable and resemble texture-like patterns, while "
              "complement-filtered images stay recognisable (Sec. 3.2, Fig. 5 bottom; abstract).",
              "qualitative (Fig. 5B, 5C); no number printed",
              "Proxy (the claim itself is visual): share of images whose pixel correlation with M(x) is below "
              "their correlation with M^c(x); 95% Wilson interval above 50% -> reproduced; below 50% -> not "
              "reproduced; otherwise inconclusive.",
              "06_single_image_masks", _texture_proxy),
        _spec("sec2.resnet_similar",
              "ResNet18 gives results qualitatively similar to VGG11 (Sec. 2.2: 'the results produced "
              "qualitatively similar'; only VGG11 is shown).",
              "'qualitatively similar' (Sec. 2.2; no figure or number printed)",
              "Chapter 11's items, computed the same way for the main network and the compare section's second "
              "architecture (one seed each; fmask.experiment.compare.VERDICT_RULE): sign of Δ_low for B, C, D, E; Table 1 "
              "|masked - clean| within compare.verdict_margin for every network; sign of M(X) - M'(X); sign of "
              "M(X_A) - X_A (Table 2 subset). Ours: the share of items on which the two agree. All agree -> "
              "reproduced; more than half disagree -> not reproduced; otherwise inconclusive.",
              "11_architectures", _architectures_similar),
    ]


def _public(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "evaluate"}


#: the ledger's static part (id, claim, paper, rule, chapter), in the paper's order
CLAIMS: tuple[dict[str, Any], ...] = tuple(_public(s) for s in _claims())


def evaluate_claims(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Evaluate every claim on ``results`` (``{name: values}`` or ``{name: {"values", "meta"}}``).

    Returns one dict per claim with the keys :data:`FIELDS` (see the module docstring), in the order of
    :data:`CLAIMS`. Never raises for missing or malformed result entries: those make the claim inconclusive
    and are listed in ``missing``. Raises ``ValueError`` if ``results`` is not a mapping.
    """
    R = _Results(results)
    out = []
    for spec in _claims():
        res = spec["evaluate"](R)
        entry = {k: spec[k] for k in ("id", "claim", "paper")}
        entry.update({"ours": res["ours"], "interval": res["interval"], "n": res["n"], "verdict": res["verdict"],
                      "rule": spec["rule"], "chapter": spec["chapter"], "missing": res["missing"],
                      "details": res["details"]})
        assert entry["verdict"] in VERDICTS, entry
        out.append(entry)
    return out


def write_claims(results_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Evaluate the claims on the result files in ``results_dir`` and write them to ``path`` atomically.

    The file is ``{"claims": [...], "counts": {verdict: number}, "results_dir": str}`` (``results_dir``
    relative to the file's folder, so no machine-local path is written); results are read
    with their metadata (``fmask.experiment.results.load_results(results_dir, with_meta=True)``) so that the sample
    sizes the chapters store there are used. Returns the path written.
    """
    from fmask.experiment.results import NOT_RESULTS, load_results
    from fmask.infra.store import atomic_write_json

    target = Path(path)
    if (target.suffix == ".json" and target.parent.resolve() == Path(results_dir).resolve()
            and target.name not in NOT_RESULTS):
        raise ValueError(f"{target.name} in the results directory {results_dir} would be read back as a result "
                         f"file by fmask.experiment.results.load_results; use one of {sorted(NOT_RESULTS)} or another folder")
    entries = evaluate_claims(load_results(results_dir, with_meta=True))
    counts = {v: sum(e["verdict"] == v for e in entries) for v in VERDICTS}
    rel = os.path.relpath(Path(results_dir).resolve(), target.parent.resolve())
    payload = {"claims": entries, "counts": counts, "results_dir": Path(rel).as_posix()}
    return atomic_write_json(payload, path)
