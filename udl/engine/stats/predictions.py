"""What a verdict reports beside its decision: the theory's predicted values against the
measured estimates (:class:`Prediction`), and whether a cell lies inside a theorem's
hypotheses (:class:`Hypothesis`).

Neither decides anything. A prediction is *contained* when the predicted value lies inside the
estimate's recorded interval; a hypothesis *holds* when its value lies on the stated side of
its bound (e.g. μ(2s − 1) < 1). Both are recorded in results.json and shown by the report, so
that a reader sees how far the measurement is from the theory and which cells the theorem
actually covers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Prediction", "prediction", "Hypothesis", "hypothesis", "HYPOTHESIS_SIDES"]

#: Where a hypothesis puts its value relative to its bound: strictly below or strictly above.
HYPOTHESIS_SIDES = ("less", "greater")


def _number(value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None


def _name(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class Prediction:
    """A value predicted by the theory against the measured estimate and its interval.

    Parameters
    ----------
    name : str
        What is predicted (e.g. ``"ρ"``, ``"slope in λ"``).
    predicted : float
        The theory's value.
    estimate : float
        The measured value.
    interval : tuple of float
        ``(L, U)`` confidence bounds of the estimate (as in the verdict's interval).
    contained : bool
        ``L <= predicted <= U``.
    """

    name: str
    predicted: float
    estimate: float
    interval: tuple[float, float]
    contained: bool

    def __post_init__(self):
        interval = tuple(_number(v, "prediction interval end") for v in self.interval)
        if len(interval) != 2:
            raise ValueError(f"prediction interval must have two ends, got {self.interval!r}")
        object.__setattr__(self, "name", _name(self.name, "prediction name"))
        object.__setattr__(self, "predicted", _number(self.predicted, "predicted"))
        object.__setattr__(self, "estimate", _number(self.estimate, "estimate"))
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "contained", bool(self.contained))

    def to_dict(self) -> dict:
        """JSON-serialisable form (interval as a two-element list)."""
        return {**asdict(self), "interval": list(self.interval)}

    @classmethod
    def from_dict(cls, data) -> "Prediction":
        """Inverse of :meth:`to_dict` (a :class:`Prediction` is returned unchanged)."""
        return data if isinstance(data, cls) else cls(**{**data, "interval": tuple(data["interval"])})


def prediction(name: str, predicted: float, estimate: float, interval) -> Prediction:
    """A :class:`Prediction`, with ``contained`` computed (``L <= predicted <= U``).

    Parameters
    ----------
    name : str
    predicted, estimate : float
    interval : (float, float)
        Confidence bounds of ``estimate``; NaN bounds never contain anything.

    Returns
    -------
    Prediction
    """
    lo, hi = (_number(v, "prediction interval end") for v in interval)
    if lo > hi:
        raise ValueError(f"prediction interval ({lo!r}, {hi!r}) has its lower end above its upper end")
    predicted = _number(predicted, "predicted")
    return Prediction(name, predicted, estimate, (lo, hi), bool(lo <= predicted <= hi))


@dataclass(frozen=True)
class Hypothesis:
    """One hypothesis of a theorem evaluated on a cell (e.g. μ(2s − 1) < 1).

    Parameters
    ----------
    name : str
        The hypothesis in the paper's notation (e.g. ``"μ(2s − 1) < 1"``).
    value : float
        Its left-hand side on this cell (e.g. the worst μ(2s − 1) over the instances).
    bound : float
        Its right-hand side.
    holds : bool
        Whether the cell satisfies it.
    note : str
        How ``value`` was obtained or why it matters (may be empty).
    """

    name: str
    value: float
    bound: float
    holds: bool
    note: str = ""

    def __post_init__(self):
        object.__setattr__(self, "name", _name(self.name, "hypothesis name"))
        object.__setattr__(self, "value", _number(self.value, "hypothesis value"))
        object.__setattr__(self, "bound", _number(self.bound, "hypothesis bound"))
        object.__setattr__(self, "holds", bool(self.holds))
        if not isinstance(self.note, str):
            raise ValueError(f"hypothesis note must be a string, got {self.note!r}")

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


def hypothesis(name: str, value: float, bound: float, *, side: str = "less", note: str = "") -> Hypothesis:
    """A :class:`Hypothesis` whose ``holds`` is ``value < bound`` (``side="less"``) or
    ``value > bound`` (``side="greater"``); a NaN value never holds.

    Parameters
    ----------
    name : str
    value, bound : float
    side : {"less", "greater"}
    note : str

    Returns
    -------
    Hypothesis
    """
    if side not in HYPOTHESIS_SIDES:
        raise ValueError(f"hypothesis side must be one of {HYPOTHESIS_SIDES}, got {side!r}")
    value, bound = _number(value, "hypothesis value"), _number(bound, "hypothesis bound")
    holds = (value < bound) if side == "less" else (value > bound)
    return Hypothesis(name, value, bound, bool(holds and not math.isnan(value)), note)
