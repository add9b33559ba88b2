"""Certified lasso solutions: a solver and its optimality certificate.

For every example (column of X) the lasso

    min_z ½‖x − D z‖² + λ‖z‖₁

is solved by FISTA with adaptive restart until its KKT conditions hold to a tolerance: with
r = Dᵀ(x − Dz), r_j = λ·sign(z_j) on the support and |r_j| ≤ λ off it. The certified solution Ẑ
gives the estimator ĝ of :func:`udl.core.estimators.lasso_gradient`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from udl.core._validate import check_int, check_matrix, check_positive, check_same_batch, check_xdz
from udl.core.threshold import shrink

__all__ = ["lasso_solve", "kkt_violation", "LassoSolution", "ConvergenceError", "DEFAULT_TOL"]


class ConvergenceError(RuntimeError):
    """A solver did not reach its certificate within its iteration budget."""


@dataclass(frozen=True)
class LassoSolution:
    """A lasso solution with its optimality certificate.

    Attributes
    ----------
    Z : (..., p, n) solution.
    kkt : (...) worst relative KKT violation max_{j,k} dist(r_jk, λ∂|z_jk|) / λ per instance,
        r = Dᵀ(X − DZ).
    n_iter : iterations used.
    tol : the tolerance the certificate met.
    """

    Z: torch.Tensor
    kkt: torch.Tensor
    n_iter: int
    tol: float


def kkt_violation(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, lam: float) -> torch.Tensor:
    """Worst KKT violation of the lasso min_z ½‖x − Dz‖² + λ‖z‖₁, relative to λ → ``(...)``.

    On the support r_j must equal λ·sign(z_j); off it |r_j| ≤ λ, with r = Dᵀ(x − Dz).
    """
    check_xdz(X, D, Z)
    return _kkt_violation(X, D, Z, float(check_positive("lam", lam)))


def _kkt_violation(X, D, Z, lam: float):
    """Unchecked relative KKT violation for the solver loop."""
    R = D.mT @ (X - D @ Z)
    on = Z != 0
    viol = torch.where(on, (R - lam * torch.sign(Z)).abs(), torch.clamp(R.abs() - lam, min=0))
    return viol.amax(dim=(-2, -1)) / lam


#: Default certificate: relative KKT violation. 1e-9 in float64 leaves ĝ accurate to ~1e-9·λ,
#: far below the smallest ‖g_T − ĝ‖ the claims resolve; float32 cannot go much below 1e-4.
DEFAULT_TOL = {torch.float64: 1e-9, torch.float32: 1e-4}


def lasso_solve(X: torch.Tensor, D: torch.Tensor, *, lam: float, tol: float | None = None,
                max_iter: int = 100_000, check_every: int = 20) -> LassoSolution:
    """Solve the lasso for every example to a KKT certificate (FISTA with adaptive restart).

    Parameters
    ----------
    X : (..., m, n).  D : (..., m, p).  lam : float > 0.
    tol : float, optional
        Required relative KKT violation (default :data:`DEFAULT_TOL` for the dtype).
    max_iter : int
        Iteration budget; :class:`ConvergenceError` is raised if the certificate is not met.

    Returns
    -------
    LassoSolution
    """
    check_matrix("D", D)
    check_matrix("X", X, rows=D.shape[-2], rows_name="m, the rows of D")
    check_same_batch(X=X, D=D)
    if X.dtype != D.dtype:
        raise ValueError(f"X and D must have the same dtype, got X {X.dtype} and D {D.dtype}")
    lam = float(check_positive("lam", lam))
    check_every = check_int("check_every", check_every, low=1)
    tol = DEFAULT_TOL.get(X.dtype, 1e-6) if tol is None else float(check_positive("tol", tol))
    max_iter = check_int("max_iter", max_iter, low=1)
    with torch.no_grad():
        DtD, DtX = D.mT @ D, D.mT @ X
        L = torch.linalg.matrix_norm(DtD, ord=2)                      # Lipschitz constant ‖D‖₂²
        step = (1.0 / L)[..., None, None]
        theta = step * lam
        Z = torch.zeros(torch.broadcast_shapes(DtD.shape[:-2], DtX.shape[:-2]) + DtX.shape[-2:],
                        dtype=X.dtype, device=X.device)
        Y, k = Z, torch.ones_like(step)
        for it in range(1, max_iter + 1):
            Z_new = shrink(Y - step * (DtD @ Y - DtX), theta)
            # adaptive restart (O'Donoghue & Candès): drop momentum where it points uphill
            restart = ((Y - Z_new) * (Z_new - Z)).sum(dim=-2, keepdim=True) > 0
            k_new = (1 + torch.sqrt(1 + 4 * k * k)) / 2
            Y = torch.where(restart, Z_new, Z_new + ((k - 1) / k_new) * (Z_new - Z))
            k = torch.where(restart.all(dim=-1, keepdim=True), torch.ones_like(k), k_new)
            Z = Z_new
            if it % check_every == 0 or it == max_iter:
                kkt = _kkt_violation(X, D, Z, lam)
                if bool((kkt <= tol).all()):
                    return LassoSolution(Z, kkt, it, tol)
    raise ConvergenceError(
        f"lasso_solve: KKT violation {float(kkt.max()):.3g} > tol={tol:g} after max_iter={max_iter} "
        f"iterations; raise max_iter or tol")
