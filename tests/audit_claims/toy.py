"""Three toy claims that run the encoder under test on tiny instances (milliseconds each).

A.1 needs ``soft_threshold`` (the codes are sparse), A.2 needs ``differentiable`` (the ae-ls
gradient reaches D), A.3 needs nothing (the codes are finite). Each has a negative control.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import udl
from udl.engine import stats
from udl.engine.harness import Claim

_CELL = dict(m=10, p=20, s=2, n=10, lam=0.3, step=0.2, T=30)
_PROFILES = {"quick": {"cells": [_CELL], "n_instances": 20}, "ci": {"cells": [_CELL], "n_instances": 20},
             "paper": {"cells": [_CELL], "n_instances": 20}}
#: A.1: "sparse" = more than half of the code entries are exactly zero (s/p = 0.1 are non-zero in Z*).
SPARSE_MIN = 0.5
#: A.2: a gradient norm above this is "reaches D" (float64 rounding is ~1e-16 of norms ≈ 1).
GRAD_MIN = 1e-8


def _encoder(ctx):
    return udl.ISTA() if ctx.encoder is None else ctx.encoder


def _instances(cell, seeds, ctx):
    return udl.make_instances(cell["m"], cell["p"], cell["s"], cell["n"], init_scale=0.05, seed=list(seeds),
                              dtype=ctx.dtype, device=ctx.device)


class _Toy(Claim):
    theorem = "A"
    kind = "probabilistic"
    effect = "toy: the effect is total (fractions 0.9 vs 0), 20 instances decide it at any α."
    regime = "m = 10, p = 20, s = 2, n = 10, λ = 0.3, α = 0.2, T = 30; toy."
    profiles = _PROFILES


class SparseCodes(_Toy):
    id = "A.1"
    title = "the codes are sparse"
    statement = ("More than half of the entries of Z_T are exactly zero, on most instances "
                 "(rate of instances with zero fraction > 0.5 is above 0.5).")
    control = "udl.NoThreshold: no entry is ever exactly zero. Must FAIL."
    requires = frozenset({"soft_threshold"})
    discrete_columns = frozenset({"zero_fraction"})  # a count out of p·n entries: instances may tie

    def simulate(self, cell, seeds, ctx):
        inst = _instances(cell, seeds, ctx)
        encoder = udl.NoThreshold() if ctx.control else _encoder(ctx)
        with torch.no_grad():
            Z = encoder(inst.X, inst.D0, lam=cell["lam"], step=cell["step"], T=cell["T"])
        zero = (Z == 0).to(torch.float64).mean(dim=(-2, -1))
        return pd.DataFrame({"instance": np.arange(len(seeds)), "zero_fraction": zero.cpu().numpy()})

    def decide(self, table):
        sparse = int((table["zero_fraction"] > SPARSE_MIN).sum())
        return stats.rate_test(sparse, len(table), 0.5, alpha=self.alpha, name="rate of sparse Z_T")


class GradientReaches(_Toy):
    id = "A.2"
    title = "the ae-ls gradient reaches D"
    statement = "‖g_ae-ls‖_F > 1e-8 on (almost) every instance: rate > 0.5."
    control = "the gradient scaled by 1e-12 (it barely reaches D: ‖g‖ ≈ 1e-12). Must FAIL."
    requires = frozenset({"differentiable"})

    def simulate(self, cell, seeds, ctx):
        inst = _instances(cell, seeds, ctx)
        g = udl.gradient(inst.X, inst.D0, kind="ae-ls", lam=cell["lam"], step=cell["step"], T=cell["T"],
                         encoder=_encoder(ctx))
        if ctx.control:
            g = g * 1e-12
        norm = torch.linalg.matrix_norm(g).clamp_min(1e-300)
        return pd.DataFrame({"instance": np.arange(len(seeds)), "log10_norm": torch.log10(norm).cpu().numpy()})

    def decide(self, table):
        reaches = int((table["log10_norm"] > np.log10(GRAD_MIN)).sum())
        return stats.rate_test(reaches, len(table), 0.5, alpha=self.alpha, name="rate of ‖g_ae-ls‖ > 1e-8")


class FiniteCodes(_Toy):
    id = "A.3"
    title = "the codes are finite"
    statement = "Z_T is finite on (almost) every instance: finite rate > 0.5."
    control = "the codes replaced by NaN. Must FAIL."
    requires = frozenset()

    def simulate(self, cell, seeds, ctx):
        inst = _instances(cell, seeds, ctx)
        with torch.no_grad():
            Z = _encoder(ctx)(inst.X, inst.D0, lam=cell["lam"], step=cell["step"], T=cell["T"])
        if ctx.control:
            Z = torch.full_like(Z, float("nan"))
        finite = torch.isfinite(Z).flatten(-2).all(dim=-1)
        return pd.DataFrame({"instance": np.arange(len(seeds)), "finite": finite.cpu().numpy()})

    def decide(self, table):
        return stats.rate_test(int(table["finite"].sum()), len(table), 0.5, alpha=self.alpha, name="finite rate")
