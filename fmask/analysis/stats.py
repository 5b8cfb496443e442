"""Small, dependency-light interval statistics for the claims ledger (:mod:`fmask.claims`).

Everything here works on plain numbers / 1-D arrays and returns plain Python floats, so results go straight
into JSON. Conventions:

* proportions are fractions in [0, 1] (never percent), given as counts ``k`` successes out of ``n``;
* ``confidence`` is the two-sided coverage (default 0.95); intervals are ``(lo, hi)`` tuples;
* anything random takes a ``seed`` and uses its own ``numpy.random.Generator`` (same seed -> same result).

Dependencies: the standard library and numpy; :func:`replicate_summary` needs ``scipy.stats`` for the
Student-t quantile (scipy is always present because scikit-learn, a dependency of fmask, requires it).

Methods (standard references):

* :func:`wilson_interval` -- Wilson (1927) score interval for one proportion; well behaved at k = 0 and k = n
  (unlike the Wald interval, it never collapses to a point).
* :func:`newcombe_interval` -- Newcombe (1998, Stat. Med. 17:873, method 10, "hybrid score") interval for
  the difference of two *independent* proportions, built from the two Wilson intervals.
* :func:`paired_difference_interval` -- Newcombe (1998, Stat. Med. 17:2635, method 10) interval for the
  difference of two proportions measured on the *same* items (e.g. accuracy on x vs on M(x)), from the
  2x2 table of joint outcomes; the two Wilson intervals combined with the observed correlation.
* :func:`bootstrap_interval` -- percentile bootstrap of any statistic of a sample (seeded).
* :func:`replicate_summary` -- mean, sd and Student-t interval of replicates (e.g. one value per seed).
* :func:`replicate_spread` -- the same as a JSON-ready record with the seeds' range and values;
  :func:`spread_text` prints it as ``"mean ± h (min–max)"``.
* :func:`permutation_null_summary` -- p-value of an observed statistic against null samples (e.g. label
  permutations), with the +1 correction of Phipson & Smyth (2010), and the null's central range.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "normal_quantile",
    "wilson_interval",
    "newcombe_interval",
    "paired_difference_interval",
    "bootstrap_interval",
    "replicate_summary",
    "replicate_spread",
    "spread_text",
    "permutation_null_summary",
]


def _check_confidence(confidence: float) -> float:
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        raise ValueError(f"confidence must be a number in (0, 1); got {confidence!r}") from None
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (e.g. 0.95); got {confidence!r}")
    return c


def _check_count(k: Any, n: Any, what: str = "k") -> tuple[int, int]:
    for name, v in ((what, k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an integer count; got {v!r}")
    k, n = int(k), int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1 (no interval for an empty sample); got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"{what} must be in [0, n={n}]; got {k}")
    return k, n


def normal_quantile(confidence: float = 0.95) -> float:
    """The two-sided standard-normal critical value z with P(|Z| <= z) = ``confidence`` (1.959964 for 0.95)."""
    c = _check_confidence(confidence)
    return NormalDist().inv_cdf(0.5 + c / 2.0)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion of ``k`` successes in ``n`` trials.

    ``p = k/n``, ``z`` = :func:`normal_quantile`; centre ``(p + z²/2n) / (1 + z²/n)``, half-width
    ``z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)``. Returns ``(lo, hi)`` in [0, 1]; ``lo = 0`` exactly for
    ``k = 0`` and ``hi = 1`` exactly for ``k = n``. Raises ``ValueError`` for ``n < 1`` or ``k`` outside [0, n].
    """
    k, n = _check_count(k, n)
    z = normal_quantile(confidence)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for ``p1 - p2`` of two independent proportions.

    With Wilson intervals ``(l1, u1)`` of ``p1 = k1/n1`` and ``(l2, u2)`` of ``p2 = k2/n2``:
    ``lo = d - sqrt((p1-l1)² + (u2-p2)²)``, ``hi = d + sqrt((u1-p1)² + (p2-l2)²)``, ``d = p1 - p2``.
    For proportions measured on the same items this ignores their correlation (it is conservative when the
    outcomes are positively correlated, as accuracies of one network on related inputs usually are); use
    :func:`paired_difference_interval` when the joint outcomes are known.
    """
    k1, n1 = _check_count(k1, n1, "k1")
    k2, n2 = _check_count(k2, n2, "k2")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, confidence)
    l2, u2 = wilson_interval(k2, n2, confidence)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lo), min(1.0, hi)


def paired_difference_interval(a: int, b: int, c: int, d: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (paired method 10) for ``p1 - p2`` measured on the same items.

    The 2x2 table of the ``n = a + b + c + d`` items: ``a`` succeed under both conditions, ``b`` under
    condition 1 only, ``c`` under condition 2 only, ``d`` under neither; ``p1 = (a+b)/n``, ``p2 = (a+c)/n``,
    ``p1 - p2 = (b - c)/n``. With Wilson intervals ``(l1, u1)``, ``(l2, u2)`` of the two marginals and the
    correlation ``φ = (ad - bc) / sqrt((a+b)(c+d)(a+c)(b+d))`` (``ad - bc`` replaced by
    ``max(ad - bc - n/2, 0)`` when positive; ``φ = 0`` if a margin is empty), Newcombe (1998, Stat. Med.
    17:2635) gives ``lo = d̂ - sqrt((p1-l1)² - 2φ(p1-l1)(u2-p2) + (u2-p2)²)`` and
    ``hi = d̂ + sqrt((u1-p1)² - 2φ(u1-p1)(p2-l2) + (p2-l2)²)``. With ``φ = 0`` this is
    :func:`newcombe_interval` of the two marginals. Raises ``ValueError`` for negative or non-integer
    counts or an empty table.
    """
    cells = []
    for name, v in (("a", a), ("b", b), ("c", c), ("d", d)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer count; got {v!r}")
        cells.append(int(v))
    a, b, c, d = cells
    n = a + b + c + d
    if n < 1:
        raise ValueError("the 2x2 table is empty (a + b + c + d = 0)")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    if denom == 0:
        phi = 0.0
    else:
        num = a * d - b * c
        if num > 0:
            num = max(num - n / 2.0, 0.0)
        phi = num / math.sqrt(denom)
    diff = p1 - p2
    lo = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = diff + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, lo), min(1.0, hi)


def bootstrap_interval(
    data: Sequence[Any] | np.ndarray,
    statistic: Callable[[np.ndarray], Any] = np.mean,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(data)``, resampling the rows of ``data`` (axis 0).

    ``data``: array-like of shape (n,) or (n, ...) -- rows are resampled together, so paired measurements
    belong in one row. ``statistic`` maps an array of that shape to a scalar. The resampling uses
    ``numpy.random.default_rng(seed)``: the same data, statistic, ``n_resamples`` and ``seed`` give the same
    interval. Returns the ``(1-confidence)/2`` and ``(1+confidence)/2`` percentiles of the resampled
    statistics. Raises ``ValueError`` for fewer than 2 rows, non-finite data or ``n_resamples < 100``.
    """
    c = _check_confidence(confidence)
    x = np.asarray(data, dtype=float)
    if x.ndim < 1 or x.shape[0] < 2:
        raise ValueError(f"bootstrap needs at least 2 observations (rows); got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap data must be finite (no NaN / inf)")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 100:
        raise ValueError(f"n_resamples must be an int >= 100; got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    stats = np.empty(int(n_resamples))
    for i in range(int(n_resamples)):
        stats[i] = float(statistic(x[rng.integers(0, n, size=n)]))
    lo, hi = np.quantile(stats, [(1.0 - c) / 2.0, (1.0 + c) / 2.0])
    return float(lo), float(hi)


def replicate_summary(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Mean ± spread of replicates (e.g. one value per seed) with a Student-t interval for the mean.

    Returns ``{"n", "mean", "sd", "sem", "interval"}``: ``sd`` with ``ddof=1``, ``sem = sd/sqrt(n)``,
    ``interval = mean ± t_{(1+confidence)/2, n-1} · sem``. With a single replicate ``sd``, ``sem`` and
    ``interval`` are ``None`` (no spread can be estimated). Raises ``ValueError`` for no or non-finite values.
    """
    c = _check_confidence(confidence)
    x = np.asarray(values, dtype=float).reshape(-1)
    if x.size == 0:
        raise ValueError("replicate_summary needs at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError("replicate values must be finite (no NaN / inf)")
    n = int(x.size)
    mean = float(x.mean())
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "sem": None, "interval": None}
    from scipy.stats import t as student_t

    sd = float(x.std(ddof=1))
    sem = sd / math.sqrt(n)
    q = float(student_t.ppf(0.5 + c / 2.0, df=n - 1))
    return {"n": n, "mean": mean, "sd": sd, "sem": sem, "interval": (mean - q * sem, mean + q * sem)}


def replicate_spread(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> dict:
    """Mean ± spread over training-seed replicates of one quantity (e.g. a network's accuracy per seed).

    Returns ``{"n", "mean", "sd", "interval", "min", "max", "values"}``: ``interval`` is the Student-t
    interval of the mean over seeds (:func:`replicate_summary`; ``None`` with one seed), ``min``
    / ``max`` the range of the seeds, ``values`` the per-seed values as floats.
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    s = replicate_summary(x, confidence)
    iv = None if s["interval"] is None else [float(s["interval"][0]), float(s["interval"][1])]
    return {"n": s["n"], "mean": s["mean"], "sd": s["sd"], "interval": iv, "min": float(x.min()),
            "max": float(x.max()), "values": [float(v) for v in x]}


def spread_text(spread: Mapping, scale: float = 100.0, digits: int = 1) -> str:
    """A :func:`replicate_spread` as table text: ``"mean ± h (min–max)"`` with ``h`` the half-width of the
    95% t interval over seeds, values times ``scale`` (100: percent); one seed: just the value."""
    f = f"{{:.{int(digits)}f}}"
    mean = f.format(scale * spread["mean"])
    if spread.get("interval") is None:
        return mean
    half = scale * (spread["interval"][1] - spread["interval"][0]) / 2
    return f"{mean} ± {f.format(half)} ({f.format(scale * spread['min'])}–{f.format(scale * spread['max'])})"


def permutation_null_summary(
    observed: float,
    null_samples: Sequence[float] | np.ndarray,
    *,
    alternative: str = "greater",
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Compare an observed statistic with samples from its null distribution (e.g. label permutations).

    ``p = (1 + #{null >= observed}) / (1 + B)`` for ``alternative="greater"`` (``<=`` for ``"less"``;
    ``"two-sided"`` doubles the smaller one-sided p, capped at 1), B = number of null samples. The +1
    counts the observed labelling as one permutation, so p is never 0 and is a valid p-value (Phipson &
    Smyth 2010); the smallest attainable p is ``1/(B+1)``. Returns ``{"observed", "p_value", "n_null",
    "null_mean", "null_range"}``, ``null_range`` = the null's central ``confidence`` percentile range.
    """
    c = _check_confidence(confidence)
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided'; got {alternative!r}")
    try:
        obs = float(observed)
    except (TypeError, ValueError):
        raise ValueError(f"observed must be a number; got {observed!r}") from None
    null = np.asarray(null_samples, dtype=float).reshape(-1)
    if null.size == 0:
        raise ValueError("need at least one null sample")
    if not (math.isfinite(obs) and np.all(np.isfinite(null))):
        raise ValueError("observed value and null samples must be finite")
    b = int(null.size)
    p_greater = (1 + int(np.sum(null >= obs))) / (1 + b)
    p_less = (1 + int(np.sum(null <= obs))) / (1 + b)
    p = {"greater": p_greater, "less": p_less, "two-sided": min(1.0, 2.0 * min(p_greater, p_less))}[alternative]
    lo, hi = np.quantile(null, [(1.0 - c) / 2.0, (1.0 + c) / 2.0])
    return {
        "observed": obs,
        "p_value": float(p),
        "n_null": b,
        "null_mean": float(null.mean()),
        "null_range": (float(lo), float(hi)),
        "alternative": alternative,
    }
