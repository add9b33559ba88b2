r"""Theorem II.3 — bias of the dictionary-gradient estimators of unrolled dictionary learning.

Statement (Tolooshams & Ba). g_ae-lasso is equivalent to g_dec as T → ∞ (both tend to ĝ, the
gradient of the lasso value function, by Danskin);

    ‖g_ae-lasso − g*‖ ≤ O(‖D − D*‖ + δ* + λ√s),     ‖g_ae-ls − g*‖ ≤ O(‖D − D*‖ + δ*),

so g_ae-ls is the better estimate of the desired direction g* = (D Z* − X) Z*ᵀ / n and its
training converges to a smaller neighbourhood of D*. Four claims test what this predicts:

========  ==========================================================================  ==========
claim     what is tested                                                              kind
========  ==========================================================================  ==========
II.3a     ‖g_dec − ĝ‖ and ‖g_ae-lasso − ĝ‖ → 0 geometrically in T, g_ae-lasso faster  rate
          (per-layer log-rate ratio > 1; ≈ 2 is the "super-efficiency" of autodiff
          once the support is fixed); ‖g_ae-ls − ĝ‖ stays O(‖ĝ‖)
II.3b     at T = 50 (past THEOREMS.md's crossover T ≈ 25; measured here: T ≈ 5):     ordering
          ‖g_ae-ls − g*‖ < ‖g_ae-lasso − g*‖ ≈ ‖g_dec − g*‖, paired over instances
II.3c     at D = D* (g* = 0): log-log slope of ‖g‖ against λ is 1 for g_dec and         rate
          g_ae-lasso and 2 for g_ae-ls (each within ± 0.25)
II.3d     gradient-descent dictionary learning with g_ae-ls ends closer to D* than    ordering
          with g_ae-lasso and with g_dec (paired log ratios at the last step)
========  ==========================================================================  ==========

Decisions with several parts combine them by intersection–union (:func:`all_of`): PASS needs
every part to PASS (p = max p, a level-α test of the conjunction), FAIL when some part FAILS.

Negative controls. II.3a: a detached-wrong estimator — the gradient reported as g_ae-lasso is
g_ae-ls (it never reaches ĝ). II.3b: the labels of g_ae-ls and g_ae-lasso are swapped. II.3c: the
encoder has no threshold (:class:`udl.NoThreshold`): its codes ignore λ, no λ scaling. II.3d: the
estimators are swapped (the run labelled ae-ls is trained with g_dec and vice versa). Where a
control only relabels estimators (II.3a, II.3b, II.3d) the simulation is deterministic in the
seeds, so the claim's run and its control share one computation through a small in-process cache
(:func:`_cached`); the control then costs no simulation time.

Numerics. II.3a runs in float64 whatever ``ctx.dtype`` says: it follows ‖g − ĝ‖/‖ĝ‖ down to
1e-11, which float32 (eps ≈ 1e-7) cannot resolve. The other claims use ``ctx.dtype``; their
effects (factors of 2 or more, slopes 1 apart) are far above float32 rounding.

Tables (for the figures). II.3a: ‖g − ĝ‖/‖ĝ‖ and ‖g − g*‖ against T = 1 … 150 for the three
estimators (paper Fig. 2a, both panels), with ĝ's KKT certificate. II.3b: ‖g − g*‖ against
T = 1 … 50 (the crossover). II.3c: ‖g‖ against λ at D*. II.3d: dictionary error against training
step for the three estimators (paper Fig. 2b).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from udl import core
from udl.engine import Claim, Context, FigureInput, canonical_cell, Verdict, all_of, figure, stats, when
from udl.engine import plotting as plot

__all__ = ["GradientLimit", "GradientOrdering", "LambdaScaling", "LearningNeighbourhood", "decay_rates"]

#: The estimators compared, in this order (g_dec, g_ae-lasso, g_ae-ls): the estimator kinds of udl.core.
KINDS = core.KINDS

# --------------------------------------------------------------------------- constants
#: Depths at which gradients are recorded (those ≤ the cell's deepest T, plus that T). Dense
#: early (the crossover of II.3b lies between T = 2 and 25), sparse late (geometric tail).
DEPTH_GRID = (1, 2, 3, 5, 7, 10, 15, 20, 25, 35, 50, 75, 100, 125, 150, 200, 250, 300, 350, 400)
#: II.3a: KKT tolerance of the lasso solution behind ĝ (relative violation / λ). In float64 it
#: leaves ĝ accurate to ≈ 1e-13 relative, 100× below PRECISION_FLOOR.
HAT_TOL = 1e-13
#: II.3a: relative errors ‖g − ĝ‖/‖ĝ‖ below this are not used in the geometric-rate fit: they
#: are within 100× of ĝ's own error (HAT_TOL) and of float64 rounding over n examples.
PRECISION_FLOOR = 1e-11
#: II.3a: "→ 0" is read at the deepest T as ‖g − ĝ‖/‖ĝ‖ < EPS_LIMIT, and "does not → 0" as
#: > EPS_LIMIT. 1e-3 is three decades below ‖ĝ‖ — an O(‖ĝ‖) bias (g_ae-ls: ≈ 0.5) cannot get
#: there, and the converging estimators are predicted (pilot rates ≥ 0.09 per layer from
#: T ≈ 50) to be ≥ 2 decades below it at T = 150.
EPS_LIMIT = 1e-3
#: II.3a: an error of exactly 0 (an estimator equal to ĝ to the last bit) enters the log10-level
#: tests as this value instead of −inf; it only strengthens "→ 0".
LOG_FLOOR = 1e-300
#: II.3a: fewest error values (above PRECISION_FLOOR) for a per-instance geometric-rate fit.
MIN_RATE_POINTS = 2
#: II.3b: "g_ae-lasso ≈ g_dec" means their errors to g* differ by less than 10 %: TOST of the mean
#: per-instance log ratio within ± log 1.1. At T = 50 the two are predicted to differ by
#: ≈ ‖g_dec − ĝ‖ ≈ 1 % of ‖ĝ‖ (II.3a), while the g_ae-ls gain the claim is about is ≈ 50 %.
EQUIV_MARGIN = math.log(1.1)
#: II.3c: half-width of the band around each predicted log-log slope (1 and 2). The nearest
#: competing exponents are each other's (1 vs 2) and 0 (no λ dependence, the control); ± 0.25
#: stops half-way to the midpoint. The known second-order bias is inside it: with the support
#: recovered, g_dec(λ) = λA − λ²B exactly, which lowers the fitted slope over λ ∈ [0.05, 0.2] to
#: ≈ 0.92 (pilot); g_ae-ls has no λ³ term at D* (pilot slope 2.000).
SLOPE_BAND = 0.25
#: II.3c: the predicted log-log slope of each estimator's norm at D = D* against λ (∝ λ for the
#: lasso-loss estimators, ∝ λ² for least squares).
PREDICTED_SLOPES = {"dec": 1.0, "ae-lasso": 1.0, "ae-ls": 2.0}
#: II.3d: the last fraction of training steps over which the plateau (relative change of the
#: dictionary error) is reported, so that "at the end of training" can be audited.
PLATEAU_FRACTION = 0.2
#: II.3a control: the estimator reported as g_ae-lasso is g_ae-ls (a detached-wrong estimator).
CONTROL_A = {"dec": "dec", "ae-lasso": "ae-ls", "ae-ls": "ae-ls"}
#: II.3b control: the labels of g_ae-ls and g_ae-lasso are swapped.
CONTROL_B = {"dec": "dec", "ae-lasso": "ae-ls", "ae-ls": "ae-lasso"}
#: II.3d control: the run labelled ae-ls is trained with g_dec and the run labelled dec with g_ae-ls.
CONTROL_D = {"dec": "ae-ls", "ae-lasso": "ae-lasso", "ae-ls": "dec"}
#: In-process cache of raw simulations shared by a claim and its relabelling control: entries.
CACHE_SIZE = 4

_IDENTITY = {k: k for k in KINDS}


# --------------------------------------------------------------------------- helpers

def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _fro(A: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(A)


def _tick(ctx: Context, k: int = 1) -> None:
    if ctx.progress is not None:
        ctx.progress(k)


def _instances(cell, seeds, ctx: Context, dtype=None) -> core.Instances:
    """Instances of a cell (m, p, s, n, init_scale, sign from the cell)."""
    return core.make_instances(cell.m, cell.p, cell.s, cell.n, init_scale=cell.init_scale, sign=cell.sign,
                              seed=list(seeds), dtype=ctx.dtype if dtype is None else dtype, device=ctx.device)


def _depths(T_max: int) -> list[int]:
    """The recorded depths: DEPTH_GRID up to ``T_max``, and ``T_max`` itself."""
    T_max = int(T_max)
    return sorted({T for T in DEPTH_GRID if T <= T_max} | {T_max})


def _gradient_curves(X, D, *, lam, step, depths, encoder) -> dict:
    """The three estimators at every depth: dict kind → ``(len(depths), B, m, p)``.

    Uses :func:`udl.gradient_sweep` (one forward pass, all depths) when the library has it,
    otherwise one :func:`udl.gradients` call per depth.
    """
    sweep = getattr(core, "gradient_sweep", None)
    if sweep is not None:
        return sweep(X, D, lam=lam, step=step, depths=list(depths), kinds=KINDS, encoder=encoder)
    per = [core.gradients(X, D, lam=lam, step=step, T=T, kinds=KINDS, encoder=encoder) for T in depths]
    return {k: torch.stack([g[k] for g in per]) for k in KINDS}


_CACHE: "OrderedDict[tuple, dict]" = OrderedDict()


def _cache_key(tag: str, cell, seeds, ctx: Context) -> tuple:
    """What a simulation depends on: claim, cell, seeds, device, dtype and the encoder."""
    enc = ctx.encoder
    enc_key = None if enc is None else (type(enc).__module__, type(enc).__qualname__, repr(enc))
    return (tag, canonical_cell(cell), tuple(int(s) for s in seeds), str(ctx.device), str(ctx.dtype), enc_key)


def _cached(key: tuple, compute) -> dict:
    """Return the cached raw result for ``key`` or compute and keep it (LRU of CACHE_SIZE).

    Raw results are dicts of numpy arrays and are never mutated by the callers, so a claim and
    its relabelling control (same cell, seeds, device, dtype, encoder) share one simulation.
    """
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = compute()
    _CACHE[key] = value
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def _with_detail(verdict: Verdict, **extra) -> Verdict:
    return Verdict(**{**verdict.__dict__, "detail": dict(verdict.detail, **extra)})


def _pivot(table: pd.DataFrame, value: str, at: pd.Series | None = None) -> pd.DataFrame:
    """One row per (cell, instance), one column per estimator, of ``value`` (rows ``at`` only)."""
    t = table if at is None else table[at]
    return t.pivot_table(index=["cell", "instance"], columns="estimator", values=value, aggfunc="first")


# --------------------------------------------------------------------------- gradient curves
def _simulate_curves(cell, seeds, ctx: Context, *, T_max: int, with_hat: bool, dtype) -> dict:
    """Raw gradient errors of the three estimators at the recorded depths (numpy arrays).

    Returns dict with ``depths (K,)``; per kind ``star_<k>`` = ‖g − g*‖_F, ``norm_<k>`` = ‖g‖_F and,
    with ``with_hat``, ``hat_<k>`` = ‖g − ĝ‖_F / ‖ĝ‖_F, each ``(K, B)``; per instance ``gstar_norm``,
    ``coherence``, ``init_error`` and (with ``with_hat``) ``ghat_norm``, ``gstar_hat``
    (‖ĝ − g*‖), ``kkt`` (the certificate of ĝ), ``lasso_iter``.
    """
    inst = _instances(cell, seeds, ctx, dtype=dtype)
    X, D = inst.X, inst.D0
    lam, step = cell.lam, cell.step
    depths = _depths(T_max)
    with torch.no_grad():
        g_star = core.oracle_gradient(X, D, inst.Z_star)
    out = {"depths": np.asarray(depths), "gstar_norm": _np(_fro(g_star)),
           "coherence": _np(inst.coherence), "init_error": _np(inst.init_error)}
    if with_hat:
        g_hat, sol = core.lasso_gradient(X, D, lam=lam, tol=HAT_TOL)
        out.update(ghat_norm=_np(_fro(g_hat)), gstar_hat=_np(_fro(g_hat - g_star)), kkt=_np(sol.kkt),
                   lasso_iter=np.full(len(seeds), sol.n_iter))
    curves = _gradient_curves(X, D, lam=lam, step=step, depths=depths, encoder=ctx.encoder_under_test())
    _tick(ctx)
    for k in KINDS:
        g = curves[k]
        out[f"star_{k}"] = _np(_fro(g - g_star))
        out[f"norm_{k}"] = _np(_fro(g))
        if with_hat:
            out[f"hat_{k}"] = _np(_fro(g - g_hat) / _fro(g_hat))
    return out


def _curve_table(raw: dict, labels: dict) -> pd.DataFrame:
    """Long table (instance, T, estimator) from a raw curve result; ``labels`` maps the reported
    estimator to the one actually computed (identity, or a control's relabelling)."""
    depths = raw["depths"]
    K, B = len(depths), raw["gstar_norm"].shape[0]
    frames = []
    for label in KINDS:
        src = labels[label]
        cols = {"instance": np.tile(np.arange(B), K), "T": np.repeat(depths, B),
                "estimator": label, "computed_as": src,
                "err_star": raw[f"star_{src}"].ravel(),
                "err_star_rel": (raw[f"star_{src}"] / raw["gstar_norm"][None, :]).ravel(),
                "g_norm": raw[f"norm_{src}"].ravel(),
                "gstar_norm": np.tile(raw["gstar_norm"], K)}
        if f"hat_{src}" in raw:
            cols.update(err_hat=raw[f"hat_{src}"].ravel(), ghat_norm=np.tile(raw["ghat_norm"], K),
                        ghat_gstar=np.tile(raw["gstar_hat"], K), kkt=np.tile(raw["kkt"], K),
                        lasso_iter=np.tile(raw["lasso_iter"], K), hat_tol=HAT_TOL)
        cols.update(coherence=np.tile(raw["coherence"], K), init_error=np.tile(raw["init_error"], K))
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


def decay_rates(table: pd.DataFrame, *, value: str = "err_hat", start_col: str = "rate_from") -> pd.DataFrame:
    """Per-layer log-rate r of ``value`` (≈ C·e^{rT}) per (cell, instance, estimator) (II.3a).

    OLS of log value on T over the depths T ≥ ``start_col`` whose value exceeds
    :data:`PRECISION_FLOOR`; when fewer than :data:`MIN_RATE_POINTS` remain (the estimator reached
    the floor early), the last MIN_RATE_POINTS depths above the floor are used. r < 0 is decay;
    r = NaN when not even that many points exist.

    Returns
    -------
    pandas.DataFrame with columns cell, instance, estimator, rate, points.
    """
    rows = []
    for (c, i, e), g in table.sort_values("T").groupby(["cell", "instance", "estimator"], sort=True):
        T = g["T"].to_numpy(float)
        v = g[value].to_numpy(float)
        ok = np.isfinite(v) & (v > PRECISION_FLOOR)
        use = ok & (T >= float(g[start_col].iloc[0]))
        if use.sum() < MIN_RATE_POINTS:
            use = np.zeros_like(ok)
            use[np.flatnonzero(ok)[-MIN_RATE_POINTS:]] = True
        rate = float(np.polyfit(T[use], np.log(v[use]), 1)[0]) if use.sum() >= MIN_RATE_POINTS else math.nan
        rows.append((c, i, e, rate, int(use.sum())))
    return pd.DataFrame(rows, columns=["cell", "instance", "estimator", "rate", "points"])


# --------------------------------------------------------------------------- II.3a
@dataclass(frozen=True)
class GradientLimitCell:
    """A cell of II.3a: sizes m, p, s; D⁽⁰⁾ distance c (init_scale); sign pattern; λ; step α; n examples;
    deepest T (T_max); the rate fit uses T ≥ rate_from."""

    m: int
    p: int
    s: int
    init_scale: float
    sign: str
    lam: float
    step: float
    n: int
    T_max: int
    rate_from: int


_A = GradientLimitCell(m=100, p=150, s=5, init_scale=0.02, sign="independent", lam=0.2, step=0.2, n=100, T_max=150,
                       rate_from=100)


class GradientLimit(Claim):
    """II.3a — g_dec and g_ae-lasso converge to ĝ (g_ae-lasso faster); g_ae-ls does not."""

    id = "II.3a"
    theorem = "II.3"
    title = "g_dec, g_ae-lasso → ĝ as T grows (g_ae-lasso faster); g_ae-ls does not"
    statement = (
        "At a close dictionary D = D⁽⁰⁾ (c = 0.02), with ĝ = (DẐ − X)Ẑᵀ/n at a certified lasso solution "
        "Ẑ (relative KKT violation ≤ 1e-13, recorded per instance), the relative errors ‖g_T − ĝ‖/‖ĝ‖ of "
        "g_dec and g_ae-lasso decay geometrically in T and fall below 1e-3 by T_max, and g_ae-lasso "
        "decays faster: the ratio of the fitted per-layer log-rates, r_ae-lasso/r_dec, exceeds 1 (once "
        "the support is fixed autodiff through ISTA is 'super-efficient', predicted ratio ≈ 2). "
        "‖g_ae-ls − ĝ‖/‖ĝ‖ stays above 1e-3: it converges to the gradient of the least-squares loss at "
        "Ẑ, which differs from ĝ by the λ-term. Parts (all must pass, t tests over instances): mean "
        "log10 error at T_max < −3 for dec and ae-lasso, > −3 for ae-ls; mean r_dec < 0; mean "
        "rate ratio > 1.")
    kind = "rate"
    effect = (
        "Pilot (root seed 12345, ci sizes, 10 instances): rate ratio r_ae-lasso/r_dec over T ∈ [100, "
        "150] 1.34–2.09 (mean 1.87, sd 0.20; one instance's support still moving at T = 100); log10 "
        "‖g − ĝ‖/‖ĝ‖ at T = 150: −6.71 (sd 0.42) for dec, −11.2 (sd 0.75) for ae-lasso, −0.287 (sd "
        "0.003) for ae-ls, against −3. Weakest parts, designed at twice the pilot sd: ratio effect 0.87 "
        "at sd 0.4 → t_test_n(0.87, 0.4, α = 6e-4 [Holm worst case], β = 0.05) = 11; dec level effect "
        "3.5 at sd 0.85 → 7. 12 instances are used (quick: 5, where the pilot effects give t > 10).")
    regime = (
        "m = 100, p = 150, s = 5 (μ ≈ 0.38, the incoherent regime of THEOREMS.md), n = 100 examples, "
        "independent signs, c = 0.02 (relative dictionary error ≈ 0.2), α = λ = 0.2, T = 1 … 150, "
        "float64. The rate is fitted over T ∈ [100, 150], where every example's support is fixed "
        "(pilot: the ratio is ≈ 1.3 before T ≈ 75 and settles at ≈ 1.9–2.0 after T ≈ 100). n only "
        "decides which example converges slowest (the statement is for fixed X, D). The paper's "
        "gradient setting (m = 50, p = 100, μ ≈ 0.54) converges ~3× slower (ratio ≈ 2 only after "
        "T ≈ 200): used in the paper profile with T_max = 400.")
    control = (
        "A detached-wrong estimator: the gradient reported as g_ae-lasso is g_ae-ls. It stays at "
        "‖g − ĝ‖/‖ĝ‖ ≈ 0.5 and its rate is ≈ 0, so 'g_ae-lasso → ĝ' and 'faster' FAIL. Must FAIL.")
    requires = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the gradients do not converge to the lasso gradient ĝ ({statistic_name} = {statistic:.2g}): "
                "the codes do not converge to the lasso solution at this λ",
        ("FAIL", "no-threshold"):
            "the codes converge to least-squares codes, not to the lasso solution Ẑ, so the gradients stay "
            "about 100 % away from ĝ ({statistic_name} = {statistic:.2g}, needs < −3)",
        ("FAIL", "unscaled-threshold"):
            "the codes converge to the lasso solution at λ/α = 5λ, not at λ, so the gradients do not reach ĝ "
            "({statistic_name} = {statistic:.2g}, needs < −3)",
    }
    Cell = GradientLimitCell
    schema = {"T": "int", "estimator": "str", "computed_as": "str", "err_star": "float", "err_star_rel": "float",
              "g_norm": "float", "gstar_norm": "float", "err_hat": "float", "ghat_norm": "float",
              "ghat_gstar": "float", "kkt": "float", "lasso_iter": "int", "hat_tol": "float", "coherence": "float",
              "init_error": "float"}
    profiles = {
        "quick": {"cells": [replace(_A, n=30, T_max=150, rate_from=100)], "n_instances": 5},
        "ci": {"cells": [replace(_A, n=100, T_max=150, rate_from=100)], "n_instances": 12},
        "paper": {"cells": [replace(_A, m=50, p=100, n=10000, sign=sign, T_max=400, rate_from=250)
                            for sign in ("independent", "shared")], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Long table (instance, T, estimator) of ‖g − ĝ‖/‖ĝ‖ and ‖g − g*‖ at T ≤ T_max (float64)."""
        raw = _cached(_cache_key(self.id, cell, seeds, ctx),
                      lambda: _simulate_curves(cell, seeds, ctx, T_max=cell.T_max, with_hat=True,
                                               dtype=torch.float64))
        return _curve_table(raw, CONTROL_A if ctx.control else _IDENTITY)

    def decide(self, table):
        """t tests of the log10 errors at T_max against log10 EPS_LIMIT and of the rate ratio > 1."""
        last = table["T"] == table["T_max"]
        err = np.log10(_pivot(table, "err_hat", last).clip(lower=LOG_FLOOR))
        rates = decay_rates(table).pivot_table(index=["cell", "instance"], columns="estimator", values="rate")
        ratio = rates["ae-lasso"] / rates["dec"]
        level = math.log10(EPS_LIMIT)
        parts = {
            "dec → ĝ": stats.mean_test(err["dec"], threshold=level, side="less", alpha=self.alpha,
                                       name="mean log10 ‖g_dec − ĝ‖/‖ĝ‖ at T_max"),
            "ae-lasso → ĝ": stats.mean_test(err["ae-lasso"], threshold=level, side="less", alpha=self.alpha,
                                            name="mean log10 ‖g_ae-lasso − ĝ‖/‖ĝ‖ at T_max"),
            "ae-ls ↛ ĝ": stats.mean_test(err["ae-ls"], threshold=level, side="greater", alpha=self.alpha,
                                         name="mean log10 ‖g_ae-ls − ĝ‖/‖ĝ‖ at T_max"),
            "dec decays": stats.mean_test(rates["dec"], threshold=0.0, side="less", alpha=self.alpha,
                                          name="per-layer log-rate r_dec"),
            "ae-lasso faster": stats.mean_test(ratio, threshold=1.0, side="greater", alpha=self.alpha,
                                               name="rate ratio r_ae-lasso / r_dec"),
        }
        verdict = all_of(parts, n=len(err), alpha=self.alpha, primary="ae-lasso faster")
        curve = table.groupby(["estimator", "T"])["err_hat"].median()
        return _with_detail(
            verdict,
            rate_median={k: float(rates[k].median()) for k in KINDS},
            rate_ratio_median=float(ratio.median()),
            err_at_T_max_median={k: float(10 ** err[k].median()) for k in KINDS},
            kkt_max=float(table["kkt"].max()),
            ghat_vs_gstar_rel_median=float((table["ghat_gstar"] / table["gstar_norm"]).median()),
            err_hat_median_by_T={k: {str(int(T)): float(v) for T, v in curve[k].items()} for k in KINDS})

    # ------------------------------------------------------------------ figures
    @figure("gradient-error-vs-T",
            "Paper Fig. 2a over instances: the three gradient estimators against ĝ (the gradient at a "
            "certified lasso solution; left, relative error, log scale) and against the desired "
            "direction g* (right, ‖g_T − g*‖_F/‖g*‖_F) as the number of layers T grows. Median and "
            f"10–90 % band over instances. Left, dashed: the {plot.power_of_ten(EPS_LIMIT)} level the claim "
            "reads as '→ 0'. Right, dashed: ‖ĝ − g*‖/‖g*‖, the limit of g_dec and g_ae-lasso.")
    def draw_errors(self, fi: FigureInput):
        """Relative errors to ĝ (left, with EPS_LIMIT) and to g* (right) against T, per estimator."""
        t = fi.table
        fi.need("T", "estimator", "err_hat")
        fig, (a, b) = plot.new_figure(2)
        plot.by_estimator(a, t, "T", "err_hat")
        a.axhline(EPS_LIMIT, color="0.3", linestyle="--", linewidth=1,
                  label=f"{plot.power_of_ten(EPS_LIMIT)} ('→ 0')")
        a.set_yscale("log")
        a.set_xlabel("layers T")
        a.set_ylabel(r"$\|g_T - \hat g\|_F / \|\hat g\|_F$")
        a.set_title(r"against $\hat g$ (lasso solution)")
        plot.legend(a, title=plot.band_note(plot.instances_of(t[t["estimator"] == t["estimator"].iloc[0]])),
                    title_fontsize=8, loc="lower left")
        if "err_star_rel" in t.columns or {"err_star", "gstar_norm"} <= set(t.columns):
            if "err_star_rel" not in t.columns:
                t = t.assign(err_star_rel=t["err_star"] / t["gstar_norm"])
            plot.by_estimator(b, t, "T", "err_star_rel")
            if {"ghat_gstar", "gstar_norm"} <= set(t.columns):
                level = float((t["ghat_gstar"] / t["gstar_norm"]).median())
                b.axhline(level, color="0.3", linestyle="--", linewidth=1, label=r"$\|\hat g - g^*\|/\|g^*\|$")
            b.set_yscale("log")
            b.set_xlabel("layers T")
            b.set_ylabel(r"$\|g_T - g^*\|_F / \|g^*\|_F$")
            b.set_title(r"against $g^*$ (true codes)")
            plot.legend(b, loc="upper right")
        else:
            b.set_visible(False)
        return fig


# --------------------------------------------------------------------------- II.3b
@dataclass(frozen=True)
class GradientOrderingCell:
    """A cell of II.3b: sizes m, p, s; D⁽⁰⁾ distance c (init_scale); sign pattern; λ; step α; n examples;
    the depth T_decide at which the ordering is decided."""

    m: int
    p: int
    s: int
    init_scale: float
    sign: str
    lam: float
    step: float
    n: int
    T_decide: int


_B = GradientOrderingCell(m=100, p=150, s=5, init_scale=0.02, sign="independent", lam=0.2, step=0.2, n=200,
                          T_decide=50)


class GradientOrdering(Claim):
    """II.3b — past the crossover, g_ae-ls is closer to g* than g_ae-lasso ≈ g_dec."""

    id = "II.3b"
    theorem = "II.3"
    title = "‖g_ae-ls − g*‖ < ‖g_ae-lasso − g*‖ ≈ ‖g_dec − g*‖ at T = 50"
    statement = (
        "At a close dictionary (c = 0.02) and a depth T = 50 fixed in advance — twice the crossover "
        "T ≈ 25 that THEOREMS.md predicts at α = 0.2 — g_ae-ls is the better estimate of the desired "
        "direction g* = (DZ* − X)Z*ᵀ/n: ‖g_ae-ls − g*‖ < ‖g_ae-lasso − g*‖ and ‖g_ae-ls − g*‖ < "
        "‖g_dec − g*‖ on most instances (paired one-sided sign tests), while g_ae-lasso and g_dec "
        "are equally far from g* (TOST: mean log ratio within ± log 1.1). The table holds the curves "
        "T = 1 … 50, which show the crossover (at small T the order reverses).")
    kind = "ordering"
    effect = (
        "Pilot (root seed 12345, ci sizes, 16 instances): at T = 50 ‖g_ae-ls − g*‖/‖g_ae-lasso − g*‖ = "
        "0.47–0.52 on every instance, ‖g_ae-lasso − g*‖/‖g_dec − g*‖ = 0.996 (log ratio sd 4e-4). "
        "Design for a win rate ≥ 0.99: sign_test_n(0.99, α = 6e-4 [Holm worst case], β = 0.05) = 15 "
        "pairs; 16 are used (15 of 16 wins give p = 2.6e-4). The TOST part has effect log 1.1 − 0.004 "
        "at sd ≤ 0.01: any n ≥ 3 suffices. quick: 12 instances (12/12 wins give p = 2.4e-4).")
    regime = (
        "m = 100, p = 150, s = 5 (μ ≈ 0.38), n = 200 examples, independent signs (the theory's "
        "zero-mean codes), c = 0.02, α = λ = 0.2, curves at T = 1 … 50, decision at T = 50. In this "
        "regime the crossover comes earlier than THEOREMS.md's ≈ 25: g_ae-ls is behind g_ae-lasso at "
        "T ≤ 3 and ahead from T = 5 on every pilot instance (also at m = 50, p = 100, n = 500); the "
        "decision depth was fixed from THEOREMS.md's prediction and is past both. The "
        "paper's own setting (m = 50, p = 100, n = 10 000, shared signs, which break the zero-mean "
        "assumption and inflate g_dec's bias) is the paper profile, with independent signs beside it.")
    control = (
        "The labels of g_ae-ls and g_ae-lasso are swapped: the 'g_ae-ls' errors are then larger than "
        "the 'g_ae-lasso' ones on every instance and the 'g_ae-lasso' ≈ g_dec part breaks. Must FAIL.")
    requires = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": when("ae-lasso ≈ dec",
                     "g_ae-lasso is no longer ≈ g_dec (mean log(‖g_ae-lasso − g*‖/‖g_dec − g*‖) = {statistic:.2g}, "
                     "needs ≈ 0): Danskin's equivalence needs Z_T to be the lasso minimiser at the loss's λ, "
                     "which these codes are not"),
    }
    Cell = GradientOrderingCell
    schema = {"T": "int", "estimator": "str", "computed_as": "str", "err_star": "float", "err_star_rel": "float",
              "g_norm": "float", "gstar_norm": "float", "coherence": "float", "init_error": "float"}
    profiles = {
        "quick": {"cells": [replace(_B, n=50, T_decide=50)], "n_instances": 12},
        "ci": {"cells": [replace(_B, n=200, T_decide=50)], "n_instances": 16},
        "paper": {"cells": [replace(_B, m=50, p=100, n=10000, sign=sign, T_decide=50)
                            for sign in ("independent", "shared")], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Long table (instance, T, estimator) of ‖g − g*‖ at T = 1 … T_decide."""
        raw = _cached(_cache_key(self.id, cell, seeds, ctx),
                      lambda: _simulate_curves(cell, seeds, ctx, T_max=cell.T_decide, with_hat=False,
                                               dtype=ctx.dtype))
        return _curve_table(raw, CONTROL_B if ctx.control else _IDENTITY)

    def decide(self, table):
        """Sign tests of the two orderings and TOST of ae-lasso ≈ dec, at T = T_decide."""
        at = table["T"] == table["T_decide"]
        e = _pivot(table, "err_star", at)
        parts = {
            "ae-ls < ae-lasso": stats.sign_test(e["ae-lasso"] - e["ae-ls"], side="greater", alpha=self.alpha,
                                                name="win rate of g_ae-ls over g_ae-lasso"),
            "ae-ls < dec": stats.sign_test(e["dec"] - e["ae-ls"], side="greater", alpha=self.alpha,
                                           name="win rate of g_ae-ls over g_dec"),
            "ae-lasso ≈ dec": stats.mean_test(np.log(e["ae-lasso"] / e["dec"]), threshold=0.0, side="equal",
                                              margin=EQUIV_MARGIN, alpha=self.alpha,
                                              name="mean log(‖g_ae-lasso − g*‖/‖g_dec − g*‖)"),
        }
        verdict = all_of(parts, n=len(e), alpha=self.alpha, primary="ae-ls < ae-lasso")
        # crossover: per instance, the first recorded T from which g_ae-ls stays ahead of g_ae-lasso
        wide = table.pivot_table(index=["cell", "instance", "T"], columns="estimator", values="err_star")
        ahead = (wide["ae-ls"] < wide["ae-lasso"]).rename("ahead").reset_index()
        cross = []
        for _, g in ahead.sort_values("T").groupby(["cell", "instance"]):
            behind = np.flatnonzero(~g["ahead"].to_numpy())
            T = g["T"].to_numpy()
            cross.append(float(T[0]) if behind.size == 0 else
                         float(T[behind[-1] + 1]) if behind[-1] + 1 < len(T) else math.inf)
        curve = table.groupby(["estimator", "T"])["err_star"].median()
        return _with_detail(
            verdict,
            ratio_ls_over_lasso_median=float((e["ae-ls"] / e["ae-lasso"]).median()),
            ratio_lasso_over_dec_median=float((e["ae-lasso"] / e["dec"]).median()),
            crossover_T_median=float(np.median(cross)), crossover_T_max=float(np.max(cross)),
            err_star_median_by_T={k: {str(int(T)): float(v) for T, v in curve[k].items()} for k in KINDS})

    # ------------------------------------------------------------------ figures
    @figure("gradient-error-vs-g-star",
            "Distance of the three estimators to the desired direction g* against T (log-log; median "
            "and 10–90 % band over instances): g_ae-ls overtakes g_ae-lasso ≈ g_dec after a few layers "
            "(the crossover); the dashed line marks the decision depth.")
    def draw_ordering(self, fi: FigureInput):
        """Relative error to g* against T per estimator, with the decision depth."""
        t = fi.table
        fi.need("T", "estimator")
        if "err_star_rel" not in t.columns:
            fi.need("err_star", "gstar_norm")
            t = t.assign(err_star_rel=t["err_star"] / t["gstar_norm"])
        fig, (a,) = plot.new_figure(1, width=6.0, height=4.2)
        plot.by_estimator(a, t, "T", "err_star_rel")
        T_decide = plot.cell_value(t, "T_decide")
        if T_decide is not None:
            a.axvline(float(T_decide), color="0.3", linestyle="--", linewidth=1,
                      label=f"decision at T = {T_decide:g}")
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("layers T")
        a.set_ylabel(r"$\|g_T - g^*\|_F / \|g^*\|_F$")
        a.set_title(r"$g_{\mathrm{ae}\text{-}\mathrm{ls}}$ is the closest to $g^*$ past the crossover")
        plot.legend(a, title=plot.band_note(plot.instances_of(t[t["estimator"] == t["estimator"].iloc[0]])),
                    title_fontsize=8)
        return fig


# --------------------------------------------------------------------------- II.3c
@dataclass(frozen=True)
class LambdaScalingCell:
    """A cell of II.3c: sizes m, p, s; step α; n examples; λ grid (n_lam values from lam_lo to lam_hi); T layers;
    D⁽⁰⁾ distance c (init_scale; the claim evaluates at D*) and sign pattern of the codes."""

    m: int
    p: int
    s: int
    step: float
    n: int
    lam_lo: float
    lam_hi: float
    n_lam: int
    T: int
    init_scale: float = 0.0
    sign: str = "independent"


_C = LambdaScalingCell(m=100, p=150, s=5, step=0.2, n=100, lam_lo=0.05, lam_hi=0.2, n_lam=3, T=150)


class LambdaScaling(Claim):
    """II.3c — at D = D*, ‖g_dec‖, ‖g_ae-lasso‖ ∝ λ and ‖g_ae-ls‖ ∝ λ²."""

    id = "II.3c"
    theorem = "II.3"
    title = "at D = D*: ‖g_dec‖, ‖g_ae-lasso‖ ∝ λ and ‖g_ae-ls‖ ∝ λ²"
    statement = (
        "At D = D* with exact data (so g* = 0), after T layers with the encoder converged, the "
        "per-instance log-log slope of ‖g‖_F against λ over a λ sweep is 1 for g_dec and g_ae-lasso "
        "and 2 for g_ae-ls: each mean slope lies within its prediction ± 0.25 (TOST). This is the "
        "λ√s term that is in the lasso bound and absent from the least-squares one. Theory: with the "
        "support recovered, ẑ = z* − λ(D_SᵀD_S)⁻¹sign(z*_S), so g_dec = −λD_SG⁻¹s z*ᵀ/n + O(λ²), while "
        "the residual of ae-ls is λD_SG⁻¹s ∈ span(D_S) and its first-order variation is orthogonal to "
        "that span, leaving O(λ²).")
    kind = "rate"
    effect = (
        "Pilot (root seed 12345, 8–10 instances, λ ∈ [0.05, 0.2], T = 150): slopes 0.919 ± 0.0014 (dec, "
        "ae-lasso) and 2.0000 ± 1e-5 (ae-ls); at T = 100 the ae-ls slope is 1.91 ± 0.06 (the encoder is "
        "not yet converged at λ = 0.05). Smallest distance to a band edge: 0.17 (dec), designed at sd "
        "0.06 (the T = 100 spread, 40× the T = 150 one): t_test_n(0.17, 0.06, α = 6e-4 [Holm worst "
        "case], β = 0.05) = 8; 8 are used (quick: 5, λ ∈ {0.1, 0.2}: pilot slopes 0.89 and 2.00, t > 50).")
    regime = (
        "m = 100, p = 150, s = 5 (μ ≈ 0.38), n = 100 examples, D = D*, noiseless X, α = 0.2, λ ∈ "
        "{0.05, 0.1, 0.2}, T = 150 layers (every pilot local slope at its limit). Small λ keeps the "
        "second-order term small (at λ = 0.4 the local dec slope drops to 0.75) and the support "
        "recovered; smaller λ would need many more layers. quick: λ ∈ {0.1, 0.2}, T = 100, n = 50.")
    control = (
        "udl.NoThreshold (Landweber iteration): the codes ignore λ and converge to the minimum-norm "
        "least-squares solution, so ‖g_dec‖ and ‖g_ae-ls‖ do not depend on λ (slope 0). Must FAIL.")
    requires = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the gradient norms at D* no longer scale as λ (dec, ae-lasso) and λ² (ae-ls) "
                "({statistic_name} = {statistic:.2g})",
        ("FAIL", "no-threshold"):
            "without a threshold the codes ignore λ, so ‖g_dec‖ at D* does not scale with λ (log-log slope "
            "{statistic:.2g}, needs 1 ± 0.25)",
        ("FAIL", "unscaled-threshold"):
            "the codes are lasso codes at 5λ, which lose true entries at the larger λ: ‖g_dec‖ at D* no longer "
            "scales as λ (log-log slope {statistic:.2g}, needs 1 ± 0.25)",
    }
    Cell = LambdaScalingCell
    schema = {"lam": "float", "estimator": "str", "g_norm": "float", "gstar_norm": "float", "support_rate": "float",
              "coherence": "float"}
    profiles = {
        "quick": {"cells": [replace(_C, n=50, lam_lo=0.1, lam_hi=0.2, n_lam=2, T=100)], "n_instances": 5},
        "ci": {"cells": [replace(_C, n=100, lam_lo=0.05, lam_hi=0.2, n_lam=3, T=150)], "n_instances": 8},
        "paper": {"cells": [replace(_C, n=2000, lam_lo=0.025, lam_hi=0.2, n_lam=7, T=400)], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """‖g‖ per (instance, λ, estimator) at D = D*."""
        inst = _instances(cell, seeds, ctx)
        encoder = core.NoThreshold() if ctx.control else ctx.encoder_under_test()
        X, D = inst.X, inst.D_star
        with torch.no_grad():
            gstar = _np(_fro(core.oracle_gradient(X, D, inst.Z_star)))
        frames = []
        for lam in np.geomspace(cell.lam_lo, cell.lam_hi, cell.n_lam):
            g, Z_T = core.gradients(X, D, lam=float(lam), step=cell.step, T=cell.T,
                                   kinds=KINDS, encoder=encoder, return_code=True)
            support = _np(core.support_recovery(Z_T, inst.Z_star))
            _tick(ctx)
            for k in KINDS:
                frames.append(pd.DataFrame({
                    "instance": np.arange(len(seeds)), "lam": float(lam), "estimator": k,
                    "g_norm": _np(_fro(g[k])), "gstar_norm": gstar, "support_rate": support,
                    "coherence": _np(inst.coherence)}))
        return pd.concat(frames, ignore_index=True)

    def decide(self, table):
        """TOST of the mean per-instance log-log slope: 1 ± band (dec, ae-lasso), 2 ± band (ae-ls)."""
        t = table.assign(log_lam=np.log(table["lam"]), log_g=np.log(table["g_norm"]))
        predicted = PREDICTED_SLOPES
        parts, slopes = {}, {}
        for k, target in predicted.items():
            s = stats.group_slopes(t[t["estimator"] == k], "log_lam", "log_g", by=["cell", "instance"])
            slopes[k] = s
            parts[f"{k} ∝ λ^{target:g}"] = stats.mean_test(
                s, threshold=target, margin=SLOPE_BAND, side="equal", alpha=self.alpha,
                name=f"log-log slope of ‖g_{k}‖ vs λ")
        verdict = all_of(parts, n=len(slopes["dec"]), alpha=self.alpha, primary="ae-ls ∝ λ^2")
        return _with_detail(
            verdict,
            slope_mean={k: float(s.mean()) for k, s in slopes.items()},
            slope_sd={k: float(s.std(ddof=1)) if len(s) > 1 else 0.0 for k, s in slopes.items()},
            gstar_norm_max=float(table["gstar_norm"].max()),
            support_rate_min=float(table["support_rate"].min()))

    # ------------------------------------------------------------------ figures
    @figure("gradient-norm-vs-lambda",
            "Gradient norms at D = D* (where g* = 0) against λ on log-log axes: median and 10–90 % band "
            f"over instances for each estimator, with the predicted slopes {PREDICTED_SLOPES['dec']:g} "
            f"(g_dec, g_ae-lasso) and {PREDICTED_SLOPES['ae-ls']:g} (g_ae-ls) as dotted references; the "
            "legend gives the stored mean per-instance slopes.")
    def draw_norms(self, fi: FigureInput):
        """Gradient norm against λ per estimator, with the predicted slopes and the stored ones."""
        t = fi.table
        fi.need("lam", "estimator", "g_norm")
        fig, (a,) = plot.new_figure(1, width=8.4, height=4.4)
        slopes = (fi.record.get("detail") or {}).get("slope_mean") or {}
        present = [k for k in plot.ESTIMATORS if k in set(t["estimator"])]
        meds = {}
        for k in present:
            label = plot.ESTIMATOR_LABEL[k] + (f" (stored slope {float(slopes[k]):.3f})" if k in slopes else "")
            meds[k] = plot.band(a, t[t["estimator"] == k], "lam", "g_norm", colour=plot.estimator_colour(k),
                                label=label, marker="o", positive=True, linestyle=plot.ESTIMATOR_STYLE[k])
        lam = np.array(sorted(pd.unique(plot.finite(t, "lam", positive=True)["lam"])), float)
        if len(lam) >= 2:
            for k, style in (("dec", ":"), ("ae-ls", "-.")):
                slope = PREDICTED_SLOPES[k]
                if k in meds and len(meds[k]):
                    x0 = float(meds[k].index[0])
                    y0 = float(meds[k]["med"].iloc[0]) * 0.7   # offset below the median it predicts
                    power = {1.0: "", 2.0: "²"}.get(slope, f"^{slope:g}")
                    plot.ref_line(a, lam, slope, x0, y0, label=f"prediction: slope {slope:g} (∝ λ{power})",
                                  linestyle=style)
        a.set_xscale("log")
        a.set_yscale("log")
        if len(lam):
            plot.data_ticks(a.xaxis, lam)
        a.set_xlabel("λ (sparsity weight)")
        a.set_ylabel(r"$\|g\|_F$ at $D = D^*$")
        a.set_title("bias at D = D*: ∝ λ (lasso loss), ∝ λ² (least squares)")
        plot.legend(a, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                    title=plot.band_note(plot.instances_of(t[t["estimator"] == present[0]])) if present else None,
                    title_fontsize=8)
        return fig


# --------------------------------------------------------------------------- II.3d
@dataclass(frozen=True)
class LearningNeighbourhoodCell:
    """A cell of II.3d: sizes m, p, s; D⁽⁰⁾ distance c (init_scale); sign pattern; λ; step α; optimizer
    ("gd" or "adam"); n examples; T layers; learning rate lr; n_steps of learning."""

    m: int
    p: int
    s: int
    init_scale: float
    sign: str
    lam: float
    step: float
    optimizer: str
    n: int
    T: int
    lr: float
    n_steps: int


_D = LearningNeighbourhoodCell(m=40, p=60, s=3, init_scale=0.02, sign="independent", lam=0.2, step=0.2,
                               optimizer="gd", n=400, T=30, lr=5.0, n_steps=30)


def _simulate_training(cell, seeds, ctx: Context) -> dict:
    """Dictionary-error trajectories of gradient-descent learning with each estimator."""
    inst = _instances(cell, seeds, ctx)
    out = {"coherence": _np(inst.coherence), "init_error": _np(inst.init_error)}
    for k in KINDS:
        tr = core.train(inst.X, inst.D0, kind=k, lam=cell.lam, step=cell.step, T=cell.T, lr=cell.lr,
                       n_steps=cell.n_steps, optimizer=cell.optimizer, normalize=True, D_star=inst.D_star,
                       encoder=ctx.encoder_under_test(), record_every=1)
        out["steps"] = _np(tr.steps)
        out[f"err_{k}"] = _np(tr.dict_error)             # (L, B)
        out[f"errmax_{k}"] = _np(tr.dict_error_max)
        out[f"loss_{k}"] = _np(tr.loss)
        _tick(ctx)
    return out


class LearningNeighbourhood(Claim):
    """II.3d — learning with g_ae-ls ends closer to D* than with g_ae-lasso and g_dec."""

    id = "II.3d"
    theorem = "II.3"
    title = "dictionary learning with g_ae-ls ends closer to D* than with g_ae-lasso or g_dec"
    statement = (
        "From the same close start D⁽⁰⁾ (c = 0.02) and data, gradient descent with column "
        "normalisation, D ← normalise(D − ηg), at the same step η = p/(4s) for the three estimators, "
        "ends closer to D* with g_ae-ls than with g_ae-lasso and than with g_dec: at the last step the "
        "per-instance log ratios log(e_ae-ls/e_ae-lasso) and log(e_ae-ls/e_dec) of the relative "
        "dictionary errors e = ‖D − D*‖_F/‖D*‖_F have negative mean (paired one-sided t tests). The "
        "fixed point of g_dec lies at distance ∝ λ (the λ√s bias); that of g_ae-ls at O(λ²).")
    kind = "ordering"
    effect = (
        "Pilot (root seed 12345, ci sizes, 10 instances): final errors 0.068 (dec), 0.063 (ae-lasso), "
        "0.033 (ae-ls); log(e_ae-ls/e_ae-lasso) = −0.65 (sd 0.044), log(e_ae-ls/e_dec) = −0.73 (sd "
        "0.037); ae-ls closer on every instance. Design for an effect of −0.3 at sd 0.1 (under half "
        "the effect, over twice the sd): t_test_n(0.3, 0.1, α = 6e-4 [Holm worst case], β = 0.05) = 8; "
        "10 instances are used (quick: 5, where the pilot effect gives t > 20).")
    regime = (
        "m = 40, p = 60, s = 3 (μ ≈ 0.54), n = 400 examples (≈ 20 per atom, so that the λ-bias and not "
        "the finite sample sets the fixed points: at n = 200 with p = 150 g_dec drifts without a "
        "plateau), independent signs, c = 0.02 (relative error ≈ 0.12), α = λ = 0.2, T = 30 layers, "
        "full-batch gradient descent with η = p/(4s) = 5 (the step of II.2), 30 steps. The sizes are "
        "smaller than II.3a–c so that three training runs per instance fit the CPU budget. The pilot "
        "curves plateau by step ≈ 10 (ae-ls) and ≈ 24 (dec): the comparison at step 30 is at the end "
        "of training; the table has every step (Fig. 2b) and the decision reports the change over the "
        "last 20 % of steps. Early on g_ae-ls is not slower here (at η = p/(4s) it contracts as fast as "
        "g_dec). Paper profile: the paper's learning setting (m = 50, p = 100, s = 5, n = 10 000, "
        "c = 0.1, shared signs, Adam lr 1e-3, 600 steps, T ∈ {25, 50, 100}). quick: n = 200, T = 25, "
        "12 steps — a smoke test that ends before g_dec's plateau (its error is already past its "
        "minimum and rising towards it).")
    control = (
        "Swapped estimators: the run labelled ae-ls is trained with g_dec and the run labelled dec "
        "with g_ae-ls; 'ae-ls' then ends farther from D* than 'dec' on every instance. Must FAIL.")
    requires = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": when("e_ae-ls / e_dec",
                     "learning with g_ae-ls no longer ends closer to D* than with g_dec (mean log(e_ae-ls/e_dec) "
                     "= {statistic:.2g}, needs < 0): the ordering rests on g_dec's O(λ) bias from a fixed soft "
                     "threshold, which decaying or learned thresholds shrink"),
    }
    Cell = LearningNeighbourhoodCell
    schema = {"step_index": "int", "estimator": "str", "computed_as": "str", "dict_error": "float",
              "dict_error_max": "float", "loss": "float", "coherence": "float", "init_error": "float"}
    profiles = {
        "quick": {"cells": [replace(_D, n=200, T=25, lr=5.0, n_steps=12)], "n_instances": 5},
        "ci": {"cells": [replace(_D, n=400, T=30, lr=5.0, n_steps=30)], "n_instances": 10},
        "paper": {"cells": [replace(_D, m=50, p=100, s=5, n=10000, init_scale=0.1, sign="shared", T=T, lr=1e-3,
                                 n_steps=600, optimizer="adam") for T in (25, 50, 100)], "n_instances": 20},
    }

    def simulate(self, cell, seeds, ctx):
        """Long table (instance, step, estimator) of the dictionary error during training."""
        raw = _cached(_cache_key(self.id, cell, seeds, ctx), lambda: _simulate_training(cell, seeds, ctx))
        labels = CONTROL_D if ctx.control else _IDENTITY
        steps = raw["steps"]
        L, B = raw[f"err_{KINDS[0]}"].shape
        frames = []
        for label in KINDS:
            src = labels[label]
            frames.append(pd.DataFrame({
                "instance": np.tile(np.arange(B), L), "step_index": np.repeat(steps, B).astype(int),
                "estimator": label, "computed_as": src,
                "dict_error": raw[f"err_{src}"].ravel(), "dict_error_max": raw[f"errmax_{src}"].ravel(),
                "loss": raw[f"loss_{src}"].ravel(),
                "coherence": np.tile(raw["coherence"], L), "init_error": np.tile(raw["init_error"], L)}))
        return pd.concat(frames, ignore_index=True)

    def decide(self, table):
        """Paired one-sided t tests of the final log error ratios (ae-ls vs ae-lasso, ae-ls vs dec)."""
        last = table["step_index"] == table["n_steps"]
        e = _pivot(table, "dict_error", last)
        parts = {
            "ae-ls < ae-lasso": stats.mean_test(np.log(e["ae-ls"] / e["ae-lasso"]), threshold=0.0, side="less",
                                                alpha=self.alpha, name="mean log(e_ae-ls / e_ae-lasso) at the end"),
            "ae-ls < dec": stats.mean_test(np.log(e["ae-ls"] / e["dec"]), threshold=0.0, side="less",
                                           alpha=self.alpha, name="mean log(e_ae-ls / e_dec) at the end"),
        }
        verdict = all_of(parts, n=len(e), alpha=self.alpha, primary="ae-ls < dec")
        # plateau over the last PLATEAU_FRACTION of the steps, and the early picture
        n_steps = int(table["n_steps"].max())
        back = max(1, int(round(PLATEAU_FRACTION * n_steps)))
        earlier = _pivot(table, "dict_error", table["step_index"] == n_steps - back)
        early = _pivot(table, "dict_error", table["step_index"] == min(3, n_steps))
        curve = table.groupby(["estimator", "step_index"])["dict_error"].median()
        return _with_detail(
            verdict,
            final_error_median={k: float(e[k].median()) for k in KINDS},
            win_rate_vs_lasso=float((e["ae-ls"] < e["ae-lasso"]).mean()),
            win_rate_vs_dec=float((e["ae-ls"] < e["dec"]).mean()),
            plateau_rel_change_max={k: float(((e[k] - earlier[k]) / e[k]).abs().max()) for k in KINDS},
            error_at_step3_median={k: float(early[k].median()) for k in KINDS},
            init_error_median=float(table["init_error"].median()),
            error_median_by_step={k: {str(int(s)): float(v) for s, v in curve[k].items()} for k in KINDS})

    # ------------------------------------------------------------------ figures
    @figure("dictionary-error-vs-step",
            "Paper Fig. 2b over instances: relative dictionary error ‖D − D*‖_F/‖D*‖_F during "
            "gradient-descent learning with each estimator from the same start (median and 10–90 % "
            "band over instances, log scale).")
    def draw_learning(self, fi: FigureInput):
        """Dictionary error against the training step, per estimator."""
        t = fi.table
        fi.need("step_index", "estimator", "dict_error")
        fig, (a,) = plot.new_figure(1, width=6.0, height=4.2)
        plot.by_estimator(a, t, "step_index", "dict_error")
        a.set_yscale("log")
        a.set_xlabel("training step")
        a.set_ylabel(r"$\|D - D^*\|_F / \|D^*\|_F$")
        a.set_title(r"learning with $g_{\mathrm{ae}\text{-}\mathrm{ls}}$ ends closest to $D^*$")
        plot.legend(a, title=plot.band_note(plot.instances_of(t[t["estimator"] == t["estimator"].iloc[0]])),
                    title_fontsize=8)
        return fig
