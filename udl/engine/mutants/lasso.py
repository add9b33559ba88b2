"""Mutants of the certified lasso solver (:mod:`udl.core.lasso`), the source of ĝ."""

from __future__ import annotations

from dataclasses import replace

from udl.core import lasso
from udl.engine.mutants.registry import patch, register

__all__ = ["FIXED_ITERATIONS"]

#: Iterations the unconverged solver runs: a "reasonable" fixed budget a developer might hard-code,
#: far from the thousands FISTA needs for a 1e-9 KKT certificate on the claims' instances.
FIXED_ITERATIONS = 30
#: A tolerance every finite KKT violation meets: how the mutant ignores the certificate.
_ANY = 1e300


@register(
    "lasso-unconverged", area="lasso-certificate",
    bug=f"The lasso solver stops after a fixed {FIXED_ITERATIONS} FISTA iterations and returns its iterate "
        "without checking the KKT certificate (reporting the requested tolerance as met).",
    code="udl.core.lasso.lasso_solve",
    why="Ẑ is not the lasso solution, so ĝ = (DẐ − X)Ẑᵀ/n is not the limit of g_dec and g_ae-lasso: their "
        "distance to ĝ stalls at the solver's error instead of decaying with T (the recorded KKT "
        "violation, still honest, is far above its tolerance).")
def _lasso_unconverged():
    solve = lasso.lasso_solve

    def solve_bug(X, D, *, lam, tol=None, max_iter=100_000, check_every=20):
        sol = solve(X, D, lam=lam, tol=_ANY, max_iter=FIXED_ITERATIONS, check_every=FIXED_ITERATIONS)
        wanted = lasso.DEFAULT_TOL.get(X.dtype, 1e-6) if tol is None else float(tol)
        return replace(sol, tol=wanted)

    return patch(lasso, "lasso_solve", solve_bug)
