"""Input validation shared by the public functions.

Every public function validates its arguments here and raises ``ValueError`` naming the
argument, the bad value and what is allowed. Private ``_`` helpers trust their inputs.
"""
from __future__ import annotations

import math
from numbers import Real

import torch

__all__ = [
    "check_matrix",
    "check_same_batch",
    "check_nonneg",
    "check_positive",
    "check_int",
    "check_choice",
    "check_finite",
    "check_xdz",
    "validate_encoder_args",
]


def check_matrix(name: str, A, *, rows: int | None = None, cols: int | None = None,
                 rows_name: str = "", cols_name: str = "") -> torch.Tensor:
    """Check that ``A`` is a floating tensor of shape ``(..., rows, cols)`` with finite entries."""
    if not isinstance(A, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (..., rows, cols), got {type(A).__name__}")
    if A.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (..., rows, cols), got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor (float32 or float64), got dtype {A.dtype}")
    if rows is not None and A.shape[-2] != rows:
        raise ValueError(
            f"{name} has {A.shape[-2]} rows but {rows} are required{' (' + rows_name + ')' if rows_name else ''}; "
            f"shape {tuple(A.shape)}")
    if cols is not None and A.shape[-1] != cols:
        raise ValueError(
            f"{name} has {A.shape[-1]} columns but {cols} are required{' (' + cols_name + ')' if cols_name else ''}; "
            f"shape {tuple(A.shape)}")
    check_finite(name, A)
    return A


def check_finite(name: str, A: torch.Tensor) -> torch.Tensor:
    """Raise if ``A`` has a NaN or an infinite entry."""
    if not bool(torch.isfinite(A).all()):
        bad = int((~torch.isfinite(A)).sum())
        raise ValueError(f"{name} must be finite, but has {bad} NaN or infinite entries")
    return A


def check_same_batch(**tensors: torch.Tensor) -> torch.Size:
    """Check that the leading (batch) dimensions broadcast; return the broadcast batch shape."""
    try:
        return torch.broadcast_shapes(*(t.shape[:-2] for t in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
        raise ValueError(f"batch dimensions do not broadcast: {shapes}") from None


def _as_real(name: str, value) -> float | torch.Tensor:
    if isinstance(value, torch.Tensor):
        check_finite(name, value)
        return value
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def check_nonneg(name: str, value) -> float | torch.Tensor:
    """Check ``value >= 0`` (a number or a tensor)."""
    value = _as_real(name, value)
    if (value < 0).any() if isinstance(value, torch.Tensor) else value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def check_positive(name: str, value) -> float | torch.Tensor:
    """Check ``value > 0`` (a number or a tensor)."""
    value = _as_real(name, value)
    if (value <= 0).any() if isinstance(value, torch.Tensor) else value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def check_int(name: str, value, *, low: int = 0, high: int | None = None) -> int:
    """Check that ``value`` is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) and not (
            hasattr(value, "__index__") and not isinstance(value, float)):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return value


def check_choice(name: str, value, allowed) -> str:
    """Check that ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_xdz(X, D, Z, z_name: str = "Z") -> None:
    """Check data ``X (..., m, n)``, a dictionary ``D (..., m, p)`` and codes ``(..., p, n)`` together."""
    check_matrix("D", D)
    check_matrix("X", X, rows=D.shape[-2], rows_name="m, the rows of D")
    check_matrix(z_name, Z, rows=D.shape[-1], cols=X.shape[-1],
                 rows_name="p, the columns of D", cols_name="n, the columns of X")
    check_same_batch(X=X, D=D, **{z_name: Z})
    if not X.dtype == D.dtype == Z.dtype:
        raise ValueError(f"X, D and {z_name} must share one dtype, got {X.dtype}, {D.dtype}, {Z.dtype}")


def validate_encoder_args(X, D, lam, step, T) -> int:
    """Check the arguments ``(X, D, lam, step, T)`` of an encoder call; return ``T`` as int.

    X (..., m, n) and D (..., m, p) finite, of one dtype, with broadcastable batches; λ ≥ 0 (a
    number or a tensor ``(...)``), α > 0, T an integer ≥ 0.
    """
    check_matrix("D", D)
    check_matrix("X", X, rows=D.shape[-2], rows_name="m, the rows of D")
    check_same_batch(X=X, D=D)
    if X.dtype != D.dtype:
        raise ValueError(f"X and D must have the same dtype, got X {X.dtype} and D {D.dtype}")
    check_nonneg("lam", lam)
    check_positive("step", step)
    return check_int("T", T, low=0)
