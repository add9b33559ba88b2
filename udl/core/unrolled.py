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
An iterate is *exactly* recoverable from its non-zero values plus where they are
(:class:`SparseIterates`), in one of two formats:

* ``"index"`` (default): flat positions as int32 + values — 8 bytes per non-zero (float32). The
  backward pass then masks and accumulates with a memset plus gathers/scatters of the non-zeros
  (no dense pass over a mask): on CPU the fastest.
* ``"bits"``: the non-zero mask packed 8 entries per byte (1/32 of a float32 tensor) + values —
  the least memory (4 bytes per non-zero + 1 bit per entry); masking is then a dense ``where``.

Early layers may be dense (z₁ = P_θ(α Dᵀx) keeps ~half its entries); the storage stays exact, it
only saves less there. Iterates are compacted in chunks of ``chunk`` layers: on a GPU, the
compaction (``nonzero``) waits for the device once per call (its output size is data-dependent),
so a chunk of 8 layers costs one wait per 8 layers; the backward pass rebuilds a chunk by a
scatter into zeros, which does not wait. Dense buffers are allocated once, outside layer loops.

Layout and sparse layers. When the iterates are stored (a gradient is wanted), the forward and
adjoint passes run on transposed codes zᵀ (n, p): z_{t+1}ᵀ = P_θ(z_tᵀ Aᵀ + Bᵀ), a_tᵀ = u_tᵀ A.
Rows are examples, so an iterate's stored non-zero positions (row-major) are a CSR matrix per
instance, and on CPU a layer whose input has few non-zeros (:data:`SPARSE_DENSITY`; late
iterates have ≈ s/p) is a CSR × dense product costing 2·nnz·p flops instead of 2·n·p² (the
accumulation of G stays a dense GEMM). Without a store (codes or g_dec only) compaction would
cost about what it saves, so :func:`_codes` runs dense GEMMs in the (p, n) layout, the same
operations as :meth:`udl.ISTA.layer`. Codes with and without a gradient therefore agree to
rounding, not bit for bit.

Two users of the same forward store:

* :func:`unrolled_ista` — a :class:`torch.autograd.Function` (``Z_T`` differentiable in D and X),
  used by :class:`udl.ISTA` / :func:`udl.ista` whenever D or X requires grad. Its backward can
  carry several initial adjoints at once (stacked on a new dimension), which is how
  :func:`udl.gradients` gets g_ae-ls and g_ae-lasso from one forward and one backward pass
  (:func:`lean_gradients`).
* :func:`gradient_sweep` — the gradients at every depth T = 1 … T_max: one forward pass, then
  the adjoint chains of all depths run backward together; at layer t the chains of every depth
  T > t are stacked along a leading dimension, so each layer is one big matmul A·[u⁽ᵀ⁾…] and one
  big batched matmul for G: Σ_T T = T_max²/2 layer-adjoints, the forward shared (separate
  unrolls would add T_max²/2 forward layers). In the late, sparse layers the stacked adjoints are
  kept on the supports only (per example, the rows of its non-zeros), which cuts the
  arithmetic by the sparsity (see :func:`_sweep_one`); the early, dense layers use dense GEMMs.

The gradient estimators (all averaged over the n examples), with R_T = D Z_T − X:

    g_dec      = R_T Z_Tᵀ / n                                            (Z_T held constant)
    g_ae-ls    = R_T Z_Tᵀ / n + backprop(a_T = Dᵀ R_T / n)
    g_ae-lasso = R_T Z_Tᵀ / n + backprop(a_T = Dᵀ R_T / n + λ sign(Z_T) / n)

(the direct term ∇₂L(Z_T, D) = R_T Z_Tᵀ / n is g_dec itself; the lasso term λ‖Z‖₁/n does not
depend on D directly).
"""
from __future__ import annotations

import math
import warnings
from numbers import Real
from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

from udl.core._validate import check_choice, check_int
from udl.core.encoders import ISTA, Encoder, _as_threshold, validate_encoder_args

__all__ = ["unrolled_ista", "lean_gradients", "gradient_sweep", "lean_applicable", "SparseIterates",
           "Iterate", "STORAGES", "default_chunk", "pack_bits", "unpack_bits"]

_KINDS = ("dec", "ae-lasso", "ae-ls")

#: Storage formats of the iterates (see the module docstring).
STORAGES = ("index", "bits")

#: Default memory budget (bytes) of the stacked adjoints of :func:`gradient_sweep` (three dense
#: buffers of depths × kinds × p × n, plus two compact ones of depths × kinds × n × (S + 1), S the
#: largest support per example); more depths than fit are swept in blocks (same FLOPs).
SWEEP_STACK_BYTES = 2**30


# ----------------------------------------------------------------------------------------------
# Exact sparse storage of the iterates
# ----------------------------------------------------------------------------------------------

def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor → uint8 tensor of ⌈numel/8⌉ bytes holding one bit per entry.

    Eight mask bytes (each 0 or 1) read as one int64 are folded into their low byte by three
    shift-or steps (no multiplication, so no overflow; both directions use the machine's byte
    order, so :func:`unpack_bits` inverts it on any machine).
    """
    flat = mask.reshape(-1)
    pad = (-flat.numel()) % 8
    if pad or flat.storage_offset() % 8:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    x = flat.view(torch.uint8).view(torch.int64)
    x = x | (x >> 7)
    x |= x >> 14
    x |= x >> 28
    return x.to(torch.uint8)                 # the low byte: bits 0…7 hold the 8 entries


def unpack_bits(bits: torch.Tensor, shape, out: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: uint8 bytes → bool tensor of ``shape``.

    ``out`` : optional bool buffer of ≥ 8·len(bits) entries, 8-byte aligned (written in place).
    """
    numel = math.prod(shape)
    nb = bits.numel() * 8
    y = bits.to(torch.int64)
    x = (y | (y << 28)) & 0x0000000F0000000F
    x = (x | (x << 14)) & 0x0003000300030003
    x = x | (x << 7)
    flat = torch.empty(nb, dtype=torch.bool, device=bits.device) if out is None else out[:nb]
    torch.bitwise_and(x, 0x0101010101010101, out=flat.view(torch.uint8).view(torch.int64))
    return flat[:numel].view(shape)


def default_chunk(device) -> int:
    """Layers compacted together: 1 on CPU (waiting costs nothing), 8 on accelerators."""
    return 1 if torch.device(device).type == "cpu" else 8


def _ceil8(k: int) -> int:
    return -(-k // 8) * 8


class Iterate(NamedTuple):
    """One iterate given back by a reader: dense ``z``; ``idx`` the flat positions of its
    non-zeros when at hand (format "index", chunk 1), else None; ``mask`` its non-zero mask when
    at hand (format "bits"), else None."""

    z: torch.Tensor
    idx: torch.Tensor | None
    mask: torch.Tensor | None


class SparseIterates:
    """Iterates z_1, z_2, … stored exactly as their non-zero values plus where they are.

    Write an iterate into :meth:`slot` and :meth:`commit` it (or :meth:`append` a tensor, which
    copies it). Every ``chunk`` iterates are compacted together (one ``nonzero``, so on a GPU
    one wait for the device, per chunk). A slot stays valid until one more iterate has been
    committed after it, so a forward loop can read z_t from its slot while writing z_{t+1}.
    ``storage`` is "index" (int32 flat positions) or "bits" (bit-packed mask); see the module
    docstring. :meth:`tensors` lists what is kept (for ``save_for_backward``); :meth:`reader`
    gives the iterates back, newest first, rebuilt densely one chunk at a time.
    """

    def __init__(self, shape, dtype, device, chunk: int = 1, storage: str = "index"):
        self.shape, self.dtype, self.device = tuple(shape), dtype, torch.device(device)
        self.chunk = check_int("chunk", chunk, low=1)
        self.storage = check_choice("storage", storage, STORAGES)
        self.numel = math.prod(self.shape)
        self.keys: list[torch.Tensor] = []        # per chunk: int positions, or packed mask bits
        self.values: list[torch.Tensor] = []      # per chunk: the non-zero values, in order
        self.sizes: list[int] = []                # per chunk: number of iterates
        self._buf = torch.empty((max(self.chunk, 2),) + self.shape, dtype=dtype, device=self.device)
        self._next = 0
        self._pending = 0
        n = self.chunk * self.numel
        self._idx_dtype = torch.int32 if n < 2**31 else torch.int64
        self._mask = torch.zeros(_ceil8(n), dtype=torch.bool, device=self.device)

    def __len__(self) -> int:
        return sum(self.sizes) + self._pending

    def slot(self) -> torch.Tensor:
        """The buffer (of ``shape``) that the next iterate is to be written into."""
        return self._buf[self._next]

    def commit(self) -> None:
        """Register the iterate written into :meth:`slot`."""
        self._pending += 1
        if self.chunk == 1:
            self._flush(first=self._next)
            self._next = 1 - self._next
        else:
            self._next += 1
            if self._pending == self.chunk:
                self._flush()
                self._next = 0

    def append(self, z: torch.Tensor) -> None:
        self.slot().copy_(z)
        self.commit()

    def _flush(self, first: int = 0) -> None:
        k = self._pending
        if not k:
            return
        Zc = self._buf[first:first + k].view(-1)
        kN = k * self.numel
        mask = self._mask[:_ceil8(kN)]
        if kN % 8:
            mask[kN:] = False
        mask[:kN].copy_(Zc)                                     # z ≠ 0 (a bool cast: ~5× faster than ne)
        idx = mask[:kN].nonzero().squeeze(1)                    # (on bool: 2× faster than on float)
        self.keys.append(idx.to(self._idx_dtype) if self.storage == "index" else pack_bits(mask))
        self.values.append(Zc.index_select(0, idx))   # = masked_select, several times faster on CPU
        self.sizes.append(k)
        self._pending = 0

    def tensors(self) -> list[torch.Tensor]:
        """What is kept: per chunk its keys, then per chunk its values."""
        self._flush()
        return self.keys + self.values

    def nbytes(self) -> int:
        """Bytes kept."""
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def meta(self):
        """What :func:`reader_from` needs besides :meth:`tensors`."""
        self._flush()
        return (list(self.sizes), self.shape, self.dtype, self.device, self.storage)

    def reader(self) -> "_Reader":
        return reader_from(self.meta(), self.tensors())


def reader_from(meta, tensors) -> "_Reader":
    """A reader over :meth:`SparseIterates.tensors` and :meth:`SparseIterates.meta`."""
    sizes = meta[0]
    k = len(sizes)
    return _Reader(list(tensors[:k]), list(tensors[k:]), *meta)


class _Reader:
    """Dense access to z_s (1-based) for decreasing s.

    Rebuilds each chunk once, by a scatter into zeros, into one of two reused buffers: what
    :meth:`get` returns stays valid until a chunk two chunks away is requested.
    """

    def __init__(self, keys, values, sizes, shape, dtype, device, storage):
        self.keys, self.values, self.sizes, self.storage = keys, values, sizes, storage
        self.shape = tuple(shape)
        self.numel = math.prod(self.shape)
        self.starts = [0]
        for s in sizes:
            self.starts.append(self.starts[-1] + s)
        C = max(sizes, default=1)
        self._dense = torch.empty((2, C) + self.shape, dtype=dtype, device=device)
        self._mask = (torch.empty((2, _ceil8(C * self.numel)), dtype=torch.bool, device=device)
                      if storage == "bits" else None)
        self._cache: dict = {}
        self._c = 0

    def _chunk_of(self, pos: int) -> int:
        c = min(self._c, len(self.sizes) - 1)
        while self.starts[c] > pos:
            c -= 1
        while self.starts[c + 1] <= pos:
            c += 1
        self._c = c
        return c

    def get(self, s: int) -> Iterate:
        """Iterate z_s, ``s`` ≥ 1."""
        pos = s - 1
        c = self._chunk_of(pos)
        if c not in self._cache:
            for key in [k for k in self._cache if abs(k - c) > 1 or k % 2 == c % 2]:
                del self._cache[key]
            k, slot = self.sizes[c], c % 2
            dense = self._dense[slot, :k]
            dense.zero_()                      # (a memset beats zeroing the old positions)
            if self.storage == "index":
                dense.view(-1).index_add_(0, self.keys[c], self.values[c])   # = scatter into zeros
                mask, idx = None, self.keys[c] if k == 1 else None
            else:
                mask = unpack_bits(self.keys[c], (k * self.numel,), out=self._mask[slot])
                dense.view(-1).masked_scatter_(mask, self.values[c])
                mask, idx = mask.view((k,) + self.shape), None
            self._cache[c] = (dense, idx, mask)
        dense, idx, mask = self._cache[c]
        i = pos - self.starts[c]
        return Iterate(dense[i], idx, None if mask is None else mask[i])


def _mask_rows(a2: torch.Tensor, u2: torch.Tensor, U2: torch.Tensor, it: Iterate, zero):
    """u ← M ⊙ a and U += u for stacked rows ``(S, L)``, M the non-zero mask of iterate ``it``.

    Dense passes (a ``where`` and an add; in A/B runs as fast as scattering only the non-zeros,
    and simpler; same results, u being zero off M). Returns the S vectors of u's non-zeros in the order of ``it.idx`` when positions are
    at hand (format "index", chunk 1: the values of the CSR products), else None.
    """
    mask = it.z.reshape(-1).bool() if it.mask is None else it.mask.reshape(-1)   # (bool cast: z ≠ 0)
    torch.where(mask, a2, zero, out=u2)
    U2.add_(u2)
    if it.idx is None:
        return None
    return [u1.index_select(0, it.idx) for u1 in u2]


# ----------------------------------------------------------------------------------------------
# Operators, forward, adjoint pass
# ----------------------------------------------------------------------------------------------

def _shrink_into(v, thr, out, tmp=None):
    """out ← P_θ(v) without allocating (θ a float, or a tensor with ``tmp`` scratch like ``v``).

    v − clamp(v, −θ, θ) equals sign(v)·max(|v| − θ, 0) exactly (up to the sign of zero).
    """
    if isinstance(thr, torch.Tensor):
        torch.clamp(v, -thr, thr, out=tmp)
        return torch.sub(v, tmp, out=out)
    return torch.ops.aten.softshrink.out(v, thr, out=out)


def _operator_A(D, step):
    """A = I − α DᵀD (..., p, p), with the same operations as :meth:`udl.Encoder.init`."""
    return torch.eye(D.shape[-1], dtype=D.dtype, device=D.device) - step * (D.mT @ D)


def _operators(D, X, step):
    """A = I − α DᵀD (..., p, p) and B = α DᵀX (..., p, n), as in :meth:`udl.Encoder.init`."""
    return _operator_A(D, step), step * (D.mT @ X)


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


def _codes(A, B, thr, T: int):
    """T layers from z₀ = 0 without storing iterates, in the (p, n) layout: dense GEMMs, the same
    operations as :meth:`udl.ISTA.layer`. A (N, p, p), B (N, p, n), θ float or (N, 1, 1).
    Returns Z_T (N, p, n)."""
    Z = torch.zeros_like(B)
    if T == 0:
        return Z
    V = torch.empty_like(B)
    tmp = torch.empty_like(B) if isinstance(thr, torch.Tensor) else None
    ping = [Z, torch.empty_like(B)]
    for t in range(T):
        torch.baddbmm(B, A, Z, out=V)
        out = ping[(t + 1) % 2]
        _shrink_into(V, thr, out, tmp)
        Z = out
    return Z


def _forward(A, Bt, thr, T: int, store: SparseIterates):
    """T layers from z₀ = 0 in the transposed layout, storing the iterates:
    zᵀ_{t+1} = P_θ(zᵀ_t Aᵀ + Bᵀ).

    A (N, p, p), Bt = Bᵀ (N, n, p), θ float or (N, 1, 1). Returns Z_Tᵀ (N, n, p) and fills
    ``store`` (of shape (N, n, p)) with z_1ᵀ … z_Tᵀ. Where :func:`sparse_layers` allows, a layer
    whose input has few non-zeros (:data:`SPARSE_DENSITY`) multiplies it as CSR matrices built
    from the store's positions (format "index", chunk 1; other formats keep dense layers).
    The loop allocates only what ``store`` keeps (and, in sparse layers, the CSR row offsets).
    """
    Z = torch.zeros_like(Bt)
    if T == 0:
        return Z
    N, n, p = Bt.shape
    sparse = sparse_layers(Bt) and store.chunk == 1 and store.storage == "index"
    At = A.mT.contiguous() if sparse else A.mT
    V = torch.empty_like(Bt)
    tmp = torch.empty_like(Bt) if isinstance(thr, torch.Tensor) else None
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
        _shrink_into(V_t, thr, out, tmp)
        store.commit()
        Z = out
        if sparse:
            idx, vals = store.keys[-1], store.values[-1]
    return Z.clone()


def _adjoint_pass(reader: _Reader, A, a_T, T: int):
    """The adjoint recursion for S stacked initial adjoints, in the transposed layout.

    A : (N, p, p).  a_T : (S, N, n, p), S initial adjoints (∂L/∂Z_T)ᵀ per instance; the reader
    gives z_tᵀ (N, n, p). With u_t = M_t ⊙ a_{t+1} and a_t = Aᵀ u_t, i.e. aᵀ_t = uᵀ_t A (a CSR
    product in sparse layers, as in :func:`_forward`), returns G = Σ_t u_t z_tᵀ (S, N, p, p) and
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
        vals = _mask_rows(a.view(S, L), u.view(S, L), U.view(S, L), it, zero)   # u_t = M_t ⊙ a_{t+1}
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


def lean_applicable(lam, step) -> bool:
    """Whether the lean function handles these hyper-parameters (else use plain autograd).

    Not handled: a λ or α that requires grad, an α with more than one entry, and λ = 0 (no
    threshold: the mask would miss exact zeros of v, where the identity has derivative 1).
    """
    if isinstance(step, torch.Tensor) and (step.requires_grad or step.numel() != 1):
        return False
    if isinstance(lam, torch.Tensor):
        return not lam.requires_grad and bool((lam > 0).all())
    return isinstance(lam, Real) and lam > 0


def _prepare(X, D, lam, step, chunk, storage):
    """Operators flattened over the broadcast batch.

    Returns (α, batch, A (N,p,p), B (N,p,n), θ, chunk, storage).
    """
    step = float(step)
    lam_t = _as_threshold(lam, D)
    thr = step * lam_t if isinstance(lam_t, torch.Tensor) else step * float(lam_t)
    A, B = _operators(D, X, step)
    batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2],
                                   thr.shape[:-2] if isinstance(thr, torch.Tensor) else ())
    p, n = B.shape[-2:]
    A = A.expand(batch + (p, p)).reshape(-1, p, p)
    B = B.expand(batch + (p, n)).reshape(-1, p, n)
    if isinstance(thr, torch.Tensor):
        thr = thr.expand(batch + (1, 1)).reshape(-1, 1, 1)
    chunk = default_chunk(B.device) if chunk is None else check_int("chunk", chunk, low=1)
    return step, batch, A, B, thr, chunk, check_choice("storage", storage, STORAGES)


def _untranspose(Zt: torch.Tensor, batch) -> torch.Tensor:
    """Z (batch..., p, n), contiguous, from Zᵀ (N, n, p)."""
    return Zt.mT.contiguous().view(batch + Zt.shape[-1:] + Zt.shape[-2:-1])


class _UnrolledISTA(torch.autograd.Function):
    """Z_T = ISTA_T(X, D) whose backward needs only the sparse iterates (see module docstring)."""

    @staticmethod
    def forward(ctx, D, X, lam, step, T, chunk, storage):
        with torch.no_grad():
            step, batch, A, B, thr, chunk, storage = _prepare(X, D, lam, step, chunk, storage)
            Bt = B.mT.contiguous()
            store = SparseIterates(Bt.shape, Bt.dtype, Bt.device, chunk, storage)
            Zt = _forward(A, Bt, thr, T, store)
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
            A = _operator_A(D, step).expand(batch + (p, p)).reshape(-1, p, p)
            a_T = gZ.expand(batch + (p, n)).reshape(-1, p, n).mT.unsqueeze(0)      # (1, N, n, p)
            G, Ut = _adjoint_pass(reader_from(ctx.meta, stored), A, a_T, T)
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
    storage : "index" (default, fastest) or "bits" (least memory); see the module docstring.

    Returns
    -------
    Z_T : (..., p, n)
    """
    T = validate_encoder_args(X, D, lam, step, T)
    check_choice("storage", storage, STORAGES)
    if not lean_applicable(lam, step):
        raise ValueError("unrolled_ista needs λ > 0 and λ, α not requiring grad; use udl.ista")
    return _UnrolledISTA.apply(D, X, lam, step, T, chunk, storage)


# ----------------------------------------------------------------------------------------------
# Several estimators from one forward and one backward pass
# ----------------------------------------------------------------------------------------------

def lean_gradients(X, D, *, lam, step, T: int, kinds=_KINDS, chunk: int | None = None,
                   storage: str = "index"):
    """g_dec, g_ae-lasso, g_ae-ls of the reference ISTA from one forward and one backward pass.

    The requested "ae" kinds' initial adjoints are stacked and share the backward pass.
    Inputs are assumed validated (:func:`udl.gradients` calls this).

    Returns
    -------
    (dict kind → gradient, Z_T (..., p, n)). As autograd on a loss summed over the batch would,
    the "ae" kinds have the shape of D (summed over dimensions along which D is broadcast);
    "dec" has the broadcast batch shape.
    """
    kinds = tuple(kinds)
    ae = [k for k in kinds if k != "dec"]
    with torch.no_grad():
        X, D = X.detach(), D.detach()
        step, batch, A, B, thr, chunk, storage = _prepare(X, D, lam, step, chunk, storage)
        p, n = B.shape[-2:]
        if ae and T > 0:
            Bt = B.mT.contiguous()
            store = SparseIterates(Bt.shape, Bt.dtype, Bt.device, chunk, storage)
            Zt = _forward(A, Bt, thr, T, store)
            Z = _untranspose(Zt, batch)
        else:
            Z = _codes(A, B, thr, T).view(batch + (p, n))
        R = D @ Z - X                                                  # (batch, m, n)
        g_dir = R @ Z.mT / n                                           # ∇₂L(Z_T, D) = g_dec
        out = {"dec": g_dir} if "dec" in kinds else {}
        if ae and T == 0:
            out.update({k: _sum_to(g_dir, D.shape).clone() for k in ae})
        elif ae:
            a_ls = (D.mT @ R / n).expand(batch + (p, n)).reshape(-1, p, n).mT   # (N, n, p)
            lam_f = _as_threshold(lam, D)
            if isinstance(lam_f, torch.Tensor):
                lam_f = lam_f.expand(batch + (1, 1)).reshape(-1, 1, 1)
            inits = [a_ls if k == "ae-ls" else a_ls + lam_f * torch.sign(Zt) / n for k in ae]
            G, Ut = _adjoint_pass(store.reader(), A, torch.stack(inits), T)
            for s, k in enumerate(ae):
                G_s, Ut_s = G[s].view(batch + (p, p)), Ut[s].view(batch + (n, p))
                out[k] = _sum_to(g_dir + step * (X @ Ut_s - D @ (G_s + G_s.mT)), D.shape)
        out = {k: out[k] for k in kinds}
    return out, Z


# ----------------------------------------------------------------------------------------------
# The gradient at every depth
# ----------------------------------------------------------------------------------------------

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


def _sweep_one(X, D, *, lam, thr, step, depths, kinds, chunk, storage, max_stack, compact, ws=None):
    """All requested gradients at the sorted unique ``depths`` for one instance.

    X (m, n), D (m, p); λ, θ floats or 0-dim tensors. Returns dict kind → (K, m, p).

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
    A, B = _operators(D, X, step)
    slot = {T: i for i, T in enumerate(depths)}
    g_dir = X.new_zeros(K, m, p)                                  # ∇₂L(Z_T, D) = g_dec at each depth
    store = SparseIterates((p, n), X.dtype, X.device, chunk, storage) if ae and T_max > 0 else None
    Z = torch.zeros_like(B)
    V, tmp = torch.empty_like(B), torch.empty_like(B) if isinstance(thr, torch.Tensor) else None
    ping = [Z, torch.empty_like(B)]
    for t in range(T_max):                                                         # forward
        torch.addmm(B, A, Z, out=V)
        out = store.slot() if store is not None else ping[(t + 1) % 2]
        _shrink_into(V, thr, out, tmp)
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
                    _mask_rows(act.view(k * F, p * n), uact.view(k * F, p * n),
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


def gradient_sweep(X: torch.Tensor, D: torch.Tensor, *, lam, step, T_max: int | None = None,
                   kinds=_KINDS, depths=None, encoder: Encoder | None = None,
                   chunk: int | None = None, storage: str = "index",
                   max_stack: int | None = None, compact: bool | None = None) -> dict:
    """The gradient estimators at every depth T of the unrolled encoder, in one pass family.

    For the reference ISTA, one forward pass stores the iterates (exactly, sparse), then the
    adjoint chains of all depths run backward together, stacked so that each layer is one
    large matmul: Σ_T T layer-adjoints in T_max steps, instead of T_max separate unrolls.
    g_dec at depth T needs only Z_T. The instances of a batch are swept one after the other
    (buffers reused). Other encoders fall back to one :func:`udl.gradients` call per depth.

    Parameters
    ----------
    X : (..., m, n) data.  D : (..., m, p) dictionary.
    lam, step : encoder hyper-parameters λ ≥ 0 (float, or tensor ``(...)``), α > 0.
    T_max : int ≥ 0
        Deepest depth; ``depths`` defaults to 1 … T_max.
    kinds : iterable of {"dec", "ae-lasso", "ae-ls"}
    depths : iterable of int ≥ 0, optional
        The depths to report (any order, repeats allowed); at most ``T_max`` if both are given.
    encoder : Encoder, optional (reference ISTA by default).
    chunk, storage : see :func:`unrolled_ista`.
    compact : bool, optional
        Keep the stacked adjoints on the supports while that is cheaper (see ``_sweep_one``);
        default: on CPU yes, on GPUs no (dense GEMMs are fast there, and the compact layout
        has data-dependent shapes, so it waits for the device every layer). Same results.
    max_stack : int, optional
        Most depths whose adjoints are stacked at once (memory: 3 × max_stack × #ae-kinds × p × n
        numbers); more are swept in blocks, at the same arithmetic cost. Default: as many as fit
        in :data:`SWEEP_STACK_BYTES`.

    Returns
    -------
    dict kind → tensor ``(len(depths), ..., m, p)`` over the broadcast batch shape ``...`` of X,
    D (and λ); entry ``[i, b]`` is the gradient of instance b's own loss at ``depths[i]``, equal
    to ``udl.gradients(X[b], D[b], ..., T=depths[i])[kind]`` up to rounding.
    """
    kinds = tuple(kinds)
    for k in kinds:
        check_choice("kind", k, _KINDS)
    check_choice("storage", storage, STORAGES)
    if depths is None:
        if T_max is None:
            raise ValueError("gradient_sweep needs T_max or depths")
        T_max = check_int("T_max", T_max, low=0)
        depths = list(range(1, T_max + 1))
    else:
        depths = [check_int("depth", T, low=0) for T in depths]
        if T_max is not None:
            T_max = check_int("T_max", T_max, low=0)
            if depths and max(depths) > T_max:
                raise ValueError(f"depths go up to {max(depths)} > T_max={T_max}")
    validate_encoder_args(X, D, lam, step, max(depths, default=0))
    if max_stack is not None:
        max_stack = check_int("max_stack", max_stack, low=1)
    encoder = ISTA() if encoder is None else encoder
    batch = torch.broadcast_shapes(X.shape[:-2], D.shape[:-2],
                                   lam.shape if isinstance(lam, torch.Tensor) else ())
    m, p = D.shape[-2:]
    if not depths or not kinds:
        return {k: X.new_zeros((len(depths),) + batch + (m, p)) for k in kinds}
    uniq = sorted(set(depths))
    if not (_is_reference(encoder) and lean_applicable(lam, step)):
        from udl.core.estimators import gradients                               # generic: one unroll per depth
        Xe, De = X.expand(batch + X.shape[-2:]), D.expand(batch + D.shape[-2:])   # per instance
        per = [gradients(Xe, De, lam=lam, step=step, T=T, kinds=kinds, encoder=encoder) for T in uniq]
        res = {k: torch.stack([g[k] for g in per]) for k in kinds}
    else:
        step_f = float(step)
        n_ae = sum(k != "dec" for k in kinds)
        if max_stack is None:
            max_stack = max(1, SWEEP_STACK_BYTES // (3 * max(n_ae, 1) * p * X.shape[-1] * X.element_size()))
        chunk = default_chunk(X.device) if chunk is None else check_int("chunk", chunk, low=1)
        compact = X.device.type == "cpu" if compact is None else bool(compact)
        with torch.no_grad():
            X_f = X.detach().expand(batch + X.shape[-2:]).reshape((-1,) + X.shape[-2:])
            D_f = D.detach().expand(batch + D.shape[-2:]).reshape((-1,) + D.shape[-2:])
            lam_f = lam.detach().to(X).expand(batch).reshape(-1) if isinstance(lam, torch.Tensor) else None
            per, ws = [], {}
            for b in range(X_f.shape[0]):
                lam_b = float(lam) if lam_f is None else lam_f[b]
                per.append(_sweep_one(X_f[b], D_f[b], lam=lam_b, thr=step_f * lam_b, step=step_f,
                                      depths=uniq, kinds=kinds, chunk=chunk, storage=storage,
                                      max_stack=max_stack, compact=compact, ws=ws))
            res = {k: torch.stack([r[k] for r in per], dim=1).reshape((len(uniq),) + batch + (m, p))
                   for k in kinds}
    if depths == uniq:
        return res
    index = torch.tensor([uniq.index(T) for T in depths], device=X.device)
    return {k: res[k].index_select(0, index) for k in kinds}


def _is_reference(encoder) -> bool:
    """The reference ISTA, unmodified (a subclass overriding its layer or its call is not)."""
    cls = type(encoder)
    return isinstance(encoder, ISTA) and cls.layer is ISTA.layer and cls.init is Encoder.init \
        and cls.__call__ is ISTA.__call__
