r"""Exact sparse storage of the iterates z_1 … z_T of unrolled ISTA (what the lean backward keeps).

The backward pass needs only the iterates: z_{t+1} gives the mask M_t = 1{z_{t+1} ≠ 0} and z_t
enters G = Σ_t u_t z_tᵀ (see :mod:`udl.core.unrolled`). An iterate is *exactly* recoverable
from its non-zero values plus where they are (:class:`SparseIterates`), in one of two formats:

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
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from udl.core._validate import check_choice, check_int

__all__ = ["STORAGES", "pack_bits", "unpack_bits", "default_chunk", "Iterate", "SparseIterates",
           "IterateReader", "reader_from"]

#: Storage formats of the iterates (see the module docstring).
STORAGES = ("index", "bits")

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

    def reader(self) -> "IterateReader":
        return reader_from(self.meta(), self.tensors())


def reader_from(meta, tensors) -> "IterateReader":
    """A reader over :meth:`SparseIterates.tensors` and :meth:`SparseIterates.meta`."""
    sizes = meta[0]
    k = len(sizes)
    return IterateReader(list(tensors[:k]), list(tensors[k:]), *meta)


class IterateReader:
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
