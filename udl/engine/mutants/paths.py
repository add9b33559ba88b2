"""Mutants that make two paths of the reference ISTA disagree: the lean code of
:mod:`udl.core.unrolled` (used whenever a gradient is wanted) against the layer loop of
:class:`udl.core.encoders.ISTA` (used for codes alone).

Each path stays plausible on its own; only a claim that compares them, or that reads the gradient
of one path and the codes of the other, can see the bug.
"""

from __future__ import annotations

import torch

from udl.core.threshold import shrink
from udl.core.unrolled import layers, sweep
from udl.engine.mutants._lean import per_depth_sweep
from udl.engine.mutants.registry import combine, patch, register

__all__: list[str] = []


@register(
    "lean-skips-first-threshold", area="path-consistency",
    bug="The lean forward (the pass that stores the iterates for the backward) takes z₁ = B, skipping "
        "the first layer's threshold, because its first layer is special-cased as v₀ = B.",
    code="udl.core.unrolled.layers.forward, udl.core.unrolled.sweep.lean_sweep",
    why="Codes and gradients with a backward pass start from a dense z₁: Z_T of a differentiable call "
        "differs from ISTA's Z_T at small T, and the backward's first mask is all ones; a claim that "
        "compares the lean path with the layer loop, or works at small depth, sees it.")
def _lean_skips_first_threshold():
    def forward(A, Bt, theta, T, store):
        Z = torch.zeros_like(Bt)
        At = A.mT
        for t in range(T):
            V = Bt if t == 0 else torch.baddbmm(Bt, Z, At)
            out = store.slot()
            out.copy_(V if t == 0 else shrink(V, theta))
            store.commit()
            Z = out
        return Z.clone()

    return combine(patch(layers, "forward", forward), patch(sweep, "lean_sweep", per_depth_sweep))


@register(
    "sweep-depth-off-by-one", area="path-consistency",
    bug="The depth sweep records the gradients of depth T after T − 1 layers (the recorded depth "
        "compared with the layer index t instead of t + 1).",
    code="udl.core.unrolled.sweep.lean_sweep",
    why="gradient_sweep(depths=[T]) disagrees with gradients(T=T): every curve in T is shifted by one "
        "layer, which a claim sees at small depths or where it differences consecutive depths.")
def _sweep_depth_off_by_one():
    lean_sweep = sweep.lean_sweep

    def sweep_bug(X, D, *, depths, **kwargs):
        shifted = [max(T - 1, 0) for T in depths]
        uniq = sorted(set(shifted))
        out = lean_sweep(X, D, depths=uniq, **kwargs)
        index = torch.tensor([uniq.index(T) for T in shifted], device=X.device)
        return {k: v.index_select(0, index) for k, v in out.items()}

    return patch(sweep, "lean_sweep", sweep_bug)
