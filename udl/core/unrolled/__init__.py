r"""Lean backpropagation through unrolled ISTA, and the gradient at every depth in one pass family.

Forward (z₀ = 0, t = 0 … T−1, batched over leading dimensions):

    v_t = A z_t + B,   z_{t+1} = P_θ(v_t),   A = I − α DᵀD,  B = α DᵀX,  θ = αλ.

Backward. Let a_T = ∂L/∂Z_T. For t = T−1 … 0:

    u_t = M_t ⊙ a_{t+1},   M_t = 1{|v_t| > θ} = 1{z_{t+1} ≠ 0},   a_t = Aᵀ u_t = A u_t,

and the gradients with respect to the layer operators are

    ∂L/∂A = G = Σ_t u_t z_tᵀ,     ∂L/∂B = U = Σ_t u_t      (the t = 0 term of G vanishes: z₀ = 0).

Through A = I − α DᵀD and B = α DᵀX (⟨G, dA⟩ = −α⟨D(G + Gᵀ), dD⟩, ⟨U, dB⟩ = α⟨X Uᵀ, dD⟩):

    ∂L/∂D = α [X Uᵀ − D (G + Gᵀ)],     ∂L/∂X = α D U.

(The docstring of the task writes S = Gᵀ = Σ z_t u_tᵀ; G + Gᵀ = S + Sᵀ.)

So the backward pass needs only the iterates z_1 … z_T — z_{t+1} gives the mask M_t (the
derivative of the soft threshold is 1 exactly where its output is non-zero: |v| > θ ⟺ v − θ·sign v
≠ 0 in floating point, since a difference of two distinct floats is never 0) and z_t enters G.
An iterate is stored exactly as its non-zero values plus where they are.

The package, along its seams (each module imports only those listed before it):

* :mod:`~udl.core.unrolled.storage` — :class:`SparseIterates`, the exact sparse store of the
  iterates, and its reader; the bit packing of masks.
* :mod:`~udl.core.unrolled.layers` — the operators A, B, the forward pass (storing the iterates),
  the adjoint pass, the CSR products of sparse layers (tunables ``SPARSE_DENSITY``,
  ``SPARSE_MIN_MACS``).
* :mod:`~udl.core.unrolled.function` — :class:`UnrolledISTA`, the autograd function behind
  :func:`udl.ista` when D or X requires grad (:func:`unrolled_ista`), and :func:`lean_gradients`:
  g_dec, g_ae-ls and g_ae-lasso from one forward and one backward pass (the initial adjoints of
  the "ae" kinds stacked).
* :mod:`~udl.core.unrolled.sweep` — :func:`lean_sweep`, the gradients at every depth in one
  forward pass and one stacked backward sweep (tunables ``COMPACT_FLOP_FRACTION``,
  ``SWEEP_STACK_BYTES``).

The gradient estimators (all averaged over the n examples), with R_T = D Z_T − X:

    g_dec      = R_T Z_Tᵀ / n                                            (Z_T held constant)
    g_ae-ls    = R_T Z_Tᵀ / n + backprop(a_T = Dᵀ R_T / n)
    g_ae-lasso = R_T Z_Tᵀ / n + backprop(a_T = Dᵀ R_T / n + λ sign(Z_T) / n)

(the direct term ∇₂L(Z_T, D) = R_T Z_Tᵀ / n is g_dec itself; the lasso term λ‖Z‖₁/n does not
depend on D directly).

This package knows the reference ISTA only and imports no encoder: the public entry points that
choose between it and a generic encoder — :func:`udl.ista` (:class:`udl.ISTA`),
:func:`udl.gradients` and :func:`udl.gradient_sweep` — live in :mod:`udl.core.encoders` and
:mod:`udl.core.estimators`. Everything here except :func:`unrolled_ista` and
:class:`SparseIterates` is unchecked; λ comes in its internal form
(:func:`udl.core.threshold.as_lam`). The tunables are not re-exported here: read and patch them
on the module that reads them.
"""
from __future__ import annotations

from udl.core.unrolled.function import UnrolledISTA, lean_applicable, lean_gradients, unrolled_ista
from udl.core.unrolled.storage import (STORAGES, Iterate, IterateReader, SparseIterates, default_chunk,
                                       pack_bits, unpack_bits)
from udl.core.unrolled.sweep import lean_sweep

__all__ = ["unrolled_ista", "UnrolledISTA", "lean_gradients", "lean_sweep", "lean_applicable",
           "SparseIterates", "IterateReader", "Iterate", "STORAGES", "default_chunk", "pack_bits",
           "unpack_bits"]
