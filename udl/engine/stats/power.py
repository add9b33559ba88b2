"""Power and sample sizes of the decision rules: the n at which a claim that holds with its
declared effect PASSES with probability ≥ 1 − β.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats as _st

from udl.engine.stats.verdict import check_alpha, check_side

__all__ = ["binomial_power", "binomial_n", "sign_test_n", "identity_n", "t_test_power", "t_test_n", "N_MAX"]

#: Upper end of the sample-size searches of the power helpers; beyond this a design is not
#: a unit of this harness (and the search would cost more than a second).
N_MAX = 1_000_000


def binomial_power(n, p0: float, p1: float, *, alpha: float = 0.01, side: str = "greater"):
    """Power of the one-sided exact binomial test used by :func:`~udl.engine.stats.binomial.rate_test`.

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
    alpha = check_alpha(alpha)
    check_side(side, ("greater", "less"))
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
    """Smallest n at which :func:`~udl.engine.stats.binomial.rate_test` PASSES with probability ≥ 1 − β.

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
    """Pairs needed by :func:`~.paired.sign_test` to PASS with probability ≥ 1 − β at a true win rate."""
    return binomial_n(0.5, win_rate, alpha=alpha, beta=beta, side="greater")


def identity_n(max_rate: float, *, alpha: float = 0.01) -> int:
    """Instances needed by :func:`~udl.engine.stats.identity.identity_test` to PASS with zero violations.

    The smallest n with (1 − max_rate)^n ≤ α, from the exact binomial test at true rate 0.
    """
    return binomial_n(max_rate, 0.0, alpha=alpha, beta=0.5, side="less")


def t_test_power(n, effect: float, sd: float, *, alpha: float = 0.01):
    """Power of the one-sided t test in :func:`~.means.mean_test` at a true excess ``effect`` over θ₀.

    Uses the noncentral t distribution (``scipy.stats.nct``) with noncentrality effect·√n/sd.
    """
    alpha = check_alpha(alpha)
    n = np.asarray(n, dtype=float)
    df = n - 1
    power = _st.nct.sf(_st.t.ppf(1 - alpha, df), df, effect * np.sqrt(n) / sd)
    return power if power.ndim else float(power)


def t_test_n(effect: float, sd: float, *, alpha: float = 0.01, beta: float = 0.05) -> int:
    """Smallest n at which a one-sided :func:`~udl.engine.stats.means.mean_test` PASSES with probability ≥ 1 − β.

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
