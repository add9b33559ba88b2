"""A fair die averages 3.5: a toy claim that brings its own figure (an ``@figure`` method).

Everything the report needs for the figure is in this file; nothing in ``udl/`` names the claim.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from udl.engine import Claim, FigureInput, figure, plotting as plot, stats

#: The expected face of a fair six-sided die.
MEAN = 3.5
#: Half-width of the equivalence band around MEAN for the mean of ``rolls`` rolls.
MARGIN = 0.5
#: Face probabilities of the control's loaded die: 6 with probability 0.9 (mean 5.75, far outside the band).
LOADED = (0.02, 0.02, 0.02, 0.02, 0.02, 0.9)


class FairDie(Claim):
    id = "T.9"
    theorem = "T.9"
    title = "a fair die averages 3.5"
    statement = "The mean of `rolls` rolls of a fair die lies within 3.5 ± 0.5 on average over instances."
    kind = "rate"
    effect = "the per-instance mean has sd ≈ 0.24 at 50 rolls; 8 instances give power ≈ 1."
    regime = "rolls = 50; toy."
    control = "a loaded die that shows 6 with probability 0.9 (mean 5.75): must FAIL."
    discrete_columns = frozenset({"mean"})  # a sum of 50 faces over 50: instances may tie
    profiles = {name: {"cells": [{"rolls": 50}], "n_instances": 8} for name in ("quick", "ci", "paper")}

    def simulate(self, cell, seeds, ctx):
        faces = np.arange(1, 7)
        means = [float(np.random.default_rng(seed).choice(faces, cell["rolls"], p=LOADED).mean()) if ctx.control else
                 float(np.random.default_rng(seed).integers(1, 7, cell["rolls"]).mean()) for seed in seeds]
        return pd.DataFrame({"instance": np.arange(len(seeds)), "mean": means})

    def decide(self, table):
        return stats.mean_test(table["mean"], threshold=MEAN, margin=MARGIN, side="equal", alpha=self.alpha,
                               name="mean face")

    @figure("mean-per-instance", f"Mean face per instance, against the fair die's {MEAN:g} (dashed).")
    def draw_means(self, fi: FigureInput):
        fi.need("instance", "mean")
        fig, (ax,) = plot.new_figure(1)
        ax.bar(fi.table["instance"], fi.table["mean"], color=plot.palette(1)[0], label="mean face")
        ax.axhline(MEAN, color="0.3", linestyle="--", label=f"fair: {MEAN:g}")
        ax.set_xlabel("instance")
        plot.legend(ax)
        return fig
