"""Error measures: dictionary error (with and without sign/permutation alignment), code error,
support recovery, relative error."""
import math

import pytest
import torch

import udl


def _inst(batch=2, **kw):
    return udl.make_instances(10, 16, 2, 30, batch=batch, seed=3, **kw)


def _perm_and_flip(D, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = D.shape[-1]
    perm = torch.randperm(p, generator=g)
    signs = torch.where(torch.rand(p, generator=g) < 0.5, -1.0, 1.0).to(D.dtype)
    return D[..., perm] * signs, perm, signs


def test_dictionary_error_zero_at_the_truth():
    inst = _inst()
    e = udl.dictionary_error(inst.D_star, inst.D_star)
    assert set(e) == {"fro", "max_col"}
    assert e["fro"].shape == (2,) and e["max_col"].shape == (2,)
    assert float(e["fro"].max()) < 1e-15 and float(e["max_col"].max()) < 1e-15
    # columns are normalised first: a positive rescaling of the atoms is no error
    scaled = inst.D_star * torch.linspace(0.1, 10, 16, dtype=torch.float64)
    assert float(udl.dictionary_error(scaled, inst.D_star)["fro"].max()) < 1e-14


@pytest.mark.parametrize("delta", [0.01, 0.2])
def test_dictionary_error_values(delta):
    # every column at exactly distance δ: ‖D − D*‖_F / ‖D*‖_F = δ√p / √p = δ, max_col = δ
    inst = _inst(init_distance=delta)
    e = udl.dictionary_error(inst.D0, inst.D_star)
    torch.testing.assert_close(e["fro"], torch.full((2,), delta, dtype=torch.float64))
    torch.testing.assert_close(e["max_col"], torch.full((2,), delta, dtype=torch.float64))
    torch.testing.assert_close(e["fro"], inst.init_error)
    # one column moved: fro = δ/√p, max_col = δ
    D = inst.D_star.clone()
    D[..., 5] = inst.D0[..., 5]
    e = udl.dictionary_error(D, inst.D_star)
    torch.testing.assert_close(e["max_col"], torch.full((2,), delta, dtype=torch.float64))
    torch.testing.assert_close(e["fro"], torch.full((2,), delta / math.sqrt(16), dtype=torch.float64))


def test_aligned_undoes_permutation_and_sign_flips():
    inst = _inst()
    D, perm, signs = _perm_and_flip(inst.D_star)
    assert float(udl.dictionary_error(D, inst.D_star)["fro"].min()) > 0.5      # unaligned: far
    e = udl.dictionary_error(D, inst.D_star, aligned=True)
    assert float(e["fro"].max()) < 1e-14 and float(e["max_col"].max()) < 1e-14
    torch.testing.assert_close(udl.align(D, inst.D_star), inst.D_star, rtol=0, atol=1e-14)


def test_aligned_error_of_a_permuted_noisy_dictionary_equals_the_unaligned_error():
    inst = _inst(init_scale=0.05)
    D, _, _ = _perm_and_flip(inst.D0, seed=4)
    direct = udl.dictionary_error(inst.D0, inst.D_star)
    aligned = udl.dictionary_error(D, inst.D_star, aligned=True)
    for k in ("fro", "max_col"):
        torch.testing.assert_close(aligned[k], direct[k])
    # aligning an already aligned close dictionary changes nothing
    torch.testing.assert_close(udl.align(inst.D0, inst.D_star), inst.D0)


def test_code_error_reductions_by_hand():
    Z_star = torch.tensor([[1.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    Z = torch.tensor([[0.5, 0.0], [0.0, -2.5]], dtype=torch.float64)
    E = torch.tensor([0.5, 0.0, 0.0, 0.5])
    assert float(udl.code_error(Z, Z_star)) == 0.5                       # default "max"
    assert float(udl.code_error(Z, Z_star, reduction="max")) == 0.5
    assert float(udl.code_error(Z, Z_star, reduction="mean")) == pytest.approx(float(E.mean()))
    assert float(udl.code_error(Z, Z_star, reduction="fro")) == pytest.approx(math.sqrt(0.5) / math.sqrt(5))
    assert float(udl.code_error(Z_star, Z_star, reduction="fro")) == 0.0


def test_code_error_batched():
    inst = _inst(batch=3)
    Z = inst.Z_star + 0.1
    for red in ("max", "mean", "fro"):
        e = udl.code_error(Z, inst.Z_star, reduction=red)
        assert e.shape == (3,)
        for b in range(3):
            torch.testing.assert_close(e[b], udl.code_error(Z[b], inst.Z_star[b], reduction=red))
    torch.testing.assert_close(udl.code_error(Z, inst.Z_star), torch.full((3,), 0.1, dtype=torch.float64))


def test_support_recovery_by_hand():
    Z_star = torch.tensor([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    Z = torch.tensor([[0.3, 0.0, 0.7], [0.0, 1.0, 0.1], [0.0, 0.0, 2.0]])   # 3rd example: extra atom
    torch.testing.assert_close(udl.support_recovery(Z, Z_star), torch.tensor(2 / 3))
    assert float(udl.support_recovery(Z_star, Z_star)) == 1.0
    assert float(udl.support_recovery(torch.zeros_like(Z_star), Z_star)) == 0.0
    # magnitude and sign do not matter, only the support
    assert float(udl.support_recovery(-3 * Z_star, Z_star)) == 1.0


def test_support_recovery_of_converged_ista_at_the_truth():
    # incoherent enough and λ small: the lasso at D = D* recovers most supports
    inst = udl.make_instances(40, 50, 2, 100, batch=2, seed=1)
    Z = udl.ista(inst.X, inst.D_star, lam=0.1, step=0.2, T=300)
    rate = udl.support_recovery(Z, inst.Z_star)
    assert rate.shape == (2,) and bool((rate > 0.8).all()), rate


def test_relative_error():
    A = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    B = torch.zeros(2, 2)
    torch.testing.assert_close(udl.relative_error(A + 0 * A, A), torch.tensor(0.0))
    torch.testing.assert_close(udl.relative_error(B, A), torch.tensor(1.0))
    torch.testing.assert_close(udl.relative_error(2 * A, A), torch.tensor(1.0))
