"""Three tiny claims on udl.core, each with teeth against one mutant.

- M.1: g* at D⁽⁰⁾ points away from D* (⟨g*, D⁽⁰⁾ − D*⟩ = tr((D⁽⁰⁾ − D*)Z*Z*ᵀ(D⁽⁰⁾ − D*)ᵀ)/n > 0): killed by
  ``oracle-sign``, which is also its negative control (``control_mutant``).
- M.2: ISTA's Z_T satisfies the lasso KKT conditions at λ (violation below KKT_MAX): killed by
  ``threshold-lambda`` (Z_T then solves the lasso at λ/α).
- M.3: the lasso solver certifies its solution; an uncertified one is an error, which the claim
  declares as the failure it detects (``detects_errors``): killed by ``lasso-unconverged``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from udl import core
from udl.engine import Claim, stats

SIZES = {"m": 20, "p": 30, "s": 2, "n": 10}
LAM, STEP, T = 0.1, 0.2, 300
#: M.2: relative KKT violation allowed after T = 300 layers (ISTA reaches ~1e-10 here; the lasso at
#: λ/α = 5λ violates the KKT conditions at λ by ≈ 4, i.e. 1/α − 1).
KKT_MAX = 1e-3
_PROFILE = {"cells": [{"size": 1}], "n_instances": 10}
_PROFILES = {"quick": _PROFILE, "ci": _PROFILE, "paper": _PROFILE}


def _instances(seeds):
    return core.make_instances(**SIZES, init_scale=0.05, seed=list(seeds))


class _Toy(Claim):
    kind = "ordering"
    effect = "toy: every instance on the claim's side; 10 instances give p = 0.001."
    regime = "m = 20, p = 30, s = 2, n = 10, float64; toy."
    profiles = _PROFILES


class OracleDescent(_Toy):
    id = "M.1"
    theorem = "M.1"
    title = "g* points away from D*"
    statement = "⟨g*, D⁽⁰⁾ − D*⟩ > 0 for every instance."
    control = "the oracle-sign mutant (g* with the wrong sign): must FAIL."
    control_mutant = "oracle-sign"

    def simulate(self, cell, seeds, ctx):
        inst = _instances(seeds)
        g = core.oracle_gradient(inst.X, inst.D0, inst.Z_star)
        inner = (g * (inst.D0 - inst.D_star)).sum(dim=(-2, -1))
        return pd.DataFrame({"instance": np.arange(len(seeds)), "inner": inner.numpy()})

    def decide(self, table):
        return stats.sign_test(table["inner"], alpha=self.alpha, name="share of ⟨g*, D − D*⟩ > 0")


class IstaKKT(_Toy):
    id = "M.2"
    theorem = "M.2"
    title = "ISTA's codes satisfy the lasso KKT conditions at λ"
    statement = "After T = 300 layers at D*, the relative KKT violation of Z_T at λ is below 1e-3."
    control = "NoThreshold codes (least squares, not the lasso): must FAIL."

    def simulate(self, cell, seeds, ctx):
        inst = _instances(seeds)
        encoder = core.NoThreshold() if ctx.control else core.ISTA()
        Z = encoder(inst.X, inst.D_star, lam=LAM, step=STEP, T=T)
        kkt = core.kkt_violation(inst.X, inst.D_star, Z, LAM)
        return pd.DataFrame({"instance": np.arange(len(seeds)), "kkt": kkt.numpy(),
                             "z_norm": torch.linalg.matrix_norm(Z).numpy()})

    def decide(self, table):
        return stats.sign_test(KKT_MAX - table["kkt"], alpha=self.alpha, name="share below KKT_MAX")


class LassoCertificate(_Toy):
    id = "M.3"
    theorem = "M.3"
    title = "the lasso solver certifies its solution"
    statement = "lasso_solve returns Ẑ with a relative KKT violation within its tolerance."
    control = "a tolerance of 1e-30, which no solver meets: the simulation raises (ERROR)."
    detects_errors = True

    def simulate(self, cell, seeds, ctx):
        inst = _instances(seeds)
        tol = 1e-30 if ctx.control else 1e-9
        sol = core.lasso_solve(inst.X, inst.D0, lam=LAM, tol=tol, max_iter=20_000)
        if bool((sol.kkt > sol.tol).any()):
            raise RuntimeError(f"lasso_solve returned an uncertified solution (KKT {float(sol.kkt.max()):.3g} "
                               f"> tol {sol.tol:g})")
        return pd.DataFrame({"instance": np.arange(len(seeds)), "margin": (sol.tol - sol.kkt).numpy()})

    def decide(self, table):
        return stats.sign_test(table["margin"] + torch.finfo(torch.float64).tiny, alpha=self.alpha,
                               name="share certified")
