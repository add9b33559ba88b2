"""Mutants of dictionary learning (:mod:`udl.core.training`)."""

from __future__ import annotations

from udl.core import training
from udl.engine.mutants.registry import patch_attribute, register

__all__: list[str] = []


@register(
    "no-renormalise", area="training",
    bug="The training step skips the column renormalisation of D (the normalize flag is accepted and "
        "ignored).",
    code="udl.core.training.train",
    why="The columns drift off the unit sphere (‖D_j‖ shrinks or grows with every step): the dictionary "
        "error no longer contracts to the predicted neighbourhood, and a trained D is not the "
        "normalised stationary point the claims compare it with.")
def _no_renormalise():
    # train looks normalize_columns_unchecked up in its own module: patch that binding only (the
    # helper itself stays correct for its other users)
    return patch_attribute(training, "normalize_columns_unchecked", lambda D: D)
