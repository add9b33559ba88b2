"""Mutants: deliberate, plausible bugs in :mod:`udl.core`, installed for a while — the negative
controls that show a claim has teeth.

A claim with teeth FAILS when the code it checks is wrong. Each mutant here is a bug of the kind
real implementations contain (a threshold λ instead of αλ, a backward pass missing the active-set
mask, a lasso solver stopped before its certificate, ...), installed by re-binding attributes of
:mod:`udl.core` at run time and removed again::

    from udl.engine.mutants import MUTANTS, mutated

    with mutated("threshold-lambda"):
        Z = udl.core.ista(X, D, lam=0.1, step=0.2, T=50)      # computed with the bug

A claim may declare ``control_mutant = "<name>"``: its negative control is then its own
``simulate`` under that mutant (:mod:`udl.engine.runner`). ``udl mutate`` runs every claim under
every mutant and writes the kill matrix (:mod:`udl.app.mutate`). A cell computed under a mutant
is never read from or written to the cell cache (:mod:`udl.engine.cache`).

The catalogue, one module per area (each imports :mod:`udl.core` and the registry only):
:mod:`~udl.engine.mutants.encoder`, :mod:`~udl.engine.mutants.backward`,
:mod:`~udl.engine.mutants.estimators`, :mod:`~udl.engine.mutants.lasso`,
:mod:`~udl.engine.mutants.training`, :mod:`~udl.engine.mutants.interpretation`,
:mod:`~udl.engine.mutants.instances`, :mod:`~udl.engine.mutants.paths`. The registry and the
patching helpers are :mod:`~udl.engine.mutants.registry`.
"""

from __future__ import annotations

from udl.engine.mutants.registry import AREAS, MUTANTS, Mutant, get, mutated

# the catalogue: importing an area module registers its mutants
from udl.engine.mutants import (backward, encoder, estimators, instances, interpretation,  # noqa: E402,F401
                                lasso, paths, training)
from udl.engine.mutants import encoder_extra, instances_extra  # noqa: E402,F401  (claims' extra mutants)

__all__ = ["AREAS", "MUTANTS", "Mutant", "get", "mutated"]
