"""Statistical decision rules behind every verdict.

Every rule here turns measurements from independent instances into a :class:`Verdict`
with three-valued logic. A claim says that a statistic θ lies on one *side* of a
*threshold* θ₀ (``side="greater"``: θ > θ₀, ``side="less"``: θ < θ₀) or, for a predicted
value, inside an equivalence region θ₀ ± margin (``side="equal"``).

Conventions (the same for every rule)
-------------------------------------
- ``interval`` is ``(L, U)`` where L is the one-sided (1 − α) lower confidence bound and U the
  one-sided (1 − α) upper confidence bound of θ; together a central (1 − 2α) interval.
- **PASS** when the interval lies entirely on the claim's side of the threshold (L > θ₀ for
  ``greater``), **FAIL** when it lies entirely on the other side (U < θ₀), **INCONCLUSIVE**
  when it straddles θ₀ (too little data or an effect too small to call).
- ``p_value`` is the one-sided p-value against H0 "the claim does not hold" (θ ≤ θ₀ for
  ``greater``); PASS ⇔ p ≤ α. ``detail["p_fail"]`` is the p-value against H0 "the claim
  holds"; FAIL ⇔ p_fail ≤ α.
- Hence at the boundary θ = θ₀ the false-FAIL rate and the false-PASS rate are each at most α
  (exactly α for continuous statistics; at most α for the discrete binomial/sign tests).
  A claim that holds with at least its declared effect PASSES with probability ≥ 1 − β when
  n comes from the power helpers (:func:`binomial_n`, :func:`sign_test_n`,
  :func:`identity_n`, :func:`t_test_n`).
- A run Holm-adjusts the p-values of its m claims (:func:`holm`): a PASS survives only when its
  p-value is small against α/m for the most significant claim, so design n for a p-value well
  below α/m (≈ α/20), not just below α.
- For ``side="equal"`` (two one-sided tests, TOST): PASS when the interval lies inside
  [θ₀ − margin, θ₀ + margin], FAIL when it lies entirely outside, else INCONCLUSIVE.

Everything is built on :mod:`scipy.stats`; no distribution is written by hand.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from scipy import stats as _st

__all__ = [
    "OUTCOMES",
    "SIDES",
    "Verdict",
    "classify",
    "clopper_pearson",
    "rate_test",
    "sign_test",
    "wilcoxon_test",
    "mean_test",
    "slope_test",
    "group_slopes",
    "identity_test",
    "all_of",
    "holm",
    "binomial_power",
    "binomial_n",
    "sign_test_n",
    "identity_n",
    "t_test_power",
    "t_test_n",
]

OUTCOMES = ("PASS", "FAIL", "INCONCLUSIVE")
SIDES = ("greater", "less", "equal")

#: Candidate shifts tested per batched scipy.stats.wilcoxon call when inverting the test for
#: the Hodges–Lehmann interval: a 64-ary search needs ≤ 3 rounds for n ≤ 500 and keeps each
#: batch (64 × n values) small.
WALSH_BATCH = 64
#: Up to this many candidate shifts are tested in a single batched call (one round instead of
#: a search): 256 regions cover n ≤ 21 pairs, where the exact test's per-call cost dominates.
WALSH_ALL = 256
#: Fewest points for an OLS slope with a t interval: n − 2 ≥ 1 degrees of freedom.
MIN_SLOPE_POINTS = 3
#: Upper end of the sample-size searches of the power helpers; beyond this a design is not
#: a unit of this harness (and the search would cost more than a second).
N_MAX = 1_000_000


# --------------------------------------------------------------------------- verdict type
def _builtin(value):
    """Return ``value`` with numpy/torch scalars and arrays and tuples as JSON-able builtins."""
    if isinstance(value, dict):
        return {str(k): _builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_builtin(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_builtin(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # e.g. a 0-d torch tensor
        return _builtin(value.item())
    if hasattr(value, "tolist"):  # e.g. a torch tensor
        return _builtin(value.tolist())
    raise TypeError(f"detail value {value!r} of type {type(value).__name__} is not JSON-serialisable")


@dataclass(frozen=True)
class Verdict:
    """Outcome of one statistical decision (before the run's Holm adjustment).

    Parameters
    ----------
    outcome : {"PASS", "FAIL", "INCONCLUSIVE"}
    statistic : float
        The decisive statistic.
    statistic_name : str
        E.g. ``"log-log slope"``, ``"win rate"``, ``"worst ratio"``.
    interval : tuple of float
        ``(L, U)`` confidence bounds of the statistic (±inf allowed for one-sided).
    threshold : float
        What the interval is compared against.
    n : int
        Independent instances behind the decision.
    p_value : float
        Raw one-sided p-value against H0 "the claim does not hold" (small ⇒ PASS).
    detail : dict
        Extra JSON-serialisable numbers (sub-tests, effect sizes); numpy scalars are
        converted to Python builtins.
    """

    outcome: str
    statistic: float
    statistic_name: str
    interval: tuple[float, float]
    threshold: float
    n: int
    p_value: float
    detail: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {OUTCOMES}")
        interval = tuple(float(v) for v in self.interval)
        if len(interval) != 2:
            raise ValueError(f"interval must have two ends, got {self.interval!r}")
        p_value = float(self.p_value)
        if not (math.isnan(p_value) or 0.0 <= p_value <= 1.0):
            raise ValueError(f"p_value {p_value!r} is not in [0, 1]")
        if int(self.n) < 0:
            raise ValueError(f"n must be >= 0, got {self.n!r}")
        object.__setattr__(self, "statistic", float(self.statistic))
        object.__setattr__(self, "statistic_name", str(self.statistic_name))
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "p_value", p_value)
        object.__setattr__(self, "detail", _builtin(dict(self.detail)))

    def to_dict(self) -> dict:
        """Return the verdict as a JSON-serialisable dict (interval as a two-element list)."""
        return {
            "outcome": self.outcome,
            "statistic": self.statistic,
            "statistic_name": self.statistic_name,
            "interval": list(self.interval),
            "threshold": self.threshold,
            "n": self.n,
            "p_value": self.p_value,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "interval": tuple(data["interval"])})


# --------------------------------------------------------------------------- helpers
def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    return alpha


def _check_side(side: str, allowed=SIDES) -> str:
    if side not in allowed:
        raise ValueError(f"side must be one of {allowed}, got {side!r}")
    return side


def _opposite(side: str) -> str:
    return {"greater": "less", "less": "greater"}[side]


def _finite_array(values, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError(f"{what} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or inf (a simulation bug, not a statistic)")
    return array


def classify(interval: tuple[float, float], threshold: float, side: str = "greater",
             margin: float | None = None) -> str:
    """Three-valued decision of an interval against a threshold.

    Parameters
    ----------
    interval : tuple of float
        ``(L, U)`` one-sided (1 − α) confidence bounds.
    threshold : float
        θ₀.
    side : {"greater", "less", "equal"}
        Where the claim puts θ: above θ₀, below θ₀, or within ``θ₀ ± margin``.
    margin : float, optional
        Half-width of the equivalence region; required for ``side="equal"``.

    Returns
    -------
    str
        ``"PASS"``, ``"FAIL"`` or ``"INCONCLUSIVE"``.
    """
    lo, hi = (float(v) for v in interval)
    _check_side(side)
    if side == "equal":
        if margin is None or not margin > 0:
            raise ValueError("side='equal' needs a margin > 0")
        low_edge, high_edge = threshold - margin, threshold + margin
        if low_edge < lo and hi < high_edge:
            return "PASS"
        if hi < low_edge or lo > high_edge:
            return "FAIL"
        return "INCONCLUSIVE"
    if side == "less":
        lo, hi, threshold = -hi, -lo, -threshold
    if lo > threshold:
        return "PASS"
    if hi < threshold:
        return "FAIL"
    return "INCONCLUSIVE"


# --------------------------------------------------------------------------- binomial
def clopper_pearson(successes: int, n: int, alpha: float = 0.01) -> tuple[float, float]:
    """Clopper–Pearson bounds of a binomial proportion.

    Parameters
    ----------
    successes, n : int
        Observed successes out of ``n`` trials.
    alpha : float
        Each end is a one-sided (1 − α) exact bound (a central 1 − 2α interval).

    Returns
    -------
    tuple of float
        ``(lower, upper)``; 0 and 1 are attained at ``successes = 0`` and ``= n``.
    """
    alpha = _check_alpha(alpha)
    successes, n = int(successes), int(n)
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes}/{n}")
    return _exact_bounds(successes, n, alpha)


@functools.lru_cache(maxsize=4096)
def _exact_bounds(successes: int, n: int, alpha: float) -> tuple[float, float]:
    # The Clopper–Pearson bounds are beta quantiles; this equals
    # binomtest(k, n).proportion_ci(1 - 2α, method="exact") (tested) but that root-finds and
    # costs ~20× more, which the calibration tests and power searches feel.
    lower = 0.0 if successes == 0 else _st.beta.ppf(alpha, successes, n - successes + 1)
    upper = 1.0 if successes == n else _st.beta.isf(alpha, successes + 1, n - successes)
    return float(lower), float(upper)


def rate_test(successes: int, n: int, threshold: float, *, alpha: float = 0.01,
              side: str = "greater", name: str = "success rate", detail: dict | None = None) -> Verdict:
    """One-sided exact binomial test of a rate against a threshold.

    Parameters
    ----------
    successes, n : int
        Instances on which the event happened, out of ``n`` independent instances.
    threshold : float
        Rate θ₀ in (0, 1) the claim compares with.
    alpha : float
        Level of each one-sided decision.
    side : {"greater", "less"}
        The claim is rate > θ₀ (``greater``) or rate < θ₀ (``less``).
    name : str
        ``statistic_name`` of the verdict.
    detail : dict, optional
        Extra numbers merged into the verdict's detail.

    Returns
    -------
    Verdict
        Statistic k/n, Clopper–Pearson interval, ``p_value`` from
        ``scipy.stats.binomtest(k, n, θ₀, alternative=side)``.
    """
    _check_side(side, ("greater", "less"))
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"rate threshold must be in (0, 1), got {threshold!r}")
    interval = clopper_pearson(successes, n, alpha)
    p_pass = _st.binomtest(int(successes), int(n), threshold, alternative=side).pvalue
    p_fail = _st.binomtest(int(successes), int(n), threshold, alternative=_opposite(side)).pvalue
    return Verdict(
        outcome=classify(interval, threshold, side),
        statistic=successes / n,
        statistic_name=name,
        interval=interval,
        threshold=threshold,
        n=n,
        p_value=p_pass,
        detail={"successes": int(successes), "trials": int(n), "side": side, "alpha": alpha,
                "p_fail": float(p_fail), **(detail or {})},
    )


def sign_test(differences, *, alpha: float = 0.01, side: str = "greater",
              name: str = "win rate") -> Verdict:
    """Paired one-sided sign test.

    Parameters
    ----------
    differences : array_like
        Per-instance paired differences d_i (e.g. ``err_lasso - err_ls``).
    alpha : float
        Level of each one-sided decision.
    side : {"greater", "less"}
        The claim is that d is typically positive (``greater``) or negative (``less``).
    name : str
        ``statistic_name`` of the verdict.

    Returns
    -------
    Verdict
        Statistic: the win rate, the fraction of non-tied pairs on the claim's side, tested
        against 1/2 with an exact binomial test; ties (d = 0) are dropped and counted in
        ``detail["ties"]``. ``n`` is the number of pairs.
    """
    _check_side(side, ("greater", "less"))
    d = _finite_array(differences, "differences")
    wins = int(np.sum(d > 0) if side == "greater" else np.sum(d < 0))
    untied = int(np.sum(d != 0))
    extra = {"ties": int(d.size - untied), "median_difference": float(np.median(d)),
             "mean_difference": float(np.mean(d))}
    if untied == 0:
        return Verdict("INCONCLUSIVE", math.nan, name, (0.0, 1.0), 0.5, d.size, 1.0,
                       {"successes": 0, "trials": 0, "side": side, "alpha": alpha, "p_fail": 1.0, **extra})
    verdict = rate_test(wins, untied, 0.5, alpha=alpha, side="greater", name=name, detail=extra)
    return _replace(verdict, n=d.size)


def _replace(verdict: Verdict, **changes) -> Verdict:
    return Verdict(**{**verdict.__dict__, **changes})


# --------------------------------------------------------------------------- Wilcoxon
def _walsh_averages(d: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(d.size)
    return np.sort((d[i] + d[j]) / 2.0)


def _first_true(predicate: Callable[[np.ndarray], np.ndarray], size: int) -> int:
    """Index of the first True of a monotone (False…False True…True) batched predicate.

    Returns ``size`` when every entry is False. ``predicate`` receives an index array and
    returns a boolean array; it is called on ≤ ``WALSH_BATCH`` indices at a time.
    """
    lo, hi = 0, size  # answer in [lo, hi]
    while lo < hi:
        candidates = np.unique(np.linspace(lo, hi - 1, min(WALSH_BATCH, hi - lo)).round().astype(int))
        truth = np.asarray(predicate(candidates), dtype=bool)
        first = np.flatnonzero(truth)
        if first.size:
            hi = int(candidates[first[0]])
            lo = int(candidates[first[0] - 1]) + 1 if first[0] > 0 else lo
        else:
            lo = int(candidates[-1]) + 1
    return lo


#: Largest sample for which the exact signed-rank distribution is used (scipy's own cut-off).
WILCOXON_EXACT_MAX_N = 50


def _p_greater(rows: np.ndarray) -> np.ndarray:
    """One-sided (greater) signed-rank p-value of each row, in one batched scipy call.

    The method is chosen explicitly: the exact null distribution when no row has zeros or
    tied magnitudes (and n ≤ 50), else the normal approximation with tie correction. Left to
    "auto", scipy falls back to a permutation test on ties, which takes seconds per row.
    """
    rows = np.atleast_2d(rows)
    mags = np.sort(np.abs(rows), axis=-1)
    tied = bool((mags == 0).any() or (np.diff(mags, axis=-1) == 0).any())
    method = "asymptotic" if tied or rows.shape[-1] > WILCOXON_EXACT_MAX_N else "exact"
    return np.atleast_1d(_st.wilcoxon(rows, axis=-1, alternative="greater", method=method).pvalue)


def _wilcoxon_bounds(d: np.ndarray, alpha: float) -> tuple[float, float]:
    """Hodges–Lehmann (1 − α) bounds by inverting ``scipy.stats.wilcoxon`` over shifts c.

    Between consecutive distinct Walsh averages the shifted sample d − c has no zeros and no
    new ties, and the one-sided p-values are monotone in c; the bounds are the Walsh averages
    at which they cross α. The "less" p-value of d − c is the "greater" p-value of c − d.
    """
    walsh = np.unique(_walsh_averages(d))
    # region r = (walsh[r-1], walsh[r]); region 0 is below all, region len(walsh) above all
    points = np.concatenate([[walsh[0] - 1.0], (walsh[:-1] + walsh[1:]) / 2.0, [walsh[-1] + 1.0]])
    if points.size <= WALSH_ALL:  # every region in one call
        p = _p_greater(np.concatenate([d[None, :] - points[:, None], points[:, None] - d[None, :]]))
        above, below = p[:points.size] > alpha, p[points.size:] <= alpha
        k = int(np.argmax(above)) if above.any() else points.size
        j = int(np.argmax(below)) if below.any() else points.size
    else:  # a k-ary search over the monotone p-values
        k = _first_true(lambda idx: _p_greater(d[None, :] - points[idx][:, None]) > alpha, points.size)
        j = _first_true(lambda idx: _p_greater(points[idx][:, None] - d[None, :]) <= alpha, points.size)
    # lower bound: end of the last region whose shift is still significantly exceeded
    lower = -math.inf if k == 0 else float(walsh[k - 1])
    # upper bound: start of the first region significantly above the sample
    upper = math.inf if j == points.size else float(walsh[max(j, 1) - 1])
    return lower, upper


def wilcoxon_test(differences, *, threshold: float = 0.0, alpha: float = 0.01,
                  side: str = "greater", name: str = "Hodges-Lehmann shift") -> Verdict:
    """Paired one-sided Wilcoxon signed-rank test of a location shift.

    Parameters
    ----------
    differences : array_like
        Per-instance paired differences d_i.
    threshold : float
        Shift θ₀ the location is compared with (0: "d is positive").
    alpha : float
        Level of each one-sided decision.
    side : {"greater", "less"}
        The claim is location(d) > θ₀ or < θ₀.
    name : str
        ``statistic_name`` of the verdict.

    Returns
    -------
    Verdict
        Statistic: the Hodges–Lehmann estimate (median of the Walsh averages); interval from
        inverting the test; ``p_value`` from ``scipy.stats.wilcoxon(d − θ₀,
        alternative=side)``; detail holds the rank-biserial effect size (signed: positive
        when d lies above θ₀) and the win rate.
    """
    _check_side(side, ("greater", "less"))
    alpha = _check_alpha(alpha)
    d = _finite_array(differences, "differences")
    centred = d - threshold
    estimate = float(np.median(_walsh_averages(d)))
    nonzero = centred[centred != 0]
    extra = {"side": side, "alpha": alpha, "ties": int(d.size - nonzero.size),
             "median_difference": float(np.median(d)), "mean_difference": float(np.mean(d)),
             "win_rate": float(np.mean(centred > 0) if side == "greater" else np.mean(centred < 0))}
    if nonzero.size == 0:
        return Verdict("INCONCLUSIVE", estimate, name, (estimate, estimate), threshold, d.size, 1.0,
                       {**extra, "p_fail": 1.0, "rank_biserial": 0.0})
    p_up, p_down = _p_greater(np.stack([centred, -centred]))  # "greater" and "less" p-values
    p_pass, p_fail = (float(p_up), float(p_down)) if side == "greater" else (float(p_down), float(p_up))
    ranks = _st.rankdata(np.abs(nonzero))
    rank_biserial = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    outcome = "PASS" if p_pass <= alpha else "FAIL" if p_fail <= alpha else "INCONCLUSIVE"
    return Verdict(outcome, estimate, name, _wilcoxon_bounds(d, alpha), threshold, d.size, p_pass,
                   {**extra, "p_fail": p_fail, "rank_biserial": rank_biserial})


# --------------------------------------------------------------------------- t-based
def _t_pvalue_above(estimate: float, null: float, se: float, df: float) -> float:
    """One-sided p-value of H0: θ ≤ null against θ > null for a t statistic."""
    if se == 0.0:
        return 0.0 if estimate > null else 1.0
    return float(_st.t.sf((estimate - null) / se, df))


def _t_verdict(estimate: float, se: float, df: float, *, threshold: float, alpha: float, side: str,
               margin: float | None, name: str, n: int, detail: dict) -> Verdict:
    alpha = _check_alpha(alpha)
    _check_side(side)
    quantile = float(_st.t.ppf(1.0 - alpha, df))
    interval = (estimate - quantile * se, estimate + quantile * se)
    above = lambda null: _t_pvalue_above(estimate, null, se, df)  # noqa: E731
    below = lambda null: _t_pvalue_above(-estimate, -null, se, df)  # noqa: E731
    if side == "equal":
        if margin is None or not margin > 0:
            raise ValueError("side='equal' needs a margin > 0")
        low_edge, high_edge = threshold - margin, threshold + margin
        p_pass = max(above(low_edge), below(high_edge))
        p_fail = min(below(low_edge), above(high_edge))
    elif side == "greater":
        p_pass, p_fail = above(threshold), below(threshold)
    else:
        p_pass, p_fail = below(threshold), above(threshold)
    extra = {"side": side, "alpha": alpha, "standard_error": float(se), "df": float(df), "p_fail": p_fail}
    if margin is not None:
        extra["margin"] = float(margin)
    return Verdict(classify(interval, threshold, side, margin), estimate, name, interval, threshold, n,
                   p_pass, {**extra, **detail})


def mean_test(values, *, threshold: float, alpha: float = 0.01, side: str = "greater",
              margin: float | None = None, name: str = "mean") -> Verdict:
    """One-sample t test of a mean against a bound or a predicted value.

    Parameters
    ----------
    values : array_like
        One number per independent instance (e.g. per-instance fitted slopes).
    threshold : float
        Bound θ₀, or the predicted value for ``side="equal"``.
    alpha : float
        Level of each one-sided decision.
    side : {"greater", "less", "equal"}
        Claim: mean > θ₀, mean < θ₀, or mean within θ₀ ± margin (TOST).
    margin : float, optional
        Equivalence half-width for ``side="equal"``.
    name : str
        ``statistic_name`` of the verdict.

    Returns
    -------
    Verdict
        Statistic: the sample mean, t interval with n − 1 degrees of freedom.
    """
    v = _finite_array(values, "values")
    if v.size < 2:
        raise ValueError("mean_test needs at least 2 values")
    se = float(np.std(v, ddof=1) / math.sqrt(v.size))  # the standard error of the mean
    return _t_verdict(float(np.mean(v)), se, v.size - 1, threshold=threshold, alpha=alpha, side=side,
                      margin=margin, name=name, n=v.size, detail={"sd": float(np.std(v, ddof=1))})


def slope_test(x, y, *, threshold: float, alpha: float = 0.01, side: str = "less",
               margin: float | None = None, name: str = "slope", n: int | None = None) -> Verdict:
    """OLS regression slope with a t confidence interval, tested against a bound or a value.

    The points must be independent (e.g. one per instance, or per-instance summaries); for
    a sweep measured on every instance prefer :func:`group_slopes` then :func:`mean_test`.

    Parameters
    ----------
    x, y : array_like
        Regressor and response (e.g. log λ and log error, or e_l and e_{l+1}).
    threshold : float
        Bound (e.g. 1 for a contraction factor) or predicted slope for ``side="equal"``.
    alpha : float
        Level of each one-sided decision.
    side : {"greater", "less", "equal"}
        Claim: slope > θ₀, slope < θ₀, or slope within θ₀ ± margin.
    margin : float, optional
        Equivalence half-width for ``side="equal"``.
    name : str
        ``statistic_name`` of the verdict.
    n : int, optional
        Independent instances behind the fit, reported in the verdict (default: points).

    Returns
    -------
    Verdict
        Statistic: the slope from ``scipy.stats.linregress``; interval slope ± t_{1−α, k−2}·se.
    """
    xs, ys = _finite_array(x, "x"), _finite_array(y, "y")
    if xs.size != ys.size:
        raise ValueError(f"x and y differ in length ({xs.size} != {ys.size})")
    if xs.size < MIN_SLOPE_POINTS or np.ptp(xs) == 0:
        raise ValueError(f"a slope needs >= {MIN_SLOPE_POINTS} points and a non-constant x")
    fit = _st.linregress(xs, ys)
    return _t_verdict(float(fit.slope), float(fit.stderr), xs.size - 2, threshold=threshold, alpha=alpha,
                      side=side, margin=margin, name=name, n=xs.size if n is None else n,
                      detail={"intercept": float(fit.intercept), "r": float(fit.rvalue), "points": xs.size})


def group_slopes(table: pd.DataFrame, x: str, y: str, by: str | list[str] = "instance") -> pd.Series:
    """Per-group OLS slope of ``y`` on ``x`` (vectorised; one slope per instance by default).

    Parameters
    ----------
    table : pandas.DataFrame
        Long table with columns ``x``, ``y`` and ``by``.
    x, y : str
        Column names (take logs before calling for log-log exponents).
    by : str or list of str
        Grouping columns.

    Returns
    -------
    pandas.Series
        Slope per group, indexed by the group keys.
    """
    keys = [by] if isinstance(by, str) else list(by)
    groups = table.groupby(keys, sort=True)
    xc = table[x] - groups[x].transform("mean")
    yc = table[y] - groups[y].transform("mean")
    sums = pd.DataFrame({"xy": xc * yc, "xx": xc * xc}).groupby([table[k] for k in keys], sort=True).sum()
    if (sums["xx"] == 0).any():
        raise ValueError(f"some group has a constant {x!r}; no slope")
    return (sums["xy"] / sums["xx"]).rename("slope")


# --------------------------------------------------------------------------- identity
def identity_test(ratios, *, max_rate: float, alpha: float = 0.01, name: str = "violation rate") -> Verdict:
    """Decide an identity / deterministic bound from per-instance error ratios.

    Parameters
    ----------
    ratios : array_like
        Per-instance error divided by its tolerance (scaled by precision and conditioning);
        a ratio above 1 is a violation.
    max_rate : float
        Largest violation rate still compatible with "holds on every instance up to
        numerical accidents"; with zero violations the claim PASSES once the Clopper–Pearson
        upper bound is below it (n ≥ :func:`identity_n`).
    alpha : float
        Level of the bound.
    name : str
        ``statistic_name`` of the verdict.

    Returns
    -------
    Verdict
        Statistic: violation rate with its Clopper–Pearson interval, threshold ``max_rate``.
        A single violation is a counterexample, so the outcome is FAIL whenever one occurs;
        PASS needs zero violations and enough instances, else INCONCLUSIVE.
        ``detail["worst_ratio"]`` is the largest ratio.
    """
    r = np.asarray(ratios, dtype=float).ravel()
    if r.size == 0:
        raise ValueError("ratios is empty")
    r = np.where(np.isnan(r), np.inf, r)  # a NaN error is a violation, never a pass
    violations = int(np.sum(r > 1.0))
    verdict = rate_test(violations, r.size, max_rate, alpha=alpha, side="less", name=name,
                        detail={"violations": violations, "worst_ratio": float(np.max(r))})
    outcome = "FAIL" if violations else verdict.outcome
    return _replace(verdict, outcome=outcome)


# --------------------------------------------------------------------------- Holm
def holm(p_values: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control).

    Parameters
    ----------
    p_values : iterable of float
        Raw p-values of the family, each in [0, 1].

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order: p̃_(i) = max_{j≤i} min(1, (m − j + 1)·p_(j)).
        Reject hypothesis i at level α iff p̃_i ≤ α.
    """
    p = np.asarray(list(p_values), dtype=float)
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    factors = p.size - np.arange(p.size)
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
    return adjusted


# --------------------------------------------------------------------------- power
def binomial_power(n, p0: float, p1: float, *, alpha: float = 0.01, side: str = "greater"):
    """Power of the one-sided exact binomial test used by :func:`rate_test`.

    Parameters
    ----------
    n : int or array_like of int
        Trials.
    p0 : float
        Threshold θ₀ (the H0 boundary).
    p1 : float
        True rate.
    alpha : float
        Level.
    side : {"greater", "less"}
        Direction of the claim.

    Returns
    -------
    float or numpy.ndarray
        P(PASS) when the true rate is ``p1``.
    """
    alpha = _check_alpha(alpha)
    _check_side(side, ("greater", "less"))
    n = np.asarray(n, dtype=np.int64)
    if side == "greater":  # reject when X >= c, c = smallest k with P(X >= k | p0) <= alpha
        c = _st.binom.isf(alpha, n, p0) + 1
        c = np.where(_st.binom.sf(c - 2, n, p0) <= alpha, c - 1, c)  # guard isf rounding
        power = _st.binom.sf(c - 1, n, p1)
    else:  # reject when X <= c, c = largest k with P(X <= k | p0) <= alpha
        c = _st.binom.ppf(alpha, n, p0)
        c = np.where(_st.binom.cdf(c, n, p0) <= alpha, c, c - 1)
        power = _st.binom.cdf(c, n, p1)
    return power if power.ndim else float(power)


def _smallest_n(power_of: Callable[[np.ndarray], np.ndarray], target: float, n_min: int = 1) -> int:
    start = n_min
    while start <= N_MAX:
        ns = np.arange(start, min(4 * start + 64, N_MAX + 1))
        hit = np.flatnonzero(power_of(ns) >= target)
        if hit.size:
            return int(ns[hit[0]])
        start = int(ns[-1]) + 1
    raise ValueError(f"no n <= {N_MAX} reaches power {target}")


def binomial_n(p0: float, p1: float, *, alpha: float = 0.01, beta: float = 0.05,
               side: str = "greater") -> int:
    """Smallest n at which :func:`rate_test` PASSES with probability ≥ 1 − β.

    Parameters
    ----------
    p0 : float
        Threshold θ₀.
    p1 : float
        Rate assumed true (the smallest effect to detect is |p1 − p0|).
    alpha, beta : float
        Level and miss rate.
    side : {"greater", "less"}
        Direction of the claim; ``p1`` must lie on that side of ``p0``.

    Returns
    -------
    int
        The smallest such n (power is saw-toothed in n for a discrete test; this is the first
        n that reaches the target).
    """
    if (p1 <= p0) if side == "greater" else (p1 >= p0):
        raise ValueError(f"p1={p1} is not on the {side!r} side of p0={p0}")
    return _smallest_n(lambda ns: binomial_power(ns, p0, p1, alpha=alpha, side=side), 1.0 - beta)


def sign_test_n(win_rate: float, *, alpha: float = 0.01, beta: float = 0.05) -> int:
    """Pairs needed by :func:`sign_test` to PASS with probability ≥ 1 − β at a true win rate."""
    return binomial_n(0.5, win_rate, alpha=alpha, beta=beta, side="greater")


def identity_n(max_rate: float, *, alpha: float = 0.01) -> int:
    """Instances needed by :func:`identity_test` to PASS with zero violations.

    The smallest n with (1 − max_rate)^n ≤ α, from the exact binomial test at true rate 0.
    """
    return binomial_n(max_rate, 0.0, alpha=alpha, beta=0.5, side="less")


def t_test_power(n, effect: float, sd: float, *, alpha: float = 0.01):
    """Power of the one-sided t test in :func:`mean_test` at a true excess ``effect`` over θ₀.

    Uses the noncentral t distribution (``scipy.stats.nct``) with noncentrality effect·√n/sd.
    """
    alpha = _check_alpha(alpha)
    n = np.asarray(n, dtype=float)
    df = n - 1
    power = _st.nct.sf(_st.t.ppf(1 - alpha, df), df, effect * np.sqrt(n) / sd)
    return power if power.ndim else float(power)


def t_test_n(effect: float, sd: float, *, alpha: float = 0.01, beta: float = 0.05) -> int:
    """Smallest n at which a one-sided :func:`mean_test` PASSES with probability ≥ 1 − β.

    Parameters
    ----------
    effect : float
        Smallest true distance of the mean from θ₀ on the claim's side (> 0).
    sd : float
        Standard deviation of one instance's value.
    alpha, beta : float
        Level and miss rate.

    Returns
    -------
    int
    """
    if not effect > 0 or not sd > 0:
        raise ValueError("effect and sd must be > 0")
    return _smallest_n(lambda ns: t_test_power(ns, effect, sd, alpha=alpha), 1.0 - beta, n_min=2)


# --------------------------------------------------------------------------- combining
def all_of(parts: dict, *, n: int, alpha: float, primary: str | None = None) -> Verdict:
    """Intersection–union combination of sub-verdicts: the claim holds iff every part holds.

    PASS when every part PASSES (p_value = max of the parts' p, a valid level-α test of the
    conjunction); FAIL when any part FAILS (false-FAIL rate ≤ k·α); else INCONCLUSIVE. The
    statistic and interval are those of the decisive part: the failing part with the smallest
    ``p_fail``, otherwise the part with the largest p_value.

    Parameters
    ----------
    parts : dict name → Verdict.  n : independent instances behind the decision.  alpha : level.
    primary : the part whose statistic is reported when every part PASSES (default: largest p).

    Returns
    -------
    Verdict
    """
    names = list(parts)
    failing = [k for k in names if parts[k].outcome == "FAIL"]
    if failing:
        outcome = "FAIL"
        decisive = min(failing, key=lambda k: parts[k].detail.get("p_fail", 0.0))
    else:
        outcome = "PASS" if all(parts[k].outcome == "PASS" for k in names) else "INCONCLUSIVE"
        decisive = max(names, key=lambda k: parts[k].p_value)
        if outcome == "PASS" and primary is not None:
            decisive = primary
    v = parts[decisive]
    p_fail = min(1.0, len(names) * min(parts[k].detail.get("p_fail", 1.0) for k in names))
    return Verdict(outcome, v.statistic, f"{v.statistic_name} [{decisive}]", v.interval, v.threshold, n,
                   max(parts[k].p_value for k in names),
                   {"decisive": decisive, "p_fail": p_fail, "alpha": alpha,
                    "parts": {k: parts[k].to_dict() for k in names}})
