"""Random incoherent dictionary-learning instances.

An instance is (D*, Z*, X = D*Z* + noise, D⁽⁰⁾): a dictionary with unit-norm columns drawn
with i.i.d. N(0, 1/m) entries, s-sparse codes with amplitudes |z*_j| ~ U[a, b], the data, and
an initial dictionary close to D*. Every instance is drawn from its own seed with NumPy's
PCG64, on the CPU, so that it is the same on any machine and device and can be replayed alone
(``make_instances(..., seed=[inst.seeds[b]])``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Sequence

import numpy as np
import torch

from udl.core._validate import check_choice, check_int, check_matrix, check_nonneg

__all__ = ["Instances", "make_instances", "normalize_columns", "normalize_columns_unchecked", "coherence",
           "instance_seeds_from"]

SIGNS = ("independent", "shared")


def normalize_columns_unchecked(D: torch.Tensor) -> torch.Tensor:
    """Unchecked :func:`normalize_columns` (for internal loops, e.g. a training run that may diverge:
    a zero or non-finite column gives non-finite entries instead of an error)."""
    return D / torch.linalg.vector_norm(D, dim=-2, keepdim=True)


def normalize_columns(D: torch.Tensor) -> torch.Tensor:
    """Scale every column of ``D (..., m, p)`` to unit Euclidean norm (no column may be zero)."""
    check_matrix("D", D)
    norms = torch.linalg.vector_norm(D, dim=-2, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError(f"D has {int((norms == 0).sum())} zero columns, which cannot be normalised; "
                         f"every column must be nonzero")
    return D / norms


def coherence(D: torch.Tensor) -> torch.Tensor:
    """Mutual coherence μ = max_{i≠j} |⟨D_i, D_j⟩| of ``D (..., m, p)`` with unit columns → ``(...)``."""
    Dn = normalize_columns(D)
    G = (Dn.mT @ Dn).abs()
    G = G - torch.diag_embed(torch.diagonal(G, dim1=-2, dim2=-1))
    return G.amax(dim=(-2, -1))


@dataclass(frozen=True)
class Instances:
    """A batch of B independent instances (batch dimension first).

    Attributes
    ----------
    D_star : (B, m, p) true dictionary, unit-norm columns.
    Z_star : (B, p, n) true s-sparse codes.
    X : (B, m, n) data ``D_star @ Z_star`` (+ noise).
    D0 : (B, m, p) initial dictionary, unit-norm columns.
    coherence : (B,) mutual coherence μ of ``D_star``.
    delta : (B, p) initial column distances δ_j = ‖D0_j − D*_j‖.
    init_error : (B,) relative error ‖D0 − D*‖_F / ‖D*‖_F.
    seeds : the seed of each instance (replay instance b with ``seed=[seeds[b]]``).
    params : the generation parameters.
    """

    D_star: torch.Tensor
    Z_star: torch.Tensor
    X: torch.Tensor
    D0: torch.Tensor
    coherence: torch.Tensor
    delta: torch.Tensor
    init_error: torch.Tensor
    seeds: tuple[int, ...]
    params: dict = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.X.shape[0]

    def __len__(self) -> int:
        return self.batch

    def to(self, device=None, dtype=None) -> "Instances":
        """Copy of the tensors on another device / dtype."""
        conv = lambda t: t.to(device=device, dtype=dtype if t.is_floating_point() else None)  # noqa: E731
        return Instances(conv(self.D_star), conv(self.Z_star), conv(self.X), conv(self.D0),
                         conv(self.coherence), conv(self.delta), conv(self.init_error),
                         self.seeds, dict(self.params))


def instance_seeds_from(seed: int, batch: int) -> tuple[int, ...]:
    """Per-instance 63-bit seeds spawned from one root ``seed`` with ``numpy.random.SeedSequence``."""
    children = np.random.SeedSequence(seed).spawn(batch)
    return tuple(int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in children)


def _draw_one(rng: np.random.Generator, m, p, s, n, init_scale, init_distance, sign, amplitude, noise):
    """Draw one instance in float64 NumPy. The order of draws is part of the seed contract."""
    D_star = rng.standard_normal((m, p)) / np.sqrt(m)
    D_star /= np.linalg.norm(D_star, axis=0, keepdims=True)
    # support: the s smallest of p uniforms, per example (uniform without replacement)
    support = np.argpartition(rng.random((n, p)), s - 1, axis=1)[:, :s] if s > 0 else np.zeros((n, 0), int)
    amp = rng.uniform(amplitude[0], amplitude[1], size=(n, s))
    if sign == "independent":
        sgn = rng.choice([-1.0, 1.0], size=(n, s))
    else:  # one sign per example, shared by its s entries (the authors' data; violates E[z]=0)
        sgn = np.repeat(rng.choice([-1.0, 1.0], size=(n, 1)), s, axis=1)
    Z_star = np.zeros((p, n))
    Z_star[support.T, np.arange(n)[None, :]] = (amp * sgn).T
    X = D_star @ Z_star
    if noise > 0:
        X = X + noise * rng.standard_normal((m, n))
    E = rng.standard_normal((m, p))
    if init_distance is None:
        D0 = D_star + init_scale * E
    else:  # exact per-column distance: rotate D*_j towards a random orthogonal unit vector
        U = E - D_star * np.sum(E * D_star, axis=0, keepdims=True)
        U /= np.linalg.norm(U, axis=0, keepdims=True)
        theta = 2 * np.arcsin(init_distance / 2)
        D0 = np.cos(theta) * D_star + np.sin(theta) * U
    D0 /= np.linalg.norm(D0, axis=0, keepdims=True)
    return D_star, Z_star, X, D0


def make_instances(m: int, p: int, s: int, n: int, *, batch: int | None = None,
                   init_scale: float = 0.02, init_distance: float | None = None,
                   sign: str = "independent", amplitude: tuple[float, float] = (1.0, 2.0),
                   noise: float = 0.0, seed: int | Sequence[int] = 0,
                   dtype: torch.dtype = torch.float64, device="cpu") -> Instances:
    """Draw ``batch`` independent random incoherent instances.

    Parameters
    ----------
    m, p, s, n : int
        Signal dimension, number of atoms, sparsity (1 ≤ s ≤ p) and number of examples.
    batch : int, optional
        Number of instances B (default 1, or ``len(seed)`` when ``seed`` is a sequence).
    init_scale : float
        c in D⁽⁰⁾ = normalise(D* + c·N(0, 1)); relative error ≈ c√m.
    init_distance : float, optional
        If given (0 ≤ δ < 2), every column of D⁽⁰⁾ is at exactly distance δ from D*_j instead.
    sign : {"independent", "shared"}
        Independent random signs (the theory's assumption) or one sign per example shared by its
        s entries (the authors' data; paper profile only).
    amplitude : (a, b)
        Amplitudes |z*_j| ~ U[a, b], 0 ≤ a ≤ b.
    noise : float
        Standard deviation of additive Gaussian noise on X.
    seed : int or sequence of int
        An int spawns one seed per instance via ``numpy.random.SeedSequence``; a sequence gives
        each instance's seed directly (this is how a recorded instance is replayed).
    dtype, device
        Where the tensors live. Drawing happens in float64 on the CPU, so instances do not
        depend on the device.

    Returns
    -------
    Instances
        ``D_star (B, m, p)``, ``Z_star (B, p, n)``, ``X (B, m, n)``, ``D0 (B, m, p)`` and the
        per-instance ``coherence``, ``delta``, ``init_error`` and ``seeds``.
    """
    m = check_int("m", m, low=1)
    p = check_int("p", p, low=1)
    n = check_int("n", n, low=1)
    s = check_int("s", s, low=1, high=p)
    check_choice("sign", sign, SIGNS)
    check_nonneg("noise", noise)
    check_nonneg("init_scale", init_scale)
    if init_distance is not None:
        if isinstance(init_distance, bool) or not isinstance(init_distance, Real) or not 0 <= init_distance < 2:
            raise ValueError(f"init_distance must be a number in [0, 2), got {init_distance!r}")
        if init_distance > 0 and m < 2:
            raise ValueError(f"init_distance > 0 needs m >= 2 (a direction orthogonal to D*_j), got m={m}")
        init_distance = float(init_distance)
    try:
        a_lo, a_hi = (float(v) for v in amplitude)
    except (TypeError, ValueError):
        raise ValueError(f"amplitude must be a pair (a, b) with 0 <= a <= b, got {amplitude!r}") from None
    if not (math.isfinite(a_lo) and math.isfinite(a_hi) and 0 <= a_lo <= a_hi):
        raise ValueError(f"amplitude must be a pair (a, b) with 0 <= a <= b, got {amplitude!r}")
    amplitude = (a_lo, a_hi)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        batch = check_int("batch", 1 if batch is None else batch, low=1)
        seeds = instance_seeds_from(int(seed), batch)
    else:
        try:
            seeds = tuple(seed)
        except TypeError:
            raise ValueError(f"seed must be a non-negative int or a non-empty sequence of them, "
                             f"got {seed!r}") from None
        if any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) for x in seeds):
            raise ValueError(f"seed must be a non-negative int or a non-empty sequence of them, got {seed!r}")
        seeds = tuple(int(x) for x in seeds)
        if batch is not None and batch != len(seeds):
            raise ValueError(f"batch={batch} does not match the {len(seeds)} seeds given")
        if not seeds or min(seeds) < 0:
            raise ValueError(f"seed must be a non-negative int or a non-empty sequence of them, got {seed!r}")
    draws = [_draw_one(np.random.default_rng(sd), m, p, s, n, float(init_scale), init_distance,
                       sign, amplitude, float(noise)) for sd in seeds]
    to = lambda i: torch.as_tensor(np.stack([d[i] for d in draws])).to(device=device, dtype=dtype)  # noqa: E731
    D_star, Z_star, X, D0 = (to(i) for i in range(4))
    delta = torch.linalg.vector_norm(D0 - D_star, dim=-2)
    init_error = torch.linalg.matrix_norm(D0 - D_star) / torch.linalg.matrix_norm(D_star)
    params = dict(m=m, p=p, s=s, n=n, init_scale=init_scale, init_distance=init_distance, sign=sign,
                  amplitude=tuple(amplitude), noise=noise)
    return Instances(D_star, Z_star, X, D0, coherence(D_star), delta, init_error, seeds, params)
