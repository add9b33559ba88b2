r"""Theorem II.4 — stationary points of the weight-decayed dictionary objective, and interpretability.

Statement. For min_{Z,D} ½‖X − DZ‖²_F + λ‖Z‖₁ + (ω/2)‖D‖²_F with codes Z̃ held at their
(converged) values, the stationary dictionary is

    D̃ = X G⁻¹ Z̃ᵀ,   G = Z̃ᵀZ̃ + ωI  (n × n),

so atom j = Σ_k (G⁻¹w_j)_k x^k (w_j the j-th row of Z̃: the training examples' contributions), and a
new example's reconstruction is x̂ = D̃ẑ = Σ_k β_k x^k with β = G⁻¹Z̃ᵀẑ.

========  ==========================================================================  ============
claim     what is tested                                                              kind
========  ==========================================================================  ============
II.4a     for codes Z̃ of random instances and ω > 0, ``udl.stationary_dictionary``    identity
          equals the minimiser of ½‖X − DZ̃‖² + (ω/2)‖D‖² (an independent QR least-
          squares solve, and the stationarity condition (DZ̃ − X)Z̃ᵀ + ωD = 0), and
          D̃ẑ = Xβ (``udl.reconstruction_coefficients``), to tolerances scaled by the
          unit roundoff and cond(Z̃Z̃ᵀ + ωI)
II.4b     a network trained with g_dec, weight decay ω and no column renormalisation  identity
          satisfies ‖D − X G⁻¹Z̃ᵀ‖_F/‖D‖_F ≤ ‖R‖_F/(ω‖D‖_F) at every checkpoint (R the
          training's gradient residual, G = Z̃ᵀZ̃ + nωI for the mean loss), and the
          deviation decreases to 0 as training proceeds; g_ae-ls's deviation is
          reported (informative)
II.4c     on real digits (scikit-learn's 8×8 ``load_digits``), the training example   probabilistic
          with the largest β for a held-out image shares its label far more often
          than chance, and the training images contributing most to an atom
          resemble it
========  ==========================================================================  ============

The exact bound of II.4b. With the mean-over-examples loss L = ½‖X − DZ̃‖²/n + (ω/2)‖D‖², the
training's update direction at D is R = (DZ̃ − X)Z̃ᵀ/n + ωD. Since D̃(Z̃Z̃ᵀ + nωI) = XZ̃ᵀ,

    (D − D̃)(Z̃Z̃ᵀ/n + ωI) = DZ̃Z̃ᵀ/n + ωD − XZ̃ᵀ/n = R,

so ‖D − D̃‖_F ≤ ‖R‖_F·‖(Z̃Z̃ᵀ/n + ωI)⁻¹‖₂ ≤ ‖R‖_F/ω — an inequality with no hidden constant,
attained when R lies in the eigenspace of the smallest eigenvalue. Its content for a trained
network: the deviation of its dictionary from the interpretable D̃ is certified by the gradient
residual its training reports, and vanishes at a stationary point.

Decisions combine their parts by intersection–union (:func:`all_of`): PASS needs every part to
PASS (p = max p), FAIL when some part FAILS.

Precision. II.4a and II.4b check identities and always run in float64 (DESIGN: identities are
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
from udl.engine import Claim, Context, FigureInput, Verdict, all_of, figure, stats, when
from udl.engine import plotting as plot

__all__ = ["StationaryIdentity", "TrainedStationarity", "DigitInterpretability", "stationarity_check", "load_digit_images",
           "digit_pictures"]

# --------------------------------------------------------------------------- constants
#: Identities are checked in float64 (see the module docstring).
IDENTITY_DTYPE = torch.float64
#: Unit roundoff of the identity checks.
EPS = torch.finfo(IDENTITY_DTYPE).eps
#: II.4a: largest violation rate still compatible with "holds on every instance up to numerical
#: accidents"; PASS needs zero violations and a Clopper–Pearson upper bound below it, i.e.
#: n ≥ 145 instances at the Holm worst case α = 0.01/17 (identity_n(0.05, α=6e-4) = 145).
MAX_VIOLATION_RATE_A = 0.05
#: II.4a control: relative Frobenius size of the Gaussian perturbation added to D̃. Invisible in
#: any figure, yet ≥ 10³ times the forward tolerance (n + p)·eps·cond ≤ 5e-10 of the ci cells
#: (cond(Z̃Z̃ᵀ + ωI) ≤ 3e4 there; pilot maximum 1.4e4).
CONTROL_NOISE_A = 1e-6
#: II.4b: violation-rate bound of the identity part (n ≥ identity_n(0.1, α=6e-4) = 71 instances;
#: each instance trains a network, so the identity is checked on fewer instances than in II.4a,
#: but at every checkpoint of each).
MAX_VIOLATION_RATE_B = 0.1
#: II.4b control: relative Frobenius size of the perturbation of the trained dictionary. Above
#: the certified bound ‖R‖/(ω‖D‖) of most instances at the last checkpoint (pilot median 2e-3),
#: far below the initial deviation ≈ 0.4: a dictionary that *looks* trained but is not the one
#: the training residual certifies.
CONTROL_NOISE_B = 1e-2
#: II.4b: instances whose seed is divisible by this also train with g_ae-ls (informative, not in
#: the verdict; ≈ 5 of 80 at ci); a rule on the seed keeps every instance replayable from its
#: own seed.
AE_LS_SEED_MOD = 16
#: II.4c: "far more often than chance" = the top-β training example shares the test image's
#: label more often than not: 0.5 is five times the chance rate Σ_c π_c² ≈ 0.1 of ten balanced
#: classes (the rate the shuffled-label control must land at).
AGREEMENT_MIN = 0.5
#: II.4c: "the top contributions to an atom resemble it" = the Pearson correlation (over the 64
#: pixels) of atom D̃_j with its top-k contributing training images exceeds that with its bottom-k
#: (most negative weights) by at least 0.2 on average over the atoms: a visible resemblance,
#: against ≈ 0 for images unrelated to the weights (the control).
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


# --------------------------------------------------------------------------- helpers

def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _fro(A: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(A)


def _noise(seeds, shape, *, salt: int, like: torch.Tensor) -> torch.Tensor:
    """One standard Gaussian tensor of ``shape`` per seed (NumPy PCG64 on the CPU; replayable)."""
    draws = np.stack([np.random.default_rng([int(s), salt]).standard_normal(shape) for s in seeds])
    return torch.as_tensor(draws).to(device=like.device, dtype=like.dtype)


def _perturb(D: torch.Tensor, E: torch.Tensor, rel: float) -> torch.Tensor:
    """D + rel·‖D‖_F·E/‖E‖_F (per instance)."""
    scale = rel * _fro(D) / _fro(E)
    return D + scale[..., None, None] * E


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


class StationaryIdentity(Claim):
    """II.4a — D̃ = X G⁻¹Z̃ᵀ is the weight-decayed least-squares minimiser, and D̃ẑ = Xβ."""

    id = "II.4a"
    theorem = "II.4"
    title = "the stationary dictionary X G⁻¹Z̃ᵀ and β-reconstruction identities hold to rounding"
    statement = (
        "For any codes Z̃ (here: the encoder's codes of random instances) and ω > 0, D̃ = X G⁻¹Z̃ᵀ, "
        "G = Z̃ᵀZ̃ + ωI (udl.stationary_dictionary, computed through the p×p system Z̃Z̃ᵀ + ωI) is the "
        "minimiser of ½‖X − DZ̃‖²_F + (ω/2)‖D‖²_F, and the reconstruction of new codes ẑ satisfies "
        "D̃ẑ = Xβ with β = G⁻¹Z̃ᵀẑ (udl.reconstruction_coefficients). Per instance, three errors must "
        "lie within their tolerances: the forward error ‖D̃ − D_ref‖_F/‖D_ref‖_F against an "
        "independent QR least-squares solve D_ref, within (n + p)·eps·cond(Z̃Z̃ᵀ + ωI) (udl.gram_"
        "condition: the p×p system actually solved; G itself has cond (σ²_max + ω)/ω when n > p); the "
        "stationarity residual ‖(D̃Z̃ − X)Z̃ᵀ + ωD̃‖_F / (‖X‖‖C‖‖Z̃Z̃ᵀ + ωI‖ + ‖X‖‖Z̃‖), C = G⁻¹Z̃ᵀ, "
        "within (n + p)·eps (the solve is backward stable); and ‖D̃ẑ − Xβ‖_F/(‖X‖‖C‖‖ẑ‖) within "
        "(n + p)·eps (pure rounding of two products).")
    kind = "identity"
    effect = (
        "An identity: a single violation is a counterexample (FAIL). PASS needs zero violations and "
        f"the Clopper–Pearson upper bound of the violation rate below {MAX_VIOLATION_RATE_A}; with "
        "zero violations p = 0.95ⁿ, so n ≥ 145 passes even at the Holm worst case α = 0.01/17 "
        "(stats.identity_n). ci: 3 cells × 60 = 180 instances (p = 1e-4); quick: 2 cells × 80 = 160 "
        "(p = 2.7e-4). Pilot (root seed 12345, ci cells): worst ratios error/tolerance 3.3e-3 "
        "(forward), 3.6e-4 (stationarity), 4.6e-4 (β), cond ≤ 1.4e4 — the tolerances sit 2–3 "
        "decades above the rounding actually seen, and the control's perturbation gives ratios "
        "≥ 10³ (up to 3e6).")
    regime = (
        "m = 20, p = 40, s = 3, codes Z̃ = T = 20 layers of the encoder (α = λ = 0.2) at the initial "
        "dictionary D⁽⁰⁾ (c = 0.1) of random instances: the identity is for any Z̃, converged or not. "
        "Cells: n = 120 examples, ω = 0.01 (n > p, cond(Z̃Z̃ᵀ + ωI) ≈ 15); n = 30, ω = 1e-3 (n < p: "
        "Z̃Z̃ᵀ is rank-deficient, ~45 % of the atoms unused, cond ≈ 1e4 — the regime where a naive "
        "inverse of G would lose digits); n = 60, ω = 1 (n ≈ p, strong decay). 20 new examples per "
        "instance give ẑ. Float64 regardless of ctx.dtype.")
    control = (
        "The dictionary handed to the checks is D̃ + a Gaussian perturbation of relative Frobenius "
        f"size {CONTROL_NOISE_A:g} (every instance): far above the rounding tolerances, so every "
        "instance violates and the claim must FAIL.")
    requires = frozenset()
    audit_sentences = {
        "FAIL": "the stationary-dictionary identities fail on this encoder's codes ({statistic_name} = "
                "{statistic:.2g})",
    }
    Cell = StationaryIdentityCell
    schema = {"cond": "float", "zero_atoms": "float", "e_fwd": "float", "tol_fwd": "float", "e_stat": "float",
              "tol_stat": "float", "e_beta": "float", "tol_beta": "float", "ratio": "float", "dtype": "str"}
    profiles = {
        "quick": {"cells": [replace(_A, n=120, omega=0.01), replace(_A, n=30, omega=0.001)], "n_instances": 80},
        "ci": {"cells": [replace(_A, n=120, omega=0.01), replace(_A, n=30, omega=0.001), replace(_A, n=60, omega=1.0)],
               "n_instances": 60},
        "paper": {"cells": [replace(_A, m=50, p=100, s=5, n=n, omega=omega) for n in (50, 500)
                            for omega in (1e-3, 1e-1, 10.0)], "n_instances": 200},
    }

    def simulate(self, cell, seeds, ctx):
        """One row per instance: the three errors, their tolerances and the worst ratio."""
        n, p, omega = cell.n, cell.p, cell.omega
        inst = core.make_instances(cell.m, p, cell.s, n + cell.n_new, init_scale=cell.init_scale,
                                  seed=list(seeds), dtype=IDENTITY_DTYPE, device=ctx.device)
        with torch.no_grad():
            Z_all = ctx.encoder_under_test()(inst.X, inst.D0, lam=cell.lam, step=cell.step, T=cell.T)
            X, Z, Z_new = inst.X[..., :n], Z_all[..., :n], Z_all[..., n:]
            D, C = core.stationary_dictionary(X, Z, omega=omega, return_contributions=True)
            beta = core.reconstruction_coefficients(X, Z, Z_new, omega=omega)
            if ctx.control:
                D = _perturb(D, _noise(seeds, D.shape[-2:], salt=41, like=D), CONTROL_NOISE_A)
            cond = core.gram_condition(Z, omega=omega)
            K = Z @ Z.mT + omega * torch.eye(p, dtype=Z.dtype, device=Z.device)
            D_ref = _reference_dictionary(X, Z, omega)
            nX, nC, nZ = _fro(X), _fro(C), _fro(Z)
            e_fwd = _fro(D - D_ref) / _fro(D_ref)
            e_stat = _fro((D @ Z - X) @ Z.mT + omega * D) / (nX * nC * _fro(K) + nX * nZ)
            e_beta = _fro(D @ Z_new - X @ beta) / (nX * nC * _fro(Z_new))
        dim = (n + p) * EPS
        tol_fwd, tol_stat, tol_beta = dim * cond, torch.full_like(cond, dim), torch.full_like(cond, dim)
        ratios = torch.stack([e_fwd / tol_fwd, e_stat / tol_stat, e_beta / tol_beta])
        return pd.DataFrame({
            "instance": np.arange(len(seeds)),
            "cond": _np(cond), "zero_atoms": _np((Z.abs().sum(-1) == 0).sum(-1).to(torch.float64)),
            "e_fwd": _np(e_fwd), "tol_fwd": _np(tol_fwd),
            "e_stat": _np(e_stat), "tol_stat": _np(tol_stat),
            "e_beta": _np(e_beta), "tol_beta": _np(tol_beta),
            "ratio": _np(ratios.amax(dim=0)),
            "dtype": str(IDENTITY_DTYPE).removeprefix("torch."),
        })

    def decide(self, table):
        """identity_test on the per-instance worst ratio error/tolerance."""
        verdict = stats.identity_test(table["ratio"], max_rate=MAX_VIOLATION_RATE_A, alpha=self.alpha,
                                      name="violation rate (error > tolerance)")
        detail = dict(verdict.detail,
                      worst_ratio_fwd=float((table["e_fwd"] / table["tol_fwd"]).max()),
                      worst_ratio_stat=float((table["e_stat"] / table["tol_stat"]).max()),
                      worst_ratio_beta=float((table["e_beta"] / table["tol_beta"]).max()),
                      cond_max=float(table["cond"].max()), cond_median=float(table["cond"].median()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

    # ------------------------------------------------------------------ figures
    @figure("identity-ratios",
            "Error/tolerance ratios of the three identity checks on every instance (log scale), by cell "
            "(n, ω): forward error against an independent QR solve, the stationarity residual, and "
            "D̃ẑ − Xβ. A point above the dashed line at 1 would be a violation.", per_cell=False)
    def draw_ratios(self, fi: FigureInput):
        """Per-instance error/tolerance of the three identities, by cell (jittered points)."""
        t = fi.table
        checks = [("e_fwd", "tol_fwd", "forward error"), ("e_stat", "tol_stat", "stationarity residual"),
                  ("e_beta", "tol_beta", r"$\tilde D\hat z - X\beta$")]
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
    dev/(bound·(1 + (n + p)eps) + slack) (> 1 is a violation), ``cond`` of Z̃Z̃ᵀ/n + ωI and the
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
    return dict(dev=dev, bound=bound, tight=tight, slack=slack, ratio=ratio, cond=cond,
                residual_dec=residual_dec, loss=0.5 * (X - D @ Z).square().sum(dim=(-2, -1)) / n,
                code_density=(Z != 0).to(X.dtype).mean(dim=(-2, -1)),
                col_norm=torch.linalg.vector_norm(D, dim=-2).mean(dim=-1))


def _checkpoints(n_steps: int, k: int) -> list[int]:
    """0 and ``k`` geometrically spaced steps ending at ``n_steps`` (halving back from the end)."""
    return [0] + sorted({max(1, n_steps // 2 ** i) for i in range(k)})


@dataclass(frozen=True)
class TrainedStationarityCell:
    """A cell of II.4b: sizes m, p, s; n examples; λ; step α; T layers; ridge ω (omega); learning rate lr;
    D⁽⁰⁾ distance c (init_scale); n_steps of g_dec learning checked at n_checkpoints; ae_ls_steps of g_ae-ls
    learning (0: none)."""

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
    ae_ls_steps: int


_B = TrainedStationarityCell(m=10, p=20, s=2, n=60, lam=0.2, step=0.2, T=20, omega=0.1, lr=2.0, init_scale=0.1,
                            n_steps=200, n_checkpoints=4, ae_ls_steps=100)


class TrainedStationarity(Claim):
    """II.4b — a g_dec-trained network with weight decay reaches X G⁻¹Z̃ᵀ within residual/ω."""

    id = "II.4b"
    theorem = "II.4"
    title = "a network trained with g_dec and weight decay sits at X G⁻¹Z̃ᵀ within residual/ω"
    statement = (
        "Train the unrolled network with g_dec and weight decay ω on the mean loss "
        "½‖X − DZ_T‖²/n + (ω/2)‖D‖² (gradient descent, no column renormalisation). At every "
        "checkpoint, with Z̃ = Z_T(D) and G = Z̃ᵀZ̃ + nωI, the deviation ‖D − X G⁻¹Z̃ᵀ‖_F/‖D‖_F is at "
        "most ‖R‖_F/(ω‖D‖_F), R = (DZ̃ − X)Z̃ᵀ/n + ωD the training's reported gradient residual — an "
        "exact inequality, since (D − X G⁻¹Z̃ᵀ)(Z̃Z̃ᵀ/n + ωI) = R — on every instance (up to a "
        "rounding allowance), and the deviation decreases towards 0 as training proceeds (last "
        "checkpoint below the middle one, paired over instances). Informative, not in the "
        "verdict: with g_ae-ls the network converges to a zero of g_ae-ls + ωD instead, and its "
        "deviation from X G⁻¹Z̃ᵀ is reported (ae-ls rows).")
    kind = "identity"
    effect = (
        "Identity part: zero violations needed (one is a counterexample); with zero violations "
        f"p = 0.9ⁿ < 6e-4 (Holm worst case) for n ≥ 71 (violation rate < {MAX_VIOLATION_RATE_B}). "
        "Trend part: sign test of log dev(mid) − log dev(last) > 0 (win rate against 1/2); "
        "sign_test_n(0.8, α = 6e-4) = 60 ≤ n. ci and quick: 80 instances (quick: smaller network, "
        "fewer steps). Pilot (root seed 12345, ci cell): no violation at any checkpoint, worst "
        "dev/bound 0.99 (the bound is nearly attained: it is tight), median deviation 0.39 → 0.10 "
        "→ 3.2e-2 → 3.6e-3 → 5.9e-4 at steps 0, 25, 50, 100, 200, trend win rate 0.85–0.875 "
        "(p ≤ 6e-11); a tail of ~10 % of the instances converges slowly (their supports keep "
        "changing; q90 of the final deviation 9e-3), which the bound still covers. Control pilot: "
        "89 % of the instances violate. ae-ls pilot: deviation 0.15 (16 instances at 200 steps; 2 "
        "at 100 steps) against ≈ 1e-3 for g_dec on the same instances.")
    regime = (
        "m = 10, p = 20, s = 2, n = 60 examples, D⁽⁰⁾ with c = 0.1, encoder T = 20 layers, "
        "α = λ = 0.2, ω = 0.1 (mean loss, i.e. G = Z̃ᵀZ̃ + 6·I), full-batch gradient descent with "
        "η = 2, 200 steps, checkpoints at 0, 25, 50, 100, 200. Small sizes because every instance "
        "is a training run; ω = 0.1 keeps Z̃Z̃ᵀ/n + ωI well conditioned (cond ≈ 10) so that gradient "
        "descent converges in a few hundred steps (the column norms settle at ≈ 0.4). The identity "
        "needs only a zero of g_dec + ωD, whatever T: the codes need not be converged lasso "
        "solutions (outside the theorem's 'converged codes', which only changes which stationary "
        "point is reached). Float64 regardless of ctx.dtype. ae-ls: instances whose seed is "
        f"divisible by {AE_LS_SEED_MOD}, 100 steps (its deviation has plateaued by then: pilot median "
        "0.143 at step 100, 0.138 at 200; backpropagation through the layers is ≈ 8× the cost of a "
        "g_dec step at these sizes); off at quick.")
    control = (
        "The dictionary handed to the check is the trained one plus a Gaussian perturbation of "
        f"relative Frobenius size {CONTROL_NOISE_B:g}, while the certificate is still the residual "
        "the training reported (a dictionary that is not the one its training certifies). Once the "
        "certified bound drops below the perturbation, the inequality is violated: must FAIL.")
    requires = frozenset({"soft_threshold"})
    audit_sentences = {
        "INCONCLUSIVE": when("[trend]",
                             "the deviation from X G⁻¹Z̃ᵀ no longer shrinks between the last two checkpoints on "
                             "most instances (rate {statistic:.2g} [{lower:.2g}, {upper:.2g}] against 1/2): g_dec "
                             "training with these codes has not settled by the last checkpoint"),
    }
    Cell = TrainedStationarityCell
    schema = {"kind": "str", "train_step": "int", "residual_train": "float", "dev": "float", "bound": "float",
              "tight": "float", "slack": "float", "ratio": "float", "cond": "float", "residual_dec": "float",
              "loss": "float", "code_density": "float", "col_norm": "float"}
    profiles = {
        "quick": {"cells": [replace(_B, m=8, p=12, n=40, T=15, n_steps=100, n_checkpoints=3, ae_ls_steps=0)],
                  "n_instances": 80},
        "ci": {"cells": [replace(_B, n_steps=200, n_checkpoints=4, ae_ls_steps=100)], "n_instances": 80},
        "paper": {"cells": [replace(_B, m=50, p=100, s=5, n=500, T=50, lr=1.0, n_steps=2000, n_checkpoints=8,
                                 ae_ls_steps=2000)], "n_instances": 200},
    }

    def simulate(self, cell, seeds, ctx):
        """Long table: one row per (instance, kind, train_step) with dev, bound, ratio, residuals."""
        inst = core.make_instances(cell.m, cell.p, cell.s, cell.n, init_scale=cell.init_scale,
                                  seed=list(seeds), dtype=IDENTITY_DTYPE, device=ctx.device)
        encoder = ctx.encoder_under_test()
        omega = cell.omega
        enc_args = dict(lam=cell.lam, step=cell.step, T=cell.T)
        train_args = dict(enc_args, lr=cell.lr, normalize=False, omega=omega, encoder=encoder)
        X, D, done = inst.X, inst.D0, 0
        noise = _noise(seeds, D.shape[-2:], salt=42, like=D) if ctx.control else None
        rows = []
        for step_l in _checkpoints(cell.n_steps, cell.n_checkpoints):
            traj = core.train(X, D, kind="dec", n_steps=step_l - done, record_every=max(1, step_l - done),
                             **train_args)
            D, done = traj.D, step_l
            residual = traj.grad_norm[-1]
            D_check = _perturb(D, noise, CONTROL_NOISE_B) if ctx.control else D
            rows.append(self._rows(stationarity_check(X, D_check, residual, omega=omega, encoder=encoder,
                                                      **enc_args), np.arange(len(seeds)), "dec", step_l,
                                   residual))
        ae = [i for i, s in enumerate(seeds) if int(s) % AE_LS_SEED_MOD == 0]
        ae_steps = cell.ae_ls_steps
        if ae_steps and ae and not ctx.control and "differentiable" in getattr(encoder, "capabilities", ()):
            idx = torch.as_tensor(ae, device=X.device)
            traj = core.train(X[idx], inst.D0[idx], kind="ae-ls", n_steps=ae_steps, record_every=ae_steps,
                             **train_args)
            # the certificate of an ae-ls network for the g_dec identity is its g_dec residual
            # (recomputed); its own reported residual ‖g_ae-ls + ωD‖ is stored as residual_train.
            Xa = X[idx]
            check = stationarity_check(Xa, traj.D, _residual_dec(Xa, traj.D, omega, encoder, enc_args),
                                       omega=omega, encoder=encoder, **enc_args)
            rows.append(self._rows(check, np.asarray(ae), "ae-ls", ae_steps, traj.grad_norm[-1]))
        return pd.concat(rows, ignore_index=True)

    @staticmethod
    def _rows(check: dict, instance, kind: str, step_l: int, residual_train) -> pd.DataFrame:
        return pd.DataFrame({"instance": instance, "kind": kind, "train_step": step_l,
                             "residual_train": _np(residual_train),
                             **{k: _np(v) for k, v in check.items()}})

    def decide(self, table):
        """Identity (every instance, every checkpoint) and trend (dev decreases), both must pass."""
        dec = table[table["kind"] == "dec"]
        worst = dec.groupby(["cell", "instance"])["ratio"].max()
        steps = np.sort(dec["train_step"].unique())
        last, mid = steps[-1], steps[-2]
        by_step = dec.pivot_table(index=["cell", "instance"], columns="train_step", values="dev")
        decrease = np.log(by_step[mid]) - np.log(by_step[last])
        parts = {
            "identity": stats.identity_test(worst, max_rate=MAX_VIOLATION_RATE_B, alpha=self.alpha,
                                            name="violation rate (dev > residual/ω)"),
            "trend": stats.sign_test(decrease, alpha=self.alpha, side="greater",
                                     name=f"rate of dev(step {last}) < dev(step {mid})"),
        }
        verdict = all_of(parts, n=len(worst), alpha=self.alpha, primary="identity")
        final = dec[dec["train_step"] == last].set_index(["cell", "instance"])
        ae = table[table["kind"] == "ae-ls"].set_index(["cell", "instance"])
        detail = dict(verdict.detail,
                      worst_ratio=float(worst.max()),
                      dev_median_by_step={str(int(s)): float(by_step[s].median()) for s in steps},
                      dev_final_q90=float(final["dev"].quantile(0.9)),
                      bound_final_median=float(final["bound"].median()),
                      tight_final_median=float(final["tight"].median()),
                      ae_ls_instances=int(len(ae)))
        if len(ae):   # informative: g_ae-ls's deviation, and g_dec's on the same instances
            detail.update(ae_ls_steps=int(ae["train_step"].max()), ae_ls_dev_median=float(ae["dev"].median()),
                          ae_ls_dev_max=float(ae["dev"].max()),
                          dec_dev_median_same_instances=float(final.loc[ae.index, "dev"].median()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

    # ------------------------------------------------------------------ figures
    @figure("stationarity-residual",
            "Left: deviation of the trained dictionary from X G⁻¹Z̃ᵀ, ‖D − D̃‖_F/‖D‖_F, and its certified "
            "bound ‖R‖_F/(ω‖D‖_F) from the training's gradient residual, against the training step (median "
            "and 10–90 % band over instances, log scale). Right: deviation against bound per instance and "
            "checkpoint; the inequality says every g_dec point lies on or below y = x. g_ae-ls networks "
            "(informative) are shown as crosses.")
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


def _residual_dec(X, D, omega, encoder, enc_args) -> torch.Tensor:
    """‖(DZ̃ − X)Z̃ᵀ/n + ωD‖_F at Z̃ = encoder(X, D): the g_dec residual of any dictionary."""
    with torch.no_grad():
        Z = encoder(X, D, **enc_args)
        return _fro(core.decoder_gradient(X, D, Z) + omega * D)


# --------------------------------------------------------------------------- II.4c
@functools.lru_cache(maxsize=1)
def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits: images ``(1797, 64)``, scaled to [0, 1] then to unit ℓ2 norm; labels.

    Ships with scikit-learn (no download). The report draws figures from the raw
    ``load_digits().images[index]``; the indices stored in II.4c's table are into this array.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
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
    images; n_steps of learning."""

    p: int
    lam: float
    step: float
    T: int
    omega: float
    lr: float
    n_train: int
    n_steps: int


_C = DigitInterpretabilityCell(p=64, lam=0.1, step=0.2, T=15, omega=0.01, lr=1.0, n_train=1200, n_steps=20)
#: Integer-valued columns of II.4c's long table.
_INT_COLUMNS = ("n_test", "item", "rank", "train_index", "train_label", "test_label", "pixel")


class DigitInterpretability(Claim):
    """II.4c — on real digits, top-β training examples share the label; top contributors resemble atoms."""

    id = "II.4c"
    theorem = "II.4"
    title = "on real digits, top-β training examples share the test label and top contributors resemble atoms"
    statement = (
        "Learn a dictionary on the 8×8 digits of scikit-learn (load_digits, 10 classes) with g_dec and "
        "weight decay ω; with the codes Z̃ of the training images and ẑ of a held-out image, "
        "β = G⁻¹Z̃ᵀẑ (G = Z̃ᵀZ̃ + nωI) writes the reconstruction D̃ẑ = Σ_k β_k x^k over the training "
        f"images. (i) The training image with the largest β shares the test image's label with "
        f"probability > {AGREEMENT_MIN} (five times the chance rate ≈ 0.1); (ii) the training images "
        "contributing most to atom j (largest weights (G⁻¹Z̃ᵀ)_kj) resemble it: the mean Pearson "
        f"correlation of D̃_j with its top-{TOP_K} contributors exceeds that with its bottom-{TOP_K} "
        f"(most negative weights) by > {RESEMBLANCE_MIN}, averaged over the used atoms.")
    kind = "probabilistic"
    effect = (
        "The instance is a random train/test split (its own seed draws the split and the initial "
        "dictionary); splits are independent given the data set, test images within a split are "
        "not (they share the learned dictionary: the pilot's between-split sd of the agreement "
        "rate, 0.03–0.07, is 1.5–3× the binomial sd), so per-split rates are the unit: one-sided t "
        "tests of the mean per-split agreement > 0.5 and mean resemblance gap > 0.2 "
        "(intersection–union). Pilot (root seed 12345, ci cell, 8 splits): agreement 0.73 (99 % "
        "bounds 0.66–0.79, sd ≈ 0.06, p = 8e-6), resemblance gap 0.74 (p = 6e-9); "
        "t_test_n(0.2, 0.07, α = 6e-4 [Holm worst case], β = 0.05) = 8 → ci uses 8 splits; quick "
        "(5 steps, 5 splits): agreement 0.86, p = 1e-5. Control pilot: agreement 0.08, gap ≈ 0. "
        "The pooled per-image rate with a Clopper–Pearson interval is reported as a description "
        "only: it ignores the within-split dependence (test images share 'hub' training images), "
        "and is anti-conservative — in the control pilot its interval [0.072, 0.091] excluded the "
        "true chance rate 0.099, which the split-level t interval covered.")
    regime = (
        "load_digits (1797 images, 64 pixels, scaled to unit norm), 1200 training / 597 test images "
        "per split, p = 64 atoms (complete), random Gaussian unit-norm D⁽⁰⁾, encoder T = 15 layers "
        "(the paper's T), α = 0.2, λ = 0.1, weight decay ω = 0.01 on the mean loss (G = Z̃ᵀZ̃ + 12·I), "
        "20 full-batch g_dec gradient steps with η = 1, no column renormalisation — 'few steps' in the "
        "paper's spirit (it used MNIST 0–4, p = 500, g_ae-lasso). After 20 steps the network is not "
        "at a stationary point (‖D − D̃‖/‖D‖ ≈ 0.9, recorded): the interpretation is of D̃ = X G⁻¹Z̃ᵀ, "
        "exact for D̃ (II.4a) and for the network only near stationarity (II.4b). The agreement "
        "depends on the regime (pilot, 3 splits each): 0.90 with the untrained random dictionary "
        "(dense codes act like a kernel smoother), 0.72 after 20 steps at ω = 0.01, 0.31 at ω = 0.05 "
        "(codes 5 % dense, many atoms nearly unused) — above chance everywhere, above 0.5 only with "
        "moderate weight decay. quick: 5 splits, 800 training images, 5 steps.")
    control = (
        "Shuffled training labels: the training examples' metadata (label and the image looked up by "
        "index) is permuted within each split before the interpretation reads it; the dictionary, "
        "codes and β are unchanged. The agreement drops to chance (≈ 0.1) and the resemblance gap to "
        "≈ 0: must FAIL.")
    requires = frozenset({"soft_threshold"})
    audit_sentences = {
        "FAIL": "the β-reconstruction no longer picks same-label training digits, or the top contributors no "
                "longer resemble the atoms ({statistic_name} = {statistic:.2g})",
    }
    Cell = DigitInterpretabilityCell
    schema = {"record": "str", "agree_top1": "float", "successes": "float", "n_test": "int", "share_topk": "float",
              "chance": "float", "resemblance": "float", "corr_top": "float", "corr_bot": "float",
              "atoms_used": "float", "dev": "float", "loss": "float", "grad_norm": "float", "code_density": "float",
              "item": "int", "role": "str", "rank": "int", "train_index": "int", "train_label": "int",
              "weight": "float", "test_label": "int", "what": "str", "pixel": "int", "value": "float"}
    profiles = {
        "quick": {"cells": [replace(_C, n_train=800, n_steps=5)], "n_instances": 5},
        "ci": {"cells": [replace(_C, n_train=1200, n_steps=20)], "n_instances": 8},
        "paper": {"cells": [replace(_C, p=100, n_train=1200, n_steps=200),
                            replace(_C, p=64, n_train=1200, n_steps=200)], "n_instances": 30},
    }

    def simulate(self, cell, seeds, ctx):
        """Rows: ``record = "split"`` (one per split: rates, resemblance), and figure records."""
        images, labels = load_digit_images()
        N, m = images.shape
        n_train, p = cell.n_train, cell.p
        rngs = [np.random.default_rng(int(s)) for s in seeds]
        order = np.stack([r.permutation(N) for r in rngs])                       # split
        D0 = np.stack([r.standard_normal((m, p)) for r in rngs])                   # initial dictionary
        shuffle = np.stack([r.permutation(n_train) for r in rngs])                 # control's lookup
        lookup = shuffle if ctx.control else np.broadcast_to(np.arange(n_train), shuffle.shape)
        train_idx, test_idx = order[:, :n_train], order[:, n_train:]
        look_idx = np.take_along_axis(train_idx, lookup, axis=1)                  # what the reader sees
        dev = dict(device=ctx.device, dtype=ctx.dtype)
        X = torch.as_tensor(images[train_idx]).mT.to(**dev)                       # (B, m, n_train)
        X_test = torch.as_tensor(images[test_idx]).mT.to(**dev)                   # (B, m, n_test)
        X_look = torch.as_tensor(images[look_idx]).to(**dev)                     # (B, n_train, m)
        y_look = torch.as_tensor(labels[look_idx], device=ctx.device)
        y_test = torch.as_tensor(labels[test_idx], device=ctx.device)
        encoder, omega = ctx.encoder_under_test(), cell.omega
        enc_args = dict(lam=cell.lam, step=cell.step, T=cell.T)
        traj = core.train(X, core.normalize_columns(torch.as_tensor(D0).to(**dev)), kind="dec",
                         n_steps=cell.n_steps, lr=cell.lr, normalize=False, omega=omega,
                         encoder=encoder, record_every=max(1, cell.n_steps), **enc_args)
        D = traj.D
        with torch.no_grad():
            Z, Z_test = encoder(X, D, **enc_args), encoder(X_test, D, **enc_args)
            D_tilde, C = core.stationary_dictionary(X, Z, omega=n_train * omega, return_contributions=True)
            beta = core.reconstruction_coefficients(X, Z, Z_test, omega=n_train * omega)   # (B, n_train, n_test)
            # (i) labels of the top-β training examples
            top = beta.topk(TOP_K, dim=1).indices                                  # (B, k, n_test)
            top_labels = _gather_cols(y_look, top)                                 # (B, k, n_test)
            agree = (top_labels[:, 0] == y_test).to(torch.float64)
            share = (top_labels == y_test[:, None]).to(torch.float64).mean(dim=1)
            freq = torch.nn.functional.one_hot(y_look, N_CLASSES).to(torch.float64).mean(dim=1)
            chance = torch.gather(freq, 1, y_test).mean(dim=1)
            # (ii) atoms against their top / bottom contributors
            used = Z.abs().sum(dim=-1) > 0                                         # (B, p)
            c_top = C.topk(TOP_K, dim=1).indices                                   # (B, k, p)
            c_bot = (-C).topk(TOP_K, dim=1).indices
            atoms = D_tilde.mT[:, None]                                            # (B, 1, p, m)
            corr_top = _pearson(atoms, _gather_cols(X_look, c_top)).mean(dim=1)    # (B, p)
            corr_bot = _pearson(atoms, _gather_cols(X_look, c_bot)).mean(dim=1)
            gap = torch.where(used, corr_top - corr_bot, torch.zeros_like(corr_top))
            n_used = used.sum(dim=-1)
            # an encoder that uses no atom shows no resemblance: gap 0 (the claim then FAILS), not 0/0
            resemblance = gap.sum(dim=-1) / n_used.clamp(min=1)
            mean_used = lambda v: torch.where(used, v, torch.zeros_like(v)).sum(-1) / n_used.clamp(min=1)  # noqa: E731
            deviation = _fro(D - D_tilde) / _fro(D)
        B = len(seeds)
        split = pd.DataFrame({
            "instance": np.arange(B), "record": "split",
            "agree_top1": _np(agree.mean(dim=1)), "successes": _np(agree.sum(dim=1)),
            "n_test": N - n_train, "share_topk": _np(share.mean(dim=1)), "chance": _np(chance),
            "resemblance": _np(resemblance), "corr_top": _np(mean_used(corr_top)),
            "corr_bot": _np(mean_used(corr_bot)), "atoms_used": _np(n_used.to(torch.float64)),
            "dev": _np(deviation), "loss": _np(traj.loss[-1]), "grad_norm": _np(traj.grad_norm[-1]),
            "code_density": _np((Z != 0).to(torch.float64).mean(dim=(-2, -1))),
        })
        figs = self._figure_rows(C, beta, Z, X, D_tilde, look_idx, test_idx, labels)
        table = pd.concat([split, figs], ignore_index=True)
        # integer columns stay integers (nullable) in the long table, where other records leave gaps
        return table.astype({c: "Int64" for c in _INT_COLUMNS if c in table.columns})

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
        """t tests over splits: agreement > AGREEMENT_MIN and resemblance gap > RESEMBLANCE_MIN."""
        s = table[table["record"] == "split"]
        parts = {
            "labels": stats.mean_test(s["agree_top1"], threshold=AGREEMENT_MIN, alpha=self.alpha, side="greater",
                                      name="top-1 β label agreement (mean over splits)"),
            "atoms": stats.mean_test(s["resemblance"], threshold=RESEMBLANCE_MIN, alpha=self.alpha,
                                     side="greater", name="corr(atom, top) − corr(atom, bottom)"),
        }
        verdict = all_of(parts, n=len(s), alpha=self.alpha, primary="labels")
        k, n = int(s["successes"].sum()), int(s["n_test"].sum())
        detail = dict(verdict.detail,
                      pooled_agreement=k / n, pooled_images=n,
                      pooled_clopper_pearson=list(stats.clopper_pearson(k, n, self.alpha)),
                      chance_mean=float(s["chance"].mean()), share_topk_mean=float(s["share_topk"].mean()),
                      corr_top_mean=float(s["corr_top"].mean()), corr_bot_mean=float(s["corr_bot"].mean()),
                      dev_median=float(s["dev"].median()), atoms_used_mean=float(s["atoms_used"].mean()))
        return Verdict(**{**verdict.__dict__, "detail": detail})

    # ------------------------------------------------------------------ figures
    @figure("label-agreement",
            "Per split (train/test draw, independent instances): the fraction of test images whose "
            f"top-β training image shares their label, against the chance rate and the claim's {AGREEMENT_MIN:g} "
            "(left); the resemblance gap corr(atom, top contributors) − corr(atom, bottom contributors) "
            f"against the claim's {RESEMBLANCE_MIN:g} (right).")
    def draw_agreement(self, fi: FigureInput):
        """Label agreement per split against chance and AGREEMENT_MIN; resemblance gap against RESEMBLANCE_MIN."""
        t = fi.table
        fi.need("record", "agree_top1", "resemblance")
        s = t[t["record"] == "split"]
        fi.need("agree_top1", table=s)
        fig, (a, b) = plot.new_figure(2, height=3.6)
        c0, c1, _ = plot.palette(3)[:3]
        x = np.arange(len(s))
        a.bar(x, s["agree_top1"], color=c0, label="top-1 β label agreement")
        if "chance" in s.columns:
            a.scatter(x, s["chance"], color=plot.palette(4)[3], marker="_", s=300, linewidths=2.5,
                      label="chance rate (label frequencies)", zorder=3)
        a.axhline(AGREEMENT_MIN, color="0.3", linestyle="--", linewidth=1, label=f"claim: > {AGREEMENT_MIN:g}")
        plot.stored_mean(a, plot.part(fi.record, "labels"), "stored mean")
        a.set_ylim(0, 1.3)
        a.set_xticks(x, [str(i) for i in s["instance"]] if "instance" in s.columns else x)
        a.set_xlabel("split (instance)")
        a.set_ylabel("fraction of test images")
        a.set_title("top-β training image shares the label")
        plot.legend(a, loc="upper center", ncol=2, fontsize=7.5)
        b.bar(x, s["resemblance"], color=c1, label="resemblance gap")
        b.axhline(RESEMBLANCE_MIN, color="0.3", linestyle="--", linewidth=1, label=f"claim: > {RESEMBLANCE_MIN:g}")
        plot.stored_mean(b, plot.part(fi.record, "atoms"), "stored mean")
        b.set_ylim(0, max(1.0, float(s["resemblance"].max()) * 1.3))
        b.set_xticks(x, [str(i) for i in s["instance"]] if "instance" in s.columns else x)
        b.set_xlabel("split (instance)")
        b.set_ylabel("Pearson correlation gap (mean over atoms)")
        b.set_title("top contributors resemble the atom")
        plot.legend(b, loc="upper center", ncol=2, fontsize=7.5)
        return fig

    @figure("atoms-and-contributors",
            "Paper Fig. 3a on scikit-learn's digits (first split of the run): each row is an atom of "
            "D̃ = X G⁻¹Z̃ᵀ (red positive, blue negative), then the training images with the largest and "
            "the most negative contributions (G⁻¹Z̃ᵀ)_kj to it; under each image its label · weight. "
            "The images are load_digits() looked up by the indices stored in the table.")
    def draw_atoms(self, fi: FigureInput):
        """Fig. 3a: atoms beside their top and bottom contributing training images."""
        return self._gallery(fi, "fig_atom", [r"atom $\tilde D_j$"],
                             "atoms beside their top and bottom contributing training images")

    @figure("test-images-and-beta",
            "Paper Fig. 3b on scikit-learn's digits (first split of the run): each row is a held-out "
            "test image, its reconstruction Xβ = D̃ẑ, and the training images with the largest and the "
            "most negative coefficients β_k; under each image its label · β_k.")
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
                    elif kind == "atom":   # atoms have signed pixels: diverging map centred at 0
                        v = float(np.abs(img).max()) or 1.0
                        ax.imshow(img, cmap="RdBu_r", vmin=-v, vmax=v)
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
                    ax.set_xlabel(f"{labels[idx]} · {float(row['weight']):.2g}", fontsize=6.5)
                    if r == 0 and int(row["rank"]) == 0:
                        ax.set_title(f"{role} {k} " + ("β" if record == "fig_test" else "weights") + " →",
                                     fontsize=8, loc="left")
        fig.suptitle(title, fontsize=10, fontweight="bold")
        return fig
