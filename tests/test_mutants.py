"""The mutant catalogue (udl.engine.mutants): every mutant changes what its code computes, on every
path that code is reached by, and its undo restores the original exactly."""

from __future__ import annotations

import pickle
import sys
import threading
import types

import pytest
import torch

from udl import core
from udl.core.unrolled import function
from udl.engine import mutants
from udl.engine.mutants import MUTANTS, get, mutated
from udl.engine.mutants import _lean
from udl.engine.mutants.registry import AREAS, NAME_PATTERN, patch

LAM, STEP, T = 0.1, 0.2, 20
DEPTHS = [1, 3, T]


@pytest.fixture(scope="module")
def inst():
    """A tiny float64 instance batch (m = 8, p = 10, s = 2, n = 12, 2 instances)."""
    return core.make_instances(8, 10, 2, 12, batch=2, init_scale=0.05, seed=20240)


def _lean_codes(X, D, **kwargs):
    """Z_T of the reference ISTA through its lean autograd function (D requires grad)."""
    with torch.enable_grad():
        return core.ista(X, D.clone().requires_grad_(True), **kwargs).detach()


def _lean_backward(X, D):
    """∂/∂D of ½‖X − D Z_T‖² through the lean autograd function (UnrolledISTA.backward)."""
    D_ = D.clone().requires_grad_(True)
    with torch.enable_grad():
        Z = core.ista(X, D_, lam=LAM, step=STEP, T=T)
        (0.5 * (X - D_ @ Z).square().sum()).backward()
    return D_.grad


def _grad(inst, kind, encoder=None):
    return core.gradients(inst.X, inst.D0, lam=LAM, step=STEP, T=T, encoder=encoder)[kind]


def _sweep(inst, kind):
    return core.gradient_sweep(inst.X, inst.D0, lam=LAM, step=STEP, depths=DEPTHS)[kind]


def _train(inst, kind):
    return core.train(inst.X, inst.D0, kind=kind, lam=LAM, step=STEP, T=T, lr=0.5, n_steps=3).D


def _enc(encoder, inst, T=T):
    return encoder(inst.X, inst.D0, lam=LAM, step=STEP, T=T)


#: Per mutant, what it must change: {path: quantity} computed on the tiny instance. Each path by
#: which the mutated code is reached is listed, so that a binding left unpatched fails the test.
PROBES = {
    "threshold-lambda": lambda i: {
        "ISTA layers": _enc(core.ISTA(), i), "lean codes": _lean_codes(i.X, i.D0, lam=LAM, step=STEP, T=T),
        "lean estimators": _grad(i, "ae-ls"), "g_dec (codes path)": _grad(i, "dec"), "sweep": _sweep(i, "ae-ls")},
    "data-term-unscaled": lambda i: {
        "ISTA layers": _enc(core.ISTA(), i), "FISTA": _enc(core.FISTA(), i),
        "lean codes": _lean_codes(i.X, i.D0, lam=LAM, step=STEP, T=T), "lean estimators": _grad(i, "ae-ls"),
        "sweep": _sweep(i, "dec")},
    "soft-in-hard-threshold": lambda i: {"hard-threshold codes": _enc(core.HardThresholdISTA(tau=0.05), i)},
    "hard-in-lambda-decay": lambda i: {"λ-decay codes": _enc(core.LambdaDecayISTA(decay=0.9), i)},
    "decay-direction": lambda i: {"λ-decay codes": _enc(core.LambdaDecayISTA(decay=0.9), i)},
    "truncated-backprop": lambda i: {
        "lean estimators": _grad(i, "ae-ls"), "sweep": _sweep(i, "ae-lasso"), "autograd function": _lean_backward(i.X, i.D0)},
    "no-active-set-mask": lambda i: {
        "lean estimators": _grad(i, "ae-lasso"), "sweep": _sweep(i, "ae-ls"), "autograd function": _lean_backward(i.X, i.D0)},
    "ae-lasso-without-l1": lambda i: {"lean estimators": _grad(i, "ae-lasso"), "sweep": _sweep(i, "ae-lasso")},
    "dec-through-code": lambda i: {
        "lean estimators": _grad(i, "dec"), "sweep": _sweep(i, "dec"), "autograd (FISTA)": _grad(i, "dec", core.FISTA()),
        "training": _train(i, "dec")},
    "ae-detached-code": lambda i: {
        "lean estimators": _grad(i, "ae-ls"), "sweep": _sweep(i, "ae-lasso"),
        "autograd (FISTA)": _grad(i, "ae-ls", core.FISTA()), "training": _train(i, "ae-ls")},
    "oracle-sign": lambda i: {"g*": core.oracle_gradient(i.X, i.D0, i.Z_star)},
    "lasso-unconverged": lambda i: {"ĝ": core.lasso_gradient(i.X, i.D0, lam=LAM)[0],
                                    "Ẑ": core.lasso_solve(i.X, i.D0, lam=LAM).Z},
    "no-renormalise": lambda i: {"training": _train(i, "dec")},
    "omega-rescaled": lambda i: {"D̃": core.stationary_dictionary(i.X, i.Z_star, omega=0.5)},
    "beta-without-inverse": lambda i: {"β": core.reconstruction_coefficients(i.X, i.Z_star, i.Z_star[..., :3], omega=0.5)},
    "shared-seed": lambda i: {"X": core.make_instances(8, 10, 2, 12, batch=3, seed=7).X,
                              "X (seed list)": core.make_instances(8, 10, 2, 12, seed=[5, 6]).X},
    "shared-signs": lambda i: {"Z*": core.make_instances(8, 10, 3, 12, batch=2, seed=7).Z_star},
    "amplitude-law": lambda i: {"Z*": core.make_instances(8, 10, 3, 12, batch=2, seed=7).Z_star},
    "lean-skips-first-threshold": lambda i: {
        "lean codes": _lean_codes(i.X, i.D0, lam=LAM, step=STEP, T=2), "lean estimators": _grad(i, "ae-ls"),
        "sweep": _sweep(i, "ae-ls")},
    "sweep-depth-off-by-one": lambda i: {"sweep": _sweep(i, "dec")},
    "gram-unscaled": lambda i: {
        "ISTA layers": _enc(core.ISTA(), i, T=3), "lean codes": _lean_codes(i.X, i.D0, lam=LAM, step=STEP, T=3),
        "sweep": _sweep(i, "ae-ls")},
    "init-distance-ignored": lambda i: {"D0": core.make_instances(8, 10, 2, 12, init_distance=0.3, seed=7).D0},
}


def _values(probe, inst) -> dict:
    return {k: v.detach().clone() for k, v in probe(inst).items()}


def test_every_mutant_has_a_probe_and_the_catalogue_covers_every_area():
    assert set(PROBES) == set(MUTANTS)
    assert len(MUTANTS) >= 14
    assert {m.area for m in MUTANTS.values()} == set(AREAS)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_mutant_is_well_described(name):
    m = MUTANTS[name]
    assert NAME_PATTERN.match(m.name) and m.name == name and m.area in AREAS
    assert m.bug.strip().endswith(".") and m.why.strip() and m.code.startswith("udl.core.")


@pytest.mark.parametrize("name", sorted(PROBES))
def test_a_mutant_changes_every_path_and_its_undo_restores_it_exactly(name, inst):
    probe = PROBES[name]
    before = _values(probe, inst)
    with mutated(name) as mutant:
        assert mutant is MUTANTS[name]
        during = _values(probe, inst)
    after = _values(probe, inst)
    for path, value in before.items():
        change = float((during[path] - value).abs().max())
        assert during[path].shape == value.shape and change > 1e-6, f"{name}: {path} unchanged ({change:.3g})"
        assert torch.equal(after[path], value), f"{name}: {path} not restored"


def _namespaces() -> dict:
    """Every attribute of every loaded udl module and of the classes they define, by identity."""
    snap = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "udl" or name.startswith("udl.")):
            continue
        for key, value in list(vars(module).items()):
            snap[(name, key)] = id(value)
            if isinstance(value, type) and value.__module__ == name:
                snap.update({(f"{name}.{key}", k): id(v) for k, v in list(vars(value).items())})
    return snap


def test_installing_and_removing_every_mutant_leaves_every_namespace_as_it_was(inst):
    core.gradient_sweep, core.lasso_gradient, core.make_instances   # noqa: B018 - facade names cached
    before = _namespaces()
    for name in MUTANTS:
        with mutated(name):
            pass
    for name in MUTANTS:                           # and again, in reverse: helpers shared by mutants intact
        with mutated(name):
            pass
    after = _namespaces()
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, changed[:10]


def test_the_numbers_before_and_after_on_one_example(inst):
    """One mutant in numbers: the threshold λ instead of αλ zeroes more of the code."""
    def nonzeros():
        return int((core.ista(inst.X, inst.D0, lam=LAM, step=STEP, T=T) != 0).sum())

    before = nonzeros()
    with mutated("threshold-lambda"):
        during = nonzeros()
    assert during < before and nonzeros() == before


def test_unknown_mutant_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown mutant 'nope' \(known: .*threshold-lambda"):
        get("nope")
    with pytest.raises(ValueError, match="unknown mutant"):
        with mutated("nope"):
            pass


def test_an_error_inside_the_block_still_undoes(inst):
    clean = core.oracle_gradient(inst.X, inst.D0, inst.Z_star)
    with pytest.raises(RuntimeError, match="inside"):
        with mutated("oracle-sign"):
            raise RuntimeError("inside")
    assert torch.equal(core.oracle_gradient(inst.X, inst.D0, inst.Z_star), clean)


def test_mutated_none_runs_unmutated_and_mutants_nest(inst):
    clean = _grad(inst, "ae-ls")
    with mutated(None) as nothing:
        assert nothing is None and torch.equal(_grad(inst, "ae-ls"), clean)
    with mutated("ae-detached-code"):
        detached = _grad(inst, "ae-ls")
        with mutated("threshold-lambda"):
            both = _grad(inst, "ae-ls")
        with mutated(None):                         # nested unmutated block: still under the outer mutant
            assert torch.equal(_grad(inst, "ae-ls"), detached)
        assert torch.equal(_grad(inst, "ae-ls"), detached)
    assert not torch.equal(both, detached) and torch.equal(_grad(inst, "ae-ls"), clean)


def test_patch_reaches_copies_made_by_from_imports_and_lazy_facades():
    import udl
    from udl.core import estimators

    copy = types.ModuleType("probe_copy")          # a module outside udl that did `from ... import`
    copy.oracle_gradient = estimators.oracle_gradient
    sys.modules["probe_copy"] = copy
    try:
        original = estimators.oracle_gradient
        with mutated("oracle-sign"):
            bound = {estimators.oracle_gradient, core.oracle_gradient, udl.oracle_gradient, copy.oracle_gradient}
            assert len(bound) == 1 and original not in bound
            assert udl.core.__dict__["oracle_gradient"] is not original
        assert estimators.oracle_gradient is core.oracle_gradient is udl.oracle_gradient is copy.oracle_gradient \
            is original
    finally:
        del sys.modules["probe_copy"]


def test_undo_also_restores_a_facade_that_cached_the_mutant_meanwhile():
    from udl.core import estimators

    def bug(*args):
        return None

    original = estimators.lasso_gradient
    facade = sys.modules["udl.core"]
    facade.__dict__.pop("lasso_gradient", None)     # not cached yet: patch() must materialise it first
    undo = patch(estimators, "lasso_gradient", bug)
    assert core.lasso_gradient is bug
    undo()
    assert core.lasso_gradient is original and estimators.lasso_gradient is original


def test_the_dense_adjoint_and_the_per_depth_sweep_match_the_lean_code(inst):
    """The plain re-implementations the backward mutants carry their bugs in agree with the lean
    code when unmutated (else a mutant's effect would partly be a re-implementation error)."""
    lam = torch.full((1, 1), LAM, dtype=inst.X.dtype)
    lean = core.gradient_sweep(inst.X, inst.D0, lam=LAM, step=STEP, depths=DEPTHS)
    plain = _lean.per_depth_sweep(inst.X, inst.D0, lam=lam, step=STEP, depths=DEPTHS, kinds=core.KINDS)
    for k in core.KINDS:
        torch.testing.assert_close(plain[k], lean[k], rtol=1e-10, atol=1e-12)
    reference = function.lean_gradients(inst.X, inst.D0, lam=lam, step=STEP, T=T, kinds=core.KINDS)[0]
    undo = patch(function, "adjoint_pass", lambda reader, A, a_T, T_: _lean.dense_adjoint(reader, A, a_T, T_))
    try:
        dense = function.lean_gradients(inst.X, inst.D0, lam=lam, step=STEP, T=T, kinds=core.KINDS)[0]
    finally:
        undo()
    for k in core.KINDS:
        torch.testing.assert_close(dense[k], reference[k], rtol=1e-10, atol=1e-12)


def test_a_mutated_block_excludes_unmutated_blocks_of_other_threads(inst):
    """A mutant patches process-wide state: an unmutated block in another thread waits for it."""
    clean = core.oracle_gradient(inst.X, inst.D0, inst.Z_star)
    seen = []
    inside, release = threading.Event(), threading.Event()

    def other():
        inside.wait()
        with mutated(None):
            seen.append(core.oracle_gradient(inst.X, inst.D0, inst.Z_star))

    worker = threading.Thread(target=other)
    worker.start()
    with mutated("oracle-sign"):
        inside.set()
        worker.join(timeout=0.2)                    # it cannot enter while the mutant is installed
        blocked = worker.is_alive()
    worker.join()
    assert blocked and torch.equal(seen[0], clean)


def test_mutant_names_pickle_through_a_context():
    from udl.engine.anatomy import Context

    ctx = pickle.loads(pickle.dumps(Context(mutant="oracle-sign")))
    assert ctx.mutant == "oracle-sign" and mutants.get(ctx.mutant).area == "estimators"
