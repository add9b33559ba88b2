"""A fair coin's head fraction stays near 1/2: a probabilistic toy claim with a working
control (a biased coin, which must FAIL) and a variant whose control is broken."""

from __future__ import annotations

import numpy as np
import pandas as pd

from udl.engine import stats
from udl.engine.harness import Claim

BAND = 0.15  # half-width of the band around 1/2 that counts as "near"
BIASED = 0.8  # head probability of the control's coin: far outside the band


class FairCoin(Claim):
    id = "T.1a"
    theorem = "T.1"
    title = "fair coin stays near 1/2"
    statement = ("Over `flips` tosses of a fair coin the head fraction lies within 0.15 of 1/2 "
                 "with probability above 0.8.")
    kind = "probabilistic"
    effect = "true in-band rate ≈ 0.999 vs threshold 0.8; 40 instances give power ≈ 1."
    regime = "flips ∈ {100, 200}; toy."
    control = "a coin with head probability 0.8 (in-band rate ≈ 0): must FAIL."
    discrete_columns = frozenset({"heads", "fraction"})  # counts out of `flips`: instances may tie
    profiles = {
        "quick": {"cells": [{"flips": 100}, {"flips": 200}], "n_instances": 40},
        "ci": {"cells": [{"flips": 100}, {"flips": 200}], "n_instances": 60},
        "paper": {"cells": [{"flips": 100}, {"flips": 200}], "n_instances": 100},
    }

    def head_probability(self, control: bool) -> float:
        return BIASED if control else 0.5

    def simulate(self, cell, seeds, ctx):
        p = self.head_probability(ctx.control)
        heads = [np.random.default_rng(seed).binomial(cell["flips"], p) for seed in seeds]
        return pd.DataFrame({"instance": np.arange(len(seeds)), "heads": heads,
                             "fraction": np.asarray(heads) / cell["flips"]})

    def decide(self, table):
        inside = (table["fraction"] - 0.5).abs() <= BAND
        return stats.rate_test(int(inside.sum()), len(table), 0.8, alpha=self.alpha, name="in-band rate")


class FairCoinBrokenControl(FairCoin):
    id = "T.1b"
    title = "fair coin, control that cannot fail"
    control = "deliberately broken: the control coin is fair too, so the control PASSES."

    def head_probability(self, control: bool) -> float:
        return 0.5
