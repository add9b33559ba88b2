r"""The lean backward as an autograd function, and several estimators from one forward and one backward.

* :class:`UnrolledISTA` / :func:`unrolled_ista` — a :class:`torch.autograd.Function` (``Z_T``
  differentiable in D and X), used by :class:`udl.ISTA` / :func:`udl.ista` whenever D or X
  requires grad.
* :func:`lean_gradients` — g_dec, g_ae-lasso, g_ae-ls of the reference ISTA: the initial
  adjoints of the requested "ae" kinds are stacked and share one backward pass (this is how
  :func:`udl.gradients` runs for the reference encoder).

λ comes in its internal form (:func:`udl.core.threshold.as_lam`, a tensor ``(..., 1, 1)``); θ = αλ
is computed once per call, in :func:`prepare`.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from udl.core._validate import check_choice, check_int, validate_encoder_args
from udl.core.threshold import as_lam
from udl.core.unrolled.layers import adjoint_pass, codes, forward, operator_A, operators
from udl.core.unrolled.storage import STORAGES, SparseIterates, default_chunk, reader_from

__all__ = ["UnrolledISTA", "unrolled_ista", "lean_applicable", "lean_gradients", "prepare"]


def lean_applicable(lam: torch.Tensor, step) -> bool:
    """Whether the lean function handles these hyper-parameters (else use plain autograd).

    ``lam`` in its internal form (a tensor). Not handled: a λ or α that requires grad, an α with
    more than one entry, and λ = 0 (no threshold: the mask would miss exact zeros of v).
    """
    if isinstance(step, torch.Tensor) and (step.requires_grad or step.numel() != 1):
        return False
    return not lam.requires_grad and bool((lam > 0).all())


def prepare(X, D, lam, step: float):
    """Operators, λ and θ = αλ flattened over the broadcast batch.

    Returns (batch, A (N, p, p), B (N, p, n), λ (N, 1, 1), θ (N, 1, 1)).
    """
    A, B = operators(D, X, step)
    batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2], lam.shape[:-2])
    p, n = B.shape[-2:]
    A = A.expand(batch + (p, p)).reshape(-1, p, p)
    B = B.expand(batch + (p, n)).reshape(-1, p, n)
    lam = lam.expand(batch + (1, 1)).reshape(-1, 1, 1)
    return batch, A, B, lam, step * lam


def _sum_to(g: torch.Tensor, shape) -> torch.Tensor:
    """Sum a broadcast gradient back to ``shape``."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(dim=tuple(range(lead)))
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(dim=dims, keepdim=True) if dims else g


def _untranspose(Zt: torch.Tensor, batch) -> torch.Tensor:
    """Z (batch..., p, n), contiguous, from Zᵀ (N, n, p)."""
    return Zt.mT.contiguous().view(batch + Zt.shape[-1:] + Zt.shape[-2:-1])


class UnrolledISTA(torch.autograd.Function):
    """Z_T = ISTA_T(X, D) whose backward needs only the sparse iterates (see :mod:`udl.core.unrolled`).

    ``apply(D, X, lam, step, T, chunk, storage)`` is unchecked: λ in its internal form (> 0, not
    requiring grad), α a float > 0, T ≥ 0, ``chunk`` None (:func:`default_chunk`) or ≥ 1.
    """

    @staticmethod
    def forward(ctx, D, X, lam, step, T, chunk, storage):
        with torch.no_grad():
            batch, A, B, _, theta = prepare(X, D, lam, step)
            Bt = B.mT.contiguous()
            store = SparseIterates(Bt.shape, Bt.dtype, Bt.device,
                                   default_chunk(Bt.device) if chunk is None else chunk, storage)
            Zt = forward(A, Bt, theta, T, store)
        ctx.save_for_backward(D, X, *store.tensors())
        ctx.meta = store.meta()
        ctx.info = (step, batch, T)
        return _untranspose(Zt, batch)

    @staticmethod
    @once_differentiable
    def backward(ctx, gZ):
        D, X, *stored = ctx.saved_tensors
        step, batch, T = ctx.info
        need_D, need_X = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        p, n = D.shape[-1], X.shape[-1]
        with torch.no_grad():
            A = operator_A(D, step).expand(batch + (p, p)).reshape(-1, p, p)
            a_T = gZ.expand(batch + (p, n)).reshape(-1, p, n).mT.unsqueeze(0)      # (1, N, n, p)
            G, Ut = adjoint_pass(reader_from(ctx.meta, stored), A, a_T, T)
            G, Ut = G[0].view(batch + (p, p)), Ut[0].view(batch + (n, p))
            dD = _sum_to(step * (X @ Ut - D @ (G + G.mT)), D.shape) if need_D else None
            dX = _sum_to(step * (D @ Ut.mT), X.shape) if need_X else None
        return dD, dX, None, None, None, None, None


def unrolled_ista(X: torch.Tensor, D: torch.Tensor, *, lam, step, T: int, chunk: int | None = None,
                  storage: str = "index") -> torch.Tensor:
    """T layers of ISTA from z₀ = 0, differentiable in D and X through the lean backward pass.

    Same values and gradients as :func:`udl.ista` with plain autograd (which calls this when D
    or X requires grad); the graph holds D, X and the iterates in exact sparse form instead of
    ~2T dense activations.

    Parameters
    ----------
    X : (..., m, n).  D : (..., m, p).
    lam : float > 0 or tensor ``(...)`` > 0 (not requiring grad).  step : float > 0.  T : int ≥ 0.
    chunk : layers compacted together (default :func:`default_chunk`).
    storage : "index" (default, fastest) or "bits" (least memory); see :mod:`udl.core.unrolled.storage`.

    Returns
    -------
    Z_T : (..., p, n)
    """
    T = validate_encoder_args(X, D, lam, step, T)
    check_choice("storage", storage, STORAGES)
    if chunk is not None:
        chunk = check_int("chunk", chunk, low=1)
    lam = as_lam(lam, X)
    if not lean_applicable(lam, step):
        raise ValueError("unrolled_ista needs λ > 0 and λ, α not requiring grad; use udl.ista")
    return UnrolledISTA.apply(D, X, lam, float(step), T, chunk, storage)


def lean_gradients(X, D, *, lam, step: float, T: int, kinds, chunk: int | None = None,
                   storage: str = "index"):
    """g_dec, g_ae-lasso, g_ae-ls of the reference ISTA from one forward and one backward pass.

    Unchecked (:func:`udl.gradients` validates and calls this): λ in its internal form, with
    :func:`lean_applicable`; α a float; ``kinds`` a tuple of valid kinds.

    Returns
    -------
    (dict kind → gradient, Z_T (..., p, n)). As autograd on a loss summed over the batch would,
    the "ae" kinds have the shape of D (summed over dimensions along which D is broadcast);
    "dec" has the broadcast batch shape.
    """
    ae = [k for k in kinds if k != "dec"]
    with torch.no_grad():
        X, D = X.detach(), D.detach()
        batch, A, B, lam, theta = prepare(X, D, lam, step)
        p, n = B.shape[-2:]
        if ae and T > 0:
            Bt = B.mT.contiguous()
            store = SparseIterates(Bt.shape, Bt.dtype, Bt.device,
                                   default_chunk(Bt.device) if chunk is None else chunk, storage)
            Zt = forward(A, Bt, theta, T, store)
            Z = _untranspose(Zt, batch)
        else:
            Z = codes(A, B, theta, T).view(batch + (p, n))
        R = D @ Z - X                                                  # (batch, m, n)
        g_dir = R @ Z.mT / n                                           # ∇₂L(Z_T, D) = g_dec
        out = {"dec": g_dir} if "dec" in kinds else {}
        if ae and T == 0:
            out.update({k: _sum_to(g_dir, D.shape).clone() for k in ae})
        elif ae:
            a_ls = (D.mT @ R / n).expand(batch + (p, n)).reshape(-1, p, n).mT   # (N, n, p)
            inits = [a_ls if k == "ae-ls" else a_ls + lam * torch.sign(Zt) / n for k in ae]
            G, Ut = adjoint_pass(store.reader(), A, torch.stack(inits), T)
            for s, k in enumerate(ae):
                G_s, Ut_s = G[s].view(batch + (p, p)), Ut[s].view(batch + (n, p))
                out[k] = _sum_to(g_dir + step * (X @ Ut_s - D @ (G_s + G_s.mT)), D.shape)
        out = {k: out[k] for k in kinds}
    return out, Z
