"""Numbers and intervals as short text, for tables in the terminal, in reports and in figure legends."""

from __future__ import annotations

import math

__all__ = ["fmt_interval", "fmt_number"]


def fmt_number(value, digits: int = 4, *, plain: bool = False) -> str:
    """``value`` to ``digits`` significant digits; None → a dash, ±inf → ±∞, NaN → "nan".

    ``plain`` : ASCII only ("-", "inf", "-inf"), for terminal output; else typographic ("–", "∞",
    "−∞"), for Markdown/HTML. A value that is not a number is returned as ``str(value)``.
    """
    missing, pos, neg = ("-", "inf", "-inf") if plain else ("–", "∞", "−∞")
    if value is None:
        return missing
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(v):
        return pos if v > 0 else neg
    return f"{v:.{digits}g}"


def fmt_interval(interval, *, plain: bool = False) -> str:
    """``[lo, hi]`` with :func:`fmt_number`, or a dash when ``interval`` is not a pair."""
    if not interval or len(interval) != 2:
        return "-" if plain else "–"
    return f"[{fmt_number(interval[0], plain=plain)}, {fmt_number(interval[1], plain=plain)}]"
