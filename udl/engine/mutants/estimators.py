"""Mutants of the gradient estimators (:mod:`udl.core.estimators`): an estimator computed as another
one, and a sign error in the oracle g*.

The estimators are dispatched by :func:`udl.core.estimators._gradients` (one depth: the lean path
of the reference ISTA or autograd through any other encoder; :func:`udl.core.training.train` goes
through it too) and by :func:`udl.core.unrolled.sweep.lean_sweep` (every depth of the reference
ISTA, :func:`udl.core.estimators.gradient_sweep`): a mix-up of estimators is installed in both.
"""

from __future__ import annotations

from udl.core import estimators
from udl.core.unrolled import sweep
from udl.engine.mutants.registry import combine, patch, register

__all__: list[str] = []

_AE = ("ae-lasso", "ae-ls")


def _computed_as(source: dict):
    """Install, on both dispatch paths, estimators computed as others: ``source`` maps a kind to
    the kind actually returned for it (kinds not in it are themselves). An encoder without the
    "differentiable" capability (no backpropagated estimators) is left alone."""

    def wanted(kinds):
        return tuple(dict.fromkeys([*kinds, *(source[k] for k in kinds if k in source)]))

    gradients, lean_sweep = estimators._gradients, sweep.lean_sweep

    def gradients_bug(X, D, lam_arg, lam, step, T, kinds_, encoder):
        if "differentiable" not in encoder.capabilities:
            return gradients(X, D, lam_arg, lam, step, T, kinds_, encoder)
        out, Z = gradients(X, D, lam_arg, lam, step, T, wanted(kinds_), encoder)
        return {k: out[source.get(k, k)] for k in kinds_}, Z

    def sweep_bug(X, D, *, kinds, **kwargs):
        out = lean_sweep(X, D, kinds=wanted(kinds), **kwargs)
        return {k: out[source.get(k, k)] for k in kinds}

    return combine(patch(estimators, "_gradients", gradients_bug), patch(sweep, "lean_sweep", sweep_bug))


@register(
    "dec-through-code", area="estimators",
    bug="g_dec is computed by backpropagating the least-squares loss through the encoder (the code Z_T "
        "not detached from D), i.e. as g_ae-ls.",
    code="udl.core.estimators._gradients, udl.core.unrolled.sweep.lean_sweep",
    why="g_dec becomes g_ae-ls: it no longer converges to ĝ, ties with g_ae-ls in every ordering, and "
        "learning with it follows g_ae-ls's dynamics.")
def _dec_through_code():
    return _computed_as({"dec": "ae-ls"})


@register(
    "ae-detached-code", area="estimators",
    bug="g_ae-lasso and g_ae-ls are computed with the code Z_T detached from D (the autograd graph cut "
        "at the encoder), i.e. as g_dec.",
    code="udl.core.estimators._gradients, udl.core.unrolled.sweep.lean_sweep",
    why="Both backpropagated estimators equal g_dec: g_ae-ls loses its advantage over g_dec and g_ae-lasso, "
        "and g_ae-lasso no longer converges faster than g_dec.")
def _ae_detached_code():
    return _computed_as({k: "dec" for k in _AE})


@register(
    "oracle-sign", area="estimators",
    bug="The oracle gradient uses the residual X − DZ* instead of DZ* − X, so g* has the wrong sign.",
    code="udl.core.estimators.oracle_gradient",
    why="Every distance ‖g − g*‖ becomes ‖g + g*‖ (about 2‖g*‖ for all estimators): orderings of the "
        "estimators by their distance to g* break, and descent on the oracle direction moves away from D*.")
def _oracle_sign():
    oracle = estimators.oracle_gradient

    def oracle_bug(X, D, Z_star):
        return -oracle(X, D, Z_star)

    return patch(estimators, "oracle_gradient", oracle_bug)
