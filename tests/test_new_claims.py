"""Unit tests of the helpers of claims II.5 (stability) and II.6 (dictionary floor).

The claims themselves (PASS at quick, control FAILS) are run by tests/test_claims.py through discovery.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from claims import ii5_stability as ii5
from claims import ii6_dictionary_floor as ii6
from udl import core


# --------------------------------------------------------------------------- II.5 helpers
def test_ratio_grid_parses_and_rejects():
    assert ii5.ratio_grid(SimpleNamespace(ratios="0.8,1.1")) == [0.8, 1.1]
    for bad in ("", "0.8,x", "1.1,0.8", "0,1", "0.9,0.9"):
        with pytest.raises(ValueError, match="ratios"):
            ii5.ratio_grid(SimpleNamespace(ratios=bad))


def test_restricted_spectrum_matches_per_example_eigenvalues():
    inst = core.make_instances(12, 20, 3, 7, seed=[4242, 4343])
    Z = inst.Z_star.clone()
    Z[0, :, 0] = 0
    Z[0, 5, 0] = 1.0                                     # one example with a single atom
    lo, hi = ii5.restricted_spectrum(inst.D_star, Z)
    for b in range(2):
        evs = [torch.linalg.eigvalsh(inst.D_star[b][:, Z[b, :, k] != 0].mT @ inst.D_star[b][:, Z[b, :, k] != 0])
               for k in range(Z.shape[-1])]
        assert float(lo[b]) == pytest.approx(min(float(e.min()) for e in evs), rel=1e-12)
        assert float(hi[b]) == pytest.approx(max(float(e.max()) for e in evs), rel=1e-12)


def test_restricted_spectrum_rejects_empty_codes():
    inst = core.make_instances(8, 10, 2, 3, seed=[1234])
    Z = inst.Z_star.clone()
    Z[..., 1] = 0
    with pytest.raises(ValueError, match="non-empty support"):
        ii5.restricted_spectrum(inst.D_star, Z)


def test_predicted_factor_values():
    assert ii5.predicted_factor(1.0, 0.5, 1.5) == pytest.approx(0.5)
    assert ii5.predicted_factor(1.5, 0.5, 1.5) == pytest.approx(1.25)          # |1 − 1.5·1.5|
    assert ii5.predicted_factor(0.2, 0.9, 1.1) == pytest.approx(0.82)          # |1 − 0.2·0.9|
    t = ii5.predicted_factor(2.0, torch.tensor([1.0]), torch.tensor([1.0]))
    assert float(t) == pytest.approx(1.0)                                       # the boundary r = 2


def test_predicted_factor_is_the_measured_rate_of_ista_on_a_settled_support():
    # one atom per example (D_SᵀD_S = 1): the code converges at |1 − α| per layer, the prediction
    inst = core.make_instances(200, 220, 1, 6, init_scale=0.0, seed=[777])
    lo, hi = ii5.restricted_spectrum(inst.D_star, inst.Z_star)
    for alpha in (0.5, 1.6):
        path = core.ISTA()(inst.X, inst.D_star, lam=1.2, step=alpha, T=16, return_path=True)
        steps = torch.linalg.matrix_norm(path[1:] - path[:-1])[:, 0].numpy()
        measured = (steps[14] / steps[6]) ** (1 / 8)
        assert measured == pytest.approx(float(ii5.predicted_factor(alpha, lo, hi)[0]), rel=1e-6)


def test_convergence_factor_geometric_blowup_and_rounding():
    T1, T2 = 10, 30
    assert ii5.convergence_factor(0.8 ** T1, 0.8 ** T2, T1, T2) == pytest.approx(0.8)
    assert ii5.convergence_factor(1.0, 1.5 ** 20, T1, T2) == pytest.approx(1.5)
    assert np.isinf(ii5.convergence_factor(1.0, np.inf, T1, T2))
    assert np.isnan(ii5.convergence_factor(1.0, 1e-16, T1, T2))


def test_rate_ratios():
    r = ii5.rate_ratios([0.6, 0.36, np.nan, np.inf, 1.0], [0.6, 0.6, 0.6, 0.6, 0.6])
    assert r[0] == pytest.approx(1.0)
    assert r[1] == pytest.approx(2.0)                   # ρ²: twice as fast
    assert r[2] == ii5.FAST_RATIO and r[3] == ii5.SLOW_RATIO
    assert r[4] == pytest.approx(0.0)                   # no convergence


def test_squashed_log10_is_monotone_continuous_and_finite():
    x = np.array([1e-12, 1e-3, 0.5, 1.0, 2.0, 1e10, 1e300, np.inf, np.nan, 0.0])
    y = ii5.squashed_log10(x)
    assert np.all(np.isfinite(y))
    assert np.all(np.diff(y[:7]) > 0)
    assert y[2] == pytest.approx(math.log10(0.5)) and y[3] == pytest.approx(0.0)
    assert y[5] == pytest.approx(math.log10(11.0))
    assert y[-2] == y[-3] > y[6] > y[5]
    assert y[-1] == pytest.approx(ii5.LOG10_FLOOR)


def test_converging():
    got = ii5.converging([1e-5, 0.5, 0.5, 0.5], [0.99, 0.9, 0.99, np.nan])
    assert got.tolist() == [True, True, False, True]


def test_boundary_brackets():
    runs = pd.DataFrame({"cell": 0, "instance": [0, 0, 0, 1, 1, 1, 2, 2],
                         "r": [1.6, 1.9, 2.1, 1.6, 1.9, 2.1, 1.6, 2.1],
                         "converged": [True, True, False, True, False, False, False, False]})
    br = ii5.boundary_brackets(runs).set_index("instance")
    assert (br.loc[0, "r_lo"], br.loc[0, "r_hi"]) == (1.9, 2.1)
    assert (br.loc[1, "r_lo"], br.loc[1, "r_hi"]) == (1.6, 1.9)
    assert math.isnan(br.loc[2, "r_lo"]) and br.loc[2, "r_hi"] == 1.6
    assert br["monotone"].all()
    runs2 = pd.DataFrame({"cell": 0, "instance": 0, "r": [1.6, 1.9, 2.1], "converged": [True, False, True]})
    assert not ii5.boundary_brackets(runs2)["monotone"].iloc[0]


def test_instability_index():
    assert ii5.instability_index(np.array([0.1, 0.08, 0.05]), False) == pytest.approx(0.0)
    assert ii5.instability_index(np.array([0.1, 0.2, 0.15]), False) == pytest.approx(math.log10(2))
    blown = ii5.instability_index(np.array([0.1, 0.12, np.nan]), True)
    assert blown == pytest.approx(math.log10(1.2) + ii5.BLOWUP_BONUS)


def test_unmasked_backward_control_keeps_the_forward_and_breaks_the_backward():
    inst = core.make_instances(20, 30, 2, 8, init_scale=0.02, seed=[31337])
    kw = {"lam": 0.3, "step": 0.2, "T": 15}
    control = ii5._MasklessBackwardISTA()
    with torch.no_grad():
        # the same forward up to the summation order of the layer (baddbmm in ISTA.layer)
        assert torch.allclose(control(inst.X, inst.D0, **kw), core.ISTA()(inst.X, inst.D0, **kw),
                              rtol=1e-12, atol=1e-14)
    good = core.gradients(inst.X, inst.D0, kinds=("dec", "ae-ls"), **kw)
    bad = core.gradients(inst.X, inst.D0, kinds=("dec", "ae-ls"), encoder=control, **kw)
    assert torch.allclose(good["dec"], bad["dec"], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(good["ae-ls"], bad["ae-ls"], rtol=1e-3)


# --------------------------------------------------------------------------- II.6 helpers
def _floor_cell(**kw):
    base = {"s_lo": 2, "s_hi": 8, "n_s": 3}
    return SimpleNamespace(**{**base, **kw})


def test_sparsity_grid():
    assert ii6.sparsity_grid(_floor_cell()) == [2, 4, 8]
    assert ii6.sparsity_grid(_floor_cell(n_s=2)) == [2, 8]
    assert ii6.sparsity_grid(_floor_cell(s_lo=10, s_hi=40)) == [10, 20, 40]
    for bad in ({"s_lo": 4, "s_hi": 2}, {"n_s": 1}, {"s_lo": 0}):
        with pytest.raises(ValueError):
            ii6.sparsity_grid(_floor_cell(**bad))


def test_decay_schedule():
    assert ii6.decay_schedule(0, 40, 0.9, 0.5) == 1.0
    assert ii6.decay_schedule(10, 40, 0.9, 0.5) == pytest.approx(0.95)
    assert ii6.decay_schedule(20, 40, 0.9, 0.5) == pytest.approx(0.9)
    assert ii6.decay_schedule(39, 40, 0.9, 0.5) == pytest.approx(0.9)
    assert ii6.decay_schedule(0, 40, 0.9, 0.0) == pytest.approx(0.9)
    betas = [ii6.decay_schedule(l, 40, 0.9, 0.5) for l in range(40)]
    assert all(b >= c for b, c in itertools.pairwise(betas))
    for bad in ({"beta_end": 0.0}, {"beta_end": 1.2}, {"frac": 1.5}):
        args = {"beta_end": 0.9, "frac": 0.5, **bad}
        with pytest.raises(ValueError):
            ii6.decay_schedule(1, 10, args["beta_end"], args["frac"])


def test_decay_encoder():
    assert type(ii6._decay_encoder(1.0)) is core.ISTA
    enc = ii6._decay_encoder(0.9)
    assert isinstance(enc, core.LambdaDecayISTA) and enc.decay == 0.9


def test_plateaus_and_exponents():
    rows = []
    for inst, c in ((0, 1.0), (1, 2.0)):
        for s in (2, 4, 8):
            floor = c * 1e-3 * s ** 1.5
            for step, e in enumerate([0.15, 0.05, 2 * floor, floor * 1.01, floor * 1.001, floor, floor]):
                rows.append({"cell": 0, "instance": inst, "s": s, "train_step": step, "dict_error": e})
    t = pd.DataFrame(rows)
    pl = ii6.plateaus(t, by=("cell", "instance", "s"))
    assert pl["plateau"].iloc[0] == pytest.approx(1e-3 * 2 ** 1.5)
    assert pl["drift"].max() == pytest.approx(0.01)
    slopes = ii6.floor_exponents(pl)
    assert slopes.to_numpy() == pytest.approx([1.5, 1.5])
