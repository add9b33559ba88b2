"""Unit tests of the helper statistics of the data-model (D.1) and path-consistency (P.1) claims."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from claims.data_model import (DataModelCell, cross_instance_agreement, ks_distance, pair_agreement,
                               within_example_pairs)
from claims.path_consistency import closed_form_T1, plain_autograd, relative_deviation
from udl.core.data import make_instances
from udl.core.estimators import gradients
from udl.engine.mutants import mutated

SEED = 10_321


def _agreement(sign: str) -> float:
    inst = make_instances(30, 60, 5, 2000, sign=sign, seed=SEED)
    k, n = pair_agreement(within_example_pairs(inst.Z_star[0].numpy(), 5))
    assert n == 2000 * 2                                   # two disjoint pairs per example at s = 5
    return k / n


def test_sign_agreement_is_half_for_independent_signs():
    # 4000 independent pairs: sd 0.008, so ±0.04 is five standard deviations
    assert abs(_agreement("independent") - 0.5) < 0.04


def test_sign_agreement_is_one_for_shared_signs():
    assert _agreement("shared") == 1.0


def test_sign_agreement_sees_the_shared_signs_mutant():
    with mutated("shared-signs"):
        inst = make_instances(30, 60, 5, 200, sign="independent", seed=SEED)
    assert inst.params["sign"] == "independent"            # the mutant lies in the record …
    k, n = pair_agreement(within_example_pairs(inst.Z_star[0].numpy(), 5))
    assert k == n                                          # … and the statistic sees it


def test_within_example_pairs_pairs_in_row_order():
    Z = np.zeros((6, 2))
    Z[[0, 2, 3, 5], 0] = [1.0, -1.0, 2.0, 2.0]
    Z[[1, 2, 4, 5], 1] = [-1.0, -1.0, 1.0, -1.0]
    pairs = within_example_pairs(Z, 4)
    np.testing.assert_array_equal(pairs, [[1, -1], [1, 1], [-1, -1], [1, -1]])
    assert pair_agreement(pairs) == (2, 4)


def test_within_example_pairs_rejects_bad_input():
    with pytest.raises(ValueError, match="s >= 2"):
        within_example_pairs(np.ones((3, 2)), 1)
    Z = np.zeros((4, 2))
    Z[:2, 0] = 1.0
    Z[:1, 1] = 1.0
    with pytest.raises(ValueError, match="exactly s=2"):
        within_example_pairs(Z, 2)


def test_ks_distance_separates_the_amplitude_laws():
    rng = np.random.default_rng(SEED)
    good, _ = ks_distance(rng.uniform(1.0, 2.0, 1000), 1.0, 2.0)
    bad, p_bad = ks_distance(rng.uniform(0.0, 2.0, 1000), 1.0, 2.0)
    assert good < 0.07                                     # E ≈ 0.027; 0.07 is far in the tail
    assert bad > 0.4 and p_bad < 1e-10                     # half the mass below 1


def test_cross_instance_agreement_is_half_for_independent_and_one_for_copies():
    inst = make_instances(50, 100, 5, 10, seed=SEED, batch=2)
    D = inst.D_star.numpy()
    k, n = cross_instance_agreement(D[0], D[1])
    assert n == 5000 and abs(k / n - 0.5) < 0.04           # sd 0.007
    assert cross_instance_agreement(D[0], D[0]) == (5000, 5000)


def test_data_model_cell_rejects_an_unknown_init_mode():
    with pytest.raises(ValueError, match="init_mode"):
        DataModelCell(m=5, p=10, s=2, n=3, init_mode="exact", init=0.1)
    assert DataModelCell(m=5, p=10, s=2, n=3, init_mode="distance", init=0.1).init_distance == 0.1
    assert DataModelCell(m=5, p=10, s=2, n=3, init_mode="scale", init=0.1).init_distance is None


def test_relative_deviation():
    a = torch.ones(2, 3, 4, dtype=torch.float64)
    b = a.clone()
    b[1] *= 2.0
    np.testing.assert_allclose(relative_deviation(a, b), [0.0, 0.5])
    np.testing.assert_allclose(relative_deviation(a, torch.zeros_like(a)), [np.sqrt(12)] * 2)   # ‖b‖ = 0: absolute


def test_closed_form_at_T1_matches_plain_autograd_and_udl():
    inst = make_instances(20, 40, 3, 50, seed=SEED, batch=2)
    closed = closed_form_T1(inst.X, inst.D0, lam=0.2, step=0.2)
    plain = plain_autograd(inst.X, inst.D0, lam=0.2, step=0.2, T=1)
    lean = gradients(inst.X, inst.D0, lam=0.2, step=0.2, T=1)
    for k in ("ae-ls", "ae-lasso"):
        assert relative_deviation(closed[k], plain[k]).max() < 1e-12
    for k in closed:
        assert relative_deviation(lean[k], closed[k]).max() < 1e-12
    # the closed form is not trivially g_dec: the encoder's term is a sizeable part of g_ae-ls
    assert relative_deviation(closed["ae-ls"], closed["dec"]).min() > 1e-2


def test_plain_autograd_matches_the_lean_backward_and_sees_a_missing_mask():
    inst = make_instances(20, 40, 3, 50, seed=SEED, batch=2)
    plain = plain_autograd(inst.X, inst.D0, lam=0.2, step=0.2, T=5)
    lean = gradients(inst.X, inst.D0, lam=0.2, step=0.2, T=5, kinds=("ae-ls", "ae-lasso"))
    for k in plain:
        assert relative_deviation(lean[k], plain[k]).max() < 1e-12
    with mutated("no-active-set-mask"):
        bad = gradients(inst.X, inst.D0, lam=0.2, step=0.2, T=5, kinds=("ae-ls",))
    assert relative_deviation(bad["ae-ls"], plain["ae-ls"]).max() > 1e-3
