"""The three gradient estimators (docs/theory.md, "Gradients with respect to D"), tested three ways:
closed form, central finite differences, autodiff; plus their limit ĝ as T grows (Thm II.3a).

Only the public API is used (udl.gradient / udl.gradients / udl.ista / udl.lasso_gradient), so
the tests hold for any implementation of the backward pass.
"""
import math

import pytest
import torch

import udl

LAM, STEP = 0.2, 0.2
# Central differences in float64 with h = 1e-6 on losses of order 0.1–1: truncation error
# O(h²·f''') ~ 1e-12 and round-off O(eps·f/h) ~ 1e-10, so a relative error of 1e-6 leaves
# four orders of magnitude of margin while any wrong term in a gradient is O(1).
FD_H = 1e-6
FD_RTOL = 1e-6


def _loss(X, D, Z, kind, lam=LAM):
    """The losses of docs/theory.md, averaged over the n examples."""
    n = X.shape[-1]
    ls = 0.5 * (X - D @ Z).square().sum() / n
    return ls + lam * Z.abs().sum() / n if kind == "ae-lasso" else ls


def _objective(X, D, kind, T, Z_fixed=None):
    """The function whose gradient `kind` is: L(Z_T fixed, D) for dec, L(Z_T(D), D) for ae kinds."""
    Z = Z_fixed if kind == "dec" else udl.ista(X, D, lam=LAM, step=STEP, T=T)
    return float(_loss(X, D, Z, kind))


def _pattern(X, D, T):
    """Sign pattern of every iterate z_1 … z_T: the piece of the piecewise-smooth map D -> Z_T."""
    return torch.sign(udl.ista(X, D, lam=LAM, step=STEP, T=T, return_path=True))


def _threshold_margin(X, D, T):
    """min over layers and entries of | |v| − αλ |, v the pre-activation z − α Dᵀ(Dz − x)."""
    path = udl.ista(X, D, lam=LAM, step=STEP, T=T, return_path=True)
    V = path[:-1] - STEP * D.mT @ (D @ path[:-1] - X)
    return float((V.abs() - STEP * LAM).abs().min())


def _small_problem(seed=8, m=6, p=10, n=20):
    inst = udl.make_instances(m, p, 2, n, init_scale=0.1, seed=seed)
    return inst.X[0], inst.D0[0]


@pytest.mark.parametrize("kind", udl.KINDS)
def test_gradient_matches_central_finite_differences_entrywise(kind):
    X, D = _small_problem()
    T = 15
    # No pre-activation sits on the threshold kink (seed 8 chosen for a margin of 1.6e-4 ≫ h),
    # so the map D -> Z_T is smooth near D ...
    assert _threshold_margin(X, D, T) > 1e-4
    g = udl.gradient(X, D, kind=kind, lam=LAM, step=STEP, T=T)
    assert g.shape == D.shape and g.dtype == torch.float64
    Z_fixed = udl.ista(X, D, lam=LAM, step=STEP, T=T)
    base = _pattern(X, D, T)
    fd = torch.zeros_like(D)
    for i in range(D.shape[0]):
        for j in range(D.shape[1]):
            E = torch.zeros_like(D)
            E[i, j] = FD_H
            # ... and the finite-difference step does not change the active set of any layer
            assert torch.equal(_pattern(X, D + E, T), base) and torch.equal(_pattern(X, D - E, T), base)
            fd[i, j] = (_objective(X, D + E, kind, T, Z_fixed) - _objective(X, D - E, kind, T, Z_fixed)) / (2 * FD_H)
    err = float(torch.linalg.norm(g - fd) / torch.linalg.norm(fd))
    assert err < FD_RTOL, f"{kind}: relative error {err:.2e} against finite differences"


@pytest.mark.parametrize("kind", udl.KINDS)
def test_gradient_matches_directional_finite_differences(kind):
    # a larger problem, more layers, a batch of 2: <g, E> against (f(D+hE) − f(D−hE)) / 2h
    inst = udl.make_instances(15, 25, 2, 40, init_scale=0.05, batch=2, seed=3)
    X, D = inst.X, inst.D0
    T = 40
    g = udl.gradient(X, D, kind=kind, lam=LAM, step=STEP, T=T)
    gen = torch.Generator().manual_seed(0)
    for b in range(2):
        Xb, Db = X[b], D[b]
        base = _pattern(Xb, Db, T)
        Z_fixed = udl.ista(Xb, Db, lam=LAM, step=STEP, T=T)
        for _ in range(3):
            E = torch.randn(Db.shape, dtype=Db.dtype, generator=gen)
            E /= torch.linalg.norm(E)
            assert torch.equal(_pattern(Xb, Db + FD_H * E, T), base)
            assert torch.equal(_pattern(Xb, Db - FD_H * E, T), base)
            fd = (_objective(Xb, Db + FD_H * E, kind, T, Z_fixed)
                  - _objective(Xb, Db - FD_H * E, kind, T, Z_fixed)) / (2 * FD_H)
            ana = float((g[b] * E).sum())
            assert abs(ana - fd) <= FD_RTOL * float(torch.linalg.norm(g[b])), (kind, b, ana, fd)


def test_finite_differences_would_catch_a_dropped_term():
    # the checks above can fail: g_dec is NOT the derivative through the layers, and the
    # discrepancy is O(1) relative, far above FD_RTOL
    X, D = _small_problem()
    T = 15
    g_dec = udl.gradient(X, D, kind="dec", lam=LAM, step=STEP, T=T)
    g_ls = udl.gradient(X, D, kind="ae-ls", lam=LAM, step=STEP, T=T)
    assert float(torch.linalg.norm(g_dec - g_ls) / torch.linalg.norm(g_ls)) > 1e-2


def test_dec_closed_form_equals_autograd_with_detached_code():
    inst = udl.make_instances(12, 18, 2, 30, batch=2, init_scale=0.05, seed=1)
    X, D = inst.X, inst.D0
    T = 25
    g = udl.gradient(X, D, kind="dec", lam=LAM, step=STEP, T=T)
    Z = udl.ista(X, D, lam=LAM, step=STEP, T=T).detach()
    D_ = D.clone().requires_grad_(True)
    loss = sum(_loss(X[b], D_[b], Z[b], "ae-ls") for b in range(2))
    (auto,) = torch.autograd.grad(loss, D_)
    torch.testing.assert_close(g, auto, rtol=1e-12, atol=1e-14)
    # and the formula of docs/theory.md: (D Z_T − X) Z_Tᵀ / n
    torch.testing.assert_close(g, (D @ Z - X) @ Z.mT / X.shape[-1], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(udl.decoder_gradient(X, D, Z), g, rtol=1e-12, atol=1e-14)


def test_oracle_gradient_formula_and_zero_at_the_truth():
    inst = udl.make_instances(10, 15, 2, 25, batch=2, seed=2)
    X, Zs = inst.X, inst.Z_star
    g0 = udl.oracle_gradient(X, inst.D0, Zs)
    torch.testing.assert_close(g0, (inst.D0 @ Zs - X) @ Zs.mT / 25)
    assert float(g0.abs().max()) > 1e-3
    # noiseless data at D = D*: g* = 0 (the desired direction vanishes at the truth)
    assert float(udl.oracle_gradient(X, inst.D_star, Zs).abs().max()) < 1e-12


def test_ae_lasso_and_dec_approach_g_hat_as_T_grows():
    # Thm II.3a: ‖g_ae-lasso − ĝ‖ and ‖g_dec − ĝ‖ → 0 as T grows (ae-lasso faster); ae-ls does not.
    # Measured on this set-up (3 instances): relative errors dec 0.5 → 2e-6, ae-lasso 0.5 → 4e-10,
    # ae-ls stays at ~0.5 between T = 10 and T = 400.
    inst = udl.make_instances(20, 30, 2, 100, init_scale=0.05, batch=3, seed=1)
    X, D = inst.X, inst.D0
    g_hat, sol = udl.lasso_gradient(X, D, lam=LAM)
    assert float(sol.kkt.max()) <= sol.tol

    def rel(T):
        g = udl.gradients(X, D, lam=LAM, step=STEP, T=T)
        return {k: torch.linalg.matrix_norm(v - g_hat) / torch.linalg.matrix_norm(g_hat) for k, v in g.items()}

    early, late = rel(10), rel(400)
    for k in ("dec", "ae-lasso"):
        assert bool((late[k] < 1e-3 * early[k]).all()), (k, early[k], late[k])
        assert bool((late[k] < 1e-4).all()), (k, late[k])
    assert bool((late["ae-lasso"] < 0.1 * late["dec"]).all()), (late["ae-lasso"], late["dec"])
    assert bool((late["ae-ls"] > 0.1).all()) and bool((late["ae-ls"] > 0.5 * early["ae-ls"]).all())


def test_T_zero_gives_zero_gradients():
    # z_0 = 0 does not depend on D, and L(0, D) = ½‖X‖²/n is constant in D
    X, D = _small_problem()
    for kind in udl.KINDS:
        g = udl.gradient(X, D, kind=kind, lam=LAM, step=STEP, T=0)
        assert g.shape == D.shape and float(g.abs().max()) == 0.0


def test_gradients_dict_equals_single_calls_and_returns_the_code():
    inst = udl.make_instances(10, 16, 2, 30, batch=2, init_scale=0.05, seed=4)
    X, D = inst.X, inst.D0
    T = 20
    out, Z = udl.gradients(X, D, lam=LAM, step=STEP, T=T, return_code=True)
    assert tuple(out) == udl.KINDS
    for kind in udl.KINDS:
        torch.testing.assert_close(out[kind], udl.gradient(X, D, kind=kind, lam=LAM, step=STEP, T=T),
                                   rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(Z, udl.ista(X, D, lam=LAM, step=STEP, T=T), rtol=1e-12, atol=1e-14)
    assert not Z.requires_grad
    sub = udl.gradients(X, D, lam=LAM, step=STEP, T=T, kinds=("ae-ls", "dec"))
    assert tuple(sub) == ("ae-ls", "dec")


def test_gradient_does_not_touch_its_inputs():
    X, D = _small_problem()
    X0, D0 = X.clone(), D.clone()
    D_req = D.clone().requires_grad_(True)
    for kind in udl.KINDS:
        g = udl.gradient(X, D_req, kind=kind, lam=LAM, step=STEP, T=5)
        assert not g.requires_grad
    assert D_req.grad is None
    assert torch.equal(X, X0) and torch.equal(D, D0)


def test_per_instance_lambda_tensor():
    inst = udl.make_instances(10, 16, 2, 30, batch=3, init_scale=0.05, seed=5)
    X, D = inst.X, inst.D0
    lams = torch.tensor([0.1, 0.2, 0.4], dtype=torch.float64)
    T = 20
    out = udl.gradients(X, D, lam=lams, step=STEP, T=T)
    Z = udl.ista(X, D, lam=lams, step=STEP, T=T)
    for b in range(3):
        one = udl.gradients(X[b], D[b], lam=float(lams[b]), step=STEP, T=T)
        for kind in udl.KINDS:
            torch.testing.assert_close(out[kind][b], one[kind], rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(Z[b], udl.ista(X[b], D[b], lam=float(lams[b]), step=STEP, T=T))


def test_float32_agrees_with_float64():
    inst = udl.make_instances(20, 30, 2, 60, init_scale=0.05, batch=2, seed=6)
    X, D = inst.X, inst.D0
    T = 30
    g64 = udl.gradients(X, D, lam=LAM, step=STEP, T=T)
    g32 = udl.gradients(X.float(), D.float(), lam=LAM, step=STEP, T=T)
    for kind in udl.KINDS:
        assert g32[kind].dtype == torch.float32
        rel = torch.linalg.matrix_norm(g32[kind].double() - g64[kind]) / torch.linalg.matrix_norm(g64[kind])
        assert bool((rel < 1e-4).all()), (kind, rel)     # float32 eps 1.2e-7 × 30 layers, with margin


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_agrees_with_cpu():
    inst = udl.make_instances(20, 30, 2, 60, init_scale=0.05, batch=2, seed=6)
    X, D = inst.X, inst.D0
    cpu = udl.gradients(X, D, lam=LAM, step=STEP, T=30)
    gpu = udl.gradients(X.cuda(), D.cuda(), lam=LAM, step=STEP, T=30)
    for kind in udl.KINDS:
        assert gpu[kind].device.type == "cuda"
        torch.testing.assert_close(gpu[kind].cpu(), cpu[kind], rtol=1e-9, atol=1e-12)


def test_ae_ls_is_smaller_than_ae_lasso_at_the_truth():
    # Thm II.3c in miniature: at D = D* the lasso-type gradients carry a λ bias that g_ae-ls
    # (nearly) cancels; a loose ordering on one instance, a sanity check of the kinds' labels.
    inst = udl.make_instances(30, 40, 2, 200, seed=8)
    X, D = inst.X, inst.D_star
    g = udl.gradients(X, D, lam=LAM, step=STEP, T=200)
    n = {k: float(torch.linalg.matrix_norm(v)) for k, v in g.items()}
    assert n["ae-ls"] < 0.5 * n["ae-lasso"] and n["ae-ls"] < 0.5 * n["dec"], n
    assert math.isfinite(n["dec"]) and n["dec"] > 0
