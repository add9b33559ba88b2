"""Identities and deterministic bounds, decided from per-instance error ratios."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from udl.engine.stats.binomial import rate_test
from udl.engine.stats.verdict import Verdict

__all__ = ["identity_test"]


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
        upper bound is below it (n ≥ :func:`~udl.engine.stats.power.identity_n`).
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
    return replace(verdict, outcome=outcome)
