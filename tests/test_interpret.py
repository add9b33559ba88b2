"""Stationary points and interpretability (Thm II.4): D̃ = X G⁻¹ Z̃ᵀ, G = Z̃ᵀZ̃ + ωI, the atom
contributions C = G⁻¹Z̃ᵀ (D̃ = X C) and the reconstruction coefficients β = G⁻¹Z̃ᵀẑ (D̃ẑ = Xβ),
checked against direct ridge solves computed here in two independent ways.
"""
import numpy as np
import pytest
import torch

import udl

EPS64 = torch.finfo(torch.float64).eps
# Backward-stable solves of a system with condition number κ are accurate to ~κ·eps relative;
# 1000 covers the constants of the two Cholesky / LU solves compared (both sides carry error).
SOLVE_SLACK = 1e3


def _codes(kind, m=12, p=20, n=40, seed=0):
    inst = udl.make_instances(m, p, 3, n, init_scale=0.05, seed=seed)
    X = inst.X[0]
    if kind == "lasso":        # sparse converged codes with some unused atoms possible
        Z = udl.ista(X, inst.D0[0], lam=0.2, step=0.2, T=300)
    else:                      # dense arbitrary codes: the identity holds for any Z̃
        Z = torch.randn(p, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return X, Z


def _cond_G(Z, omega):
    n = Z.shape[-1]
    ev = torch.linalg.eigvalsh(Z.mT @ Z + omega * torch.eye(n, dtype=Z.dtype))
    return float(ev[-1] / ev[0])


def _rel(A, B):
    return float(torch.linalg.norm(A - B) / torch.linalg.norm(B))


@pytest.mark.parametrize("codes", ["lasso", "dense"])
@pytest.mark.parametrize("omega", [1e-2, 1.0, 30.0])
def test_stationary_dictionary_equals_direct_ridge_solves(codes, omega):
    X, Z = _codes(codes)
    n, p = Z.shape[-1], Z.shape[-2]
    D_t = udl.stationary_dictionary(X, Z, omega=omega)
    assert D_t.shape == (X.shape[0], p)
    # n×n form X (ZᵀZ + ωI)⁻¹ Zᵀ, by an LU solve on G
    G = Z.mT @ Z + omega * torch.eye(n, dtype=Z.dtype)
    D_nn = X @ torch.linalg.solve(G, Z.mT)
    # normal equations D (ZZᵀ + ωI) = X Zᵀ, i.e. (ZZᵀ + ωI) Dᵀ = Z Xᵀ
    D_ne = torch.linalg.solve(Z @ Z.mT + omega * torch.eye(p, dtype=Z.dtype), Z @ X.mT).mT
    tol = SOLVE_SLACK * EPS64 * _cond_G(Z, omega)
    assert _rel(D_t, D_nn) < tol and _rel(D_t, D_ne) < tol, (_rel(D_t, D_nn), _rel(D_t, D_ne), tol)


def test_stationary_dictionary_is_the_ridge_minimiser():
    X, Z = _codes("lasso")
    omega = 0.5
    D_t = udl.stationary_dictionary(X, Z, omega=omega).requires_grad_(True)
    f = 0.5 * (X - D_t @ Z).square().sum() + 0.5 * omega * D_t.square().sum()
    (g,) = torch.autograd.grad(f, D_t)
    scale = float(torch.linalg.norm(X @ Z.mT))
    assert float(torch.linalg.norm(g)) < 1e-12 * scale
    # negative control: a perturbed "stationary" dictionary is not stationary
    D_p = (D_t.detach() + 1e-3 * torch.randn(D_t.shape, dtype=D_t.dtype,
                                             generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    f = 0.5 * (X - D_p @ Z).square().sum() + 0.5 * omega * D_p.square().sum()
    (g,) = torch.autograd.grad(f, D_p)
    assert float(torch.linalg.norm(g)) > 1e-6 * scale


def test_contributions_give_the_atoms():
    X, Z = _codes("lasso")
    omega = 0.3
    n, p = Z.shape[-1], Z.shape[-2]
    D_t, C = udl.stationary_dictionary(X, Z, omega=omega, return_contributions=True)
    assert C.shape == (n, p)
    torch.testing.assert_close(D_t, X @ C, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(udl.contributions(X, Z, omega=omega), C)
    # C = G⁻¹ Z̃ᵀ:  G C = Z̃ᵀ
    G = Z.mT @ Z + omega * torch.eye(n, dtype=Z.dtype)
    assert _rel(G @ C, Z.mT) < SOLVE_SLACK * EPS64 * _cond_G(Z, omega)
    # atom j is a combination of the examples that use it: an unused atom (zero row) is zero
    used = (Z != 0).any(dim=-1)
    assert torch.equal(C.abs().sum(0) > 1e-12 * float(C.abs().max()), used)


@pytest.mark.parametrize("omega", [1e-2, 1.0])
def test_reconstruction_coefficients_reconstruct(omega):
    X, Z = _codes("lasso")
    inst = udl.make_instances(12, 20, 3, 7, seed=5)
    Z_new = udl.ista(inst.X[0], udl.make_instances(12, 20, 3, 40, init_scale=0.05, seed=0).D0[0],
                     lam=0.2, step=0.2, T=300)
    beta = udl.reconstruction_coefficients(X, Z, Z_new, omega=omega)
    assert beta.shape == (X.shape[-1], Z_new.shape[-1])
    D_t = udl.stationary_dictionary(X, Z, omega=omega)
    tol = SOLVE_SLACK * EPS64 * _cond_G(Z, omega)
    assert _rel(X @ beta, D_t @ Z_new) < tol
    # β = G⁻¹ Z̃ᵀ ẑ against an independent solve
    G = Z.mT @ Z + omega * torch.eye(X.shape[-1], dtype=Z.dtype)
    assert _rel(beta, torch.linalg.solve(G, Z.mT @ Z_new)) < tol


def test_mean_loss_scaling():
    # With the mean-over-examples loss ½‖X − DZ‖²/n + (ω'/2)‖D‖², the minimiser is the
    # stationary dictionary at ω = n·ω' (docs/theory.md II.4b "mind the scaling").
    X, Z = _codes("lasso")
    n, w = X.shape[-1], 0.02
    D_t = udl.stationary_dictionary(X, Z, omega=n * w).requires_grad_(True)
    f = 0.5 * (X - D_t @ Z).square().sum() / n + 0.5 * w * D_t.square().sum()
    (g,) = torch.autograd.grad(f, D_t)
    assert float(torch.linalg.norm(g)) < 1e-12 * float(torch.linalg.norm(X @ Z.mT / n))


def test_gram_condition():
    X, Z = _codes("dense")
    omega = 0.7
    p = Z.shape[-2]
    K = (Z @ Z.mT + omega * torch.eye(p, dtype=Z.dtype)).numpy()
    assert abs(float(udl.gram_condition(Z, omega=omega)) / np.linalg.cond(K) - 1) < 1e-10
    # the n×n G has the same nonzero spectrum plus ω, so its condition number is at least as large
    assert float(udl.gram_condition(Z, omega=omega)) <= _cond_G(Z, omega) * (1 + 1e-10)


def test_rank_deficient_codes_fewer_examples_than_atoms():
    # n < p: Z̃Z̃ᵀ is singular, the ω ridge keeps everything well posed
    X, Z = _codes("dense", n=8, p=20)
    omega = 0.1
    D_t = udl.stationary_dictionary(X, Z, omega=omega)
    G = Z.mT @ Z + omega * torch.eye(8, dtype=Z.dtype)
    assert _rel(D_t, X @ torch.linalg.solve(G, Z.mT)) < SOLVE_SLACK * EPS64 * _cond_G(Z, omega)


def test_batched_interpretation():
    inst = udl.make_instances(10, 15, 2, 25, batch=3, init_scale=0.05, seed=2)
    Z = udl.ista(inst.X, inst.D0, lam=0.2, step=0.2, T=200)
    D_t, C = udl.stationary_dictionary(inst.X, Z, omega=0.5, return_contributions=True)
    beta = udl.reconstruction_coefficients(inst.X, Z, Z[..., :4], omega=0.5)
    assert D_t.shape == (3, 10, 15) and C.shape == (3, 25, 15) and beta.shape == (3, 25, 4)
    assert udl.gram_condition(Z, omega=0.5).shape == (3,)
    for b in range(3):
        torch.testing.assert_close(D_t[b], udl.stationary_dictionary(inst.X[b], Z[b], omega=0.5))
        torch.testing.assert_close(beta[b], udl.reconstruction_coefficients(inst.X[b], Z[b], Z[b, :, :4], omega=0.5))


def test_float32():
    X, Z = _codes("lasso")
    omega = 1.0
    D64 = udl.stationary_dictionary(X, Z, omega=omega)
    D32 = udl.stationary_dictionary(X.float(), Z.float(), omega=omega)
    assert D32.dtype == torch.float32
    assert _rel(D32.double(), D64) < 1e3 * torch.finfo(torch.float32).eps * _cond_G(Z, omega)
