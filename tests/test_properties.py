"""Property-based tests (hypothesis): soft-threshold invariants, equivariance under permuting
atoms, batch independence (instance b of a batched call equals the unbatched call) and the
seed contract of make_instances. Sizes are tiny and examples few: these check structure, not
numerics at scale."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import udl

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
F64 = torch.float64
LAM, STEP = 0.2, 0.2
# float64: a different summation order (batched vs single matmul, permuted atoms) changes the
# result by a few ulps per layer; 1e-10 absolute on O(1) quantities leaves a wide margin while
# any real mix-up of instances or atoms is O(1).
ATOL = 1e-10

seeds = st.integers(min_value=0, max_value=2**32 - 1)
sizes = st.tuples(st.integers(3, 8), st.integers(4, 10), st.integers(1, 2), st.integers(2, 12))  # m, p, s, n


def _instances(size, seed, batch=1, **kw):
    m, p, s, n = size
    return udl.make_instances(m, p, min(s, p), n, batch=batch, seed=seed, init_scale=0.05, **kw)


# ---------------------------------------------------------------------------------------------
# soft threshold P_b(v) = sign(v)·max(|v| − b, 0)
# ---------------------------------------------------------------------------------------------

vectors = st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=1, max_size=30)
thresholds = st.floats(0, 100, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(vectors, thresholds, st.booleans())
def test_soft_threshold_invariants(values, b, b_as_tensor):
    v = torch.tensor(values, dtype=F64)
    bb = torch.tensor(b, dtype=F64) if b_as_tensor else b
    P = udl.soft_threshold(v, bb)
    assert P.shape == v.shape and P.dtype == v.dtype
    # odd function
    torch.testing.assert_close(udl.soft_threshold(-v, bb), -P, rtol=0, atol=0)
    # never increases the magnitude, never flips the sign
    assert bool((P.abs() <= v.abs()).all()) and bool((P * v >= 0).all())
    # zero on [−b, b]
    assert bool((P[v.abs() <= b] == 0).all())
    # shrinks by exactly b elsewhere (up to the rounding of |v| − b)
    out = v.abs() > b
    torch.testing.assert_close(P[out].abs(), v[out].abs() - b, rtol=0, atol=1e-12 * (1 + v.abs().max().item()))
    assert bool((torch.sign(P[out]) == torch.sign(v[out])).all())
    # a proximal operator is non-expansive (1-Lipschitz)
    w = v.flip(0)
    Pw = udl.soft_threshold(w, bb)
    assert bool(((P - Pw).abs() <= (v - w).abs() + 1e-12).all())


@SETTINGS
@given(vectors, st.booleans())
def test_soft_threshold_at_zero_is_the_identity(values, b_as_tensor):
    v = torch.tensor(values, dtype=F64)
    torch.testing.assert_close(udl.soft_threshold(v, torch.tensor(0.0, dtype=F64) if b_as_tensor else 0.0),
                               v, rtol=0, atol=0)


@SETTINGS
@given(vectors, thresholds)
def test_soft_threshold_is_the_prox_of_the_l1_norm(values, b):
    # P_b(v) = argmin_u ½(u − v)² + b|u|: no candidate on a grid around it does better
    v = torch.tensor(values, dtype=F64)
    P = udl.soft_threshold(v, b)
    f = lambda u: 0.5 * (u - v) ** 2 + b * u.abs()  # noqa: E731
    for d in (1e-3, -1e-3, 0.5, -0.5):
        assert bool((f(P) <= f(P + d) + 1e-9 * (1 + v.abs())).all())


# ---------------------------------------------------------------------------------------------
# permuting atoms
# ---------------------------------------------------------------------------------------------

@SETTINGS
@given(sizes, seeds, st.integers(0, 2**16), st.integers(0, 30))
def test_permuting_atoms_permutes_ista_codes_and_gradient_columns(size, seed, perm_seed, T):
    inst = _instances(size, seed)
    X, D = inst.X[0], inst.D0[0]
    p = D.shape[-1]
    perm = torch.randperm(p, generator=torch.Generator().manual_seed(perm_seed))
    Z = udl.ista(X, D, lam=LAM, step=STEP, T=T)
    Zp = udl.ista(X, D[:, perm], lam=LAM, step=STEP, T=T)
    torch.testing.assert_close(Zp, Z[perm], rtol=0, atol=ATOL)
    g = udl.gradients(X, D, lam=LAM, step=STEP, T=T)
    gp = udl.gradients(X, D[:, perm], lam=LAM, step=STEP, T=T)
    for kind in udl.KINDS:
        torch.testing.assert_close(gp[kind], g[kind][:, perm], rtol=0, atol=ATOL)
    # the certified lasso solution too (unique solution: same up to the certificate)
    sol, solp = udl.lasso_solve(X, D, lam=LAM, tol=1e-11), udl.lasso_solve(X, D[:, perm], lam=LAM, tol=1e-11)
    torch.testing.assert_close(solp.Z, sol.Z[perm], rtol=0, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# batch independence
# ---------------------------------------------------------------------------------------------

@SETTINGS
@given(sizes, seeds, st.integers(2, 3), st.integers(0, 25), st.sampled_from(udl.KINDS))
def test_instance_b_of_a_batch_equals_the_unbatched_call(size, seed, batch, T, kind):
    inst = _instances(size, seed, batch=batch)
    X, D = inst.X, inst.D0
    Z = udl.ista(X, D, lam=LAM, step=STEP, T=T)
    path = udl.ista(X, D, lam=LAM, step=STEP, T=T, return_path=True)
    g = udl.gradient(X, D, kind=kind, lam=LAM, step=STEP, T=T)
    go = udl.oracle_gradient(X, D, inst.Z_star)
    Dt = udl.stationary_dictionary(X, Z + inst.Z_star, omega=0.3)
    assert path.shape == (T + 1,) + Z.shape
    for b in range(batch):
        torch.testing.assert_close(Z[b], udl.ista(X[b], D[b], lam=LAM, step=STEP, T=T), rtol=0, atol=ATOL)
        torch.testing.assert_close(path[:, b], udl.ista(X[b], D[b], lam=LAM, step=STEP, T=T, return_path=True),
                                   rtol=0, atol=ATOL)
        torch.testing.assert_close(g[b], udl.gradient(X[b], D[b], kind=kind, lam=LAM, step=STEP, T=T),
                                   rtol=0, atol=ATOL)
        torch.testing.assert_close(go[b], udl.oracle_gradient(X[b], D[b], inst.Z_star[b]), rtol=0, atol=ATOL)
        torch.testing.assert_close(Dt[b], udl.stationary_dictionary(X[b], Z[b] + inst.Z_star[b], omega=0.3),
                                   rtol=1e-9, atol=ATOL)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(sizes, seeds, st.integers(2, 3))
def test_lasso_solve_batched_equals_unbatched(size, seed, batch):
    # the batched solver runs until every instance is certified, so instance b may take more
    # iterations than alone: equal up to the certificate, not bitwise
    inst = _instances(size, seed, batch=batch)
    X, D = inst.X, inst.D0
    sol = udl.lasso_solve(X, D, lam=LAM, tol=1e-11)
    assert bool((sol.kkt <= 1e-11).all())
    for b in range(batch):
        one = udl.lasso_solve(X[b], D[b], lam=LAM, tol=1e-11)
        torch.testing.assert_close(sol.Z[b], one.Z, rtol=0, atol=1e-7)


@SETTINGS
@given(sizes, seeds, st.integers(1, 4), st.sampled_from(["independent", "shared"]))
def test_make_instances_replays_each_instance_from_its_recorded_seed(size, seed, batch, sign):
    inst = _instances(size, seed, batch=batch, sign=sign)
    for b in range(batch):
        one = _instances(size, [inst.seeds[b]], batch=None, sign=sign)
        assert one.seeds == (inst.seeds[b],)
        for x, y in ((inst.D_star, one.D_star), (inst.Z_star, one.Z_star), (inst.X, one.X), (inst.D0, one.D0),
                     (inst.coherence, one.coherence), (inst.delta, one.delta)):
            assert torch.equal(x[b], y[0])


@SETTINGS
@given(sizes, seeds, seeds)
def test_same_seed_same_instance_different_seeds_differ(size, s1, s2):
    a, b = _instances(size, s1), _instances(size, s1)
    assert a.seeds == b.seeds
    for x, y in ((a.D_star, b.D_star), (a.Z_star, b.Z_star), (a.X, b.X), (a.D0, b.D0)):
        assert torch.equal(x, y)
    if s1 != s2:
        c = _instances(size, s2)
        assert c.seeds != a.seeds
        assert not torch.equal(a.D_star, c.D_star) and not torch.equal(a.D0, c.D0)


@SETTINGS
@given(sizes, seeds, st.sampled_from(["independent", "shared"]), st.floats(0.0, 1.9))
def test_make_instances_invariants(size, seed, sign, delta):
    m, p, s, n = size
    s = min(s, p)
    inst = _instances(size, seed, sign=sign, init_distance=delta)
    torch.testing.assert_close(torch.linalg.vector_norm(inst.D_star, dim=-2), torch.ones(1, p, dtype=F64))
    torch.testing.assert_close(torch.linalg.vector_norm(inst.D0, dim=-2), torch.ones(1, p, dtype=F64))
    assert bool(((inst.Z_star != 0).sum(-2) == s).all())
    torch.testing.assert_close(inst.delta, torch.full((1, p), delta, dtype=F64), rtol=0, atol=1e-12)
    if sign == "shared":
        assert bool(((torch.sign(inst.Z_star).sum(-2)).abs() == s).all())
