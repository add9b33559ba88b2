"""Gradients of the unrolled dictionary-learning losses with respect to D.

All losses average over the n examples (columns of X):

    L(Z, D)       = ½‖X − D Z‖²_F / n            (least squares)
    L_λ(Z, D)     = L(Z, D) + λ‖Z‖₁ / n           (lasso)

Estimators of the dictionary gradient, each ``(..., m, p)``:

- ``g_dec``      = (D Z_T − X) Z_Tᵀ / n            (Z_T held constant; the analytic gradient)
- ``g_ae-lasso`` = d L_λ(Z_T(D), D) / dD            (backpropagated through all T layers)
- ``g_ae-ls``    = d L(Z_T(D), D) / dD              (backpropagated through all T layers)
- ``g*``         = (D Z* − X) Z*ᵀ / n               (oracle: the true codes)
- ``ĝ``          = (D Ẑ − X) Ẑᵀ / n                 (Ẑ a certified lasso solution; Danskin)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from udl.core._validate import check_choice, check_int, check_matrix, check_nonneg, check_positive, check_same_batch
from udl.core.encoders import Encoder, ISTA, _soft_threshold, validate_encoder_args
from udl.core.unrolled import _is_reference, lean_applicable, lean_gradients

__all__ = [
    "KINDS", "gradient", "gradients", "decoder_gradient", "oracle_gradient",
    "lasso_solve", "lasso_gradient", "kkt_violation", "LassoSolution", "ConvergenceError",
]

#: The three gradient estimators of the paper.
KINDS = ("dec", "ae-lasso", "ae-ls")

_REFERENCE = ISTA()


def decoder_gradient(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """∇₂L(Z, D) = (D Z − X) Zᵀ / n for fixed codes ``Z (..., p, n)`` → ``(..., m, p)``."""
    _check_xdz(X, D, Z)
    return _decoder_gradient(X, D, Z)


def _check_xdz(X, D, Z, z_name: str = "Z"):
    """Validate ``X (..., m, n)``, ``D (..., m, p)`` and codes ``(..., p, n)`` together."""
    check_matrix("D", D)
    check_matrix("X", X, rows=D.shape[-2], rows_name="m, the rows of D")
    check_matrix(z_name, Z, rows=D.shape[-1], cols=X.shape[-1],
                 rows_name="p, the columns of D", cols_name="n, the columns of X")
    check_same_batch(X=X, D=D, **{z_name: Z})
    if not X.dtype == D.dtype == Z.dtype:
        raise ValueError(f"X, D and {z_name} must share one dtype, got {X.dtype}, {D.dtype}, {Z.dtype}")


def _decoder_gradient(X, D, Z):
    """Unchecked (D Z − X) Zᵀ / n for internal use."""
    return (D @ Z - X) @ Z.mT / X.shape[-1]


def oracle_gradient(X: torch.Tensor, D: torch.Tensor, Z_star: torch.Tensor) -> torch.Tensor:
    """g* = (D Z* − X) Z*ᵀ / n, the desired direction at D with the true codes.

    Parameters
    ----------
    X : (..., m, n) data.  D : (..., m, p) dictionary.  Z_star : (..., p, n) true codes.

    Returns
    -------
    (..., m, p) tensor.
    """
    _check_xdz(X, D, Z_star, "Z_star")
    return _decoder_gradient(X, D, Z_star)


def _losses(X, D, Z, lam):
    """Per-batch-summed least-squares and lasso losses (scalars), each averaged over examples."""
    n = X.shape[-1]
    ls = 0.5 * (X - D @ Z).square().sum() / n
    return ls, ls + (lam * Z.abs().sum(dim=(-2, -1))).sum() / n if isinstance(lam, torch.Tensor) \
        else ls + lam * Z.abs().sum() / n


def gradients(X: torch.Tensor, D: torch.Tensor, *, lam, step, T: int, kinds=KINDS,
              encoder: Encoder | None = None, return_code: bool = False):
    """Several gradient estimators from one forward pass through the encoder.

    Parameters
    ----------
    X : (..., m, n) data.  D : (..., m, p) dictionary.
    lam, step, T : encoder hyper-parameters λ ≥ 0, α > 0, T ≥ 0 (see :func:`udl.ista`).
    kinds : iterable of {"dec", "ae-lasso", "ae-ls"}
    encoder : Encoder, optional
        Defaults to the reference ISTA. "ae-*" kinds need the "differentiable" capability.
    return_code : bool
        Also return the code ``Z_T (..., p, n)`` (detached).

    Returns
    -------
    dict kind → ``(..., m, p)`` tensor  (and ``Z_T`` if ``return_code``).
    Batch entries are independent: entry b is the gradient of instance b's own loss.
    """
    kinds = tuple(kinds)
    for k in kinds:
        check_choice("kind", k, KINDS)
    T = validate_encoder_args(X, D, lam, step, T)
    encoder = _REFERENCE if encoder is None else encoder
    backprop = [k for k in kinds if k != "dec"]
    if backprop and "differentiable" not in encoder.capabilities:
        raise ValueError(f"kind {backprop[0]!r} needs a differentiable encoder; {encoder!r} is not")
    out = {}
    if _is_reference(encoder) and lean_applicable(lam, step):
        # one forward, one backward for all kinds (udl.core.unrolled): the "ae" adjoints are stacked
        out, Z_T = lean_gradients(X, D, lam=lam, step=step, T=T, kinds=kinds)
        return (out, Z_T) if return_code else out
    if backprop:
        D_ = D.detach().requires_grad_(True)
        with torch.enable_grad():
            Z_T = encoder(X.detach(), D_, lam=lam, step=step, T=T)
            ls, lasso = _losses(X.detach(), D_, Z_T, lam)
            for i, k in enumerate(backprop):
                (g,) = torch.autograd.grad(ls if k == "ae-ls" else lasso, D_,
                                           retain_graph=i < len(backprop) - 1)
                out[k] = g
        Z_T = Z_T.detach()
    else:
        with torch.no_grad():
            Z_T = encoder(X, D, lam=lam, step=step, T=T)
    if "dec" in kinds:
        out["dec"] = _decoder_gradient(X, D.detach(), Z_T)
    out = {k: out[k] for k in kinds}
    return (out, Z_T) if return_code else out


def gradient(X: torch.Tensor, D: torch.Tensor, *, kind: str, lam, step, T: int,
             encoder: Encoder | None = None) -> torch.Tensor:
    """One gradient estimator ``kind`` in {"dec", "ae-lasso", "ae-ls"} → ``(..., m, p)``.

    See :func:`gradients` for the parameters.
    """
    check_choice("kind", kind, KINDS)
    return gradients(X, D, lam=lam, step=step, T=T, kinds=(kind,), encoder=encoder)[kind]


# ----------------------------------------------------------------------------------------
# Certified lasso solutions
# ----------------------------------------------------------------------------------------

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
    _check_xdz(X, D, Z)
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
        Z = torch.zeros(torch.broadcast_shapes(DtD.shape[:-2], DtX.shape[:-2]) + DtX.shape[-2:],
                        dtype=X.dtype, device=X.device)
        Y, k = Z, torch.ones_like(step)
        for it in range(1, max_iter + 1):
            Z_new = _soft_threshold(Y - step * (DtD @ Y - DtX), step * lam)
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


def lasso_gradient(X: torch.Tensor, D: torch.Tensor, *, lam: float, tol: float | None = None,
                   max_iter: int = 100_000):
    """ĝ = (D Ẑ − X) Ẑᵀ / n at a certified lasso solution Ẑ (the gradient of the lasso value).

    Returns
    -------
    (g_hat, solution) : ``(..., m, p)`` tensor and the :class:`LassoSolution` with its
    certificate. Raises :class:`ConvergenceError` if the certificate is not reached.
    """
    sol = lasso_solve(X, D, lam=lam, tol=tol, max_iter=max_iter)
    return _decoder_gradient(X, D, sol.Z), sol
