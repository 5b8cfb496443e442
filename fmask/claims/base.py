"""Shared ground of the claims ledger: verdicts, the decision constants, read access to results, and
the helpers every rule uses (counts, intervals, verdicts, the paper's printed values).

Each rule module (:mod:`~fmask.claims.blue_shift`, :mod:`~fmask.claims.table1`, :mod:`~fmask.claims.energies`,
:mod:`~fmask.claims.single_image`, :mod:`~fmask.claims.table2`, :mod:`~fmask.claims.table3`,
:mod:`~fmask.claims.architectures`) builds on this module; :mod:`~fmask.claims.evaluation` applies them.

Inputs
------
``results`` maps result names to their ``values`` (``fmask.experiment.results.load_results(d)``) or to full records
(``load_results(d, with_meta=True)``: ``{"values", "meta"}``); with records, sample sizes are also read from
the metadata the chapters store (``table1`` ``n_val``, ``table2`` ``n_images``, ``table3``
``n_masks``/``train_fraction``). A count ``k`` is recovered from an accuracy ``f`` and its ``n`` only when
``f·n`` is within 0.01 of an integer (accuracies are computed as k/n). Explicitly recorded counts always
take precedence.

Quantities each claim reads (``<result name>.<key>``; checked at save and load by
:mod:`fmask.experiment.records`)::

    blue_shift       shifted_fraction{act}, intermodulation.products_present{2f1,2f2,f1+f2,f2-f1}
    table1[regime]   standard, masked (fractions); n, correct{standard,masked} (ints),
                     discordant{standard_only, masked_only} (ints: images right on x only / on M(x) only;
                       with the correct counts they give the 2x2 table of a paired interval);
                     replicates{seed, standard, masked, n, correct{..}, discordant{..}}: lists over the
                       training-seed replicates (row i = seed profile.seed + i for every regime); the two
                       Table 1 claims need >= MIN_REPLICATES of them (top-level entries: replicate 0)
    energies         n_bands, radial_share{regime} (n_bands,), angular_share{regime} (n_bands,);
                     replicates{regime}{radial_share, angular_share, angular_share_isotropic}
                       (seeds, n_bands) each, row i = seed i for every regime (seeds paired across regimes;
                       "isotropic" = angular shares of the mask after averaging it over rings of equal
                       radius, to remove the square grid's own angular structure)
    table2[vanilla]  adversarial, masked, complement, masked_adversarial; original (acc. on x);
                     n, correct{original, adversarial, masked, complement, masked_adversarial},
                     discordant{masked_only, complement_only} (M(x) vs M^c(x), same images)
    single_image     mask_mean, dominance_adversarial_vs_vanilla{radial},
                     dominance_adversarial_pgd_vs_vanilla{radial} (M_A,X_A vs M_N,X: the paper's Fig. 7);
                     per_image{kept_fraction{vanilla} (n,), low_share{vanilla, adversarial, adversarial_pgd} (n,),
                       pixel_correlation{masked, complement} (n,), paired_indices (m,): the selected images of
                       the adversarial kinds when only m < n have them}
    table3[labels]   train, test; n_train, n_test
    class_specificity table3; n_classes, null_test_accuracy (B,) and null_train_accuracy (B,):
                     probe accuracies for B >= 99 independent label permutations
"""
from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "REPRODUCED",
    "NOT_REPRODUCED",
    "INCONCLUSIVE",
    "NOT_TESTABLE",
    "CLAIM",
    "CHECK",
    "FIG4_EQUIVALENCE_MARGIN",
    "ARCHITECTURE_PREMISE_POINTS",
    "equivalence_verdict",
    "VERDICTS",
    "FIELDS",
    "RESULT_NAMES",
    "MIN_REPLICATES",
    "MIN_NULL",
    "paper_value",
    "Results",
]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
#: a statement the book cannot measure as the paper makes it (the rule says why); never counted
NOT_TESTABLE = "not testable as stated"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)
#: what an entry of the ledger is: a ``claim`` could have come out either way; a ``check`` holds by construction
#: or by selection (the objective, the image selection or mathematics makes it true), so it is reported apart and
#: never counted as a reproduction
CLAIM, CHECK = "claim", "check"
FIELDS = ("id", "claim", "paper", "ours", "interval", "n", "verdict", "rule", "chapter", "missing", "details", "kind",
          "why")
#: the result files the rules read (``<name>.json`` in a results directory; schemas in
#: :mod:`fmask.experiment.records`)
RESULT_NAMES = ("blue_shift", "table1", "energies", "table2", "single_image", "table3", "class_specificity",
                "architectures")

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
#: Fig. 4's "no clear bias" (translation): the difference of the low-half share of each mask's top entries
#: (``fmask.analysis.bands.top_fraction_low_share``) to the vanilla mask's lies within ±0.05 -> equivalent
FIG4_EQUIVALENCE_MARGIN = 0.05
#: a second architecture's premise ("comparable performance", Sec. 2): its vanilla accuracy within 5 points
#: of the main network's
ARCHITECTURE_PREMISE_POINTS = 0.05
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
class Results:
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
        return to_float(self.get(name, *keys))

    def count(self, name: str, *keys: str) -> int | None:
        return to_int(self.get(name, *keys))

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


def to_float(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def to_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def recover_count(fraction: float | None, n: int | None) -> int | None:
    """k from an accuracy k/n and n, if f·n is (numerically) an integer in [0, n]; else None."""
    if fraction is None or n is None or n < 1:
        return None
    kf = fraction * n
    k = int(round(kf))
    return k if abs(kf - k) < 0.01 and 0 <= k <= n else None


def accuracy_count(R: Results, table: str, row: str, column: str, meta_n: str | None) -> tuple[int, int, str] | None:
    """(k, n, how) for an accuracy cell: recorded counts, else fraction × n (n recorded or in the metadata)."""
    n = R.count(table, row, "n")
    k = R.count(table, row, "correct", column)
    if n is not None and k is not None and 0 <= k <= n and n >= 1:
        return k, n, "recorded counts"
    how = "recorded n"
    if n is None and meta_n is not None:
        n = to_int(R.meta_value(table, meta_n))
        how = f"metadata {meta_n}"
    k = recover_count(R.number(table, row, column), n)
    if k is None or n is None:
        return None
    return k, n, f"fraction x {how}"


def paired_table(c1: tuple[int, int, str], c2: tuple[int, int, str], only1: int | None,
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


def half_width(iv: Sequence[float]) -> float:
    return (iv[1] - iv[0]) / 2.0


def as_interval(iv: Sequence[float] | None) -> list[float] | None:
    return None if iv is None else [float(iv[0]), float(iv[1])]


def sign_verdict(iv: Sequence[float] | None, sign: int) -> str:
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


def includes_verdict(iv: Sequence[float] | None, target: float) -> str:
    """Interval includes the paper's value and is precise -> reproduced; excludes it -> not reproduced."""
    if iv is None:
        return INCONCLUSIVE
    if not iv[0] <= target <= iv[1]:
        return NOT_REPRODUCED
    return REPRODUCED if half_width(iv) <= MAX_HALF_WIDTH else INCONCLUSIVE


def equivalence_verdict(iv: Sequence[float] | None, margin: float) -> str:
    """"No effect" with an equivalence margin fixed in advance: the interval inside [-margin, margin] ->
    reproduced; entirely outside it (a clear effect) -> not reproduced; otherwise inconclusive."""
    if iv is None:
        return INCONCLUSIVE
    lo, hi = float(iv[0]), float(iv[1])
    if -margin <= lo and hi <= margin:
        return REPRODUCED
    if lo > margin or hi < -margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """All parts reproduced -> reproduced; any part not reproduced -> not reproduced; else inconclusive."""
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def hull(ivs: Sequence[Sequence[float] | None]) -> list[float] | None:
    ivs = [iv for iv in ivs if iv is not None]
    if not ivs:
        return None
    return [float(min(iv[0] for iv in ivs)), float(max(iv[1] for iv in ivs))]


def outcome(ours=None, interval=None, n=None, verdict=INCONCLUSIVE, missing=(), details=None) -> dict[str, Any]:
    return {"ours": ours, "interval": as_interval(interval), "n": n, "verdict": verdict, "missing": list(missing),
            "details": dict(details or {})}


# --------------------------------------------------------------------------------------- paper values
@functools.lru_cache(maxsize=1)
def _paper_entries() -> tuple[tuple[str, str, str, float | None], ...]:
    from fmask.experiment.results import paper_values

    return tuple((e["table"], str(e["row"]), str(e["column"]), None if e["value"] is None else float(e["value"]))
                 for e in paper_values())


def paper_value(table: str, row: str, column: str) -> float | None:
    """The paper's printed value (percent) of a Table 1-3 cell, from fmask/paper_values.yaml."""
    for t, r, c, v in _paper_entries():
        if (t, r, c) == (table, row, column):
            return v
    return None




def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:g}%"



def spec(id, claim, paper, rule, chapter, evaluate, *, kind=CLAIM, why=None):  # noqa: A002 - schema's field name
    """One entry: its static text (``id``, ``claim``, ``paper``, ``rule``, ``chapter``), its rule
    ``evaluate(Results) -> outcome``, and its ``kind``: :data:`CLAIM` (could have come out either way) or
    :data:`CHECK` (holds by construction or selection; ``why`` says which, and it is never counted)."""
    if kind not in (CLAIM, CHECK):
        raise ValueError(f"kind must be {CLAIM!r} or {CHECK!r}, got {kind!r}")
    if (kind == CHECK) != bool(why):
        raise ValueError(f"{id}: a check needs `why` (what makes it hold), a claim has none")
    return {"id": id, "claim": claim, "paper": paper, "rule": rule, "chapter": chapter, "evaluate": evaluate,
            "kind": kind, "why": why}
