"""More mutants of the encoders (:mod:`udl.core.encoders` and the lean layers of
:mod:`udl.core.unrolled`): the twin of ``data-term-unscaled``, a step forgotten on the Gram term.

Installed on every path that builds A = I − αDᵀD — the layer loop of every encoder
(:meth:`udl.core.encoders.Encoder.init`) and the lean operators
(:func:`udl.core.unrolled.layers.operator_A`, used by the lean forward, its backward and the depth
sweep) — so that the encoder stays one encoder, only wrong.
"""

from __future__ import annotations

import torch

from udl.core import encoders
from udl.core.unrolled import layers
from udl.engine.mutants.registry import combine, patch, patch_attribute, register

__all__: list[str] = []


@register(
    "gram-unscaled", area="encoder",
    bug="The layer's linear part is A = I − DᵀD instead of A = I − αDᵀD (the step dropped from the Gram "
        "term, kept on the data term B = αDᵀX).",
    code="udl.core.encoders.Encoder.init, udl.core.unrolled.layers.operator_A",
    why="Every encoder then takes a gradient step of size 1 instead of α: beyond the stability limit "
        "2/‖D‖₂² (≈ 0.34 at m = 50, p = 100) the iterates grow by |1 − ‖D‖₂²| per layer and never settle, "
        "so a claim about convergence of the iterates must see it.")
def _gram_unscaled():
    operator_A = layers.operator_A

    def init(self, X, D, *, lam, step):
        A = torch.eye(D.shape[-1], dtype=D.dtype, device=D.device) - D.mT @ D
        B = step * (D.mT @ X)
        Z0 = torch.zeros(torch.broadcast_shapes(A.shape[:-2], B.shape[:-2]) + B.shape[-2:],
                         dtype=X.dtype, device=X.device)
        return A, B, {"Z": Z0}

    def operator_A_bug(D, step):
        return operator_A(D, 1.0)

    return combine(patch_attribute(encoders.Encoder, "init", init), patch(layers, "operator_A", operator_A_bug))
