"""Numbers and intervals as short text: :mod:`udl.engine.formatting` (claim figures use it too)."""

from udl.engine.formatting import fmt_interval, fmt_number

__all__ = ["fmt_interval", "fmt_number"]
