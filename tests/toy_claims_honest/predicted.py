"""H.3: a mean with a predicted value and a hypothesis per cell; H.4: the same claim, decided only at
ci and paper; H.5: a reference quantity whose certificate fails."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from udl.engine import CertificateError, Claim, stats

#: The predicted mean of a normal with mean `mu`: `mu` itself.
_CELLS = [{"mu": 1.5, "sd": 1.0}, {"mu": 1.5, "sd": 3.0}]
_PROFILE = {"cells": _CELLS, "n_instances": 40}
#: The hypothesis of the toy theorem: the noise level is below 2.
SD_BOUND = 2.0


@dataclass(frozen=True)
class Cell:
    mu: float
    sd: float


class PredictedMean(Claim):
    id = "H.3"
    theorem = "H"
    title = "a sample mean lies near its prediction"
    statement = "The mean of N(μ, σ²) draws exceeds 0 (the theory predicts it equals μ)."
    kind = "rate"
    effect = "mean 1.5 against 0 with sd up to 3: 80 instances give power ≈ 1."
    regime = "μ = 1.5, σ ∈ {1, 3}; the toy theorem needs σ < 2."
    control = "draws centred at −2: must FAIL."
    Cell = Cell
    profiles = {"quick": _PROFILE, "ci": _PROFILE, "paper": _PROFILE}

    def simulate(self, cell, seeds, ctx):
        mu = -2.0 if ctx.control else cell.mu
        values = [np.random.default_rng(seed).normal(mu, cell.sd) for seed in seeds]
        return pd.DataFrame({"instance": np.arange(len(seeds)), "value": values})

    def decide(self, table):
        verdict = stats.mean_test(table["value"], threshold=0.0, alpha=self.alpha, name="mean")
        predicted = stats.prediction("mean", _CELLS[0]["mu"], verdict.statistic, verdict.interval)
        return replace(verdict, predictions=(predicted,))

    def hypotheses(self, cell, table):
        return [stats.hypothesis("σ < 2", cell.sd, SD_BOUND, note="the toy theorem's noise condition"),
                stats.hypothesis("n ≥ 10", float(table["instance"].nunique()), 9.5, side="greater")]


class PredictedMeanLate(PredictedMean):
    id = "H.4"
    title = "a sample mean, decided at ci and paper only"
    decides_at = ("ci", "paper")


class FailedCertificate(PredictedMean):
    id = "H.5"
    title = "a reference quantity whose certificate fails"

    def simulate(self, cell, seeds, ctx):
        raise CertificateError("reference mean: KKT residual 0.3 exceeds its tolerance 1e-8")
