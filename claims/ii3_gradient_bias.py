r"""Theorem II.3 — bias of the dictionary-gradient estimators of unrolled dictionary learning.

Statement (Tolooshams & Ba). g_ae-lasso is equivalent to g_dec as T → ∞ (both tend to ĝ, the
gradient of the lasso value function, by Danskin);

    ‖g_ae-lasso − g*‖ ≤ O(‖D − D*‖ + δ* + λ√s),     ‖g_ae-ls − g*‖ ≤ O(‖D − D*‖ + δ*),

so g_ae-ls is the better estimate of the desired direction g* = (D Z* − X) Z*ᵀ / n and its
training converges to a smaller neighbourhood of D*. The bounds are O-statements: for small λ
their unknown constants outweigh the λ√s term and the observed order is the opposite one, so
the orderings below hold above a crossover λ*, which the claims measure (docs/theory.md#ii3-gradient-bias).
Four claims test what this predicts:

========  ==========================================================================  ==========
claim     what is tested                                                              kind
========  ==========================================================================  ==========
II.3a     ‖g_dec − ĝ‖ and ‖g_ae-lasso − ĝ‖ → 0 geometrically in T, g_ae-lasso about    rate
          twice as fast (per-layer log-rate ratio > 1.5, between 1 — an adjoint that
          is not the full one — and the predicted 2 of autodiff's super-efficiency);
          ‖g_ae-ls − ĝ‖ stays O(‖ĝ‖); ĝ needs its KKT certificate
II.3b     over a λ sweep at a converged depth: ‖g_ae-ls − g*‖ < ‖g_ae-lasso − g*‖ ≈   ordering
          ‖g_dec − g*‖ at λ = 0.2, the ae-ls advantage grows with λ, and the order
          reverses below a crossover λ* (estimated, with an interval)
II.3c     at D = D*: the estimators equal the closed forms of the lasso path          rate
          (deterministic: g_ae-ls = λ²C and g_dec = λA − λ²C exactly); away from D*:
          the ae-ls advantage shrinks with ‖D − D*‖ (statistical); slopes 1 and 2
          in λ reported as predictions
II.3d     gradient-descent dictionary learning over a λ sweep: g_ae-ls ends closer    ordering
          to D* than g_ae-lasso and g_dec at λ = 0.2, the advantage grows with λ,
          crossover λ* estimated
========  ==========================================================================  ==========

Decisions with several parts combine them by intersection–union (:func:`all_of`): PASS needs
every part to PASS (p = max p, a level-α test of the conjunction), FAIL when some part FAILS.

Negative controls are plausible bugs of the code each claim exercises (``control_mutant``, from
:mod:`udl.engine.mutants`; docs/theory.md#negative-controls): II.3a truncated backpropagation
(the adjoint through the last 3 layers only: still → ĝ, but at g_dec's rate), II.3b and II.3d the
lean adjoint without its active-set mask, II.3c g_dec backpropagated through the codes.

Numerics. II.3a and II.3c run in float64 whatever ``ctx.dtype`` says: II.3a follows
‖g − ĝ‖/‖ĝ‖ down to 1e-11 and II.3c checks closed forms to 1e-6 after 300 layers, which float32
(eps ≈ 1e-7) cannot resolve. II.3b and II.3d use ``ctx.dtype``; their effects (factors of 1.5
or more) are far above float32 rounding.

Tables (for the figures). II.3a: ‖g − ĝ‖/‖ĝ‖ and ‖g − g*‖ against T = 1 … 150 for the three
estimators (paper Fig. 2a, both panels), with ĝ's KKT certificate. II.3b: ‖g − g*‖ per λ at the
decision depth, and against T = 1 … 50 at λ = 0.2 (the crossover in depth). II.3c: ‖g‖ and the
deviation from the closed forms against λ at D*, ‖g − g*‖ against λ and the distance away from
D*. II.3d: dictionary error against training step for the three estimators per λ (paper Fig. 2b).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from udl import core
from udl.engine import CertificateError, Claim, Context, FigureInput, Verdict, all_of, figure, stats, when
from udl.engine import plotting as plot

__all__ = ["GradientLimit", "GradientOrdering", "LambdaScaling", "LearningNeighbourhood", "crossover",
           "decay_rates", "lasso_path_gradients"]

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
#: II.3a: "g_ae-lasso converges faster" means a per-layer log-rate ratio r_ae-lasso/r_dec above
#: 1.5, the midpoint of the two values theory offers: 1 for any adjoint that is not the exact
#: one of all T layers (truncated backpropagation: the error then decays with the iterates, like
#: g_dec's) and 2 for full backpropagation once the support is fixed (the product of the
#: iterate error and the Jacobian error; PREDICTED_RATE_RATIO). Pilots (root seeds 12345 and
#: 10000, ci sizes): mean ratio 1.87 (sd 0.20) and 1.98 (sd 0.12); truncated backpropagation
#: (the truncated-backprop mutant, seed 10000): 0.998.
RATE_RATIO_THRESHOLD = 1.5
#: II.3a: the rate ratio predicted by the super-efficiency of autodiff through an iterative
#: solver on a fixed support (reported as a prediction, not decided).
PREDICTED_RATE_RATIO = 2.0
#: II.3b, II.3d: the λ at which the orderings are decided (the paper's λ, fixed before the
#: sweeps); the other λ of the sweep locate the crossover λ*.
LAMBDA_DECIDE = 0.2
#: II.3b: "g_ae-lasso ≈ g_dec" means their errors to g* differ by less than 10 %: TOST of the mean
#: per-instance log ratio within ± log 1.1. At the decision depth the two are predicted to differ
#: by ≈ ‖g_dec − ĝ‖ (II.3a; pilot: 1e-7 relative at T = 150), while the g_ae-ls gain the claim
#: is about is ≈ 50 %.
EQUIV_MARGIN = math.log(1.1)
#: II.3c: the log-log slope of each estimator's norm at D = D* against λ that the O-bounds
#: suggest (∝ λ for the lasso-loss estimators, ∝ λ² for least squares). Reported as
#: predictions, not decided: at D* the closed forms (DSTAR_TOL) decide, and they show that
#: g_dec = λA − λ²C carries an exact λ² term, which lowers the fitted slope over [0.05, 0.2] to
#: ≈ 0.92 (pilot), outside a tight interval around 1.
PREDICTED_SLOPES = {"dec": 1.0, "ae-lasso": 1.0, "ae-ls": 2.0}
#: II.3c: tolerance of the closed-form check at D*: relative deviation ‖g − g_path‖/‖g_path‖.
#: Not rounding but ISTA's geometric tail: after T_star = 300 layers the pilot's worst deviation
#: (root seed 30000, 8 instances, λ ∈ {0.05, 0.1, 0.2}) was 2.6e-8 (g_ae-ls at λ = 0.05, the
#: slowest), 7e-10 (g_dec), 3e-15 (g_ae-lasso); at T = 150 it was 3e-3. 1e-6 leaves a factor 40
#: for slower instances, and every bug of an estimator's formula moves it by O(1).
DSTAR_TOL = 1e-6
#: II.3d: the last fraction of training steps over which the plateau (relative change of the
#: dictionary error) is reported, so that "at the end of training" can be audited.
PLATEAU_FRACTION = 0.2
#: Relative tolerance for finding the decision λ in a cell's λ grid.
GRID_RTOL = 1e-9


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


def _lam_grid(lo: float, hi: float, n: int, decide: float | None = None) -> np.ndarray:
    """``n`` values of λ from ``lo`` to ``hi``, geometrically spaced, with ``decide`` in the grid
    (snapped onto the nearest value within GRID_RTOL, or added)."""
    grid = np.geomspace(lo, hi, n) if n > 1 else np.array([float(lo)])
    if decide is not None:
        close = np.isclose(grid, decide, rtol=GRID_RTOL, atol=0.0)
        grid = np.where(close, float(decide), grid) if close.any() else np.sort(np.append(grid, float(decide)))
    return grid


def _at(table: pd.DataFrame, column: str, value: float) -> pd.Series:
    """Rows whose ``column`` equals ``value`` up to GRID_RTOL (a λ or distance of a grid)."""
    return pd.Series(np.isclose(table[column].to_numpy(float), value, rtol=GRID_RTOL, atol=0.0), index=table.index)


def crossover(x, y, *, holds: str = "above") -> tuple[float, int]:
    """Where an ordering y < 0 starts to hold along a sweep x (increasing, log-spaced).

    Parameters
    ----------
    x, y : array_like, same length
        The swept parameter (λ or a distance) and a log ratio whose sign is the ordering.
    holds : {"above", "below"}
        "above": the ordering holds for x above x* — x* is the last crossing from y ≥ 0 to y < 0;
        "below": it holds for x below x* — x* is the first crossing from y < 0 to y ≥ 0.

    Returns
    -------
    (x_star, censored) : x* by linear interpolation of y in log x, and 0; or the end of the grid
        beyond which x* lies and −1 (x* at or below x[0]) or +1 (x* at or above x[-1]).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if holds not in ("above", "below"):
        raise ValueError(f"holds must be 'above' or 'below', got {holds!r}")
    u, v = (np.log(x), y) if holds == "above" else (-np.log(x)[::-1], y[::-1])
    bad = np.flatnonzero(~(v < 0))
    if bad.size == 0:
        star, flag = u[0], -1
    elif bad[-1] == len(v) - 1:
        star, flag = u[-1], 1
    else:
        i = bad[-1]
        star, flag = u[i] + v[i] / (v[i] - v[i + 1]) * (u[i + 1] - u[i]), 0
    return (float(np.exp(star)), flag) if holds == "above" else (float(np.exp(-star)), -flag)


def _crossovers(table: pd.DataFrame, x: str, y: str, *, holds: str = "above", by=("cell", "instance")) -> pd.DataFrame:
    """Per-group :func:`crossover` of ``y`` along ``x``: columns of ``by``, x_star, censored."""
    rows = [(*key, *crossover(g[x], g[y], holds=holds))
            for key, g in table.sort_values(x).groupby(list(by), sort=True)]
    return pd.DataFrame(rows, columns=[*by, "x_star", "censored"])


def _geometric_summary(values, alpha: float) -> dict:
    """Geometric mean of positive values with the central (1 − 2α) t interval of their logs
    (scipy.stats.ttest_1samp); the interval is NaN below 2 values or without spread."""
    v = np.log(np.asarray(values, float))
    v = v[np.isfinite(v)]
    out = {"estimate": float(np.exp(v.mean())) if v.size else math.nan, "interval": [math.nan, math.nan],
           "n": int(v.size)}
    if v.size >= 2 and np.ptp(v) > 0:
        ci = sps.ttest_1samp(v, 0.0).confidence_interval(1.0 - 2.0 * alpha)
        out["interval"] = [float(np.exp(ci.low)), float(np.exp(ci.high))]
    return out


def _crossover_summary(cross: pd.DataFrame, alpha: float) -> dict:
    """λ* (or δ×) over instances: the geometric mean and interval of the crossings inside the grid
    (:func:`_geometric_summary`), how many instances cross below / above the grid, and all values."""
    inside = cross[cross["censored"] == 0]["x_star"]
    return {**_geometric_summary(inside, alpha), "below_grid": int((cross["censored"] < 0).sum()),
            "above_grid": int((cross["censored"] > 0).sum()),
            "per_instance": [float(v) for v in cross["x_star"]]}


def _predicting(verdict: Verdict, *predictions) -> Verdict:
    """``verdict`` with ``predictions`` (stats.prediction) added."""
    return Verdict(**{**verdict.__dict__, "predictions": tuple(verdict.predictions) + tuple(predictions)})


def _hypotheses(cell, table: pd.DataFrame, lam: float, distance: str | None = "init_error") -> list:
    """The hypotheses of Theorem II.3 on a cell (docs/theory.md#standing-assumptions), read with
    constant 1: μ(2s − 1) < 1 (worst instance), λ > s·log m/√m (at the cell's largest λ) and,
    with ``distance``, the start within 1/log p (worst instance's relative error)."""
    mu = float(pd.to_numeric(table["coherence"]).max())
    found = [stats.hypothesis("μ(2s − 1) < 1", mu * (2 * cell.s - 1), 1.0,
                              note="worst instance's coherence of D*; the worst-case support-recovery condition"),
             stats.hypothesis("λ > s·log m/√m", lam, cell.s * math.log(cell.m) / math.sqrt(cell.m), side="greater",
                              note="λ = Ω(s log m/√m) with constant 1, at the cell's largest λ")]
    if distance is not None and distance in table.columns:
        found.append(stats.hypothesis("‖D − D*‖_F/‖D*‖_F < 1/log p", float(pd.to_numeric(table[distance]).max()),
                                      1.0 / math.log(cell.p),
                                      note="δ = O*(1/log p) with constant 1, as the rms column distance; worst "
                                           "instance"))
    return found


def _with_detail(verdict: Verdict, **extra) -> Verdict:
    return Verdict(**{**verdict.__dict__, "detail": dict(verdict.detail, **extra)})


def _pivot(table: pd.DataFrame, value: str, at: pd.Series | None = None) -> pd.DataFrame:
    """One row per (cell, instance), one column per estimator, of ``value`` (rows ``at`` only)."""
    t = table if at is None else table[at]
    return t.pivot_table(index=["cell", "instance"], columns="estimator", values=value, aggfunc="first")


# --------------------------------------------------------------------------- gradient curves
def _certified_lasso_gradient(X, D, lam: float):
    """ĝ and its lasso solution, with the KKT certificate checked (recomputed, not trusted).

    Raises
    ------
    CertificateError
        Some instance's relative KKT violation exceeds HAT_TOL: ĝ is not the gradient of the
        lasso value function, and nothing measured against it can be trusted.
    """
    g_hat, sol = core.lasso_gradient(X, D, lam=lam, tol=HAT_TOL)
    kkt = core.kkt_violation(X, D, sol.Z, lam)
    if not bool((kkt <= HAT_TOL).all()):
        raise CertificateError(
            f"ĝ at λ = {lam:g}: the lasso solution's relative KKT violation is {float(kkt.max()):.3g} on its worst "
            f"instance ({int((kkt > HAT_TOL).sum())} of {kkt.numel()} above the certificate's tolerance "
            f"{HAT_TOL:g}, after {sol.n_iter} solver iterations)")
    return g_hat, sol, kkt


def _simulate_curves(inst: core.Instances, ctx: Context, *, lam: float, step: float, depths, with_hat: bool) -> dict:
    """Raw gradient errors of the three estimators at ``depths`` at D = D⁽⁰⁾ (numpy arrays).

    Returns dict with ``depths (K,)``; per kind ``star_<k>`` = ‖g − g*‖_F, ``norm_<k>`` = ‖g‖_F and,
    with ``with_hat``, ``hat_<k>`` = ‖g − ĝ‖_F / ‖ĝ‖_F, each ``(K, B)``; per instance ``gstar_norm``,
    ``coherence``, ``init_error`` and (with ``with_hat``) ``ghat_norm``, ``gstar_hat``
    (‖ĝ − g*‖), ``kkt`` (the checked certificate of ĝ, :func:`_certified_lasso_gradient`), ``lasso_iter``.
    """
    X, D = inst.X, inst.D0
    depths = sorted({int(T) for T in depths})
    with torch.no_grad():
        g_star = core.oracle_gradient(X, D, inst.Z_star)
    out = {"depths": np.asarray(depths), "gstar_norm": _np(_fro(g_star)),
           "coherence": _np(inst.coherence), "init_error": _np(inst.init_error)}
    if with_hat:
        g_hat, sol, kkt = _certified_lasso_gradient(X, D, lam)
        out.update(ghat_norm=_np(_fro(g_hat)), gstar_hat=_np(_fro(g_hat - g_star)), kkt=_np(kkt),
                   lasso_iter=np.full(X.shape[0], sol.n_iter))
    curves = _gradient_curves(X, D, lam=lam, step=step, depths=depths, encoder=ctx.encoder_under_test())
    _tick(ctx)
    for k in KINDS:
        g = curves[k]
        out[f"star_{k}"] = _np(_fro(g - g_star))
        out[f"norm_{k}"] = _np(_fro(g))
        if with_hat:
            out[f"hat_{k}"] = _np(_fro(g - g_hat) / _fro(g_hat))
    return out


def _curve_table(raw: dict) -> pd.DataFrame:
    """Long table (instance, T, estimator) from a raw curve result (:func:`_simulate_curves`)."""
    depths = raw["depths"]
    K, B = len(depths), raw["gstar_norm"].shape[0]
    frames = []
    for src in KINDS:
        cols = {"instance": np.tile(np.arange(B), K), "T": np.repeat(depths, B), "estimator": src,
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
        "decays about twice as fast: the ratio of the fitted per-layer log-rates, r_ae-lasso/r_dec, "
        "exceeds 1.5 (once the support is fixed, autodiff through all T layers of ISTA is "
        "'super-efficient': predicted ratio 2, reported as a prediction; an adjoint that is not the "
        "full one — truncated backpropagation — converges only with the iterates, ratio 1). "
        "‖g_ae-ls − ĝ‖/‖ĝ‖ stays above 1e-3: it converges to the gradient of the least-squares loss at "
        "Ẑ, which differs from ĝ by the λ-term. Parts (all must pass, t tests over instances): mean "
        "log10 error at T_max < −3 for dec and ae-lasso, > −3 for ae-ls; mean r_dec < 0; mean "
        "rate ratio > 1.5. A ĝ whose KKT certificate fails ends the claim in ERROR (CertificateError).")
    kind = "rate"
    effect = (
        "Pilot (root seed 12345, ci sizes, 10 instances): rate ratio r_ae-lasso/r_dec over T ∈ [100, "
        "150] 1.34–2.09 (mean 1.87, sd 0.20; one instance's support still moving at T = 100); log10 "
        "‖g − ĝ‖/‖ĝ‖ at T = 150: −6.71 (sd 0.42) for dec, −11.2 (sd 0.75) for ae-lasso, −0.287 (sd "
        "0.003) for ae-ls, against −3. Second pilot for the 1.5 threshold (root seed 10000, ci sizes, "
        "12 instances): ratio 1.98 [1.89, 2.07] (sd 0.12); under truncated backpropagation 0.998. "
        "Weakest part, the ratio against 1.5: effect 0.37 (the lower pilot mean) at sd 0.2 → "
        "t_test_n(0.37, 0.2, α = 6e-4 [Holm worst case], β = 0.05) = 13, effect 0.45 (the mean of the "
        "pilots) → 9; dec level effect 3.5 at sd 0.85 → 7. 12 instances are used (quick: 5, pilot "
        "ratio 2.00 [1.83, 2.17] at root seed 10000).")
    regime = (
        "m = 100, p = 150, s = 5 (μ ≈ 0.38, the incoherent regime of docs/theory.md#data-model), n = 100 examples, "
        "independent signs, c = 0.02 (relative dictionary error ≈ 0.2), α = λ = 0.2, T = 1 … 150, "
        "float64. The rate is fitted over T ∈ [100, 150], where every example's support is fixed "
        "(pilot: the ratio is ≈ 1.3 before T ≈ 75 and settles at ≈ 1.9–2.0 after T ≈ 100). n only "
        "decides which example converges slowest (the statement is for fixed X, D). The paper's "
        "gradient setting (m = 50, p = 100, μ ≈ 0.54) converges ~3× slower (ratio ≈ 2 only after "
        "T ≈ 200): used in the paper profile with T_max = 400.")
    control = (
        "Mutant truncated-backprop: the lean adjoint runs through the last 3 layers only (truncated "
        "backpropagation, a memory saving). g_ae-lasso still tends to ĝ — its multiplier vanishes at "
        "the lasso solution — but only as fast as the iterates, like g_dec: rate ratio ≈ 1 (pilot "
        "0.998), so 'ae-lasso faster' (> 1.5) must FAIL. The claim must see it: super-efficiency is "
        "the one property that needs the adjoint of all T layers. (Under the lasso-unconverged mutant "
        "the certificate of ĝ fails and the claim ends in ERROR, which detects_errors counts.)")
    control_mutant = "truncated-backprop"
    detects_errors = True
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
    schema = {"T": "int", "estimator": "str", "err_star": "float", "err_star_rel": "float",
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
        inst = _instances(cell, seeds, ctx, dtype=torch.float64)
        return _curve_table(_simulate_curves(inst, ctx, lam=cell.lam, step=cell.step, depths=_depths(cell.T_max),
                                             with_hat=True))

    def hypotheses(self, cell, table):
        """μ(2s − 1) < 1, λ > s·log m/√m, the start within 1/log p (:func:`_hypotheses`)."""
        return _hypotheses(cell, table, cell.lam)

    def decide(self, table):
        """t tests of the log10 errors at T_max against log10 EPS_LIMIT and of the rate ratio > 1.5;
        the predicted ratio 2 is reported against the ratio's interval."""
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
            "ae-lasso faster": stats.mean_test(ratio, threshold=RATE_RATIO_THRESHOLD, side="greater",
                                               alpha=self.alpha, name="rate ratio r_ae-lasso / r_dec"),
        }
        faster = parts["ae-lasso faster"]
        parts["ae-lasso faster"] = _predicting(faster, stats.prediction(
            "rate ratio r_ae-lasso / r_dec (super-efficiency)", PREDICTED_RATE_RATIO, faster.statistic,
            faster.interval))
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
                  label=f"→ 0 means below {plot.power_of_ten(EPS_LIMIT)} at T = {int(t['T'].max())}")
        a.set_yscale("log")
        a.set_xlabel("layers T")
        a.set_ylabel(r"$\|g_T - \hat g\|_F / \|\hat g\|_F$")
        a.set_title(r"against $\hat g$ (lasso solution)")
        plot.legend(a, title=plot.first_curve_note(t, "estimator"),
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
    """A cell of II.3b: sizes m, p, s; D⁽⁰⁾ distance c (init_scale); sign pattern; step α; n examples;
    the λ sweep (n_lam values from lam_lo to lam_hi, geometric, with lam_decide among them); the depth
    T_decide of the comparison; the depth curve at lam_decide recorded up to T_curve (0: none)."""

    m: int
    p: int
    s: int
    init_scale: float
    sign: str
    step: float
    n: int
    lam_lo: float
    lam_hi: float
    n_lam: int
    lam_decide: float
    T_decide: int
    T_curve: int


_B = GradientOrderingCell(m=100, p=150, s=5, init_scale=0.02, sign="independent", step=0.2, n=100, lam_lo=0.05,
                          lam_hi=0.4, n_lam=7, lam_decide=LAMBDA_DECIDE, T_decide=150, T_curve=50)


def _ordering_ratios(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per (cell, instance, lam) at the decision depth: the log ratios of the three estimators'
    ``value`` (ls_lasso = log(ae-ls/ae-lasso), ls_dec, lasso_dec) and the cell's lam_decide."""
    t = table[table["T"] == table["T_decide"]] if "T_decide" in table.columns else table
    wide = t.pivot_table(index=["cell", "instance", "lam", "lam_decide"], columns="estimator", values=value,
                         aggfunc="first").reset_index()
    return wide.assign(ls_lasso=np.log(wide["ae-ls"] / wide["ae-lasso"]), ls_dec=np.log(wide["ae-ls"] / wide["dec"]),
                       lasso_dec=np.log(wide["ae-lasso"] / wide["dec"]), log_lam=np.log(wide["lam"]))


class GradientOrdering(Claim):
    """II.3b — above a crossover λ*, g_ae-ls is closer to g* than g_ae-lasso ≈ g_dec."""

    id = "II.3b"
    theorem = "II.3"
    title = "‖g_ae-ls − g*‖ < ‖g_ae-lasso − g*‖ ≈ ‖g_dec − g*‖ above a crossover λ* (λ sweep)"
    statement = (
        "At a close dictionary (c = 0.02) and a converged depth (T = 150), over a λ sweep: at the "
        "paper's λ = 0.2, fixed in advance, g_ae-ls is the better estimate of the desired direction "
        "g* = (DZ* − X)Z*ᵀ/n — the mean per-instance log ratios log(‖g_ae-ls − g*‖/‖g_ae-lasso − g*‖) "
        "and log(‖g_ae-ls − g*‖/‖g_dec − g*‖) are negative (one-sided t tests) — while g_ae-lasso and "
        "g_dec are equally far from g* (TOST: mean log ratio within ± log 1.1); and the ae-ls advantage "
        "grows with λ (mean per-instance slope of the first log ratio against log λ < 0). The theorem's "
        "bounds are O-statements, and at small λ the order REVERSES: g_ae-ls is farther from g* than "
        "g_ae-lasso below a crossover λ* (≈ 0.12 in the pilots), which is estimated per instance by "
        "interpolating the log ratio in log λ and reported with its interval. The depth curve at "
        "λ = 0.2 shows the crossover in T (g_ae-ls ahead from T ≈ 5).")
    kind = "ordering"
    effect = (
        "Pilots at ci sizes (root seeds 10000–10009 at n = 200 and 10100–10109 at n = 100, T = 150, "
        "λ = 0.05 … 0.4 by √2): log(‖g_ae-ls − g*‖/‖g_ae-lasso − g*‖) = +0.37, +0.37, +0.23, −0.14, "
        "−0.69, −0.95, −0.80 (sd ≤ 0.03; the same sign on every instance at every λ); slope against "
        "log λ −0.73 (sd 0.02); λ* = 0.124 (0.119–0.127 over instances); g_ae-lasso/g_dec log ratio "
        "−8e-8 at λ = 0.2. Design for an effect of 0.5 at sd 0.1 (three quarters of the pilot effects, "
        "three times their sd): t_test_n(0.5, 0.1, α = 6e-4 [Holm worst case], β = 0.05) = 6 instances; the "
        "TOST part has effect log 1.1 at sd < 1e-6. quick: 5 instances, λ ∈ {0.1, 0.2, 0.4}, "
        "where the pilot effects give t > 40.")
    regime = (
        "m = 100, p = 150, s = 5 (μ ≈ 0.38), n = 100 examples, independent signs (the theory's "
        "zero-mean codes), c = 0.02 (relative dictionary error ≈ 0.2), α = 0.2, λ ∈ {0.05, 0.071, 0.1, "
        "0.14, 0.2, 0.28, 0.4}, decision at T = 150, where every log ratio equals its T = 300 value to "
        "three decimals (pilot; T = 50 is converged only for λ ≥ 0.14). The λ sweep is the reading of "
        "an O-bound: the advantage is largest near λ = 0.28 and a little smaller at 0.4, so "
        "'grows with λ' is decided as the overall slope, not step by step. The crossover λ* depends "
        "on the distance of D from D* (II.3c: it grows with it); this claim measures it at c = 0.02. "
        "The depth curve T = 1 … 50 is recorded at λ = 0.2. Paper profile: the paper's own setting "
        "(m = 50, p = 100, n = 10 000) with shared signs (which break the zero-mean assumption and "
        "inflate g_dec's bias) and independent signs; the order reverses at small λ there too. "
        "quick: n = 50.")
    control = (
        "Mutant no-active-set-mask: the lean adjoint forgets the soft threshold's derivative "
        "(u_t = a_{t+1} instead of M_t ⊙ a_{t+1}), so g_ae-ls and g_ae-lasso backpropagate through the "
        "un-thresholded linear map. The claim must see it: its content is what backpropagation through "
        "the thresholded encoder adds to g_dec. Pilot (quick, root seed 10000): g_ae-ls farther from "
        "g* than g_dec on every instance, and g_ae-lasso no longer ≈ g_dec. Must FAIL.")
    control_mutant = "no-active-set-mask"
    requires = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": when("ae-lasso ≈ dec",
                     "g_ae-lasso is no longer ≈ g_dec (mean log(‖g_ae-lasso − g*‖/‖g_dec − g*‖) = {statistic:.2g}, "
                     "needs ≈ 0): Danskin's equivalence needs Z_T to be the lasso minimiser at the loss's λ, "
                     "which these codes are not"),
    }
    Cell = GradientOrderingCell
    schema = {"lam": "float", "T": "int", "estimator": "str", "err_star": "float", "err_star_rel": "float",
              "g_norm": "float", "gstar_norm": "float", "coherence": "float", "init_error": "float"}
    profiles = {
        "quick": {"cells": [replace(_B, n=50, lam_lo=0.1, lam_hi=0.4, n_lam=3)], "n_instances": 5},
        "ci": {"cells": [_B], "n_instances": 6},
        "paper": {"cells": [replace(_B, m=50, p=100, n=10000, sign=sign) for sign in ("independent", "shared")],
                  "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """Long table (instance, λ, T, estimator) of ‖g − g*‖ at T_decide for every λ of the sweep,
        and at T = 1 … T_curve for lam_decide; the same instances at every λ."""
        inst = _instances(cell, seeds, ctx)
        frames = []
        for lam in _lam_grid(cell.lam_lo, cell.lam_hi, cell.n_lam, cell.lam_decide):
            curve = cell.T_curve > 0 and math.isclose(lam, cell.lam_decide, rel_tol=GRID_RTOL)
            depths = [*_depths(cell.T_curve), cell.T_decide] if curve else [cell.T_decide]
            raw = _simulate_curves(inst, ctx, lam=float(lam), step=cell.step, depths=depths, with_hat=False)
            frames.append(_curve_table(raw).assign(lam=float(lam)))
        return pd.concat(frames, ignore_index=True)

    def hypotheses(self, cell, table):
        """μ(2s − 1) < 1, λ > s·log m/√m (largest λ), the start within 1/log p (:func:`_hypotheses`)."""
        return _hypotheses(cell, table, cell.lam_hi)

    def decide(self, table):
        """t tests of the orderings and TOST of ae-lasso ≈ dec at lam_decide, t test of the λ trend;
        λ* per instance (:func:`crossover`), summarised with a t interval of log λ*."""
        w = _ordering_ratios(table, "err_star")
        d = w[np.isclose(w["lam"], w["lam_decide"], rtol=GRID_RTOL, atol=0.0)]
        lam_decide = float(d["lam"].iloc[0])
        slopes = stats.group_slopes(w, "log_lam", "ls_lasso", by=["cell", "instance"])
        parts = {
            "ae-ls < ae-lasso": stats.mean_test(d["ls_lasso"], threshold=0.0, side="less", alpha=self.alpha,
                                                name=f"mean log(‖g_ae-ls − g*‖/‖g_ae-lasso − g*‖) at λ = {lam_decide:g}"),
            "ae-ls < dec": stats.mean_test(d["ls_dec"], threshold=0.0, side="less", alpha=self.alpha,
                                           name=f"mean log(‖g_ae-ls − g*‖/‖g_dec − g*‖) at λ = {lam_decide:g}"),
            "ae-lasso ≈ dec": stats.mean_test(d["lasso_dec"], threshold=0.0, side="equal", margin=EQUIV_MARGIN,
                                              alpha=self.alpha,
                                              name=f"mean log(‖g_ae-lasso − g*‖/‖g_dec − g*‖) at λ = {lam_decide:g}"),
            "advantage grows with λ": stats.mean_test(slopes, threshold=0.0, side="less", alpha=self.alpha,
                                                      name="slope of log(‖g_ae-ls − g*‖/‖g_ae-lasso − g*‖) "
                                                           "against log λ"),
        }
        verdict = all_of(parts, n=len(d), alpha=self.alpha, primary="ae-ls < ae-lasso")
        by_cell = {}
        for c, g in w.groupby("cell", sort=True):
            by_cell[str(int(c))] = {
                "lambda_star": _crossover_summary(_crossovers(g, "lam", "ls_lasso"), self.alpha),
                "lambda_star_vs_dec": _crossover_summary(_crossovers(g, "lam", "ls_dec"), self.alpha),
                "log_ratio_ls_lasso_median_by_lam": {f"{lam:.4g}": float(v) for lam, v in
                                                     g.groupby("lam")["ls_lasso"].median().items()},
                "lam_largest_advantage_median": float(g.loc[g.groupby("instance")["ls_lasso"].idxmin(), "lam"]
                                                      .median())}
        # the crossover in depth at lam_decide: first recorded T from which g_ae-ls stays ahead of g_ae-lasso
        c = table[_at(table, "lam", lam_decide)]
        wide = c.pivot_table(index=["cell", "instance", "T"], columns="estimator", values="err_star")
        ahead = (wide["ae-ls"] < wide["ae-lasso"]).rename("ahead").reset_index()
        cross = []
        for _, g in ahead.sort_values("T").groupby(["cell", "instance"]):
            behind = np.flatnonzero(~g["ahead"].to_numpy())
            T = g["T"].to_numpy()
            cross.append(float(T[0]) if behind.size == 0 else
                         float(T[behind[-1] + 1]) if behind[-1] + 1 < len(T) else math.inf)
        curve = c.groupby(["estimator", "T"])["err_star"].median()
        return _with_detail(
            verdict, lam_decide=lam_decide, by_cell=by_cell,
            lambda_star=by_cell[min(by_cell, key=int)]["lambda_star"],
            ratio_ls_over_lasso_median=float(np.exp(d["ls_lasso"]).median()),
            ratio_lasso_over_dec_median=float(np.exp(d["lasso_dec"]).median()),
            crossover_T_median=float(np.median(cross)), crossover_T_max=float(np.max(cross)),
            err_star_median_by_T={k: {str(int(T)): float(v) for T, v in curve[k].items()} for k in KINDS})

    # ------------------------------------------------------------------ figures
    @figure("gradient-error-vs-g-star",
            "Distance of the three estimators to the desired direction g* against T at the decision λ "
            "(log-log; median and 10–90 % band over instances): g_ae-ls overtakes g_ae-lasso ≈ g_dec "
            "after a few layers (the crossover in depth); the dashed line marks the decision depth.")
    def draw_ordering(self, fi: FigureInput):
        """Relative error to g* against T per estimator at lam_decide, with the decision depth."""
        t = fi.table
        fi.need("T", "estimator")
        if {"lam", "lam_decide"} <= set(t.columns):
            t = t[np.isclose(t["lam"].to_numpy(float), t["lam_decide"].to_numpy(float), rtol=GRID_RTOL, atol=0.0)]
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
        plot.legend(a, title=plot.first_curve_note(t, "estimator"),
                    title_fontsize=8)
        return fig

    @figure("ordering-vs-lambda",
            "The ordering over the λ sweep at the decision depth: ‖g_ae-ls − g*‖ divided by "
            "‖g_ae-lasso − g*‖ and by ‖g_dec − g*‖ (log-log; median and 10–90 % band over instances). "
            "Below 1, g_ae-ls is the closer to g*. Solid vertical line and shading: the crossover λ* "
            "(geometric mean over instances of the interpolated crossings, with its interval); dashed: "
            "the λ at which the ordering is decided.")
    def draw_lambda(self, fi: FigureInput):
        """Ratios of the distances to g* against λ, with λ* (and interval) and the decision λ."""
        fi.need("lam", "T", "T_decide", "lam_decide", "estimator", "err_star")
        w = _ordering_ratios(fi.table, "err_star")
        fig, (a,) = plot.new_figure(1, width=7.2, height=4.4)
        for col, k, label in (("ls_dec", "dec", r"$\|g_{ae-ls} - g^*\| / \|g_{dec} - g^*\|$"),   # wide, drawn first
                              ("ls_lasso", "ae-lasso", r"$\|g_{ae-ls} - g^*\| / \|g_{ae-lasso} - g^*\|$")):
            plot.band(a, w.assign(ratio=np.exp(w[col])), "lam", "ratio", colour=plot.estimator_colour(k),
                      label=label, positive=True, **plot.estimator_style(k))
        a.axhline(1.0, color="0.3", linestyle=":", linewidth=1, label="equally far from g*")
        cell = str(int(plot.cell_value(fi.table, "cell", 0)))
        star = (((fi.record.get("detail") or {}).get("by_cell") or {}).get(cell) or {}).get("lambda_star") or {}
        est, (lo, hi) = star.get("estimate"), (star.get("interval") or [None, None])[:2]
        if est is not None and np.isfinite(est):
            ci = f" [{lo:.3g}, {hi:.3g}]" if lo is not None and np.isfinite(lo) and np.isfinite(hi) else ""
            a.axvline(float(est), color="black", linewidth=1.2, label=f"λ* = {est:.3g}{ci} (vs g_ae-lasso)")
            if ci:
                a.axvspan(float(lo), float(hi), color="black", alpha=0.12, linewidth=0)
        lam_decide = plot.cell_value(fi.table, "lam_decide")
        if lam_decide is not None:
            a.axvline(float(lam_decide), color="0.3", linestyle="--", linewidth=1,
                      label=f"decision at λ = {float(lam_decide):g}")
        a.set_xscale("log")
        a.set_yscale("log")
        plot.data_ticks(a.xaxis, np.sort(w["lam"].unique()))
        a.set_xlabel("λ (sparsity weight)")
        a.set_ylabel("distance to g* of g_ae-ls, relative")
        a.set_title("g_ae-ls is closer to g* only above the crossover λ*")
        plot.legend(a, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8,
                    title=plot.first_curve_note(w, "lam"), title_fontsize=8)
        return fig


# --------------------------------------------------------------------------- II.3c
@dataclass(frozen=True)
class LambdaScalingCell:
    """A cell of II.3c: sizes m, p, s; step α; n examples; λ grid (n_lam values from lam_lo to lam_hi); T_star
    layers at D = D*; T layers away from it, at the per-column distances δ (n_dist values from dist_lo to
    dist_hi, geometric); D⁽⁰⁾ scale c (init_scale, unused: the distances are exact) and sign pattern."""

    m: int
    p: int
    s: int
    step: float
    n: int
    lam_lo: float
    lam_hi: float
    n_lam: int
    T: int
    T_star: int = 300
    dist_lo: float = 0.05
    dist_hi: float = 0.2
    n_dist: int = 3
    init_scale: float = 0.0
    sign: str = "independent"


_C = LambdaScalingCell(m=100, p=150, s=5, step=0.2, n=100, lam_lo=0.05, lam_hi=0.2, n_lam=3, T=150, T_star=300,
                       dist_lo=0.05, dist_hi=0.2, n_dist=3)


def lasso_path_gradients(D: torch.Tensor, Z_star: torch.Tensor, Z: torch.Tensor, lam: float) -> dict:
    """The limits of the three estimators at D = D* (X = D Z*) on the lasso path of a sign pattern.

    With a lasso solution whose support Ŝ_k contains supp z*_k and whose signs ŝ_k are those of
    ``Z``, ẑ_k = z*_k − λ w_k with w_k = (D_ŜᵀD_Ŝ)⁻¹ ŝ_k on Ŝ_k (zero elsewhere), and the
    residual D ẑ_k − x_k = −λ D w_k. With W = [w_1 … w_n], exactly

        g_ae-ls = λ² C,    g_dec = g_ae-lasso = λ A − λ² C,
        A = −(D W) Z*ᵀ / n,    C = −(D W) Wᵀ / n,

    since the residual lies in span(D_Ŝ), whose first-order variation is orthogonal to it, so
    the least-squares loss has no O(λ) term (docs/theory.md#ii3c-lambda-scaling).

    Parameters
    ----------
    D : (B, m, p) the true dictionary.  Z_star : (B, p, n) true codes.
    Z : (B, p, n) a (converged) lasso solution at λ, whose sign pattern is used.
    lam : float λ.

    Returns
    -------
    dict kind → ``(B, m, p)`` for "dec", "ae-lasso", "ae-ls", and "superset" → ``(B,)`` bool:
    whether Ŝ_k ⊇ supp z*_k for every example (the forms hold only then).
    """
    B, n = Z.shape[0], Z.shape[-1]
    on = (Z != 0).mT                                                  # (B, n, p)
    k = max(int(on.sum(dim=-1).max()), 1)                             # the largest support
    idx = torch.argsort(on.to(torch.int8), dim=-1, descending=True, stable=True)[..., :k]   # support first
    used = torch.gather(on, -1, idx).to(D.dtype)                      # (B, n, k): 0 on padding
    D_S = D.mT[torch.arange(B, device=D.device)[:, None, None], idx]  # (B, n, k, m) rows = columns D_j
    G = used[..., :, None] * (D_S @ D_S.mT) * used[..., None, :] + torch.diag_embed(1 - used)
    w = torch.linalg.solve(G, torch.gather(torch.sign(Z).mT, -1, idx) * used)               # (B, n, k)
    W = torch.zeros_like(Z.mT).scatter(-1, idx, w * used).mT          # (B, p, n), zero off each support
    DW = D @ W
    A, C = -(DW @ Z_star.mT) / n, -(DW @ W.mT) / n
    g_lasso = lam * A - lam ** 2 * C
    superset = ((Z_star != 0) <= (Z != 0)).all(dim=-1).all(dim=-1)
    return {"dec": g_lasso, "ae-lasso": g_lasso, "ae-ls": lam ** 2 * C, "superset": superset}


def _mean_summary(values, alpha: float) -> tuple[float, tuple[float, float]]:
    """Mean of the finite values and its central (1 − 2α) t interval (scipy.stats.ttest_1samp);
    NaN bounds below 2 values or without spread."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size >= 2 and np.ptp(v) > 0:
        ci = sps.ttest_1samp(v, 0.0).confidence_interval(1.0 - 2.0 * alpha)
        return float(v.mean()), (float(ci.low), float(ci.high))
    return (float(v.mean()) if v.size else math.nan), (math.nan, math.nan)


class LambdaScaling(Claim):
    """II.3c — at D = D* the estimators follow the lasso path exactly (g_ae-ls = λ²C, g_dec =
    λA − λ²C); away from D* the advantage of g_ae-ls shrinks with the distance."""

    id = "II.3c"
    theorem = "II.3"
    title = "at D = D*: g_ae-ls = λ²C and g_dec = g_ae-lasso = λA − λ²C; away from D* the ae-ls advantage shrinks"
    statement = (
        "At D = D* with exact data (g* = 0), after T_star = 300 layers, every estimator equals the "
        "closed form of the lasso path of the encoder's sign pattern: g_ae-ls = λ²C and g_dec = "
        "g_ae-lasso = λA − λ²C, A = −(DW)Z*ᵀ/n, C = −(DW)Wᵀ/n, w_k = (D_ŜᵀD_Ŝ)⁻¹ŝ_k — a deterministic "
        "check (relative deviation ≤ 1e-6 for every instance, λ and estimator): the λ term that the "
        "lasso bound carries and the least-squares bound lacks is exactly λA. The log-log slopes of ‖g‖ "
        "against λ are reported against the predictions 1 (g_dec, g_ae-lasso) and 2 (g_ae-ls); the exact "
        "λ² term lowers the first to ≈ 0.92 over λ ∈ [0.05, 0.2]. Away from D*, at per-column "
        "distances δ = 0.05 … 0.2, what the theorem adds is tested statistically: the advantage of "
        "g_ae-ls shrinks as D moves away — the per-instance slope of log(‖g_ae-ls − g*‖/‖g_ae-lasso − "
        "g*‖) against log δ is positive at every λ (t test of its minimum over λ) — because the "
        "O(‖D − D*‖) terms common to both bounds grow while the λ√s term does not; beyond a crossover "
        "distance δ× the order reverses, and δ× ∝ λ is reported as a prediction.")
    kind = "rate"
    effect = (
        "Pilot (root seed 30000, 8 instances, m = 100, p = 150, n = 100, λ ∈ {0.05, 0.1, 0.2}): at D*, "
        "worst relative deviation from the closed forms 3e-3 at T = 150, 5.5e-5 at T = 200, 2.6e-8 at "
        "T = 300 (DSTAR_TOL = 1e-6); slopes 0.919 (sd 0.001; dec, ae-lasso) and 2.000 (ae-ls). Away from "
        "D* (δ ∈ {0.05, 0.1, 0.2}, T = 150): slopes of the log ratio against log δ 0.82, 1.49, 0.74 "
        "(sd ≤ 0.04) at λ = 0.05, 0.1, 0.2; the order reverses between δ = 0.05 and 0.1 at λ = 0.05 "
        "and between 0.1 and 0.2 at λ = 0.1. Design for the minimum slope, effect 0.5 at sd 0.1 (two "
        "thirds of the pilot's, 2.5 times its sd): t_test_n(0.5, 0.1, α = 6e-4 [Holm worst case], "
        "β = 0.05) = 6; 6 are used (quick: 5, λ ∈ "
        "{0.1, 0.2}, δ ∈ {0.05, 0.2}, n = 50).")
    regime = (
        "m = 100, p = 150, s = 5 (μ ≈ 0.38), n = 100 examples, noiseless X, α = 0.2, λ ∈ {0.05, 0.1, "
        "0.2}, float64. At D*: T_star = 300 layers, where ISTA's tail is below 1e-7 relative on every "
        "pilot instance; the forms need the encoder's support to contain the true one (recorded: "
        "support_superset; at D* about 2 % of the examples keep an extra entry, which the forms "
        "include). Away from D*: every column of D⁽⁰⁾ at exactly δ ∈ {0.05, 0.1, 0.2} from D*'s, the "
        "same D*, Z*, X and perturbation directions at every δ, T = 150 (converged to three decimals "
        "of the log ratio, II.3b). c = 0.02 in II.3b corresponds to δ ≈ 0.2.")
    control = (
        "Mutant dec-through-code: g_dec is computed by backpropagating the least-squares loss through "
        "the encoder (the code not detached), i.e. as g_ae-ls. The claim must see it: at D* the "
        "closed form of g_dec is λA − λ²C, and the bug gives λ²C, a deviation of order 1 (the λA "
        "term — the λ√s bias the theorem is about — is missing). Must FAIL.")
    control_mutant = "dec-through-code"
    requires = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the gradients at D* are not those of the lasso path, or the ae-ls advantage does not shrink "
                "away from D* ({statistic_name} = {statistic:.2g})",
        ("FAIL", "no-threshold"):
            "without a threshold the codes ignore λ, so the gradients at D* are not those of the lasso path "
            "({statistic_name} = {statistic:.2g}, tolerance 1e-6)",
        ("FAIL", "unscaled-threshold"):
            "the codes are lasso codes at 5λ, so the gradients at D* follow the lasso path at 5λ, not at λ "
            "({statistic_name} = {statistic:.2g}, tolerance 1e-6)",
    }
    Cell = LambdaScalingCell
    schema = {"dist": "float", "lam": "float", "estimator": "str", "g_norm": "float", "err_star": "float",
              "gstar_norm": "float", "path_dev": "float", "support_superset": "bool", "support_rate": "float",
              "coherence": "float"}
    profiles = {
        "quick": {"cells": [replace(_C, n=50, lam_lo=0.1, lam_hi=0.2, n_lam=2, dist_lo=0.05, dist_hi=0.2, n_dist=2)],
                  "n_instances": 5},
        "ci": {"cells": [_C], "n_instances": 6},
        "paper": {"cells": [replace(_C, n=2000, lam_lo=0.025, lam_hi=0.2, n_lam=7, T=400, T_star=600,
                                    dist_lo=0.025, dist_hi=0.4, n_dist=5)], "n_instances": 50},
    }

    def simulate(self, cell, seeds, ctx):
        """‖g‖, ‖g − g*‖ and (at D*) the deviation from the closed forms, per (instance, δ, λ, estimator)."""
        encoder = ctx.encoder_under_test()
        dists = [0.0, *_lam_grid(cell.dist_lo, cell.dist_hi, cell.n_dist)]
        frames = []
        for dist in dists:
            inst = core.make_instances(cell.m, cell.p, cell.s, cell.n, init_distance=float(dist), sign=cell.sign,
                                       seed=list(seeds), dtype=torch.float64, device=ctx.device)
            X, D = inst.X, (inst.D_star if dist == 0 else inst.D0)
            with torch.no_grad():
                g_star = core.oracle_gradient(X, D, inst.Z_star)
            for lam in _lam_grid(cell.lam_lo, cell.lam_hi, cell.n_lam):
                g, Z_T = core.gradients(X, D, lam=float(lam), step=cell.step, T=cell.T_star if dist == 0 else cell.T,
                                       kinds=KINDS, encoder=encoder, return_code=True)
                _tick(ctx)
                path = lasso_path_gradients(D, inst.Z_star, Z_T, float(lam)) if dist == 0 else None
                for k in KINDS:
                    dev = (_np(_fro(g[k] - path[k]) / _fro(path[k])) if path is not None
                           else np.full(len(seeds), math.nan))
                    frames.append(pd.DataFrame({
                        "instance": np.arange(len(seeds)), "dist": float(dist), "lam": float(lam), "estimator": k,
                        "g_norm": _np(_fro(g[k])), "err_star": _np(_fro(g[k] - g_star)), "gstar_norm": _np(_fro(g_star)),
                        "path_dev": dev,
                        "support_superset": (_np(path["superset"].to(torch.float64)) > 0) if path is not None
                        else np.ones(len(seeds), dtype=bool),
                        "support_rate": _np(core.support_recovery(Z_T, inst.Z_star)),
                        "coherence": _np(inst.coherence)}))
        return pd.concat(frames, ignore_index=True)

    def hypotheses(self, cell, table):
        """μ(2s − 1) < 1, λ > s·log m/√m (largest λ), the farthest column within 1/log p."""
        return [*_hypotheses(cell, table, cell.lam_hi, distance=None),
                stats.hypothesis("max_j ‖D_j − D*_j‖ < 1/log p", cell.dist_hi, 1.0 / math.log(cell.p),
                                 note="δ = O*(1/log p) with constant 1, at the largest distance of the sweep")]

    def decide(self, table):
        """Deterministic checks of the closed forms at D*; t test of the smallest (over λ) per-instance
        slope of log(‖g_ae-ls − g*‖/‖g_ae-lasso − g*‖) against log δ away from D*. Slopes in λ at D*
        and the scaling of the crossover distance with λ are reported as predictions."""
        star = table[table["dist"] == 0]
        budget = (f"ISTA's geometric tail after T_star layers, not rounding: pilot worst 2.6e-8 at T_star = 300 "
                  f"(root seed 30000); tolerance {DSTAR_TOL:g}")
        t = star.assign(log_lam=np.log(star["lam"]), log_g=np.log(star["g_norm"]))
        slopes = {k: stats.group_slopes(t[t["estimator"] == k], "log_lam", "log_g", by=["cell", "instance"])
                  for k in KINDS}
        forms = {"dec": "λA − λ²C", "ae-lasso": "λA − λ²C", "ae-ls": "λ²C"}
        parts = {}
        for k in KINDS:
            check = stats.deterministic_check(star.loc[star["estimator"] == k, "path_dev"], tolerance=DSTAR_TOL,
                                              budget=budget, name=f"worst ‖g_{k} − ({forms[k]})‖/‖{forms[k]}‖ at D*")
            mean, interval = _mean_summary(slopes[k], self.alpha)
            parts[f"{k} = {forms[k]} at D*"] = _predicting(check, stats.prediction(
                f"log-log slope of ‖g_{k}‖ in λ at D*", PREDICTED_SLOPES[k], mean, interval))
        away = table[table["dist"] > 0]
        w = away.pivot_table(index=["cell", "instance", "lam", "dist"], columns="estimator", values="err_star",
                             aggfunc="first").reset_index()
        w = w.assign(ls_lasso=np.log(w["ae-ls"] / w["ae-lasso"]), log_dist=np.log(w["dist"]))
        per_lam = w.groupby(["cell", "instance", "lam"]).apply(
            lambda g: np.polyfit(g["log_dist"], g["ls_lasso"], 1)[0], include_groups=False).rename("slope").reset_index()
        smallest = per_lam.groupby(["cell", "instance"])["slope"].min()
        shrinks = stats.mean_test(smallest, threshold=0.0, side="greater", alpha=self.alpha,
                                  name="smallest (over λ) slope of log(‖g_ae-ls − g*‖/‖g_ae-lasso − g*‖) against log δ")
        cross = {lam: _crossovers(g, "dist", "ls_lasso", holds="below", by=("cell", "instance"))
                 for lam, g in w.groupby("lam", sort=True)}
        inside = pd.concat([c.assign(lam=lam) for lam, c in cross.items()])
        inside = inside[inside["censored"] == 0].pivot_table(index=["cell", "instance"], columns="lam", values="x_star")
        if inside.shape[1] >= 2:            # δ× ∝ λ: slope of log δ× against log λ where two λ cross inside
            lams = np.log(inside.columns.to_numpy(float))
            rows = inside.dropna()
            scaling = [float(np.polyfit(lams, np.log(r.to_numpy(float)), 1)[0]) for _, r in rows.iterrows()]
            mean, interval = _mean_summary(scaling, self.alpha)
            shrinks = _predicting(shrinks, stats.prediction(
                "slope of log δ× (crossover distance) in log λ", 1.0, mean, interval))
        parts["advantage shrinks away from D*"] = shrinks
        verdict = all_of(parts, n=int(star["instance"].nunique() * star["cell"].nunique()), alpha=self.alpha,
                         primary="advantage shrinks away from D*")
        return _with_detail(
            verdict,
            slope_mean={k: float(s.mean()) for k, s in slopes.items()},
            slope_sd={k: float(s.std(ddof=1)) if len(s) > 1 else 0.0 for k, s in slopes.items()},
            path_dev_max={k: float(star.loc[star["estimator"] == k, "path_dev"].max()) for k in KINDS},
            support_superset_all=bool(star["support_superset"].all()),
            support_rate_min=float(star["support_rate"].min()),
            distance_slope_median_by_lam={f"{lam:g}": float(v) for lam, v in per_lam.groupby("lam")["slope"].median().items()},
            crossover_distance_by_lam={f"{lam:g}": _crossover_summary(c, self.alpha) for lam, c in cross.items()},
            gstar_norm_max_at_dstar=float(star["gstar_norm"].max()))

    # ------------------------------------------------------------------ figures
    @figure("gradient-norm-vs-lambda",
            "Gradient norms at D = D* (where g* = 0) against λ on log-log axes: median and 10–90 % band "
            f"over instances for each estimator, with the predicted slopes {PREDICTED_SLOPES['dec']:g} "
            f"(g_dec, g_ae-lasso) and {PREDICTED_SLOPES['ae-ls']:g} (g_ae-ls) as dotted references; the "
            "legend gives the stored mean per-instance slopes.")
    def draw_norms(self, fi: FigureInput):
        """Gradient norm against λ per estimator at D = D*, with the predicted slopes and the stored ones."""
        t = fi.table
        fi.need("lam", "estimator", "g_norm")
        if "dist" in t.columns:                 # the rows at D = D* (the others are away from it)
            t = t[t["dist"] == 0]
        fig, (a,) = plot.new_figure(1, width=8.4, height=4.4)
        slopes = (fi.record.get("detail") or {}).get("slope_mean") or {}
        present = [k for k in plot.ESTIMATORS if k in set(t["estimator"])]
        meds = {}
        for k in present:
            label = plot.ESTIMATOR_LABEL[k] + (f" (stored slope {float(slopes[k]):.3f})" if k in slopes else "")
            meds[k] = plot.band(a, t[t["estimator"] == k], "lam", "g_norm", colour=plot.estimator_colour(k),
                                label=label, positive=True, **plot.estimator_style(k))
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

    @figure("advantage-vs-distance",
            "Away from D*: ‖g_ae-ls − g*‖/‖g_ae-lasso − g*‖ against the per-column distance δ of D from "
            "D* (log-log; median and 10–90 % band over instances, one curve per λ, the value at D* "
            "drawn at the left edge). Below 1, g_ae-ls is the closer to g*; its advantage shrinks as D "
            "moves away, and reverses beyond a crossover distance that grows with λ.")
    def draw_distance(self, fi: FigureInput):
        """Ratio of the distances to g* against δ, one band per λ (D* at the left edge)."""
        fi.need("dist", "lam", "estimator", "err_star")
        w = fi.table.pivot_table(index=["cell", "instance", "lam", "dist"], columns="estimator", values="err_star",
                                 aggfunc="first").reset_index()
        w = w.assign(ratio=w["ae-ls"] / w["ae-lasso"])
        away = np.sort(w.loc[w["dist"] > 0, "dist"].unique())
        if not len(away):
            raise plot.FigureSkipped(f"table {fi.claim_id} has no rows away from D*")
        edge = float(away[0]) / 2.0                      # where D* (δ = 0) is drawn on the log axis
        w = w.assign(x=np.where(w["dist"] > 0, w["dist"], edge))
        fig, (a,) = plot.new_figure(1, width=7.0, height=4.4)
        lams = np.sort(w["lam"].unique())
        for colour, lam in zip(plot.palette(len(lams)), lams):
            plot.band(a, w[w["lam"] == lam], "x", "ratio", colour=colour, label=f"λ = {lam:g}", marker="o",
                      positive=True)
        a.axhline(1.0, color="0.3", linestyle=":", linewidth=1, label="equally far from g*")
        a.set_xscale("log")
        a.set_yscale("log")
        plot.data_ticks(a.xaxis, [edge, *away])
        a.set_xticks([edge, *away], labels=["D*", *[f"{d:g}" for d in away]])
        a.set_xlabel("per-column distance δ = ‖D_j − D*_j‖")
        a.set_ylabel(r"$\|g_{ae-ls} - g^*\| / \|g_{ae-lasso} - g^*\|$")
        a.set_title("the ae-ls advantage is largest at D* and shrinks away from it")
        plot.legend(a, loc="upper left", fontsize=8, title=plot.curve_note(w, "lam"), title_fontsize=8)
        return fig


# --------------------------------------------------------------------------- II.3d
@dataclass(frozen=True)
class LearningNeighbourhoodCell:
    """A cell of II.3d: sizes m, p, s; D⁽⁰⁾ distance c (init_scale); sign pattern; step α; optimizer
    ("gd" or "adam"); n examples; T layers; learning rate lr; n_steps of learning; the λ sweep (n_lam
    values from lam_lo to lam_hi, geometric, with lam_decide among them)."""

    m: int
    p: int
    s: int
    init_scale: float
    sign: str
    step: float
    optimizer: str
    n: int
    T: int
    lr: float
    n_steps: int
    lam_lo: float
    lam_hi: float
    n_lam: int
    lam_decide: float


_D = LearningNeighbourhoodCell(m=40, p=60, s=3, init_scale=0.02, sign="independent", step=0.2, optimizer="gd",
                               n=400, T=30, lr=5.0, n_steps=30, lam_lo=0.1, lam_hi=0.4, n_lam=3,
                               lam_decide=LAMBDA_DECIDE)


def _simulate_training(inst: core.Instances, cell, ctx: Context, lam: float) -> pd.DataFrame:
    """Long table (instance, step, estimator) of the dictionary error while learning at λ with each
    estimator, from the same start."""
    frames = []
    for k in KINDS:
        tr = core.train(inst.X, inst.D0, kind=k, lam=lam, step=cell.step, T=cell.T, lr=cell.lr,
                        n_steps=cell.n_steps, optimizer=cell.optimizer, normalize=True, D_star=inst.D_star,
                        encoder=ctx.encoder_under_test(), record_every=1)
        _tick(ctx)
        L, B = tr.dict_error.shape
        frames.append(pd.DataFrame({
            "instance": np.tile(np.arange(B), L), "lam": float(lam),
            "step_index": np.repeat(_np(tr.steps), B).astype(int), "estimator": k,
            "dict_error": _np(tr.dict_error).ravel(), "dict_error_max": _np(tr.dict_error_max).ravel(),
            "loss": _np(tr.loss).ravel(),
            "coherence": np.tile(_np(inst.coherence), L), "init_error": np.tile(_np(inst.init_error), L)}))
    return pd.concat(frames, ignore_index=True)


class LearningNeighbourhood(Claim):
    """II.3d — above a crossover λ*, learning with g_ae-ls ends closer to D* than with g_ae-lasso and g_dec."""

    id = "II.3d"
    theorem = "II.3"
    title = "dictionary learning with g_ae-ls ends closer to D* than with g_ae-lasso or g_dec (above λ*)"
    statement = (
        "From the same close start D⁽⁰⁾ (c = 0.02) and data, gradient descent with column "
        "normalisation, D ← normalise(D − ηg), at the same step η = p/(4s) for the three estimators, "
        "over a λ sweep: at the paper's λ = 0.2, fixed in advance, learning ends closer to D* with "
        "g_ae-ls than with g_ae-lasso and than with g_dec — the per-instance log ratios "
        "log(e_ae-ls/e_ae-lasso) and log(e_ae-ls/e_dec) of the final relative dictionary errors "
        "e = ‖D − D*‖_F/‖D*‖_F have negative mean (paired one-sided t tests) — and the ae-ls advantage "
        "grows with λ (mean per-instance slope of log(e_ae-ls/e_ae-lasso) against log λ < 0). The "
        "fixed point of g_dec lies at distance ∝ λ (the λ√s bias), that of g_ae-ls at O(λ²); both are "
        "O-bounds, and at small λ the order REVERSES: below a crossover λ* (≈ 0.11 against g_ae-lasso "
        "in the pilot) g_ae-ls ends farther from D* than g_ae-lasso. λ* is estimated per instance by "
        "interpolating the log ratio in log λ and reported with its interval, against g_ae-lasso and "
        "against g_dec.")
    kind = "ordering"
    effect = (
        "Pilot (root seed 20000, 6 instances, ci sizes): log(e_ae-ls/e_ae-lasso) = +0.075, −0.12, −0.42, "
        "−0.65, −0.89 and log(e_ae-ls/e_dec) = −0.04, −0.23, −0.52, −0.72, −0.91 at λ = 0.1, 0.125, 0.16, "
        "0.2, 0.4 (sd ≤ 0.07); final errors at λ = 0.2: 0.067 (dec), 0.062 (ae-lasso), 0.033 (ae-ls). "
        "Earlier pilot (root seed 12345, λ = 0.2, 10 instances): −0.65 (sd 0.044) and −0.73 (sd 0.037). "
        "Design for an effect of 0.5 at sd 0.1 (three quarters of the pilot effect, over 1.5 times its "
        "sd): t_test_n(0.5, 0.1, α = 6e-4 [Holm worst case], β = 0.05) = 6 instances; the trend part "
        "has a slope ≈ −0.7 per unit log λ. quick is not decided (see regime).")
    regime = (
        "m = 40, p = 60, s = 3 (μ ≈ 0.54), n = 400 examples (so that the λ-bias and not the finite "
        "sample sets the fixed points), independent signs, c = 0.02 (relative error ≈ 0.12), α = 0.2, "
        "λ ∈ {0.1, 0.2, 0.4}, T = 30 layers, full-batch gradient descent with η = p/(4s) = 5 (the step "
        "of II.2), 30 steps. The sizes are smaller than II.3a–c so that nine training runs per instance "
        "fit the CPU budget; the initial distance is not swept (II.3c sweeps it for the gradients). "
        "At λ = 0.2 the pilot curves plateau by step ≈ 10 (ae-ls) and ≈ 24 (dec); at λ = 0.1 they still "
        "drift by about 1 % per 5 steps at step 30 (T = 30 layers converge slowly at small λ; at "
        "λ = 0.05 the errors drift without a plateau, so the sweep starts at 0.1). The table has every "
        "step (Fig. 2b) and the decision reports the change over the last 20 % of steps. The crossover "
        "against g_dec lies below 0.1 on most pilot instances (censored, reported as such). Paper "
        "profile: the paper's learning setting (m = 50, p = 100, s = 5, n = 10 000, c = 0.1, shared "
        "signs, Adam lr 1e-3, 600 steps, T ∈ {25, 50, 100}). quick runs the ci training at λ = 0.2 "
        "only, on 4 instances: without the λ sweep it is reported, not decided (decides_at). It keeps "
        "n = 400: at n = 200 (the former quick size) the control's bug is invisible — g_ae-ls without "
        "the mask still ends ahead of g_dec (root seed 10300: log ratios −0.07 … 0, against +0.41 … "
        "+0.49 at n = 400), so the kill depends on the sample size.")
    control = (
        "Mutant no-active-set-mask: the lean adjoint forgets the soft threshold's derivative, so the "
        "g_ae-ls and g_ae-lasso that drive learning carry a spurious term from the un-thresholded linear "
        "map. The claim must see it: the ordering is about learning with gradients backpropagated "
        "through the thresholded encoder. Pilots at λ = 0.2 (root seed 10000): g_ae-ls ends farther "
        "from D* than g_dec, mean log ratio +0.48 (ci sizes) and +0.47 [0.37, 0.57] (quick). The kill "
        "needs n = 400 examples (see regime). Must FAIL.")
    control_mutant = "no-active-set-mask"
    decides_at = ("ci", "paper")
    requires = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": when("e_ae-ls / e_dec",
                     "learning with g_ae-ls no longer ends closer to D* than with g_dec (mean log(e_ae-ls/e_dec) "
                     "= {statistic:.2g}, needs < 0): the ordering rests on g_dec's O(λ) bias from a fixed soft "
                     "threshold, which decaying or learned thresholds shrink"),
    }
    Cell = LearningNeighbourhoodCell
    schema = {"lam": "float", "step_index": "int", "estimator": "str", "dict_error": "float",
              "dict_error_max": "float", "loss": "float", "coherence": "float", "init_error": "float"}
    profiles = {
        "quick": {"cells": [replace(_D, lam_lo=LAMBDA_DECIDE, lam_hi=LAMBDA_DECIDE, n_lam=1)], "n_instances": 4},
        "ci": {"cells": [_D], "n_instances": 6},
        "paper": {"cells": [replace(_D, m=50, p=100, s=5, n=10000, init_scale=0.1, sign="shared", T=T, lr=1e-3,
                                 n_steps=600, optimizer="adam") for T in (25, 50, 100)], "n_instances": 20},
    }

    def simulate(self, cell, seeds, ctx):
        """Long table (instance, λ, step, estimator) of the dictionary error during training; the same
        instances and start at every λ."""
        inst = _instances(cell, seeds, ctx)
        return pd.concat([_simulate_training(inst, cell, ctx, float(lam))
                          for lam in _lam_grid(cell.lam_lo, cell.lam_hi, cell.n_lam, cell.lam_decide)],
                         ignore_index=True)

    def hypotheses(self, cell, table):
        """μ(2s − 1) < 1, λ > s·log m/√m (largest λ), the start within 1/log p (:func:`_hypotheses`)."""
        return _hypotheses(cell, table, cell.lam_hi)

    def decide(self, table):
        """Paired one-sided t tests of the final log error ratios at lam_decide and of the λ trend;
        λ* per instance (:func:`crossover`) against g_ae-lasso and g_dec."""
        last = table[table["step_index"] == table["n_steps"]]
        w = last.pivot_table(index=["cell", "instance", "lam", "lam_decide"], columns="estimator",
                             values="dict_error", aggfunc="first").reset_index()
        w = w.assign(ls_lasso=np.log(w["ae-ls"] / w["ae-lasso"]), ls_dec=np.log(w["ae-ls"] / w["dec"]),
                     log_lam=np.log(w["lam"]))
        d = w[np.isclose(w["lam"], w["lam_decide"], rtol=GRID_RTOL, atol=0.0)]
        lam_decide = float(d["lam"].iloc[0])
        parts = {
            "ae-ls < ae-lasso": stats.mean_test(d["ls_lasso"], threshold=0.0, side="less", alpha=self.alpha,
                                                name=f"mean log(e_ae-ls / e_ae-lasso) at the end, λ = {lam_decide:g}"),
            "ae-ls < dec": stats.mean_test(d["ls_dec"], threshold=0.0, side="less", alpha=self.alpha,
                                           name=f"mean log(e_ae-ls / e_dec) at the end, λ = {lam_decide:g}"),
        }
        if w["lam"].nunique() >= 2:        # a sweep (the quick profile, not decided, has one λ)
            slopes = stats.group_slopes(w, "log_lam", "ls_lasso", by=["cell", "instance"])
            parts["advantage grows with λ"] = stats.mean_test(
                slopes, threshold=0.0, side="less", alpha=self.alpha,
                name="slope of log(e_ae-ls / e_ae-lasso) against log λ")
        verdict = all_of(parts, n=len(d), alpha=self.alpha, primary="ae-ls < dec")
        by_cell = {str(int(c)): {"lambda_star": _crossover_summary(_crossovers(g, "lam", "ls_lasso"), self.alpha),
                                 "lambda_star_vs_dec": _crossover_summary(_crossovers(g, "lam", "ls_dec"), self.alpha)}
                   for c, g in w.groupby("cell", sort=True)}
        # plateau over the last PLATEAU_FRACTION of the steps, and the early picture, at lam_decide
        at = table[_at(table, "lam", lam_decide)]
        e = _pivot(at, "dict_error", at["step_index"] == at["n_steps"])
        n_steps = int(at["n_steps"].max())
        back = max(1, int(round(PLATEAU_FRACTION * n_steps)))
        earlier = _pivot(at, "dict_error", at["step_index"] == n_steps - back)
        early = _pivot(at, "dict_error", at["step_index"] == min(3, n_steps))
        curve = at.groupby(["estimator", "step_index"])["dict_error"].median()
        final = w.groupby("lam")[list(KINDS)].median()
        return _with_detail(
            verdict, lam_decide=lam_decide, by_cell=by_cell,
            lambda_star=by_cell[min(by_cell, key=int)]["lambda_star"],
            lambda_star_vs_dec=by_cell[min(by_cell, key=int)]["lambda_star_vs_dec"],
            final_error_median_by_lam={f"{lam:g}": {k: float(final.loc[lam, k]) for k in KINDS} for lam in final.index},
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
        """Dictionary error against the training step, per estimator (at the decision λ)."""
        t = fi.table
        fi.need("step_index", "estimator", "dict_error")
        if {"lam", "lam_decide"} <= set(t.columns):
            t = t[np.isclose(t["lam"].to_numpy(float), t["lam_decide"].to_numpy(float), rtol=GRID_RTOL, atol=0.0)]
        fig, (a,) = plot.new_figure(1, width=6.0, height=4.2)
        plot.by_estimator(a, t, "step_index", "dict_error")
        a.set_yscale("log")
        a.set_xlabel("training step")
        a.set_ylabel(r"$\|D - D^*\|_F / \|D^*\|_F$")
        a.set_title(r"learning with $g_{\mathrm{ae}\text{-}\mathrm{ls}}$ ends closest to $D^*$")
        plot.legend(a, title=plot.first_curve_note(t, "estimator"),
                    title_fontsize=8)
        return fig

    @figure("final-error-vs-lambda",
            "The end of training over the λ sweep: final relative dictionary error of each estimator "
            "against λ (log-log; median and 10–90 % band over instances). Solid vertical line and "
            "shading: the crossover λ* above which g_ae-ls ends closer to D* than g_ae-lasso (geometric "
            "mean of the interpolated crossings, with its interval); dashed: the λ at which the ordering "
            "is decided.")
    def draw_lambda(self, fi: FigureInput):
        """Final dictionary error against λ per estimator, with λ* (and interval) and the decision λ."""
        t = fi.table
        fi.need("lam", "step_index", "n_steps", "estimator", "dict_error")
        last = t[t["step_index"] == t["n_steps"]]
        fig, (a,) = plot.new_figure(1, width=7.2, height=4.4)
        plot.by_estimator(a, last, "lam", "dict_error")
        cell = str(int(plot.cell_value(t, "cell", 0)))
        star = (((fi.record.get("detail") or {}).get("by_cell") or {}).get(cell) or {}).get("lambda_star") or {}
        est, (lo, hi) = star.get("estimate"), (star.get("interval") or [None, None])[:2]
        if est is not None and np.isfinite(est):
            ci = f" [{lo:.3g}, {hi:.3g}]" if lo is not None and np.isfinite(lo) and np.isfinite(hi) else ""
            a.axvline(float(est), color="black", linewidth=1.2, label=f"λ* = {est:.3g}{ci} (vs g_ae-lasso)")
            if ci:
                a.axvspan(float(lo), float(hi), color="black", alpha=0.12, linewidth=0)
        lam_decide = plot.cell_value(t, "lam_decide")
        if lam_decide is not None:
            a.axvline(float(lam_decide), color="0.3", linestyle="--", linewidth=1,
                      label=f"decision at λ = {float(lam_decide):g}")
        a.set_xscale("log")
        a.set_yscale("log")
        plot.data_ticks(a.xaxis, np.sort(last["lam"].unique()))
        a.set_xlabel("λ (sparsity weight)")
        a.set_ylabel(r"final $\|D - D^*\|_F / \|D^*\|_F$")
        a.set_title(r"$g_{\mathrm{ae}\text{-}\mathrm{ls}}$ ends closest to $D^*$ above λ*")
        plot.legend(a, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8,
                    title=plot.curve_note(last, "lam"), title_fontsize=8)
        return fig
