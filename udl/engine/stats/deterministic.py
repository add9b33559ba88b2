"""Deterministic checks: exact (algebraic) consequences decided against a rounding budget.

An identity that holds exactly in exact arithmetic is not a statistical statement: one value
beyond the floating-point budget is a counterexample, and no number of values within it is
"evidence" with a p-value. :func:`deterministic_check` therefore PASSES when every value is
within the tolerance and FAILS otherwise — never INCONCLUSIVE — and records the worst value,
the tolerance and the stated budget (why that tolerance is the rounding error to expect)
instead of a p-value. Such verdicts stay out of the run's Holm family.
"""

from __future__ import annotations

import math

import numpy as np

from udl.engine.stats.verdict import Verdict

__all__ = ["deterministic_check"]


def deterministic_check(values, *, tolerance, budget: str, name: str = "worst |deviation|") -> Verdict:
    """PASS when every ``|value|`` is within ``tolerance``, FAIL otherwise.

    Parameters
    ----------
    values : array_like
        Deviations from the exact consequence (e.g. ``‖lhs − rhs‖`` per instance, or signed
        differences); compared in absolute value. NaN or inf is a violation.
    tolerance : float or array_like
        Largest allowed ``|value|``: one positive finite number, or one per value (same shape
        as ``values``, e.g. scaled by each instance's conditioning).
    budget : str
        The stated rounding budget: why ``tolerance`` is the floating-point error to expect
        (e.g. ``"64 · eps(float64) · ‖D‖² · T"``); recorded with the verdict.
    name : str
        ``statistic_name`` of the verdict.

    Returns
    -------
    Verdict
        ``evidence="deterministic"``; outcome PASS or FAIL. With one tolerance: statistic the
        worst ``|value|``, threshold the tolerance. With one tolerance per value: statistic the
        worst ``|value| / tolerance``, threshold 1. ``interval`` is the observed range of that
        statistic over the values (not a confidence interval); ``p_value`` is NaN (no test);
        ``n`` the number of values. ``detail``: ``worst_value``, ``worst_tolerance``,
        ``worst_index``, ``worst_ratio``, ``violations``, ``tolerance`` (a scalar tolerance),
        ``budget``.
    """
    v = np.abs(np.asarray(values, dtype=float).ravel())
    if v.size == 0:
        raise ValueError("values is empty")
    if not isinstance(budget, str) or not budget.strip():
        raise ValueError(f"budget must state the rounding budget behind the tolerance, got {budget!r}")
    tol = np.asarray(tolerance, dtype=float)
    scalar = tol.ndim == 0
    tol = np.broadcast_to(tol, v.shape) if scalar else tol.ravel()
    if tol.shape != v.shape:
        raise ValueError(f"tolerance has {tol.size} entries for {v.size} values (allowed: one, or one per value)")
    if not np.all(np.isfinite(tol) & (tol > 0)):
        raise ValueError(f"tolerance must be positive and finite, got {tolerance!r}")
    v = np.where(np.isnan(v), np.inf, v)  # a NaN deviation is a violation, never a pass
    ratios = v / tol
    violations = int(np.sum(v > tol))
    worst = int(np.argmax(ratios))
    statistic = ratios if not scalar else v
    detail = {"worst_value": float(v[worst]), "worst_tolerance": float(tol[worst]), "worst_index": worst,
              "worst_ratio": float(ratios[worst]), "violations": violations, "budget": budget}
    if scalar:
        detail["tolerance"] = float(tol[0])
    return Verdict("FAIL" if violations else "PASS", float(statistic[worst]), name,
                   (float(np.min(statistic)), float(np.max(statistic))), float(tol[0]) if scalar else 1.0,
                   v.size, math.nan, detail, evidence="deterministic")
