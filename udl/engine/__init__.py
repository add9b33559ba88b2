"""The claims engine, and the facade for claim authors and applications.

A claim module (in ``claims/``) needs only the names exported here and the core maths of
:mod:`udl.core`::

    from dataclasses import dataclass
    from udl import core
    from udl.engine import Claim, Context, Verdict, all_of, stats
    from udl.engine import FigureInput, figure, plotting   # a claim's own figures
    from udl.engine import when                            # its audit sentences (udl.engine.sentences)
    from udl.engine import CertificateError                # a reference quantity whose certificate fails

Honest verdicts: ``stats.deterministic_check`` (kind ``"deterministic"``), ``stats.prediction``
(the theory's value against the estimate, on the verdict), ``Claim.hypotheses`` (per cell, with
``stats.hypothesis``), ``Claim.decides_at`` (profiles that reach the claim's regime),
``Claim.discrete_columns`` (measurements independent instances may share; see
:mod:`udl.engine.independence`).

Applications (``udl.app``) take the engine's constants and checks from here too:
:data:`PROFILES`, :data:`CLAIM_KINDS`, :data:`DEFAULT_PACKAGE`, :func:`check_device`,
:func:`select_claims`.

Modules: :mod:`~udl.engine.anatomy` (Claim, Context, check_claim), :mod:`~udl.engine.cells`
(typed cells, canonical form, seeds), :mod:`~udl.engine.schema` (table schemas),
:mod:`~udl.engine.discovery`, :mod:`~udl.engine.tasks` (one cell's work),
:mod:`~udl.engine.runner` (run, replay), :mod:`~udl.engine.stats`, :mod:`~udl.engine.executors`,
:mod:`~udl.engine.cache`, :mod:`~udl.engine.results`, :mod:`~udl.engine.plotting` (a claim's figures). This layer imports :mod:`udl.core` and
nothing of the application layer (``udl.app``).
"""

from __future__ import annotations

import importlib

#: Public name → the submodule of udl.engine that defines it (or the submodule itself). Loaded on
#: first use, so that the ``udl`` parser (:mod:`udl.engine.defaults`) does not load torch.
_EXPORTS = {
    **dict.fromkeys(("Claim", "Context", "CLAIM_KINDS", "CertificateError", "check_device"), "anatomy"),
    **dict.fromkeys(("PROFILES", "DEFAULT_PACKAGE"), "defaults"),
    "canonical_cell": "cells",
    "select_claims": "discovery",
    **dict.fromkeys(("FigureInput", "figure"), "plotting"),
    **dict.fromkeys(("Verdict", "all_of"), "stats"),
    "when": "sentences",
}
_MODULES = ("plotting", "stats")

__all__ = ["Claim", "Context", "Verdict", "all_of", "canonical_cell", "stats", "FigureInput", "figure", "plotting",
           "PROFILES", "CLAIM_KINDS", "DEFAULT_PACKAGE", "check_device", "select_claims", "when", "CertificateError"]


def __getattr__(name: str):
    if name in _MODULES:
        value = importlib.import_module(f"udl.engine.{name}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f"udl.engine.{_EXPORTS[name]}"), name)
    else:
        raise AttributeError(f"module 'udl.engine' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
