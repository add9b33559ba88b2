"""A claim that PASSES on its own (p ≈ 0.0059 < α = 0.01) but not after Holm with one more
claim in the run (2 · 0.0059 > 0.01): 16 wins out of 20, deterministically."""

from __future__ import annotations

import numpy as np
import pandas as pd

from udl.engine import stats
from udl.engine.harness import Claim

WINS = 16
_PROFILE = {"cells": [{"pairs": 20}], "n_instances": 20}


class Weak(Claim):
    id = "T.3"
    theorem = "T.3"
    title = "barely significant ordering"
    statement = "16 of 20 paired differences are positive (deterministic)."
    kind = "ordering"
    effect = "win rate 0.8 against 0.5; n = 20 is at the edge of detection on purpose."
    regime = "deterministic toy."
    control = "every difference negative: must FAIL."
    discrete_columns = frozenset({"difference"})  # ±1 by construction: instances tie
    profiles = {"quick": _PROFILE, "ci": _PROFILE, "paper": _PROFILE}

    def simulate(self, cell, seeds, ctx):
        instance = np.arange(len(seeds))
        difference = np.where(instance < WINS, 1.0, -1.0)
        if ctx.control:
            difference = -np.ones(len(seeds))
        return pd.DataFrame({"instance": instance, "difference": difference})

    def decide(self, table):
        return stats.sign_test(table["difference"], alpha=self.alpha)


class WeakTwin(Weak):
    id = "T.3b"
    title = "barely significant ordering, twin"
