"""Error measures between learned and true quantities.

Shapes: dictionaries ``(..., m, p)``, codes ``(..., p, n)``; every measure reduces the last two
dimensions and keeps the leading (instance) dimensions.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from udl.core._validate import check_choice, check_matrix, check_same_batch
from udl.core.data import normalize_columns_unchecked

__all__ = ["align", "dictionary_error", "code_error", "support_recovery", "relative_error",
           "dictionary_error_unchecked", "code_error_unchecked"]


def align(D: torch.Tensor, D_star: torch.Tensor) -> torch.Tensor:
    """Permute and flip the columns of ``D`` to best match ``D_star`` (Hungarian on |DᵀD*|).

    Only needed when D is not already close to D*; the assignment runs per instance (SciPy).
    Returns the aligned ``(..., m, p)`` dictionary (columns normalised).
    """
    check_matrix("D", D)
    check_matrix("D_star", D_star, rows=D.shape[-2], cols=D.shape[-1])
    check_same_batch(D=D, D_star=D_star)
    return _align(D, D_star)


def _align(D: torch.Tensor, D_star: torch.Tensor) -> torch.Tensor:
    Dn, Ds = normalize_columns_unchecked(D), normalize_columns_unchecked(D_star)
    C = (Dn.mT @ Ds).detach().cpu().numpy()                 # (..., p, p) correlations
    flat = C.reshape(-1, *C.shape[-2:])
    # col[i] = the true atom matched to learned atom i; perm[j] = the learned atom for true atom j
    perms = np.stack([np.argsort(linear_sum_assignment(-np.abs(c))[1]) for c in flat])
    perms = perms.reshape(*C.shape[:-2], C.shape[-1])
    idx = torch.as_tensor(perms, device=D.device)
    Dp = torch.gather(Dn, -1, idx.unsqueeze(-2).expand_as(Dn))
    sign = torch.sign((Dp * Ds).sum(dim=-2, keepdim=True))
    return Dp * torch.where(sign == 0, torch.ones_like(sign), sign)


def dictionary_error(D: torch.Tensor, D_star: torch.Tensor, *, aligned: bool = False) -> dict:
    """Dictionary error after normalising the columns of ``D``.

    Parameters
    ----------
    D, D_star : (..., m, p)
    aligned : bool
        Match signs and the permutation of atoms first (Hungarian); use when the start is not
        close to D*.

    Returns
    -------
    dict with ``"fro"`` = ‖D − D*‖_F / ‖D*‖_F and ``"max_col"`` = max_j ‖D_j − D*_j‖, each ``(...)``.
    """
    check_matrix("D", D)
    check_matrix("D_star", D_star, rows=D.shape[-2], cols=D.shape[-1])
    check_same_batch(D=D, D_star=D_star)
    return dictionary_error_unchecked(D, D_star, aligned=aligned)


def dictionary_error_unchecked(D, D_star, *, aligned=False):
    """Unchecked :func:`dictionary_error` (used while recording a training run)."""
    Dn = _align(D, D_star) if aligned else normalize_columns_unchecked(D)
    E = Dn - D_star
    return {"fro": torch.linalg.matrix_norm(E) / torch.linalg.matrix_norm(D_star),
            "max_col": torch.linalg.vector_norm(E, dim=-2).amax(dim=-1)}


def _check_codes(Z, Z_star):
    """Codes ``Z`` and ``Z_star`` must have the same (p, n) and broadcastable batch dimensions;
    otherwise an elementwise comparison would broadcast silently and measure the wrong thing."""
    check_matrix("Z_star", Z_star)
    check_matrix("Z", Z, rows=Z_star.shape[-2], cols=Z_star.shape[-1], rows_name="p, the rows of Z_star",
                 cols_name="n, the columns of Z_star")
    check_same_batch(Z=Z, Z_star=Z_star)


def code_error(Z: torch.Tensor, Z_star: torch.Tensor, *, reduction: str = "max") -> torch.Tensor:
    """Code error |z − z*| reduced over codes and examples → ``(...)``.

    ``reduction``: "max" (max_{j,k} |z_jk − z*_jk|, the quantity bounded in Thm II.1),
    "mean" (mean absolute error) or "fro" (‖Z − Z*‖_F / ‖Z*‖_F).
    """
    check_choice("reduction", reduction, ("max", "mean", "fro"))
    _check_codes(Z, Z_star)
    return code_error_unchecked(Z, Z_star, reduction)


def code_error_unchecked(Z, Z_star, reduction="max"):
    """Unchecked :func:`code_error` (used while recording a training run)."""
    E = (Z - Z_star).abs()
    if reduction == "max":
        return E.amax(dim=(-2, -1))
    if reduction == "mean":
        return E.mean(dim=(-2, -1))
    return torch.linalg.matrix_norm(Z - Z_star) / torch.linalg.matrix_norm(Z_star)


def support_recovery(Z: torch.Tensor, Z_star: torch.Tensor) -> torch.Tensor:
    """Fraction of examples whose support supp(z_k) equals supp(z*_k) exactly → ``(...)``."""
    _check_codes(Z, Z_star)
    same = ((Z != 0) == (Z_star != 0)).all(dim=-2)
    return same.to(Z.dtype).mean(dim=-1)


def relative_error(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """‖A − B‖_F / ‖B‖_F over the last two dimensions → ``(...)``."""
    check_matrix("B", B)
    check_matrix("A", A, rows=B.shape[-2], cols=B.shape[-1], rows_name="the rows of B",
                 cols_name="the columns of B")
    check_same_batch(A=A, B=B)
    return torch.linalg.matrix_norm(A - B) / torch.linalg.matrix_norm(B)
