"""udl.train: dictionary learning with a chosen gradient estimator (Thm II.2 set-up), Adam,
weight decay without normalisation (Thm II.4b set-up), minibatches, and the trajectory."""
import pytest
import torch

import udl

LAM, STEP = 0.2, 0.2


def _small(batch=1, n=100, seed=0, init_scale=0.1):
    return udl.make_instances(10, 15, 2, n, init_scale=init_scale, batch=batch, seed=seed)


def test_gd_with_g_dec_contracts_the_dictionary_error():
    # Thm II.2 in miniature: m=30, p=40, s=2 (incoherent enough), λ=0.05 (small neighbourhood),
    # step η = p/(4s) = 5 on the mean gradient, n = 500 examples. Measured over seeds 0-2: the
    # error falls by a factor 41-60 in 40 steps (0.50 -> ~0.01); 20 leaves a margin.
    m, p, s = 30, 40, 2
    inst = udl.make_instances(m, p, s, 500, init_scale=0.1, seed=0)
    tr = udl.train(inst.X, inst.D0, kind="dec", lam=0.05, step=STEP, T=100, lr=p / (4 * s), n_steps=40,
                   D_star=inst.D_star, Z_star=inst.Z_star, record_every=10)
    err = tr.dict_error[:, 0]
    torch.testing.assert_close(err[0], inst.init_error[0])
    assert float(err[-1]) < float(err[0]) / 20, err
    assert bool((err[1:] < err[:-1]).all()), err            # monotone over the recorded steps
    assert float(tr.loss[-1, 0]) < float(tr.loss[0, 0]) / 10
    assert float(tr.code_error[-1, 0]) < float(tr.code_error[0, 0])
    assert float(tr.dict_error_max[-1, 0]) < float(tr.dict_error_max[0, 0])


def test_one_gd_step_is_the_normalised_update():
    inst = _small(batch=2)
    lr = 0.7
    for kind in udl.KINDS:
        tr = udl.train(inst.X, inst.D0, kind=kind, lam=LAM, step=STEP, T=10, lr=lr, n_steps=1)
        g = udl.gradient(inst.X, inst.D0, kind=kind, lam=LAM, step=STEP, T=10)
        torch.testing.assert_close(tr.D, udl.normalize_columns(inst.D0 - lr * g), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(tr.grad_norm[0], torch.linalg.matrix_norm(g), rtol=1e-12, atol=1e-14)


def test_one_step_with_weight_decay_and_no_normalisation():
    inst = _small(batch=2)
    lr, w = 0.7, 0.3
    tr = udl.train(inst.X, inst.D0, kind="dec", lam=LAM, step=STEP, T=10, lr=lr, n_steps=1,
                   omega=w, normalize=False)
    g = udl.gradient(inst.X, inst.D0, kind="dec", lam=LAM, step=STEP, T=10)
    torch.testing.assert_close(tr.D, inst.D0 - lr * (g + w * inst.D0), rtol=1e-12, atol=1e-14)


def test_weight_decay_without_normalisation_reaches_the_stationary_dictionary():
    # Thm II.4b: for F(D) = ½‖X − DZ‖²/n + (ω/2)‖D‖² with Z = Z_T(D) held fixed,
    # D − X G⁻¹Zᵀ = ∇F · (ZZᵀ/n + ωI)⁻¹ exactly (G = ZᵀZ + nωI), so
    # ‖D − D̃‖_F ≤ ‖∇F‖_F / ω with ∇F = g_dec + ωD, which train records as grad_norm.
    inst = _small()
    n, w, T, step = 100, 0.2, 50, 0.1
    tr = udl.train(inst.X, inst.D0, kind="dec", lam=LAM, step=step, T=T, lr=1.0, omega=w,
                   normalize=False, n_steps=100, record_every=20)
    # columns are not renormalised
    norms = torch.linalg.vector_norm(tr.D, dim=-2)
    assert float((norms - 1).abs().max()) > 0.1
    # the update direction shrinks: training approaches a stationary point
    assert float(tr.grad_norm[-1, 0]) < 0.01 * float(tr.grad_norm[0, 0]), tr.grad_norm[:, 0]
    Z = udl.ista(inst.X, tr.D, lam=LAM, step=step, T=T)
    D_t = udl.stationary_dictionary(inst.X, Z, omega=n * w)
    gap = float(torch.linalg.norm(tr.D - D_t))
    assert gap <= float(tr.grad_norm[-1, 0]) / w * (1 + 1e-9), (gap, float(tr.grad_norm[-1, 0]) / w)
    assert gap < 0.01 * float(torch.linalg.norm(tr.D))


def test_weight_decay_shrinks_the_dictionary():
    inst = _small()
    kw = dict(kind="dec", lam=LAM, step=0.1, T=30, lr=1.0, normalize=False, n_steps=20)
    D_free = udl.train(inst.X, inst.D0, omega=0.0, **kw).D
    D_wd = udl.train(inst.X, inst.D0, omega=0.2, **kw).D
    assert float(torch.linalg.norm(D_wd)) < 0.9 * float(torch.linalg.norm(D_free))


def test_adam_runs_and_lowers_the_loss():
    inst = _small()
    tr = udl.train(inst.X, inst.D0, kind="ae-lasso", optimizer="adam", lam=LAM, step=STEP, T=20,
                   lr=1e-2, n_steps=30, D_star=inst.D_star, record_every=5)
    assert tr.loss.shape == (7, 1) and bool(torch.isfinite(tr.loss).all())
    assert float(tr.loss[-1, 0]) < 0.8 * float(tr.loss[0, 0]), tr.loss[:, 0]
    norms = torch.linalg.vector_norm(tr.D, dim=-2)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_adam_first_step_is_a_normalised_sign_step():
    # Adam's first update is lr·m̂/(√v̂ + ε) = lr·g/(|g| + ε) ≈ lr·sign(g)
    inst = _small()
    lr = 1e-3
    tr = udl.train(inst.X, inst.D0, kind="ae-ls", optimizer="adam", lam=LAM, step=STEP, T=10, lr=lr,
                   n_steps=1)
    g = udl.gradient(inst.X, inst.D0, kind="ae-ls", lam=LAM, step=STEP, T=10)
    expected = udl.normalize_columns(inst.D0 - lr * g / (g.abs() + 1e-8))
    torch.testing.assert_close(tr.D, expected, rtol=1e-6, atol=1e-9)


def test_minibatch_is_reproducible_with_the_same_seed():
    inst = _small(n=120)
    kw = dict(kind="dec", lam=LAM, step=STEP, T=20, lr=1.0, n_steps=6, batch_size=30, D_star=inst.D_star)
    a = udl.train(inst.X, inst.D0, seed=5, **kw)
    b = udl.train(inst.X, inst.D0, seed=5, **kw)
    c = udl.train(inst.X, inst.D0, seed=6, **kw)
    assert torch.equal(a.D, b.D) and torch.equal(a.dict_error, b.dict_error) and torch.equal(a.loss, b.loss)
    assert not torch.equal(a.D, c.D)
    # a minibatch step is not the full-batch step
    full = udl.train(inst.X, inst.D0, kind="dec", lam=LAM, step=STEP, T=20, lr=1.0, n_steps=6)
    assert not torch.allclose(a.D, full.D)
    # the loss is recorded on the full data set: at step 0 it equals the full-batch record
    torch.testing.assert_close(a.loss[0], full.loss[0])


def test_trajectory_shapes_and_contents():
    inst = _small(batch=3)
    tr = udl.train(inst.X, inst.D0, kind="ae-ls", lam=LAM, step=STEP, T=5, lr=0.5, n_steps=7,
                   record_every=3, D_star=inst.D_star, Z_star=inst.Z_star)
    assert isinstance(tr, udl.Trajectory)
    assert tr.steps.tolist() == [0, 3, 6, 7]
    for t in (tr.loss, tr.dict_error, tr.dict_error_max, tr.code_error, tr.grad_norm):
        assert t.shape == (4, 3)
    assert tr.D.shape == inst.D0.shape and not tr.D.requires_grad
    torch.testing.assert_close(tr.dict_error[0], inst.init_error)
    Z0 = udl.ista(inst.X, inst.D0, lam=LAM, step=STEP, T=5)
    torch.testing.assert_close(tr.loss[0], 0.5 * (inst.X - inst.D0 @ Z0).square().sum((-2, -1)) / 100)
    torch.testing.assert_close(tr.code_error[0], udl.code_error(Z0, inst.Z_star))
    # without ground truth the error trajectories are empty
    bare = udl.train(inst.X, inst.D0, kind="dec", lam=LAM, step=STEP, T=5, lr=0.5, n_steps=2)
    assert bare.dict_error.numel() == 0 and bare.code_error.numel() == 0 and bare.loss.shape == (3, 3)


def test_zero_steps_returns_the_start_and_leaves_inputs_alone():
    inst = _small()
    D0 = inst.D0.clone()
    calls = []
    tr = udl.train(inst.X, inst.D0, kind="dec", lam=LAM, step=STEP, T=5, lr=0.5, n_steps=0,
                   progress=calls.append)
    assert torch.equal(tr.D, D0) and tr.steps.tolist() == [0] and calls == []
    udl.train(inst.X, inst.D0, kind="dec", lam=LAM, step=STEP, T=5, lr=0.5, n_steps=4, progress=calls.append)
    assert calls == [1, 1, 1, 1] and torch.equal(inst.D0, D0)


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_batched_training_equals_per_instance_training(optimizer):
    inst = _small(batch=2)
    kw = dict(kind="ae-lasso", lam=LAM, step=STEP, T=10, lr=0.1, n_steps=5, optimizer=optimizer)
    both = udl.train(inst.X, inst.D0, **kw)
    for b in range(2):
        one = udl.train(inst.X[b], inst.D0[b], **kw)
        torch.testing.assert_close(both.D[b], one.D, rtol=1e-10, atol=1e-12)


def test_column_norms_are_recorded_after_every_step():
    inst = _small(batch=3)
    kw = dict(kind="dec", lam=LAM, step=STEP, T=5, lr=0.5, n_steps=3)
    tr = udl.train(inst.X, inst.D0, **kw)
    assert tr.col_norm_min.shape == tr.col_norm_max.shape == (4, 3)
    torch.testing.assert_close(tr.col_norm_min, torch.ones_like(tr.col_norm_min))
    torch.testing.assert_close(tr.col_norm_max, torch.ones_like(tr.col_norm_max))
    free = udl.train(inst.X, inst.D0, normalize=False, **kw)     # the norms drift without renormalisation
    norms = torch.linalg.vector_norm(free.D, dim=-2)
    torch.testing.assert_close(free.col_norm_min[-1], norms.amin(-1))
    torch.testing.assert_close(free.col_norm_max[-1], norms.amax(-1))
    assert float((free.col_norm_max - free.col_norm_min)[1:].min()) > 1e-6
