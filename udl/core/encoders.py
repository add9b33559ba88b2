"""Unrolled sparse encoders: T layers of ISTA and its variants behind one small interface.

The reference encoder is ISTA from z₀ = 0:

    z_{t+1} = P_{αλ}(z_t − α Dᵀ(D z_t − x)),   P_b(v) = sign(v)·max(|v| − b, 0),

written as z_{t+1} = P_{αλ}(A z_t + B) with A = I − α DᵀD (p×p) and B = α DᵀX (p×n), so a
layer costs one batched matmul. Shapes: ``X (..., m, n)``, ``D (..., m, p)``, codes
``Z (..., p, n)``; leading dimensions are independent instances.

An :class:`Encoder` declares its *capabilities* (see :data:`CAPABILITIES`), so that a claim
that needs one (e.g. a gradient through the layers) can report "not applicable" for an
encoder that lacks it.
"""
from __future__ import annotations

from typing import Iterator

import torch

from udl.core._validate import check_int, check_matrix, check_nonneg, check_positive, check_same_batch

__all__ = [
    "CAPABILITIES", "Encoder", "ISTA", "FISTA", "HardThresholdISTA", "LambdaDecayISTA",
    "NoThreshold", "UnscaledThresholdISTA", "soft_threshold", "hard_threshold", "ista",
    "validate_encoder_args",
]

#: What an encoder may declare about itself; claims state which ones they require.
CAPABILITIES = {
    "differentiable": "Z_T is differentiable in D (gradients backpropagate through the layers)",
    "soft_threshold": "every layer applies the soft threshold P_{αλ}, so Z_T → the lasso solution",
    "fixed_lambda": "every layer uses the same λ (the λ in the theorems)",
}


def soft_threshold(v: torch.Tensor, b) -> torch.Tensor:
    """P_b(v) = sign(v)·max(|v| − b, 0), elementwise; ``b ≥ 0`` a number or broadcastable tensor."""
    check_nonneg("b", b)
    return _soft_threshold(v, b)


def hard_threshold(v: torch.Tensor, b) -> torch.Tensor:
    """H_b(v) = v·1{|v| > b}, elementwise; ``b ≥ 0``."""
    check_nonneg("b", b)
    return _hard_threshold(v, b)


def _soft_threshold(v, b):
    """Unchecked P_b for the layer loops (b ≥ 0 is guaranteed by the callers' validation)."""
    if isinstance(b, torch.Tensor):
        return torch.sign(v) * torch.clamp(v.abs() - b, min=0)
    return torch.nn.functional.softshrink(v, float(b)) if b > 0 else v


def _hard_threshold(v, b):
    """Unchecked H_b for the layer loops."""
    return v * (v.abs() > b)


def validate_encoder_args(X, D, lam, step, T):
    """Validate ``(X, D, lam, step, T)`` for an encoder call; return ``T`` as int."""
    check_matrix("D", D)
    check_matrix("X", X, rows=D.shape[-2], rows_name="m, the rows of D")
    check_same_batch(X=X, D=D)
    if X.dtype != D.dtype:
        raise ValueError(f"X and D must have the same dtype, got X {X.dtype} and D {D.dtype}")
    check_nonneg("lam", lam)
    check_positive("step", step)
    return check_int("T", T, low=0)


def _as_threshold(lam, like: torch.Tensor):
    """λ as a float, or a tensor broadcast over ``(..., p, n)`` (one λ per instance)."""
    if isinstance(lam, torch.Tensor):
        lam = lam.to(like)
        return lam.reshape(lam.shape + (1, 1)) if lam.ndim else lam
    return lam


class Encoder:
    """An unrolled encoder: ``encoder(X, D, lam=, step=, T=) → Z_T (..., p, n)``.

    Subclasses implement :meth:`layer` (one unrolled layer), and may override :meth:`init`.
    Class attributes ``name`` and ``capabilities`` describe the encoder.
    """

    name: str = "encoder"
    capabilities: frozenset = frozenset()

    def init(self, X, D, *, lam, step):
        """Precompute A = I − α DᵀD and B = α DᵀX and the initial state (z₀ = 0)."""
        DtD = D.mT @ D
        A = torch.eye(D.shape[-1], dtype=D.dtype, device=D.device) - step * DtD
        B = step * (D.mT @ X)
        Z0 = torch.zeros(torch.broadcast_shapes(A.shape[:-2], B.shape[:-2]) + B.shape[-2:],
                         dtype=X.dtype, device=X.device)
        return A, B, {"Z": Z0}

    def layer(self, t: int, A, B, state: dict, *, lam, step) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def iterates(self, X, D, *, lam, step, T) -> Iterator[torch.Tensor]:
        """Yield z_1, …, z_T (each ``(..., p, n)``) without storing the path."""
        T = validate_encoder_args(X, D, lam, step, T)
        A, B, state = self.init(X, D, lam=lam, step=step)
        lam = _as_threshold(lam, B)
        for t in range(T):
            state = self.layer(t, A, B, state, lam=lam, step=step)
            yield state["Z"]

    def __call__(self, X, D, *, lam, step, T, return_path: bool = False) -> torch.Tensor:
        """Run T layers. Returns ``Z_T (..., p, n)``, or ``(T+1, ..., p, n)`` iterates z_0…z_T."""
        T = validate_encoder_args(X, D, lam, step, T)
        A, B, state = self.init(X, D, lam=lam, step=step)
        path = [state["Z"]] if return_path else None
        lam = _as_threshold(lam, B)
        for t in range(T):
            state = self.layer(t, A, B, state, lam=lam, step=step)
            if return_path:
                path.append(state["Z"])
        return torch.stack(path) if return_path else state["Z"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ISTA(Encoder):
    """The reference encoder: z_{t+1} = P_{αλ}(A z_t + B).

    When D or X requires grad (and λ > 0), the call goes through :func:`udl.core.unrolled.unrolled_ista`,
    a custom autograd function whose backward pass needs only the iterates, stored exactly in
    sparse form (non-zero values and their positions), instead of every dense activation; same
    values and gradients as plain autograd through :meth:`layer` up to rounding (on CPU it
    multiplies sparse iterates as CSR matrices, which sums in another order).
    """

    name = "ista"
    capabilities = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})

    def __call__(self, X, D, *, lam, step, T, return_path: bool = False) -> torch.Tensor:
        if (not return_path and torch.is_grad_enabled() and isinstance(X, torch.Tensor)
                and isinstance(D, torch.Tensor) and (D.requires_grad or X.requires_grad)):
            from udl.core.unrolled import _is_reference, lean_applicable, unrolled_ista
            if _is_reference(self) and lean_applicable(lam, step):
                T = validate_encoder_args(X, D, lam, step, T)
                if T > 0:
                    return unrolled_ista(X, D, lam=lam, step=step, T=T)
        return super().__call__(X, D, lam=lam, step=step, T=T, return_path=return_path)

    def layer(self, t, A, B, state, *, lam, step):
        Z = state["Z"]
        if A.shape[:-2] == B.shape[:-2] == Z.shape[:-2]:
            # one batched GEMM over the flattened batch (as udl.core.unrolled._codes)
            V = torch.baddbmm(B.reshape((-1,) + B.shape[-2:]), A.reshape((-1,) + A.shape[-2:]),
                              Z.reshape((-1,) + Z.shape[-2:])).view(Z.shape)
        else:
            V = A @ Z + B
        return {"Z": _soft_threshold(V, step * lam)}


class FISTA(Encoder):
    """Accelerated ISTA (Beck & Teboulle): thresholding at an extrapolated point y_t."""

    name = "fista"
    capabilities = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})

    def init(self, X, D, *, lam, step):
        A, B, state = super().init(X, D, lam=lam, step=step)
        return A, B, {"Z": state["Z"], "Y": state["Z"], "k": 1.0}

    def layer(self, t, A, B, state, *, lam, step):
        Z = _soft_threshold(A @ state["Y"] + B, step * lam)
        k = (1 + (1 + 4 * state["k"] ** 2) ** 0.5) / 2
        return {"Z": Z, "Y": Z + ((state["k"] - 1) / k) * (Z - state["Z"]), "k": k}


class HardThresholdISTA(Encoder):
    """Iterative hard thresholding z_{t+1} = H_τ(A z_t + B): no shrinkage, so no λ bias."""

    name = "hard-threshold"
    capabilities = frozenset({"differentiable"})

    def __init__(self, tau: float = 0.1):
        self.tau = float(check_nonneg("tau", tau))

    def layer(self, t, A, B, state, *, lam, step):
        return {"Z": _hard_threshold(A @ state["Z"] + B, self.tau)}

    def __repr__(self):
        return f"HardThresholdISTA(tau={self.tau})"


class LambdaDecayISTA(Encoder):
    """ISTA whose threshold decays across layers: λ_t = max(λ·γᵗ, λ_min)."""

    name = "lambda-decay"
    capabilities = frozenset({"differentiable", "soft_threshold"})

    def __init__(self, decay: float = 0.9, lam_min: float = 0.0):
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {decay!r}")
        self.decay, self.lam_min = float(decay), float(check_nonneg("lam_min", lam_min))

    def layer(self, t, A, B, state, *, lam, step):
        lam_t = lam * self.decay ** t
        lam_t = torch.clamp(lam_t, min=self.lam_min) if isinstance(lam_t, torch.Tensor) else max(lam_t, self.lam_min)
        return {"Z": _soft_threshold(A @ state["Z"] + B, step * lam_t)}

    def __repr__(self):
        return f"LambdaDecayISTA(decay={self.decay}, lam_min={self.lam_min})"


class NoThreshold(Encoder):
    """Negative control: Landweber iteration z_{t+1} = A z_t + B, no threshold (no sparsity, no λ)."""

    name = "no-threshold"
    capabilities = frozenset({"differentiable"})

    def layer(self, t, A, B, state, *, lam, step):
        return {"Z": A @ state["Z"] + B}


class UnscaledThresholdISTA(Encoder):
    """Negative control: threshold λ instead of αλ (a classic implementation slip)."""

    name = "unscaled-threshold"
    capabilities = frozenset({"differentiable", "fixed_lambda"})

    def layer(self, t, A, B, state, *, lam, step):
        return {"Z": _soft_threshold(A @ state["Z"] + B, lam)}


_REFERENCE = ISTA()


def ista(X: torch.Tensor, D: torch.Tensor, *, lam, step, T: int, return_path: bool = False) -> torch.Tensor:
    """T layers of ISTA from z₀ = 0 (the reference encoder).

    Parameters
    ----------
    X : (..., m, n) data, examples as columns.
    D : (..., m, p) dictionary.
    lam : float ≥ 0, or tensor of shape ``(...)`` (one λ per instance)
        Sparsity weight λ; the threshold is αλ.
    step : float > 0
        Step size α (ISTA converges for α < 2/‖D‖₂²).
    T : int ≥ 0
        Number of unrolled layers.
    return_path : bool
        Return all iterates ``(T+1, ..., p, n)`` (z_0 … z_T) instead of ``Z_T (..., p, n)``.

    Returns
    -------
    torch.Tensor
        ``Z_T (..., p, n)``, differentiable in ``D`` and ``X`` through all layers.
    """
    return _REFERENCE(X, D, lam=lam, step=step, T=T, return_path=return_path)
