r"""Theorem II.6 — the λ floor of the learned dictionary, and its removal.

Statement (journal version, Sec. on bias removal). With a fixed λ, dictionary learning with g_ae-ls
(backpropagation of the least-squares loss through T layers of ISTA) stalls at a floor: the
fixed point where the λ-bias of the codes balances the pull towards D*. The floor grows with the
sparsity s. Decaying λ across layers (λ_t = λ·β^t, β lowered during training) or replacing the soft
threshold by a hard one (IHT, threshold τ) removes the bias of the codes and so the floor: training
reaches errors far below it (paper: m = 1000, p = 1500, s = 10/20/40, minibatches of 50, start at
relative error 0.156).

========  ===========================================================================  ========
claim     what is tested                                                               kind
========  ===========================================================================  ========
II.6a     the fixed-λ final dictionary error plateaus above zero (> 1e-3) and grows     rate
          with s (per-instance log-log slope over s > 0.3); the exponent is reported
II.6b     hard thresholding ends ≥ 10× below the fixed-λ plateau on the same           ordering
          instances (paired); λ-decay's improvement factor is measured and tested
          against 10× (reported: ≈ 3–4× at the scaled-down cells; decided at 10× in
          the paper profile)
========  ===========================================================================  ========

Training is full-batch gradient descent with column normalisation, D ← normalise(D − η g_ae-ls),
η = lr_factor·p/s (the per-atom usage n·s/p sets the scale of g), from D⁽⁰⁾ = normalise(D* + c·N(0,1)).
The scaled-down cells (m = p = 60, n = 300) need a larger encoder step than the paper's α = 0.2
and a larger τ: at α = 0.2 and T = 30 the iterates are not converged (|1 − α·eig| ≈ 0.8 per layer)
and IHT with τ = 0.1 keeps spurious entries — at D = D* only 1 % of the examples are recovered
exactly (pilot, root seed 10081, m = 60, p = 80); at α = 0.4, τ = 0.2–0.3 all are. So α = 0.4
(α‖D‖² ≈ 1.6 < 2), τ = 0.25, T = 20 (T = 15 leaves IHT a floor of ≈ 1e-4 and λ-decay none of its
gain). The dictionary is complete (p = m), not overcomplete: at m = 50, p = 60 λ-decay gains only
≈ 2× (μ is larger), and m = 60, p = 80 costs 1.8× more for the same picture; training is affordable
only at these sizes on the CI CPU. The paper profile keeps the paper's α = 0.2, τ = 0.1, T = 100
at m = 1000, p = 1500.

λ-decay schedule (the paper only says "β lowered during training"; the authors' code lowers β by
0.005 every 100 minibatches from 1): β_l = 1 − (1 − β_end)·min(1, l/(decay_frac·L)) — linear from 1
(plain ISTA) to β_end over the first decay_frac of the L steps, then constant; layer t of the
encoder uses λ_t = λ·β_l^t. Pilot (root seeds 10071–10074): a β fixed from the first step fails
(errors 0.08–0.13, the far start's codes lose their support), and β_end below 0.9 lets the late
layers' thresholds vanish and the codes drift off the support (β_end = 0.85: floor 0.007; 0.8:
0.015, above the fixed-λ 0.0094; a floor λ_min = 0.02–0.04 on λ_t does not help). β_end = 0.9 over
the first half: ≈ 3–7× below fixed λ depending on the cell and the instance (min 1.3×) — the
scaled-down cells do not reach the paper's 10× for λ-decay; hard thresholding does (≈ 50–400×).

Negative controls (plausible bugs in the code the claims exercise). II.6a: the data generator
ignores the requested sparsity and draws every cell at the smallest s (the step η still follows the
requested s). II.6b: the hard threshold is implemented as a soft one at the same level τ (ISTA with
λ = τ/α); where λ-decay is decided, its schedule is also indexed from the end (strong decay first).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from udl import core
from udl.engine import (
    Claim,
    Context,
    FigureInput,
    Verdict,
    all_of,
    canonical_cell,
    figure,
    stats,
)
from udl.engine import plotting as plot

__all__ = ["FloorGrowth", "FloorRemoval", "decay_schedule", "floor_exponents", "plateaus", "sparsity_grid"]

VARIANTS = ("fixed", "decay", "hard")

# --------------------------------------------------------------------------- constants
#: II.6a: a plateau below this is "zero". Under the same training, hard thresholding reaches
#: ≤ 6e-4 after 35 steps and keeps falling (pilot); the fixed-λ plateaus are ≥ 9e-3.
ZERO_FLOOR = 1e-3
#: II.6a: "grows with s": the per-instance OLS slope of log plateau on log s is above this (the
#: plateau rises by ≥ 23 % per doubling of s). Pilot exponent ≈ 1.0 (s = 2, 4, 8); a flat plateau
#: (the control) has slope 0.
GROWTH_MIN = 0.3
#: II.6a/b: the plateau is the error at the last step; its relative drift over this many final
#: steps says whether it has been reached.
PLATEAU_WINDOW = 3
#: II.6a: "the plateau has been reached": the largest relative drift over PLATEAU_WINDOW steps (over s)
#: has mean below this. Pilot (root seeds 10071–10076 and 10101–10301, m = p = 60, 20–25 steps): ≤ 1 %
#: on most instances, one of 15 at ≈ 10 %. A run still converging (the control: a step η four times
#: too small for its codes) drifts by ≈ 20 % (pilot 0.19–0.23).
DRIFT_MAX = 0.05
#: II.6b: hard thresholding must end at least this many times below the fixed-λ plateau.
HARD_FACTOR = 10.0
#: In-process cache of training runs shared by a claim and its control: entries.
CACHE_SIZE = 4


# --------------------------------------------------------------------------- helpers
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _tick(ctx: Context, k: int = 1) -> None:
    if ctx.progress is not None:
        ctx.progress(k)


def sparsity_grid(cell) -> list[int]:
    """The sparsities of a II.6a cell: ``n_s`` integers geometric from ``s_lo`` to ``s_hi`` (distinct)."""
    if not 1 <= cell.s_lo < cell.s_hi or cell.n_s < 2:
        raise ValueError(f"need 1 <= s_lo < s_hi and n_s >= 2, got s_lo={cell.s_lo}, s_hi={cell.s_hi}, "
                         f"n_s={cell.n_s}")
    grid = sorted({round(v) for v in np.geomspace(cell.s_lo, cell.s_hi, cell.n_s)})
    if len(grid) < 2:
        raise ValueError(f"the sparsity grid {grid} has fewer than 2 distinct values")
    return grid


def decay_schedule(step: int, n_steps: int, beta_end: float, frac: float) -> float:
    """β of training step ``step``: linear from 1 to ``beta_end`` over the first ``frac``·n_steps
    steps, then ``beta_end`` (frac = 0: ``beta_end`` from the start).

    Raises
    ------
    ValueError
        ``beta_end`` not in (0, 1] or ``frac`` not in [0, 1].
    """
    if not 0 < beta_end <= 1 or not 0 <= frac <= 1:
        raise ValueError(f"need 0 < beta_end <= 1 and 0 <= frac <= 1, got beta_end={beta_end}, frac={frac}")
    ramp = frac * n_steps
    progress = 1.0 if ramp <= 0 else min(1.0, step / ramp)
    return 1.0 - (1.0 - beta_end) * progress


def _decay_encoder(beta: float):
    """The encoder with λ_t = λ·β^t; β = 1 is plain ISTA (same layers) and runs on its lean path."""
    return core.ISTA() if beta == 1.0 else core.LambdaDecayISTA(decay=beta)


def _learn(inst: core.Instances, encoders, *, lam: float, step: float, T: int, lr: float, ctx: Context) -> np.ndarray:
    """Gradient descent with g_ae-ls and column normalisation; ``encoders(l)`` gives layer l's encoder
    and the λ it is called with. Returns the relative errors (L + 1, B)."""
    D = inst.D0.clone()
    errors = [_np(core.dictionary_error(D, inst.D_star)["fro"])]
    for l, (encoder, lam_l) in enumerate(encoders):
        g = core.gradients(inst.X, D, lam=lam_l, step=step, T=T, kinds=("ae-ls",), encoder=encoder)["ae-ls"]
        with torch.no_grad():
            D = core.normalize_columns(D - lr * g)
        errors.append(_np(core.dictionary_error(D, inst.D_star)["fro"]))
        _tick(ctx)
    return np.stack(errors)


def _curves(errors: np.ndarray, **columns) -> pd.DataFrame:
    L, B = errors.shape
    return pd.DataFrame({"instance": np.tile(np.arange(B), L).astype(np.int64),
                         "train_step": np.repeat(np.arange(L), B).astype(np.int64),
                         **columns, "dict_error": errors.ravel()})


def plateaus(table: pd.DataFrame, by) -> pd.DataFrame:
    """Plateau (error at the last step) and its relative drift over :data:`PLATEAU_WINDOW` steps."""
    t = table.sort_values("train_step")
    g = t.groupby(list(by), sort=True)["dict_error"]
    last = g.last()
    before = g.apply(lambda e: float(e.iloc[-1 - PLATEAU_WINDOW]) if len(e) > PLATEAU_WINDOW else math.nan)
    return pd.DataFrame({"plateau": last, "drift": ((before - last) / last).fillna(0.0)}).reset_index()


def floor_exponents(pl: pd.DataFrame) -> pd.Series:
    """Per-instance OLS slope of log plateau on log s (rows: cell, instance, s, plateau)."""
    t = pl.assign(log_s=np.log(pl["s"].astype(float)), log_plateau=np.log(pl["plateau"]))
    return stats.group_slopes(t, "log_s", "log_plateau", by=["cell", "instance"])


_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()


def _cached(key: tuple, compute) -> np.ndarray:
    """Cached training run (LRU of :data:`CACHE_SIZE`): a claim's run that its control repeats exactly."""
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = compute()
    _CACHE[key] = value
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def _key(tag: str, cell, seeds, ctx: Context) -> tuple:
    enc = ctx.encoder
    enc_key = None if enc is None else (type(enc).__module__, type(enc).__qualname__, repr(enc))
    return (tag, canonical_cell(cell), tuple(int(s) for s in seeds), str(ctx.device), str(ctx.dtype), enc_key,
            getattr(ctx, "mutant", None))   # a run under a mutant (udl.engine.mutants) must never share it


# --------------------------------------------------------------------------- II.6a
@dataclass(frozen=True)
class FloorCell:
    """A cell of II.6a: sizes m, p, n; the sparsity grid (n_s values geometric from s_lo to s_hi); D⁽⁰⁾
    distance c; λ; encoder step α; T layers; dictionary step η = lr_factor·p/s; n_steps."""

    m: int
    p: int
    n: int
    s_lo: int
    s_hi: int
    n_s: int
    init_scale: float
    lam: float
    step: float
    T: int
    lr_factor: float
    n_steps: int


_FA = FloorCell(m=60, p=60, n=300, s_lo=2, s_hi=8, n_s=3, init_scale=0.02, lam=0.2, step=0.4, T=20,
                lr_factor=0.25, n_steps=25)


class FloorGrowth(Claim):
    """II.6a — with fixed λ, g_ae-ls learning stalls at a floor that grows with s."""

    id = "II.6a"
    theorem = "II.6"
    title = "fixed-λ dictionary learning with g_ae-ls plateaus above zero, higher for larger s"
    statement = (
        "Gradient descent with g_ae-ls (T = 20 layers of ISTA, λ = 0.2, α = 0.4) and column normalisation, "
        "from D⁽⁰⁾ = normalise(D* + 0.02·N(0,1)) (relative error ≈ 0.15), ends on a plateau e_∞(s) of the "
        "relative dictionary error that has been reached (mean over instances of the largest relative drift "
        "over the last 3 steps < 5 %), is above zero (mean log10 e_∞ at the smallest s > −3) and grows with "
        "the sparsity s: the per-instance OLS slope of log e_∞ on log s over s = 2, 4, 8 (the same D* per "
        "instance) has mean > 0.3. The slope — the floor's exponent in s — is reported with its interval "
        "(pilot ≈ 1.1–1.2).")
    kind = "rate"
    effect = (
        "Intersection–union of three one-sided t tests over instances. Pilot (root seeds 10101, 10201, ci "
        "design, 6 instances): plateaus ≈ 0.0099 / 0.017 / 0.049 at s = 2 / 4 / 8, exponent 1.15 [1.05, "
        "1.25] and 1.12 [1.00, 1.24]; log10 plateau at s = 2 ≈ −2.0 (sd 0.03); drift ≤ 1 %. The smallest "
        "effect, an exponent 0.6 (0.3 above the threshold) at sd 0.15, needs t_test_n(0.3, 0.15, α = 5e-4 "
        "[Holm worst case], β = 0.05) = 6; 6 instances (quick: 5, s ∈ {2, 8}).")
    regime = (
        "m = p = 60 (μ ≈ 0.45; see the module docstring for why a complete dictionary), n = 300 examples, "
        "full batch, s ∈ {2, 4, 8} with the same n (as the paper: more atom usage at larger s, which by "
        "itself would lower a finite-sample floor), independent signs, noiseless, λ = 0.2, α = 0.4, T = 20, "
        "η = p/(4s) (η = p/(2s) overshoots: pilot), 25 steps. paper: m = 1000, p = 1500, s = 10/20/40, "
        "c = 0.005 (relative error ≈ 0.16), α = 0.2, T = 100, full batch of n = 3000 instead of the paper's "
        "minibatches of 50, 60 steps, 10 instances. quick: s ∈ {2, 8}, 5 instances.")
    control = (
        "The data generator ignores the requested sparsity (every cell's codes drawn at s = s_lo, a keyword "
        "not passed through) while the step still follows the requested s: the s = 8 run is a slow s = 2 run "
        "(η four times too small) that has not reached its plateau after 25 steps (pilot drift 15–23 %), so "
        "the plateau part FAILS — what looks like growth in s is a run still converging. Must FAIL.")
    requires = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the encoder's learned dictionary does not show the λ floor growing with s ({statistic_name}: "
                "{statistic:.3g})",
    }
    Cell = FloorCell
    schema = {"train_step": "int", "s": "int", "lr": "float", "s_drawn": "int", "dict_error": "float", "coherence": "float",
              "init_error": "float"}
    profiles = {
        "quick": {"cells": [replace(_FA, n_s=2)], "n_instances": 5},
        "ci": {"cells": [_FA], "n_instances": 6},
        "paper": {"cells": [FloorCell(m=1000, p=1500, n=3000, s_lo=10, s_hi=40, n_s=3, init_scale=0.005,
                                      lam=0.2, step=0.2, T=100, lr_factor=0.25, n_steps=60)],
                  "n_instances": 10},
    }

    def simulate(self, cell, seeds, ctx):
        """Error trajectories per s (long format: step × instance × s)."""
        encoder = ctx.encoder_under_test()
        grid = sparsity_grid(cell)
        frames = []
        for s in grid:
            drawn = grid[0] if ctx.control else s
            inst = core.make_instances(cell.m, cell.p, drawn, cell.n, init_scale=cell.init_scale, seed=list(seeds),
                                       dtype=ctx.dtype, device=ctx.device)
            lr = cell.lr_factor * cell.p / s
            # keyed on what is computed (codes drawn at `drawn`, step η): the control's run at s_lo is
            # the claim's own and is not recomputed
            key = _key(f"{self.id}/s={drawn}/lr={lr!r}/{encoder!r}", cell, seeds, ctx)
            errors = _cached(key, lambda inst=inst, lr=lr: _learn(inst, [(encoder, cell.lam)] * cell.n_steps,
                                                                  lam=cell.lam, step=cell.step, T=cell.T, lr=lr, ctx=ctx))
            L = errors.shape[0]
            frames.append(_curves(errors, s=s, lr=lr, s_drawn=drawn)
                          .assign(coherence=np.tile(_np(inst.coherence), L), init_error=np.tile(_np(inst.init_error), L)))
        return pd.concat(frames, ignore_index=True)

    def decide(self, table):
        """t tests: log10 plateau at the smallest s > log10 ZERO_FLOOR; slope of log plateau on log s > GROWTH_MIN."""
        pl = plateaus(table, by=("cell", "instance", "s"))
        slopes = floor_exponents(pl)
        lowest = pl.sort_values("s").groupby(["cell", "instance"]).head(1)
        drift = pl.groupby(["cell", "instance"])["drift"].max()
        parts = {
            "growth in s": stats.mean_test(slopes, threshold=GROWTH_MIN, side="greater", alpha=self.alpha,
                                           name="log-log slope of the fixed-λ plateau in s"),
            "plateau > 0": stats.mean_test(np.log10(lowest["plateau"]), threshold=math.log10(ZERO_FLOOR),
                                           side="greater", alpha=self.alpha,
                                           name="log10 plateau at the smallest s"),
            "plateau reached": stats.mean_test(drift, threshold=DRIFT_MAX, side="less", alpha=self.alpha,
                                               name=f"largest relative drift over the last {PLATEAU_WINDOW} steps"),
        }
        verdict = all_of(parts, n=len(slopes), alpha=self.alpha, primary="growth in s")
        detail = dict(verdict.detail,
                      exponent_mean=float(slopes.mean()),
                      exponent_interval=list(parts["growth in s"].interval),
                      plateau_median_by_s={str(int(s)): float(v) for s, v in pl.groupby("s")["plateau"].median().items()},
                      drift_max=float(pl["drift"].abs().max()),
                      init_error_median=float(table["init_error"].median()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

    @figure("plateau-vs-s",
            "Left: relative dictionary error against the training step under fixed-λ g_ae-ls learning, one "
            "band per sparsity s (median over instances, 10–90 %). Right: the plateau (last step) against s, "
            "per instance (thin) and median (bold), log-log, with the mean fitted exponent.",
            per_cell=False)
    def draw_plateau(self, fi: FigureInput):
        """Error curves per s (left) and plateau against s (right)."""
        t = fi.table
        fi.need("train_step", "s", "dict_error")
        svals = sorted(t["s"].unique())
        fig, (a, b) = plot.new_figure(2)
        for s, c in zip(svals, plot.palette(len(svals))):
            plot.band(a, t[t["s"] == s], "train_step", "dict_error", colour=c, label=f"s = {int(s)}", positive=True)
        a.set_yscale("log")
        a.set_xlabel("training step")
        a.set_ylabel(r"$\|D - D^*\|_F/\|D^*\|_F$")
        plot.legend(a, title=plot.band_note(plot.instances_of(t[t["s"] == svals[0]])), title_fontsize=8)
        pl = plateaus(t, by=[k for k in ("cell", "instance", "s") if k in t.columns])
        for _, g in pl.groupby([k for k in ("cell", "instance") if k in pl.columns]):
            b.plot(g["s"], g["plateau"], color="0.75", linewidth=0.8)
        med = pl.groupby("s")["plateau"].median()
        b.plot(med.index, med.values, color=plot.palette(1)[0], marker="o", linewidth=2, label="median plateau")
        slope = (fi.record.get("detail") or {}).get("exponent_mean")
        if slope is not None and len(med):
            plot.ref_line(b, med.index.to_numpy(float), float(slope), float(med.index[0]), float(med.iloc[0]),
                          label=f"fitted exponent {float(slope):.2f}")
        b.set_xscale("log")
        b.set_yscale("log")
        plot.data_ticks(b.xaxis, med.index)
        b.set_xlabel("sparsity s")
        b.set_ylabel("plateau")
        plot.legend(b, loc="upper left")
        return fig


# --------------------------------------------------------------------------- II.6b
@dataclass(frozen=True)
class RemovalCell:
    """A cell of II.6b: sizes m, p, n, s; D⁽⁰⁾ distance c; λ; encoder step α; T layers; η = lr_factor·p/s;
    n_steps; hard threshold τ; decay schedule (beta_end reached after decay_frac of the steps); the
    factor by which λ-decay must end below the fixed-λ plateau."""

    m: int
    p: int
    n: int
    s: int
    init_scale: float
    lam: float
    step: float
    T: int
    lr_factor: float
    n_steps: int
    tau: float
    beta_end: float
    decay_frac: float
    decay_factor: float


_FB = RemovalCell(m=60, p=60, n=450, s=2, init_scale=0.02, lam=0.2, step=0.4, T=20, lr_factor=0.25, n_steps=40,
                  tau=0.25, beta_end=0.9, decay_frac=0.5, decay_factor=0.0)


class FloorRemoval(Claim):
    """II.6b — λ-decay and hard thresholding end far below the fixed-λ plateau."""

    id = "II.6b"
    theorem = "II.6"
    title = "hard thresholding ends ≥ 10× below the fixed-λ plateau; λ-decay's gain is measured"
    statement = (
        "On the same instances and training (g_ae-ls, gradient descent with column normalisation, as II.6a "
        "at s = 2 with n = 450 examples, 40 steps), the final relative dictionary error of hard thresholding (IHT, τ = 0.25) is at "
        "least 10× below that of fixed λ: the mean paired log10(e_hard/e_fixed) is below −1. The final error "
        "of λ-decay (λ_t = λ·β^t, β lowered from 1 to 0.9 over the first half of training) is compared with "
        "the fixed-λ plateau too and its improvement factor reported with an interval; at the scaled-down "
        "cells it is ≈ 3–4×, not the paper's 10× (``decay_vs_10x`` FAILS: reported, not decided; the paper "
        "profile decides it at 10×). Hard thresholding has no floor (its error keeps falling "
        "geometrically); λ-decay has one of its own, set by the small late thresholds.")
    kind = "ordering"
    effect = (
        "One-sided paired t test over instances (plus the decay part in the paper profile). Pilot (root "
        "seeds 10101, 10201, n = 300, 50 steps, 8 instances): log10(e_hard/e_fixed) mean −2.24 [−2.86, −1.62] "
        "and −2.61 [−3.17, −2.04] (sd ≈ 0.6: the rarely used atoms converge slowly); with n = 450 and 40 "
        "steps (same cost; root seed 10501) −2.83, sd 0.35 (hard 4e-6–6e-5, fixed ≈ 0.0068). log10(e_decay/"
        "e_fixed) at n = 300: −0.50 [−0.75, −0.25] and −0.59 [−0.64, −0.53]. The hard part's effect 1.2 "
        "below −1 at sd 0.5 needs t_test_n(1.2, 0.5, α = 5e-4, β = 0.05) = 6; 8 instances (quick: 6; 5 gave p = 5.6e-4 on root seed 10101).")
    regime = (
        "m = p = 60, n = 450, s = 2 (usage n·s/p = 15 per atom: every atom learns at a similar rate), λ = 0.2, "
        "α = 0.4, T = 20, τ = 0.25, η = p/(4s) = 7.5, 40 steps (hard thresholding still gains at the end), "
        "c = 0.02; "
        "decay β_end = 0.9 over the first 50 % of the steps (see the module docstring for the pilots behind "
        "α, τ, T and the schedule). paper: m = 1000, p = 1500, s = 10, n = 3000, α = 0.2, T = 100, τ = 0.1 "
        "(the paper's), β_end = 0.95 (the authors' code reaches 0.95 after 1000 minibatches), decay decided "
        "at 10× (the paper's claim), 60 steps, 10 instances.")
    control = (
        "The hard threshold implemented as a soft one at the same level τ (ISTA with λ = τ/α): shrinkage bias "
        "again, a floor ≈ 8× above fixed λ's (pilot log10 ratio +0.93), so the hard part FAILS. Where the "
        "decay part is decided (paper profile) the control also indexes the decay schedule from the end "
        "(strong decay while D is far, none at the end: pilot ratio ≈ 0.8). Must FAIL.")
    requires = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})
    audit_sentences = {
        "FAIL": "the bias-free variants do not beat this encoder's fixed-λ floor ({statistic_name}: {statistic:.3g})",
    }
    Cell = RemovalCell
    schema = {"variant": "str", "train_step": "int", "beta": "float", "lr": "float", "dict_error": "float",
              "coherence": "float", "init_error": "float"}
    profiles = {
        "quick": {"cells": [_FB], "n_instances": 6},
        "ci": {"cells": [_FB], "n_instances": 8},
        "paper": {"cells": [RemovalCell(m=1000, p=1500, n=3000, s=10, init_scale=0.005, lam=0.2, step=0.2, T=100,
                                        lr_factor=0.25, n_steps=60, tau=0.1, beta_end=0.95, decay_frac=0.5,
                                        decay_factor=10.0)], "n_instances": 10},
    }

    def simulate(self, cell, seeds, ctx):
        """Error trajectories of the fixed-λ encoder and the two variants (long format)."""
        inst = core.make_instances(cell.m, cell.p, cell.s, cell.n, init_scale=cell.init_scale, seed=list(seeds),
                                   dtype=ctx.dtype, device=ctx.device)
        lr = cell.lr_factor * cell.p / cell.s
        L = cell.n_steps
        betas = [decay_schedule(l, L, cell.beta_end, cell.decay_frac) for l in range(L)]
        runs = {"fixed": [(ctx.encoder_under_test(), cell.lam)] * L}
        if ctx.control:   # the hard threshold implemented as a soft one at the same level τ
            runs["hard"] = [(core.ISTA(), cell.tau / cell.step)] * L
            if cell.decay_factor > 1.0:   # decided only then: the schedule indexed from the end
                runs["decay"] = [(_decay_encoder(b), cell.lam) for b in betas[::-1]]
        else:
            runs["decay"] = [(_decay_encoder(b), cell.lam) for b in betas]
            runs["hard"] = [(core.HardThresholdISTA(tau=cell.tau), cell.lam)] * L
        frames = []
        for name, encoders in runs.items():
            # keyed on what is computed (the encoder of every step), not on the label: the control's
            # fixed-λ run is the claim's and is not recomputed
            key = _key(f"{self.id}/{[(type(e).__name__, repr(e), v) for e, v in encoders]}", cell, seeds, ctx)
            errors = _cached(key, lambda encoders=encoders: _learn(inst, encoders, lam=cell.lam, step=cell.step,
                                                                   T=cell.T, lr=lr, ctx=ctx))
            rows = errors.shape[0]
            used = (betas[::-1] if ctx.control else betas) if name == "decay" else [1.0] * (rows - 1)
            beta_col = np.repeat(np.asarray(used + [used[-1]]), len(seeds))
            frames.append(_curves(errors, variant=name, beta=beta_col, lr=lr)
                          .assign(coherence=np.tile(_np(inst.coherence), rows),
                                  init_error=np.tile(_np(inst.init_error), rows)))
        return pd.concat(frames, ignore_index=True)

    def decide(self, table):
        """Paired t tests of log10(e_variant/e_fixed) at the last step: hard < −log10 10, decay < −log10 k."""
        pl = plateaus(table, by=("cell", "instance", "variant"))
        wide = pl.pivot_table(index=["cell", "instance"], columns="variant", values="plateau")
        factor = float(table["decay_factor"].iloc[0])
        variants = [v for v in ("hard", "decay") if v in wide.columns]
        log_ratio = {v: np.log10(wide[v] / wide["fixed"]) for v in variants}
        parts = {
            "hard ≥ 10× below": stats.mean_test(log_ratio["hard"], threshold=-math.log10(HARD_FACTOR), side="less",
                                                alpha=self.alpha, name="mean log10(e_hard/e_fixed)"),
        }
        decay_10x = (stats.mean_test(log_ratio["decay"], threshold=-1.0, side="less", alpha=self.alpha,
                                     name="mean log10(e_decay/e_fixed) against 10× below")
                     if "decay" in log_ratio else None)
        if factor > 1.0:
            parts[f"decay ≥ {factor:g}× below"] = stats.mean_test(log_ratio["decay"], threshold=-math.log10(factor),
                                                                  side="less", alpha=self.alpha,
                                                                  name="mean log10(e_decay/e_fixed)")
        verdict = all_of(parts, n=len(wide), alpha=self.alpha, primary="hard ≥ 10× below")
        drift = pl.pivot_table(index=["cell", "instance"], columns="variant", values="drift")
        detail = dict(verdict.detail,
                      improvement_factor_median={v: float((wide["fixed"] / wide[v]).median()) for v in variants},
                      improvement_factor_geomean={v: float(10 ** -log_ratio[v].mean()) for v in variants},
                      final_error_median={v: float(wide[v].median()) for v in wide.columns},
                      drift_median={v: float(drift[v].median()) for v in drift.columns},
                      improvement_factor_min={v: float((wide["fixed"] / wide[v]).min()) for v in variants},
                      decay_vs_10x=None if decay_10x is None else decay_10x.to_dict(),
                      decay_improvement_interval=None if decay_10x is None else
                      [float(10 ** -decay_10x.interval[1]), float(10 ** -decay_10x.interval[0])])
        return Verdict(**{**verdict.__dict__, "detail": detail})

    @figure("error-vs-step",
            "Relative dictionary error against the training step for fixed λ, λ-decay (λ_t = λβ^t, β lowered "
            "during the first half) and hard thresholding, all with g_ae-ls (median over instances, band "
            "10–90 %; log scale). Dotted: the fixed-λ plateau divided by 10.")
    def draw_variants(self, fi: FigureInput):
        """Error against step per variant."""
        t = fi.table
        fi.need("train_step", "variant", "dict_error")
        fig, (ax,) = plot.new_figure(1)
        colours = dict(zip(VARIANTS, plot.palette(len(VARIANTS))))
        labels = {"fixed": "fixed λ", "decay": "λ-decay", "hard": "hard threshold"}
        for v in VARIANTS:
            plot.band(ax, t[t["variant"] == v], "train_step", "dict_error", colour=colours[v], label=labels[v],
                      positive=True)
        fixed = t[t["variant"] == "fixed"]
        if len(fixed):
            last = fixed[fixed["train_step"] == fixed["train_step"].max()]["dict_error"].median()
            ax.axhline(last / HARD_FACTOR, color="0.3", linestyle=":", label="fixed-λ plateau / 10")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(r"$\|D - D^*\|_F/\|D^*\|_F$")
        plot.legend(ax, title=plot.band_note(plot.instances_of(t[t["variant"] == "fixed"])), title_fontsize=8)
        return fig
