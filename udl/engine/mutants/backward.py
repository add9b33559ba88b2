r"""Mutants of the lean backward of unrolled ISTA (:mod:`udl.core.unrolled`): the adjoint recursion

    u_t = M_t ⊙ a_{t+1},   a_t = A u_t,   G = Σ_t u_t z_tᵀ,   U = Σ_t u_t

run through too few layers, without its active-set mask M_t, or from a wrong initial adjoint.

The lean estimators (:func:`udl.core.unrolled.function.lean_gradients`, the autograd function
:class:`~udl.core.unrolled.function.UnrolledISTA`) call
:func:`udl.core.unrolled.layers.adjoint_pass`; the depth sweep
(:func:`udl.core.unrolled.sweep.lean_sweep`) has its own stacked recursion. A backward bug is
installed in both: the adjoint pass is replaced by a plain dense recursion carrying the bug
(:func:`udl.engine.mutants._lean.dense_adjoint`), and the sweep by one
:func:`~udl.core.unrolled.function.lean_gradients` call per depth
(:func:`udl.engine.mutants._lean.per_depth_sweep`), which then runs the buggy adjoint pass.
"""

from __future__ import annotations

from udl.core.unrolled import function, layers, sweep
from udl.engine.mutants._lean import dense_adjoint, per_depth_sweep
from udl.engine.mutants.registry import combine, patch, register

__all__ = ["TRUNCATED_LAYERS"]

#: Layers the truncated backward runs through (the last ones): a handful, as a developer would
#: pick to save memory; far fewer than the depths the claims use (50–150).
TRUNCATED_LAYERS = 3


def _install_adjoint(**bug):
    def adjoint(reader, A, a_T, T):
        return dense_adjoint(reader, A, a_T, T, **bug)

    return combine(patch(layers, "adjoint_pass", adjoint), patch(sweep, "lean_sweep", per_depth_sweep))


@register(
    "truncated-backprop", area="lean-backward",
    bug=f"The lean backward propagates the adjoint through the last {TRUNCATED_LAYERS} layers only "
        "(truncated backpropagation, to save memory).",
    code="udl.core.unrolled.layers.adjoint_pass, udl.core.unrolled.sweep.lean_sweep",
    why="g_ae-ls and g_ae-lasso lose the layers' contribution and stay close to g_dec: g_ae-ls no longer "
        "beats g_ae-lasso and g_dec, and the backpropagated gradients stop depending on depth as predicted.")
def _truncated_backprop():
    return _install_adjoint(last=TRUNCATED_LAYERS)


@register(
    "no-active-set-mask", area="lean-backward",
    bug="The lean adjoint forgets the active-set mask: u_t = a_{t+1} instead of M_t ⊙ a_{t+1} (the "
        "soft threshold's derivative taken as 1).",
    code="udl.core.unrolled.layers.adjoint_pass, udl.core.unrolled.sweep.lean_sweep",
    why="The adjoint runs through the un-thresholded linear map A = I − αDᵀD, whose powers do not vanish "
        "off the support: g_ae-* pick up a large spurious term, lose their advantage over g_dec and "
        "misbehave as the depth grows.")
def _no_active_set_mask():
    return _install_adjoint(mask=False)


@register(
    "ae-lasso-without-l1", area="lean-backward",
    bug="The initial adjoint of g_ae-lasso omits the ℓ1 term λ·sign(Z_T)/n, so g_ae-lasso is computed as "
        "g_ae-ls.",
    code="udl.core.unrolled.function.lean_gradients, udl.core.unrolled.sweep.lean_sweep",
    why="g_ae-lasso equals g_ae-ls: it no longer tracks g_dec and ĝ, and the orderings between g_ae-ls and "
        "g_ae-lasso become ties.")
def _ae_lasso_without_l1():
    lean_gradients = function.lean_gradients

    def gradients_bug(X, D, *, lam, step, T, kinds, chunk=None, storage="index"):
        asked = tuple(dict.fromkeys("ae-ls" if k == "ae-lasso" else k for k in kinds))
        out, Z = lean_gradients(X, D, lam=lam, step=step, T=T, kinds=asked, chunk=chunk, storage=storage)
        return {k: out["ae-ls" if k == "ae-lasso" else k] for k in kinds}, Z

    return combine(patch(function, "lean_gradients", gradients_bug), patch(sweep, "lean_sweep", per_depth_sweep))
