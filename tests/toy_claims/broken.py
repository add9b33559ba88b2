"""A claim whose simulate raises: the engine must record ERROR, not drop it."""

from __future__ import annotations

from udl.engine.harness import Claim

_PROFILE = {"cells": [{"size": 3}], "n_instances": 5}


class Raises(Claim):
    id = "T.2"
    theorem = "T.2"
    title = "simulate raises"
    statement = "Nothing: simulate() raises to test ERROR capture."
    kind = "identity"
    effect = "none"
    regime = "none"
    control = "none"
    profiles = {"quick": _PROFILE, "ci": _PROFILE, "paper": _PROFILE}

    def simulate(self, cell, seeds, ctx):
        raise RuntimeError("deliberate failure in simulate")

    def decide(self, table):  # pragma: no cover - never reached
        raise AssertionError("decide must not run after a failed simulate")
