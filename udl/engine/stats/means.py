"""t-based decisions: the one-sample mean test and the OLS slope test (and per-group slopes)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _st

from udl.engine.stats.verdict import (Verdict, check_alpha, check_side, classify, degenerate_verdict, finite_array,
                                      has_zero_spread)

__all__ = ["mean_test", "slope_test", "group_slopes", "MIN_SLOPE_POINTS"]

#: Fewest points for an OLS slope with a t interval: n − 2 ≥ 1 degrees of freedom.
MIN_SLOPE_POINTS = 3


def _t_pvalue_above(estimate: float, null: float, se: float, df: float) -> float:
    """One-sided p-value of H0: θ ≤ null against θ > null for a t statistic."""
    if se == 0.0:
        return 0.0 if estimate > null else 1.0
    return float(_st.t.sf((estimate - null) / se, df))


def _t_verdict(estimate: float, se: float, df: float, *, threshold: float, alpha: float, side: str,
               margin: float | None, name: str, n: int, detail: dict) -> Verdict:
    alpha = check_alpha(alpha)
    check_side(side)
    if has_zero_spread(se, estimate):  # no interval: FAIL on a common counterexample, else an error
        return degenerate_verdict(estimate, threshold=threshold, side=side, margin=margin, name=name, n=n,
                                  detail={"alpha": alpha, "standard_error": float(se), "df": float(df),
                                          **({} if margin is None else {"margin": float(margin)}), **detail})
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

    Raises
    ------
    DegenerateSampleError
        The values have zero spread (up to rounding) and their common value is not on the
        failing side; on the failing side the verdict is FAIL (:func:`degenerate_verdict`).
    """
    v = finite_array(values, "values")
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

    Raises
    ------
    DegenerateSampleError
        The points lie exactly on a line (zero residual spread up to rounding) with a slope not
        on the failing side; on the failing side the verdict is FAIL (:func:`degenerate_verdict`).
    """
    xs, ys = finite_array(x, "x"), finite_array(y, "y")
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
