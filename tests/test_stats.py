"""fmask.analysis.stats against closed forms, published values and scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fmask.analysis import stats

scipy_stats = pytest.importorskip("scipy.stats")  # a hard dependency of scikit-learn, hence always present

Z95 = stats.normal_quantile(0.95)


def test_normal_quantile():
    assert Z95 == pytest.approx(float(scipy_stats.norm.ppf(0.975)), rel=1e-12)
    assert stats.normal_quantile(0.90) == pytest.approx(float(scipy_stats.norm.ppf(0.95)), rel=1e-12)
    for bad in (0, 1, 1.5, -0.1, "x"):
        with pytest.raises(ValueError):
            stats.normal_quantile(bad)


def test_wilson_closed_forms_at_the_edges_and_the_middle():
    n = 10
    a = Z95 ** 2 / n
    # k = 0: [0, a/(1+a)];  k = n: [1/(1+a), 1];  k = n/2: 1/2 ± (z/(1+a)) sqrt(1/(4n) + z²/(4n²))
    assert stats.wilson_interval(0, n) == (0.0, pytest.approx(a / (1 + a)))
    assert stats.wilson_interval(n, n) == (pytest.approx(1 / (1 + a)), 1.0)
    half = Z95 / (1 + a) * math.sqrt(1 / (4 * n) + Z95 ** 2 / (4 * n * n))
    lo, hi = stats.wilson_interval(5, n)
    assert lo == pytest.approx(0.5 - half) and hi == pytest.approx(0.5 + half)
    # the published 4-digit values for 0/10, 5/10, 10/10 (e.g. Newcombe 1998, Stat. Med. 17:857, Table I)
    assert stats.wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert stats.wilson_interval(5, 10)[0] == pytest.approx(0.2366, abs=1e-4)
    assert stats.wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (3, 10), (5, 10), (10, 10), (112, 128), (1353, 1973)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(k, n, confidence):
    ci = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = stats.wilson_interval(k, n, confidence)
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


@pytest.mark.parametrize("k,n", [(-1, 10), (11, 10), (1, 0), (1.5, 10), (True, 10), (1, "10")])
def test_wilson_rejects_bad_counts(k, n):
    with pytest.raises(ValueError):
        stats.wilson_interval(k, n)


def test_newcombe_matches_published_examples_and_its_definition():
    # Newcombe (1998), Stat. Med. 17:873, Table II, method 10: 56/70 - 48/80 and 9/10 - 3/10
    assert stats.newcombe_interval(56, 70, 48, 80) == (pytest.approx(0.0524, abs=1e-4), pytest.approx(0.3339, abs=1e-4))
    assert stats.newcombe_interval(9, 10, 3, 10) == (pytest.approx(0.1705, abs=1e-4), pytest.approx(0.8090, abs=1e-4))
    # definition from the two Wilson intervals
    k1, n1, k2, n2 = 30, 128, 128, 128
    l1, u1 = stats.wilson_interval(k1, n1)
    l2, u2 = stats.wilson_interval(k2, n2)
    d = k1 / n1 - k2 / n2
    lo, hi = stats.newcombe_interval(k1, n1, k2, n2)
    assert lo == pytest.approx(d - math.hypot(k1 / n1 - l1, u2 - k2 / n2))
    assert hi == pytest.approx(d + math.hypot(u1 - k1 / n1, k2 / n2 - l2))
    # antisymmetric under swapping the groups
    lo2, hi2 = stats.newcombe_interval(k2, n2, k1, n1)
    assert (lo2, hi2) == (pytest.approx(-hi), pytest.approx(-lo))


def test_paired_difference_interval_definition():
    a, b, c, d = 120, 30, 5, 45
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = stats.wilson_interval(a + b, n)
    l2, u2 = stats.wilson_interval(a + c, n)
    phi = max(a * d - b * c - n / 2, 0) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    lo, hi = stats.paired_difference_interval(a, b, c, d)
    assert lo == pytest.approx(p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    assert hi == pytest.approx(p1 - p2 + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    assert lo < (b - c) / n < hi
    # positively correlated outcomes: narrower than the independent-samples interval of the same marginals
    ilo, ihi = stats.newcombe_interval(a + b, n, a + c, n)
    assert hi - lo < ihi - ilo
    # an empty margin gives phi = 0, i.e. exactly the independent interval
    assert stats.paired_difference_interval(40, 60, 0, 0) == stats.newcombe_interval(100, 100, 40, 100)
    # swapping the conditions mirrors the interval
    assert stats.paired_difference_interval(a, c, b, d) == (pytest.approx(-hi), pytest.approx(-lo))
    for bad in ((-1, 0, 0, 10), (1, 1.0, 0, 1), (0, 0, 0, 0), (True, 0, 0, 1)):
        with pytest.raises(ValueError):
            stats.paired_difference_interval(*bad)


@pytest.mark.parametrize("probs,n", [((0.6, 0.05, 0.02), 200), ((0.2, 0.05, 0.0), 128), ((0.0, 0.77, 0.0), 128)])
def test_paired_difference_interval_coverage(probs, n):
    """Simulated coverage of the true difference is close to the nominal 95% (seeded)."""
    rng = np.random.default_rng(0)
    pa, pb, pc = probs
    hits, trials = 0, 600
    for _ in range(trials):
        u = rng.random(n)
        a = int((u < pa).sum())
        b = int(((u >= pa) & (u < pa + pb)).sum())
        c = int(((u >= pa + pb) & (u < pa + pb + pc)).sum())
        lo, hi = stats.paired_difference_interval(a, b, c, n - a - b - c)
        hits += lo <= pb - pc <= hi
    assert hits / trials >= 0.92


def test_bootstrap_is_seeded_and_close_to_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(0.3, 1.0, size=200)
    a = stats.bootstrap_interval(x, seed=5, n_resamples=4000)
    assert a == stats.bootstrap_interval(x, seed=5, n_resamples=4000)
    assert a != stats.bootstrap_interval(x, seed=6, n_resamples=4000)
    ref = scipy_stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    assert a[0] == pytest.approx(ref.low, abs=0.03) and a[1] == pytest.approx(ref.high, abs=0.03)
    # and both close to the normal-theory interval of a mean
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert a[0] == pytest.approx(x.mean() - Z95 * se, abs=0.03)
    assert a[0] < x.mean() < a[1]


def test_bootstrap_constant_data_rows_and_errors():
    assert stats.bootstrap_interval(np.full(10, 2.5), n_resamples=200) == (2.5, 2.5)
    pairs = np.stack([np.arange(20.0), np.arange(20.0) + 1.0], axis=1)  # rows are resampled together
    assert stats.bootstrap_interval(pairs, lambda r: np.mean(r[:, 1] - r[:, 0]), n_resamples=200) == (1.0, 1.0)
    with pytest.raises(ValueError):
        stats.bootstrap_interval([1.0])
    with pytest.raises(ValueError):
        stats.bootstrap_interval([1.0, float("nan")])
    with pytest.raises(ValueError):
        stats.bootstrap_interval([1.0, 2.0], n_resamples=10)


def test_replicate_summary_t_interval():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    s = stats.replicate_summary(x)
    assert s["n"] == 5 and s["mean"] == pytest.approx(3.0)
    assert s["sd"] == pytest.approx(math.sqrt(2.5)) and s["sem"] == pytest.approx(math.sqrt(2.5 / 5))
    ref = scipy_stats.t.interval(0.95, df=4, loc=3.0, scale=math.sqrt(2.5 / 5))
    assert s["interval"] == (pytest.approx(ref[0]), pytest.approx(ref[1]))
    one = stats.replicate_summary([0.7])
    assert one == {"n": 1, "mean": 0.7, "sd": None, "sem": None, "interval": None}
    with pytest.raises(ValueError):
        stats.replicate_summary([])
    with pytest.raises(ValueError):
        stats.replicate_summary([1.0, float("inf")])


def test_permutation_null_summary():
    null = np.linspace(0.1, 0.3, 99)
    s = stats.permutation_null_summary(0.9, null)
    assert s["p_value"] == pytest.approx(1 / 100) and s["n_null"] == 99
    assert s["null_range"] == (pytest.approx(np.quantile(null, 0.025)), pytest.approx(np.quantile(null, 0.975)))
    assert s["null_mean"] == pytest.approx(0.2)
    assert stats.permutation_null_summary(0.0, null)["p_value"] == 1.0
    # ties count against the observed value
    assert stats.permutation_null_summary(0.5, [0.5, 0.5, 0.1])["p_value"] == pytest.approx(3 / 4)
    assert stats.permutation_null_summary(0.0, null, alternative="less")["p_value"] == pytest.approx(1 / 100)
    assert stats.permutation_null_summary(0.9, null, alternative="two-sided")["p_value"] == pytest.approx(2 / 100)
    with pytest.raises(ValueError):
        stats.permutation_null_summary(0.5, [])
    with pytest.raises(ValueError):
        stats.permutation_null_summary(0.5, [0.1], alternative="bigger")
