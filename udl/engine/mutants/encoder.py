"""Mutants of the encoders (:mod:`udl.core.encoders`, and the reference ISTA's lean paths in
:mod:`udl.core.unrolled`): a wrong threshold, a wrong step, a wrong threshold function.

A bug in the reference ISTA is installed on every path that computes its layers — the layer loop
(:meth:`udl.core.encoders.ISTA.init` / ``layer``), the lean function and estimators
(:func:`udl.core.unrolled.function.prepare`) and the depth sweep
(:mod:`udl.core.unrolled.sweep`) — so that the encoder stays one encoder, only wrong.
"""

from __future__ import annotations

import torch

from udl.core import encoders
from udl.core.threshold import shrink
from udl.core.unrolled import function, layers, sweep
from udl.engine.mutants.registry import combine, patch, patch_attribute, register

__all__: list[str] = []


@register(
    "threshold-lambda", area="encoder",
    bug="The reference ISTA thresholds at λ instead of θ = αλ (the step applied to the gradient step "
        "but forgotten on the threshold).",
    code="udl.core.encoders.ISTA.init, udl.core.unrolled.function.prepare, udl.core.unrolled.sweep._sweep_one",
    why="The codes converge to the lasso solution at λ/α (5λ at α = 0.2), not at λ: the code-error floor "
        "no longer grows like λ, true entries are zeroed, and g_dec, g_ae-lasso no longer reach ĝ.")
def _threshold_lambda():
    init, prepare, sweep_one = encoders.ISTA.init, function.prepare, sweep._sweep_one

    def ista_init(self, X, D, *, lam, step):
        A, B, state = init(self, X, D, lam=lam, step=step)
        return A, B, {**state, "theta": lam}

    def prepare_bug(X, D, lam, step):
        batch, A, B, lam_flat, _ = prepare(X, D, lam, step)
        return batch, A, B, lam_flat, lam_flat

    def sweep_one_bug(X, D, *, lam, theta, **kwargs):
        return sweep_one(X, D, lam=lam, theta=lam, **kwargs)

    return combine(patch_attribute(encoders.ISTA, "init", ista_init), patch(function, "prepare", prepare_bug),
                   patch(sweep, "_sweep_one", sweep_one_bug))


@register(
    "data-term-unscaled", area="encoder",
    bug="The layer's data term is B = DᵀX instead of B = αDᵀX (the step dropped from the data term, "
        "kept in A = I − αDᵀD).",
    code="udl.core.encoders.Encoder.init, udl.core.unrolled.layers.operators",
    why="Every encoder then iterates z ← P_θ(z − αDᵀDz + DᵀX), whose fixed point solves another problem "
        "(the data scaled by 1/α): the codes converge to the wrong amplitudes, so code errors, support "
        "recovery, gradients and learning are all off.")
def _data_term_unscaled():
    def init(self, X, D, *, lam, step):
        DtD = D.mT @ D
        A = torch.eye(D.shape[-1], dtype=D.dtype, device=D.device) - step * DtD
        B = D.mT @ X
        Z0 = torch.zeros(torch.broadcast_shapes(A.shape[:-2], B.shape[:-2]) + B.shape[-2:],
                         dtype=X.dtype, device=X.device)
        return A, B, {"Z": Z0}

    def operators(D, X, step):
        return layers.operator_A(D, step), D.mT @ X

    return combine(patch_attribute(encoders.Encoder, "init", init), patch(layers, "operators", operators))


@register(
    "soft-in-hard-threshold", area="encoder",
    bug="The hard-threshold encoder applies the soft threshold P_τ (the shared shrink helper) instead of "
        "H_τ(v) = v·1{|v| > τ}.",
    code="udl.core.encoders.HardThresholdISTA.layer",
    why="The hard-threshold variant then shrinks every surviving entry by τ, so it keeps the λ-type bias "
        "it exists to remove: its code-error floor is no longer well below the fixed-λ floor.")
def _soft_in_hard_threshold():
    def layer(self, t, A, B, state, *, lam, step):
        V = A @ state["Z"] + B
        return {"Z": shrink(V, torch.as_tensor(self.tau, dtype=V.dtype, device=V.device))}

    return patch_attribute(encoders.HardThresholdISTA, "layer", layer)


@register(
    "hard-in-lambda-decay", area="encoder",
    bug="The λ-decay encoder applies the hard threshold H_{αλ_t} instead of the soft threshold P_{αλ_t}.",
    code="udl.core.encoders.LambdaDecayISTA.layer",
    why="The decaying-threshold variant is no longer an ISTA with a shrinking λ (no 'soft_threshold' "
        "behaviour): a claim about it sees a different floor or support behaviour than the soft version.")
def _hard_in_lambda_decay():
    def layer(self, t, A, B, state, *, lam, step):
        lam_t = torch.clamp(lam * self.decay ** t, min=self.lam_min)
        V = A @ state["Z"] + B
        return {"Z": encoders.hard_threshold(V, step * lam_t)}

    return patch_attribute(encoders.LambdaDecayISTA, "layer", layer)


@register(
    "decay-direction", area="encoder",
    bug="The λ-decay encoder divides by the decay factor, λ_t = λ/γᵗ, so the threshold grows across the "
        "layers instead of decaying.",
    code="udl.core.encoders.LambdaDecayISTA.layer",
    why="The threshold explodes (γ = 0.9: ×500 after 60 layers), every code is zeroed, and the "
        "λ-decay variant's floor becomes max|z*| instead of dropping below the fixed-λ floor.")
def _decay_direction():
    def layer(self, t, A, B, state, *, lam, step):
        lam_t = torch.clamp(lam / self.decay ** t, min=self.lam_min)
        return {"Z": shrink(A @ state["Z"] + B, step * lam_t)}

    return patch_attribute(encoders.LambdaDecayISTA, "layer", layer)
