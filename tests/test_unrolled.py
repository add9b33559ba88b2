"""The lean backward pass through unrolled ISTA (udl.core.unrolled) against plain autograd.

Reference: a hand-written ISTA loop z ← P_{αλ}(z − α Dᵀ(Dz − x)) differentiated by autograd,
independent of the library. Everything in float64 at tiny sizes; the lean pass reorders sums
only, so gradients agree to a few ulps of their scale (TOL below).
"""
import math

import pytest
import torch

import udl
from udl.core.estimators import gradient_sweep
from udl.core.threshold import as_lam
from udl.core.unrolled import STORAGES, SparseIterates, UnrolledISTA, pack_bits, unpack_bits, unrolled_ista
from udl.core.unrolled import layers as lean_layers
from udl.core.unrolled import sweep as lean_sweep_module

LAM, STEP = 0.2, 0.2
# float64 gradients of size O(1) computed with reordered sums of ≤ 100 terms: 1e-12 leaves a
# thousandfold margin over rounding while any missing or wrong term is O(1e-3) or more.
TOL = dict(rtol=1e-10, atol=1e-12)


def reference_ista(X, D, lam, step, T):
    """Plain autograd ISTA (no library code)."""
    thr = step * lam
    Z = torch.zeros(torch.broadcast_shapes(X.shape[:-2], D.shape[:-2]) + (D.shape[-1], X.shape[-1]),
                    dtype=X.dtype)
    for _ in range(T):
        V = Z - step * D.mT @ (D @ Z - X)
        Z = torch.sign(V) * torch.clamp(V.abs() - thr, min=0) if isinstance(thr, torch.Tensor) \
            else torch.nn.functional.softshrink(V, thr)
    return Z


def reference_loss(X, D, Z, kind, lam=LAM):
    n = X.shape[-1]
    ls = 0.5 * (X - D @ Z).square().sum() / n
    if kind == "ae-ls":
        return ls
    lam_ = lam.reshape(lam.shape + (1, 1)) if isinstance(lam, torch.Tensor) else lam
    return ls + (lam_ * Z.abs()).sum() / n


def reference_gradients(X, D, T, lam=LAM, step=STEP):
    """dict kind → gradient by plain autograd (ae kinds) and the closed form (dec)."""
    D_ = D.detach().clone().requires_grad_(True)
    out = {}
    for kind in ("ae-ls", "ae-lasso"):
        Z = reference_ista(X, D_, lam, step, T)        # (T = 0: Z_T = 0, only the direct term)
        out[kind] = torch.autograd.grad(reference_loss(X, D_, Z, kind, lam), D_)[0]
    Z = reference_ista(X, D, lam, step, T)
    out["dec"] = (D @ Z - X) @ Z.mT / X.shape[-1]
    return out


def problem(batch=(), m=5, p=8, n=12, seed=0, s=2):
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(batch + (m, p), generator=g, dtype=torch.float64)
    D = D / D.norm(dim=-2, keepdim=True)
    Z = torch.zeros(batch + (p, n), dtype=torch.float64)
    idx = torch.rand(batch + (p, n), generator=g).argsort(dim=-2)[..., :s, :]
    Z.scatter_(-2, idx, 1 + torch.rand(batch + (s, n), generator=g, dtype=torch.float64))
    X = D @ Z + 0.1 * torch.randn(batch + (m, n), generator=g, dtype=torch.float64)
    D0 = D + 0.1 * torch.randn(batch + (m, p), generator=g, dtype=torch.float64)
    return X, D0 / D0.norm(dim=-2, keepdim=True)


# ---------------------------------------------------------------------------------------------
# exact sparse storage
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("numel", [1, 7, 8, 9, 64, 101])
def test_bits_roundtrip(numel):
    mask = torch.rand(numel, generator=torch.Generator().manual_seed(numel)) > 0.5
    bits = pack_bits(mask)
    assert bits.dtype == torch.uint8 and bits.numel() == (numel + 7) // 8
    assert torch.equal(unpack_bits(bits, (numel,)), mask)


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_sparse_iterates_exact(chunk, storage):
    """Dense, empty and sparse iterates (and an odd number of entries) come back bit for bit."""
    g = torch.Generator().manual_seed(1)
    shape = (2, 3, 5)
    zs = [torch.randn(shape, generator=g, dtype=torch.float64),                       # dense
          torch.zeros(shape, dtype=torch.float64),                                    # empty
          torch.nn.functional.softshrink(torch.randn(shape, generator=g, dtype=torch.float64), 1.0),
          torch.tensor(-0.0, dtype=torch.float64) * torch.ones(shape, dtype=torch.float64)]
    zs += [torch.nn.functional.softshrink(torch.randn(shape, generator=g, dtype=torch.float64), 0.5)
           for _ in range(5)]
    store = SparseIterates(shape, torch.float64, "cpu", chunk, storage)
    for z in zs:
        store.append(z)
    assert len(store) == len(zs)
    reader = store.reader()
    for s in range(len(zs), 0, -1):
        it = reader.get(s)
        assert torch.equal(it.z, zs[s - 1])
        if it.mask is not None:
            assert torch.equal(it.mask, zs[s - 1] != 0)
        if it.idx is not None:
            assert torch.equal(it.idx.long(), zs[s - 1].reshape(-1).nonzero().squeeze(1))
    dense_bytes = sum(z.numel() * z.element_size() for z in zs)
    assert store.nbytes() < dense_bytes


# ---------------------------------------------------------------------------------------------
# the autograd function
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
@pytest.mark.parametrize("T", [0, 1, 2, 9])
@pytest.mark.parametrize("x_grad,chunk,storage", [(False, 1, "index"), (True, 1, "index"),
                                                  (True, 4, "index"), (False, 3, "bits")])
def test_function_matches_autograd(batch, T, x_grad, chunk, storage):
    X, D = problem(batch, seed=T + len(batch))
    W = torch.randn(batch + (D.shape[-1], X.shape[-1]), generator=torch.Generator().manual_seed(5),
                    dtype=torch.float64)                      # a generic cotangent ∂L/∂Z_T
    grads = []
    for lean in (True, False):
        D_ = D.clone().requires_grad_(True)
        X_ = X.clone().requires_grad_(x_grad)
        Z = (unrolled_ista(X_, D_, lam=LAM, step=STEP, T=T, chunk=chunk, storage=storage) if lean
             else reference_ista(X_, D_, LAM, STEP, T))
        if lean and T > 0:
            assert torch.allclose(Z, reference_ista(X, D, LAM, STEP, T), **TOL)
        L = (W * Z).sum() + 0.5 * (X_ - D_ @ Z).square().sum()
        grads.append(torch.autograd.grad(L, (D_, X_) if x_grad else (D_,)))
    for g_lean, g_ref in zip(*grads):
        assert g_lean.shape == g_ref.shape
        assert torch.allclose(g_lean, g_ref, **TOL), float((g_lean - g_ref).abs().max())


def test_no_double_backward():
    """The lean backward is not itself differentiable: asking for it raises instead of being wrong."""
    X, D = problem()
    D_ = D.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(udl.ista(X, D_, lam=LAM, step=STEP, T=3).sum(), D_, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), D_)


def test_ista_uses_lean_function_only_when_needed():
    X, D = problem((2,))
    D_ = D.clone().requires_grad_(True)
    Z = udl.ista(X, D_, lam=LAM, step=STEP, T=5)
    assert "UnrolledISTA" in type(Z.grad_fn).__name__
    assert udl.ista(X, D, lam=LAM, step=STEP, T=5).grad_fn is None
    assert "UnrolledISTA" not in type(udl.FISTA()(X, D_, lam=LAM, step=STEP, T=5).grad_fn).__name__
    # λ = 0 has no threshold: plain autograd path
    assert "UnrolledISTA" not in type(udl.ista(X, D_, lam=0.0, step=STEP, T=3).grad_fn).__name__
    # return_path keeps the plain path and the same values
    path = udl.ista(X, D_, lam=LAM, step=STEP, T=5, return_path=True)
    assert torch.allclose(path[-1], Z, **TOL)


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_forward_with_and_without_grad(batch):
    """Z_T is the same, to rounding, whether or not D requires grad (the lean forward runs in
    another layout); without grad it is bit-for-bit the layer-by-layer path of ISTA.layer."""
    X, D = problem(batch, seed=61)
    lam = torch.full(batch, 0.2, dtype=torch.float64) if batch else LAM
    Z_plain = udl.ista(X, D, lam=lam, step=STEP, T=15)
    Z_lean = udl.ista(X, D.clone().requires_grad_(True), lam=lam, step=STEP, T=15)
    assert torch.allclose(Z_plain, Z_lean.detach(), **TOL)
    assert torch.equal(Z_plain, udl.ista(X, D, lam=lam, step=STEP, T=15, return_path=True)[-1])
    _, Z_dec = udl.gradients(X, D, lam=lam, step=STEP, T=15, kinds=("dec",), return_code=True)
    assert torch.equal(Z_plain, Z_dec)


def test_function_broadcast_and_per_instance_lambda():
    """D shared by a batch of X; one λ per instance."""
    X, _ = problem((3,), seed=3)
    _, D = problem((), seed=4)
    lam = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    grads = []
    for lean in (True, False):
        D_, X_ = D.clone().requires_grad_(True), X.clone().requires_grad_(True)
        Z = (udl.ista(X_, D_, lam=lam, step=STEP, T=6) if lean
             else reference_ista(X_, D_, lam.reshape(3, 1, 1), STEP, 6))
        grads.append(torch.autograd.grad(reference_loss(X_, D_, Z, "ae-lasso", lam), (D_, X_)))
    for g_lean, g_ref in zip(*grads):
        assert g_lean.shape == g_ref.shape
        assert torch.allclose(g_lean, g_ref, **TOL)


def _min_margin(X, D, T):
    """min over layers and entries of | |v_t| − αλ |: distance from the soft-threshold kinks."""
    Z, margin = torch.zeros(D.shape[-1], X.shape[-1], dtype=X.dtype), float("inf")
    for _ in range(T):
        V = Z - STEP * D.mT @ (D @ Z - X)
        margin = min(margin, float((V.abs() - STEP * LAM).abs().min()))
        Z = torch.nn.functional.softshrink(V, STEP * LAM)
    return margin


def test_gradcheck():
    """Finite differences vs the lean backward, at a point ≥ 1e-3 away from every kink."""
    for seed in range(50):
        X, D = problem((), m=3, p=4, n=5, seed=seed)
        if _min_margin(X, D, 4) > 1e-3:
            break
    else:  # pragma: no cover
        pytest.skip("no kink-free problem found")
    D_, X_ = D.clone().requires_grad_(True), X.clone().requires_grad_(True)
    lam = as_lam(LAM, X)
    assert torch.autograd.gradcheck(lambda d, x: UnrolledISTA.apply(d, x, lam, STEP, 4, 1, "index"), (D_, X_),
                                    eps=1e-7, atol=1e-7, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# sparse (CSR) layers: forced on at tiny sizes, against the same references
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def csr_layers(monkeypatch):
    """Sparse layers at any size, for inputs with at most ``density`` non-zeros (set by the test);
    counts the CSR products so that a test fails if the sparse path silently went unused. The
    tunables are patched on udl.core.unrolled.layers, the module that reads them."""
    monkeypatch.setattr(lean_layers, "SPARSE_MIN_MACS", 0)
    calls = []
    real = lean_layers._csr_per_instance

    def counting(idx, values, N, rows, cols):
        calls.append(len(values) * N)
        return real(idx, values, N, rows, cols)

    monkeypatch.setattr(lean_layers, "_csr_per_instance", counting)

    def set_density(d):
        monkeypatch.setattr(lean_layers, "SPARSE_DENSITY", d)
        return calls
    return set_density


@pytest.mark.parametrize("density", [1.0, 0.75])
@pytest.mark.parametrize("batch,x_grad", [((), False), ((3,), True), ((2, 3), True)])
def test_csr_layers_match_autograd(csr_layers, density, batch, x_grad):
    """All layers after the first sparse (1.0), or only those whose input has ≤ 75 % non-zeros
    (on these small, noisy problems the iterates go from ~86 % to ~64 % non-zeros: both kinds)."""
    calls = csr_layers(density)
    X, D = problem(batch, m=6, p=10, n=30, seed=81 + len(batch), s=2)
    W = torch.randn(batch + (10, 30), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    T = 12
    grads = []
    for lean in (True, False):
        D_ = D.clone().requires_grad_(True)
        X_ = X.clone().requires_grad_(x_grad)
        Z = (unrolled_ista(X_, D_, lam=LAM, step=STEP, T=T) if lean else reference_ista(X_, D_, LAM, STEP, T))
        if lean:
            assert torch.allclose(Z, reference_ista(X, D, LAM, STEP, T), **TOL)
        L = (W * Z).sum() + 0.5 * (X_ - D_ @ Z).square().sum()
        grads.append(torch.autograd.grad(L, (D_, X_) if x_grad else (D_,)))
    n_inst = max(1, math.prod(batch))
    sparse_products = sum(calls) / n_inst
    # forward: layers 2…T; backward: layers 1…T−1 (their inputs u_t have the support of z_{t+1})
    assert (sparse_products == 2 * (T - 1)) if density == 1.0 else (0 < sparse_products < 2 * (T - 1))
    for g_lean, g_ref in zip(*grads):
        assert torch.allclose(g_lean, g_ref, **TOL), float((g_lean - g_ref).abs().max())


def test_csr_layers_gradients_and_codes(csr_layers):
    calls = csr_layers(1.0)
    X, D = problem((2,), m=6, p=10, n=30, seed=91, s=2)
    lam = torch.tensor([0.15, 0.3], dtype=torch.float64)
    got, Z = udl.gradients(X, D, lam=lam, step=STEP, T=9, return_code=True)
    assert calls
    for b in range(2):
        ref = reference_gradients(X[b], D[b], 9, lam=float(lam[b]))
        for kind in udl.KINDS:
            assert torch.allclose(got[kind][b], ref[kind], **TOL), kind
        assert torch.allclose(Z[b], reference_ista(X[b], D[b], float(lam[b]), STEP, 9), **TOL)


def test_csr_layers_only_where_iterates_are_stored(csr_layers):
    """Codes without a gradient take dense layers (compaction would cost what it saves)."""
    calls = csr_layers(1.0)
    X, D = problem((3,), m=6, p=10, n=30, seed=92, s=2)
    Z_plain = udl.ista(X, D, lam=LAM, step=STEP, T=10)
    udl.gradient(X, D, kind="dec", lam=LAM, step=STEP, T=10)
    assert not calls
    Z_lean = udl.ista(X, D.clone().requires_grad_(True), lam=LAM, step=STEP, T=10)
    assert calls and torch.allclose(Z_plain, Z_lean.detach(), **TOL)


def test_sparse_layers_only_on_cpu_and_large_products():
    from udl.core.unrolled.layers import SPARSE_MIN_MACS, sparse_layers
    small = torch.zeros(1, 30, 10)                       # n = 30, p = 10: 3 000 multiply-adds
    assert not sparse_layers(small)
    p = 150
    n = -(-SPARSE_MIN_MACS // p**2)
    assert sparse_layers(torch.zeros(1, n, p)) and not sparse_layers(torch.zeros(1, n - 1, p))
    assert not sparse_layers(torch.zeros(1, n, p, device="meta"))


# ---------------------------------------------------------------------------------------------
# udl.gradients (one forward and one backward pass for all kinds)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [(), (2, 3)])
@pytest.mark.parametrize("T", [0, 1, 3, 12])
def test_gradients_match_autograd(batch, T):
    X, D = problem(batch, seed=10 + T)
    got = udl.gradients(X, D, lam=LAM, step=STEP, T=T)
    ref = reference_gradients(X, D, T)
    for kind in udl.KINDS:
        assert got[kind].shape == ref[kind].shape
        assert torch.allclose(got[kind], ref[kind], **TOL), (kind, float((got[kind] - ref[kind]).abs().max()))


def test_gradients_single_kind_and_code():
    X, D = problem((2,), seed=7)
    both, Z = udl.gradients(X, D, lam=LAM, step=STEP, T=6, return_code=True)
    assert torch.allclose(Z, reference_ista(X, D, LAM, STEP, 6), **TOL)
    for kind in udl.KINDS:
        one = udl.gradient(X, D, kind=kind, lam=LAM, step=STEP, T=6)
        assert torch.allclose(one, both[kind], **TOL)


def test_gradients_per_instance_lambda():
    X, D = problem((3,), seed=8)
    lam = torch.tensor([0.05, 0.2, 0.4], dtype=torch.float64)
    got = udl.gradients(X, D, lam=lam, step=STEP, T=7)
    for b in range(3):
        ref = reference_gradients(X[b], D[b], 7, lam=float(lam[b]))
        for kind in udl.KINDS:
            assert torch.allclose(got[kind][b], ref[kind], **TOL)


# ---------------------------------------------------------------------------------------------
# the depth sweep
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [(), (2,), (2, 2)])
def test_sweep_matches_gradients_at_every_depth(batch):
    X, D = problem(batch, seed=20 + len(batch))
    T_max = 9
    sweep = gradient_sweep(X, D, lam=LAM, step=STEP, T_max=T_max)
    assert udl.gradient_sweep is gradient_sweep
    for kind in udl.KINDS:
        assert sweep[kind].shape == (T_max,) + batch + D.shape[-2:]
    for T in range(1, T_max + 1):
        ref = udl.gradients(X, D, lam=LAM, step=STEP, T=T)
        for kind in udl.KINDS:
            assert torch.allclose(sweep[kind][T - 1], ref[kind], **TOL), (T, kind)


@pytest.mark.parametrize("kinds", [("ae-lasso",), ("ae-ls", "dec"), ("dec",)])
@pytest.mark.parametrize("chunk,storage,max_stack", [(1, "index", None), (3, "index", 2), (2, "bits", 1)])
def test_sweep_depths_and_kinds(kinds, chunk, storage, max_stack):
    X, D = problem((2,), seed=31)
    depths = [7, 0, 2, 7, 1, 5]
    sweep = gradient_sweep(X, D, lam=LAM, step=STEP, depths=depths, kinds=kinds, chunk=chunk,
                           storage=storage, max_stack=max_stack)
    assert set(sweep) == set(kinds)
    for i, T in enumerate(depths):
        ref = reference_gradients(X, D, T)
        for kind in kinds:
            assert torch.allclose(sweep[kind][i], ref[kind], **TOL), (T, kind)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1e9])
@pytest.mark.parametrize("max_stack", [None, 3])
def test_sweep_compact_dense_and_switch(monkeypatch, fraction, max_stack):
    """Compact phase throughout (1e9), dense throughout (0), or a switch part-way (0.5: on this
    problem the compact/dense cost ratio runs from 0.7 at the first layer to 0.4 at the last).

    The phase is checked through the support patterns the sweep builds: one per layer while
    compact, none once dense (the first layer of each block of depths builds two to price the
    compact step). A fraction patched where it is not read would leave the default (0.6, a
    switch), and the all-compact and all-dense cases would fail."""
    monkeypatch.setattr(lean_sweep_module, "COMPACT_FLOP_FRACTION", fraction)
    patterns = []
    real = lean_sweep_module._pattern

    def counting(idx, p, n):
        patterns.append(1)
        return real(idx, p, n)

    monkeypatch.setattr(lean_sweep_module, "_pattern", counting)
    lam = 0.5
    X, D = problem((2,), m=10, p=20, n=40, seed=71, s=2)
    T_max = 12
    sweep = gradient_sweep(X, D, lam=lam, step=STEP, T_max=T_max, max_stack=max_stack)
    width = T_max if max_stack is None else max_stack
    tops = range(T_max, 0, -width)                     # deepest depth of each block
    per_instance = len(patterns) / 2
    if fraction == 0.0:
        assert per_instance == 2 * len(tops)
    elif fraction == 1e9:
        assert per_instance == sum(tops)               # z_top … z_1 of every block
    else:
        assert 2 * len(tops) < per_instance < sum(tops)
    for T in (1, 2, 5, 12):
        ref = reference_gradients(X, D, T, lam=lam)
        for kind in udl.KINDS:
            assert torch.allclose(sweep[kind][T - 1], ref[kind], **TOL), (T, kind)


def test_sweep_all_zero_codes():
    """A threshold above every |v|: all iterates zero, every gradient is its direct term."""
    X, D = problem((), seed=72)
    lam = 1e3
    sweep = gradient_sweep(X, D, lam=lam, step=STEP, T_max=4)
    for T in (1, 4):
        ref = reference_gradients(X, D, T, lam=lam)
        for kind in udl.KINDS:
            assert torch.allclose(sweep[kind][T - 1], ref[kind], **TOL)


def test_sweep_per_instance_lambda_and_broadcast():
    X, _ = problem((3,), seed=41)
    _, D = problem((), seed=42)
    lam = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    sweep = gradient_sweep(X, D, lam=lam, step=STEP, T_max=5)
    for b in range(3):
        for T in (1, 5):
            ref = reference_gradients(X[b], D, T, lam=float(lam[b]))
            for kind in udl.KINDS:
                assert torch.allclose(sweep[kind][T - 1, b], ref[kind], **TOL)


def test_sweep_other_encoder_falls_back():
    X, D = problem((2,), seed=51)
    enc = udl.FISTA()
    sweep = gradient_sweep(X, D, lam=LAM, step=STEP, T_max=4, encoder=enc)
    for T in range(1, 5):
        ref = udl.gradients(X, D, lam=LAM, step=STEP, T=T, encoder=enc)
        for kind in udl.KINDS:
            assert torch.allclose(sweep[kind][T - 1], ref[kind], **TOL)


def test_sweep_validation():
    X, D = problem()
    with pytest.raises(ValueError, match="T_max or depths"):
        gradient_sweep(X, D, lam=LAM, step=STEP)
    with pytest.raises(ValueError, match="T_max"):
        gradient_sweep(X, D, lam=LAM, step=STEP, T_max=2, depths=[3])
    with pytest.raises(ValueError, match="kind"):
        gradient_sweep(X, D, lam=LAM, step=STEP, T_max=2, kinds=("ae",))
    with pytest.raises(ValueError, match="depth"):
        gradient_sweep(X, D, lam=LAM, step=STEP, depths=[-1])


# ---------------------------------------------------------------------------------------------
# memory: what the graph holds
# ---------------------------------------------------------------------------------------------

def _saved_bytes(fn):
    """Bytes of the distinct storages the autograd graph saves while ``fn`` runs."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def test_lean_graph_saves_less_than_plain_autograd():
    X, D = problem((), m=20, p=30, n=200, seed=3)
    D_ = D.clone().requires_grad_(True)
    lean, _ = _saved_bytes(lambda: unrolled_ista(X, D_, lam=LAM, step=STEP, T=40))
    plain, _ = _saved_bytes(lambda: reference_ista(X, D_, LAM, STEP, 40))
    assert lean < plain / 4, (lean, plain)
