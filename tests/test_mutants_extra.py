"""The claims' extra mutants (udl.engine.mutants.encoder_extra, .instances_extra): each changes what
its code computes on every path that reaches it, and its undo restores the original exactly."""

from __future__ import annotations

import pytest
import torch

from udl import core
from udl.engine.mutants import MUTANTS, mutated

LAM, STEP, T = 0.1, 0.2, 20


@pytest.fixture(scope="module")
def inst():
    """A tiny float64 instance batch (m = 8, p = 10, s = 2, n = 12, 2 instances)."""
    return core.make_instances(8, 10, 2, 12, batch=2, init_scale=0.05, seed=20240)


def _lean_codes(inst):
    with torch.enable_grad():
        return core.ista(inst.X, inst.D0.clone().requires_grad_(True), lam=LAM, step=STEP, T=T).detach()


def _gram_probe(inst):
    return {"ISTA layers": core.ISTA()(inst.X, inst.D0, lam=LAM, step=STEP, T=T),
            "FISTA": core.FISTA()(inst.X, inst.D0, lam=LAM, step=STEP, T=T),
            "lean codes": _lean_codes(inst),
            "lean estimators": core.gradients(inst.X, inst.D0, lam=LAM, step=STEP, T=T)["ae-ls"],
            "sweep": core.gradient_sweep(inst.X, inst.D0, lam=LAM, step=STEP, depths=[1, 3, T])["ae-ls"]}


def _distance_probe(inst):
    return {"D0": core.make_instances(8, 10, 2, 12, batch=2, init_scale=0.0, init_distance=0.3, seed=7).D0}


PROBES = {"gram-unscaled": _gram_probe, "init-distance-ignored": _distance_probe}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_an_extra_mutant_changes_every_path_and_its_undo_restores_it(name, inst):
    before = {k: v.detach().clone() for k, v in PROBES[name](inst).items()}
    with mutated(name) as mutant:
        assert mutant is MUTANTS[name]
        during = {k: v.detach().clone() for k, v in PROBES[name](inst).items()}
    after = PROBES[name](inst)
    for path, value in before.items():
        change = float((during[path] - value).abs().max())
        assert during[path].shape == value.shape and change > 1e-6, f"{name}: {path} unchanged ({change:.3g})"
        assert torch.equal(after[path], value), f"{name}: {path} not restored"


def test_gram_unscaled_makes_ista_diverge_where_the_step_alpha_converges(inst):
    """‖D‖₂² > 2 here, so a unit step on the Gram term is past the stability limit 2/‖D‖₂²."""
    D, X = inst.D0, inst.X
    assert float(torch.linalg.matrix_norm(D, ord=2).square().min()) > 2
    good = core.ista(X, D, lam=LAM, step=STEP, T=200)
    with mutated("gram-unscaled"):
        bad = core.ista(X, D, lam=LAM, step=STEP, T=200)
    assert float(good.abs().max()) < 10 and not bool(torch.isfinite(bad).all() and bad.abs().max() < 1e6)


def test_init_distance_ignored_leaves_d0_at_init_scale_and_records_the_request():
    with mutated("init-distance-ignored"):
        inst = core.make_instances(20, 30, 3, 5, batch=2, init_scale=0.0, init_distance=0.2, seed=3)
    assert float(inst.delta.max()) < 1e-12 and inst.params["init_distance"] == 0.2
    good = core.make_instances(20, 30, 3, 5, batch=2, init_scale=0.0, init_distance=0.2, seed=3)
    assert torch.allclose(good.delta, torch.full_like(good.delta, 0.2))
