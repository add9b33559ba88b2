"""H.2: a claim whose simulate ignores its seeds, so every instance is a copy of the first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from udl.engine import Claim, stats

_PROFILE = {"cells": [{"T": 5}], "n_instances": 6}


class Copies(Claim):
    id = "H.2"
    theorem = "H"
    title = "instances that are copies"
    statement = "The mean of a standard normal draw is below 1 (decided from copies of one instance)."
    kind = "rate"
    effect = "none: the instances are not independent."
    regime = "one draw, repeated."
    control = "the same copies shifted by 5: must FAIL."
    profiles = {"quick": _PROFILE, "ci": _PROFILE, "paper": _PROFILE}

    def simulate(self, cell, seeds, ctx):
        draw = np.random.default_rng(12345).standard_normal(cell["T"])  # the bug: seeds are ignored
        shift = 5.0 if ctx.control else 0.0
        return pd.DataFrame({"instance": np.repeat(np.arange(len(seeds)), cell["T"]),
                             "t": np.tile(np.arange(cell["T"]), len(seeds)),
                             "value": np.tile(draw + shift, len(seeds))})

    def decide(self, table):
        means = table.groupby("instance")["value"].mean()
        return stats.mean_test(means, threshold=1.0, side="less", alpha=self.alpha, name="mean value")
