"""H.1: an exact identity, (a + b)² = a² + 2ab + b², checked against a rounding budget."""

from __future__ import annotations

import numpy as np
import pandas as pd

from udl.engine import Claim, stats

#: 8 ulps of the largest term: the rounding of three products and two sums, doubled for margin.
BUDGET_ULPS = 8
#: The control's deliberate slip: the cross term 2ab written as ab (off by ab, far beyond rounding).
_PROFILE = {"cells": [{"terms": 50}], "n_instances": 6}


class SquareExpansion(Claim):
    id = "H.1"
    theorem = "H"
    title = "the square of a sum expands exactly"
    statement = "(a + b)² = a² + 2ab + b² for every a, b, up to floating-point rounding."
    kind = "deterministic"
    effect = "exact: one value beyond the rounding budget is a counterexample."
    regime = "a, b standard normal; `terms` pairs per instance."
    control = "the expansion with ab in place of 2ab: must FAIL."
    profiles = {"quick": _PROFILE, "ci": _PROFILE, "paper": _PROFILE}

    def simulate(self, cell, seeds, ctx):
        rows = []
        for i, seed in enumerate(seeds):
            a, b = np.random.default_rng(seed).standard_normal((2, cell["terms"]))
            cross = a * b if ctx.control else 2 * a * b
            deviation = (a + b) ** 2 - (a * a + cross + b * b)
            scale = np.maximum.reduce([(a + b) ** 2, a * a, np.abs(2 * a * b), b * b])
            rows.append({"instance": i, "deviation": float(np.max(np.abs(deviation) / scale)),
                         "scale": float(np.max(scale))})
        return pd.DataFrame(rows)

    def decide(self, table):
        return stats.deterministic_check(table["deviation"], tolerance=BUDGET_ULPS * np.finfo(float).eps,
                                         budget="8 ulps of the largest term (three products, two sums)",
                                         name="worst relative deviation")
