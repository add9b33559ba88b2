"""The claims engine in one namespace (kept for ``from udl.engine.harness import X``).

The engine lives in modules of its own; this module re-exports their public names:

- :mod:`udl.engine.anatomy` — :class:`Claim`, :class:`Context`, :func:`check_claim`, profiles
  and claim kinds;
- :mod:`udl.engine.cells` — typed cells, :func:`canonical_cell`, :func:`instance_seeds`;
- :mod:`udl.engine.schema` — table schemas;
- :mod:`udl.engine.discovery` — :func:`discover`, :func:`select_claims`;
- :mod:`udl.engine.tasks` — :class:`CellTask`, :class:`CellOutcome`, :func:`simulate_cell`;
- :mod:`udl.engine.runner` — :func:`run`, :func:`replay` and their results.

New code imports from those modules or from the :mod:`udl.engine` facade.
"""

from __future__ import annotations

from udl.engine.anatomy import (
                                CLAIM_KINDS,
                                ID_PATTERN,
                                PROFILES,
                                Claim,
                                ClaimDefinitionError,
                                Context,
                                check_claim,
                                check_device,
)
from udl.engine.cells import ENGINE_COLUMNS, canonical_cell, instance_seeds
from udl.engine.discovery import DEFAULT_PACKAGE, discover, select_claims
from udl.engine.runner import FINAL_OUTCOMES, ClaimResult, RunInterrupted, RunResult, replay, run
from udl.engine.stats import OUTCOMES, Verdict
from udl.engine.tasks import CELL_THREADS, CellOutcome, CellTask, simulate_cell

__all__ = [
    "OUTCOMES",
    "FINAL_OUTCOMES",
    "CELL_THREADS",
    "CLAIM_KINDS",
    "PROFILES",
    "ENGINE_COLUMNS",
    "ID_PATTERN",
    "DEFAULT_PACKAGE",
    "Verdict",
    "Context",
    "check_device",
    "Claim",
    "ClaimDefinitionError",
    "check_claim",
    "discover",
    "select_claims",
    "canonical_cell",
    "instance_seeds",
    "CellTask",
    "CellOutcome",
    "simulate_cell",
    "ClaimResult",
    "RunResult",
    "RunInterrupted",
    "run",
    "replay",
]
