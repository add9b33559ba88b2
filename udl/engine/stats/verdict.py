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

__all__ = ["OUTCOMES", "SIDES", "Verdict", "classify", "to_builtin",
           "check_alpha", "check_side", "opposite", "finite_array"]

OUTCOMES = ("PASS", "FAIL", "INCONCLUSIVE")
SIDES = ("greater", "less", "equal")


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
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        """Inverse of :meth:`to_dict`."""
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
