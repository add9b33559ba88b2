"""The claims engine, and the facade for claim authors.

A claim module (in ``claims/``) needs only the names exported here and the core maths of
:mod:`udl.core`::

    from udl import core
    from udl.engine import Claim, Context, Verdict, all_of, stats

This layer imports :mod:`udl.core` and nothing of the application layer (``udl.app``).
"""

from udl.engine import stats
from udl.engine.harness import Claim, Context, canonical_cell
from udl.engine.stats import Verdict, all_of

__all__ = ["Claim", "Context", "Verdict", "all_of", "canonical_cell", "stats"]
