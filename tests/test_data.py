"""udl.make_instances and the data helpers (normalize_columns, coherence).

Every test here checks a property the theorems assume of the data (docs/theory.md, "Setting"):
unit-norm atoms, exactly s-sparse codes with amplitudes in [a, b], the sign convention, the
initial dictionary's distance to D*, and the reproducibility contract of the seeds.
"""
import itertools

import numpy as np
import pytest
import torch

import udl

# float64 round-off on quantities of order one, with room for a few hundred operations
TIGHT = 1e-12


def _inst(**kw):
    args = dict(m=12, p=20, s=3, n=50, batch=3, seed=7)
    args.update(kw)
    return udl.make_instances(**args)


def test_shapes_and_metadata():
    inst = _inst()
    B, m, p, n = 3, 12, 20, 50
    assert inst.D_star.shape == (B, m, p) and inst.D0.shape == (B, m, p)
    assert inst.Z_star.shape == (B, p, n) and inst.X.shape == (B, m, n)
    assert inst.coherence.shape == (B,) and inst.delta.shape == (B, p) and inst.init_error.shape == (B,)
    assert len(inst.seeds) == B and len(set(inst.seeds)) == B and len(inst) == B == inst.batch
    assert all(isinstance(sd, int) and sd >= 0 for sd in inst.seeds)
    assert inst.params["m"] == m and inst.params["s"] == 3 and inst.params["sign"] == "independent"


def test_batch_defaults_to_one():
    assert udl.make_instances(5, 8, 2, 10, seed=1).batch == 1


def test_unit_norm_columns():
    inst = _inst(init_scale=0.3)
    for D in (inst.D_star, inst.D0):
        norms = torch.linalg.vector_norm(D, dim=-2)
        torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=TIGHT)


def test_exactly_s_nonzeros_with_amplitudes_in_range():
    a, b = 0.5, 3.0
    inst = _inst(s=4, amplitude=(a, b), n=200)
    Z = inst.Z_star
    nnz = (Z != 0).sum(dim=-2)
    assert bool((nnz == 4).all())
    amp = Z.abs()[Z != 0]
    assert float(amp.min()) >= a and float(amp.max()) <= b
    # the amplitudes fill the range (U[a, b], 2400 draws): not all squeezed at one end
    assert float(amp.min()) < a + 0.05 * (b - a) and float(amp.max()) > b - 0.05 * (b - a)


def test_support_is_uniform_over_atoms():
    # each atom is in the support with probability s/p; 2000 examples, p=20, s=3 -> 300 expected,
    # sd ~ 16. A bias towards low indices (e.g. argpartition of a constant) would fail badly.
    inst = udl.make_instances(10, 20, 3, 2000, seed=3)
    counts = (inst.Z_star[0] != 0).sum(dim=-1).double()
    assert float((counts - 300).abs().max()) < 80


def test_data_is_dictionary_times_codes():
    inst = _inst()
    torch.testing.assert_close(inst.X, inst.D_star @ inst.Z_star, rtol=0, atol=TIGHT)


def test_noise_level():
    sigma = 0.1
    inst = udl.make_instances(20, 30, 2, 500, noise=sigma, seed=4)
    resid = inst.X - inst.D_star @ inst.Z_star
    assert abs(float(resid.std()) - sigma) < 0.1 * sigma      # 10 000 draws: sd of the std ~ 0.7 %


def test_independent_signs_are_mixed_and_zero_mean():
    inst = udl.make_instances(10, 20, 3, 1000, seed=5)
    sgn = torch.sign(inst.Z_star[0])
    per_example = sgn.sum(dim=0).abs()          # |sum of the s signs| in {1, 3}
    assert bool((per_example == 1).any()), "independent signs never mix within an example"
    assert abs(float(sgn.sum())) < 4 * np.sqrt(3000)        # mean sign ~ 0


def test_shared_sign_gives_one_sign_per_example():
    s = 3
    inst = udl.make_instances(10, 20, s, 400, sign="shared", seed=5)
    sgn = torch.sign(inst.Z_star[0])
    per_example = sgn.sum(dim=0)
    assert bool((per_example.abs() == s).all())
    assert bool((per_example > 0).any()) and bool((per_example < 0).any())


@pytest.mark.parametrize("delta", [0.0, 0.05, 0.3, 1.2])
def test_init_distance_is_exact(delta):
    inst = _inst(init_distance=delta)
    direct = torch.linalg.vector_norm(inst.D0 - inst.D_star, dim=-2)
    torch.testing.assert_close(direct, torch.full_like(direct, delta), rtol=0, atol=1e-12)
    torch.testing.assert_close(inst.delta, direct, rtol=0, atol=TIGHT)


def test_delta_and_init_error_are_what_they_say():
    inst = _inst(init_scale=0.05)
    torch.testing.assert_close(inst.delta, torch.linalg.vector_norm(inst.D0 - inst.D_star, dim=-2))
    direct = torch.stack([torch.linalg.norm(inst.D0[b] - inst.D_star[b]) / torch.linalg.norm(inst.D_star[b])
                          for b in range(inst.batch)])
    torch.testing.assert_close(inst.init_error, direct)


@pytest.mark.parametrize("c", [0.01, 0.02, 0.05])
def test_init_error_is_about_c_sqrt_m(c):
    # D0_j = normalise(D*_j + c e_j): the tangential part has norm ~ c sqrt(m - 1); with p = 40
    # columns averaged into the Frobenius norm the relative error is within a few % of c sqrt(m).
    m = 30
    inst = udl.make_instances(m, 40, 2, 5, init_scale=c, batch=4, seed=11)
    ratio = inst.init_error / (c * np.sqrt(m))
    assert bool(((ratio > 0.85) & (ratio < 1.15)).all()), ratio


def test_coherence_matches_direct_computation():
    inst = _inst()
    for b in range(inst.batch):
        D = inst.D_star[b].numpy()
        p = D.shape[1]
        mu = max(abs(D[:, i] @ D[:, j]) / (np.linalg.norm(D[:, i]) * np.linalg.norm(D[:, j]))
                 for i, j in itertools.combinations(range(p), 2))
        assert abs(float(inst.coherence[b]) - mu) < TIGHT
    # the helper ignores column scaling
    scaled = inst.D_star * torch.linspace(0.5, 3.0, inst.D_star.shape[-1], dtype=torch.float64)
    torch.testing.assert_close(udl.coherence(scaled), inst.coherence)


def test_coherence_of_orthonormal_columns_is_zero():
    Q = torch.linalg.qr(torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0]
    assert float(udl.coherence(Q)) < TIGHT


def test_normalize_columns():
    g = torch.Generator().manual_seed(1)
    D = torch.randn(2, 6, 9, dtype=torch.float64, generator=g) * 5
    Dn = udl.normalize_columns(D)
    torch.testing.assert_close(torch.linalg.vector_norm(Dn, dim=-2), torch.ones(2, 9, dtype=torch.float64))
    # direction unchanged: Dn_j is a positive multiple of D_j
    cos = (Dn * D).sum(-2) / torch.linalg.vector_norm(D, dim=-2)
    torch.testing.assert_close(cos, torch.ones_like(cos))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_respected(dtype):
    inst = _inst(dtype=dtype, device="cpu")
    for t in (inst.D_star, inst.Z_star, inst.X, inst.D0, inst.coherence, inst.delta, inst.init_error):
        assert t.dtype == dtype and t.device.type == "cpu"


def test_float32_is_the_float64_instance_rounded():
    # drawing happens in float64, so a float32 instance is the float64 one rounded
    a, b = _inst(dtype=torch.float64), _inst(dtype=torch.float32)
    for x, y in ((a.D_star, b.D_star), (a.Z_star, b.Z_star), (a.X, b.X), (a.D0, b.D0)):
        assert torch.equal(x.float(), y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_instance_equals_cpu_instance():
    a, b = _inst(), _inst(device="cuda")
    assert b.X.device.type == "cuda"
    assert torch.equal(a.X, b.X.cpu()) and torch.equal(a.D0, b.D0.cpu())


def test_same_seed_same_instances_different_seed_different():
    a, b, c = _inst(seed=3), _inst(seed=3), _inst(seed=4)
    assert a.seeds == b.seeds and torch.equal(a.X, b.X) and torch.equal(a.D0, b.D0)
    assert a.seeds != c.seeds and not torch.equal(a.D_star, c.D_star)
    # the instances of one batch differ from each other
    assert not torch.equal(a.D_star[0], a.D_star[1])


def test_replay_one_instance_from_its_recorded_seed():
    inst = _inst(batch=4, seed=21)
    for b in range(inst.batch):
        one = _inst(batch=None, seed=[inst.seeds[b]])
        assert one.batch == 1 and one.seeds == (inst.seeds[b],)
        for x, y in ((inst.D_star, one.D_star), (inst.Z_star, one.Z_star), (inst.X, one.X), (inst.D0, one.D0)):
            assert torch.equal(x[b], y[0])


def test_instance_does_not_depend_on_batch_size():
    # seeds are spawned per instance: the first 2 of a batch of 5 are a batch of 2
    a, b = _inst(batch=2, seed=9), _inst(batch=5, seed=9)
    assert a.seeds == b.seeds[:2] and torch.equal(a.X, b.X[:2])


def test_to_converts_tensors():
    inst = _inst().to(dtype=torch.float32)
    assert inst.X.dtype == torch.float32 and inst.delta.dtype == torch.float32
    assert inst.seeds == _inst().seeds
