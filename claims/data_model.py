r"""Data model — the instances are what the harness says they are.

Every claim draws its instances with :func:`udl.core.make_instances` and trusts that they follow the
data model of docs/theory.md#data-model: D* with unit-norm columns, codes with exactly s non-zeros per
example, amplitudes |z*_j| ~ U[a, b], independent fair signs (sign = "independent"), D⁽⁰⁾ at the
recorded (or requested) column distances, the recorded coherence, and independent instances. A bug
here would silently move every other claim off its regime, so this claim checks it on the cells the
other claims use.

========  ===========================================================================  =============
claim     what is tested                                                               kind
========  ===========================================================================  =============
D.1       exact parts (support size, amplitude range, unit columns, recorded coherence    probabilistic
          and distances) and distributional parts (amplitudes U[a, b] by KS distance;
          within-example sign agreement ½; fair signs; D* of paired instances agree in
          sign at rate ½), intersection–union at α = 0.01
========  ===========================================================================  =============

Negative control: mutant ``shared-signs`` (one sign per example shared by its s entries while the
instances record "independent"): the within-example sign agreement becomes 1. The mutants
``amplitude-law``, ``shared-seed`` and ``init-distance-ignored`` turn it red too (amplitude range and
KS distance; duplicate instances, an engine ERROR, and the cross-instance agreement; the requested
distance).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.stats
import torch

from udl import core
from udl.engine import Claim, Context, FigureInput, all_of, figure, stats
from udl.engine import plotting as plot

__all__ = [
    "DataModel",
    "DataModelCell",
    "cross_instance_agreement",
    "ks_distance",
    "pair_agreement",
    "within_example_pairs",
]

# --------------------------------------------------------------------------- constants
#: Amplitude law U[a, b] of the theory's data model (docs/theory.md#data-model).
AMPLITUDE = (1.0, 2.0)
#: KS-distance bound of the amplitude part: the mean over instances of sup|F̂ − F_U[a,b]| must be below
#: this. Under the law, E[KS] ≈ 0.87/√(n·s) ≈ 0.027 at n·s = 1000 (pilot, root seed 10000: 0.014–0.035);
#: the amplitude-law bug (U[0, b]) gives 0.5.
KS_BOUND = 0.1
#: Equivalence band of every sign rate around ½ (two one-sided binomial tests): a fair coin gives ½; shared
#: signs give agreement 1, and a 60/40 coin agreement 0.52 (not meant to be caught: the band is about
#: which sign law, not a small bias). Pilot (root seed 10000): rates 0.49–0.51.
RATE_BAND = (0.45, 0.55)
#: Deterministic parts: a column divided by its norm has unit norm to ≈ √m·eps/2; 100·eps is the budget.
NORM_EPS_FACTOR = 100.0
#: Deterministic parts: recomputed coherence and column distances against the recorded ones, and the
#: distances against the requested δ (rotation by cos/sin, then a normalisation): ≤ 1e3·eps (pilot,
#: root seed 10000: ≤ 4e-16).
DIST_EPS_FACTOR = 1e3
#: How a cell draws D⁽⁰⁾: at an exact column distance, or by a Gaussian perturbation of scale c.
INIT_MODES = ("distance", "scale")


# --------------------------------------------------------------------------- helpers
def within_example_pairs(Z: np.ndarray, s: int) -> np.ndarray:
    """Signs of disjoint pairs of non-zeros within each example.

    Parameters
    ----------
    Z : (p, n) codes with exactly s non-zeros per column.  s : int ≥ 2.

    Returns
    -------
    (n·⌊s/2⌋, 2) array of signs: for each example its non-zeros in row order, paired (1st, 2nd),
    (3rd, 4th), … — disjoint pairs, so that under independent signs the pairs are independent.
    """
    if s < 2:
        raise ValueError(f"sign pairs need s >= 2, got s={s}")
    Z = np.asarray(Z)
    nnz = (Z != 0).sum(axis=0)
    if np.any(nnz != s):
        raise ValueError(f"every example must have exactly s={s} non-zeros, got counts {sorted(set(nnz))}")
    rows = np.sort(np.argsort(Z == 0, axis=0, kind="stable")[:s], axis=0)          # (s, n) support rows
    signs = np.sign(np.take_along_axis(Z, rows, axis=0))                             # (s, n)
    k = 2 * (s // 2)
    return signs[:k].T.reshape(-1, 2)


def pair_agreement(pairs: np.ndarray) -> tuple[int, int]:
    """(agreeing pairs, pairs) of an (N, 2) array of signs."""
    pairs = np.asarray(pairs)
    return int(np.sum(pairs[:, 0] == pairs[:, 1])), len(pairs)


def ks_distance(amplitudes, low: float, high: float) -> tuple[float, float]:
    """KS distance and p-value of amplitudes against U[low, high] (``scipy.stats.kstest``)."""
    res = scipy.stats.kstest(np.asarray(amplitudes, float), "uniform", args=(low, high - low))
    return float(res.statistic), float(res.pvalue)


def cross_instance_agreement(D_a: np.ndarray, D_b: np.ndarray) -> tuple[int, int]:
    """(entries of equal sign, entries) of two dictionaries: independent instances agree at rate ½."""
    a, b = np.sign(np.asarray(D_a)).ravel(), np.sign(np.asarray(D_b)).ravel()
    return int(np.sum(a == b)), int(a.size)


def _offdiag_max(D: np.ndarray) -> float:
    G = np.abs(D.T @ D)
    np.fill_diagonal(G, 0.0)
    return float(G.max())


# --------------------------------------------------------------------------- D.1
@dataclass(frozen=True)
class DataModelCell:
    """A cell of D.1: sizes m, p, s, n; how D⁽⁰⁾ is drawn (init_mode "distance": every column at exactly
    distance ``init`` from D*; "scale": D⁽⁰⁾ = normalise(D* + init·N)); sign law."""

    m: int
    p: int
    s: int
    n: int
    init_mode: str
    init: float
    sign: str = "independent"

    def __post_init__(self):
        if self.init_mode not in INIT_MODES:
            raise ValueError(f"init_mode must be one of {INIT_MODES}, got {self.init_mode!r}")

    @property
    def init_distance(self) -> float | None:
        """The requested column distance δ, or None (init_mode "scale")."""
        return self.init if self.init_mode == "distance" else None

    @property
    def init_scale(self) -> float:
        """c of D⁽⁰⁾ = normalise(D* + c·N) (the generator's default where a distance is requested)."""
        return self.init if self.init_mode == "scale" else 0.02


_A = DataModelCell(m=50, p=100, s=5, n=200, init_mode="distance", init=0.1)
_B = DataModelCell(m=100, p=150, s=5, n=200, init_mode="scale", init=0.05)


class DataModel(Claim):
    """D.1 — the instances follow the data model they record."""

    id = "D.1"
    theorem = "data model"
    title = "the instances follow the declared data model (support, amplitudes, signs, unit atoms, records)"
    statement = (
        "On the claims' own instance generator (udl.core.make_instances) and the cells other claims use "
        "(m = 50, p = 100, s = 5 with D⁽⁰⁾ at the requested column distance δ = 0.1; m = 100, p = 150, "
        "s = 5 with D⁽⁰⁾ = normalise(D* + 0.05·N)): exactly (deterministic parts, rounding budget) every "
        "code has s non-zeros, every amplitude is in [1, 2], every atom of D* and D⁽⁰⁾ has unit norm, the "
        "recorded coherence and column distances are the measured ones and the distances are the requested "
        "δ; statistically (α = 0.01 each) the amplitudes follow U[1, 2] (mean KS distance per instance < "
        f"{KS_BOUND}), signs are fair (rate of + in {RATE_BAND}) and independent within an example (the "
        f"agreement rate of disjoint sign pairs in {RATE_BAND}: ½ for independent, 1 for shared signs), and "
        f"paired instances are independent (D* entries of instances 2k and 2k + 1 agree in sign at a rate "
        f"in {RATE_BAND}). See docs/theory.md#data-model.")
    kind = "probabilistic"
    effect = (
        "Intersection–union of the deterministic parts, a one-sided t test of the mean KS distance, and "
        "two one-sided exact binomial tests per sign rate (equivalence to ½ within ±0.05). Pilot (root seed "
        "10000, 4 instances per cell): KS 0.014–0.035, sign rates 0.49–0.51, deterministic deviations "
        "≤ 4e-16. With 4 instances per cell at quick (1 600 within-example pairs, 4 000 code signs, 10 000 "
        "paired D* entries) the Clopper–Pearson half-width at α = 0.01 is ≤ 0.03 < 0.05.")
    regime = (
        "Noiseless, independent signs, amplitudes U[1, 2], n = 200 examples. quick: both cells, 4 "
        "instances each; ci: 8 each; paper: 20 each. The cross-instance part pairs instances within one "
        "simulate call (a replay of a single instance has no pair and records none).")
    control = (
        "Mutant shared-signs (udl.engine.mutants): one sign per example shared by its s entries while the "
        "instances record 'independent'; the within-example agreement rate becomes 1. Must FAIL.")
    control_mutant = "shared-signs"
    audit_sentences = {
        "FAIL": "the instances do not follow the declared data model ({statistic_name} = {statistic:.3g})",
    }
    Cell = DataModelCell
    discrete_columns = frozenset({"support_dev", "agree_within", "pairs_within", "positive", "signs",
                                  "agree_cross", "entries_cross"})
    schema = {"support_dev": "int", "amp_min": "float", "amp_max": "float", "ks": "float", "ks_p": "float",
              "agree_within": "int", "pairs_within": "int", "positive": "int", "signs": "int",
              "agree_cross": "int", "entries_cross": "int", "corr_cross": "float", "norm_dev": "float",
              "coherence_dev": "float", "delta_dev": "float", "requested_dev": "float", "eps": "float"}
    profiles = {
        "quick": {"cells": [_A, _B], "n_instances": 4},
        "ci": {"cells": [_A, _B], "n_instances": 8},
        "paper": {"cells": [_A, _B, replace(_A, n=2000)], "n_instances": 20},
    }

    def simulate(self, cell, seeds, ctx: Context):
        """One row per instance: the deviations of the exact parts and the counts of the rates."""
        inst = core.make_instances(cell.m, cell.p, cell.s, cell.n, init_scale=cell.init_scale,
                                   init_distance=cell.init_distance, sign=cell.sign, amplitude=AMPLITUDE,
                                   seed=list(seeds), dtype=torch.float64)
        D_star, Z_star, D0 = (t.numpy() for t in (inst.D_star, inst.Z_star, inst.D0))
        eps = float(np.finfo(np.float64).eps)
        rows = []
        for b in range(len(seeds)):
            Z = Z_star[b]
            nnz = (Z != 0).sum(axis=0)
            amps = np.abs(Z[Z != 0])
            ks, ks_p = ks_distance(amps, *AMPLITUDE)
            agree, pairs = pair_agreement(within_example_pairs(Z, cell.s)) if np.all(nnz == cell.s) else (0, 0)
            partner = b + 1 if b % 2 == 0 and b + 1 < len(seeds) else None
            agree_x, entries_x = (cross_instance_agreement(D_star[b], D_star[partner]) if partner is not None
                                  else (0, 0))
            corr = float(np.corrcoef(D_star[b].ravel(), D_star[partner].ravel())[0, 1]) if partner else np.nan
            norms = np.concatenate([np.linalg.norm(D_star[b], axis=0), np.linalg.norm(D0[b], axis=0)])
            delta = np.linalg.norm(D0[b] - D_star[b], axis=0)
            requested = (np.abs(delta - cell.init_distance).max() if cell.init_distance is not None else 0.0)
            rows.append({
                "instance": b, "support_dev": int(np.abs(nnz - cell.s).max()),
                "amp_min": float(amps.min()), "amp_max": float(amps.max()), "ks": ks, "ks_p": ks_p,
                "agree_within": agree, "pairs_within": pairs,
                "positive": int(np.sum(Z > 0)), "signs": int(np.sum(Z != 0)),
                "agree_cross": agree_x, "entries_cross": entries_x, "corr_cross": corr,
                "norm_dev": float(np.abs(norms - 1.0).max()),
                "coherence_dev": abs(_offdiag_max(D_star[b]) - float(inst.coherence[b])),
                "delta_dev": float(np.abs(delta - inst.delta[b].numpy()).max()),
                "requested_dev": float(requested), "eps": eps})
        return pd.DataFrame(rows)

    def decide(self, table):
        """Intersection–union of the exact parts and the distributional tests (α each)."""
        eps = float(table["eps"].max())
        a, b = AMPLITUDE
        lo, hi = RATE_BAND
        n = len(table)

        def band(k, N, what):
            return {f"{what} > {lo}": stats.rate_test(k, N, lo, side="greater", alpha=self.alpha,
                                                      name=f"{what} rate"),
                    f"{what} < {hi}": stats.rate_test(k, N, hi, side="less", alpha=self.alpha,
                                                      name=f"{what} rate")}

        parts = {
            "support size": stats.deterministic_check(
                table["support_dev"], tolerance=0.5, name="max |#non-zeros − s| per example",
                budget="counts are exact integers: any deviation ≥ 1 is a violation"),
            "amplitude range": stats.deterministic_check(
                np.maximum(np.maximum(a - table["amp_min"], table["amp_max"] - b), 0.0),
                tolerance=DIST_EPS_FACTOR * eps, name="largest amplitude outside [a, b]",
                budget="amplitudes are drawn in [a, b] and multiplied by ±1: exact up to eps"),
            "unit atoms": stats.deterministic_check(
                table["norm_dev"], tolerance=NORM_EPS_FACTOR * eps, name="max |‖D_j‖ − 1| (D* and D⁽⁰⁾)",
                budget=f"{NORM_EPS_FACTOR:g}·eps: a column divided by its norm has norm 1 to ≈ √m·eps/2"),
            "recorded coherence and distances": stats.deterministic_check(
                np.maximum(table["coherence_dev"], table["delta_dev"]), tolerance=DIST_EPS_FACTOR * eps,
                name="max |recorded − measured| (μ, δ_j)",
                budget=f"{DIST_EPS_FACTOR:g}·eps: the same quantities recomputed in another order"),
            "requested distance": stats.deterministic_check(
                table["requested_dev"], tolerance=DIST_EPS_FACTOR * eps, name="max |‖D⁽⁰⁾_j − D*_j‖ − δ|",
                budget=f"{DIST_EPS_FACTOR:g}·eps: a rotation by 2·arcsin(δ/2) and a normalisation"),
            "amplitudes U[a, b]": stats.mean_test(
                table["ks"], threshold=KS_BOUND, side="less", alpha=self.alpha,
                name="KS distance of the amplitudes to U[1, 2]"),
            **band(int(table["agree_within"].sum()), int(table["pairs_within"].sum()), "within-example sign agreement"),
            **band(int(table["positive"].sum()), int(table["signs"].sum()), "positive sign"),
        }
        if int(table["entries_cross"].sum()) > 0:
            parts.update(band(int(table["agree_cross"].sum()), int(table["entries_cross"].sum()),
                              "cross-instance D* sign agreement"))
        verdict = all_of(parts, n=n, alpha=self.alpha, primary=f"within-example sign agreement < {hi}")
        amps_p = scipy.stats.combine_pvalues(np.clip(table["ks_p"].to_numpy(float), 1e-300, 1.0)).pvalue
        detail = dict(
            verdict.detail,
            within_agreement_rate=float(table["agree_within"].sum() / max(int(table["pairs_within"].sum()), 1)),
            positive_rate=float(table["positive"].sum() / max(int(table["signs"].sum()), 1)),
            cross_agreement_rate=(float(table["agree_cross"].sum() / table["entries_cross"].sum())
                                  if int(table["entries_cross"].sum()) else None),
            cross_corr_max_abs=float(np.nanmax(np.abs(table["corr_cross"]))) if table["corr_cross"].notna().any()
            else None,
            ks_mean=float(table["ks"].mean()), ks_fisher_p=float(amps_p))
        return replace(verdict, detail=detail)

    @figure("data-model",
            "Left: KS distance of each instance's amplitudes to U[1, 2] against the bound. Right: the "
            "within-example sign agreement, the rate of + signs and the cross-instance D* sign agreement "
            "per instance, against ½ and the equivalence band (decided on the rate pooled over instances; one "
            "instance's rate, from 400 pairs, may leave the band).")
    def draw(self, fi: FigureInput):
        """KS distances and sign rates per instance."""
        t = fi.table
        fi.need("ks", "agree_within", "pairs_within", "positive", "signs", "agree_cross", "entries_cross")
        fig, (ax, bx) = plot.new_figure(2)
        ax.scatter(np.arange(len(t)), t["ks"], s=12)
        ax.axhline(KS_BOUND, color="0.3", linestyle=":", label="bound")
        ax.set_xlabel("instance")
        ax.set_ylabel("KS distance to U[1, 2]")
        plot.legend(ax)
        for col, N, label in (("agree_within", "pairs_within", "within-example agreement"),
                              ("positive", "signs", "rate of +"), ("agree_cross", "entries_cross", "cross-instance")):
            ok = t[N] > 0
            bx.scatter(np.arange(len(t))[ok.to_numpy()], (t[col] / t[N])[ok], s=12, label=label)
        for y in RATE_BAND:
            bx.axhline(y, color="0.6", linestyle="--", linewidth=1)
        bx.axhline(0.5, color="0.3", linestyle=":")
        bx.set_xlabel("instance")
        bx.set_ylabel("rate")
        plot.legend(bx)
        return fig
