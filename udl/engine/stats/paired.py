"""Paired one-sided tests of per-instance differences: the sign test and the Wilcoxon
signed-rank test.

The Wilcoxon test reports the Hodges–Lehmann shift with the interval obtained by inverting
``scipy.stats.wilcoxon`` over shifts.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np
from scipy import stats as _st

from udl.engine.stats.binomial import rate_test
from udl.engine.stats.verdict import Verdict, check_alpha, check_side, finite_array

__all__ = ["sign_test", "wilcoxon_test", "WALSH_BATCH", "WALSH_ALL", "WILCOXON_EXACT_MAX_N"]

#: Candidate shifts tested per batched scipy.stats.wilcoxon call when inverting the test for
#: the Hodges–Lehmann interval: a 64-ary search needs ≤ 3 rounds for n ≤ 500 and keeps each
#: batch (64 × n values) small.
WALSH_BATCH = 64
#: Up to this many candidate shifts are tested in a single batched call (one round instead of
#: a search): 256 regions cover n ≤ 21 pairs, where the exact test's per-call cost dominates.
WALSH_ALL = 256
#: Largest sample for which the exact signed-rank distribution is used (scipy's own cut-off).
WILCOXON_EXACT_MAX_N = 50


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
    check_side(side, ("greater", "less"))
    d = finite_array(differences, "differences")
    wins = int(np.sum(d > 0) if side == "greater" else np.sum(d < 0))
    untied = int(np.sum(d != 0))
    extra = {"ties": int(d.size - untied), "median_difference": float(np.median(d)),
             "mean_difference": float(np.mean(d))}
    if untied == 0:
        return Verdict("INCONCLUSIVE", math.nan, name, (0.0, 1.0), 0.5, d.size, 1.0,
                       {"successes": 0, "trials": 0, "side": side, "alpha": alpha, "p_fail": 1.0, **extra})
    verdict = rate_test(wins, untied, 0.5, alpha=alpha, side="greater", name=name, detail=extra)
    return replace(verdict, n=d.size)


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
    check_side(side, ("greater", "less"))
    alpha = check_alpha(alpha)
    d = finite_array(differences, "differences")
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
