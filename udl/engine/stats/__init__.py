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

Deterministic checks and degenerate samples
-------------------------------------------
- An exact (algebraic) consequence is decided by :func:`deterministic_check`: PASS when every
  value is within the tolerance (a stated rounding budget), FAIL otherwise, never
  INCONCLUSIVE; its verdict has ``evidence="deterministic"``, a NaN p-value, and stays out of
  the Holm family. Every other rule gives ``evidence="statistical"``.
- A rule that estimates a spread (:func:`mean_test`, :func:`slope_test`) raises
  :class:`DegenerateSampleError` when n >= 2 instances have zero spread (identical values, or
  points exactly on a line) instead of returning a zero-width interval; the claim ends in ERROR.
- A verdict may carry :class:`Prediction` s (:func:`prediction`: the theory's value against the
  estimate and its interval, contained or not); a claim reports :class:`Hypothesis` es
  (:func:`hypothesis`) per cell. Neither decides anything.

Modules
-------
- :mod:`~udl.engine.stats.verdict`: :class:`Verdict`, :func:`classify`, the shared argument checks.
- :mod:`~udl.engine.stats.binomial`: :func:`clopper_pearson`, :func:`rate_test`.
- :mod:`~udl.engine.stats.paired`: :func:`sign_test`, :func:`wilcoxon_test`.
- :mod:`~udl.engine.stats.means`: :func:`mean_test`, :func:`slope_test`, :func:`group_slopes`.
- :mod:`~udl.engine.stats.identity`: :func:`identity_test`.
- :mod:`~udl.engine.stats.deterministic`: :func:`deterministic_check`.
- :mod:`~udl.engine.stats.predictions`: :class:`Prediction`, :func:`prediction`, :class:`Hypothesis`,
  :func:`hypothesis`.
- :mod:`~udl.engine.stats.multiple`: :func:`holm`, :func:`all_of`.
- :mod:`~udl.engine.stats.power`: the power and sample-size helpers.

Claims use the names re-exported here (``from udl.engine import stats``; ``stats.rate_test``).
"""

from udl.engine.stats.binomial import clopper_pearson, rate_test
from udl.engine.stats.deterministic import deterministic_check
from udl.engine.stats.identity import identity_test
from udl.engine.stats.means import MIN_SLOPE_POINTS, group_slopes, mean_test, slope_test
from udl.engine.stats.multiple import all_of, holm
from udl.engine.stats.paired import WALSH_ALL, WALSH_BATCH, WILCOXON_EXACT_MAX_N, sign_test, wilcoxon_test
from udl.engine.stats.power import (N_MAX, binomial_n, binomial_power, identity_n, sign_test_n, t_test_n,
                                    t_test_power)
from udl.engine.stats.predictions import HYPOTHESIS_SIDES, Hypothesis, Prediction, hypothesis, prediction
from udl.engine.stats.verdict import EVIDENCE, OUTCOMES, SIDES, DegenerateSampleError, Verdict, classify, to_builtin

__all__ = [
    "OUTCOMES",
    "SIDES",
    "EVIDENCE",
    "Verdict",
    "DegenerateSampleError",
    "deterministic_check",
    "Prediction",
    "prediction",
    "Hypothesis",
    "hypothesis",
    "HYPOTHESIS_SIDES",
    "classify",
    "to_builtin",
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
    "MIN_SLOPE_POINTS",
    "N_MAX",
    "WALSH_ALL",
    "WALSH_BATCH",
    "WILCOXON_EXACT_MAX_N",
]
