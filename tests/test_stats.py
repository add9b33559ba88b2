"""Decision rules of udl.engine.stats on synthetic data with known answers, and calibration."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from udl.engine import stats
from udl.engine.stats import Verdict

#: Confidence of the Clopper–Pearson intervals used to judge Monte-Carlo rates in the
#: calibration tests: 99.9% keeps a correct rule from failing the test by chance (once in a
#: thousand seeds; the seeds are fixed, so the tests are deterministic anyway).
CALIBRATION_ALPHA = 0.0005


def test_holm_hand_computed_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_ties_and_edge_cases():
    np.testing.assert_allclose(stats.holm([0.5, 0.5, 0.9]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(stats.holm([0.02]), [0.02])
    assert stats.holm([]).size == 0
    with pytest.raises(ValueError):
        stats.holm([0.1, float("nan")])


@pytest.mark.parametrize("interval, threshold, side, margin, expected", [
    ((0.6, 0.9), 0.5, "greater", None, "PASS"),
    ((0.1, 0.4), 0.5, "greater", None, "FAIL"),
    ((0.4, 0.6), 0.5, "greater", None, "INCONCLUSIVE"),
    ((0.5, 0.6), 0.5, "greater", None, "INCONCLUSIVE"),
    ((0.1, 0.4), 0.5, "less", None, "PASS"),
    ((0.6, 0.9), 0.5, "less", None, "FAIL"),
    ((-math.inf, 0.4), 0.5, "less", None, "PASS"),
    ((0.95, 1.05), 1.0, "equal", 0.1, "PASS"),
    ((1.2, 1.3), 1.0, "equal", 0.1, "FAIL"),
    ((0.6, 0.8), 1.0, "equal", 0.1, "FAIL"),
    ((0.85, 1.05), 1.0, "equal", 0.1, "INCONCLUSIVE"),
])
def test_classify(interval, threshold, side, margin, expected):
    assert stats.classify(interval, threshold, side, margin) == expected


@pytest.mark.parametrize("k, n", [(0, 7), (3, 10), (37, 100), (100, 100), (1, 1000)])
def test_clopper_pearson_matches_scipy_exact_interval(k, n):
    ci = st.binomtest(k, n).proportion_ci(confidence_level=0.98, method="exact")
    assert stats.clopper_pearson(k, n, 0.01) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)


def test_clopper_pearson_closed_forms():
    n, alpha = 10, 0.01
    assert stats.clopper_pearson(0, n, alpha) == pytest.approx((0.0, 1 - alpha ** (1 / n)))
    assert stats.clopper_pearson(n, n, alpha) == pytest.approx((alpha ** (1 / n), 1.0))
    lo, hi = stats.clopper_pearson(3, 10, alpha)
    assert st.binom.sf(2, 10, lo) == pytest.approx(alpha)  # P(X >= 3 | lo) = alpha
    assert st.binom.cdf(3, 10, hi) == pytest.approx(alpha)


@pytest.mark.parametrize("k, n, threshold, side, expected", [
    (20, 20, 0.5, "greater", "PASS"),
    (16, 20, 0.5, "greater", "PASS"),   # p = 0.0059
    (15, 20, 0.5, "greater", "INCONCLUSIVE"),
    (2, 20, 0.5, "greater", "FAIL"),
    (0, 100, 0.05, "less", "PASS"),
    (5, 100, 0.05, "less", "INCONCLUSIVE"),
    (40, 100, 0.05, "less", "FAIL"),
])
def test_rate_test_known_answers(k, n, threshold, side, expected):
    verdict = stats.rate_test(k, n, threshold, side=side)
    assert verdict.outcome == expected
    assert verdict.statistic == k / n and verdict.n == n
    assert verdict.p_value == pytest.approx(st.binomtest(k, n, threshold, alternative=side).pvalue)


@pytest.mark.parametrize("n, threshold, side", [(20, 0.5, "greater"), (37, 0.8, "greater"), (50, 0.1, "less")])
def test_rate_test_interval_and_pvalue_agree(n, threshold, side):
    """PASS by the interval <=> p <= alpha, FAIL <=> p_fail <= alpha, for every k."""
    for k in range(n + 1):
        verdict = stats.rate_test(k, n, threshold, side=side)
        assert (verdict.outcome == "PASS") == (verdict.p_value <= 0.01)
        assert (verdict.outcome == "FAIL") == (verdict.detail["p_fail"] <= 0.01)


def test_sign_test_counts_wins_and_drops_ties():
    d = np.r_[np.ones(16), -np.ones(4), np.zeros(3)]
    verdict = stats.sign_test(d)
    assert verdict.outcome == "PASS" and verdict.statistic == 0.8
    assert verdict.n == 23 and verdict.detail["ties"] == 3 and verdict.detail["trials"] == 20
    assert stats.sign_test(-d, side="less").outcome == "PASS"
    assert stats.sign_test(-d).outcome == "FAIL"
    assert stats.sign_test(np.zeros(5)).outcome == "INCONCLUSIVE"
    with pytest.raises(ValueError):
        stats.sign_test([1.0, np.nan])


def test_wilcoxon_test_known_answers():
    rng = np.random.default_rng(1)
    assert stats.wilcoxon_test(rng.normal(1.0, 1.0, 40)).outcome == "PASS"
    assert stats.wilcoxon_test(rng.normal(-1.0, 1.0, 40)).outcome == "FAIL"
    assert stats.wilcoxon_test(rng.normal(-1.0, 1.0, 40), side="less").outcome == "PASS"
    assert stats.wilcoxon_test(rng.normal(0.0, 1.0, 6)).outcome == "INCONCLUSIVE"  # too few pairs
    assert stats.wilcoxon_test(np.zeros(8)).outcome == "INCONCLUSIVE"


def test_wilcoxon_interval_is_the_test_inverted():
    rng = np.random.default_rng(2)
    d = rng.normal(0.5, 1.0, 30)
    verdict = stats.wilcoxon_test(d, alpha=0.05)
    lo, hi = verdict.interval
    walsh = [(a + b) / 2 for i, a in enumerate(d) for b in d[i:]]
    assert verdict.statistic == pytest.approx(np.median(walsh))
    assert lo < verdict.statistic < hi
    step = 1e-9
    assert stats.wilcoxon_test(d, threshold=lo - step, alpha=0.05).outcome == "PASS"
    assert stats.wilcoxon_test(d, threshold=lo + step, alpha=0.05).outcome != "PASS"
    assert stats.wilcoxon_test(d, threshold=hi + step, alpha=0.05).outcome == "FAIL"
    assert stats.wilcoxon_test(d, threshold=hi - step, alpha=0.05).outcome != "FAIL"


@pytest.mark.parametrize("side, threshold, margin, expected", [
    ("greater", 0.0, None, "PASS"), ("greater", 2.0, None, "FAIL"), ("greater", 1.0, None, "INCONCLUSIVE"),
    ("less", 2.0, None, "PASS"), ("equal", 1.0, 0.5, "PASS"), ("equal", 3.0, 0.5, "FAIL"),
    ("equal", 1.0, 0.01, "INCONCLUSIVE"),
])
def test_mean_test_known_answers(side, threshold, margin, expected):
    values = np.random.default_rng(3).normal(1.0, 0.5, 50)
    verdict = stats.mean_test(values, threshold=threshold, side=side, margin=margin)
    assert verdict.outcome == expected
    ci = st.ttest_1samp(values, threshold).confidence_interval(confidence_level=0.98)
    assert verdict.interval == pytest.approx((ci.low, ci.high))


@pytest.mark.parametrize("side, threshold, margin, expected", [
    ("less", 3.0, None, "PASS"), ("less", 1.0, None, "FAIL"), ("greater", 1.0, None, "PASS"),
    ("equal", 2.0, 0.5, "PASS"), ("equal", 5.0, 0.5, "FAIL"), ("less", 2.0, None, "INCONCLUSIVE"),
])
def test_slope_test_known_answers(side, threshold, margin, expected):
    x = np.arange(12.0)
    y = 2.0 * x + np.random.default_rng(4).normal(0.0, 0.3, x.size)
    verdict = stats.slope_test(x, y, threshold=threshold, side=side, margin=margin, n=4)
    assert verdict.outcome == expected and verdict.n == 4
    fit = st.linregress(x, y)
    half = st.t.ppf(0.99, x.size - 2) * fit.stderr
    assert verdict.interval == pytest.approx((fit.slope - half, fit.slope + half))


def test_slope_test_rejects_degenerate_input():
    with pytest.raises(ValueError):
        stats.slope_test([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], threshold=1.0)
    with pytest.raises(ValueError):
        stats.slope_test([1.0, 2.0], [1.0, 2.0], threshold=1.0)


def test_group_slopes_recovers_per_instance_slopes():
    table = pd.DataFrame({"instance": np.repeat(np.arange(3), 5), "x": np.tile(np.arange(5.0), 3)})
    table["y"] = table["x"] * (table["instance"] + 1) + 7.0
    slopes = stats.group_slopes(table, "x", "y")
    np.testing.assert_allclose(slopes.to_numpy(), [1.0, 2.0, 3.0])
    assert list(slopes.index) == [0, 1, 2]


def test_identity_test():
    assert stats.identity_test(np.full(90, 0.5), max_rate=0.05).outcome == "PASS"
    assert stats.identity_test(np.full(89, 0.5), max_rate=0.05).outcome == "INCONCLUSIVE"
    ratios = np.r_[np.full(500, 0.5), 1.5]
    verdict = stats.identity_test(ratios, max_rate=0.05)
    assert verdict.outcome == "FAIL" and verdict.detail["worst_ratio"] == 1.5
    assert stats.identity_test([0.1, np.nan] * 100, max_rate=0.05).outcome == "FAIL"


def test_power_helpers_match_the_decision_rules():
    n, p0, p1 = 40, 0.5, 0.8
    exact = sum(st.binom.pmf(k, n, p1) for k in range(n + 1)
                if stats.rate_test(k, n, p0).outcome == "PASS")
    assert stats.binomial_power(n, p0, p1) == pytest.approx(exact)
    exact_less = sum(st.binom.pmf(k, 60, 0.01) for k in range(61)
                     if stats.rate_test(k, 60, 0.1, side="less").outcome == "PASS")
    assert stats.binomial_power(60, 0.1, 0.01, side="less") == pytest.approx(exact_less)


def test_sample_size_helpers_are_minimal():
    n = stats.binomial_n(0.5, 0.8, alpha=0.01, beta=0.05)
    assert stats.binomial_power(n, 0.5, 0.8) >= 0.95 > stats.binomial_power(n - 1, 0.5, 0.8)
    assert stats.sign_test_n(0.8) == n
    assert stats.identity_n(0.05, alpha=0.01) == math.ceil(math.log(0.01) / math.log(0.95))
    m = stats.t_test_n(0.5, 1.0, alpha=0.01, beta=0.05)
    assert stats.t_test_power(m, 0.5, 1.0) >= 0.95 > stats.t_test_power(m - 1, 0.5, 1.0)
    with pytest.raises(ValueError):
        stats.binomial_n(0.5, 0.4)


def test_t_test_n_delivers_its_power():
    """At n = t_test_n, mean_test PASSES with probability ≈ 1 − β (Monte Carlo)."""
    n, trials = stats.t_test_n(0.5, 1.0, alpha=0.01, beta=0.2), 400
    data = np.random.default_rng(5).normal(0.5, 1.0, (trials, n))
    passes = sum(stats.mean_test(row, threshold=0.0).outcome == "PASS" for row in data)
    lo, hi = stats.clopper_pearson(passes, trials, CALIBRATION_ALPHA)
    assert lo <= stats.t_test_power(n, 0.5, 1.0) <= hi


def test_verdict_normalises_and_validates():
    verdict = Verdict("PASS", np.float64(0.5), "x", (np.float32(0.25), 1), 0, np.int64(3), np.float64(0.001),
                      {"a": np.int64(2), "b": (np.float64(1.5), True), "c": np.array([1, 2])})
    assert type(verdict.statistic) is float and type(verdict.n) is int
    assert verdict.detail == {"a": 2, "b": [1.5, True], "c": [1, 2]}
    import torch

    tensors = Verdict("PASS", 0.0, "x", (0, 1), 0, 1, 0.5, {"t": torch.tensor(2.5), "v": torch.tensor([1, 2])})
    assert tensors.detail == {"t": 2.5, "v": [1, 2]}
    assert Verdict.from_dict(verdict.to_dict()) == verdict
    with pytest.raises(ValueError):
        Verdict("MAYBE", 0.0, "x", (0, 1), 0, 1, 0.5)
    with pytest.raises(ValueError):
        Verdict("PASS", 0.0, "x", (0, 1), 0, 1, 1.5)
    with pytest.raises(TypeError):
        Verdict("PASS", 0.0, "x", (0, 1), 0, 1, 0.5, {"f": object()})


# --------------------------------------------------------------------------- calibration
def _within(count: int, trials: int, rate: float) -> bool:
    lo, hi = stats.clopper_pearson(count, trials, CALIBRATION_ALPHA)
    return lo <= rate <= hi


@pytest.mark.parametrize("n, threshold", [(20, 0.5), (100, 0.9), (57, 0.3)])
def test_binomial_rules_exact_error_rates_at_the_boundary(n, threshold):
    """Exactly: at rate = threshold, P(FAIL) <= alpha and P(PASS) <= alpha (sign test: 0.5)."""
    alpha = 0.01
    pmf = st.binom.pmf(np.arange(n + 1), n, threshold)
    outcomes = [stats.rate_test(k, n, threshold, alpha=alpha).outcome for k in range(n + 1)]
    false_fail = pmf[[o == "FAIL" for o in outcomes]].sum()
    false_pass = pmf[[o == "PASS" for o in outcomes]].sum()
    assert false_fail <= alpha and false_pass <= alpha
    assert false_fail > alpha / 4  # conservative only through discreteness, not badly


def test_rate_test_false_fail_rate_monte_carlo():
    trials, n, threshold, alpha = 2000, 100, 0.9, 0.05
    outcome = [stats.rate_test(k, n, threshold, alpha=alpha).outcome for k in range(n + 1)]
    counts = np.random.default_rng(6).binomial(n, threshold, trials)
    fails = sum(outcome[k] == "FAIL" for k in counts)
    exact = sum(st.binom.pmf(k, n, threshold) for k in range(n + 1) if outcome[k] == "FAIL")
    assert exact <= alpha and _within(fails, trials, exact)


def test_slope_test_calibrated_at_the_boundary():
    """Normal errors, true slope exactly at the bound: FAIL and PASS rates are each alpha."""
    trials, alpha, x = 800, 0.05, np.linspace(0.0, 1.0, 12)
    noise = np.random.default_rng(7).normal(0.0, 0.2, (trials, x.size))
    outcomes = [stats.slope_test(x, 1.0 * x + e, threshold=1.0, side="less", alpha=alpha).outcome for e in noise]
    assert _within(outcomes.count("FAIL"), trials, alpha)
    assert _within(outcomes.count("PASS"), trials, alpha)


def test_mean_test_calibrated_at_the_boundary():
    trials, alpha = 1000, 0.05
    data = np.random.default_rng(8).normal(0.3, 1.0, (trials, 15))
    outcomes = [stats.mean_test(row, threshold=0.3, side="greater", alpha=alpha).outcome for row in data]
    assert _within(outcomes.count("FAIL"), trials, alpha)
    assert _within(outcomes.count("PASS"), trials, alpha)


def test_wilcoxon_test_calibrated_at_the_boundary():
    """Symmetric differences centred on the threshold: false-FAIL rate ≈ alpha (exact test,
    discrete, so at most alpha)."""
    trials, alpha = 200, 0.05
    data = np.random.default_rng(9).standard_t(3, (trials, 20))
    fails = sum(stats.wilcoxon_test(row, alpha=alpha).outcome == "FAIL" for row in data)
    lo, hi = stats.clopper_pearson(fails, trials, CALIBRATION_ALPHA)
    assert lo <= alpha and hi >= alpha / 2


def test_holm_controls_the_family_wise_error_rate():
    trials, m, alpha = 5000, 5, 0.05
    p = np.random.default_rng(10).uniform(size=(trials, m))
    any_rejection = sum(bool(np.any(stats.holm(row) <= alpha)) for row in p)
    exact = 1 - (1 - alpha / m) ** m  # Holm's FWER under m independent true nulls
    assert _within(any_rejection, trials, exact) and exact <= alpha
