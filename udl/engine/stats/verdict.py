"""The three-valued verdict of a decision rule, its conventions and its classification.

A claim says that a statistic θ lies on one *side* of a threshold θ₀ (``"greater"``,
``"less"``) or inside θ₀ ± margin (``"equal"``); :func:`classify` decides a confidence
interval against it. The argument checks shared by every rule (level α, side, finite data)
live here too, so that every rule rejects bad input with the same message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from udl.engine.stats.predictions import Prediction

__all__ = ["OUTCOMES", "SIDES", "EVIDENCE", "Verdict", "DegenerateSampleError", "classify", "to_builtin",
           "check_alpha", "check_side", "opposite", "finite_array", "has_zero_spread", "degenerate_verdict",
           "ZERO_SPREAD_RTOL"]

OUTCOMES = ("PASS", "FAIL", "INCONCLUSIVE")
SIDES = ("greater", "less", "equal")
#: What a verdict rests on: a statistical test of independent instances (a confidence interval
#: and a p-value, in the run's Holm family), or a deterministic check of an exact consequence
#: against a stated rounding budget (:func:`~udl.engine.stats.deterministic.deterministic_check`:
#: no p-value, never INCONCLUSIVE, not in the Holm family).
EVIDENCE = ("statistical", "deterministic")
#: A standard error at most this fraction of its estimate is rounding, not sampling spread:
#: averaging n copies of one float leaves ~n ulps behind, 64 ulps covers n up to thousands
#: while any real sample's relative spread is many orders of magnitude larger.
ZERO_SPREAD_RTOL = 64 * float(np.finfo(np.float64).eps)


class DegenerateSampleError(ValueError):
    """A decision would rest on n >= 2 instances with zero spread: they are not independent.

    Raised by the rules that estimate a spread (:func:`~udl.engine.stats.means.mean_test`,
    :func:`~udl.engine.stats.means.slope_test`, through :func:`degenerate_verdict`) instead of
    a PASS or INCONCLUSIVE with a zero-width interval, and by the runner's independence check
    (:mod:`udl.engine.independence`); the runner records the claim as ERROR with this message.
    """


def to_builtin(value):
    """Return ``value`` with numpy/torch scalars and arrays and tuples as JSON-able builtins."""
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_builtin(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # e.g. a 0-d torch tensor
        return to_builtin(value.item())
    if hasattr(value, "tolist"):  # e.g. a torch tensor
        return to_builtin(value.tolist())
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
    evidence : {"statistical", "deterministic"}
        What the verdict rests on (:data:`EVIDENCE`); ``"deterministic"`` only from
        :func:`~udl.engine.stats.deterministic.deterministic_check` (or :func:`all_of` of such).
    predictions : tuple of Prediction
        The theory's predicted values against the measured estimates
        (:func:`~udl.engine.stats.predictions.prediction`); reported, never decided on. Dicts
        (from :meth:`to_dict`) are converted.
    """

    outcome: str
    statistic: float
    statistic_name: str
    interval: tuple[float, float]
    threshold: float
    n: int
    p_value: float
    detail: dict = field(default_factory=dict)
    evidence: str = "statistical"
    predictions: tuple[Prediction, ...] = ()

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {OUTCOMES}")
        if self.evidence not in EVIDENCE:
            raise ValueError(f"evidence {self.evidence!r} is not one of {EVIDENCE}")
        if self.evidence == "deterministic" and self.outcome == "INCONCLUSIVE":
            raise ValueError("a deterministic verdict is PASS or FAIL, never INCONCLUSIVE")
        if isinstance(self.predictions, (Prediction, dict)) or not isinstance(self.predictions, (list, tuple)):
            raise ValueError(f"predictions must be a list or tuple of Prediction, got {self.predictions!r}")
        object.__setattr__(self, "predictions", tuple(Prediction.from_dict(p) for p in self.predictions))
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
        object.__setattr__(self, "detail", to_builtin(dict(self.detail)))

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
            "evidence": self.evidence,
            "predictions": [p.to_dict() for p in self.predictions],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        """Inverse of :meth:`to_dict` (records without ``evidence`` or ``predictions`` read as
        statistical, without predictions)."""
        return cls(**{**data, "interval": tuple(data["interval"])})


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float after checking it is a level in (0, 0.5)."""
    alpha = float(alpha)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    return alpha


def check_side(side: str, allowed=SIDES) -> str:
    """Return ``side`` after checking it is one of ``allowed``."""
    if side not in allowed:
        raise ValueError(f"side must be one of {allowed}, got {side!r}")
    return side


def opposite(side: str) -> str:
    """The other one-sided direction: ``"less"`` for ``"greater"`` and vice versa."""
    return {"greater": "less", "less": "greater"}[side]


def finite_array(values, what: str) -> np.ndarray:
    """Flatten ``values`` (named ``what`` in errors) to a non-empty 1-d float array of finite numbers."""
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError(f"{what} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or inf (a simulation bug, not a statistic)")
    return array


def has_zero_spread(spread: float, scale: float) -> bool:
    """Whether a spread (a standard error) is zero up to rounding relative to ``scale`` (the
    estimate): ``spread <= ZERO_SPREAD_RTOL · |scale|`` (also for a zero or NaN spread)."""
    return not float(spread) > ZERO_SPREAD_RTOL * abs(float(scale))


def degenerate_verdict(value: float, *, threshold: float, side: str, margin: float | None, name: str, n: int,
                       detail: dict) -> Verdict:
    """The verdict of a spread-estimating rule whose n instances all give the same ``value``.

    With zero spread no confidence interval exists. When ``value`` lies on the failing side of
    the claim (outside θ₀ ± margin for ``"equal"``), every instance is the same counterexample:
    FAIL, with the zero-width interval ``(value, value)``, ``p_value`` 1 and ``p_fail`` 0.
    Otherwise (a value on the claim's side, or on the threshold) nothing can be decided.

    Raises
    ------
    DegenerateSampleError
        ``value`` is not on the failing side: a statistical rule never PASSES (nor stays
        INCONCLUSIVE) on a sample without spread.
    """
    if classify((value, value), threshold, side, margin) == "FAIL":
        return Verdict("FAIL", value, name, (value, value), threshold, n, 1.0,
                       {**detail, "side": side, "p_fail": 0.0, "zero_spread": True})
    raise DegenerateSampleError(
        f"instances are not independent: {name} is {value!r} on all {n} instances with zero spread (up to "
        "rounding), so no interval exists; a statistical rule cannot decide from copies of one instance "
        "(does simulate use seeds[i]?), and an exact consequence is decided with stats.deterministic_check")


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
    check_side(side)
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
