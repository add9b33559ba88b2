"""Lasso solutions: ISTA at convergence, udl.lasso_solve's certificate, an independent solver
(scikit-learn's coordinate descent) and Danskin's theorem for ĝ = udl.lasso_gradient.

The lasso, per example:  min_z ½‖x − Dz‖² + λ‖z‖₁.  KKT: r = Dᵀ(x − Dz) equals λ·sign(z_j) on
the support and |r_j| ≤ λ off it; udl.kkt_violation returns the worst violation divided by λ.
"""
import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

import udl

LAM, STEP = 0.2, 0.2


def _problem(m=15, p=20, n=30, batch=None, seed=0):
    inst = udl.make_instances(m, p, 2, n, init_scale=0.05, batch=batch, seed=seed)
    return (inst.X[0], inst.D0[0]) if batch is None else (inst.X, inst.D0)


def _kkt_bound(D, Z1, Z2, kkt1, kkt2, lam):
    """Rigorous bound on ‖z1 − z2‖₂ per example from the two KKT certificates.

    If e_i = r(z_i) − u_i with u_i ∈ λ∂‖z_i‖₁ and ‖e_i‖∞ ≤ λ·kkt_i, then monotonicity of ∂‖·‖₁
    gives ‖DΔ‖² ≤ ⟨Δ, e_2 − e_1⟩ ≤ ‖Δ‖₁ λ(kkt_1 + kkt_2), Δ = z1 − z2. With S the union of the
    two supports (|S| = k) and σ = λ_min(D_Sᵀ D_S) > 0: σ‖Δ‖² ≤ √k ‖Δ‖ λ(kkt_1 + kkt_2), so
    ‖Δ‖₂ ≤ √k λ (kkt_1 + kkt_2) / σ.
    """
    bounds = []
    for k in range(Z1.shape[-1]):
        S = ((Z1[:, k] != 0) | (Z2[:, k] != 0)).nonzero().flatten()
        if len(S) == 0:
            bounds.append(0.0)
            continue
        DS = D[:, S]
        sigma = float(torch.linalg.eigvalsh(DS.mT @ DS)[0])
        assert sigma > 1e-3, "the support is not well conditioned: the bound would be vacuous"
        bounds.append(np.sqrt(len(S)) * lam * (float(kkt1) + float(kkt2)) / sigma)
    return torch.tensor(bounds, dtype=D.dtype)


def test_ista_at_convergence_satisfies_kkt():
    X, D = _problem()
    Z = udl.ista(X, D, lam=LAM, step=STEP, T=3000)
    assert float(udl.kkt_violation(X, D, Z, LAM)) < 1e-8
    # and far from convergence it does not (the check can fail)
    Z5 = udl.ista(X, D, lam=LAM, step=STEP, T=5)
    assert float(udl.kkt_violation(X, D, Z5, LAM)) > 1e-2


def test_kkt_violation_by_hand():
    # D = I (2×2): r = x − z. x = (3, 0.1), λ = 1: the solution is z = (2, 0).
    D = torch.eye(2, dtype=torch.float64)
    X = torch.tensor([[3.0], [0.1]], dtype=torch.float64)
    lam = 1.0
    assert float(udl.kkt_violation(X, D, torch.tensor([[2.0], [0.0]], dtype=torch.float64), lam)) == 0.0
    # z = (1.5, 0): on the support r = 1.5 vs λ = 1 -> violation 0.5 / λ
    v = udl.kkt_violation(X, D, torch.tensor([[1.5], [0.0]], dtype=torch.float64), lam)
    assert abs(float(v) - 0.5) < 1e-15
    # z = 0: |r_1| = 3 > λ off the support -> violation (3 − 1)/λ = 2
    assert abs(float(udl.kkt_violation(X, D, torch.zeros(2, 1, dtype=torch.float64), lam)) - 2.0) < 1e-15
    # wrong sign on the support: r = 3 − (−0.5) = 3.5 vs −λ -> 4.5
    v = udl.kkt_violation(X, D, torch.tensor([[-0.5], [0.0]], dtype=torch.float64), lam)
    assert abs(float(v) - 4.5) < 1e-15


def test_lasso_solve_certificate():
    X, D = _problem(batch=3)
    sol = udl.lasso_solve(X, D, lam=LAM)
    assert isinstance(sol, udl.LassoSolution)
    assert sol.Z.shape == (3, 20, 30) and sol.kkt.shape == (3,)
    assert sol.tol == 1e-9                                    # the float64 default
    assert 1 <= sol.n_iter <= 100_000
    assert bool((sol.kkt <= sol.tol).all())
    # the certificate is what it says: recomputed independently of the solver
    torch.testing.assert_close(udl.kkt_violation(X, D, sol.Z, LAM), sol.kkt)
    sol2 = udl.lasso_solve(X, D, lam=LAM, tol=1e-12)
    assert sol2.tol == 1e-12 and bool((sol2.kkt <= 1e-12).all()) and sol2.n_iter >= sol.n_iter


def test_lasso_solve_matches_ista_and_lasso_gradient():
    X, D = _problem()
    sol = udl.lasso_solve(X, D, lam=LAM, tol=1e-12)
    Z_ista = udl.ista(X, D, lam=LAM, step=STEP, T=3000)
    kkt_ista = udl.kkt_violation(X, D, Z_ista, LAM)
    bound = _kkt_bound(D, sol.Z, Z_ista, sol.kkt, kkt_ista, LAM)
    assert bool((torch.linalg.vector_norm(sol.Z - Z_ista, dim=0) <= bound + 1e-13).all())
    g_hat, sol_g = udl.lasso_gradient(X, D, lam=LAM, tol=1e-12)
    torch.testing.assert_close(g_hat, (D @ sol_g.Z - X) @ sol_g.Z.mT / X.shape[-1])
    assert float(sol_g.kkt) <= 1e-12


def test_lasso_solve_matches_scikit_learn():
    """Independent solver: sklearn's Lasso minimises 1/(2·n_samples)‖y − Xw‖² + α‖w‖₁ per target,
    with n_samples = m (the rows of D): alpha = λ/m gives the same minimiser.

    Tolerance: both solutions carry a KKT certificate (sklearn's recomputed here with
    udl.kkt_violation, which also pins the α scaling); :func:`_kkt_bound` turns the two
    certificates into a rigorous bound on ‖ẑ_udl − ẑ_sklearn‖₂ per example.
    """
    m = 15
    X, D = _problem(m=m)
    sol = udl.lasso_solve(X, D, lam=LAM, tol=1e-12)
    sk = Lasso(alpha=LAM / m, fit_intercept=False, tol=1e-14, max_iter=1_000_000, selection="cyclic")
    sk.fit(D.numpy(), X.numpy())
    Z_sk = torch.as_tensor(sk.coef_.T.copy(), dtype=torch.float64)      # (p, n)
    kkt_sk = udl.kkt_violation(X, D, Z_sk, LAM)
    assert float(kkt_sk) < 1e-6, "sklearn's solution is not a lasso solution at this λ: α mis-scaled?"
    # the same supports (a certified solution of a lasso in general position is unique)
    assert torch.equal(sol.Z != 0, Z_sk != 0)
    err = torch.linalg.vector_norm(sol.Z - Z_sk, dim=0)
    bound = _kkt_bound(D, sol.Z, Z_sk, sol.kkt, kkt_sk, LAM)
    # + 1e-13: round-off in forming r = Dᵀ(x − Dz) itself, which the certificates do not cover
    # (measured here: err 5e-14, bound 3e-13)
    assert bool((err <= bound + 1e-13).all()), float((err - bound).max())
    assert float(err.max()) < 1e-6


def test_lasso_solve_raises_when_max_iter_is_too_small():
    X, D = _problem()
    with pytest.raises(udl.ConvergenceError, match="max_iter"):
        udl.lasso_solve(X, D, lam=LAM, tol=1e-12, max_iter=3)
    with pytest.raises(udl.ConvergenceError, match="max_iter"):
        udl.lasso_gradient(X, D, lam=LAM, tol=1e-12, max_iter=3)
    assert issubclass(udl.ConvergenceError, RuntimeError)


def test_lasso_solve_float32_default_tolerance():
    X, D = _problem()
    sol = udl.lasso_solve(X.float(), D.float(), lam=LAM)
    assert sol.Z.dtype == torch.float32 and sol.tol == 1e-4 and float(sol.kkt) <= 1e-4
    ref = udl.lasso_solve(X, D, lam=LAM)
    assert float((sol.Z.double() - ref.Z).abs().max()) < 1e-3


def test_lasso_gradient_is_the_gradient_of_the_lasso_value_function():
    """Danskin: V(D) = min_z ½‖X − Dz‖²/n + λ‖z‖₁/n has gradient ĝ = (DẐ − X)Ẑᵀ/n.

    Central differences of V with h = 1e-5: V is smooth near D (unique solution, stable support),
    truncation O(h²) ~ 1e-10, solver error O(kkt²) negligible at tol 1e-13.
    """
    X, D = _problem()
    n = X.shape[-1]
    g_hat, _ = udl.lasso_gradient(X, D, lam=LAM, tol=1e-13)

    def V(Dx):
        Z = udl.lasso_solve(X, Dx, lam=LAM, tol=1e-13).Z
        return float(0.5 * (X - Dx @ Z).square().sum() / n + LAM * Z.abs().sum() / n)

    gen = torch.Generator().manual_seed(0)
    h = 1e-5
    for _ in range(3):
        E = torch.randn(D.shape, dtype=D.dtype, generator=gen)
        E /= torch.linalg.norm(E)
        fd = (V(D + h * E) - V(D - h * E)) / (2 * h)
        assert abs(fd - float((g_hat * E).sum())) < 1e-6 * float(torch.linalg.norm(g_hat))
