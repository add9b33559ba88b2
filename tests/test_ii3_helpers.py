"""The helpers of the II.3 claims (claims/ii3_gradient_bias.py): the crossover of an ordering along a
sweep, the closed forms of the estimators on the lasso path at D = D*, and the certificate of ĝ."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from claims import ii3_gradient_bias as ii3
from udl import core
from udl.engine import CertificateError
from udl.engine.mutants import mutated


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny problems over hundreds of layers: one thread (many threads only contend here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_crossover_interpolates_in_log_x():
    x = [0.1, 0.2, 0.4]
    star, flag = ii3.crossover(x, [1.0, -1.0, -2.0])         # crossing halfway between 0.1 and 0.2 in log x
    assert flag == 0 and star == pytest.approx(0.1 * math.sqrt(2.0))


def test_crossover_takes_the_last_crossing_and_flags_the_grid_ends():
    x = [0.1, 0.2, 0.4, 0.8]
    assert ii3.crossover(x, [1.0, -1.0, 1.0, -1.0])[0] == pytest.approx(0.4 * math.sqrt(2.0))
    assert ii3.crossover(x, [-1.0, -1.0, -1.0, -1.0]) == (pytest.approx(0.1), -1)   # holds on the whole grid
    assert ii3.crossover(x, [1.0, 1.0, 1.0, 0.0]) == (pytest.approx(0.8), 1)         # never holds (0 is not < 0)


def test_crossover_below_mirrors_above():
    x = [0.05, 0.1, 0.2]
    star, flag = ii3.crossover(x, [-2.0, -1.0, 1.0], holds="below")
    assert flag == 0 and star == pytest.approx(0.1 * math.sqrt(2.0))
    assert ii3.crossover(x, [-1.0, -1.0, -1.0], holds="below") == (pytest.approx(0.2), 1)
    assert ii3.crossover(x, [1.0, 1.0, 1.0], holds="below") == (pytest.approx(0.05), -1)
    with pytest.raises(ValueError, match="holds"):
        ii3.crossover(x, [1.0, 1.0, 1.0], holds="left")


def test_lam_grid_contains_the_decision_lambda():
    assert ii3._lam_grid(0.05, 0.4, 7, 0.2)[4] == 0.2                # snapped onto the grid value
    grid = ii3._lam_grid(0.1, 0.3, 2, 0.2)                           # added when missing
    assert list(grid) == [0.1, 0.2, 0.3]


@pytest.fixture(scope="module")
def at_truth():
    inst = core.make_instances(30, 45, 3, 40, init_distance=0.0, seed=[10201, 10202])
    return inst


@pytest.mark.parametrize("lam", [0.1, 0.2])
def test_estimators_follow_the_lasso_path_at_the_truth(at_truth, lam):
    """Converged ISTA at D*: g_ae-ls = λ²C and g_dec = g_ae-lasso = λA − λ²C (relative 1e-8)."""
    X, D = at_truth.X, at_truth.D_star
    g, Z = core.gradients(X, D, lam=lam, step=0.2, T=400, return_code=True)
    path = ii3.lasso_path_gradients(D, at_truth.Z_star, Z, lam)
    assert bool(path["superset"].all())
    for k in core.KINDS:
        dev = torch.linalg.matrix_norm(g[k] - path[k]) / torch.linalg.matrix_norm(path[k])
        assert float(dev.max()) < 1e-8, (k, dev)
    # the forms differ in what the claim is about: the λA term is absent from g_ae-ls
    assert float(torch.linalg.matrix_norm(path["ae-ls"]).max()) < 0.5 * float(torch.linalg.matrix_norm(path["dec"]).min())


def test_the_lasso_path_form_of_g_dec_rejects_the_least_squares_gradient(at_truth):
    """A g_dec computed as g_ae-ls (the dec-through-code bug) is O(1) away from λA − λ²C."""
    X, D = at_truth.X, at_truth.D_star
    with mutated("dec-through-code"):
        g, Z = core.gradients(X, D, lam=0.2, step=0.2, T=400, return_code=True)
    path = ii3.lasso_path_gradients(D, at_truth.Z_star, Z, 0.2)
    dev = torch.linalg.matrix_norm(g["dec"] - path["dec"]) / torch.linalg.matrix_norm(path["dec"])
    assert float(dev.min()) > 0.1


def test_uncertified_lasso_gradient_raises_certificate_error():
    inst = core.make_instances(30, 45, 3, 20, seed=[10203])
    g_hat, _, kkt = ii3._certified_lasso_gradient(inst.X, inst.D0, 0.2)
    assert float(kkt.max()) <= ii3.HAT_TOL and np.isfinite(float(g_hat.abs().max()))
    with mutated("lasso-unconverged"), pytest.raises(CertificateError, match="KKT violation"):
        ii3._certified_lasso_gradient(inst.X, inst.D0, 0.2)
