"""Stationary points and interpretability (Theorem II.4).

For min_D ½‖X − D Z̃‖²_F + (ω/2)‖D‖²_F with fixed codes Z̃, the minimiser is

    D̃ = X G⁻¹ Z̃ᵀ,   G = Z̃ᵀZ̃ + ωI  (n × n),

so atom j = Σ_k (G⁻¹w_j)_k x^k (w_j the j-th row of Z̃) and a new example's reconstruction
x̂ = D̃ẑ = Σ_k β_k x^k with β = G⁻¹Z̃ᵀẑ. Everything is computed through the p × p system
(push-through identity G⁻¹Z̃ᵀ = Z̃ᵀ(Z̃Z̃ᵀ + ωI)⁻¹) with a Cholesky solve; G is never formed
or inverted.

Note on scaling: with the mean-over-examples loss ½‖X − DZ‖²/n + (ω'/2)‖D‖², the same
identity holds with ω = n·ω'.
"""
from __future__ import annotations

import torch

from udl.core._validate import check_matrix, check_positive, check_same_batch

__all__ = ["contributions", "stationary_dictionary", "reconstruction_coefficients", "gram_condition"]


def _check(X, Z, omega):
    check_matrix("X", X)
    check_matrix("Z", Z, cols=X.shape[-1], cols_name="n, the columns of X")
    check_same_batch(X=X, Z=Z)
    if X.dtype != Z.dtype:
        raise ValueError(f"X and Z must have the same dtype, got X {X.dtype} and Z {Z.dtype}")
    return float(check_positive("omega", omega))


def contributions(X: torch.Tensor, Z: torch.Tensor, *, omega: float) -> torch.Tensor:
    """C = G⁻¹Z̃ᵀ ``(..., n, p)``: column j holds the weights of the training examples in atom j.

    Parameters
    ----------
    X : (..., m, n) training data.  Z : (..., p, n) converged codes Z̃.  omega : float > 0.
    """
    omega = _check(X, Z, omega)
    p = Z.shape[-2]
    K = Z @ Z.mT + omega * torch.eye(p, dtype=Z.dtype, device=Z.device)     # Z̃Z̃ᵀ + ωI, SPD
    # C = Z̃ᵀ K⁻¹  ⇔  K Cᵀ = Z̃  (K symmetric)
    return torch.cholesky_solve(Z, torch.linalg.cholesky(K)).mT


def stationary_dictionary(X: torch.Tensor, Z: torch.Tensor, *, omega: float,
                          return_contributions: bool = False):
    """D̃ = X G⁻¹ Z̃ᵀ ``(..., m, p)``, the minimiser of ½‖X − DZ̃‖² + (ω/2)‖D‖².

    Returns ``D̃`` or ``(D̃, C)`` with the contributions ``C = G⁻¹Z̃ᵀ (..., n, p)`` (D̃ = X C).
    """
    C = contributions(X, Z, omega=omega)
    D = X @ C
    return (D, C) if return_contributions else D


def reconstruction_coefficients(X: torch.Tensor, Z: torch.Tensor, Z_new: torch.Tensor, *,
                                omega: float) -> torch.Tensor:
    """β = G⁻¹Z̃ᵀẑ ``(..., n, k)`` for new codes ``Z_new (..., p, k)``, so that D̃ẑ = Xβ."""
    omega = _check(X, Z, omega)
    check_matrix("Z_new", Z_new, rows=Z.shape[-2], rows_name="p, the rows of Z")
    check_same_batch(X=X, Z=Z, Z_new=Z_new)
    if Z_new.dtype != Z.dtype:
        raise ValueError(f"Z_new and Z must have the same dtype, got Z_new {Z_new.dtype} and Z {Z.dtype}")
    C = contributions(X, Z, omega=omega)
    return C @ Z_new


def gram_condition(Z: torch.Tensor, *, omega: float) -> torch.Tensor:
    """Condition number of Z̃Z̃ᵀ + ωI ``(...)`` (G has the same nonzero spectrum, plus ω)."""
    check_matrix("Z", Z)
    omega = float(check_positive("omega", omega))
    p = Z.shape[-2]
    ev = torch.linalg.eigvalsh(Z @ Z.mT + omega * torch.eye(p, dtype=Z.dtype, device=Z.device))
    return ev[..., -1] / ev[..., 0]
