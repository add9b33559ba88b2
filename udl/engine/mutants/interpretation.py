r"""Mutants of the interpretation of stationary points (:mod:`udl.core.interpret`):
D̃ = X G⁻¹Z̃ᵀ, G = Z̃ᵀZ̃ + ωI, and β = G⁻¹Z̃ᵀẑ."""

from __future__ import annotations

from udl.core import interpret
from udl.engine.mutants.registry import patch, register

__all__: list[str] = []


@register(
    "omega-rescaled", area="interpretation",
    bug="The ridge of G is ω/n instead of ω (the weight decay converted to the mean-over-examples scale "
        "inside the solver although the caller already passes nω).",
    code="udl.core.interpret.contributions",
    why="D̃ = XG⁻¹Z̃ᵀ is the stationary point of a much weaker weight decay: it no longer matches a "
        "dictionary trained with ω, nor satisfies ∇L(D̃) + ωD̃ = 0 for the ω of the claim.")
def _omega_rescaled():
    contributions = interpret.contributions

    def contributions_bug(X, Z, *, omega):
        return contributions(X, Z, omega=omega / X.shape[-1])

    return patch(interpret, "contributions", contributions_bug)


@register(
    "beta-without-inverse", area="interpretation",
    bug="The reconstruction coefficients are computed as β = Z̃ᵀẑ, the solve with G (G⁻¹) forgotten.",
    code="udl.core.interpret.reconstruction_coefficients",
    why="Xβ is no longer D̃ẑ: the reconstruction of a new example as a combination of training examples "
        "fails its identity, and the weights no longer single out the examples that build the atoms.")
def _beta_without_inverse():
    def beta_bug(X, Z, Z_new, *, omega):
        interpret.contributions(X, Z, omega=omega)            # same validation, result unused
        return Z.mT @ Z_new

    return patch(interpret, "reconstruction_coefficients", beta_bug)
