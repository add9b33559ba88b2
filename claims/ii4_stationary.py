r"""Theorem II.4 — stationary points of the weight-decayed dictionary objective, and interpretability.

Statement. For min_{Z,D} ½‖X − DZ‖²_F + λ‖Z‖₁ + (ω/2)‖D‖²_F with codes Z̃ held at their
(converged) values, the stationary dictionary is

    D̃ = X G⁻¹ Z̃ᵀ,   G = Z̃ᵀZ̃ + ωI  (n × n),

so atom j = Σ_k (G⁻¹w_j)_k x^k (w_j the j-th row of Z̃: the training examples' contributions), and a
new example's reconstruction is x̂ = D̃ẑ = Σ_k β_k x^k with β = G⁻¹Z̃ᵀẑ.

========  ==========================================================================  =============
claim     what is tested                                                              kind
========  ==========================================================================  =============
II.4a     checks of the implementation, not evidence: for codes Z̃ of random          deterministic
          instances and ω > 0, ``udl.stationary_dictionary`` equals the minimiser of
          ½‖X − DZ̃‖² + (ω/2)‖D‖² (an independent QR solve, and (DZ̃ − X)Z̃ᵀ + ωD = 0),
          D̃ẑ = Xβ (``udl.reconstruction_coefficients``), and D̃ is the fixed point of
          weight-decayed g_dec: (D − D̃)(Z̃Z̃ᵀ + ωI)/n = g_dec(D) + (ω/n)D for the
          untrained D = D⁽⁰⁾ — each within a rounding budget scaled by the unit
          roundoff and cond(Z̃Z̃ᵀ + ωI)
II.4b     networks trained with g_dec and weight decay reach X G⁻¹Z̃ᵀ (deviation      probabilistic
          within a pre-declared tolerance, shrinking with the training's residual),
          networks trained as long with g_ae-ls do not (a must-differ contrast)
II.4c     on real digits (scikit-learn's 8×8 ``load_digits``), a network trained to  probabilistic
          stationarity: β explains its own outputs, the top-β training image shares
          the label far above chance and the top contributors resemble the atoms —
          yet the agreement is below that of an untrained dictionary at every ω
          swept, and below the data-only baselines reported beside it
========  ==========================================================================  =============

The exact bound behind II.4b. With the mean-over-examples loss L = ½‖X − DZ̃‖²/n + (ω/2)‖D‖², the
training's update direction at D is R = (DZ̃ − X)Z̃ᵀ/n + ωD. Since D̃(Z̃Z̃ᵀ + nωI) = XZ̃ᵀ,

    (D − D̃)(Z̃Z̃ᵀ/n + ωI) = DZ̃Z̃ᵀ/n + ωD − XZ̃ᵀ/n = R,

so ‖D − D̃‖_F ≤ ‖R‖_F·‖(Z̃Z̃ᵀ/n + ωI)⁻¹‖₂ ≤ ‖R‖_F/ω — an inequality with no hidden constant that
holds for every dictionary, trained or not; it is algebra, checked deterministically in II.4a
(the identity behind it). What training adds — that the residual actually goes to zero, so the
network reaches D̃, and that a network trained for another objective does not — is II.4b.

Decisions combine their parts by intersection–union (:func:`all_of`): PASS needs every part to
PASS (p = max p), FAIL when some part FAILS. Each claim's negative control is a plausible bug from
:mod:`udl.engine.mutants` (``control_mutant``).

Precision. II.4a and II.4b always run in float64 (identities and deviations near rounding are
checked in float64), whatever ``ctx.dtype`` says; the tolerances scale with float64's unit
roundoff. II.4c (label agreement, correlations) runs in ``ctx.dtype``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from udl import core
from udl.engine import Claim, Context, FigureInput, Verdict, all_of, figure, stats
from udl.engine import plotting as plot

__all__ = ["StationaryIdentity", "TrainedStationarity", "DigitInterpretability", "stationarity_check", "load_digit_images",
           "digit_pictures", "check_digits"]

# --------------------------------------------------------------------------- constants
#: Identities are checked in float64 (see the module docstring).
IDENTITY_DTYPE = torch.float64
#: Unit roundoff of the identity checks.
EPS = torch.finfo(IDENTITY_DTYPE).eps
#: II.4b: "the network reaches X G⁻¹Z̃ᵀ" = relative deviation ‖D − D̃‖_F/‖D‖_F at most this after
#: the training. Pilot (root seeds 20000–20039, 20100–20147; ci cell, 88 instances): g_dec after
#: 200 steps max 0.024 (q90 ≤ 5.7e-3); g_ae-ls after ≥ 50 steps min 0.117 — twice the former,
#: under half the latter.
DEV_TOL = 0.05
#: II.4b: the rate above which "g_dec networks reach D̃" and "g_ae-ls networks do not" are called.
#: Pilot rates over 236 instances (root seeds 10001, 10003, 20000…, 30000…): g_dec 233/236 within
#: DEV_TOL after 200 steps (a slow tail whose supports keep changing: 45/48 at root seed 10003),
#: g_ae-ls 236/236 beyond it; binomial_n(0.7 → 0.95, α = 0.01/18, β = 0.05) = 52 ≈ 48 instances.
REACH_RATE = 0.7
#: II.4c: "far above chance" = the top-β training image shares the test image's label with
#: probability > 0.3, three times the chance rate Σ_c π_c² ≈ 0.1 of ten balanced classes. Pilot
#: (root seeds 10011–10014, 10021–10026; n_train = 800): 0.69–0.74 at ω ≤ 0.005 once trained to
#: stationarity, 0.52–0.57 at ω = 0.01, 0.35 at ω = 0.02, chance (0.10) at ω = 0.03.
AGREEMENT_MIN = 0.3
#: II.4c: "the explanation is the network's" = the mean over held-out images of
#: ‖Dẑ − Xβ‖/‖Dẑ‖ (the trained network's own reconstruction against the combination of training
#: images that explains it) is below 5 %. Pilot (root seeds 10021–10026, ω = 0.005, 300 steps):
#: 0.003 ± 0.002; 1.6 with the untrained dictionary (β explains D̃, not D⁽⁰⁾).
FAITH_TOL = 0.05
#: II.4c: the network has reached its stationary point when ‖D − D̃‖_F/‖D‖_F ≤ this (II.4b's
#: tolerance): the hypothesis under which β explains the network itself (recorded per cell).
STATIONARY_TOL = DEV_TOL
#: II.4c: "the top contributions to an atom resemble it" = the Pearson correlation (over the 64
#: pixels) of atom D̃_j with its top-k contributing training images exceeds that with its bottom-k
#: (most negative weights) by at least 0.2 on average over the atoms: a visible resemblance,
#: against ≈ 0 for images unrelated to the weights. Pilot (root seeds 10021–10026): 0.95 once
#: trained (ω = 0.005), 0.47 with the untrained dictionary.
RESEMBLANCE_MIN = 0.2
#: II.4c: k of the top-k / bottom-k contributors (atoms) and of the top-k label share (tests).
TOP_K = 5
#: II.4c: atoms (most used, by ‖w_j‖) and test images (the first of each split's test set) whose
#: top/bottom contributors, weights and pixels are stored for the report's Fig. 3a/3b.
FIG_ATOMS, FIG_TESTS = 4, 4
#: II.4c: digit images are scaled to [0, 1] and then to unit ℓ2 norm, so that λ means the same
#: for every image (the unit-norm atoms' scale).
PIXEL_MAX = 16.0
#: Number of classes of ``load_digits``.
N_CLASSES = 10
#: II.4c: what ``load_digits`` must hold (checked on every load): 1797 images of 8×8 = 64 integer
#: pixels in [0, PIXEL_MAX], every image nonzero, labels 0…9 with each class 174–183 images
#: (scikit-learn's documented counts; at most 2 % off an equal share of 179.7).
DIGITS_SHAPE = (1797, 64)
DIGITS_CLASS_COUNT = (174, 183)


# --------------------------------------------------------------------------- helpers

def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _fro(A: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(A)


# --------------------------------------------------------------------------- II.4a
@dataclass(frozen=True)
class StationaryIdentityCell:
    """A cell of II.4a: sizes m, p, s; n_new held-out examples; λ; step α; T layers; D⁽⁰⁾ distance c
    (init_scale); n training examples; ridge ω (omega)."""

    m: int
    p: int
    s: int
    n_new: int
    lam: float
    step: float
    T: int
    init_scale: float
    n: int
    omega: float


_A = StationaryIdentityCell(m=20, p=40, s=3, n_new=20, lam=0.2, step=0.2, T=20, init_scale=0.1, n=120, omega=0.01)


def _reference_dictionary(X: torch.Tensor, Z: torch.Tensor, omega: float) -> torch.Tensor:
    """Independent minimiser of ½‖X − DZ‖² + (ω/2)‖D‖²: least squares on the augmented system.

    min_D ‖[X, 0] − D[Z, √ω I]‖_F, i.e. [Zᵀ; √ω I] Dᵀ = [Xᵀ; 0] in the least-squares sense, solved
    by a Householder QR of the (n + p) × p matrix and a triangular solve — not with the normal
    equations that ``udl.stationary_dictionary`` uses (Cholesky of ZZᵀ + ωI). (QR rather than
    ``torch.linalg.lstsq``: the CPU default driver gelsy gave run-to-run differences at the
    rounding level, which would make the recorded errors irreproducible.)
    """
    p, m = Z.shape[-2], X.shape[-2]
    eye = math.sqrt(omega) * torch.eye(p, dtype=Z.dtype, device=Z.device).expand(*Z.shape[:-2], p, p)
    A = torch.cat([Z.mT, eye], dim=-2)                                         # (..., n + p, p)
    rhs = torch.cat([X.mT, torch.zeros(*X.shape[:-2], p, m, dtype=X.dtype, device=X.device)], dim=-2)
    Q, R = torch.linalg.qr(A)                                                  # reduced: R (..., p, p)
    return torch.linalg.solve_triangular(R, Q.mT @ rhs, upper=True).mT


#: II.4a's four deterministic checks: part name → (error column, tolerance column, label, stated
#: rounding budget). A single instance beyond its budget is a counterexample.
_A_CHECKS = {
    "forward": ("e_fwd", "tol_fwd", "‖D̃ − D_ref‖/‖D_ref‖ against an independent QR solve",
                "(n + p)·eps·cond(Z̃Z̃ᵀ + ωI): forward error of a backward-stable p×p solve"),
    "stationarity": ("e_stat", "tol_stat", "‖(D̃Z̃ − X)Z̃ᵀ + ωD̃‖ (normalised)",
                     ("(n + p)·eps: backward error of the solve and of the two products, normalised by "
                      "‖X‖‖C‖‖Z̃Z̃ᵀ + ωI‖ + ‖X‖‖Z̃‖")),
    "beta": ("e_beta", "tol_beta", "‖D̃ẑ − Xβ‖/(‖X‖‖C‖‖ẑ‖)",
             "(n + p)·eps: rounding of the two products D̃ẑ = (XC)ẑ and X(Cẑ)"),
    "fixed-point": ("e_grad", "tol_grad", "‖(D⁽⁰⁾ − D̃)(Z̃Z̃ᵀ + ωI)/n − (g_dec + ω'D⁽⁰⁾)‖ (normalised)",
                    ("(n + p)·eps: D̃'s stationarity residual plus the rounding of g_dec, normalised by "
                     "(‖X‖‖C‖‖Z̃Z̃ᵀ + ωI‖ + ‖X‖‖Z̃‖ + ‖D⁽⁰⁾‖‖Z̃Z̃ᵀ + ωI‖)/n")),
}


class StationaryIdentity(Claim):
    """II.4a — D̃ = X G⁻¹Z̃ᵀ is the weight-decayed least-squares minimiser, and D̃ẑ = Xβ."""

    id = "II.4a"
    theorem = "II.4"
    title = "the stationary dictionary X G⁻¹Z̃ᵀ, the β-reconstruction and the residual bound hold to rounding"
    statement = (
        "Deterministic checks of the linear algebra behind II.4 (docs/theory.md#ii4a-identity), which "
        "holds for any codes Z̃ (here: the encoder's codes of random instances) and any ω > 0 — checks "
        "of the implementation, not evidence for the theorem. D̃ = X G⁻¹Z̃ᵀ, G = Z̃ᵀZ̃ + ωI "
        "(udl.stationary_dictionary, computed through the p×p system Z̃Z̃ᵀ + ωI) is the minimiser of "
        "½‖X − DZ̃‖²_F + (ω/2)‖D‖²_F; the reconstruction of new codes ẑ satisfies D̃ẑ = Xβ with "
        "β = G⁻¹Z̃ᵀẑ (udl.reconstruction_coefficients); and for every dictionary D — here the untrained "
        "D⁽⁰⁾ — (D − D̃)(Z̃Z̃ᵀ + ωI) = R, R = (DZ̃ − X)Z̃ᵀ + ωD, so ‖D − D̃‖_F ≤ ‖R‖_F/ω (the bound that "
        "certifies a trained network's distance to D̃ from its gradient residual, II.4b). On every "
        "instance, four errors must lie within their rounding budgets: the forward error "
        "‖D̃ − D_ref‖_F/‖D_ref‖_F against an independent QR least-squares solve D_ref, within "
        "(n + p)·eps·cond(Z̃Z̃ᵀ + ωI); the stationarity residual ‖(D̃Z̃ − X)Z̃ᵀ + ωD̃‖_F / (‖X‖‖C‖‖Z̃Z̃ᵀ + "
        "ωI‖ + ‖X‖‖Z̃‖), C = G⁻¹Z̃ᵀ, within (n + p)·eps (the solve is backward stable); "
        "‖D̃ẑ − Xβ‖_F/(‖X‖‖C‖‖ẑ‖) within (n + p)·eps; and the excess of ‖D⁽⁰⁾ − D̃‖_F over ‖R‖_F/ω "
        "within D̃'s forward error plus the cancellation in R.")
    kind = "deterministic"
    effect = (
        "Deterministic: one instance beyond its budget is a counterexample (FAIL); no p-value, no "
        "Holm adjustment, never INCONCLUSIVE. The instances only spread the conditioning (cond from "
        "≈ 10 to ≈ 10⁴ over the cells) and the code supports. Pilot (root seed 10000, ci cells, "
        "120 instances): worst error/budget 3.0e-3 (forward), 3.5e-4 (stationarity), 4.7e-4 (β), "
        "3.5e-4 (fixed point), cond ≤ 1.7e4 — the budgets sit 2–3 decades above the rounding seen. "
        "Under the control mutant every instance exceeds the forward budget (ratios 2e7–2e12) and the "
        "stationarity one (≥ 1e8); mutant 'beta-without-inverse' breaks the β check (≥ 2e12) and "
        "'dec-through-code' the fixed-point check (≥ 5e10), while a bug outside this code path "
        "('no-active-set-mask', the ae adjoint) leaves every check within budget. The untrained D⁽⁰⁾ "
        "lies at ‖D⁽⁰⁾ − D̃‖/‖D⁽⁰⁾‖ ≈ 0.41 from D̃ against a certified bound ‖R‖/(ω'‖D⁽⁰⁾‖) ≈ 450 "
        "(median): the bound holds for every dictionary but says little far from stationarity.")
    regime = (
        "m = 20, p = 40, s = 3, codes Z̃ = T = 20 layers of the encoder (α = λ = 0.2) at the initial "
        "dictionary D⁽⁰⁾ (c = 0.1) of random instances: the algebra is for any Z̃ and any D, converged "
        "or not. Cells: n = 120 examples, ω = 0.01 (n > p, cond(Z̃Z̃ᵀ + ωI) ≈ 15); n = 30, ω = 1e-3 "
        "(n < p: Z̃Z̃ᵀ is rank-deficient, ~45 % of the atoms unused, cond ≈ 1e4 — where a solver without "
        "the ridge breaks and a naive inverse would lose digits); n = 60, ω = 1 (n ≈ p, strong decay). "
        "20 new examples per instance give ẑ. Float64 regardless of ctx.dtype.")
    control = (
        "Mutant 'omega-rescaled' (udl.engine.mutants, interpretation area): the solver divides the "
        "ridge by n (ω/n instead of ω, as if converting a mean-loss decay the caller had already "
        "converted). D̃ is then the minimiser for another ω: the forward error against the QR solve "
        "and the stationarity residual exceed their budgets on every instance, so the claim must FAIL.")
    control_mutant = "omega-rescaled"
    requires = frozenset()
    audit_sentences = {
        "FAIL": "the stationary-dictionary algebra fails on this encoder's codes ({statistic_name} = "
                "{statistic:.2g})",
    }
    Cell = StationaryIdentityCell
    schema = {"cond": "float", "zero_atoms": "float", "e_fwd": "float", "tol_fwd": "float", "e_stat": "float",
              "tol_stat": "float", "e_beta": "float", "tol_beta": "float", "e_grad": "float", "tol_grad": "float",
              "dev0": "float", "bound0": "float", "ratio": "float", "dtype": "str"}
    discrete_columns = frozenset({"zero_atoms", "dtype"})
    profiles = {
        "quick": {"cells": [replace(_A, n=120, omega=0.01), replace(_A, n=30, omega=0.001)], "n_instances": 20},
        "ci": {"cells": [replace(_A, n=120, omega=0.01), replace(_A, n=30, omega=0.001), replace(_A, n=60, omega=1.0)],
               "n_instances": 40},
        "paper": {"cells": [replace(_A, m=50, p=100, s=5, n=n, omega=omega) for n in (50, 500)
                            for omega in (1e-3, 1e-1, 10.0)], "n_instances": 100},
    }

    def simulate(self, cell, seeds, ctx):
        """One row per instance: the four errors, their tolerances and the worst ratio."""
        n, p, omega = cell.n, cell.p, cell.omega
        inst = core.make_instances(cell.m, p, cell.s, n + cell.n_new, init_scale=cell.init_scale,
                                  seed=list(seeds), dtype=IDENTITY_DTYPE, device=ctx.device)
        encoder, enc_args = ctx.encoder_under_test(), dict(lam=cell.lam, step=cell.step, T=cell.T)
        with torch.no_grad():
            D0 = inst.D0
            Z_all = encoder(inst.X, D0, **enc_args)
            X, Z, Z_new = inst.X[..., :n], Z_all[..., :n], Z_all[..., n:]
            D, C = core.stationary_dictionary(X, Z, omega=omega, return_contributions=True)
            beta = core.reconstruction_coefficients(X, Z, Z_new, omega=omega)
            cond = core.gram_condition(Z, omega=omega)
            K = Z @ Z.mT + omega * torch.eye(p, dtype=Z.dtype, device=Z.device)
            D_ref = _reference_dictionary(X, Z, omega)
            nX, nC, nZ, nD0 = _fro(X), _fro(C), _fro(Z), _fro(D0)
            e_fwd = _fro(D - D_ref) / _fro(D_ref)
            e_stat = _fro((D @ Z - X) @ Z.mT + omega * D) / (nX * nC * _fro(K) + nX * nZ)
            e_beta = _fro(D @ Z_new - X @ beta) / (nX * nC * _fro(Z_new))
            # the training's update direction at an arbitrary (here: the untrained) dictionary D⁽⁰⁾,
            # as the library computes it: R = g_dec(D⁽⁰⁾) + ω'D⁽⁰⁾ for the mean loss (ω' = ω/n).
            # Exactly (D⁽⁰⁾ − D̃)(Z̃Z̃ᵀ + ωI)/n = R: D̃ is the fixed point of weight-decayed g_dec
            # training, and ‖D⁽⁰⁾ − D̃‖ ≤ ‖R‖/ω' (the bound that certifies a trained network, II.4b).
            R = core.gradients(X, D0, kinds=("dec",), encoder=encoder, **enc_args)["dec"] + (omega / n) * D0
            e_grad = _fro((D0 - D) @ K / n - R) / ((nX * nC * _fro(K) + nX * nZ + nD0 * _fro(K)) / n)
        dim = (n + p) * EPS
        tol_fwd, tol_stat, tol_beta = dim * cond, torch.full_like(cond, dim), torch.full_like(cond, dim)
        tol_grad = torch.full_like(cond, dim)
        ratios = torch.stack([e_fwd / tol_fwd, e_stat / tol_stat, e_beta / tol_beta, e_grad / tol_grad])
        return pd.DataFrame({
            "instance": np.arange(len(seeds)),
            "cond": _np(cond), "zero_atoms": _np((Z.abs().sum(-1) == 0).sum(-1).to(torch.float64)),
            "e_fwd": _np(e_fwd), "tol_fwd": _np(tol_fwd),
            "e_stat": _np(e_stat), "tol_stat": _np(tol_stat),
            "e_beta": _np(e_beta), "tol_beta": _np(tol_beta),
            "e_grad": _np(e_grad), "tol_grad": _np(tol_grad),
            "dev0": _np(_fro(D0 - D) / nD0), "bound0": _np(n * _fro(R) / (omega * nD0)),
            "ratio": _np(ratios.amax(dim=0)),
            "dtype": str(IDENTITY_DTYPE).removeprefix("torch."),
        })

    def decide(self, table):
        """Four deterministic checks (every instance within its rounding budget), all must pass."""
        parts = {name: stats.deterministic_check(table[e], tolerance=table[tol], budget=budget, name=label)
                 for name, (e, tol, label, budget) in _A_CHECKS.items()}
        verdict = all_of(parts, n=len(table), alpha=self.alpha, primary="forward")
        detail = dict(verdict.detail,
                      worst_ratio=float(table["ratio"].max()),
                      **{f"worst_ratio_{name}": float((table[e] / table[tol]).max())
                         for name, (e, tol, _, _) in _A_CHECKS.items()},
                      cond_max=float(table["cond"].max()), cond_median=float(table["cond"].median()),
                      bound_untrained_median=float(table["bound0"].median()),
                      dev_untrained_median=float(table["dev0"].median()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

    def hypotheses(self, cell, table):
        """ω > 0 (G invertible even when n < p), and the solve keeps digits: (n + p)·eps·cond < 1."""
        return [stats.hypothesis("ω > 0", cell.omega, 0.0, side="greater",
                                 note="G = Z̃ᵀZ̃ + ωI is invertible for every Z̃ only with ω > 0"),
                stats.hypothesis("(n + p)·eps·cond(Z̃Z̃ᵀ + ωI) < 1", float(table["tol_fwd"].max()), 1.0,
                                 note="worst over the instances: the forward-error budget is below 100 %, "
                                      "i.e. float64 keeps digits of D̃")]

    # ------------------------------------------------------------------ figures
    @figure("identity-ratios",
            "Error/budget ratios of the four deterministic checks on every instance (log scale), by cell "
            "(n, ω): forward error against an independent QR solve, the stationarity residual, "
            "D̃ẑ − Xβ, and D̃ as the fixed point of weight-decayed g_dec at the untrained D⁽⁰⁾. A point "
            "above the dashed line at 1 would be a counterexample.", per_cell=False)
    def draw_ratios(self, fi: FigureInput):
        """Per-instance error/tolerance of the three identities, by cell (jittered points)."""
        t = fi.table
        checks = [("e_fwd", "tol_fwd", "forward error"), ("e_stat", "tol_stat", "stationarity residual"),
                  ("e_beta", "tol_beta", r"$\tilde D\hat z - X\beta$"),
                  ("e_grad", "tol_grad", r"fixed point of $g_{\mathrm{dec}} + \omega' D$")]
        checks = [c for c in checks if {c[0], c[1]} <= set(t.columns)]
        if not checks:
            fi.need("e_fwd", "tol_fwd")
        fig, (a,) = plot.new_figure(1, width=6.4, height=4.0)
        cells = sorted(pd.unique(t["cell"])) if "cell" in t.columns else [None]
        colours = plot.palette(len(checks))
        rng = np.random.default_rng(0)   # fixed jitter: deterministic figure
        width = 0.8 / len(checks)
        for i, cell in enumerate(cells):
            g = t if cell is None else t[t["cell"] == cell]
            for j, ((e, tol, name), c) in enumerate(zip(checks, colours)):
                r = (g[e] / g[tol]).to_numpy(float)
                r = np.where(r > 0, r, np.nan)
                x = i - 0.4 + width * (j + 0.5) + rng.uniform(-0.3, 0.3, len(r)) * width
                a.scatter(x, r, s=6, color=c, alpha=0.6, label=name if i == 0 else None)
        a.axhline(1.0, color="0.2", linestyle="--", linewidth=1, label="tolerance (violation above)")
        labels = []
        for cell in cells:
            g = t if cell is None else t[t["cell"] == cell]
            n, omega = plot.cell_value(g, "n"), plot.cell_value(g, "omega")
            labels.append(f"n = {n}, ω = {omega:g}" if n is not None and omega is not None else f"cell {cell}")
        a.set_xticks(range(len(cells)), labels)
        a.set_yscale("log")
        a.set_ylabel("error / tolerance (per instance)")
        a.set_title("the stationary-dictionary identities hold to rounding")
        plot.legend(a, loc="center right", fontsize=7.5)
        return fig


# --------------------------------------------------------------------------- II.4b
def stationarity_check(X: torch.Tensor, D: torch.Tensor, residual: torch.Tensor, *, omega: float,
                       encoder, lam, step, T: int) -> dict:
    """Deviation of a network's dictionary from X G⁻¹Z̃ᵀ and its certified bound (II.4b).

    Parameters
    ----------
    X : (B, m, n) training data.  D : (B, m, p) the network's dictionary.
    residual : (B,) the gradient residual ‖R‖_F that certifies D, R = (DZ̃ − X)Z̃ᵀ/n + ωD.
    omega : weight decay ω of the mean-over-examples loss (G = Z̃ᵀZ̃ + nωI).
    encoder, lam, step, T : the network's encoder; Z̃ = encoder(X, D).

    Returns
    -------
    dict of (B,) tensors: ``dev`` = ‖D − D̃‖_F/‖D‖_F, ``bound`` = residual/(ω‖D‖_F), ``tight`` =
    residual/(λ_min(Z̃Z̃ᵀ/n + ωI)·‖D‖_F), ``slack`` (rounding allowance), ``ratio`` =
    dev/(bound·(1 + (n + p)eps) + slack) (> 1 is a violation), ``cond`` and ``lam_max`` of Z̃Z̃ᵀ/n + ωI and the
    recomputed residual ``residual_dec`` = ‖(DZ̃ − X)Z̃ᵀ/n + ωD‖_F.
    """
    n, p = X.shape[-1], D.shape[-1]
    with torch.no_grad():
        Z = encoder(X, D, lam=lam, step=step, T=T)
        D_tilde = core.stationary_dictionary(X, Z, omega=n * omega)
        H = Z @ Z.mT / n + omega * torch.eye(p, dtype=Z.dtype, device=Z.device)
        ev = torch.linalg.eigvalsh(H)
        nD, nX, nZ = _fro(D), _fro(X), _fro(Z)
        cond = ev[..., -1] / ev[..., 0]
        dev = _fro(D - D_tilde) / nD
        bound = residual / (omega * nD)
        tight = residual / (ev[..., 0] * nD)
        # rounding allowance: D̃'s forward error (n + p)·eps·cond·‖D̃‖ plus the cancellation error
        # of the computed residual, (n + p)·eps·(‖D‖‖Z̃‖² + ‖X‖‖Z̃‖)/n, divided by ω.
        slack = (n + p) * EPS * (cond * _fro(D_tilde) + (nD * nZ ** 2 + nX * nZ) / (n * omega)) / nD
        ratio = dev / (bound * (1 + (n + p) * EPS) + slack)
        residual_dec = _fro(core.decoder_gradient(X, D, Z) + omega * D)
    return dict(dev=dev, bound=bound, tight=tight, slack=slack, ratio=ratio, cond=cond, lam_max=ev[..., -1],
                residual_dec=residual_dec, loss=0.5 * (X - D @ Z).square().sum(dim=(-2, -1)) / n,
                code_density=(Z != 0).to(X.dtype).mean(dim=(-2, -1)),
                col_norm=torch.linalg.vector_norm(D, dim=-2).mean(dim=-1))


def _checkpoints(n_steps: int, k: int) -> list[int]:
    """0 and ``k`` geometrically spaced steps ending at ``n_steps`` (halving back from the end)."""
    return [0] + sorted({max(1, n_steps // 2 ** i) for i in range(k)})


@dataclass(frozen=True)
class TrainedStationarityCell:
    """A cell of II.4b: sizes m, p, s; n examples; λ; step α; T layers; ridge ω (omega); learning rate lr;
    D⁽⁰⁾ distance c (init_scale); n_steps of learning, with g_dec (checked at n_checkpoints) and with g_ae-ls
    (checked at the end: the same length, so that the contrast compares equally trained networks)."""

    m: int
    p: int
    s: int
    n: int
    lam: float
    step: float
    T: int
    omega: float
    lr: float
    init_scale: float
    n_steps: int
    n_checkpoints: int


_B = TrainedStationarityCell(m=10, p=20, s=2, n=60, lam=0.2, step=0.2, T=20, omega=0.1, lr=2.0, init_scale=0.1,
                            n_steps=200, n_checkpoints=4)


class TrainedStationarity(Claim):
    """II.4b — a g_dec-trained network with weight decay reaches X G⁻¹Z̃ᵀ within residual/ω."""

    id = "II.4b"
    theorem = "II.4"
    title = "networks trained with g_dec and weight decay reach X G⁻¹Z̃ᵀ; networks trained with g_ae-ls do not"
    statement = (
        "Train the unrolled network by full-batch gradient descent on the mean loss "
        "½‖X − DZ_T‖²/n + (ω/2)‖D‖² (no column renormalisation) from the same D⁽⁰⁾, once with g_dec "
        "and once with g_ae-ls (docs/theory.md#ii4b-trained-network). With Z̃ = Z_T(D) and "
        "G = Z̃ᵀZ̃ + nωI, the g_dec network reaches the interpretable stationary point: its deviation "
        f"‖D − X G⁻¹Z̃ᵀ‖_F/‖D‖_F after the training is at most {DEV_TOL:g} with probability > "
        f"{REACH_RATE:g}, shrinking with the training's gradient residual ‖R‖_F "
        "(R = (DZ̃ − X)Z̃ᵀ/n + ωD). The g_ae-ls network — stationary for a different objective (a zero "
        "of g_ae-ls + ωD) — does not: its deviation exceeds "
        f"{DEV_TOL:g} with probability > {REACH_RATE:g} (a must-differ contrast, part of the decision). "
        "The algebra that certifies the deviation from the residual, (D − D̃)(Z̃Z̃ᵀ/n + ωI) = R, holds "
        "for every dictionary and is checked deterministically in II.4a.")
    kind = "probabilistic"
    effect = (
        "Two exact binomial tests over independent instances (intersection–union): the rate of g_dec "
        f"networks within {DEV_TOL:g} of X G⁻¹Z̃ᵀ at the last checkpoint > {REACH_RATE:g}, and the rate of "
        f"g_ae-ls networks beyond it > {REACH_RATE:g}, both trained for the same number of steps (so "
        "that a bug making g_ae-ls equal g_dec shows). binomial_n(0.7 → 0.95, α = 0.01/18 [Holm worst "
        "case], β = 0.05) = 52 → ci uses 48 instances (power 0.99 at the pilot rate 0.97); quick 40 (a "
        "smaller network, 150 steps). Pilot (root seeds 20000–20039 and 20100–20147, ci cell, 88 "
        "instances): g_dec deviation median 3.4e-4–6.5e-4 at step 200 (q90 ≤ 5.7e-3, max 0.024), "
        "against 0.39 at step 0 and 0.11 at step 25; g_ae-ls deviation 0.117–0.195 at 50–200 steps "
        "(plateau by step 50: median 0.16 at 50, 0.15 at 200). The tolerance sits at twice the "
        "largest g_dec deviation and below half the smallest g_ae-ls one; a later pilot (root seed "
        "10003) had 3 slow g_dec networks of 48 beyond it (max 0.072), hence the rate 0.7 rather than "
        "0.8 (233/236 reached over all pilots). Prediction (reported): "
        "since (D − D̃)(Z̃Z̃ᵀ/n + ωI) = R, the deviation shrinks in proportion to the residual once the "
        "supports settle — log-log slope 1 between the last two checkpoints (pilot, root seed 30000: "
        "median 1.12, mean 1.10, a tail of slower instances). ‖D − D̃‖·λ_min/‖R‖ ≈ 0.33, not 1: "
        "training does not align D − D̃ with the slowest mode, so the certified bound ‖R‖/ω is "
        "conservative by ≈ 3 on most instances (attained on a few: worst dev/bound 0.99). Control "
        "pilot (mutant 'omega-rescaled'): 0 of 48 g_dec networks within the tolerance (deviation "
        "≥ 0.28).")
    regime = (
        "m = 10, p = 20, s = 2, n = 60 examples, D⁽⁰⁾ with c = 0.1, encoder T = 20 layers, "
        "α = λ = 0.2, ω = 0.1 (mean loss, i.e. G = Z̃ᵀZ̃ + 6·I), full-batch gradient descent with "
        "η = 2, 200 steps: g_dec with checkpoints at 0, 25, 50, 100, 200; g_ae-ls checked at the end "
        "(its deviation plateaus by step 50; backpropagation through the layers costs ≈ 3–8 g_dec "
        "steps, most of this claim's time). Small "
        "sizes because every instance is two training runs; ω = 0.1 keeps Z̃Z̃ᵀ/n + ωI well "
        "conditioned (cond ≈ 10), so gradient descent converges in a few hundred steps "
        "(η·λ_max(Z̃Z̃ᵀ/n + ωI) < 2 on every cell: the hypothesis recorded per cell). The identity "
        "needs only a zero of g_dec + ωD, whatever T: the codes need not be converged lasso "
        "solutions (outside the theorem's 'converged codes', which only changes which stationary "
        "point is reached). quick: m = 8, p = 12, n = 40, T = 15, 150 steps of each with "
        "η = 1.5 (at η = 2 the step condition fails there, η·λ_max ≈ 2.1, and 10 % of the networks "
        "oscillate: pilot root seed 10001). "
        "Float64 regardless of ctx.dtype.")
    control = (
        "Mutant 'omega-rescaled' (udl.engine.mutants, interpretation area): the solver divides the "
        "ridge by n, so X G⁻¹Z̃ᵀ is computed for the decay ω/n — weight decay not scaled by n, the "
        "mean-loss/sum-loss mix-up. The trained networks are then far from the dictionary the "
        "interpretation reports, and the claim must FAIL.")
    control_mutant = "omega-rescaled"
    requires = frozenset({"soft_threshold", "differentiable"})
    audit_sentences = {
        "FAIL": "the contrast breaks: g_dec networks no longer reach X G⁻¹Z̃ᵀ, or g_ae-ls networks do "
                "({statistic_name} = {statistic:.2g} [{lower:.2g}, {upper:.2g}])",
        "INCONCLUSIVE": "too few networks on the claimed side of the tolerance to call ({statistic_name} = "
                        "{statistic:.2g} [{lower:.2g}, {upper:.2g}]): the training has not settled by the last "
                        "checkpoint",
    }
    Cell = TrainedStationarityCell
    schema = {"kind": "str", "train_step": "int", "residual_train": "float", "dev": "float", "bound": "float",
              "tight": "float", "slack": "float", "ratio": "float", "cond": "float", "lam_max": "float",
              "residual_dec": "float", "loss": "float", "code_density": "float", "col_norm": "float"}
    discrete_columns = frozenset({"kind", "train_step"})
    profiles = {
        "quick": {"cells": [replace(_B, m=8, p=12, n=40, T=15, lr=1.5, n_steps=150, n_checkpoints=3)],
                  "n_instances": 40},
        "ci": {"cells": [replace(_B, n_steps=200, n_checkpoints=4)], "n_instances": 48},
        "paper": {"cells": [replace(_B, m=50, p=100, s=5, n=500, T=50, lr=1.0, n_steps=2000, n_checkpoints=8)],
                  "n_instances": 100},
    }

    def simulate(self, cell, seeds, ctx):
        """Long table: one row per (instance, kind, train_step): g_dec checkpoints, g_ae-ls at its end."""
        inst = core.make_instances(cell.m, cell.p, cell.s, cell.n, init_scale=cell.init_scale,
                                  seed=list(seeds), dtype=IDENTITY_DTYPE, device=ctx.device)
        encoder = ctx.encoder_under_test()
        omega = cell.omega
        enc_args = dict(lam=cell.lam, step=cell.step, T=cell.T)
        train_args = dict(enc_args, lr=cell.lr, normalize=False, omega=omega, encoder=encoder)
        X, D, done = inst.X, inst.D0, 0
        instance = np.arange(len(seeds))
        rows = []
        for step_l in _checkpoints(cell.n_steps, cell.n_checkpoints):
            traj = core.train(X, D, kind="dec", n_steps=step_l - done, record_every=max(1, step_l - done),
                             **train_args)
            D, done = traj.D, step_l
            residual = traj.grad_norm[-1]
            rows.append(self._rows(stationarity_check(X, D, residual, omega=omega, encoder=encoder, **enc_args),
                                   instance, "dec", step_l, residual))
        traj = core.train(X, inst.D0, kind="ae-ls", n_steps=cell.n_steps, record_every=max(1, cell.n_steps),
                         **train_args)
        # the certificate of an ae-ls network for the g_dec identity is its g_dec residual
        # (recomputed); its own reported residual ‖g_ae-ls + ωD‖ is stored as residual_train.
        check = stationarity_check(X, traj.D, _residual_dec(X, traj.D, omega, encoder, enc_args),
                                   omega=omega, encoder=encoder, **enc_args)
        rows.append(self._rows(check, instance, "ae-ls", cell.n_steps, traj.grad_norm[-1]))
        return pd.concat(rows, ignore_index=True)

    @staticmethod
    def _rows(check: dict, instance, kind: str, step_l: int, residual_train) -> pd.DataFrame:
        return pd.DataFrame({"instance": instance, "kind": kind, "train_step": step_l,
                             "residual_train": _np(residual_train),
                             **{k: _np(v) for k, v in check.items()}})

    @staticmethod
    def _finals(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The g_dec rows at each cell's last checkpoint and the g_ae-ls rows, indexed by (cell, instance)."""
        dec = table[table["kind"] == "dec"]
        last = dec.groupby("cell")["train_step"].transform("max")
        final = dec[dec["train_step"] == last].set_index(["cell", "instance"]).sort_index()
        ae = table[table["kind"] == "ae-ls"].set_index(["cell", "instance"]).sort_index()
        return final, ae

    def decide(self, table):
        """Rate of g_dec networks within DEV_TOL of D̃ and rate of g_ae-ls networks beyond it, both > REACH_RATE."""
        final, ae = self._finals(table)
        reach, beyond = int((final["dev"] <= DEV_TOL).sum()), int((ae["dev"] > DEV_TOL).sum())
        parts = {
            "reach": stats.rate_test(reach, len(final), REACH_RATE, alpha=self.alpha, side="greater",
                                     name=f"rate of g_dec networks within {DEV_TOL:g} of X G⁻¹Z̃ᵀ"),
            "differ": stats.rate_test(beyond, len(ae), REACH_RATE, alpha=self.alpha, side="greater",
                                      name=f"rate of g_ae-ls networks beyond {DEV_TOL:g} of X G⁻¹Z̃ᵀ"),
        }
        verdict = all_of(parts, n=len(final), alpha=self.alpha, primary="reach")
        # prediction: the deviation shrinks in proportion to the residual (log-log slope 1 between
        # the last two checkpoints, per instance)
        dec = table[table["kind"] == "dec"]
        slope = self._late_slopes(dec)
        slope = slope[np.isfinite(slope)]   # a network already at D̃ (dev or ‖R‖ exactly 0) has no slope
        predictions = () if len(slope) < 2 or np.ptp(slope) == 0 else (
            stats.prediction("slope of log ‖D − D̃‖ against log ‖R‖ (last two g_dec checkpoints)", 1.0,
                             float(np.mean(slope)), stats.mean_test(slope, threshold=1.0, alpha=self.alpha).interval),)
        by_step = dec.groupby("train_step")
        detail = dict(verdict.detail,
                      dev_median_by_step={str(int(k)): float(v) for k, v in by_step["dev"].median().items()},
                      residual_median_by_step={str(int(k)): float(v)
                                               for k, v in by_step["residual_train"].median().items()},
                      dev_final_q90=float(final["dev"].quantile(0.9)), dev_final_max=float(final["dev"].max()),
                      bound_final_median=float(final["bound"].median()),
                      worst_dev_over_bound=float((dec["dev"] / dec["bound"]).max()),
                      ae_ls_steps=int(ae["train_step"].max()), ae_ls_dev_median=float(ae["dev"].median()),
                      ae_ls_dev_min=float(ae["dev"].min()), ae_ls_dev_max=float(ae["dev"].max()),
                      dev_tolerance=DEV_TOL)
        return Verdict(**{**verdict.__dict__, "detail": detail, "predictions": (*verdict.predictions, *predictions)})

    @staticmethod
    def _late_slopes(dec: pd.DataFrame) -> np.ndarray:
        """Per (cell, instance): Δlog dev / Δlog ‖R‖ between each cell's last two g_dec checkpoints."""
        slopes = []
        for _, g in dec.groupby("cell"):
            a, b = np.sort(g["train_step"].unique())[-2:]
            piv = g.pivot_table(index="instance", columns="train_step", values=["dev", "residual_train"])
            with np.errstate(divide="ignore", invalid="ignore"):   # non-finite slopes are dropped by the caller
                slopes.append((np.log(piv["dev"][b]) - np.log(piv["dev"][a]))
                              / (np.log(piv["residual_train"][b]) - np.log(piv["residual_train"][a])))
        return pd.concat(slopes).to_numpy(float)

    def hypotheses(self, cell, table):
        """ω > 0, and the gradient-descent step condition η·λ_max(Z̃Z̃ᵀ/n + ωI) < 2 at the last g_dec checkpoint."""
        final, _ = self._finals(table)
        return [stats.hypothesis("ω > 0", cell.omega, 0.0, side="greater",
                                 note="weight decay makes D̃ = X G⁻¹Z̃ᵀ unique"),
                stats.hypothesis("η·λ_max(Z̃Z̃ᵀ/n + ωI) < 2", cell.lr * float(final["lam_max"].max()), 2.0,
                                 note="worst over the instances at the last g_dec checkpoint: gradient descent "
                                      "on the quadratic in D (codes held) converges")]

    # ------------------------------------------------------------------ figures
    @figure("stationarity-residual",
            "Left: deviation of the trained dictionary from X G⁻¹Z̃ᵀ, ‖D − D̃‖_F/‖D‖_F, and its certified "
            "bound ‖R‖_F/(ω‖D‖_F) from the training's gradient residual, against the training step (median "
            "and 10–90 % band over instances, log scale). Right: deviation against bound per instance and "
            "checkpoint; the inequality (checked deterministically in II.4a) puts every point on or below "
            "y = x. g_ae-ls networks (the contrast) are shown as crosses.")
    def draw_residual(self, fi: FigureInput):
        """Deviation and bound against the checkpoint (left); deviation against bound per instance (right)."""
        t = fi.table
        fi.need("train_step", "dev", "bound")
        dec = t[t["kind"] == "dec"] if "kind" in t.columns else t
        fig, (a, b) = plot.new_figure(2)
        c0, c1, c2 = plot.palette(3)[:3]
        plot.band(a, dec, "train_step", "dev", colour=c0, label=r"deviation $\|D - \tilde D\|_F/\|D\|_F$",
                  marker="o", positive=True)
        plot.band(a, dec, "train_step", "bound", colour=c1, label=r"bound $\|R\|_F/(\omega\|D\|_F)$", marker="s",
                  linestyle="--", positive=True)
        if "tight" in dec.columns:
            plot.band(a, dec, "train_step", "tight", colour=c2, label=r"tighter $\|R\|_F/(\lambda_{\min}\|D\|_F)$",
                      marker="^", linestyle=":", positive=True, alpha=0.0)
        a.set_yscale("log")
        plot.data_ticks(a.xaxis, pd.unique(dec["train_step"]))
        a.set_xlabel("training step (checkpoints)")
        a.set_ylabel("relative deviation / bound")
        a.set_title("the stationarity residual certifies the deviation")
        plot.legend(a, title=plot.band_note(plot.instances_of(dec[dec["train_step"] == dec["train_step"].max()])),
                    title_fontsize=8, loc="lower left")
        d = plot.finite(dec, "dev", "bound", positive=True)
        steps = sorted(pd.unique(d["train_step"]))
        colours = plot.palette(len(steps))
        for s, c in zip(steps, colours):
            g = d[d["train_step"] == s]
            b.scatter(g["bound"], g["dev"], s=10, color=c, alpha=0.7, label=f"step {s:g}")
        if "kind" in t.columns:
            ae = plot.finite(t[t["kind"] == "ae-ls"], "dev", "bound", positive=True)
            if len(ae):
                b.scatter(ae["bound"], ae["dev"], s=30, marker="x", color="0.1",
                          label=r"$g_{\mathrm{ae}\text{-}\mathrm{ls}}$ network")
        pos = d[["dev", "bound"]].to_numpy(float).ravel()
        if len(pos):
            lim = np.array([pos.min() * 0.5, pos.max() * 2])
            b.plot(lim, lim, color="0.2", linestyle="--", linewidth=1, label="y = x (bound attained)")
        b.set_xscale("log")
        b.set_yscale("log")
        b.set_xlabel(r"bound $\|R\|_F/(\omega\|D\|_F)$")
        b.set_ylabel(r"deviation $\|D - \tilde D\|_F/\|D\|_F$")
        b.set_title("every instance, every checkpoint")
        plot.legend(b, loc="upper left", fontsize=7.5)
        return fig

    @figure("reach-contrast",
            "The decision: each network's deviation ‖D − X G⁻¹Z̃ᵀ‖_F/‖D‖_F after the same number of "
            "gradient steps (one point per instance, log scale), trained with g_dec (stationary for the "
            "weight-decayed least-squares objective: within the tolerance) and with g_ae-ls (stationary "
            "for a different objective: beyond it). The dashed line is the pre-declared tolerance; the "
            "labels give the share of networks on the claimed side.")
    def draw_contrast(self, fi: FigureInput):
        """Final deviation per instance for g_dec and g_ae-ls against DEV_TOL."""
        t = fi.table
        fi.need("kind", "train_step", "dev")
        final, ae = self._finals(t)
        fig, (a,) = plot.new_figure(1, width=5.2, height=3.8)
        rng = np.random.default_rng(0)   # fixed jitter: deterministic figure
        steps = ", ".join(f"{int(v)}" for v in pd.unique(final["train_step"])) if len(final) else "?"
        ticks = []
        for x, (name, rows, colour, side) in enumerate(
                (("g_dec", final, plot.estimator_colour("dec"), "within"),
                 ("g_ae-ls", ae, plot.estimator_colour("ae-ls"), "beyond"))):
            d = rows["dev"].to_numpy(float)
            share = np.mean(d <= DEV_TOL) if side == "within" else np.mean(d > DEV_TOL)
            ticks.append(f"{name} ({steps} steps)\n{share:.0%} {side} the tolerance" if len(d) else name)
            d = d[np.isfinite(d) & (d > 0)]
            if len(d):
                a.scatter(x + rng.uniform(-0.18, 0.18, len(d)), d, s=12, color=colour, alpha=0.7)
        a.axhline(DEV_TOL, color="0.2", linestyle="--", linewidth=1, label=f"tolerance {DEV_TOL:g}")
        a.set_xticks([0, 1], ticks)
        a.set_xlim(-0.6, 1.6)
        a.set_yscale("log")
        a.set_ylabel(r"deviation $\|D - \tilde D\|_F/\|D\|_F$")
        a.set_title("g_dec reaches X G⁻¹Z̃ᵀ, g_ae-ls does not")
        plot.legend(a, loc="lower right", fontsize=7.5)
        return fig


def _residual_dec(X, D, omega, encoder, enc_args) -> torch.Tensor:
    """‖(DZ̃ − X)Z̃ᵀ/n + ωD‖_F at Z̃ = encoder(X, D): the g_dec residual of any dictionary."""
    with torch.no_grad():
        Z = encoder(X, D, **enc_args)
        return _fro(core.decoder_gradient(X, D, Z) + omega * D)


# --------------------------------------------------------------------------- II.4c
def check_digits(pixels: np.ndarray, labels: np.ndarray) -> None:
    """Check the raw digits against their declared shape, range and label balance.

    Parameters
    ----------
    pixels : (1797, 64) raw pixel values (0…16).  labels : (1797,) class labels.

    Raises
    ------
    ValueError
        Naming the bad value and what is allowed.
    """
    pixels, labels = np.asarray(pixels), np.asarray(labels)
    if pixels.shape != DIGITS_SHAPE:
        raise ValueError(f"digits have shape {pixels.shape}, expected {DIGITS_SHAPE} (load_digits().data)")
    if labels.shape != DIGITS_SHAPE[:1]:
        raise ValueError(f"digit labels have shape {labels.shape}, expected {DIGITS_SHAPE[:1]}")
    if not np.all(np.isfinite(pixels)) or pixels.min() < 0 or pixels.max() > PIXEL_MAX \
            or not np.all(pixels == np.round(pixels)):
        raise ValueError(f"digit pixels must be integers in [0, {PIXEL_MAX:g}], got range "
                         f"[{np.nanmin(pixels)!r}, {np.nanmax(pixels)!r}]")
    blank = int(np.sum(~pixels.any(axis=1)))
    if blank:
        raise ValueError(f"{blank} digit images are all zero; every image must have a nonzero pixel")
    if not np.array_equal(np.unique(labels), np.arange(N_CLASSES)):
        raise ValueError(f"digit labels are {np.unique(labels).tolist()}, expected 0…{N_CLASSES - 1}")
    counts = np.bincount(labels.astype(np.int64), minlength=N_CLASSES)
    low, high = DIGITS_CLASS_COUNT
    if counts.min() < low or counts.max() > high:
        raise ValueError(f"digit class counts {counts.tolist()} fall outside [{low}, {high}] (balanced classes)")


@functools.lru_cache(maxsize=1)
def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits: images ``(1797, 64)``, scaled to [0, 1] then to unit ℓ2 norm; labels.

    Ships with scikit-learn (no download); verified by :func:`check_digits` (shape, pixel range,
    no blank image, balanced labels) on every load. The report draws figures from the raw
    ``load_digits().images[index]``; the indices stored in II.4c's table are into this array.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    check_digits(digits.data, digits.target)
    X = digits.data.astype(np.float64) / PIXEL_MAX
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    return X, digits.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def digit_pictures() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits as pictures: raw images ``(1797, 8, 8)`` (0–16) and labels.

    What II.4c's figures show; the ``train_index`` values stored in its table index these
    (the same order as :func:`load_digit_images`). Ships with scikit-learn (no download).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over the last dimension (broadcast)."""
    a = a - a.mean(dim=-1, keepdim=True)
    b = b - b.mean(dim=-1, keepdim=True)
    return (a * b).sum(dim=-1) / (torch.linalg.vector_norm(a, dim=-1) * torch.linalg.vector_norm(b, dim=-1))


def _gather_cols(M: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``M (B, n, ...)`` rows picked by ``idx (B, k, q)`` → ``(B, k, q, ...)``."""
    B, k, q = idx.shape
    flat = idx.reshape(B, k * q)
    if M.ndim == 2:
        return torch.gather(M, 1, flat).reshape(B, k, q)
    out = torch.gather(M, 1, flat[..., None].expand(B, k * q, M.shape[-1]))
    return out.reshape(B, k, q, M.shape[-1])


@dataclass(frozen=True)
class DigitInterpretabilityCell:
    """A cell of II.4c: p atoms; λ; step α; T layers; ridge ω (omega); learning rate lr; n_train training
    images; n_steps of learning, checked at n_checkpoints; decisive: the cell the verdict rests on (the
    others sweep ω and are reported beside it; its last checkpoint also stores the figures' records)."""

    p: int
    lam: float
    step: float
    T: int
    omega: float
    lr: float
    n_train: int
    n_steps: int
    n_checkpoints: int
    decisive: bool


_C = DigitInterpretabilityCell(p=64, lam=0.1, step=0.2, T=15, omega=0.01, lr=6.0, n_train=800, n_steps=150,
                               n_checkpoints=4, decisive=True)
#: Integer-valued columns of II.4c's long table.
_INT_COLUMNS = ("n_test", "train_step", "item", "rank", "train_index", "train_label", "test_label", "pixel")


def _t_quantile(alpha: float, n) -> np.ndarray:
    """The one-sided (1 − α) quantile of Student's t with n − 1 degrees of freedom (NaN for n < 2)."""
    from scipy.stats import t as student

    n = np.asarray(n, dtype=float)
    return np.where(n > 1, student.ppf(1 - alpha, np.maximum(n - 1, 1)), np.nan)


def _agreement(scores: torch.Tensor, y_train: torch.Tensor, y_test: torch.Tensor) -> torch.Tensor:
    """Per split: the fraction of test images whose highest-scoring training image shares their label.

    scores : (B, n_train, n_test).  y_train : (B, n_train).  y_test : (B, n_test).  Returns (B,).
    """
    top = torch.gather(y_train, 1, scores.argmax(dim=1))
    return (top == y_test).to(torch.float64).mean(dim=1)


class DigitInterpretability(Claim):
    """II.4c — on real digits, the β explanation of a trained network is its own, labels agree far above
    chance, yet below an untrained dictionary and data-only baselines."""

    id = "II.4c"
    theorem = "II.4"
    title = ("on real digits, β explains the trained network's outputs and picks same-label training "
             "images far above chance — but less often than an untrained dictionary or the pixels themselves")
    statement = (
        "Learn a dictionary on the 8×8 digits of scikit-learn (load_digits, 10 classes) with g_dec and "
        "weight decay ω until it is stationary (docs/theory.md#ii4c-interpretability); with the codes "
        "Z̃ of the training images and ẑ of a held-out image, β = G⁻¹Z̃ᵀẑ (G = Z̃ᵀZ̃ + nωI) writes "
        "D̃ẑ = Σ_k β_k x^k over the training images. At the decisive cell (ω = 0.01, 150 steps): (i) "
        "the explanation is the network's own — ‖Dẑ − Xβ‖/‖Dẑ‖ averages below "
        f"{FAITH_TOL:g} over held-out images (≈ 1.4 for the untrained dictionary, whose D̃ is not the "
        f"network); (ii) the training image with the largest β shares the label with probability > "
        f"{AGREEMENT_MIN:g} (three times chance); (iii) the training images contributing most to an atom "
        f"resemble it (correlation gap top-{TOP_K} minus bottom-{TOP_K} > {RESEMBLANCE_MIN:g}). Against a "
        "simple reading of the paper, training does not create the label agreement: (iv) at every ω of "
        "the sweep the trained network's agreement is below the untrained random dictionary's (≈ 0.88), "
        "and both are below the data-only baselines reported beside them — the pixel-space nearest "
        "neighbour (≈ 0.98) and β with Z = X (≈ 0.96). The agreement falls with training and with ω "
        "(0.60 at ω = 0.01, 0.35 at 0.02, chance at 0.03, where one atom per image is left), and "
        "weight decay leaves few atoms alive (≈ 5 of 64 at ω = 0.01).")
    kind = "probabilistic"
    effect = (
        "The instance is a random train/test split (its own seed draws the split and the initial "
        "dictionary); splits are independent given the data set, test images within a split are not "
        "(they share the learned dictionary), so per-split rates are the unit: one-sided t tests over "
        "splits, intersection–union of (i) mean faithfulness error < "
        f"{FAITH_TOL:g}, (ii) mean agreement > {AGREEMENT_MIN:g}, (iii) mean resemblance gap > "
        f"{RESEMBLANCE_MIN:g} at the decisive cell's last checkpoint, and (iv) mean agreement(untrained) − "
        "agreement(trained) > 0 at every cell. Pilot (root seed 10004, ci cells, 6 splits): (i) "
        "0.0034 ± 0.0018 (untrained 1.41), (ii) 0.60 ± 0.03, (iii) 0.92 ± 0.10 (untrained 0.49), "
        "(iv) 0.29 ± 0.04 at ω = 0.01 and 0.52 ± 0.03 at ω = 0.02 (trained 0.35); pixel nearest "
        "neighbour 0.98, β with Z = X 0.96, chance 0.10; deviation from D̃ ≤ 0.015 at step 150. "
        "t_test_n at α = 0.01/18 (Holm worst case), β = 0.05: 4–5 splits for every part → 6 splits. "
        "Sweep pilots (root seeds 10011–10014 at η = 3, 10021–10026 at η = 6; 300 steps): agreement "
        "after training 0.79 (ω = 0.001, not yet stationary), 0.73 (0.003), 0.69 (0.005), 0.52–0.57 "
        "(0.01), 0.35 (0.02), 0.10 (0.03, codes collapse to one atom per image); the untrained "
        "dictionary 0.88–0.92 at every ω. With n_train = 1200, η = 1 the agreement was 0.90 untrained, "
        "0.70 after 20 steps, 0.54 after 100 steps, 0.58 at stationarity (root seeds 10001–10002). "
        "Control pilot (mutant 'beta-without-inverse'): agreement 0.60 (unchanged — label agreement "
        "alone cannot see the bug), faithfulness error 115 (FAIL); mutant 'omega-rescaled' "
        "(ridge ω/n) gives faithfulness 0.16 (FAIL). The pooled per-image rate with a "
        "Clopper–Pearson interval is reported as a description only (it ignores the within-split "
        "dependence).")
    regime = (
        "load_digits (1797 images, 64 pixels, scaled to unit norm; shape, pixel range and label "
        "balance verified on every load by check_digits), 800 training / 997 test images per split, "
        "p = 64 atoms (complete), random Gaussian unit-norm D⁽⁰⁾, encoder T = 15 layers (the paper's "
        "T), α = 0.2, λ = 0.1, weight decay ω on the mean loss (G = Z̃ᵀZ̃ + nωI), full-batch g_dec "
        "gradient descent with η = 6, no column renormalisation, 150 steps with checkpoints at 0 "
        "(untrained), 18, 37, 75, 150. Stationarity (‖D − D̃‖/‖D‖ ≤ "
        f"{STATIONARY_TOL:g}) and the step condition η·λ_max(Z̃Z̃ᵀ/n + ωI) < 2 are recorded per cell as "
        "hypotheses: only where both hold is β the network's own explanation. ci: the decisive cell "
        "ω = 0.01 and ω = 0.02 (towards the collapse); paper: ω = 0.001 … 0.03, 600 steps, 20 splits "
        "(ω ≤ 0.003 converges slowly; at η = 6 the step condition fails near ω = 0.03), with the ω where "
        "the agreement falls to the claim's threshold interpolated when the sweep brackets it. The "
        "paper used MNIST 0–4, p = 500 and g_ae-lasso; the claim is about the interpretation formula on "
        "a network trained to its stationary point, not that set-up. quick: 3 splits, 400 training "
        "images, 60 steps — short of stationarity, so the claim is reported there, not decided "
        "(decides_at).")
    control = (
        "Mutant 'beta-without-inverse' (udl.engine.mutants, interpretation area): the reconstruction "
        "coefficients are computed as β = Z̃ᵀẑ, the solve with G forgotten. The label agreement barely "
        "moves (the code similarity alone picks same-label images), but Xβ no longer reproduces the "
        "network's output Dẑ, so the faithfulness part must FAIL.")
    control_mutant = "beta-without-inverse"
    requires = frozenset({"soft_threshold"})
    decides_at = ("ci", "paper")
    audit_sentences = {
        "FAIL": "the β explanation no longer reproduces the network's outputs, picks same-label training "
                "digits, or matches the atoms ({statistic_name} = {statistic:.2g})",
    }
    Cell = DigitInterpretabilityCell
    schema = {"record": "str", "train_step": "int", "agree_top1": "float", "successes": "float", "n_test": "int",
              "share_topk": "float", "chance": "float", "agree_pixel_nn": "float", "agree_beta_x": "float",
              "faith": "float", "resemblance": "float", "corr_top": "float", "corr_bot": "float",
              "atoms_used": "float", "dev": "float", "loss": "float", "grad_norm": "float",
              "code_density": "float", "lam_max": "float",
              "item": "int", "role": "str", "rank": "int", "train_index": "int", "train_label": "int",
              "weight": "float", "test_label": "int", "what": "str", "pixel": "int", "value": "float"}
    profiles = {
        "quick": {"cells": [replace(_C, n_train=400, n_steps=60, n_checkpoints=2)], "n_instances": 3},
        "ci": {"cells": [_C, replace(_C, omega=0.02, decisive=False)], "n_instances": 6},
        "paper": {"cells": [replace(_C, omega=omega, n_steps=600, decisive=omega == 0.01)
                            for omega in (0.001, 0.003, 0.005, 0.01, 0.02, 0.03)], "n_instances": 20},
    }

    def simulate(self, cell, seeds, ctx):
        """Rows: ``record = "split"`` (one per split and checkpoint; train_step 0 is the untrained
        dictionary; the data-only baselines of the split on every row), and, in the decisive cell,
        figure records from the last checkpoint."""
        images, labels = load_digit_images()
        N, m = images.shape
        n_train, p = cell.n_train, cell.p
        rngs = [np.random.default_rng(int(s)) for s in seeds]
        order = np.stack([r.permutation(N) for r in rngs])                       # split
        D0 = np.stack([r.standard_normal((m, p)) for r in rngs])                   # initial dictionary
        train_idx, test_idx = order[:, :n_train], order[:, n_train:]
        dev = dict(device=ctx.device, dtype=ctx.dtype)
        X = torch.as_tensor(images[train_idx]).mT.to(**dev)                       # (B, m, n_train)
        X_test = torch.as_tensor(images[test_idx]).mT.to(**dev)                   # (B, m, n_test)
        y_train = torch.as_tensor(labels[train_idx], device=ctx.device)
        y_test = torch.as_tensor(labels[test_idx], device=ctx.device)
        encoder, omega = ctx.encoder_under_test(), cell.omega
        enc_args = dict(lam=cell.lam, step=cell.step, T=cell.T)
        with torch.no_grad():
            freq = torch.nn.functional.one_hot(y_train, N_CLASSES).to(torch.float64).mean(dim=1)
            base = {"chance": _np(torch.gather(freq, 1, y_test).mean(dim=1)),
                    # data-only baselines: the nearest training image in pixel space (inner product of
                    # unit-norm images), and β with the pixels as codes (Z = X)
                    "agree_pixel_nn": _np(_agreement(X.mT @ X_test, y_train, y_test)),
                    "agree_beta_x": _np(_agreement(core.reconstruction_coefficients(X, X, X_test, omega=n_train * omega),
                                                   y_train, y_test))}
        D, done, rows = core.normalize_columns(torch.as_tensor(D0).to(**dev)), 0, []
        for step_l in _checkpoints(cell.n_steps, cell.n_checkpoints):
            if step_l > done:
                D = core.train(X, D, kind="dec", n_steps=step_l - done, lr=cell.lr, normalize=False, omega=omega,
                               encoder=encoder, record_every=step_l - done, **enc_args).D
                done = step_l
            measured, parts = self._measures(X, X_test, D, y_train, y_test, encoder, enc_args, omega)
            rows.append(pd.DataFrame({"instance": np.arange(len(seeds)), "record": "split", "train_step": step_l,
                                      "n_test": N - n_train, **base, **measured}))
        if cell.decisive:
            rows.append(self._figure_rows(*parts, train_idx, test_idx, labels))
        table = pd.concat(rows, ignore_index=True)
        # every schema column, also where this cell stores no figure records (left missing)
        missing = {c: (np.nan if kind == "float" else None) for c, kind in self.schema.items() if c not in table.columns}
        table = table.assign(**missing)
        # integer columns stay integers (nullable) in the long table, where other records leave gaps
        return table.astype({c: "Int64" for c in _INT_COLUMNS if c in table.columns})

    @staticmethod
    def _measures(X, X_test, D, y_train, y_test, encoder, enc_args, omega) -> tuple[dict, tuple]:
        """Per split at one dictionary D: label agreement, faithfulness, resemblance, stationarity.

        Returns the columns (arrays of length B) and what the figure records need (C, β, Z̃, X, D̃).
        """
        n_train = X.shape[-1]
        with torch.no_grad():
            Z, Z_test = encoder(X, D, **enc_args), encoder(X_test, D, **enc_args)
            D_tilde, C = core.stationary_dictionary(X, Z, omega=n_train * omega, return_contributions=True)
            beta = core.reconstruction_coefficients(X, Z, Z_test, omega=n_train * omega)   # (B, n_train, n_test)
            # (i) the explanation against the network's own output on held-out images
            out = D @ Z_test
            faith = (torch.linalg.vector_norm(out - X @ beta, dim=-2)
                     / torch.linalg.vector_norm(out, dim=-2).clamp(min=torch.finfo(out.dtype).tiny)).mean(dim=-1)
            # (ii) labels of the top-β training examples
            top = beta.topk(TOP_K, dim=1).indices                                  # (B, k, n_test)
            top_labels = _gather_cols(y_train, top)                                # (B, k, n_test)
            agree = (top_labels[:, 0] == y_test).to(torch.float64)
            share = (top_labels == y_test[:, None]).to(torch.float64).mean(dim=1)
            # (iii) atoms against their top / bottom contributors
            X_look = X.mT                                                          # (B, n_train, m)
            used = Z.abs().sum(dim=-1) > 0                                         # (B, p)
            atoms = D_tilde.mT[:, None]                                            # (B, 1, p, m)
            corr_top = _pearson(atoms, _gather_cols(X_look, C.topk(TOP_K, dim=1).indices)).mean(dim=1)
            corr_bot = _pearson(atoms, _gather_cols(X_look, (-C).topk(TOP_K, dim=1).indices)).mean(dim=1)
            n_used = used.sum(dim=-1)
            mean_used = lambda v: torch.where(used, v, torch.zeros_like(v)).sum(-1) / n_used.clamp(min=1)  # noqa: E731
            # an encoder that uses no atom shows no resemblance: gap 0 (the claim then FAILS), not 0/0
            resemblance = mean_used(corr_top - corr_bot)
            lam_max = torch.linalg.eigvalsh(Z @ Z.mT / n_train)[..., -1] + omega
            columns = {
                "agree_top1": _np(agree.mean(dim=1)), "successes": _np(agree.sum(dim=1)),
                "share_topk": _np(share.mean(dim=1)), "faith": _np(faith),
                "resemblance": _np(resemblance), "corr_top": _np(mean_used(corr_top)),
                "corr_bot": _np(mean_used(corr_bot)), "atoms_used": _np(n_used.to(torch.float64)),
                "dev": _np(_fro(D - D_tilde) / _fro(D)),
                "loss": _np(0.5 * (X - D @ Z).square().sum(dim=(-2, -1)) / n_train),
                "grad_norm": _np(_fro(core.decoder_gradient(X, D, Z) + omega * D)),
                "code_density": _np((Z != 0).to(torch.float64).mean(dim=(-2, -1))),
                "lam_max": _np(lam_max),
            }
        return columns, (C, beta, Z, X, D_tilde)

    @staticmethod
    def _figure_rows(C, beta, Z, X, D_tilde, look_idx, test_idx, labels) -> pd.DataFrame:
        """Top/bottom contributors (global load_digits indices, labels, weights) and pixels for figures.

        ``record = "fig_atom"``: item = atom j (the FIG_ATOMS most used); ``record = "fig_test"``:
        item = global index of the test image (the first FIG_TESTS of the split). ``role`` is "top"
        or "bottom", ``rank`` 0…TOP_K−1, ``train_index`` a global index (as the reader looked it up),
        ``weight`` the contribution C_kj or β_k. ``record = "fig_pixels"``: the 64 pixels of the atom
        D̃_j (what = "atom") or of the reconstruction Xβ = D̃ẑ (what = "recon", unit-norm image scale).
        """
        B = C.shape[0]
        usage = torch.linalg.vector_norm(Z, dim=-1)                                  # (B, p)
        atoms = usage.topk(FIG_ATOMS, dim=-1).indices                                # (B, a)
        tests = torch.arange(FIG_TESTS, device=C.device).expand(B, FIG_TESTS)        # (B, t)
        W_atom = torch.gather(C, 2, atoms[:, None].expand(-1, C.shape[1], -1))      # (B, n_train, a)
        W_test = beta[..., :FIG_TESTS]                                               # (B, n_train, t)
        frames = []
        for record, W, items in (("fig_atom", W_atom, _np(atoms).astype(np.int64)),
                                 ("fig_test", W_test, test_idx[:, :FIG_TESTS])):
            for role, sign in (("top", 1.0), ("bottom", -1.0)):
                idx = (sign * W).topk(TOP_K, dim=1).indices                         # (B, k, q)
                w = _np(torch.gather(W, 1, idx))
                local = _np(idx).astype(np.int64)
                glob = np.take_along_axis(look_idx, local.reshape(B, -1), axis=1).reshape(local.shape)
                q = local.shape[-1]
                frames.append(pd.DataFrame({
                    "instance": np.repeat(np.arange(B), TOP_K * q), "record": record,
                    "item": np.repeat(items[:, None, :], TOP_K, axis=1).ravel(),
                    "role": role, "rank": np.tile(np.repeat(np.arange(TOP_K), q), B),
                    "train_index": glob.ravel(), "train_label": labels[glob].ravel(),
                    "weight": w.ravel(),
                    "test_label": (labels[np.repeat(items[:, None, :], TOP_K, axis=1)].ravel()
                                   if record == "fig_test" else -1)}))
        atom_px = torch.gather(D_tilde, 2, atoms[:, None].expand(-1, D_tilde.shape[1], -1))   # (B, m, a)
        recon_px = X @ W_test                                                                # (B, m, t)
        for what, px, items in (("atom", atom_px, _np(atoms).astype(np.int64)),
                                ("recon", recon_px, test_idx[:, :FIG_TESTS])):
            m, q = px.shape[1], px.shape[2]
            frames.append(pd.DataFrame({
                "instance": np.repeat(np.arange(B), m * q), "record": "fig_pixels", "what": what,
                "item": np.repeat(items[:, None, :], m, axis=1).ravel(),
                "pixel": np.tile(np.repeat(np.arange(m), q), B), "value": _np(px).ravel()}))
        return pd.concat(frames, ignore_index=True)

    def decide(self, table):
        """t tests over splits: faithfulness, agreement and resemblance at the decisive cell's last
        checkpoint; agreement below the untrained dictionary's at every cell."""
        final, untrained = self._final_and_untrained(table)
        d = final[final["decisive"].astype(bool)]
        parts = {
            "faithful": stats.mean_test(d["faith"], threshold=FAITH_TOL, alpha=self.alpha, side="less",
                                        name="‖Dẑ − Xβ‖/‖Dẑ‖ of the trained network (mean over splits)"),
            "labels": stats.mean_test(d["agree_top1"], threshold=AGREEMENT_MIN, alpha=self.alpha, side="greater",
                                      name="top-1 β label agreement (mean over splits)"),
            "atoms": stats.mean_test(d["resemblance"], threshold=RESEMBLANCE_MIN, alpha=self.alpha,
                                     side="greater", name="corr(atom, top) − corr(atom, bottom)"),
        }
        sweep = {}
        for cell, g in final.groupby(level="cell", sort=True):
            omega = float(g["omega"].iloc[0])
            gap = untrained.loc[g.index, "agree_top1"] - g["agree_top1"]
            parts[f"below-untrained ω={omega:g}"] = stats.mean_test(
                gap, threshold=0.0, alpha=self.alpha, side="greater",
                name=f"agreement(untrained) − agreement(trained), ω = {omega:g}")
            sweep[f"{omega:g}"] = self._where_it_stands(table[table["cell"] == cell], g, untrained.loc[g.index])
        verdict = all_of(parts, n=len(d), alpha=self.alpha, primary="faithful")
        k, n = int(d["successes"].sum()), int(d["n_test"].sum())
        detail = dict(verdict.detail,
                      pooled_agreement=k / n, pooled_images=n,
                      pooled_clopper_pearson=list(stats.clopper_pearson(k, n, self.alpha)),
                      chance_mean=float(d["chance"].mean()), share_topk_mean=float(d["share_topk"].mean()),
                      corr_top_mean=float(d["corr_top"].mean()), corr_bot_mean=float(d["corr_bot"].mean()),
                      dev_median=float(d["dev"].median()), atoms_used_mean=float(d["atoms_used"].mean()),
                      sweep=sweep, agreement_boundary=self._boundary(sweep))
        return Verdict(**{**verdict.__dict__, "detail": detail})

    @staticmethod
    def _final_and_untrained(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The split rows at each cell's last checkpoint and at step 0, both indexed by (cell, instance)."""
        s = table[table["record"] == "split"]
        step = s["train_step"].astype(int)
        final = s[step == step.groupby(s["cell"]).transform("max")].set_index(["cell", "instance"])
        untrained = s[step == 0].set_index(["cell", "instance"])
        return final.sort_index(), untrained.sort_index()

    def _where_it_stands(self, rows: pd.DataFrame, final: pd.DataFrame, untrained: pd.DataFrame) -> dict:
        """One cell of the sweep: the trained network's agreement by checkpoint against the untrained
        dictionary and the data-only baselines (means over splits with their t intervals)."""
        def mean(values):
            v = pd.to_numeric(values, errors="coerce").to_numpy(float)
            interval = stats.mean_test(v, threshold=0.5, alpha=self.alpha).interval if len(v) > 1 else (v[0], v[0])
            return {"mean": float(np.mean(v)), "interval": [float(x) for x in interval]}

        split = rows[rows["record"] == "split"]
        return {
            "agreement_by_step": {str(int(k)): float(v) for k, v in
                                  split.groupby(split["train_step"].astype(int))["agree_top1"].mean().items()},
            "trained": mean(final["agree_top1"]), "untrained": mean(untrained["agree_top1"]),
            "pixel_nn": mean(final["agree_pixel_nn"]), "beta_x": mean(final["agree_beta_x"]),
            "chance": float(final["chance"].mean()),
            "faith_trained": float(final["faith"].mean()), "faith_untrained": float(untrained["faith"].mean()),
            "resemblance_trained": float(final["resemblance"].mean()),
            "resemblance_untrained": float(untrained["resemblance"].mean()),
            "dev_max": float(final["dev"].max()), "code_density": float(final["code_density"].mean()),
        }

    @staticmethod
    def _boundary(sweep: dict) -> dict:
        """Where the trained agreement falls to AGREEMENT_MIN along ω: log-linear interpolation of the
        mean between the two swept ω that bracket it, with the ω interval from the agreement intervals."""
        points = sorted((float(w), v["trained"]) for w, v in sweep.items())
        for (w0, a0), (w1, a1) in zip(points, points[1:]):
            if a0["mean"] > AGREEMENT_MIN >= a1["mean"]:
                def cross(y0, y1, w0=w0, w1=w1):
                    if y0 <= AGREEMENT_MIN or y1 > AGREEMENT_MIN or y0 == y1:
                        return None
                    return float(np.exp(np.log(w0) + (y0 - AGREEMENT_MIN) / (y0 - y1) * np.log(w1 / w0)))
                return {"bracketed": True, "omega": cross(a0["mean"], a1["mean"]),
                        "omega_interval": [cross(a0["interval"][0], a1["interval"][0]),
                                           cross(a0["interval"][1], a1["interval"][1])]}
        return {"bracketed": False, "omega": None, "omega_interval": None}

    def hypotheses(self, cell, table):
        """At the last checkpoint: the network is at its stationary point (β explains it), and the step
        condition η·λ_max(Z̃Z̃ᵀ/n + ωI) < 2 holds."""
        final, _ = self._final_and_untrained(table)
        return [stats.hypothesis("‖D − D̃‖_F/‖D‖_F ≤ tolerance at the last checkpoint", float(final["dev"].max()),
                                 STATIONARY_TOL, note="worst split: the network is (numerically) stationary, so "
                                                      "β = G⁻¹Z̃ᵀẑ explains its own outputs"),
                stats.hypothesis("η·λ_max(Z̃Z̃ᵀ/n + ωI) < 2", cell.lr * float(final["lam_max"].max()), 2.0,
                                 note="worst split at the last checkpoint: gradient descent on the quadratic in D "
                                      "(codes held) converges")]

    # ------------------------------------------------------------------ figures
    @figure("label-agreement",
            "Per split (train/test draw, independent instances), for the network at the cell's last "
            "checkpoint: the fraction of test images whose "
            f"top-β training image shares their label, against the chance rate and the claim's {AGREEMENT_MIN:g} "
            "(left); the resemblance gap corr(atom, top contributors) − corr(atom, bottom contributors) "
            f"against the claim's {RESEMBLANCE_MIN:g} (right).")
    def draw_agreement(self, fi: FigureInput):
        """Label agreement per split against chance and AGREEMENT_MIN; resemblance gap against RESEMBLANCE_MIN."""
        t = fi.table
        fi.need("record", "agree_top1", "resemblance")
        s = t[t["record"] == "split"]
        if "train_step" in s.columns and len(s):   # the trained network: the last checkpoint
            s = s[s["train_step"] == s["train_step"].max()]
        fi.need("agree_top1", table=s)
        fig, (a, b) = plot.new_figure(2, height=3.6)
        c0, c1, _ = plot.palette(3)[:3]
        x = np.arange(len(s))
        a.bar(x, s["agree_top1"], color=c0, label="top-1 β label agreement")
        if "chance" in s.columns:
            a.scatter(x, s["chance"], color=plot.palette(4)[3], marker="_", s=300, linewidths=2.5,
                      label="chance rate (label frequencies)", zorder=3)
        a.axhline(AGREEMENT_MIN, color="0.3", linestyle="--", linewidth=1, label=f"claim: > {AGREEMENT_MIN:g}")
        if bool(plot.cell_value(s, "decisive", True)):   # the decided mean belongs to the decisive cell
            plot.stored_mean(a, plot.part(fi.record, "labels"), "stored mean")
        a.set_ylim(0, 1.3)
        a.set_xticks(x, [str(i) for i in s["instance"]] if "instance" in s.columns else x)
        a.set_xlabel("split (instance)")
        a.set_ylabel("fraction of test images")
        a.set_title("top-β training image shares the label")
        plot.legend(a, loc="upper center", ncol=2, fontsize=7.5)
        b.bar(x, s["resemblance"], color=c1, label="resemblance gap")
        b.axhline(RESEMBLANCE_MIN, color="0.3", linestyle="--", linewidth=1, label=f"claim: > {RESEMBLANCE_MIN:g}")
        if bool(plot.cell_value(s, "decisive", True)):   # the decided mean belongs to the decisive cell
            plot.stored_mean(b, plot.part(fi.record, "atoms"), "stored mean")
        b.set_ylim(0, max(1.0, float(s["resemblance"].max()) * 1.3))
        b.set_xticks(x, [str(i) for i in s["instance"]] if "instance" in s.columns else x)
        b.set_xlabel("split (instance)")
        b.set_ylabel("Pearson correlation gap (mean over atoms)")
        b.set_title("top contributors resemble the atom")
        plot.legend(b, loc="upper center", ncol=2, fontsize=7.5)
        return fig

    @figure("sweep",
            "Where the trained networks stand. Left: top-1 β label agreement against the training step "
            "(step 0: the untrained random dictionary), one line per weight decay ω (mean over splits, "
            "bars: the 1 − 2α t intervals), beside the data-only baselines of the same splits — the "
            "nearest training image in pixel space and β with the pixels as codes (Z = X) — the chance "
            f"rate and the claim's {AGREEMENT_MIN:g}. Right: the faithfulness error ‖Dẑ − Xβ‖/‖Dẑ‖ of the "
            f"network's own outputs (log scale) against the claim's {FAITH_TOL:g}: β explains the network only "
            "once training has made it stationary.", per_cell=False)
    def draw_sweep(self, fi: FigureInput):
        """Agreement and faithfulness against the training step per ω, with the baselines."""
        t = fi.table
        fi.need("record", "train_step", "agree_top1", "faith", "omega")
        s = t[t["record"] == "split"].copy()
        fi.need("agree_top1", table=s)
        s["train_step"] = s["train_step"].astype(int)
        fig, (a, b) = plot.new_figure(2, height=3.8)
        omegas = sorted(pd.unique(s["omega"].astype(float)))
        colours = plot.palette(len(omegas) + 2)
        for omega, colour in zip(omegas, colours):
            g = s[s["omega"].astype(float) == omega]
            stepwise = g.groupby("train_step")
            mean, sd, n = stepwise["agree_top1"].mean(), stepwise["agree_top1"].std(ddof=1), stepwise.size()
            half = sd.fillna(0.0) * _t_quantile(self.alpha, n) / np.sqrt(n)
            a.errorbar(mean.index, mean.values, yerr=half.values, color=colour, marker="o", capsize=2,
                       label=f"β of the network, ω = {omega:g}")
            b.plot(mean.index, stepwise["faith"].mean().values, color=colour, marker="o", label=f"ω = {omega:g}")
        steps = sorted(pd.unique(s["train_step"]))
        for column, colour, style, name in (("agree_pixel_nn", colours[-1], "-.", "pixel-space nearest neighbour"),
                                            ("agree_beta_x", colours[-2], ":", "β with Z = X")):
            if column in s.columns:
                a.axhline(float(s[column].mean()), color=colour, linestyle=style, linewidth=1.4, label=name)
        if "chance" in s.columns:
            a.axhline(float(s["chance"].mean()), color="0.55", linestyle="-", linewidth=1, label="chance")
        a.axhline(AGREEMENT_MIN, color="0.3", linestyle="--", linewidth=1, label=f"claim: > {AGREEMENT_MIN:g}")
        plot.data_ticks(a.xaxis, steps)
        a.set_ylim(0, 1.05)
        a.set_xlabel("training step (0 = untrained dictionary)")
        a.set_ylabel("top-1 β label agreement")
        a.set_title("training lowers the label agreement")
        plot.legend(a, loc="lower left", fontsize=7)
        b.axhline(FAITH_TOL, color="0.3", linestyle="--", linewidth=1, label=f"claim: < {FAITH_TOL:g}")
        b.set_yscale("log")
        plot.data_ticks(b.xaxis, steps)
        b.set_xlabel("training step (0 = untrained dictionary)")
        b.set_ylabel(r"$\|D\hat z - X\beta\| / \|D\hat z\|$ (mean over test images)")
        b.set_title("β explains the network once it is stationary")
        plot.legend(b, loc="upper right", fontsize=7.5)
        return fig

    @figure("atoms-and-contributors",
            "Paper Fig. 3a on scikit-learn's digits (first split of the run): each row is an atom of "
            "D̃ = X G⁻¹Z̃ᵀ (red positive, blue negative), then the training images with the largest and "
            "the most negative contributions (G⁻¹Z̃ᵀ)_kj to it; under each image its label · weight, in "
            "the unit its column header names (×10ᵏ); the colour bar beside each atom gives its scale. "
            "The images are load_digits() looked up by the indices stored in the table. Drawn from the "
            "decisive cell's last checkpoint.", per_cell=False)
    def draw_atoms(self, fi: FigureInput):
        """Fig. 3a: atoms beside their top and bottom contributing training images."""
        return self._gallery(fi, "fig_atom", [r"atom $\tilde D_j$"],
                             "atoms beside their top and bottom contributing training images")

    @figure("test-images-and-beta",
            "Paper Fig. 3b on scikit-learn's digits (first split of the run): each row is a held-out "
            "test image, its reconstruction Xβ = D̃ẑ, and the training images with the largest and the "
            "most negative coefficients β_k; under each image its label · β_k, in the unit its column "
            "header names (×10ᵏ). Drawn from the decisive cell's last checkpoint.", per_cell=False)
    def draw_tests(self, fi: FigureInput):
        """Fig. 3b: test images, their reconstructions, and their top- and bottom-β training images."""
        return self._gallery(fi, "fig_test", ["test image", "reconstruction"],
                             "test images beside their top- and bottom-β training images")

    @staticmethod
    def _pixels(px: pd.DataFrame, what: str, item) -> np.ndarray | None:
        """The stored 8×8 pixels of an atom (``what="atom"``) or reconstruction (``"recon"``), or None."""
        g = px[(px["what"] == what) & (px["item"].astype("Int64") == int(item))].sort_values("pixel")
        if len(g) != 64:
            return None
        return g["value"].to_numpy(float).reshape(8, 8)

    def _gallery(self, fi: FigureInput, record: str, left_titles: list[str], title: str):
        """Rows of items (atoms or test images): the item's pixels, then top-k and bottom-k training images."""
        t = fi.table
        fi.need("record", "item", "role", "rank", "train_index", "weight")
        rows = plot.first_instance(t[t["record"] == record])
        fi.need("item", table=rows)
        px = plot.first_instance(t[t["record"] == "fig_pixels"]) if "what" in t.columns else t.iloc[0:0]
        images, labels = digit_pictures()
        items = list(pd.unique(rows["item"]))
        k = int(pd.to_numeric(rows["rank"], errors="coerce").max()) + 1
        shown, unit = plot.scaled_labels(rows["weight"])   # one format and unit for every weight
        weight_text = dict(zip(rows.index, shown))
        lead = len(left_titles)
        ncols = lead + 2 * k + 1
        fig, grid = plot.new_grid(len(items), ncols, figsize=(0.95 * ncols, 1.15 * len(items) + 0.9),
                                  width_ratios=[1] * lead + [1] * k + [0.3] + [1] * k)
        for r, item in enumerate(items):
            axes = grid[r]
            for ax in axes:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
            axes[lead + k].axis("off")
            for j, name in enumerate(left_titles):
                ax = axes[j]
                if name == "test image":
                    ax.imshow(images[int(item)], cmap="gray_r")
                    ax.set_xlabel(f"label {labels[int(item)]}", fontsize=7)
                else:
                    kind = "atom" if name.startswith("atom") else "recon"
                    img = self._pixels(px, kind, item) if len(px) else None
                    if img is None:
                        ax.text(0.5, 0.5, "no pixels\nstored", ha="center", va="center", fontsize=6,
                                transform=ax.transAxes)
                    elif kind == "atom":   # atoms have signed pixels: diverging map centred at 0, colour bar
                        plot.signed_image(ax, img)
                    else:                  # a reconstruction is an image: same grey map as the digits
                        ax.imshow(img, cmap="gray_r", vmin=min(0.0, float(img.min())), vmax=float(img.max()) or 1.0)
                    ax.set_xlabel(f"atom j = {int(item)}" if kind == "atom" else r"$X\beta = \tilde D\hat z$",
                                  fontsize=7)
                if r == 0:
                    ax.set_title(name, fontsize=8)
            for role, offset in (("top", lead), ("bottom", lead + k + 1)):
                sub = rows[(rows["item"] == item) & (rows["role"] == role)].sort_values("rank")
                for _, row in sub.iterrows():
                    col = offset + int(row["rank"])
                    if col >= len(axes):
                        continue
                    ax = axes[col]
                    idx = int(row["train_index"])
                    ax.imshow(images[idx], cmap="gray_r")
                    ax.set_xlabel(f"{labels[idx]} · {weight_text[row.name]}", fontsize=6.5)
                    if r == 0 and int(row["rank"]) == 0:
                        ax.set_title(f"{role} {k} " + ("β" if record == "fig_test" else "weights")
                                     + (f" ({unit})" if unit else "") + " →", fontsize=8, loc="left")
        fig.suptitle(title, fontsize=10, fontweight="bold")
        return fig
