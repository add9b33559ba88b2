"""Unrolled encoders: each against a direct transcription of its formula, the iterate path, the
capabilities they declare, and differentiability of udl.ista (values and vector-Jacobian products
against plain autograd through a reference written here)."""
import pytest
import torch

import udl

LAM, STEP = 0.2, 0.2
ATOL = 1e-12      # float64, O(1) codes, tens of layers of p×p products


def _ref_ista(X, D, lam, step, T, threshold=None):
    """z_{t+1} = P(z_t − α Dᵀ(D z_t − x)) from z_0 = 0, written as in docs/theory.md."""
    threshold = threshold or (lambda v, t: torch.sign(v) * torch.clamp(v.abs() - step * lam, min=0))
    Z = torch.zeros(D.shape[:-2] + (D.shape[-1], X.shape[-1]), dtype=X.dtype)
    path = [Z]
    for t in range(T):
        Z = threshold(Z - step * D.mT @ (D @ Z - X), t)
        path.append(Z)
    return Z, torch.stack(path)


def _problem(batch=2, seed=0, m=10, p=16, n=25):
    inst = udl.make_instances(m, p, 2, n, batch=batch, init_scale=0.05, seed=seed)
    return inst.X, inst.D0


@pytest.mark.parametrize("T", [0, 1, 7, 40])
def test_ista_matches_the_formula(T):
    X, D = _problem()
    Z_ref, path_ref = _ref_ista(X, D, LAM, STEP, T)
    Z = udl.ista(X, D, lam=LAM, step=STEP, T=T)
    assert Z.shape == (2, 16, 25) and Z.dtype == torch.float64
    torch.testing.assert_close(Z, Z_ref, rtol=0, atol=ATOL)
    path = udl.ista(X, D, lam=LAM, step=STEP, T=T, return_path=True)
    assert path.shape == (T + 1, 2, 16, 25)
    assert float(path[0].abs().max()) == 0.0                            # z_0 = 0
    torch.testing.assert_close(path, path_ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(udl.ISTA()(X, D, lam=LAM, step=STEP, T=T), Z, rtol=0, atol=0)


def test_iterates_yield_the_path():
    X, D = _problem()
    its = list(udl.ISTA().iterates(X, D, lam=LAM, step=STEP, T=6))
    path = udl.ista(X, D, lam=LAM, step=STEP, T=6, return_path=True)
    assert len(its) == 6
    for t, Z in enumerate(its, start=1):
        torch.testing.assert_close(Z, path[t], rtol=0, atol=ATOL)


def test_ista_codes_are_sparse_and_lam_zero_is_landweber():
    X, D = _problem()
    Z = udl.ista(X, D, lam=LAM, step=STEP, T=100)
    assert float((Z == 0).double().mean()) > 0.5
    torch.testing.assert_close(udl.ista(X, D, lam=0.0, step=STEP, T=20),
                               udl.NoThreshold()(X, D, lam=LAM, step=STEP, T=20), rtol=0, atol=ATOL)


def test_shared_dictionary_broadcasts_over_data_batch():
    X, D = _problem(batch=3)
    Z = udl.ista(X, D[0], lam=LAM, step=STEP, T=10)
    assert Z.shape == (3, 16, 25)
    for b in range(3):
        torch.testing.assert_close(Z[b], udl.ista(X[b], D[0], lam=LAM, step=STEP, T=10), rtol=0, atol=ATOL)


def test_fista_matches_the_formula_and_converges_faster():
    X, D = _problem()
    T = 30
    Z = torch.zeros(2, 16, 25, dtype=torch.float64)
    Y, k = Z, 1.0
    for _ in range(T):
        Zn = torch.sign(V := Y - STEP * D.mT @ (D @ Y - X)) * torch.clamp(V.abs() - STEP * LAM, min=0)
        kn = (1 + (1 + 4 * k * k) ** 0.5) / 2
        Y, Z, k = Zn + ((k - 1) / kn) * (Zn - Z), Zn, kn
    F = udl.FISTA()(X, D, lam=LAM, step=STEP, T=T)
    torch.testing.assert_close(F, Z, rtol=0, atol=ATOL)
    sol = udl.lasso_solve(X, D, lam=LAM, tol=1e-12).Z
    err_fista = torch.linalg.matrix_norm(F - sol)
    err_ista = torch.linalg.matrix_norm(udl.ista(X, D, lam=LAM, step=STEP, T=T) - sol)
    assert bool((err_fista < err_ista).all())


def test_hard_threshold_encoder():
    X, D = _problem()
    tau = 0.15
    ref, _ = _ref_ista(X, D, LAM, STEP, 12, threshold=lambda v, t: v * (v.abs() > tau))
    torch.testing.assert_close(udl.HardThresholdISTA(tau)(X, D, lam=LAM, step=STEP, T=12), ref, rtol=0, atol=ATOL)
    v = torch.tensor([-0.3, -0.1, 0.0, 0.1, 0.3])
    torch.testing.assert_close(udl.hard_threshold(v, 0.2), torch.tensor([-0.3, 0.0, 0.0, 0.0, 0.3]))


def test_lambda_decay_encoder():
    X, D = _problem()
    gamma, lam_min = 0.8, 0.05
    ref, _ = _ref_ista(X, D, LAM, STEP, 15, threshold=lambda v, t: torch.sign(v) * torch.clamp(
        v.abs() - STEP * max(LAM * gamma ** t, lam_min), min=0))
    torch.testing.assert_close(udl.LambdaDecayISTA(gamma, lam_min)(X, D, lam=LAM, step=STEP, T=15), ref,
                               rtol=0, atol=ATOL)
    # no decay is plain ISTA
    torch.testing.assert_close(udl.LambdaDecayISTA(1.0)(X, D, lam=LAM, step=STEP, T=15),
                               udl.ista(X, D, lam=LAM, step=STEP, T=15), rtol=0, atol=ATOL)


def test_unscaled_threshold_control():
    X, D = _problem()
    ref, _ = _ref_ista(X, D, LAM, STEP, 10, threshold=lambda v, t: torch.sign(v) * torch.clamp(v.abs() - LAM, min=0))
    U = udl.UnscaledThresholdISTA()(X, D, lam=LAM, step=STEP, T=10)
    torch.testing.assert_close(U, ref, rtol=0, atol=ATOL)
    assert not torch.allclose(U, udl.ista(X, D, lam=LAM, step=STEP, T=10))      # it is a different encoder
    # ISTA at λ' = λ/α thresholds at αλ' = λ: the same map as the slip at λ
    torch.testing.assert_close(udl.UnscaledThresholdISTA()(X, D, lam=LAM, step=1.0 / 8, T=3),
                               udl.ista(X, D, lam=8 * LAM, step=1.0 / 8, T=3), rtol=0, atol=ATOL)


def test_declared_capabilities():
    full = {"differentiable", "soft_threshold", "fixed_lambda"}
    assert set(udl.CAPABILITIES) == full
    assert udl.ISTA.capabilities == full and udl.FISTA.capabilities == full
    assert "soft_threshold" not in udl.HardThresholdISTA.capabilities
    assert "soft_threshold" not in udl.NoThreshold.capabilities
    assert "fixed_lambda" not in udl.LambdaDecayISTA.capabilities
    assert "soft_threshold" not in udl.UnscaledThresholdISTA.capabilities
    for enc in (udl.ISTA(), udl.FISTA(), udl.HardThresholdISTA(), udl.LambdaDecayISTA(), udl.NoThreshold(),
                udl.UnscaledThresholdISTA()):
        assert isinstance(enc, udl.Encoder) and enc.capabilities <= full and isinstance(repr(enc), str)


# ---------------------------------------------------------------------------------------------
# differentiability of udl.ista (whatever the backward implementation)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrt", ["D", "X", "both"])
@pytest.mark.parametrize("lam", [LAM, "per-instance"])
def test_ista_vector_jacobian_products_match_plain_autograd(wrt, lam):
    X, D = _problem(batch=2, seed=3)
    if lam == "per-instance":
        lam = torch.tensor([0.1, 0.3], dtype=torch.float64)
        lam_ref = lam[:, None, None]
    else:
        lam_ref = lam
    W = torch.randn(2, 16, 25, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    T = 20

    def vjp(fn):
        Xr = X.clone().requires_grad_(wrt in ("X", "both"))
        Dr = D.clone().requires_grad_(wrt in ("D", "both"))
        Z = fn(Xr, Dr)
        inputs = [t for t in (Xr, Dr) if t.requires_grad]
        return Z.detach(), torch.autograd.grad((W * Z).sum() + Z.abs().sum(), inputs)

    Z, grads = vjp(lambda Xr, Dr: udl.ista(Xr, Dr, lam=lam, step=STEP, T=T))
    Z_ref, grads_ref = vjp(lambda Xr, Dr: _ref_ista(Xr, Dr, lam_ref, STEP, T)[0])
    torch.testing.assert_close(Z, Z_ref, rtol=0, atol=ATOL)
    for g, gr in zip(grads, grads_ref):
        torch.testing.assert_close(g, gr, rtol=1e-10, atol=1e-12)


def test_ista_forward_is_the_same_with_and_without_grad():
    X, D = _problem()
    with torch.no_grad():
        Z0 = udl.ista(X, D, lam=LAM, step=STEP, T=25)
    Z1 = udl.ista(X, D.clone().requires_grad_(True), lam=LAM, step=STEP, T=25)
    assert Z1.requires_grad
    torch.testing.assert_close(Z1.detach(), Z0, rtol=0, atol=ATOL)


def test_a_user_encoder_plugs_into_the_gradients():
    # the Encoder interface: a subclass implementing `layer` gets all three gradient kinds
    class MyISTA(udl.Encoder):
        name = "my-ista"
        capabilities = frozenset({"differentiable", "soft_threshold", "fixed_lambda"})

        def layer(self, t, A, B, state, *, lam, step):
            return {"Z": udl.soft_threshold(A @ state["Z"] + B, step * lam)}

    X, D = _problem()
    mine = udl.gradients(X, D, lam=LAM, step=STEP, T=15, encoder=MyISTA())
    ref = udl.gradients(X, D, lam=LAM, step=STEP, T=15)
    for kind in udl.KINDS:
        torch.testing.assert_close(mine[kind], ref[kind], rtol=1e-10, atol=1e-13)
