r"""The gradient at every depth T = 1 … T_max of the reference ISTA, in one pass family.

One forward pass stores the iterates (exactly, sparse), then the adjoint chains of all depths
run backward together: at layer t the chains of every depth T > t are stacked along a leading
dimension, so each layer is one big matmul A·[u⁽ᵀ⁾…] and one big batched matmul for G: Σ_T T =
T_max²/2 layer-adjoints, the forward shared (separate unrolls would add T_max²/2 forward layers).
In the late, sparse layers the stacked adjoints are kept on the supports only (per example, the
rows of its non-zeros), which cuts the arithmetic by the sparsity (see :func:`_sweep_one`); the
early, dense layers use dense GEMMs.

:func:`lean_sweep` is unchecked and handles the reference ISTA only; the public
:func:`udl.gradient_sweep` (:mod:`udl.core.estimators`) validates, and falls back to one
:func:`udl.gradients` call per depth for other encoders. The tunables
:data:`COMPACT_FLOP_FRACTION` and :data:`SWEEP_STACK_BYTES` are read from this module at call
time (patch them here, not on the package).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from udl.core.unrolled.layers import mask_rows, operators, shrink_into
from udl.core.unrolled.storage import SparseIterates, default_chunk

__all__ = ["lean_sweep", "COMPACT_FLOP_FRACTION", "SWEEP_STACK_BYTES"]

#: Default memory budget (bytes) of the stacked adjoints of :func:`lean_sweep` (three dense
#: buffers of depths × kinds × p × n, plus two compact ones of depths × kinds × n × (S + 1), S the
#: largest support per example); more depths than fit are swept in blocks (same FLOPs).
SWEEP_STACK_BYTES = 2**30

class _Pattern(NamedTuple):
    """The non-zero pattern of one iterate z (p, n), in the two compact layouts of the sweep.

    Column-compact layout (n, S + 1): per example j its non-zero rows in increasing order, then
    padding up to S (the most per example) and one more slot: the last slot of every example is
    always padding, so it holds a zero that padded gathers can point to.
    ``cidx`` (n, S + 1): the rows, padding = p (a zero row/column of the padded operators);
    ``ridx`` (p, C): per row r the examples j with z[r, j] ≠ 0, padded with n (C = most per row);
    ``gidx`` (p, C): their flat positions j·(S + 1) + b in the column-compact layout (b = rank of
    r among example j's rows), padding = S (the zero slot of example 0);
    ``pos`` (nnz,): the same flat positions in the order of ``idx`` (row-major).
    """

    idx: torch.Tensor
    cidx: torch.Tensor
    ridx: torch.Tensor
    gidx: torch.Tensor
    pos: torch.Tensor
    S: int
    C: int


def _pattern(idx: torch.Tensor, p: int, n: int) -> _Pattern:
    """:class:`_Pattern` from the sorted flat positions ``idx`` (into p·n) of the non-zeros."""
    idx = idx.long()
    dev = idx.device
    r = torch.div(idx, n, rounding_mode="floor")
    j = idx - r * n
    M = torch.zeros(p * n, dtype=torch.int32, device=dev)
    M[idx] = 1
    M = M.view(p, n)
    b = M.cumsum(0, dtype=torch.int32).view(-1)[idx].long() - 1        # rank within its column
    per_row = torch.bincount(r, minlength=p)
    c = torch.arange(idx.numel(), device=dev) - (per_row.cumsum(0) - per_row)[r]   # within its row
    S = int(M.sum(0).max()) if idx.numel() else 0
    C = int(per_row.max()) if idx.numel() else 0
    pos = j * (S + 1) + b
    cidx = torch.full((n, S + 1), p, dtype=torch.long, device=dev)
    cidx[j, b] = r
    ridx = torch.full((p, C), n, dtype=torch.long, device=dev)
    ridx[r, c] = j
    gidx = torch.full((p, C), S, dtype=torch.long, device=dev)
    gidx[r, c] = pos
    return _Pattern(idx, cidx, ridx, gidx, pos, S, C)


#: Largest gathered block (elements) in a compact sweep step; larger ones are done in chunks.
_CHUNK_ELEMS = 2**22

#: The compact sweep step is used while its FLOPs stay below this fraction of the dense step's
#: (its gathers and smaller GEMMs run at a lower rate than the dense GEMMs).
COMPACT_FLOP_FRACTION = 0.6


def _sweep_one(X, D, *, lam, theta, step, depths, kinds, chunk, storage, max_stack, compact, ws=None):
    """All requested gradients at the sorted unique ``depths`` for one instance.

    X (m, n), D (m, p); λ, θ tensors (1, 1); α a float. Returns dict kind → (K, m, p).

    Backward, per block of depths, from the deepest layer down. In the *compact* phase (late,
    sparse layers, while cheaper) the stacked adjoints u_t of all active depths are kept per
    example on the support of z_{t+1} only: (n, S, k·F). Then
      u_{t−1} = A[supp z_t, supp z_{t+1}] u_t      one small GEMM per example (batched),
      G  += u_t z_tᵀ,  XU += X u_tᵀ                 one GEMM per code row r, over the examples
                                                    whose z_{t+1} has r in its support;
    so the FLOPs scale with the supports (≈ s²·n and s·p·n per depth) instead of p²·n. In the
    *dense* phase (early, dense layers) the stack is dense (k·F, p, n) with dense GEMMs.
    """
    m, n = X.shape
    p = D.shape[-1]
    K, T_max = len(depths), depths[-1]
    ae = [k for k in kinds if k != "dec"]
    F = len(ae)
    A, B = operators(D, X, step)
    slot = {T: i for i, T in enumerate(depths)}
    g_dir = X.new_zeros(K, m, p)                                  # ∇₂L(Z_T, D) = g_dec at each depth
    store = SparseIterates((p, n), X.dtype, X.device, chunk, storage) if ae and T_max > 0 else None
    Z = torch.zeros_like(B)
    V, scratch = torch.empty_like(B), torch.empty_like(B)
    ping = [Z, torch.empty_like(B)]
    for t in range(T_max):                                                         # forward
        torch.addmm(B, A, Z, out=V)
        out = store.slot() if store is not None else ping[(t + 1) % 2]
        shrink_into(V, theta, out, scratch)
        if store is not None:
            store.commit()
        Z = out
        if t + 1 in slot:
            g_dir[slot[t + 1]] = (D @ Z - X) @ Z.mT / n
    res = {"dec": g_dir} if "dec" in kinds else {}
    if not ae:
        return res
    ws = {} if ws is None else ws             # buffers reused across the instances of a batch
    U = _workspace(ws, "U", (K, F, p, n), X).zero_()   # U⁽ᵀ⁾ = Σ_t u_t⁽ᵀ⁾ (dense phase)
    G = _workspace(ws, "G", (K, F, p, p), X).zero_()   # G⁽ᵀ⁾ = Σ_t u_t⁽ᵀ⁾ z_tᵀ
    XU = X.new_zeros(K, F, m, p)                       # X U⁽ᵀ⁾ᵀ (compact phase)
    if T_max > 0:
        reader = store.reader()
        width = max(1, min(K, max_stack))
        cur = _workspace(ws, "cur", (width, F, p, n), X)    # a_{t+1} of the active depths
        u = _workspace(ws, "u", (width, F, p, n), X)        # u_t = M_t ⊙ a_{t+1}
        zero = X.new_zeros(())
        A_pad = torch.zeros(p + 1, p + 1, dtype=X.dtype, device=X.device)
        A_pad[:p, :p] = A
        ZX = X.new_zeros(n + 1, p + m)                                      # [z_tᵀ | Xᵀ; 0]
        ZX[:n, p:] = X.mT
        cols = torch.arange(n, device=X.device)
        patterns: dict = {}

        def pattern(s):                        # of z_s, s ≥ 1; keeps the two most recent
            if s not in patterns:
                it_s = reader.get(s)
                idx = it_s.idx if it_s.idx is not None else it_s.z.reshape(-1).nonzero().squeeze(1)
                for key in [k for k in patterns if k > s + 1]:
                    del patterns[key]
                patterns[s] = _pattern(idx, p, n)
            return patterns[s]

        bufs = [X.new_empty(0), X.new_empty(0)]   # compact stacks (n, S + 1, w·F), ping-pong

        def compact_view(i, S, w):
            need = n * (S + 1) * w * F
            if bufs[i].numel() < need:
                bufs[i] = X.new_empty(need)
            return bufs[i][:need].view(n, S + 1, w * F)

        # blocks of depths, each swept from its deepest layer down (the chains are independent)
        for hi in range(K, 0, -width):
            lo = max(0, hi - width)
            w = hi - lo
            first = hi                         # slots first…hi−1 hold the depths T > t (active)
            patterns.clear()
            dense = not compact
            # compact phase: uc = u_t of the active depths, (n, S + 1, w·F); slot s ↔ columns
            # (s − lo)·F …, so the active ones are the contiguous range cols (no copies)
            uc, which = None, 0
            # [r, col, :p] = row r of G, [r, col, p:] = column r of X Uᵀ (compact-phase terms)
            GXc = X.new_zeros(p, w * F, p + m) if compact else None
            for t in range(depths[hi - 1] - 1, -1, -1):
                it = reader.get(t + 1)
                if not dense:
                    P1 = pattern(t + 1)
                    P0 = pattern(t) if t >= 1 else None
                    cost = 2 * n * (P1.S + 1) * (P0.S + 1 if P0 else 0) + 2 * p * P1.C * (p + m)
                    if cost > COMPACT_FLOP_FRACTION * 4 * p * p * n:             # switch to dense
                        dense = True
                        if uc is not None and first < hi:
                            k = hi - first
                            rows = cur[first - lo:hi - lo].view(k * F, p * n)
                            rows.zero_()
                            flat = uc.view(n * (P1.S + 1), w * F)[:, (first - lo) * F:]
                            rows[:, P1.idx] = flat.index_select(0, P1.pos).mT
                        uc = None
                if t + 1 in slot and lo <= slot[t + 1] < hi:       # inject depth T = t + 1
                    first = slot[t + 1]
                    a_ls = D.mT @ (D @ it.z - X) / n                # ∂L/∂Z_T of the least squares
                    seeds = [a_ls + torch.sign(it.z) * (lam / n) if kind == "ae-lasso" else a_ls
                             for kind in ae]
                    if dense:
                        for f, a in enumerate(seeds):
                            cur[first - lo, f].copy_(a)
                    else:                                          # M_t ⊙ a on the support of z_{t+1}
                        if uc is None:
                            uc = compact_view(which, P1.S, w)
                        a_pad = torch.cat([torch.stack(seeds, -1), X.new_zeros(1, n, F)])   # (p+1, n, F)
                        new = a_pad[P1.cidx.mT.reshape(-1), cols.repeat(P1.S + 1)]          # ((S+1)·n, F)
                        c0 = (first - lo) * F
                        uc[:, :, c0:c0 + F] = new.view(P1.S + 1, n, F).transpose(0, 1)
                if first == hi:
                    continue
                k = hi - first
                if dense:
                    act, uact = cur[first - lo:hi - lo], u[first - lo:hi - lo]     # (k, F, p, n)
                    mask_rows(act.view(k * F, p * n), uact.view(k * F, p * n),
                               U[first:hi].view(k * F, p * n), it, zero)
                    if t >= 1:
                        z_t = reader.get(t).z
                        # G += u zᵀ per depth: a batched GEMM (≈1.5× the rate of one folded GEMM)
                        G[first:hi].view(k * F, p, p).baddbmm_(uact.view(k * F, p, n),
                                                               z_t.mT.expand(k * F, n, p))
                        torch.matmul(A, uact.view(k * F, p, n), out=act.view(k * F, p, n))   # a_t = A u_t
                    continue
                # compact step. u_g[r, c, :] = u_t[r, ridx[r, c]] for the active depths; one GEMM
                # per code row r gives [u zᵀ | u Xᵀ] (row r of G, column r of X Uᵀ) for all depths
                c0 = (first - lo) * F
                flat = uc.view(n * (P1.S + 1), w * F)[:, c0:]
                if t >= 1:
                    ZX[:n, :p] = reader.get(t).z.mT                    # [z_tᵀ | Xᵀ], zero last row
                zx, gx = (ZX, GXc[:, c0:]) if t >= 1 else (ZX[:, p:], GXc[:, c0:, p:])  # z_0 = 0
                step_r = max(1, _CHUNK_ELEMS // max(1, P1.C * max(k * F, p + m)))
                for r0 in range(0, p, step_r):                          # in chunks of rows r
                    r1 = min(p, r0 + step_r)
                    u_g = flat.index_select(0, P1.gidx[r0:r1].reshape(-1)).view(r1 - r0, P1.C, k * F)
                    zx_g = zx.index_select(0, P1.ridx[r0:r1].reshape(-1)).view(r1 - r0, P1.C, zx.shape[1])
                    gx[r0:r1].add_(torch.bmm(u_g.mT, zx_g))
                if t >= 1:                                              # u_{t−1} = A[S_t, S_{t+1}] u_t
                    which = 1 - which
                    nxt = compact_view(which, P0.S, w)
                    step_j = max(1, _CHUNK_ELEMS // ((P0.S + 1) * (P1.S + 1)))
                    for j0 in range(0, n, step_j):                      # in chunks of examples
                        j1 = min(n, j0 + step_j)
                        A_sub = A_pad.view(-1)[P0.cidx[j0:j1, :, None] * (p + 1) + P1.cidx[j0:j1, None, :]]
                        torch.bmm(A_sub, uc[j0:j1, :, c0:], out=nxt[j0:j1, :, c0:])
                    uc = nxt                                            # (its last row stays zero)
            if compact:
                GX = GXc.view(p, w, F, p + m)
                G[lo:hi] += GX[..., :p].permute(1, 2, 0, 3)
                XU[lo:hi] += GX[..., p:].permute(1, 2, 3, 0)
    for f, kind in enumerate(ae):
        g = step * (X @ U[:, f].mT + XU[:, f] - D @ (G[:, f] + G[:, f].mT)) + g_dir
        res[kind] = g                           # (depth 0: U = G = 0, so g = g_dir = 0)
    return res


def _workspace(ws: dict, name: str, shape, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised buffer ``ws[name]`` of ``shape``, reused when the shape matches.

    Fresh large allocations are costly on some machines (page faults); a batch of instances
    sweeps through the same buffers."""
    buf = ws.get(name)
    if buf is None or buf.shape != tuple(shape):
        buf = ws[name] = like.new_empty(shape)
    return buf


def lean_sweep(X: torch.Tensor, D: torch.Tensor, *, lam, step: float, depths, kinds,
               chunk: int | None = None, storage: str = "index", max_stack: int | None = None,
               compact: bool | None = None) -> dict:
    """The gradient estimators of the reference ISTA at the sorted unique ``depths``, per instance.

    Unchecked (:func:`udl.gradient_sweep` validates and calls this): X (..., m, n), D (..., m, p),
    λ in its internal form (a tensor ``(..., 1, 1)`` > 0), α a float, ``depths`` sorted unique
    ints ≥ 0 (not empty), ``kinds`` a non-empty tuple of valid kinds. The instances of the
    broadcast batch are swept one after the other (buffers reused); ``chunk``, ``storage``,
    ``max_stack`` and ``compact`` as in :func:`udl.gradient_sweep` (None: the defaults).

    Returns
    -------
    dict kind → tensor ``(len(depths), ..., m, p)``.
    """
    batch = torch.broadcast_shapes(X.shape[:-2], D.shape[:-2], lam.shape[:-2])
    m, p = D.shape[-2:]
    n_ae = sum(k != "dec" for k in kinds)
    if max_stack is None:
        max_stack = max(1, SWEEP_STACK_BYTES // (3 * max(n_ae, 1) * p * X.shape[-1] * X.element_size()))
    chunk = default_chunk(X.device) if chunk is None else chunk
    compact = X.device.type == "cpu" if compact is None else bool(compact)
    with torch.no_grad():
        X_f = X.detach().expand(batch + X.shape[-2:]).reshape((-1,) + X.shape[-2:])
        D_f = D.detach().expand(batch + D.shape[-2:]).reshape((-1,) + D.shape[-2:])
        lam = lam.detach().expand(batch + (1, 1)).reshape(-1, 1, 1)
        theta = step * lam                                              # θ = αλ, once per call
        per, ws = [], {}
        for b in range(X_f.shape[0]):
            per.append(_sweep_one(X_f[b], D_f[b], lam=lam[b], theta=theta[b], step=step,
                                  depths=depths, kinds=kinds, chunk=chunk, storage=storage,
                                  max_stack=max_stack, compact=compact, ws=ws))
        return {k: torch.stack([r[k] for r in per], dim=1).reshape((len(depths),) + batch + (m, p))
                for k in kinds}
