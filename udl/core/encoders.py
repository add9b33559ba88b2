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

from udl.core._validate import check_nonneg, validate_encoder_args
from udl.core.threshold import as_lam, shrink
from udl.core.unrolled.function import UnrolledISTA, lean_applicable

__all__ = [
    "CAPABILITIES", "Encoder", "ISTA", "FISTA", "HardThresholdISTA", "LambdaDecayISTA",
    "NoThreshold", "UnscaledThresholdISTA", "soft_threshold", "hard_threshold", "ista",
    "is_reference", "validate_encoder_args",
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
    if not isinstance(b, torch.Tensor):
        b = torch.tensor(float(b), dtype=v.dtype, device=v.device)
    return shrink(v, b)


def hard_threshold(v: torch.Tensor, b) -> torch.Tensor:
    """H_b(v) = v·1{|v| > b}, elementwise; ``b ≥ 0``."""
    check_nonneg("b", b)
    return _hard_threshold(v, b)


def _hard_threshold(v, b):
    """Unchecked H_b for the layer loops."""
    return v * (v.abs() > b)


class Encoder:
    """An unrolled encoder: ``encoder(X, D, lam=, step=, T=) → Z_T (..., p, n)``.

    Subclasses implement :meth:`layer` (one unrolled layer), and may override :meth:`init`.
    Class attributes ``name`` and ``capabilities`` describe the encoder.

    The call validates its arguments once and hands λ to :meth:`init` and :meth:`layer` in its
    internal form (:func:`udl.core.threshold.as_lam`): a tensor ``(..., 1, 1)`` in X's dtype,
    one λ per instance broadcasting over the codes (``(1, 1)`` for a single λ).
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
        path = self._path(X, D, as_lam(lam, X), step, T)
        next(path)                                          # z_0
        yield from path

    def __call__(self, X, D, *, lam, step, T, return_path: bool = False) -> torch.Tensor:
        """Run T layers. Returns ``Z_T (..., p, n)``, or ``(T+1, ..., p, n)`` iterates z_0…z_T."""
        T = validate_encoder_args(X, D, lam, step, T)
        return self._unroll(X, D, as_lam(lam, X), step, T, return_path)

    def _unroll(self, X, D, lam, step, T: int, return_path: bool) -> torch.Tensor:
        """Unchecked call (λ in its internal form): ``Z_T``, or the stacked path z_0 … z_T."""
        if return_path:
            return torch.stack(list(self._path(X, D, lam, step, T)))
        for Z in self._path(X, D, lam, step, T):
            pass
        return Z

    def _path(self, X, D, lam, step, T: int) -> Iterator[torch.Tensor]:
        """Yield z_0, z_1, …, z_T through :meth:`init` and :meth:`layer` (unchecked)."""
        A, B, state = self.init(X, D, lam=lam, step=step)
        yield state["Z"]
        for t in range(T):
            state = self.layer(t, A, B, state, lam=lam, step=step)
            yield state["Z"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ISTA(Encoder):
    """The reference encoder: z_{t+1} = P_θ(A z_t + B), θ = αλ (computed once, in :meth:`init`).

    When D or X requires grad (and λ > 0), the call goes through
    :class:`udl.core.unrolled.UnrolledISTA`, a custom autograd function whose backward pass needs
    only the iterates, stored exactly in sparse form (non-zero values and their positions),
    instead of every dense activation; same values and gradients as plain autograd through
    :meth:`layer` up to rounding (on CPU it multiplies sparse iterates as CSR matrices, which
    sums in another order).
    """

    name = "ista"
    capabilities = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})

    def __call__(self, X, D, *, lam, step, T, return_path: bool = False) -> torch.Tensor:
        T = validate_encoder_args(X, D, lam, step, T)
        lam = as_lam(lam, X)
        if (T > 0 and not return_path and torch.is_grad_enabled() and (D.requires_grad or X.requires_grad)
                and is_reference(self) and lean_applicable(lam, step)):
            return UnrolledISTA.apply(D, X, lam, float(step), T, None, "index")
        return self._unroll(X, D, lam, step, T, return_path)

    def init(self, X, D, *, lam, step):
        A, B, state = super().init(X, D, lam=lam, step=step)
        return A, B, {**state, "theta": step * lam}

    def layer(self, t, A, B, state, *, lam, step):
        Z, theta = state["Z"], state["theta"]
        if A.shape[:-2] == B.shape[:-2] == Z.shape[:-2]:
            # one batched GEMM over the flattened batch (as udl.core.unrolled.layers.codes)
            V = torch.baddbmm(B.reshape((-1,) + B.shape[-2:]), A.reshape((-1,) + A.shape[-2:]),
                              Z.reshape((-1,) + Z.shape[-2:])).view(Z.shape)
        else:
            V = A @ Z + B
        return {"Z": shrink(V, theta), "theta": theta}


def is_reference(encoder) -> bool:
    """Whether ``encoder`` is the reference ISTA, unmodified (a subclass overriding its call, its
    :meth:`~Encoder.init` or its :meth:`~Encoder.layer` is not): the lean paths of
    :mod:`udl.core.unrolled` compute exactly its layers."""
    cls = type(encoder)
    return isinstance(encoder, ISTA) and cls.layer is ISTA.layer and cls.init is ISTA.init \
        and cls.__call__ is ISTA.__call__ and cls._unroll is Encoder._unroll and cls._path is Encoder._path


class FISTA(Encoder):
    """Accelerated ISTA (Beck & Teboulle): thresholding at an extrapolated point y_t."""

    name = "fista"
    capabilities = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})

    def init(self, X, D, *, lam, step):
        A, B, state = super().init(X, D, lam=lam, step=step)
        return A, B, {"Z": state["Z"], "Y": state["Z"], "k": 1.0, "theta": step * lam}

    def layer(self, t, A, B, state, *, lam, step):
        Z = shrink(A @ state["Y"] + B, state["theta"])
        k = (1 + (1 + 4 * state["k"] ** 2) ** 0.5) / 2
        return {"Z": Z, "Y": Z + ((state["k"] - 1) / k) * (Z - state["Z"]), "k": k, "theta": state["theta"]}


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
        lam_t = torch.clamp(lam * self.decay ** t, min=self.lam_min)
        return {"Z": shrink(A @ state["Z"] + B, step * lam_t)}

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
        return {"Z": shrink(A @ state["Z"] + B, lam)}


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
