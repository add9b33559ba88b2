r"""Theorem II.1 — code error of the unrolled encoder (forward pass).

Statement (journal form). Under incoherence and a close dictionary D, with high probability

    |z_{t,j} − z*_j| ≤ O(√s·‖D_j − D*_j‖ + e_{t,j} + λ),   e_{t,j} → 0 as t → ∞,

for the ISTA iterates z_{t+1} = P_{αλ}(z_t − α Dᵀ(D z_t − x)) from z₀ = 0. The dictionary term
√s·‖D_j − D*_j‖, the optimisation term e_t and the λ term are tested separately:

========  ==========================================================================  ===========
claim     what is tested                                                              kind
========  ==========================================================================  ===========
II.1a     the iterates converge to a floor; once the support is fixed the step        rate
          ‖z_t − z_{t−1}‖ decays geometrically (fitted per-layer factor ρ < 1)
II.1b     at D = D* the floor is linear in λ (log-log slope within 1 ± 0.25) and > 0  rate
II.1c     the floor increases with the column distance δ = ‖D_j − D*_j‖               rate
II.1d     in the incoherent regime supp(z_T) = supp(z*) for the vast majority         probabilistic
          of examples (≥ 90 %), not at small m
II.1e     λ-decay across layers and hard thresholding lower the floor to at most      ordering
          half the fixed-λ floor (the λ term is removed; the dictionary term stays)
========  ==========================================================================  ===========

"Code error" is the quantity the theorem bounds, max_{j,k} |z_{T,jk} − z*_jk| over the codes and
examples of an instance (:func:`udl.code_error`, reduction "max"); the mean absolute error is
recorded too. The "floor" is the code error once the encoder has converged (T large; the last
relative step ‖Z_T − Z_{T−1}‖_F / ‖Z*‖_F is recorded as ``conv`` so that the claim can be audited).

Decisions combine their parts by intersection–union (:func:`all_of`): PASS needs every part (λ
cell, sub-test, variant) to PASS, so the combined false-PASS rate stays ≤ α and p = max p; FAIL
when some part FAILS (false-FAIL rate ≤ k·α for k ≤ 3 parts).

All sizes, tolerances and thresholds are named constants below, each with its reason. Every
profile, quick included, is sized so that the predicted effect gives p ≤ 0.01/17 ≈ 6e-4, the Holm
worst case of a run over all claims (the test suite runs quick as one Holm family). The claims
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
           "geometric_rates", "predicted_rates"]

# --------------------------------------------------------------------------- constants
#: Signs of z_T that changed at layer t mark the support as not yet fixed; the geometric fit of
#: II.1a uses only later layers, and needs at least this many of them (fewer points make the
#: fitted slope's t interval too wide to mean anything).
MIN_FIT_POINTS = 10
#: A relative step ‖Z_t − Z_{t−1}‖_F/‖Z*‖_F below this many machine epsilons is rounding noise,
#: not geometric decay: the fit stops there (10³·eps ≈ 2e-13 in float64, 1e-4 in float32).
PRECISION_FACTOR = 1e3
#: II.1a control: the step is this many times 2/L (L = ‖D‖₂², largest over the batch); ISTA
#: diverges for α > 2/L, and at 3·(2/L) the unstable mode grows by |1 − αL| ≥ 5 per layer.
CONTROL_STEP_FACTOR = 3.0
#: II.1b: half-width of the band around the predicted log-log slope 1. The nearest competing
#: reading is the misprinted √(… + λ) of the short paper (slope 0.5); a band of ±0.25 stops
#: half-way to it, so PASS rules out √λ (and λ², and no floor: slope 0).
SLOPE_BAND = 0.25
#: II.1b: the predicted log-log slope of the floor against λ (floor ∝ λ, see the statement).
PREDICTED_SLOPE = 1.0
#: II.1b: a floor below this is "zero": codes have amplitude 1–2, float32 resolves them to
#: ≈ 1e-6, and the predicted λ floor at λ = 0.05 is ≈ 0.1 — both three or more decades away.
ZERO_FLOOR = 1e-4
#: II.1c: smallest relative trend of the floor that counts as "increasing": floor(δ)/floor(0)
#: must grow by ≥ 0.1 per unit δ, i.e. by ≥ 1 % when δ grows by 0.1. Far above what
#: rounding or an unconverged encoder can produce (relative steps ≤ 1e-6 at T_max), and far below
#: the dictionary term the theorem predicts (√s·δ ≈ 0.22 at s = 5, δ = 0.1, against a λ floor
#: of ≈ 0.5 at λ = 0.2: a relative slope of order 1–5; the pilot measured 2.5).
TREND_MIN = 0.1
#: II.1d: "the vast majority of examples". At m = 50 the support is missed for about a fifth of
#: the examples even at D = D* (rate ≈ 0.8); a claimed majority has to sit clearly above that.
RECOVERY_RATE_MIN = 0.9
#: II.1d: layers at which the recovery curve is recorded (for the figure); the decision uses
#: the last (T_max).
RECOVERY_RECORD_T = (5, 10, 15, 20, 25, 30, 40, 50)
#: II.1d control: the small coherent regime m = 50, p = 100 (μ ≈ 0.54), same s, λ, α, T and the
#: same per-column distance δ ≈ c√m as the claim (c scaled by √(m / CONTROL_M)).
CONTROL_M, CONTROL_P = 50, 100
#: II.1e: "well below" = at most half the fixed-λ floor, i.e. the removed λ term was the larger
#: part of the floor. The test is on log(floor_variant / floor_fixed) < log(1/2).
RATIO_MAX = 0.5


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


def _final(encoder, X, D, Z_star, *, lam, step, T):
    """Run T layers; return Z_T, its max and mean code error and the last relative step."""
    Z_prev = Z = torch.zeros_like(Z_star)
    for Z_new in _iterates(encoder, X, D, lam=lam, step=step, T=T):
        Z_prev, Z = Z, Z_new
    E = (Z - Z_star).abs()
    scale = torch.linalg.matrix_norm(Z_star)
    return Z, E.amax(dim=(-2, -1)), E.mean(dim=(-2, -1)), torch.linalg.matrix_norm(Z - Z_prev) / scale


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
        "for every λ of the sweep.")
    kind = "rate"
    effect = (
        "Per-instance ρ from an OLS fit of log step on T after the support is fixed; one-sided t test "
        "of mean ρ < 1 per λ cell, intersection–union over cells. Pilot (root seed 12345, ci sizes, 10 "
        "instances per cell): mean ρ = 0.970 (λ = 0.1), 0.953 (0.2), 0.943 (0.4), sd ≤ 0.01; the "
        "smallest effect 1 − ρ ≈ 0.03 at sd 0.01 needs t_test_n(0.03, 0.01, α = 6e-4 [Holm worst "
        "case], β = 0.05) = 8; 12 per cell are used. The fitted factor matches the prediction "
        "max_k |1 − α·eig(D_Sᵀ D_S)| on the final supports (rho_pred) to within 0.3 % in the pilot "
        "(median ratio 0.997).")
    regime = (
        "m = 50, p = 100, s = 5, n = 50 examples, D = D⁽⁰⁾ with c = 0.02 (the paper's gradient "
        "experiment; relative dictionary error ≈ 0.14, μ ≈ 0.54 — outside the theorem's incoherence "
        "hypothesis, which only makes the floor larger, not the convergence slower), α = 0.2 "
        "(< 2/L ≈ 0.34), λ ∈ {0.1, 0.2, 0.4} with T_max = 500/300/200 layers: the support settles "
        "late at small λ (pilot: last sign change at t ≤ 350, 177, 130) and the fit needs ≥ 70 layers "
        "after it; at T_max the relative step is ≤ 5e-7, i.e. the floor is reached. quick: λ = 0.2 "
        "only, n = 30 examples, 6 instances.")
    control = (
        "Step α = 3·(2/L) (L = ‖D‖₂², largest in the batch): far above the stability limit, ISTA "
        "diverges (|1 − αL| ≥ 5 per layer), the support never settles, and the tail fit gives ρ ≫ 1. "
        "Must FAIL.")
    requires = frozenset({"soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the iterates do not settle into a geometric decay once the support is fixed "
                "(fitted per-layer factor {statistic:.3g}, upper bound {upper:.3g}, needs < 1)",
    }
    Cell = CodeConvergenceCell
    schema = {"T": "int", "code_error": "float", "code_error_mean": "float", "diff": "float", "fixed": "bool",
              "eps": "float", "alpha_used": "float", "rho_pred": "float", "coherence": "float"}
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
        if ctx.control:
            L = torch.linalg.matrix_norm(D, ord=2).square().max()
            step = CONTROL_STEP_FACTOR * 2.0 / float(L)
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
        })

    def decide(self, table):
        """Per λ cell: one-sided t test of mean fitted ρ < 1; all cells must pass."""
        rates = geometric_rates(table)
        parts = {}
        for c, g in rates.groupby("cell", sort=True):
            lam = float(table.loc[table["cell"] == c, "lam"].iloc[0])
            parts[f"lam={lam:g}"] = stats.mean_test(g["rho"], threshold=1.0, alpha=self.alpha, side="less",
                                                  name="per-layer factor ρ")
        verdict = all_of(parts, n=len(rates), alpha=self.alpha)
        last = table.sort_values("T").groupby(["cell", "instance"]).tail(1)
        pred = last.set_index(["cell", "instance"])["rho_pred"]
        fit = rates.set_index(["cell", "instance"])["rho"]
        ratio = (fit / pred).replace([np.inf, -np.inf], np.nan).dropna()
        detail = dict(verdict.detail,
                      rho_fit_median=float(rates["rho"].median()),
                      rho_pred_median=float(np.nanmedian(last["rho_pred"])) if last["rho_pred"].notna().any()
                      else math.nan,
                      rho_fit_over_pred_median=float(ratio.median()) if len(ratio) else math.nan,
                      fit_points_min=int(rates["points"].min()),
                      support_fixed_at_max=float(rates["t_fix"].max()),
                      final_step_max=float(last["diff"].max()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

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
        plot.legend(a, title=plot.band_note(plot.instances_of(t)), title_fontsize=8)
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
    """II.1b — at D = D* the floor is linear in λ and strictly positive."""

    id = "II.1b"
    theorem = "II.1"
    title = "at D = D* the code-error floor is linear in λ and > 0"
    statement = (
        "At D = D* (no dictionary term) and exact data, the converged code error max_{j,k}|z_T − z*| "
        "of the thresholding encoder is linear in λ: the per-instance log-log slope over a λ sweep "
        "has mean within 1 ± 0.25, and the floor is strictly positive (> 1e-4 at the smallest λ). "
        "Theory: while signs are recovered along the lasso path, ẑ(λ) − z* = −λ·(D_SᵀD_S)⁻¹sign(z*_S) "
        "exactly, so the slope is 1 — ℓ1 unrolling never reaches zero code error.")
    kind = "rate"
    effect = (
        "TOST of the mean per-instance slope against [0.75, 1.25] (two one-sided t tests) and a "
        "one-sided t test of the floor at the smallest λ > 1e-4; both must pass. Pilot (root seed "
        "12345, ci sizes, 8 instances): floor/λ is the same at every λ on every instance (slope 1, sd "
        "3e-9; floor/λ ≈ 2.3–2.9, the norm ‖(D_SᵀD_S)⁻¹sign(z*_S)‖_∞ of the worst example): the "
        "distance 0.25 to the band edge is ~10⁸ standard deviations. The floor at λ = 0.05 "
        "(0.11–0.14, sd 0.01) exceeds 1e-4 by three decades: t_test_n(0.1, 0.02, α = 6e-4) = 6; "
        "8 instances are used.")
    regime = (
        "m = 50, p = 100, s = 5, n = 50 examples, D = D*, noiseless X, α = 0.2, λ geometric from "
        "0.05 to 0.4 (4 values), T = 600 layers (pilot: support settled by t ≈ 400 at λ = 0.05; final "
        "relative step ≤ 1e-11). μ ≈ 0.54 is outside the incoherence hypothesis; the linearity only "
        "needs the signs along the lasso path to stay fixed, which holds for almost every instance "
        "(extra small entries off the true support also scale with λ; a support change at the "
        "largest λ bends an occasional instance to slope ≈ 0.99). quick: λ ∈ {0.1, 0.2, 0.4}, T = 400, "
        "n = 30 examples, 6 instances.")
    control = (
        "udl.NoThreshold (Landweber iteration, no threshold): its limit ignores λ, so the log-log "
        "slope is 0 — outside the band — and the claim must FAIL.")
    requires = frozenset({"soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the converged code error does not scale linearly with λ (log-log slope {statistic:.2g}, "
                "needs 1 ± 0.25): the floor is not the λ term of the lasso bias",
        ("FAIL", "no-threshold"):
            "without a threshold the codes converge to the minimum-norm least-squares solution whatever λ is, "
            "so the floor does not depend on λ (log-log slope {statistic:.2g}, needs 1 ± 0.25)",
        ("FAIL", "unscaled-threshold"):
            "thresholding at λ instead of αλ solves the lasso at λ/α = 5λ, which zeroes true entries at the "
            "larger λ of the sweep (none is left at λ = 0.4), so the floor saturates near max|z*| instead of "
            "growing ∝ λ (log-log slope {statistic:.2g}, needs 1 ± 0.25)",
    }
    Cell = LambdaFloorCell
    schema = {"lam": "float", "floor": "float", "floor_mean": "float", "conv": "float", "support_rate": "float",
              "coherence": "float"}
    profiles = {
        "quick": {"cells": [replace(_B, n=30, lam_lo=0.1, lam_hi=0.4, n_lam=3, T_max=400)], "n_instances": 6},
        "ci": {"cells": [replace(_B, lam_lo=0.05, lam_hi=0.4, n_lam=4, T_max=600)], "n_instances": 8},
        "paper": {"cells": [replace(_B, n=1000, lam_lo=0.05, lam_hi=0.4, n_lam=7, T_max=1500)], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Floor per (instance, λ) at D = D*."""
        inst = _instances(cell, seeds, ctx)
        encoder = core.NoThreshold() if ctx.control else ctx.encoder_under_test()
        rows = []
        with torch.no_grad():
            for lam in _grid(cell.lam_lo, cell.lam_hi, cell.n_lam):
                Z, err, err_mean, conv = _final(encoder, inst.X, inst.D_star, inst.Z_star, lam=float(lam),
                                                step=cell.step, T=cell.T_max)
                rows.append(pd.DataFrame({
                    "instance": np.arange(len(seeds)), "lam": float(lam), "floor": _np(err),
                    "floor_mean": _np(err_mean), "conv": _np(conv),
                    "support_rate": _np(core.support_recovery(Z, inst.Z_star)),
                    "coherence": _np(inst.coherence)}))
        return pd.concat(rows, ignore_index=True)

    def decide(self, table):
        """TOST of the mean log-log slope against 1 ± SLOPE_BAND, and floor > ZERO_FLOOR at λ_min."""
        t = table.assign(log_lam=np.log(table["lam"]), log_floor=np.log(table["floor"]))
        slopes = stats.group_slopes(t, "log_lam", "log_floor", by=["cell", "instance"])
        lowest = t.loc[t.groupby(["cell", "instance"])["lam"].idxmin()]
        parts = {
            "slope": stats.mean_test(slopes, threshold=PREDICTED_SLOPE, margin=SLOPE_BAND, side="equal",
                                     alpha=self.alpha, name="log-log slope of floor vs λ"),
            "floor>0": stats.mean_test(lowest["floor"], threshold=ZERO_FLOOR, side="greater",
                                       alpha=self.alpha, name="floor at smallest λ"),
        }
        verdict = all_of(parts, n=len(slopes), alpha=self.alpha, primary="slope")
        ratio = t["floor"] / t["lam"]
        detail = dict(verdict.detail, slope_sd=float(np.std(slopes, ddof=1)) if len(slopes) > 1 else 0.0,
                      floor_over_lam_median=float(ratio.median()), conv_max=float(t["conv"].max()),
                      support_rate_mean=float(t["support_rate"].mean()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

    # ------------------------------------------------------------------ figures
    @figure("floor-vs-lambda",
            "Code-error floor at D = D* against λ on log-log axes: per-instance curves (thin), median "
            "with 10–90 % band, the least-squares fit of the median (dashed) and the predicted slope "
            f"{PREDICTED_SLOPE:g} (dotted). The stored verdict's mean per-instance slope and interval are "
            "in the legend.")
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
            part = plot.part(fi.record, "slope")
            if part:
                lo, hi = (part.get("interval") or [None, None])[:2]
                a.plot([], [], " ", label=f"stored mean per-instance slope {float(part['statistic']):.3f} "
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
        "(paired sweep).")
    kind = "rate"
    effect = (
        "One-sided t test of the mean per-instance relative slope > 0.1. Pilot (root seed 12345, ci "
        "sizes, 8 instances): the floor rises from 0.40–0.54 at δ = 0 to 0.62–0.90 at δ = 0.2, mean "
        "relative slope 2.5, sd 0.46 (not monotone at every step: at δ = 0.05 it dips slightly on 3 of "
        "8 instances — the trend is what is claimed). An effect ≥ 2 over 0.1 at sd ≤ 0.6 needs "
        "t_test_n(2.0, 0.6, α = 6e-4, β = 0.05) = 7; 10 instances are used.")
    regime = (
        "m = 50, p = 100, s = 5, n = 50 examples, λ = 0.2, α = 0.2, T = 300 layers (final relative "
        "step ≤ 1e-6), δ ∈ {0, 0.05, 0.1, 0.15, 0.2} (make_instances(init_distance=δ): every column "
        "at exactly δ). δ ≤ 0.2 keeps D close (angle ≤ 11.5°); μ ≈ 0.54 is outside the incoherence "
        "hypothesis, which does not change the sign of the trend. quick: δ ∈ {0, 0.1, 0.2}, "
        "T = 250, n = 30 examples, 8 instances.")
    control = (
        "Codes computed with D* instead of D⁽⁰⁾ (the dictionary term removed, all else equal): the "
        "floor is then the same at every δ, the slope is 0 < 0.1, and the claim must FAIL.")
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
    schema = {"delta": "float", "delta_measured": "float", "floor": "float", "floor_mean": "float", "conv": "float",
              "support_rate": "float"}
    profiles = {
        "quick": {"cells": [replace(_C, n=30, T_max=250, delta_max=0.2, n_delta=3)], "n_instances": 8},
        "ci": {"cells": [replace(_C, T_max=300, delta_max=0.2, n_delta=5)], "n_instances": 10},
        "paper": {"cells": [replace(_C, n=1000, T_max=600, delta_max=0.3, n_delta=7)], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Floor per (instance, δ); the control encodes with D* at every δ."""
        encoder = ctx.encoder_under_test()
        rows = []
        with torch.no_grad():
            for delta in np.linspace(0.0, cell.delta_max, cell.n_delta):
                inst = _instances(cell, seeds, ctx, init_distance=float(delta))
                D = inst.D_star if ctx.control else inst.D0
                Z, err, err_mean, conv = _final(encoder, inst.X, D, inst.Z_star, lam=cell.lam,
                                                step=cell.step, T=cell.T_max)
                rows.append(pd.DataFrame({
                    "instance": np.arange(len(seeds)), "delta": float(delta),
                    "delta_measured": _np(inst.delta.amax(dim=-1)), "floor": _np(err),
                    "floor_mean": _np(err_mean), "conv": _np(conv),
                    "support_rate": _np(core.support_recovery(Z, inst.Z_star))}))
        return pd.concat(rows, ignore_index=True)

    def decide(self, table):
        """One-sided t test of the mean relative slope of floor(δ)/floor(0) on δ > TREND_MIN."""
        t = table.sort_values("delta")
        base = t.groupby(["cell", "instance"])["floor"].transform("first")
        t = t.assign(rel_floor=t["floor"] / base)
        slopes = stats.group_slopes(t, "delta", "rel_floor", by=["cell", "instance"])
        verdict = stats.mean_test(slopes, threshold=TREND_MIN, side="greater", alpha=self.alpha,
                                  name="relative slope of floor vs δ")
        monotone = t.groupby(["cell", "instance"])["floor"].apply(lambda f: bool(np.all(np.diff(f) > 0)))
        detail = dict(verdict.detail, monotone_fraction=float(monotone.mean()),
                      floor_ratio_at_max_delta_median=float(
                          t.groupby(["cell", "instance"])["rel_floor"].last().median()),
                      conv_max=float(t["conv"].max()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

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
        "of the examples keep extra entries) — see the control.")
    control = (
        "The small coherent regime m = 50, p = 100 (μ ≈ 0.54), everything else equal (s = 5, λ, α, "
        "T, same δ ≈ 0.16): support recovery collapses and the claim must FAIL.")
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
              "delta_mean": "float", "m_used": "int"}
    profiles = {
        "quick": {"cells": [replace(_D, m=200, p=300, s=3, init_scale=0.011)], "n_instances": 100},
        "ci": {"cells": [_D], "n_instances": 120},
        "paper": {"cells": [replace(_D, m=1000, p=1500, s=10, n=20, init_scale=0.005, T_max=50)],
                  "n_instances": 150},
    }

    def simulate(self, cell, seeds, ctx):
        """Support recovered (example 0, and the rate over the instance's n examples) against T."""
        if ctx.control:
            c = cell.init_scale * math.sqrt(cell.m / CONTROL_M)
            inst = _instances(cell, seeds, ctx, m=CONTROL_M, p=CONTROL_P, init_scale=c)
        else:
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
                    "m_used": int(inst.X.shape[-2])}))
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
        a.set_xlabel("layers T")
        a.set_ylabel(r"P(supp$(z_T)$ = supp$(z^*)$)")
        a.set_title("exact support recovery, incoherent regime")
        plot.legend(a, loc="lower right")
        return fig


# --------------------------------------------------------------------------- II.1e
@dataclass(frozen=True)
class BiasRemovalCell:
    """A cell of II.1e: sizes m, p, s; n examples; D⁽⁰⁾ distance δ (init_distance); λ; step α; T_max layers;
    the λ decay factor (decay) and the hard threshold τ (tau) of the two variants."""

    m: int
    p: int
    s: int
    n: int
    init_distance: float
    lam: float
    step: float
    T_max: int
    decay: float
    tau: float


_E = BiasRemovalCell(m=400, p=600, s=5, n=20, init_distance=0.05, lam=0.2, step=0.2, T_max=100, decay=0.9, tau=0.1)


class BiasRemoval(Claim):
    """II.1e — λ-decay and hard thresholding remove the λ term of the floor."""

    id = "II.1e"
    theorem = "II.1"
    title = "λ-decay and hard thresholding lower the floor well below the fixed-λ floor"
    statement = (
        "At a close dictionary (per-column distance δ = 0.05) in the incoherent regime, the code "
        "error after T layers (60 at ci, 100 in the paper profile; both past the fixed-λ floor) of "
        "ISTA with a decaying threshold λ_t = λ·0.9ᵗ (udl.LambdaDecayISTA) and of iterative hard "
        "thresholding at τ = 0.1 (udl.HardThresholdISTA) is below half the fixed-λ floor of the "
        "encoder under test on most instances, paired per instance (sign test of "
        "floor_variant < floor_fixed/2, win rate > 1/2), for both variants. Removing the λ term "
        "leaves the dictionary term O(√s·δ), so the gain is large only where the λ term dominates "
        "the floor.")
    kind = "ordering"
    effect = (
        "Paired one-sided sign test (exact binomial, Clopper–Pearson interval) of the win rate of "
        "floor_variant < floor_fixed/2 against 1/2, for each variant, intersection–union. Pilot "
        "(root seed 12345, ci sizes, 14 instances): floor ratio median 0.20 (max 0.26) for decay and "
        "0.086 (max 0.11) for hard thresholding — every instance a win. n = 16 gives p = 1.5e-5 with "
        "no loss and 2.6e-4 with one (both < 6e-4, the Holm worst case); sign_test_n(0.99, α = 6e-4) "
        "= 15, power 0.99 at a win rate of 0.99. The median ratio is recorded as the effect size.")
    regime = (
        "m = 400, p = 600, s = 5 (as II.1d), n = 20 examples, δ = 0.05 (exact), λ = 0.2, α = 0.2, "
        "decay 0.9, τ = 0.1 (the paper's), T = 60 (the paper: 100; the pilot floors at T = 60 and 100 "
        "agree to 1e-4 for fixed λ and hard, and λ_60 = 4e-4). At the paper's own sizes and δ ≈ 0.16 "
        "(m = 1000, c = 0.005) λ-decay's ratio was 0.44–0.50 in a 4-instance pilot — on the 1/2 line, "
        "because the dictionary term is then as large as the λ term (hard: 0.26–0.33). The claim is "
        "therefore stated for a dictionary close enough that the λ term dominates the floor (the "
        "paper profile keeps δ = 0.05 at the paper's m = 1000, p = 1500, s = 10, T = 100). quick: "
        "m = 200, p = 300, s = 3, n = 10, T = 60, 12 instances (all wins: p = 2.4e-4).")
    control = (
        "The variants degenerated so that nothing is removed: decay factor 1 (LambdaDecayISTA(1.0) "
        "≡ fixed λ, ratio 1) and a soft threshold at the hard threshold's level τ (ISTA with "
        "λ = τ/α: same threshold, but shrinking, ratio > 1). Must FAIL.")
    requires = frozenset({"soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "λ-decay and hard thresholding no longer halve this encoder's floor ({statistic_name} = "
                "{statistic:.2g}): its own fixed-λ floor is not dominated by the λ term",
    }
    Cell = BiasRemovalCell
    schema = {"variant": "str", "T": "int", "code_error": "float", "code_error_mean": "float",
              "support_rate": "float"}
    profiles = {
        "quick": {"cells": [replace(_E, m=200, p=300, s=3, n=10, T_max=60)], "n_instances": 12},
        "ci": {"cells": [replace(_E, T_max=60)], "n_instances": 16},
        "paper": {"cells": [replace(_E, m=1000, p=1500, s=10, n=200, T_max=100)], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Code error against T for the fixed-λ encoder and the two variants (long format)."""
        inst = _instances(cell, seeds, ctx)
        lam, step = cell.lam, cell.step
        if ctx.control:
            variants = {"decay": (core.LambdaDecayISTA(decay=1.0), lam),
                        "hard": (core.ISTA(), cell.tau / step)}
        else:
            variants = {"decay": (core.LambdaDecayISTA(decay=cell.decay), lam),
                        "hard": (core.HardThresholdISTA(tau=cell.tau), lam)}
        runs = {"fixed": (ctx.encoder_under_test(), lam), **variants}
        rows = []
        with torch.no_grad():
            for name, (enc, lam_used) in runs.items():
                err, err_mean = [], []
                for Z in _iterates(enc, inst.X, inst.D0, lam=lam_used, step=step, T=cell.T_max):
                    E = (Z - inst.Z_star).abs()
                    err.append(E.amax(dim=(-2, -1)))
                    err_mean.append(E.mean(dim=(-2, -1)))
                T_max, B = len(err), len(seeds)
                rows.append(pd.DataFrame({
                    "instance": np.tile(np.arange(B), T_max), "variant": name,
                    "T": np.repeat(np.arange(1, T_max + 1), B),
                    "code_error": _np(torch.stack(err)).ravel(),
                    "code_error_mean": _np(torch.stack(err_mean)).ravel(),
                    "support_rate": np.nan}))
                rows[-1].loc[rows[-1]["T"] == T_max, "support_rate"] = _np(core.support_recovery(Z, inst.Z_star))
        return pd.concat(rows, ignore_index=True)

    def decide(self, table):
        """Sign test of floor_variant < RATIO_MAX·floor_fixed, decay and hard, per cell; all must pass."""
        final = table[table["T"] == table["T_max"]]
        floors = final.pivot_table(index=["cell", "instance"], columns="variant", values="code_error")
        cells = floors.index.get_level_values("cell")
        parts = {}
        for c in np.unique(cells):
            f = floors[cells == c]
            for v in ("decay", "hard"):
                key = v if len(np.unique(cells)) == 1 else f"{v}@cell{c}"
                parts[key] = stats.sign_test(np.log(f[v] / f["fixed"]) - math.log(RATIO_MAX), side="less",
                                             alpha=self.alpha, name=f"win rate floor_{v} < floor_fixed/2")
        verdict = all_of(parts, n=len(floors), alpha=self.alpha)
        detail = dict(verdict.detail,
                      ratio_median={v: float((floors[v] / floors["fixed"]).median()) for v in ("decay", "hard")},
                      floor_median={v: float(floors[v].median()) for v in floors.columns})
        return Verdict(**{**verdict.__dict__, "detail": detail})

    # ------------------------------------------------------------------ figures
    @figure("floor-variants",
            f"Code error against T for fixed-λ ISTA, λ-decay (λ_t = λ·{_E.decay:g}ᵗ) and hard thresholding "
            "(median and 10–90 % band over instances, log scale). Dashed: "
            + ("half" if RATIO_MAX == 0.5 else f"{RATIO_MAX:g} ×")
            + " the final fixed-λ floor (median), the claim's threshold for 'well below'.")
    def draw_variants(self, fi: FigureInput):
        """Code error against T per variant, with RATIO_MAX × the final fixed-λ floor."""
        t = fi.table
        fi.need("T", "variant", "code_error")
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
        a.set_title("removing the λ term lowers the floor")
        plot.legend(a, title=plot.band_note(plot.instances_of(t[t["variant"] == variants[0]])), title_fontsize=8)
        return fig
