"""Plain re-implementations of the lean paths of :mod:`udl.core.unrolled`, for the mutants that
carry a bug into them (:mod:`~udl.engine.mutants.backward`, :mod:`~udl.engine.mutants.paths`).

Unmutated, each computes what the lean code computes (to rounding; tests/test_mutants.py checks
it): :func:`dense_adjoint` is the adjoint recursion of
:func:`udl.core.unrolled.layers.adjoint_pass`, :func:`per_depth_sweep` is
:func:`udl.core.unrolled.sweep.lean_sweep` as one lean-estimator call per depth (so that a bug in
the lean estimators reaches the depth sweep too).
"""

from __future__ import annotations

import torch

from udl.core.unrolled import function

__all__ = ["dense_adjoint", "per_depth_sweep"]


def dense_adjoint(reader, A, a_T, T: int, *, mask: bool = True, last: int | None = None):
    """The adjoint recursion of :func:`udl.core.unrolled.layers.adjoint_pass`, dense and plain.

    Same arguments and results (transposed layout: a_T ``(S, N, n, p)``, the reader gives
    z_tᵀ ``(N, n, p)``; returns G ``(S, N, p, p)`` and Uᵀ ``(S, N, n, p)``). ``mask=False`` drops
    the active-set mask (u_t = a_{t+1}); ``last=k`` stops after the last k layers.
    """
    S, N, n, p = a_T.shape
    G = a_T.new_zeros(S, N, p, p)
    U = a_T.new_zeros(S, N, n, p)
    a = a_T.clone()
    first = 0 if last is None else max(0, T - last)
    for t in range(T - 1, first - 1, -1):
        z_next = reader.get(t + 1).z
        u = a * (z_next != 0) if mask else a.clone()
        U += u
        if t >= 1:
            G += u.mT @ reader.get(t).z                   # G += u_t z_tᵀ
            a = u @ A                                     # a_tᵀ = u_tᵀ A
    return G, U


def per_depth_sweep(X, D, *, lam, step, depths, kinds, chunk=None, storage="index", max_stack=None,
                    compact=None):
    """:func:`udl.core.unrolled.sweep.lean_sweep` computed as one
    :func:`~udl.core.unrolled.function.lean_gradients` call per depth (same arguments, same
    result up to rounding), so that a bug in the lean estimators reaches the sweep too."""
    batch = torch.broadcast_shapes(X.shape[:-2], D.shape[:-2], lam.shape[:-2])
    m, p = D.shape[-2:]
    Xe, De = X.expand(batch + X.shape[-2:]), D.expand(batch + D.shape[-2:])
    per = [function.lean_gradients(Xe, De, lam=lam, step=step, T=T, kinds=kinds, chunk=chunk, storage=storage)[0]
           for T in depths]
    return {k: torch.stack([g[k].expand(batch + (m, p)) for g in per]) for k in kinds}
