r"""The threshold of a layer: λ in its one internal form, θ = αλ, and P_θ.

λ enters udl.core at its public entry points (an encoder call, :func:`udl.core.estimators.gradients`,
:func:`udl.core.estimators.gradient_sweep`, :func:`udl.core.unrolled.unrolled_ista`) as a number
or a tensor ``(...)`` with one λ per instance. Each entry validates it once
(:func:`udl.core._validate.validate_encoder_args`) and turns it once into the one form used below
the entry, :func:`as_lam`: a tensor ``(..., 1, 1)`` in the data's dtype and device, broadcasting
over the codes ``(..., p, n)`` (a number becomes a ``(1, 1)`` tensor). So a λ sweep batched as a
tensor and a single λ run the same code. The layer threshold θ = αλ (same form) is computed once
per call, and applied by the unchecked soft threshold :func:`shrink`.
"""
from __future__ import annotations

import torch

__all__ = ["as_lam", "shrink"]


def as_lam(lam, like: torch.Tensor) -> torch.Tensor:
    """λ (a number, or a tensor ``(...)``, validated) as a tensor ``(..., 1, 1)`` like ``like``.

    Same dtype and device as ``like``; a tensor keeps its autograd graph (a λ that requires grad
    stays differentiable).
    """
    if isinstance(lam, torch.Tensor):
        return lam.to(like)[..., None, None]
    return torch.full((1, 1), float(lam), dtype=like.dtype, device=like.device)


def shrink(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """P_θ(v) = sign(v)·max(|v| − θ, 0) without validation; θ ≥ 0 a tensor broadcasting with ``v``.

    Computed as v − clamp(v, −θ, θ): the same values as ``torch.nn.functional.softshrink`` bit for
    bit (v ∓ θ outside [−θ, θ], +0 inside), and under autograd the same derivatives, 1{|v| > θ}
    in v and −sign(v)·1{|v| > θ} in θ (also at θ = 0, where the kink is at v = 0).
    """
    return v - torch.clamp(v, -theta, theta)
