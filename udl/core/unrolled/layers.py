r"""The lean layers of unrolled ISTA: operators, the forward pass (storing iterates), the adjoint pass.

Forward z_{t+1} = P_θ(A z_t + B) with A = I − α DᵀD, B = α DᵀX; backward u_t = M_t ⊙ a_{t+1},
a_t = A u_t, G = Σ_t u_t z_tᵀ, U = Σ_t u_t (see :mod:`udl.core.unrolled`). Everything here is
unchecked and batched over a flat leading dimension N (instances); θ is a tensor ``(N, 1, 1)``.

Layout and sparse layers. When the iterates are stored (a gradient is wanted), the forward and
adjoint passes run on transposed codes zᵀ (n, p): z_{t+1}ᵀ = P_θ(z_tᵀ Aᵀ + Bᵀ), a_tᵀ = u_tᵀ A.
Rows are examples, so an iterate's stored non-zero positions (row-major) are a CSR matrix per
instance, and on CPU a layer whose input has few non-zeros (:data:`SPARSE_DENSITY`; late
iterates have ≈ s/p) is a CSR × dense product costing 2·nnz·p flops instead of 2·n·p² (the
accumulation of G stays a dense GEMM). Without a store (codes or g_dec only) compaction would
cost about what it saves, so :func:`codes` runs dense GEMMs in the (p, n) layout, the same
operations as :meth:`udl.ISTA.layer`. Codes with and without a gradient therefore agree to
rounding, not bit for bit.

The tunables :data:`SPARSE_DENSITY` and :data:`SPARSE_MIN_MACS` are read from this module at
call time (patch them here, not on the package).
"""
from __future__ import annotations

import warnings

import torch

from udl.core.unrolled.storage import Iterate, IterateReader, SparseIterates

__all__ = ["operator_A", "operators", "shrink_into", "mask_rows", "sparse_layers", "codes", "forward",
           "adjoint_pass", "SPARSE_DENSITY", "SPARSE_MIN_MACS"]


def operator_A(D, step: float):
    """A = I − α DᵀD (..., p, p), with the same operations as :meth:`udl.Encoder.init`."""
    return torch.eye(D.shape[-1], dtype=D.dtype, device=D.device) - step * (D.mT @ D)


def operators(D, X, step: float):
    """A = I − α DᵀD (..., p, p) and B = α DᵀX (..., p, n), as in :meth:`udl.Encoder.init`."""
    return operator_A(D, step), step * (D.mT @ X)


def shrink_into(v, theta, out, scratch):
    """out ← P_θ(v) in preallocated buffers (``scratch`` like ``v``); θ a tensor broadcasting with v.

    v − min(max(v, −θ), θ): the values of :func:`udl.core.threshold.shrink` (and of softshrink)
    bit for bit. (max/min are vectorised on CPU; a clamp with tensor bounds is several times slower.)
    """
    torch.maximum(v, -theta, out=scratch)
    torch.minimum(scratch, theta, out=scratch)
    return torch.sub(v, scratch, out=out)


def mask_rows(a2: torch.Tensor, u2: torch.Tensor, U2: torch.Tensor, it: Iterate, zero):
    """u ← M ⊙ a and U += u for stacked rows ``(S, L)``, M the non-zero mask of iterate ``it``.

    Dense passes (a ``where`` and an add; in A/B runs as fast as scattering only the non-zeros,
    and simpler; same results, u being zero off M). Returns the S vectors of u's non-zeros in the
    order of ``it.idx`` when positions are at hand (format "index", chunk 1: the values of the
    CSR products), else None.
    """
    mask = it.z.reshape(-1).bool() if it.mask is None else it.mask.reshape(-1)   # (bool cast: z ≠ 0)
    torch.where(mask, a2, zero, out=u2)
    U2.add_(u2)
    if it.idx is None:
        return None
    return [u1.index_select(0, it.idx) for u1 in u2]


# Sparse layers. In the transposed layout a layer is zᵀ_{t+1} = P_θ(zᵀ_t Aᵀ + Bᵀ): rows are
# examples, so the iterate's stored non-zero positions (row-major) are exactly a CSR matrix
# (n × p) per instance, and zᵀ_t Aᵀ — likewise uᵀ_t A in the adjoint pass, u_t having the support
# of z_{t+1} — is a sparse × dense product costing 2·nnz·p instead of 2·n·p² flops.

#: On CPU, a layer whose input has at most this fraction of non-zeros multiplies it as a CSR
#: matrix (one instance at a time) instead of by a dense batched GEMM. The CSR product's cost
#: grows with the non-zeros. On the 2-core benchmark CPU (MKL; batch 16, p = 150, n = 1000,
#: T = 100) forward + backward took, for thresholds 0 (all dense) / 0.05 / 0.1 / 0.15 / 0.2 / 0.3,
#: 4.4 / 3.2–3.6 / 3.0–3.5 / 2.8–3.1 / 2.9–3.7 / 3.1–3.5 s with 2 threads, and
#: 6.4 / 4.7–5.2 / 4.6–5.0 / 4.3 / 4.5–4.6 / 4.2–4.4 s with 1: 0.15 was best or tied in both.
#: Late ISTA iterates have density ≈ s/p.
SPARSE_DENSITY = 0.15

#: ... and only when one instance's dense product has at least this many multiply-adds (p²·n):
#: below it, the per-instance calls (tens of µs each) cost more than the product they save.
SPARSE_MIN_MACS = 2**21

# torch warns once per process that CSR tensors are "in beta state": spend that warning here,
# silenced, so that it never reaches users (or pytest's warnings-as-errors) mid-computation.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.sparse_csr_tensor(torch.tensor([0, 0]), torch.tensor([], dtype=torch.long),
                            torch.tensor([]), (1, 1))


def sparse_layers(Bt: torch.Tensor) -> bool:
    """Whether layers on ``Bt`` (N, n, p) may use CSR products: CPU, and a large enough product."""
    n, p = Bt.shape[-2:]
    return Bt.device.type == "cpu" and p * p * n >= SPARSE_MIN_MACS


def _csr_per_instance(idx: torch.Tensor, values, N: int, rows: int, cols: int):
    """CSR matrices (rows × cols) of a tensor (N, rows, cols) from its non-zeros.

    ``idx`` : (nnz,) increasing flat positions (int32 or int64); ``values`` : list of (nnz,)
    value vectors sharing these positions. Returns, per value vector, the N matrices.
    """
    r = torch.div(idx, cols, rounding_mode="floor")                   # global row b·rows + i
    col = idx - r * cols
    crow = idx.new_zeros(N * rows + 1)
    crow[1:] = torch.bincount(r, minlength=N * rows).cumsum(0)
    starts = crow[::rows].tolist()                                    # N + 1 offsets (CPU only)
    crows = [crow[b * rows:(b + 1) * rows + 1] - starts[b] for b in range(N)]
    return [[torch.sparse_csr_tensor(crows[b], col[starts[b]:starts[b + 1]],
                                     vals[starts[b]:starts[b + 1]], (rows, cols),
                                     check_invariants=False) for b in range(N)]
            for vals in values]


def _sparse_now(idx: torch.Tensor | None, numel: int) -> bool:
    return idx is not None and idx.numel() <= SPARSE_DENSITY * numel


def codes(A, B, theta, T: int):
    """T layers from z₀ = 0 without storing iterates, in the (p, n) layout: dense GEMMs, the same
    operations as :meth:`udl.ISTA.layer`. A (N, p, p), B (N, p, n), θ (N, 1, 1).
    Returns Z_T (N, p, n)."""
    Z = torch.zeros_like(B)
    if T == 0:
        return Z
    V, scratch = torch.empty_like(B), torch.empty_like(B)
    ping = [Z, torch.empty_like(B)]
    for t in range(T):
        torch.baddbmm(B, A, Z, out=V)
        out = ping[(t + 1) % 2]
        shrink_into(V, theta, out, scratch)
        Z = out
    return Z


def forward(A, Bt, theta, T: int, store: SparseIterates):
    """T layers from z₀ = 0 in the transposed layout, storing the iterates:
    zᵀ_{t+1} = P_θ(zᵀ_t Aᵀ + Bᵀ).

    A (N, p, p), Bt = Bᵀ (N, n, p), θ (N, 1, 1). Returns Z_Tᵀ (N, n, p) and fills ``store`` (of
    shape (N, n, p)) with z_1ᵀ … z_Tᵀ. Where :func:`sparse_layers` allows, a layer whose input has
    few non-zeros (:data:`SPARSE_DENSITY`) multiplies it as CSR matrices built from the store's
    positions (format "index", chunk 1; other formats keep dense layers). The loop allocates only
    what ``store`` keeps (and, in sparse layers, the CSR row offsets).
    """
    Z = torch.zeros_like(Bt)
    if T == 0:
        return Z
    N, n, p = Bt.shape
    sparse = sparse_layers(Bt) and store.chunk == 1 and store.storage == "index"
    At = A.mT.contiguous() if sparse else A.mT
    V, scratch = torch.empty_like(Bt), torch.empty_like(Bt)
    idx = vals = None                                   # non-zeros of the input z_t (sparse mode)
    for t in range(T):
        if t == 0:
            V_t = Bt                                                    # z₀ = 0: v₀ = B
        elif _sparse_now(idx, Bt.numel()):
            V_t = V.copy_(Bt)
            for b, M in enumerate(_csr_per_instance(idx, [vals], N, n, p)[0]):
                V[b].addmm_(M, At[b])
        else:
            V_t = torch.baddbmm(Bt, Z, At, out=V)
        out = store.slot()
        shrink_into(V_t, theta, out, scratch)
        store.commit()
        Z = out
        if sparse:
            idx, vals = store.keys[-1], store.values[-1]
    return Z.clone()


def adjoint_pass(reader: IterateReader, A, a_T, T: int):
    """The adjoint recursion for S stacked initial adjoints, in the transposed layout.

    A : (N, p, p).  a_T : (S, N, n, p), S initial adjoints (∂L/∂Z_T)ᵀ per instance; the reader
    gives z_tᵀ (N, n, p). With u_t = M_t ⊙ a_{t+1} and a_t = Aᵀ u_t, i.e. aᵀ_t = uᵀ_t A (a CSR
    product in sparse layers, as in :func:`forward`), returns G = Σ_t u_t z_tᵀ (S, N, p, p) and
    Uᵀ = Σ_t uᵀ_t (S, N, n, p). The layer loop works in preallocated buffers.
    """
    S, N, n, p = a_T.shape
    sparse = sparse_layers(a_T[0])
    A_rep = A if S == 1 else A.repeat(S, 1, 1)                         # (S·N, p, p), built once
    G = a_T.new_zeros(S, N, p, p)
    U = a_T.new_zeros(S, N, n, p)
    a = a_T.clone(memory_format=torch.contiguous_format)                # owned buffers
    u = torch.empty_like(a)
    zero = a.new_zeros(())
    L = N * n * p
    for t in range(T - 1, -1, -1):
        it = reader.get(t + 1)
        vals = mask_rows(a.view(S, L), u.view(S, L), U.view(S, L), it, zero)   # u_t = M_t ⊙ a_{t+1}
        if t >= 1:
            z_t = reader.get(t).z
            for s in range(S):
                G[s].baddbmm_(u[s].mT, z_t)                             # G += u_t z_tᵀ
            if sparse and _sparse_now(it.idx, L):                       # (idx given ⇔ vals given)
                for s, mats in enumerate(_csr_per_instance(it.idx, vals, N, n, p)):
                    for b, M in enumerate(mats):
                        a[s, b].addmm_(M, A[b], beta=0)                 # aᵀ_t = uᵀ_t A
            else:
                torch.bmm(u.view(S * N, n, p), A_rep, out=a.view(S * N, n, p))
    return G, U
