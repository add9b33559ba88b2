"""Several tests at once: Holm's step-down adjustment across the claims of a run, and the
intersection–union combination of the parts of one claim.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from udl.engine.stats.verdict import Verdict

__all__ = ["holm", "all_of"]


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
        ``evidence`` is ``"deterministic"`` when every part is a deterministic check, else
        ``"statistical"``; ``predictions`` are those of the parts, in part order. When every
        part is deterministic the outcome is PASS or FAIL and ``p_value`` is NaN.
    """
    names = list(parts)
    failing = [k for k in names if parts[k].outcome == "FAIL"]
    if failing:
        outcome = "FAIL"
        decisive = min(failing, key=lambda k: parts[k].detail.get("p_fail", 0.0))
    else:
        outcome = "PASS" if all(parts[k].outcome == "PASS" for k in names) else "INCONCLUSIVE"
        # the weakest statistical part (a deterministic part has no p-value to compare)
        decisive = max(names, key=lambda k: parts[k].p_value if parts[k].evidence == "statistical" else -1.0)
        if outcome == "PASS" and primary is not None:
            decisive = primary
    v = parts[decisive]
    p_fail = min(1.0, len(names) * min(parts[k].detail.get("p_fail", 1.0) for k in names))
    deterministic = all(parts[k].evidence == "deterministic" for k in names)
    statistical = [parts[k].p_value for k in names if parts[k].evidence == "statistical"]
    return Verdict(outcome, v.statistic, f"{v.statistic_name} [{decisive}]", v.interval, v.threshold, n,
                   math.nan if deterministic else max(statistical),
                   {"decisive": decisive, "p_fail": p_fail, "alpha": alpha,
                    "parts": {k: parts[k].to_dict() for k in names}},
                   evidence="deterministic" if deterministic else "statistical",
                   predictions=tuple(p for k in names for p in parts[k].predictions))
