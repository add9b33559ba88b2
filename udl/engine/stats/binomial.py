"""Exact binomial decisions: Clopper–Pearson bounds and the one-sided rate test."""

from __future__ import annotations

import functools

from scipy import stats as _st

from udl.engine.stats.verdict import Verdict, check_alpha, check_side, classify, opposite

__all__ = ["clopper_pearson", "rate_test"]


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
    alpha = check_alpha(alpha)
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
    check_side(side, ("greater", "less"))
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"rate threshold must be in (0, 1), got {threshold!r}")
    interval = clopper_pearson(successes, n, alpha)
    p_pass = _st.binomtest(int(successes), int(n), threshold, alternative=side).pvalue
    p_fail = _st.binomtest(int(successes), int(n), threshold, alternative=opposite(side)).pvalue
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
