r"""Theorem II.1 — code error of the unrolled encoder (forward pass).

Statement (journal form). Under incoherence and a close dictionary D, with high probability

    |z_{t,j} − z*_j| ≤ O(√s·‖D_j − D*_j‖ + e_{t,j} + λ),   e_{t,j} → 0 as t → ∞,

for the ISTA iterates z_{t+1} = P_{αλ}(z_t − α Dᵀ(D z_t − x)) from z₀ = 0. The dictionary term
√s·‖D_j − D*_j‖, the optimisation term e_t and the λ term are tested separately:

=========  =========================================================================  =============
claim      what is tested                                                             kind
=========  =========================================================================  =============
II.1a      the iterates converge to a floor; once the support is fixed the step       rate
           ‖z_t − z_{t−1}‖ decays geometrically (fitted factor ρ < 1) at the rate of
           the support's spectrum (log ρ̂ / log ρ_pred within a factor 1.5)
II.1b      at D = D* the converged code is exactly z* − λ(D_SᵀD_S)⁻¹sign(z*_S) on      deterministic
           every witnessed support: the floor is the λ term, linear in λ and > 0
II.1c      the floor increases with the column distance δ = ‖D_j − D*_j‖ (and the     rate
           swept dictionaries are at the stated δ)
II.1d      in the incoherent regime supp(z_T) = supp(z*) for the vast majority        probabilistic
           of examples (≥ 90 %)
II.1e      over a δ sweep: at small δ λ-decay and hard thresholding lower the floor   ordering
           below half the fixed-λ floor, which is the λ term; what they leave
           vanishes with δ (the dictionary term); where the removal holds is reported
=========  =========================================================================  =============

Every claim's negative control is a plausible bug from the mutant catalogue
(:mod:`udl.engine.mutants`, ``control_mutant``), and every claim records the theorem's hypotheses on
its cells (``hypotheses``: μ(2s − 1) < 1, λ ≥ s·log m/√m, δ ≤ 1/log p, O-constants 1); the
predictions of the theory (ρ, the slope in λ, the exponents in δ) are reported beside the verdicts.

"Code error" is the quantity the theorem bounds, max_{j,k} |z_{T,jk} − z*_jk| over the codes and
examples of an instance (:func:`udl.code_error`, reduction "max"); the mean absolute error is
recorded too. The "floor" is the code error once the encoder has converged (T large; the last
relative step ‖Z_T − Z_{T−1}‖_F / ‖Z*‖_F is recorded as ``conv`` so that the claim can be audited).

Decisions combine their parts by intersection–union (:func:`all_of`): PASS needs every part (λ
cell, sub-test, variant, deterministic check) to PASS, so the combined false-PASS rate stays ≤ α
and p = max p over the statistical parts; FAIL when some part FAILS (false-FAIL rate ≤ k·α for k
statistical parts).

All sizes, tolerances and thresholds are named constants below, each with its reason. Every
profile, quick included, is sized so that the predicted effect gives p ≤ 0.01/17 ≈ 6e-4, the Holm
worst case of a run over all claims (the test suite runs quick as one Holm family). Pilots of this
revision used root seed 10012 (seeds ≥ 10000 are for pilots; 0 is the reference run). The claims
run in ``ctx.dtype`` (float64 by default: the geometric fit of II.1a follows the step down to
10³·eps, which in float32 leaves only a short window; the other claims are well inside float32).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from udl import core
from udl.engine import Claim, Context, FigureInput, Verdict, all_of, figure, stats
from udl.engine import plotting as plot

__all__ = ["CodeConvergence", "LambdaFloor", "DictionaryTerm", "SupportRecovery", "BiasRemoval",
           "geometric_rates", "predicted_rates", "lasso_bias"]

# --------------------------------------------------------------------------- constants
#: Signs of z_T that changed at layer t mark the support as not yet fixed; the geometric fit of
#: II.1a uses only later layers, and needs at least this many of them (fewer points make the
#: fitted slope's t interval too wide to mean anything).
MIN_FIT_POINTS = 10
#: A relative step ‖Z_t − Z_{t−1}‖_F/‖Z*‖_F below this many machine epsilons is rounding noise,
#: not geometric decay: the fit stops there (10³·eps ≈ 2e-13 in float64, 1e-4 in float32).
PRECISION_FACTOR = 1e3
#: II.1a: the fitted per-layer log-rate may differ from the support's predicted one,
#: log ρ̂ / log ρ_pred, by at most this factor either way (|log q| < log 1.5). A finite fit window
#: also sees faster modes, so q ≥ 1 (pilot, root seed 10012, ci: mean q 1.13 / 1.05 / 1.05 at
#: λ = 0.1 / 0.2 / 0.4, max 1.35); an encoder whose decay is not the support's — a code with more
#: than m non-zeros, where D_SᵀD_S is singular and ρ_pred = 1 — is orders of magnitude outside.
SPECTRUM_FACTOR = 1.5
#: II.1b: the predicted log-log slope of the floor against λ (floor ∝ λ, see the statement);
#: reported as a prediction, not decided (the exact check is per example).
PREDICTED_SLOPE = 1.0
#: II.1b rounding budget: the lasso solution on a witnessed support is a solve with the s × s
#: matrix D_SᵀD_S (condition ≤ 10 here); its entries are within ≈ s·cond·eps·max|z*| of exact.
#: 1e3·eps·(1 + max|z*|) is 6.7e-13 in float64 (pilot deviation ≤ 3.7e-15).
ROUNDING_FACTOR = 1e3
#: II.1b convergence budget: after T layers the encoder is within ρ/(1 − ρ)·(last step) of its
#: fixed point; with ρ ≤ 0.99 on the supports of this regime that is ≤ 100 × the last step
#: ‖Z_T − Z_{T−1}‖_F (pilot: last relative step ≤ 2e-12 at λ ≥ 0.05, T = 600).
CONVERGENCE_FACTOR = 100.0
#: II.1c: smallest relative trend of the floor that counts as "increasing": floor(δ)/floor(0)
#: must grow by ≥ 0.1 per unit δ, i.e. by ≥ 1 % when δ grows by 0.1. Far above what
#: rounding or an unconverged encoder can produce (relative steps ≤ 1e-6 at T_max), and far below
#: the dictionary term the theorem predicts (√s·δ ≈ 0.22 at s = 5, δ = 0.1, against a λ floor
#: of ≈ 0.5 at λ = 0.2: a relative slope of order 1–5; the pilot measured 2.5).
TREND_MIN = 0.1
#: II.1c: the swept dictionaries are where they are said to be: every column of D⁽⁰⁾ at distance δ
#: from D*'s to this many epsilons of the run's dtype (a rotation and a normalisation round to a
#: few eps; pilot deviation ≤ 6e-16 ≈ 2.6·eps in float64).
SWEEP_EPS_FACTOR = 1e3
#: II.1d: "the vast majority of examples". At m = 50 the support is missed for about a fifth of
#: the examples even at D = D* (rate ≈ 0.8); a claimed majority has to sit clearly above that.
RECOVERY_RATE_MIN = 0.9
#: II.1d: layers at which the recovery curve is recorded (for the figure); the decision uses
#: the last (T_max).
RECOVERY_RECORD_T = (5, 10, 15, 20, 25, 30, 40, 50)
#: II.1e: "well below" = at most half the fixed-λ floor, i.e. the removed λ term was the larger
#: part of the floor. The test is on log(floor_variant / floor_fixed) < log(1/2).
RATIO_MAX = 0.5
#: II.1e: the fixed-λ floor at the smallest δ of the sweep is the λ term: its ratio to the λ term at
#: D*, λ·max_k ‖(D*_SᵀD*_S)⁻¹sign(z*_S)‖∞, lies within 1 ± LAMBDA_TERM_BAND (mean over instances,
#: two one-sided t tests). ±0.25 leaves room for the dictionary term at δ_min (pilot, root seed
#: 10012: ratio 1.01–1.06 at δ = 0.02) and excludes a threshold off by 1/α = 5 or a code without
#: a threshold, whose floor is not a λ term at all.
LAMBDA_TERM_BAND = 0.25
#: II.1e: what the variants leave is the dictionary term O(√s·δ), which vanishes linearly at D*:
#: the per-instance log-log slope of a variant's floor against δ must exceed this (mean, t test).
#: Half the predicted 1 (pilot slopes 1.03 decay, 1.16 hard); a variant that keeps a λ-type bias
#: (a floor that does not vanish with δ) has slope ≈ 0.
DICTIONARY_SLOPE_MIN = 0.5
#: II.1e: the predicted exponent of the variants' floor in δ (the dictionary term √s·δ).
DICTIONARY_SLOPE = 1.0
#: II.1e: the paper's per-column distance, c√m with c = 0.005 at m = 1000; the sweep reports
#: whether the bias removal still halves the floor there.
DELTA_PAPER = 0.005 * math.sqrt(1000)
#: The O(·) constants of the hypotheses of Thm II.1 are taken as 1 when a cell's hypotheses
#: are recorded (μ(2s − 1) < 1, λ ≥ s·log m/√m, δ ≤ 1/log p): all a finite run can do.
HYPOTHESIS_CONSTANT = 1.0


# --------------------------------------------------------------------------- helpers

def _iterates(encoder, X, D, *, lam, step, T):
    """Yield z_1 … z_T of ``encoder`` without keeping the path (falls back to ``return_path``)."""
    if hasattr(encoder, "iterates"):
        yield from encoder.iterates(X, D, lam=lam, step=step, T=T)
    else:
        yield from encoder(X, D, lam=lam, step=step, T=T, return_path=True)[1:]


def _instances(cell, seeds, ctx: Context, **override) -> core.Instances:
    """Instances of a cell: m, p, s, n and, where the cell has them, init_scale / init_distance
    (or ``override``)."""
    spec = {k: getattr(cell, k) for k in ("m", "p", "s", "n", "init_scale", "init_distance") if hasattr(cell, k)}
    spec.update(override)
    return core.make_instances(spec["m"], spec["p"], spec["s"], spec["n"],
                              init_scale=float(spec.get("init_scale", 0.0)),
                              init_distance=spec.get("init_distance"),
                              seed=list(seeds), dtype=ctx.dtype, device=ctx.device)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _support_rate(Z: torch.Tensor, Z_star: torch.Tensor) -> torch.Tensor:
    """Fraction of examples with supp(z_T) = supp(z*), per instance (B,) — as :func:`udl.support_recovery`,
    but a diverged encoder's non-finite entries count as non-zero instead of raising."""
    return ((Z != 0) == (Z_star != 0)).all(dim=-2).to(Z_star.dtype).mean(dim=-1)


def _final(encoder, X, D, Z_star, *, lam, step, T):
    """Run T layers; return Z_T, its max and mean code error and the last relative step."""
    Z_prev = Z = torch.zeros_like(Z_star)
    for Z_new in _iterates(encoder, X, D, lam=lam, step=step, T=T):
        Z_prev, Z = Z, Z_new
    E = (Z - Z_star).abs()
    scale = torch.linalg.matrix_norm(Z_star)
    return Z, E.amax(dim=(-2, -1)), E.mean(dim=(-2, -1)), torch.linalg.matrix_norm(Z - Z_prev) / scale


def lasso_bias(D: torch.Tensor, Z_star: torch.Tensor) -> dict:
    """The λ term of the lasso at D on the true supports (primal-dual witness), per example.

    On the support S of z*ₖ with signs σ = sign(z*_S), the candidate ẑ = z* − λ·w, w = (D_SᵀD_S)⁻¹σ
    (zero off S), is *the* lasso solution for noiseless x = Dz* whenever the irrepresentable
    condition max_{j∉S} |D_jᵀD_S w| < 1 holds and λ·‖w‖∞ < min|z*_S| keeps the signs.

    Parameters
    ----------
    D : (B, m, p) dictionary (D* for the claims).  Z_star : (B, p, n) true codes, s non-zeros each.

    Returns
    -------
    dict of tensors: ``bias`` (B, p, n) = −w scattered on the supports (ẑ = z* + λ·bias),
    ``coef`` (B, n) = ‖w‖∞, ``irrepresentable`` (B, n), ``amp_min`` (B, n) = min|z*_S|.
    """
    mask = Z_star != 0
    s = int(mask.sum(dim=-2).max())
    idx = torch.argsort(mask.to(torch.int8), dim=-2, descending=True, stable=True)[:, :s, :]   # (B, s, n)
    B, m, p = D.shape
    n = Z_star.shape[-1]
    DS = torch.gather(D.unsqueeze(1).expand(B, n, m, p), -1,
                      idx.mT.unsqueeze(-2).expand(B, n, m, s))                              # (B, n, m, s)
    zS = torch.gather(Z_star, -2, idx).mT                                                    # (B, n, s)
    w = torch.linalg.solve(DS.mT @ DS, torch.sign(zS).unsqueeze(-1)).squeeze(-1)             # (B, n, s)
    corr = (D.mT.unsqueeze(1) @ (DS @ w.unsqueeze(-1))).squeeze(-1).abs()                  # (B, n, p)
    bias = torch.zeros_like(Z_star).scatter(-2, idx, -w.mT)
    return {"bias": bias, "coef": w.abs().amax(dim=-1),
            "irrepresentable": corr.masked_fill(mask.mT, 0).amax(dim=-1),
            "amp_min": zS.abs().amin(dim=-1)}


def _hypotheses(cell, table: pd.DataFrame, *, lam: float, delta: float) -> list:
    """Thm II.1's hypotheses on a cell (O-constants 1, see HYPOTHESIS_CONSTANT), worst instance:
    μ(2s − 1) < 1 from the ``coherence`` column, λ against s·log m/√m, and δ·log p < 1 for the
    worst column distance δ of the dictionary the encoder uses."""
    c = HYPOTHESIS_CONSTANT
    return [
        stats.hypothesis("μ(2s − 1) < 1", float(table["coherence"].max()) * (2 * cell.s - 1), c,
                         note="worst-case incoherence for exact support recovery; μ measured per instance"),
        stats.hypothesis("λ ≥ s·log m/√m", lam / (cell.s * math.log(cell.m) / math.sqrt(cell.m)), c,
                         side="greater", note="value: λ/(s·log m/√m), largest λ of the cell"),
        stats.hypothesis("δ ≤ 1/log p", delta * math.log(cell.p), c,
                         note="value: δ·log p, δ the worst column distance ‖D_j − D*_j‖"),
    ]


def predicted_rates(D: torch.Tensor, Z: torch.Tensor, step: float) -> torch.Tensor:
    """Per-layer contraction factor of ISTA on the support of ``Z``, worst example per instance.

    On a fixed support S the iteration is affine with linear part I − α D_Sᵀ D_S, so the excess
    decays by ρ_k = max |1 − α·eig(D_Sᵀ D_S)| per layer for example k; the slowest example
    dominates the Frobenius norm over an instance. Supports are padded to the largest size; a
    padded slot gets the eigenvalue 1/α, i.e. factor 0.

    Parameters
    ----------
    D : (B, m, p) dictionary.  Z : (B, p, n) converged codes.  step : α.

    Returns
    -------
    (B,) tensor of max_k ρ_k (0 for an instance whose codes are all zero).
    """
    mask = Z != 0
    k = int(mask.sum(dim=-2).max())
    if k == 0:
        return torch.zeros(Z.shape[0], dtype=D.dtype, device=D.device)
    B, p, n = Z.shape
    idx = torch.argsort(mask.to(torch.int8), dim=-2, descending=True, stable=True)[:, :k, :]
    valid = torch.gather(mask, -2, idx).mT.to(D.dtype)                      # (B, n, k)
    idx = idx.mT                                                           # (B, n, k)
    DtD = (D.mT @ D).unsqueeze(1).expand(B, n, p, p)
    rows = torch.gather(DtD, -2, idx.unsqueeze(-1).expand(B, n, k, p))     # (B, n, k, p)
    G = torch.gather(rows, -1, idx.unsqueeze(-2).expand(B, n, k, k))       # (B, n, k, k)
    G = G * valid.unsqueeze(-1) * valid.unsqueeze(-2) + torch.diag_embed((1 - valid) / step)
    ev = torch.linalg.eigvalsh(G)
    return (1 - step * ev).abs().amax(dim=-1).amax(dim=-1)


def geometric_rates(curves: pd.DataFrame, *, by=("cell", "instance")) -> pd.DataFrame:
    """Fit the per-layer factor ρ of the relative step ``diff`` per instance (II.1a).

    For each group (rows with columns ``T``, ``diff``, ``fixed``, ``eps``): OLS of log diff on T
    over the layers after the last sign change (``fixed``) where diff is finite and above
    :data:`PRECISION_FACTOR`·eps. If fewer than :data:`MIN_FIT_POINTS` such layers exist, the
    last MIN_FIT_POINTS finite layers above the precision floor are used instead (a support that
    never settles, e.g. a divergent encoder, is then measured on its tail). A group whose step
    is below the precision floor from the start (converged within < 3 layers) gets ρ = 0.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``rho`` = exp(slope), ``points`` used, ``t_fix`` (first fixed layer).
    """
    out = []
    for key, g in curves.sort_values("T").groupby(list(by), sort=True):
        T = g["T"].to_numpy(float)
        d = g["diff"].to_numpy(float)
        ok = np.isfinite(d) & (d > PRECISION_FACTOR * g["eps"].to_numpy(float))
        fixed = g["fixed"].to_numpy(bool)
        use = ok & fixed
        if use.sum() < MIN_FIT_POINTS:
            use = np.zeros_like(ok)
            use[np.flatnonzero(ok)[-MIN_FIT_POINTS:]] = True
        t_fix = float(T[fixed][0]) if fixed.any() else math.inf
        if use.sum() < 3:
            rho = 0.0
        else:
            slope = np.polyfit(T[use], np.log(d[use]), 1)[0]
            rho = float(np.exp(slope))
        out.append((*key, rho, int(use.sum()), t_fix))
    return pd.DataFrame(out, columns=[*by, "rho", "points", "t_fix"])


# --------------------------------------------------------------------------- II.1a
@dataclass(frozen=True)
class CodeConvergenceCell:
    """A cell of II.1a: sizes m, p, s; D⁽⁰⁾ distance c (init_scale); step α; n examples; λ; T_max layers."""

    m: int
    p: int
    s: int
    init_scale: float
    step: float
    n: int
    lam: float
    T_max: int


_A = CodeConvergenceCell(m=50, p=100, s=5, init_scale=0.02, step=0.2, n=50, lam=0.2, T_max=300)


class CodeConvergence(Claim):
    """II.1a — the iterates converge to a floor, geometrically once the support is fixed."""

    id = "II.1a"
    theorem = "II.1"
    title = "code error converges to a floor at a geometric per-layer rate"
    statement = (
        "For ISTA z_{t+1} = P_{αλ}(z_t − αDᵀ(Dz_t − x)) at a close dictionary D (c = 0.02), the code "
        "error max_{j,k}|z_{t,jk} − z*_jk| decreases in T to a floor (the e_t term of Thm II.1 "
        "vanishes), and once the support of z_t no longer changes the excess decays geometrically: "
        "the relative step ‖Z_t − Z_{t−1}‖_F/‖Z*‖_F, which on a fixed support contracts at the same "
        "per-layer factor as ‖z_t − z_∞‖, has a fitted factor ρ < 1 (upper confidence bound < 1), "
        "for every λ of the sweep; and that decay is the one of the support: the fitted per-layer "
        "log-rate agrees with the predicted log ρ_pred, ρ_pred = max_k |1 − α·eig(D_SᵀD_S)| on the "
        "final supports, within a factor 1.5 (mean log ratio within ±log 1.5, two one-sided t tests). "
        "The second part needs sparse codes: a code with more than m non-zeros has a singular "
        "D_SᵀD_S, ρ_pred = 1, and decays (if at all) by a mechanism that is not Thm II.1's.")
    kind = "rate"
    effect = (
        "Per-instance ρ from an OLS fit of log step on T after the support is fixed; one-sided t test "
        "of mean ρ < 1 per λ cell, intersection–union over cells. Pilot (root seed 12345, ci sizes, 10 "
        "instances per cell): mean ρ = 0.970 (λ = 0.1), 0.953 (0.2), 0.943 (0.4), sd ≤ 0.01; the "
        "smallest effect 1 − ρ ≈ 0.03 at sd 0.01 needs t_test_n(0.03, 0.01, α = 6e-4 [Holm worst "
        "case], β = 0.05) = 8; 12 per cell are used. The fitted factor matches the prediction "
        "max_k |1 − α·eig(D_Sᵀ D_S)| on the final supports (rho_pred) to within 0.3 % in the pilot "
        "(median ratio 0.997). Spectrum part (pilot, root seed 10012, ci, 12 instances per cell): log "
        "ratio q = log ρ̂/log ρ_pred has mean 1.13 / 1.05 / 1.05 (sd ≤ 0.13) at λ = 0.1 / 0.2 / 0.4, "
        "inside [1/1.5, 1.5] by ≥ 2.5 standard errors of the band edge at every cell; the no-threshold "
        "encoder gives q ≈ 4e14. The fitted ρ is reported against the predicted ρ_pred per cell "
        "(paired interval).")
    regime = (
        "m = 50, p = 100, s = 5, n = 50 examples, D = D⁽⁰⁾ with c = 0.02 (the paper's gradient "
        "experiment; relative dictionary error ≈ 0.14, μ ≈ 0.54 — outside the theorem's incoherence "
        "hypothesis, which only makes the floor larger, not the convergence slower), α = 0.2 "
        "(< 2/L ≈ 0.34), λ ∈ {0.1, 0.2, 0.4} with T_max = 500/300/200 layers: the support settles "
        "late at small λ (pilot: last sign change at t ≤ 350, 177, 130) and the fit needs ≥ 70 layers "
        "after it; at T_max the relative step is ≤ 5e-7, i.e. the floor is reached. quick: λ = 0.2 "
        "only, n = 30 examples, 6 instances. Outside the theorem's hypotheses in every cell (recorded "
        "per cell, O-constants 1): μ(2s − 1) ≈ 5 ≥ 1 and λ/(s·log m/√m) ≤ 0.15 < 1; the start is "
        "close (δ·log p ≈ 0.85 < 1).")
    control = (
        "Mutant gram-unscaled (udl.engine.mutants): the layer's linear part is I − DᵀD instead of "
        "I − αDᵀD, the step dropped from the Gram term and kept on the data term — a unit gradient step, "
        "past the stability limit 2/‖D‖₂² ≈ 0.34. The claim is about the convergence of the iterates, so "
        "it must see iterates that never settle: the step grows by |1 − ‖D‖₂²| ≈ 5 per layer, ρ̂ ≫ 1. "
        "Must FAIL at quick and ci.")
    control_mutant = "gram-unscaled"
    requires = frozenset({"soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the iterates do not settle into the geometric decay of their support once it is fixed "
                "({statistic_name} = {statistic:.3g})",
        ("FAIL", "no-threshold"):
            "without a threshold every entry of the code is non-zero, so its 'support' has more than m atoms, "
            "D_SᵀD_S is singular and predicts no decay, while the iterates decay in the row space of D — "
            "not the support mechanism of Thm II.1 ({statistic_name} = {statistic:.3g})",
    }
    Cell = CodeConvergenceCell
    schema = {"T": "int", "code_error": "float", "code_error_mean": "float", "diff": "float", "fixed": "bool",
              "eps": "float", "alpha_used": "float", "rho_pred": "float", "coherence": "float",
              "delta_max": "float"}
    profiles = {
        "quick": {"cells": [replace(_A, n=30, lam=0.2, T_max=300)], "n_instances": 6},
        "ci": {"cells": [replace(_A, n=50, lam=0.1, T_max=500), replace(_A, n=50, lam=0.2, T_max=300),
                         replace(_A, n=50, lam=0.4, T_max=200)], "n_instances": 12},
        "paper": {"cells": [replace(_A, n=1000, lam=lam, T_max=T) for lam, T in
                            ((0.05, 1000), (0.1, 600), (0.2, 400), (0.4, 300))], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Curves of code error and relative step against T (long format, one row per layer)."""
        inst = _instances(cell, seeds, ctx)
        D, X, Z_star = inst.D0, inst.X, inst.Z_star
        step = cell.step
        scale = torch.linalg.matrix_norm(Z_star)
        err, err_mean, diff, changed = [], [], [], []
        Z_prev = torch.zeros_like(Z_star)
        sign_prev = torch.zeros_like(Z_star)
        with torch.no_grad():
            for Z in _iterates(ctx.encoder_under_test(), X, D, lam=cell.lam, step=step, T=cell.T_max):
                E = (Z - Z_star).abs()
                err.append(E.amax(dim=(-2, -1)))
                err_mean.append(E.mean(dim=(-2, -1)))
                diff.append(torch.linalg.matrix_norm(Z - Z_prev) / scale)
                sign = torch.sign(Z)
                changed.append((sign != sign_prev).flatten(-2).any(dim=-1))
                Z_prev, sign_prev = Z, sign
            final_ok = bool(torch.isfinite(Z_prev).all())
            rho_pred = _np(predicted_rates(D, Z_prev, step)) if final_ok else np.full(len(seeds), np.nan)
        T_max, B = len(err), len(seeds)
        changed = torch.stack(changed).cpu().numpy()                        # (T, B)
        last_change = np.where(changed.any(axis=0), T_max - np.argmax(changed[::-1], axis=0), 0)
        layers = np.arange(1, T_max + 1)
        return pd.DataFrame({
            "instance": np.tile(np.arange(B), T_max),
            "T": np.repeat(layers, B),
            "code_error": _np(torch.stack(err)).ravel(),
            "code_error_mean": _np(torch.stack(err_mean)).ravel(),
            "diff": _np(torch.stack(diff)).ravel(),
            "fixed": (np.repeat(layers, B) > np.tile(last_change, T_max)),
            "eps": float(torch.finfo(ctx.dtype).eps),
            "alpha_used": step,
            "rho_pred": np.tile(rho_pred, T_max),
            "coherence": np.tile(_np(inst.coherence), T_max),
            "delta_max": np.tile(_np(inst.delta.amax(dim=-1)), T_max),
        })

    def decide(self, table):
        """Per λ cell: one-sided t test of mean fitted ρ < 1, and the fitted log-rate within a factor
        SPECTRUM_FACTOR of the support's (TOST on log q); all parts must pass. ρ̂ against ρ_pred is
        reported per cell as a prediction."""
        rates = geometric_rates(table)
        last = table.sort_values("T").groupby(["cell", "instance"]).tail(1)
        pred = last.set_index(["cell", "instance"])["rho_pred"]
        fit = rates.set_index(["cell", "instance"])["rho"]
        # ratio of per-layer log-rates, where both decay (0 < ρ < 1); ρ_pred = 1 (a singular D_SᵀD_S)
        # is kept finite at its rounding level; a diverging or instantly converged fit is left out
        ceiling = 1 - float(last["eps"].max())
        decays = (fit > 0) & (fit < 1) & (pred > 0)
        log_q = np.log(np.log(fit.where(decays)) / np.log(np.minimum(pred.where(decays), ceiling)))
        parts, predictions = {}, []
        for c, g in rates.groupby("cell", sort=True):
            lam = float(table.loc[table["cell"] == c, "lam"].iloc[0])
            parts[f"rho<1 lam={lam:g}"] = stats.mean_test(g["rho"], threshold=1.0, alpha=self.alpha, side="less",
                                                         name="per-layer factor ρ")
            q = log_q.loc[c].replace([np.inf, -np.inf], np.nan).dropna()
            if len(q) >= 2:   # a diverging encoder has no final support to predict from: ρ < 1 decides
                parts[f"spectrum lam={lam:g}"] = stats.mean_test(
                    q, threshold=0.0, side="equal", margin=math.log(SPECTRUM_FACTOR), alpha=self.alpha,
                    name="log(log ρ̂ / log ρ_pred)")
            diff = (fit.loc[c] - pred.loc[c]).dropna()
            if len(diff) >= 2 and np.ptp(diff) > 0:
                lo, hi = stats.mean_test(diff, threshold=0.0, alpha=self.alpha).interval
                base = float(pred.loc[c].mean())
                predictions.append(stats.prediction(f"ρ at λ = {lam:g} (max|1 − α·eig(D_SᵀD_S)|)", base,
                                                    float(fit.loc[c].mean()), (base + lo, base + hi)))
        verdict = all_of(parts, n=len(rates), alpha=self.alpha)
        verdict = replace(verdict, predictions=(*verdict.predictions, *predictions))
        ratio = (fit / pred).replace([np.inf, -np.inf], np.nan).dropna()
        detail = dict(verdict.detail,
                      rho_fit_median=float(rates["rho"].median()),
                      rho_pred_median=float(np.nanmedian(last["rho_pred"])) if last["rho_pred"].notna().any()
                      else math.nan,
                      rho_fit_over_pred_median=float(ratio.median()) if len(ratio) else math.nan,
                      fit_points_min=int(rates["points"].min()),
                      support_fixed_at_max=float(rates["t_fix"].max()),
                      final_step_max=float(last["diff"].max()),
                      log_rate_ratio_mean=float(np.exp(log_q.replace([np.inf, -np.inf], np.nan)).mean()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

    def hypotheses(self, cell, table):
        """μ(2s − 1), λ against s·log m/√m and the start's closeness, worst instance of the cell."""
        return _hypotheses(cell, table, lam=cell.lam, delta=float(table["delta_max"].max()))

    # ------------------------------------------------------------------ figures
    @figure("code-error-vs-T",
            "Code error of the encoder against the number of layers T for each λ of the run (left), "
            "and the relative step ‖Z_T − Z_{T−1}‖_F/‖Z*‖_F (right, log scale) with the predicted "
            "geometric decay ρ^T, ρ = max|1 − α·eig(D_SᵀD_S)| on the final supports (dotted).",
            per_cell=False)
    def draw_convergence(self, fi: FigureInput):
        """Code error against T per λ; the relative step with the predicted ρ^T and the precision floor."""
        t = fi.table
        fi.need("T", "code_error")
        hue = "lam" if "lam" in t.columns else None
        groups = list(t.groupby(hue, sort=True)) if hue else [(None, t)]
        colours = plot.palette(len(groups))
        has_step = "diff" in t.columns
        fig, (a, b) = plot.new_figure(2)
        for (key, g), c in zip(groups, colours):
            label = f"λ = {key:g}" if key is not None else "code error"
            plot.band(a, g, "T", "code_error", colour=c, label=label, positive=True)
            if has_step:
                q = plot.band(b, g, "T", "diff", colour=c, label=label, positive=True)
                if "rho_pred" in g.columns and len(q) > 3:
                    rho = float(pd.to_numeric(g["rho_pred"], errors="coerce").median())
                    if 0 < rho < 1:   # anchored at the middle layer, drawn over the last 80 % of the range
                        xs = q.index.to_numpy(float)
                        x0 = xs[int(0.5 * (len(xs) - 1))]
                        y0 = float(q.loc[x0, "med"])
                        span = xs[(xs >= x0 - 0.3 * (xs[-1] - xs[0]))]
                        b.plot(span, y0 * rho ** (span - x0), color=c, linestyle=":", linewidth=1.6,
                               label=rf"predicted $\rho^T$, $\rho$ = {rho:.3f}")
            floor = g[g["T"] == g["T"].max()]["code_error"].median()
            a.axhline(floor, color=c, linestyle="--", linewidth=0.9, alpha=0.8,
                      label=f"floor (median at T = {int(g['T'].max())}): {floor:.3g}")
        a.set_xlabel("layers T")
        a.set_ylabel(r"code error $\max_{j,k}|z_{T,jk} - z^*_{jk}|$")
        a.set_title("code error converges to a floor")
        plot.legend(a, title=plot.curve_note(t, hue) if hue else plot.band_note(plot.instances_of(t)),
                    title_fontsize=8)
        if has_step:
            if "eps" in t.columns:
                eps = float(pd.to_numeric(t["eps"], errors="coerce").median())
                b.axhline(PRECISION_FACTOR * eps, color="0.5", linestyle="--", linewidth=1,
                          label=f"precision floor {plot.power_of_ten(PRECISION_FACTOR)}·eps")
            b.set_yscale("log")
            b.set_xlabel("layers T")
            b.set_ylabel(r"relative step $\|Z_T - Z_{T-1}\|_F / \|Z^*\|_F$")
            b.set_title("geometric decay once the support is fixed")
            plot.legend(b, loc="upper right")
        else:
            b.set_visible(False)
        return fig


# --------------------------------------------------------------------------- II.1b
@dataclass(frozen=True)
class LambdaFloorCell:
    """A cell of II.1b: sizes m, p, s; n examples; step α; λ grid (n_lam values from lam_lo to lam_hi); T_max."""

    m: int
    p: int
    s: int
    n: int
    step: float
    lam_lo: float
    lam_hi: float
    n_lam: int
    T_max: int


_B = LambdaFloorCell(m=50, p=100, s=5, n=50, step=0.2, lam_lo=0.05, lam_hi=0.4, n_lam=4, T_max=600)


def _grid(lo: float, hi: float, k: int) -> np.ndarray:
    return np.geomspace(lo, hi, int(k))


class LambdaFloor(Claim):
    """II.1b — at D = D* the floor is exactly the λ term of the lasso (a deterministic check)."""

    id = "II.1b"
    theorem = "II.1"
    title = "at D = D* the code error is exactly the λ term λ(D_SᵀD_S)⁻¹sign(z*_S) (deterministic check)"
    statement = (
        "At D = D* (no dictionary term) and exact data X = D*Z*, the λ term of Thm II.1 has an exact "
        "form: for every example whose support satisfies the primal-dual witness conditions "
        "(irrepresentable max_{j∉S}|D_jᵀD_S w| < 1 and λ‖w‖∞ < min|z*_S|, with "
        "w = (D_SᵀD_S)⁻¹sign(z*_S), both computed from D* and z* alone), the lasso solution is "
        "ẑ = z* − λ·w, so the converged code of the thresholding encoder must equal it to a rounding "
        "and convergence budget, at every λ of the sweep. This is a deterministic check of the "
        "encoder (an exact consequence, decided by its largest deviation, not by a test): it "
        "establishes that the floor is linear in λ and strictly positive (ℓ1 unrolling never reaches "
        "zero code error). It is not statistical evidence for the O-bound; the slope of the floor "
        "(max over all examples) against λ is reported as a prediction (1).")
    kind = "deterministic"
    effect = (
        "Deterministic check: every witnessed example's deviation max_j|ẑ_j − (z*_j − λw_j)| is within "
        "1e3·eps·(1 + max|z*|) + 100 × the last step ‖Z_T − Z_{T−1}‖_F (the fixed point is within "
        "ρ/(1 − ρ) last steps, ρ ≤ 0.99). Pilot (root seed 10012, ci sizes, 8 instances): 84 % of "
        "the examples are witnessed (the others keep extra entries off the support, as the lasso "
        "does at μ ≈ 0.54 when the irrepresentable condition fails), every witnessed example agrees to "
        "≤ 3.7e-15 at every λ; floor/λ = 1.94–2.86 is the coefficient ‖w‖∞ of the worst example. "
        "A threshold λ instead of αλ gives deviations ≈ 4λ‖w‖∞ ≥ 0.1.")
    regime = (
        "m = 50, p = 100, s = 5, n = 50 examples, D = D*, noiseless X, α = 0.2, λ geometric from "
        "0.05 to 0.4 (4 values), T = 600 layers (final relative step ≤ 2e-12 at λ ≥ 0.05). "
        "μ(2s − 1) ≈ 5 and λ/(s·log m/√m) ≤ 0.15: outside the theorem's hypotheses in every cell "
        "(recorded per cell; δ = 0 is inside), which is why a sixth of the examples fail the "
        "irrepresentable condition; the check covers the witnessed ones, and at λ = 0.4 it also "
        "drops the examples whose signs the λ term would flip (λ‖w‖∞ ≥ min|z*|). quick: "
        "λ ∈ {0.1, 0.2, 0.4}, T = 400, n = 30 examples, 6 instances.")
    control = (
        "Mutant threshold-lambda (udl.engine.mutants): the reference ISTA thresholds at λ instead of "
        "θ = αλ, so it solves the lasso at λ/α = 5λ. The claim checks the exact size of the λ term, "
        "so it must see a λ term five times too large: deviations ≈ 4λ‖w‖∞ (or a lost entry) ≫ the "
        "budget. Must FAIL at quick and ci.")
    control_mutant = "threshold-lambda"
    requires = frozenset({"soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the converged codes at D* are not the lasso solution z* − λ(D_SᵀD_S)⁻¹sign(z*_S) on the "
                "witnessed supports (worst deviation/budget {statistic:.2g}): the floor is not the λ term of "
                "the lasso bias",
        ("FAIL", "no-threshold"):
            "without a threshold the codes converge to the minimum-norm least-squares solution whatever λ is, "
            "not to z* − λ(D_SᵀD_S)⁻¹sign(z*_S) (worst deviation/budget {statistic:.2g})",
        ("FAIL", "unscaled-threshold"):
            "thresholding at λ instead of αλ solves the lasso at λ/α = 5λ: the λ term is five times too "
            "large, or zeroes true entries (worst deviation/budget {statistic:.2g})",
    }
    Cell = LambdaFloorCell
    schema = {"lam": "float", "floor": "float", "floor_mean": "float", "conv": "float", "support_rate": "float",
              "coherence": "float", "witness_rate": "float", "floor_witnessed": "float",
              "predicted_witnessed": "float", "deviation": "float", "tolerance": "float"}
    discrete_columns = frozenset({"witness_rate", "support_rate"})
    profiles = {
        "quick": {"cells": [replace(_B, n=30, lam_lo=0.1, lam_hi=0.4, n_lam=3, T_max=400)], "n_instances": 6},
        "ci": {"cells": [replace(_B, lam_lo=0.05, lam_hi=0.4, n_lam=4, T_max=600)], "n_instances": 8},
        "paper": {"cells": [replace(_B, n=1000, lam_lo=0.05, lam_hi=0.4, n_lam=7, T_max=1500)], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Per (instance, λ) at D = D*: the floor, and the converged codes against the witnessed lasso
        solution z* − λ(D_SᵀD_S)⁻¹sign(z*_S) with its budget."""
        inst = _instances(cell, seeds, ctx)
        encoder = ctx.encoder_under_test()
        eps = float(torch.finfo(ctx.dtype).eps)
        with torch.no_grad():
            lb = lasso_bias(inst.D_star, inst.Z_star)
            rounding = ROUNDING_FACTOR * eps * (1 + inst.Z_star.abs().amax(dim=(-2, -1)))
            scale = torch.linalg.matrix_norm(inst.Z_star)
            rows = []
            for lam in _grid(cell.lam_lo, cell.lam_hi, cell.n_lam):
                lam = float(lam)
                Z, err, err_mean, conv = _final(encoder, inst.X, inst.D_star, inst.Z_star, lam=lam,
                                                step=cell.step, T=cell.T_max)
                witnessed = (lb["irrepresentable"] < 1) & (lam * lb["coef"] < lb["amp_min"])       # (B, n)
                example_err = (Z - inst.Z_star).abs().amax(dim=-2)                                 # (B, n)
                deviation = (Z - (inst.Z_star + lam * lb["bias"])).abs().amax(dim=-2)
                none = torch.zeros_like(example_err)
                rows.append(pd.DataFrame({
                    "instance": np.arange(len(seeds)), "lam": lam, "floor": _np(err),
                    "floor_mean": _np(err_mean), "conv": _np(conv),
                    "support_rate": _np(_support_rate(Z, inst.Z_star)),
                    "coherence": _np(inst.coherence),
                    "witness_rate": _np(witnessed.to(ctx.dtype).mean(dim=-1)),
                    "floor_witnessed": _np(torch.where(witnessed, example_err, none).amax(dim=-1)),
                    "predicted_witnessed": _np(lam * torch.where(witnessed, lb["coef"], none).amax(dim=-1)),
                    "deviation": _np(torch.where(witnessed, deviation, none).amax(dim=-1)),
                    # a non-finite last step (a diverging encoder) leaves no convergence budget
                    "tolerance": _np(rounding + torch.nan_to_num(CONVERGENCE_FACTOR * conv * scale, nan=0.0,
                                                                 posinf=0.0))}))
        return pd.concat(rows, ignore_index=True)

    def decide(self, table):
        """Deterministic check of the witnessed λ term; the slope of the floor in λ is a prediction."""
        verdict = stats.deterministic_check(
            table["deviation"], tolerance=table["tolerance"],
            name="max |ẑ − (z* − λ(D_SᵀD_S)⁻¹σ)| / budget, witnessed examples",
            budget=f"{ROUNDING_FACTOR:g}·eps·(1 + max|z*|) for an s × s solve, plus {CONVERGENCE_FACTOR:g} × the "
                   "encoder's last step ‖Z_T − Z_{T−1}‖_F (its distance to the fixed point)")
        finite = table[np.isfinite(table["floor"]) & (table["floor"] > 0)]     # a diverged encoder has none
        t = finite.assign(log_lam=np.log(finite["lam"]), log_floor=np.log(finite["floor"]))
        slopes = (stats.group_slopes(t, "log_lam", "log_floor", by=["cell", "instance"]) if len(t)
                  else pd.Series([], dtype=float))
        slopes = slopes[np.isfinite(slopes)]
        if len(slopes) >= 2 and np.ptp(slopes) > 0:
            interval = stats.mean_test(slopes, threshold=PREDICTED_SLOPE, alpha=self.alpha).interval
        else:
            interval = (float(slopes.mean()), float(slopes.mean())) if len(slopes) else (math.nan, math.nan)
        predictions = (stats.prediction("slope of the floor in λ (floor ∝ λ)", PREDICTED_SLOPE,
                                        float(slopes.mean()) if len(slopes) else math.nan, interval),)
        detail = dict(verdict.detail, witness_rate_mean=float(table["witness_rate"].mean()),
                      witness_rate_min=float(table["witness_rate"].min()),
                      floor_over_lam_median=float((table["floor"] / table["lam"]).median()),
                      floor_min=float(table["floor"].min()), conv_max=float(table["conv"].max()),
                      support_rate_mean=float(table["support_rate"].mean()),
                      slope_mean=float(slopes.mean()) if len(slopes) else math.nan,
                      slope_sd=float(np.std(slopes, ddof=1)) if len(slopes) > 1 else 0.0)
        return replace(verdict, detail=detail, predictions=predictions)

    def hypotheses(self, cell, table):
        """μ(2s − 1), λ (the largest of the sweep) against s·log m/√m; δ = 0 (D = D*)."""
        return _hypotheses(cell, table, lam=cell.lam_hi, delta=0.0)

    # ------------------------------------------------------------------ figures
    @figure("floor-vs-lambda",
            "Code-error floor at D = D* against λ on log-log axes: per-instance curves (thin), median "
            "with 10–90 % band, the least-squares fit of the median (dashed) and the predicted slope "
            f"{PREDICTED_SLOPE:g} (dotted). The stored prediction (mean per-instance slope and its interval) "
            "is in the legend.")
    def draw_floor(self, fi: FigureInput):
        """Floor against λ (log-log) with the fit of the median, the stored slope and the prediction."""
        t = (plot.finite(fi.table, "lam", "floor", positive=True) if {"lam", "floor"} <= set(fi.table.columns)
             else fi.table)
        fi.need("lam", "floor", table=t)
        fig, (a,) = plot.new_figure(1, width=5.8, height=4.2)
        c = plot.palette(1)[0]
        keys = [k for k in ("cell", "instance") if k in t.columns]
        for _, g in t.groupby(keys) if keys else []:
            g = g.sort_values("lam")
            a.plot(g["lam"], g["floor"], color="0.7", linewidth=0.7, alpha=0.8)
        q = plot.band(a, t, "lam", "floor", colour=c, label=plot.band_note(plot.instances_of(t)), marker="o",
                      positive=True)
        lam = q.index.to_numpy(float)
        if len(lam) >= 2:
            slope, intercept = np.polyfit(np.log(lam), np.log(q["med"].to_numpy(float)), 1)
            a.plot(lam, np.exp(intercept) * lam ** slope, color="black", linestyle="--", linewidth=1.2, zorder=5,
                   label=f"least-squares fit of the median: slope {slope:.3f}")
            stored = [q for q in fi.record.get("predictions") or [] if str(q.get("name", "")).startswith("slope")]
            if stored:
                lo, hi = stored[0]["interval"][:2]
                a.plot([], [], " ", label=f"stored mean per-instance slope {float(stored[0]['estimate']):.3f} "
                                          f"[{float(lo):.3f}, {float(hi):.3f}]")
            x0 = float(np.exp(np.log(lam).mean()))
            y0 = float(np.exp(intercept) * x0 ** slope)
            plot.ref_line(a, lam, PREDICTED_SLOPE, x0, y0 * 1.35,   # offset: the fit would hide it
                          label=f"prediction: slope {PREDICTED_SLOPE:g}, floor ∝ λ (offset)")
        a.set_xscale("log")
        a.set_yscale("log")
        plot.data_ticks(a.xaxis, lam)
        a.set_xlabel("λ (sparsity weight)")
        a.set_ylabel(r"floor $\max_{j,k}|z_{T,jk} - z^*_{jk}|$ at $D = D^*$")
        a.set_title("the λ floor is linear in λ")
        plot.legend(a, loc="upper left")
        return fig

    @figure("lambda-term-check",
            "The deterministic check: for the examples that satisfy the primal-dual witness conditions, the "
            "measured code error max_k ‖ẑ_k − z*_k‖∞ against the exact λ term λ·max_k ‖(D_SᵀD_S)⁻¹sign(z*_S)‖∞ "
            "(left, log-log, one point per instance and λ; the diagonal is equality), and the worst "
            "deviation of the code from z* − λ(D_SᵀD_S)⁻¹sign(z*_S) against its rounding and convergence "
            "budget (right; the check fails above 1).")
    def draw_lambda_term(self, fi: FigureInput):
        """Measured against predicted λ term (left); deviation over its budget per λ (right)."""
        t = fi.table
        fi.need("lam", "floor_witnessed", "predicted_witnessed", "deviation", "tolerance")
        fig, (a, b) = plot.new_figure(2)
        lams = sorted(pd.unique(t["lam"]))
        colours = plot.palette(len(lams))
        for lam, c in zip(lams, colours):
            g = plot.finite(t[t["lam"] == lam], "predicted_witnessed", "floor_witnessed", positive=True)
            a.scatter(g["predicted_witnessed"], g["floor_witnessed"], s=16, color=c, label=f"λ = {lam:g}")
            ratio = (t.loc[t["lam"] == lam, "deviation"] / t.loc[t["lam"] == lam, "tolerance"]).to_numpy(float)
            b.scatter(np.full(ratio.size, lam), np.maximum(ratio, 1e-6), s=16, color=c)
        pos = plot.finite(t, "predicted_witnessed", "floor_witnessed", positive=True)
        if len(pos):
            lim = np.array([pos["predicted_witnessed"].min() * 0.8, pos["predicted_witnessed"].max() * 1.25])
            a.plot(lim, lim, color="0.3", linestyle="--", linewidth=1, label="equality")
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel(r"λ term $\lambda\,\max_k\|(D_S^\top D_S)^{-1}\mathrm{sign}(z^*_S)\|_\infty$")
        a.set_ylabel(r"measured $\max_k\|\hat z_k - z^*_k\|_\infty$ (witnessed)")
        a.set_title("at D*, the floor is the λ term")
        plot.legend(a, loc="upper left")
        b.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="budget (check fails above)")
        b.set_xscale("log")
        b.set_yscale("log")
        plot.data_ticks(b.xaxis, lams)
        b.set_xlabel("λ (sparsity weight)")
        b.set_ylabel("worst deviation / budget (floored at 1e-6)")
        b.set_title("deviation from the lasso solution")
        plot.legend(b, loc="upper left")
        return fig


# --------------------------------------------------------------------------- II.1c
@dataclass(frozen=True)
class DictionaryTermCell:
    """A cell of II.1c: sizes m, p, s; n examples; λ; step α; T_max layers; δ grid (n_delta values in
    [0, delta_max])."""

    m: int
    p: int
    s: int
    n: int
    lam: float
    step: float
    T_max: int
    delta_max: float
    n_delta: int


_C = DictionaryTermCell(m=50, p=100, s=5, n=50, lam=0.2, step=0.2, T_max=300, delta_max=0.2, n_delta=5)


class DictionaryTerm(Claim):
    """II.1c — the floor increases with the dictionary error."""

    id = "II.1c"
    theorem = "II.1"
    title = "the code-error floor increases with the dictionary error δ"
    statement = (
        "At fixed λ, the converged code error of the encoder run with D⁽⁰⁾ at exact column distance "
        "δ = ‖D⁽⁰⁾_j − D*_j‖ from D* increases with δ (the √s·‖D_j − D*_j‖ term of Thm II.1): the "
        "per-instance slope of floor(δ)/floor(0) against δ has mean > 0.1. Only the trend is tested, "
        "not the exponent. The same D*, Z*, X and perturbation directions are used at every δ "
        "(paired sweep), and the sweep is checked to be what it says: every column of D⁽⁰⁾ lies at "
        "distance δ from D*'s to 1e3·eps (deterministic part).")
    kind = "rate"
    effect = (
        "One-sided t test of the mean per-instance relative slope > 0.1. Pilot (root seed 12345, ci "
        "sizes, 8 instances): the floor rises from 0.40–0.54 at δ = 0 to 0.62–0.90 at δ = 0.2, mean "
        "relative slope 2.5, sd 0.46 (not monotone at every step: at δ = 0.05 it dips slightly on 3 of "
        "8 instances — the trend is what is claimed). An effect ≥ 2 over 0.1 at sd ≤ 0.6 needs "
        "t_test_n(2.0, 0.6, α = 6e-4, β = 0.05) = 7; 10 instances are used. Intersection–union with "
        "the deterministic check of the sweep (pilot: max_j |‖D⁽⁰⁾_j − D*_j‖ − δ| ≤ 6e-16).")
    regime = (
        "m = 50, p = 100, s = 5, n = 50 examples, λ = 0.2, α = 0.2, T = 300 layers (final relative "
        "step ≤ 1e-6), δ ∈ {0, 0.05, 0.1, 0.15, 0.2} (make_instances(init_distance=δ): every column "
        "at exactly δ). δ ≤ 0.2 keeps D close (angle ≤ 11.5°); μ ≈ 0.54 is outside the incoherence "
        "hypothesis, which does not change the sign of the trend. quick: δ ∈ {0, 0.1, 0.2}, "
        "T = 250, n = 30 examples, 8 instances. Outside the theorem's hypotheses (recorded per cell, "
        "O-constants 1): μ(2s − 1) ≈ 5 ≥ 1, λ/(s·log m/√m) ≈ 0.07 < 1; the closeness δ·log p < 1 "
        "holds up to δ ≈ 0.22, i.e. over the whole sweep.")
    control = (
        "Mutant init-distance-ignored (udl.engine.mutants, added for this claim): the instance "
        "generator accepts init_distance but builds D⁽⁰⁾ from init_scale alone (here 0, so D⁽⁰⁾ = D*), "
        "while recording the requested distance — a lost branch of the data path this claim "
        "exercises. The claim's x-axis is δ, so it must see that the dictionaries never moved: the "
        "sweep check fails (distances 0 instead of δ) and the floor is flat (slope 0). Must FAIL at "
        "quick and ci.")
    control_mutant = "init-distance-ignored"
    requires = frozenset({"soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the converged code error does not grow with the dictionary error δ (relative slope "
                "{statistic:.2g}, needs > 0.1)",
        ("INCONCLUSIVE", "no-threshold"):
            "without a threshold the floor is the error of least-squares codes, which barely changes with δ "
            "(relative slope {statistic:.2g} [{lower:.2g}, {upper:.2g}] against 0.1)",
        ("INCONCLUSIVE", "unscaled-threshold"):
            "the five-fold shrinkage (λ instead of αλ) dominates the floor and hides the dictionary term "
            "(relative slope {statistic:.2g} [{lower:.2g}, {upper:.2g}] against 0.1)",
    }
    Cell = DictionaryTermCell
    schema = {"delta": "float", "delta_measured": "float", "delta_error": "float", "floor": "float",
              "floor_mean": "float", "conv": "float", "support_rate": "float", "coherence": "float",
              "eps": "float"}
    profiles = {
        "quick": {"cells": [replace(_C, n=30, T_max=250, delta_max=0.2, n_delta=3)], "n_instances": 8},
        "ci": {"cells": [replace(_C, T_max=300, delta_max=0.2, n_delta=5)], "n_instances": 10},
        "paper": {"cells": [replace(_C, n=1000, T_max=600, delta_max=0.3, n_delta=7)], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Floor per (instance, δ), and the measured column distances of D⁽⁰⁾."""
        encoder = ctx.encoder_under_test()
        rows = []
        with torch.no_grad():
            for delta in np.linspace(0.0, cell.delta_max, cell.n_delta):
                inst = _instances(cell, seeds, ctx, init_distance=float(delta))
                Z, err, err_mean, conv = _final(encoder, inst.X, inst.D0, inst.Z_star, lam=cell.lam,
                                                step=cell.step, T=cell.T_max)
                rows.append(pd.DataFrame({
                    "instance": np.arange(len(seeds)), "delta": float(delta),
                    "delta_measured": _np(inst.delta.amax(dim=-1)),
                    "delta_error": _np((inst.delta - float(delta)).abs().amax(dim=-1)), "floor": _np(err),
                    "floor_mean": _np(err_mean), "conv": _np(conv),
                    "support_rate": _np(core.support_recovery(Z, inst.Z_star)),
                    "coherence": _np(inst.coherence), "eps": float(torch.finfo(ctx.dtype).eps)}))
        return pd.concat(rows, ignore_index=True)

    def decide(self, table):
        """One-sided t test of the mean relative slope of floor(δ)/floor(0) on δ > TREND_MIN, with the
        deterministic check that the columns of D⁽⁰⁾ are at the swept distances."""
        t = table.sort_values("delta")
        base = t.groupby(["cell", "instance"])["floor"].transform("first")
        t = t.assign(rel_floor=t["floor"] / base)
        slopes = stats.group_slopes(t, "delta", "rel_floor", by=["cell", "instance"])
        eps = float(t["eps"].max())
        parts = {
            "trend": stats.mean_test(slopes, threshold=TREND_MIN, side="greater", alpha=self.alpha,
                                     name="relative slope of floor vs δ"),
            "sweep": stats.deterministic_check(
                t["delta_error"], tolerance=SWEEP_EPS_FACTOR * eps, name="max_j |‖D⁽⁰⁾_j − D*_j‖ − δ|",
                budget=f"{SWEEP_EPS_FACTOR:g}·eps of the run's dtype: a rotation by 2·arcsin(δ/2) and a normalisation"),
        }
        verdict = all_of(parts, n=len(slopes), alpha=self.alpha, primary="trend")
        monotone = t.groupby(["cell", "instance"])["floor"].apply(lambda f: bool(np.all(np.diff(f) > 0)))
        detail = dict(verdict.detail, monotone_fraction=float(monotone.mean()),
                      floor_ratio_at_max_delta_median=float(
                          t.groupby(["cell", "instance"])["rel_floor"].last().median()),
                      conv_max=float(t["conv"].max()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

    def hypotheses(self, cell, table):
        """μ(2s − 1), λ against s·log m/√m and the largest δ of the sweep."""
        return _hypotheses(cell, table, lam=cell.lam, delta=float(cell.delta_max))

    # ------------------------------------------------------------------ figures
    @figure("floor-vs-delta",
            "Converged code error against the per-column dictionary distance δ = ‖D_j − D*_j‖ "
            "(same D*, Z*, X and perturbation directions at every δ): per-instance curves (thin) and "
            "the median with 10–90 % band. The theorem predicts an increasing trend (the √s·δ term).")
    def draw_floor(self, fi: FigureInput):
        """Floor against δ: per-instance curves and the median band."""
        t = fi.table
        fi.need("delta", "floor")
        fig, (a,) = plot.new_figure(1, width=5.8, height=4.2)
        c = plot.palette(1)[0]
        keys = [k for k in ("cell", "instance") if k in t.columns]
        for _, g in t.groupby(keys) if keys else []:
            g = g.sort_values("delta")
            a.plot(g["delta"], g["floor"], color="0.7", linewidth=0.7)
        plot.band(a, t, "delta", "floor", colour=c, label=plot.band_note(plot.instances_of(t)), marker="o")
        a.set_xlabel(r"column distance $\delta = \|D_j - D^*_j\|$")
        a.set_ylabel(r"floor $\max_{j,k}|z_{T,jk} - z^*_{jk}|$")
        a.set_title("the floor grows with the dictionary error")
        plot.legend(a, loc="upper left")
        return fig


# --------------------------------------------------------------------------- II.1d
@dataclass(frozen=True)
class SupportRecoveryCell:
    """A cell of II.1d: sizes m, p, s; n examples; D⁽⁰⁾ distance c (init_scale); λ; step α; T_max layers."""

    m: int
    p: int
    s: int
    n: int
    init_scale: float
    lam: float
    step: float
    T_max: int


_D = SupportRecoveryCell(m=400, p=600, s=5, n=1, init_scale=0.008, lam=0.2, step=0.2, T_max=30)


class SupportRecovery(Claim):
    """II.1d — support recovery for the vast majority of examples in the incoherent regime."""

    id = "II.1d"
    theorem = "II.1"
    title = "support recovered for the vast majority of examples at large m"
    statement = (
        "In the incoherent regime (m = 400, p = 600, s = 5, μ ≈ 0.23) with a close dictionary "
        "(per-column distance ≈ 0.16) and λ = 0.2, T = 30 layers of the encoder recover the support "
        "exactly, supp(z_T) = supp(z*), for more than 90 % of examples (exact binomial test, "
        "Clopper–Pearson interval). Each trial is one example of its own instance (own D*, Z*, D⁽⁰⁾), "
        "so the trials are independent and the rate is the probability over everything.")
    kind = "probabilistic"
    effect = (
        "Rate > 0.9. Pilot (root seed 12345): 1000/1000 examples recovered at these sizes on 5 "
        "instances, and 120/120 single-example instances (rate 0.09 at T = 10, 0.93 at 15, 1.0 from "
        "T = 20). Designed for a true rate ≥ 0.995: binomial_n(0.9, 0.995, α = 6e-4 [Holm worst "
        "case], β = 0.05) = 114; ci uses 120 (power 0.98; 0.88 at a true rate of 0.99). quick: "
        "m = 200, p = 300, s = 3 (pilot rate 0.995–1.0), 100 trials: p = 2.7e-5 with no failure and "
        "3.2e-4 with one, both under the Holm worst case of a full quick run.")
    regime = (
        "m = 400, p = 600, s = 5, one example per instance, D = D⁽⁰⁾ with c = 0.008 (δ ≈ c√m = 0.16, "
        "the paper's c√m at m = 1000), α = 0.2, λ = 0.2, T = 30 (the paper: recovered once T ≳ 20; "
        "the curve over T is recorded). m = 400 instead of the paper's 1000 keeps the cost of 120 "
        "independent dictionaries in budget; μ(2s − 1) ≈ 2 misses the worst-case incoherence "
        "condition μ(2s − 1) < 1 (as does the paper's m = 1000: ≈ 3), so this is the empirical "
        "incoherent regime, not the proven one. "
        "At small m the claim does not hold: at m = 50, p = 100, s = 5 the rate after 30 layers is "
        "≈ 0.01 at δ ≈ 0.16 and ≈ 0.1–0.4 even at D = D*, and ≈ 0.8 at D* after convergence (a fifth "
        "of the examples keep extra entries; see II.1b). Hypotheses recorded per cell (O-constants "
        "1): μ(2s − 1) ≈ 2.5 ≥ 1 (worst instance) and λ/(s·log m/√m) ≈ 0.13 < 1 are outside; the "
        "start, δ·log p ≈ 1.2 at the worst column, is just outside δ ≤ 1/log p.")
    control = (
        "Mutant amplitude-law (udl.engine.mutants): the generator draws the code amplitudes from "
        "U[0, 2] instead of U[1, 2] while recording (1, 2). Exact support recovery under a λ threshold "
        "needs the true entries above the λ term (min|z*| > λ‖(D_SᵀD_S)⁻¹sign‖∞), so the claim must "
        "see true entries that can be arbitrarily small: about a tenth of them fall under the "
        "threshold and the rate drops to ≈ 0.6–0.75 (pilot, root seed 10012: 0.74 [0.62, 0.84] at "
        "quick, 0.58 [0.47, 0.69] at ci). Must FAIL at quick and ci. (threshold-lambda is seen at ci, "
        "0.78 [0.67, 0.86], but is INCONCLUSIVE at quick.)")
    control_mutant = "amplitude-law"
    requires = frozenset({"soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the support is not recovered for the vast majority of examples (rate {statistic:.2g}, "
                "upper bound {upper:.2g}, needs > 0.9)",
        ("FAIL", "no-threshold"):
            "without a threshold no code entry is ever exactly zero, so the support is never recovered "
            "(rate {statistic:.2g}, upper bound {upper:.2g}, needs > 0.9)",
        ("INCONCLUSIVE", "unscaled-threshold"):
            "the threshold λ = 5·αλ zeroes some true entries (recovery rate {statistic:.2g} "
            "[{lower:.2g}, {upper:.2g}] against 0.9; the reference recovers {reference:.2g})",
    }
    Cell = SupportRecoveryCell
    schema = {"T": "int", "recovered": "bool", "rate": "float", "code_error": "float", "coherence": "float",
              "delta_mean": "float", "delta_max": "float", "m_used": "int"}
    profiles = {
        "quick": {"cells": [replace(_D, m=200, p=300, s=3, init_scale=0.011)], "n_instances": 100},
        "ci": {"cells": [_D], "n_instances": 120},
        "paper": {"cells": [replace(_D, m=1000, p=1500, s=10, n=20, init_scale=0.005, T_max=50)],
                  "n_instances": 150},
    }

    def simulate(self, cell, seeds, ctx):
        """Support recovered (example 0, and the rate over the instance's n examples) against T."""
        inst = _instances(cell, seeds, ctx)
        record = sorted({t for t in RECOVERY_RECORD_T if t < cell.T_max} | {cell.T_max})
        rows = []
        on = inst.Z_star != 0
        with torch.no_grad():
            for t, Z in enumerate(_iterates(ctx.encoder_under_test(), inst.X, inst.D0, lam=cell.lam,
                                            step=cell.step, T=cell.T_max), start=1):
                if t not in record:
                    continue
                same = ((Z != 0) == on).all(dim=-2)                            # (B, n)
                rows.append(pd.DataFrame({
                    "instance": np.arange(len(seeds)), "T": t,
                    "recovered": same[:, 0].cpu().numpy(),
                    "rate": _np(same.to(ctx.dtype).mean(dim=-1)),
                    "code_error": _np((Z - inst.Z_star).abs().amax(dim=(-2, -1))),
                    "coherence": _np(inst.coherence), "delta_mean": _np(inst.delta.mean(dim=-1)),
                    "delta_max": _np(inst.delta.amax(dim=-1)), "m_used": int(inst.X.shape[-2])}))
        return pd.concat(rows, ignore_index=True)

    def decide(self, table):
        """Exact binomial test of P(example recovered at T_max) > RECOVERY_RATE_MIN."""
        final = table[table["T"] == table["T_max"]]
        k, n = int(final["recovered"].sum()), len(final)
        verdict = stats.rate_test(k, n, RECOVERY_RATE_MIN, alpha=self.alpha, side="greater",
                                  name="support recovery rate")
        curve = table.groupby("T")["recovered"].mean()
        detail = dict(verdict.detail, pooled_rate=float(final["rate"].mean()),
                      coherence_median=float(final["coherence"].median()),
                      delta_median=float(final["delta_mean"].median()),
                      rate_by_T={str(int(t)): float(r) for t, r in curve.items()})
        return Verdict(**{**verdict.__dict__, "detail": detail})

    def hypotheses(self, cell, table):
        """μ(2s − 1), λ against s·log m/√m and the start's worst column distance."""
        return _hypotheses(cell, table, lam=cell.lam, delta=float(table["delta_max"].max()))

    # ------------------------------------------------------------------ figures
    @figure("support-recovery-vs-T",
            "Fraction of independent trials (one example of its own instance each) whose support is "
            "recovered exactly, supp(z_T) = supp(z*), against T, with the Clopper–Pearson interval at "
            f"the claim's α (band) and the claim's threshold {RECOVERY_RATE_MIN:g} (dashed).")
    def draw_recovery(self, fi: FigureInput):
        """Recovered fraction against T with its Clopper–Pearson band and the claim's threshold."""
        t = fi.table
        fi.need("T", "recovered")
        alpha = float(fi.record.get("alpha") or self.alpha)
        rec = plot.is_true(t["recovered"])
        counts = pd.DataFrame({"T": t["T"], "k": rec.astype(int)}).groupby("T")["k"].agg(["sum", "count"])
        bounds = np.array([stats.clopper_pearson(int(k), int(n), alpha)
                           for k, n in zip(counts["sum"], counts["count"])])
        fig, (a,) = plot.new_figure(1, width=5.8, height=4.0)
        c = plot.palette(1)[0]
        xs = counts.index.to_numpy(float)
        a.fill_between(xs, bounds[:, 0], bounds[:, 1], color=c, alpha=0.2, linewidth=0,
                       label=f"Clopper–Pearson interval (α = {alpha:g})")
        a.plot(xs, counts["sum"] / counts["count"], color=c, marker="o", markersize=4,
               label=f"recovered fraction ({int(counts['count'].max())} trials)")
        a.axhline(RECOVERY_RATE_MIN, color="0.3", linestyle="--", linewidth=1,
                  label=f"claim: > {RECOVERY_RATE_MIN:g} (vast majority)")
        a.set_ylim(-0.02, 1.02)
        plot.data_ticks(a.xaxis, xs)
        a.set_xlabel("layers T")
        a.set_ylabel(r"P(supp$(z_T)$ = supp$(z^*)$)")
        a.set_title("exact support recovery, incoherent regime")
        plot.legend(a, loc="lower right")
        return fig


# --------------------------------------------------------------------------- II.1e
@dataclass(frozen=True)
class BiasRemovalCell:
    """A cell of II.1e: sizes m, p, s; n examples; the sweep of the column distance δ of D⁽⁰⁾ (n_delta values
    geometric from delta_lo to delta_hi); λ; step α; T_max layers; the λ decay factor (decay) and the hard
    threshold τ (tau) of the two variants."""

    m: int
    p: int
    s: int
    n: int
    delta_lo: float
    delta_hi: float
    n_delta: int
    lam: float
    step: float
    T_max: int
    decay: float
    tau: float


_E = BiasRemovalCell(m=400, p=600, s=5, n=10, delta_lo=0.04, delta_hi=0.32, n_delta=4, lam=0.2, step=0.2,
                     T_max=60, decay=0.9, tau=0.1)

#: The two variants of II.1e and what they change (the fixed-λ run is the encoder under test).
VARIANTS = ("decay", "hard")


def _delta_grid(cell) -> np.ndarray:
    """The δ sweep of a II.1e cell (doubling steps when n_delta − 1 = log2(delta_hi/delta_lo))."""
    return np.geomspace(cell.delta_lo, cell.delta_hi, cell.n_delta)


def _boundary(ratios: pd.DataFrame, alpha: float) -> dict:
    """Where the ratio floor_variant/floor_fixed crosses RATIO_MAX: per instance, the OLS line of log ratio
    on log δ solved for log RATIO_MAX; mean of log δ* with its t interval, back-transformed."""
    x = np.log(ratios.index.get_level_values("delta").to_numpy(float))
    out = {}
    for v in VARIANTS:
        per = []
        for _, g in ratios[v].groupby(level=["cell", "instance"]):
            xg = np.log(g.index.get_level_values("delta").to_numpy(float))
            b, a = np.polyfit(xg, np.log(g.to_numpy(float)), 1)
            per.append((math.log(RATIO_MAX) - a) / b if b > 0 else math.inf)
        per = np.asarray(per)
        if np.isfinite(per).all() and per.size >= 2 and np.ptp(per) > 0:
            t = stats.mean_test(per, threshold=math.log(DELTA_PAPER), alpha=alpha, side="greater")
            out[v] = {"delta_star": float(np.exp(t.statistic)), "interval": [float(np.exp(e)) for e in t.interval],
                      "above_paper_delta": t.outcome, "extrapolated": bool(np.exp(t.statistic) > np.exp(x.max()))}
        else:
            out[v] = {"delta_star": math.nan, "interval": [math.nan, math.nan], "above_paper_delta": "INCONCLUSIVE",
                      "extrapolated": True}
    return out


class BiasRemoval(Claim):
    """II.1e — λ-decay and hard thresholding remove the λ term of the floor, and leave the dictionary term."""

    id = "II.1e"
    theorem = "II.1"
    title = "λ-decay and hard thresholding remove the λ term of the floor; the dictionary term stays"
    statement = (
        "Over a sweep of the per-column distance δ = ‖D_j − D*_j‖ (0.04, 0.08, 0.16, 0.32; the paper's "
        "δ ≈ 0.16 included) in the incoherent regime, on the same D*, Z*, X and perturbation "
        "directions at every δ, compare the code error after T = 60 layers of the encoder under test "
        "(fixed λ) with ISTA with a decaying threshold λ_t = λ·0.9ᵗ (udl.LambdaDecayISTA) and with "
        "iterative hard thresholding at τ = 0.1 (udl.HardThresholdISTA). Thm II.1's floor is "
        "O(√s·δ) + λ; removing the shrinkage removes the λ term and leaves the dictionary term. Four "
        "parts are decided: (1, 2) at the smallest δ each variant's floor is below half the fixed-λ "
        "floor on most instances (paired sign tests); (3) the fixed-λ floor there *is* the λ term — "
        "its ratio to λ·max_k ‖(D*_SᵀD*_S)⁻¹sign(z*_S)‖∞ (the exact λ term at D*, II.1b) lies "
        "within 1 ± 0.25; (4) what each variant leaves is the dictionary term: its floor vanishes "
        "with δ, per-instance log-log slope against δ > 0.5 (predicted 1, reported as a prediction). "
        "Where the removal holds is reported, not decided: the sign test at every δ, and the distance "
        "δ* where the median ratio crosses ½ (with its interval), against the paper's δ.")
    kind = "ordering"
    effect = (
        "Sign tests (exact binomial) for parts 1–2, t tests for 3–4, intersection–union. First pilot "
        "(root seed 10012, m = 400, n = 20 examples, 8 instances, δ = 0.02 / 0.05 / 0.1 / 0.16 / 0.25; "
        "medians): ratio decay 0.078 / 0.16 / 0.32 / 0.50 / 0.72, hard 0.031 / 0.083 / 0.16 / 0.25 / "
        "0.42 — the ratio grows ∝ δ. Pilot of a 5-point sweep from δ = 0.02 (root seed 10012, ci sizes, 16 instances): ratio "
        "decay 0.060 / 0.12 / 0.25 / 0.48 / 0.80 and hard 0.030 / 0.060 / 0.12 / 0.24 / 0.49 at "
        "δ = 0.02 / 0.04 / 0.08 / 0.16 / 0.32; floor slopes in δ 1.10 [1.07, 1.13] (decay) and 1.15 "
        "[1.09, 1.21] (hard); fixed floor / λ term at δ = 0.02: 1.007 [1.002, 1.012]; crossing of ½ "
        "at δ* = 0.178 [0.165, 0.191] (decay) and 0.327 [0.310, 0.345] (hard). The decided sweep starts "
        "at δ = 0.04 (pilot of the decided design, root seed 10012, 12 instances: ratios 0.12 decay, "
        "0.064 hard; fixed floor 1.011 [0.996, 1.027] × the λ term; slopes 1.10 and 1.20) and uses 12 "
        "instances, to keep the module's ci time: all wins give p = 2.4e-4 (< 6e-4, the Holm worst "
        "case), sign_test_n(0.999, α = 6e-4) = 11; the t-tested parts need t_test_n(0.2, 0.02) = 4 "
        "(λ term: 0.2 from the band edge) and t_test_n(0.5, 0.1) = 6 (slopes).")
    regime = (
        "m = 400, p = 600, s = 5 (as II.1d), n = 10 examples, δ ∈ {0.04, 0.08, 0.16, 0.32} "
        "(exact, make_instances(init_distance=δ)), λ = 0.2, α = 0.2, decay 0.9, τ = 0.1 (the paper's), "
        "T = 60 (the paper: 100; at T = 60 the fixed-λ and hard floors agree with T = 100 to 1e-4, and "
        "λ_60 = 4e-4). The removal is a small-δ statement: at the paper's δ ≈ 0.16 the dictionary term "
        "is as large as the λ term and λ-decay only reaches ratio ≈ ½ (the paper's own sizes, m = 1000, "
        "c = 0.005, gave 0.44–0.50 in a 4-instance pilot; hard 0.26–0.33). λ-decay's codes are not "
        "sparse at T = 60 (as the threshold decays, off-support entries enter: support rate 0), so its "
        "floor is about twice the hard threshold's. Hypotheses recorded per cell (O-constants 1): "
        "μ(2s − 1) ≈ 2.3 ≥ 1 and λ/(s·log m/√m) ≈ 0.13 < 1 are outside everywhere; δ ≤ 1/log p holds up "
        "to δ ≈ 0.156, so the two largest distances are outside. quick: m = 200, p = 300, s = 3, "
        "δ ∈ {0.04, 0.08, 0.16}, 12 instances. paper: m = 1000, p = 1500, s = 10, n = 200, T = 100, "
        "δ from 0.02 to 0.32 (5 values), 50 instances.")
    control = (
        "Mutant soft-in-hard-threshold (udl.engine.mutants): the hard-threshold encoder applies the soft "
        "threshold P_τ. The claim is that hard thresholding removes the shrinkage, so it must see a "
        "'hard' variant that still shrinks by τ = 0.1 > αλ: its floor is above the fixed-λ floor at "
        "small δ (ratio > 1) and does not vanish with δ. Must FAIL at quick and ci.")
    control_mutant = "soft-in-hard-threshold"
    requires = frozenset({"soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "λ-decay and hard thresholding no longer remove this encoder's floor ({statistic_name} = "
                "{statistic:.2g}): its fixed-λ floor is not the λ term, or the variants keep a bias",
        ("FAIL", "no-threshold"):
            "without a threshold the fixed-λ floor is the least-squares error, not the λ term of the lasso "
            "({statistic_name} = {statistic:.2g})",
        ("FAIL", "unscaled-threshold"):
            "thresholding at λ instead of αλ makes the fixed-λ floor five times the λ term, or saturates it "
            "({statistic_name} = {statistic:.2g})",
    }
    Cell = BiasRemovalCell
    schema = {"delta": "float", "variant": "str", "T": "int", "code_error": "float", "code_error_mean": "float",
              "support_rate": "float", "lambda_term": "float", "coherence": "float"}
    profiles = {
        "quick": {"cells": [replace(_E, m=200, p=300, s=3, delta_lo=0.04, delta_hi=0.16, n_delta=3)],
                  "n_instances": 12},
        "ci": {"cells": [_E], "n_instances": 12},
        "paper": {"cells": [replace(_E, m=1000, p=1500, s=10, n=200, T_max=100, delta_lo=0.02, n_delta=5)],
                  "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Code error against T for the fixed-λ encoder and the two variants, at every δ of the sweep
        (long format), with the exact λ term at D* of each instance."""
        lam, step = cell.lam, cell.step
        runs = {"fixed": (ctx.encoder_under_test(), lam), "decay": (core.LambdaDecayISTA(decay=cell.decay), lam),
                "hard": (core.HardThresholdISTA(tau=cell.tau), lam)}
        rows = []
        with torch.no_grad():
            for delta in _delta_grid(cell):
                inst = _instances(cell, seeds, ctx, init_distance=float(delta))
                lambda_term = _np(lam * lasso_bias(inst.D_star, inst.Z_star)["coef"].amax(dim=-1))
                for name, (enc, lam_used) in runs.items():
                    err, err_mean = [], []
                    for Z in _iterates(enc, inst.X, inst.D0, lam=lam_used, step=step, T=cell.T_max):
                        E = (Z - inst.Z_star).abs()
                        err.append(E.amax(dim=(-2, -1)))
                        err_mean.append(E.mean(dim=(-2, -1)))
                    T_max, B = len(err), len(seeds)
                    frame = pd.DataFrame({
                        "instance": np.tile(np.arange(B), T_max), "delta": float(delta), "variant": name,
                        "T": np.repeat(np.arange(1, T_max + 1), B),
                        "code_error": _np(torch.stack(err)).ravel(),
                        "code_error_mean": _np(torch.stack(err_mean)).ravel(),
                        "support_rate": np.nan, "lambda_term": np.tile(lambda_term, T_max),
                        "coherence": np.tile(_np(inst.coherence), T_max)})
                    frame.loc[frame["T"] == T_max, "support_rate"] = _np(core.support_recovery(Z, inst.Z_star))
                    rows.append(frame)
        return pd.concat(rows, ignore_index=True)

    def decide(self, table):
        """Per cell: sign tests of floor_variant < RATIO_MAX·floor_fixed at the smallest δ; the fixed floor
        there against the λ term (TOST); each variant's floor slope in δ > DICTIONARY_SLOPE_MIN. All must
        pass. Per-δ outcomes, the crossing δ* and the predicted exponents are reported."""
        final = table[table["T"] == table["T_max"]]
        floors = final.pivot_table(index=["cell", "instance", "delta"], columns="variant", values="code_error")
        lam_term = final.groupby(["cell", "instance"])["lambda_term"].first()
        cells = np.unique(floors.index.get_level_values("cell"))
        parts, predictions, by_delta, boundary = {}, [], {}, {}
        for c in cells:
            f = floors.xs(c, level="cell", drop_level=False)
            suffix = "" if len(cells) == 1 else f" @cell{c}"
            deltas = np.unique(f.index.get_level_values("delta"))
            at_min = f.xs(deltas[0], level="delta")
            for v in VARIANTS:
                parts[f"{v} < fixed/2 at δ = {deltas[0]:g}{suffix}"] = stats.sign_test(
                    np.log(at_min[v] / at_min["fixed"]) - math.log(RATIO_MAX), side="less", alpha=self.alpha,
                    name=f"win rate floor_{v} < floor_fixed/2")
            parts[f"fixed floor = λ term{suffix}"] = stats.mean_test(
                at_min["fixed"] / lam_term.loc[at_min.index], threshold=1.0, side="equal", margin=LAMBDA_TERM_BAND,
                alpha=self.alpha, name="fixed-λ floor / λ term at the smallest δ")
            long = f.reset_index()
            long["log_delta"] = np.log(long["delta"])
            for v in VARIANTS:
                slopes = stats.group_slopes(long.assign(log_floor=np.log(long[v])), "log_delta", "log_floor",
                                            by=["cell", "instance"])
                part = stats.mean_test(slopes, threshold=DICTIONARY_SLOPE_MIN, side="greater", alpha=self.alpha,
                                       name=f"log-log slope of floor_{v} in δ")
                parts[f"{v} leaves the dictionary term{suffix}"] = part
                predictions.append(stats.prediction(f"exponent of the {v} floor in δ (dictionary term √s·δ)",
                                                    DICTIONARY_SLOPE, part.statistic, part.interval))
            ratio = f[list(VARIANTS)].div(f["fixed"], axis=0)
            for d in deltas:
                r = ratio.xs(d, level="delta")
                by_delta[f"{d:g}{suffix}"] = {
                    v: {"ratio_median": float(r[v].median()),
                        "outcome": stats.sign_test(np.log(r[v]) - math.log(RATIO_MAX), side="less",
                                                   alpha=self.alpha).outcome} for v in VARIANTS}
            boundary[f"cell{c}"] = _boundary(ratio, self.alpha)
        lam_ratio = parts[f"fixed floor = λ term{'' if len(cells) == 1 else f' @cell{cells[0]}'}"]
        predictions.append(stats.prediction("fixed-λ floor / λ term at the smallest δ", 1.0, lam_ratio.statistic,
                                            lam_ratio.interval))
        verdict = all_of(parts, n=len(lam_term), alpha=self.alpha)
        detail = dict(verdict.detail, by_delta=by_delta, boundary=boundary, paper_delta=DELTA_PAPER,
                      floor_median={f"{v}@{d:g}": float(floors[v].xs(d, level="delta").median())
                                    for v in floors.columns for d in np.unique(floors.index.get_level_values("delta"))})
        return replace(verdict, detail=detail, predictions=(*verdict.predictions, *predictions))

    def hypotheses(self, cell, table):
        """μ(2s − 1), λ against s·log m/√m and the largest δ of the sweep."""
        return _hypotheses(cell, table, lam=cell.lam, delta=float(cell.delta_hi))

    # ------------------------------------------------------------------ figures
    @figure("floor-variants",
            f"Code error against T for fixed-λ ISTA, λ-decay (λ_t = λ·{_E.decay:g}ᵗ) and hard thresholding "
            "at the smallest δ of the sweep, where the claim decides (median and 10–90 % band over instances, "
            "log scale). Dashed: "
            + ("half" if RATIO_MAX == 0.5 else f"{RATIO_MAX:g} ×")
            + " the final fixed-λ floor (median), the claim's threshold for 'well below'.")
    def draw_variants(self, fi: FigureInput):
        """Code error against T per variant, with RATIO_MAX × the final fixed-λ floor."""
        t = fi.table
        fi.need("T", "variant", "code_error")
        if "delta" in t.columns:
            t = t[t["delta"] == t["delta"].min()]
        fig, (a,) = plot.new_figure(1, width=6.0, height=4.2)
        names = {"fixed": "fixed λ (ISTA)", "decay": "λ-decay", "hard": "hard threshold"}
        variants = [v for v in names if v in set(t["variant"])] + sorted(set(t["variant"]) - set(names))
        colours = plot.palette(len(variants))
        for v, c in zip(variants, colours):
            plot.band(a, t[t["variant"] == v], "T", "code_error", colour=c, label=names.get(v, str(v)),
                      positive=True)
        fixed = t[t["variant"] == "fixed"]
        if len(fixed):
            last = fixed[fixed["T"] == fixed["T"].max()]["code_error"].median()
            factor = "½" if RATIO_MAX == 0.5 else f"{RATIO_MAX:g}"
            a.axhline(RATIO_MAX * last, color="0.3", linestyle="--", linewidth=1, label=f"{factor} × fixed-λ floor")
        a.set_yscale("log")
        a.set_xlabel("layers T")
        a.set_ylabel(r"code error $\max_{j,k}|z_{T,jk} - z^*_{jk}|$")
        a.set_title("removing the λ term lowers the floor"
                    + (f" (δ = {float(t['delta'].iloc[0]):g})" if "delta" in t.columns and len(t) else ""))
        plot.legend(a, title=plot.band_note(plot.instances_of(t[t["variant"] == variants[0]])), title_fontsize=8)
        return fig

    @figure("floors-vs-delta",
            "The distance sweep. Left: final code error against the column distance δ for fixed λ and the two "
            "variants (median and 10–90 % band over instances, log-log), with the predicted dictionary term "
            "∝ δ (slope 1, dotted) through the variants' first medians. Right: each variant's floor over the "
            "fixed-λ floor against δ (median and band); dashed: the claim's ½; dotted vertical: the paper's "
            "δ ≈ 0.16. The bias removal holds where the ratio is below ½.")
    def draw_sweep(self, fi: FigureInput):
        """Floors against δ per variant (left); the ratio to the fixed-λ floor against δ (right)."""
        t = fi.table
        fi.need("T", "variant", "code_error", "delta")
        final = t[t["T"] == t["T"].max()]
        names = {"fixed": "fixed λ (ISTA)", "decay": "λ-decay", "hard": "hard threshold"}
        variants = [v for v in names if v in set(final["variant"])]
        colours = dict(zip(variants, plot.palette(len(variants))))
        fig, (a, b) = plot.new_figure(2)
        for v in variants:
            q = plot.band(a, final[final["variant"] == v], "delta", "code_error", colour=colours[v],
                          label=names[v], marker="o", positive=True)
            if v != "fixed" and len(q) >= 2:
                xs = q.index.to_numpy(float)
                plot.ref_line(a, xs, DICTIONARY_SLOPE, xs[0], float(q["med"].iloc[0]),
                              label=f"∝ δ (predicted, through {names[v]})", colour=colours[v])
        a.set_xscale("log")
        a.set_yscale("log")
        plot.data_ticks(a.xaxis, sorted(pd.unique(final["delta"])))
        a.set_xlabel(r"column distance $\delta = \|D_j - D^*_j\|$")
        a.set_ylabel(r"final code error $\max_{j,k}|z_{T,jk} - z^*_{jk}|$")
        a.set_title("what the variants leave vanishes with δ")
        plot.legend(a, loc="lower right", title=plot.band_note(plot.instances_of(final[final["variant"] == "fixed"])),
                    title_fontsize=8)
        keys = [k for k in ("cell", "instance", "delta") if k in final.columns]
        wide = final.pivot_table(index=keys, columns="variant", values="code_error").reset_index()
        for v in (x for x in variants if x != "fixed"):
            plot.band(b, wide.assign(ratio=wide[v] / wide["fixed"]), "delta", "ratio", colour=colours[v],
                      label=f"{names[v]} / fixed λ", marker="o", positive=True)
        b.axhline(RATIO_MAX, color="0.3", linestyle="--", linewidth=1, label=f"claim: < {RATIO_MAX:g}")
        b.axvline(DELTA_PAPER, color="0.5", linestyle=":", linewidth=1.2, label=f"paper's δ ≈ {DELTA_PAPER:.2f}")
        b.set_xscale("log")
        b.set_yscale("log")
        plot.data_ticks(b.xaxis, sorted(pd.unique(final["delta"])))
        b.set_xlabel(r"column distance $\delta$")
        b.set_ylabel("floor of the variant / fixed-λ floor")
        b.set_title("where the bias removal holds")
        plot.legend(b, loc="upper left")
        return fig
