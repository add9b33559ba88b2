"""Bad input raises ValueError naming the argument and what is allowed, for every public function
it applies to: shape mismatch, non-finite values, lam < 0, step <= 0, T < 0, s > p, unknown kind,
unknown sign (and the other enumerated choices)."""
import math

import pytest
import torch

import udl

m, p, n = 5, 7, 9
F64 = torch.float64
X = torch.randn(m, n, dtype=F64, generator=torch.Generator().manual_seed(0))
D = udl.normalize_columns(torch.randn(m, p, dtype=F64, generator=torch.Generator().manual_seed(1)))
Z = torch.randn(p, n, dtype=F64, generator=torch.Generator().manual_seed(2))
X_rows = torch.randn(m + 1, n, dtype=F64)          # wrong m
Z_rows = torch.randn(p + 1, n, dtype=F64)          # wrong p
Z_cols = torch.randn(p, n + 1, dtype=F64)          # wrong n


def _with(A, value=math.nan):
    A = A.clone()
    A[0, 0] = value
    return A


X_nan, D_nan, Z_nan, X_inf, D_inf = _with(X), _with(D), _with(Z), _with(X, math.inf), _with(D, -math.inf)
ENC = dict(lam=0.2, step=0.2, T=3)

ENCODERS = [udl.ISTA(), udl.FISTA(), udl.HardThresholdISTA(0.1), udl.LambdaDecayISTA(0.9),
            udl.NoThreshold(), udl.UnscaledThresholdISTA()]


def _encoder_calls():
    """(id, callable(X, D, **kw)) for every public entry point of the encoder interface."""
    calls = [("ista", lambda X, D, **kw: udl.ista(X, D, **kw))]
    for kind in udl.KINDS:
        calls.append((f"gradient-{kind}", lambda X, D, kind=kind, **kw: udl.gradient(X, D, kind=kind, **kw)))
    calls.append(("gradients", lambda X, D, **kw: udl.gradients(X, D, **kw)))
    for enc in ENCODERS:
        calls.append((f"encoder-{enc.name}", lambda X, D, enc=enc, **kw: enc(X, D, **kw)))
        calls.append((f"iterates-{enc.name}", lambda X, D, enc=enc, **kw: list(enc.iterates(X, D, **kw))))
    calls.append(("train", lambda X, D, **kw: udl.train(X, D, kind="ae-ls", lr=0.1, n_steps=1, **kw)))
    return calls


ENCODER_CASES = [
    # (case id, X, D, encoder kwargs, regex on the message)
    ("X-rows", X_rows, D, ENC, r"\bX\b.*rows"),
    ("X-nan", X_nan, D, ENC, r"\bX\b must be finite"),
    ("X-inf", X_inf, D, ENC, r"\bX\b must be finite"),
    ("D-nan", X, D_nan, ENC, r"\bD0?\b must be finite"),
    ("D-inf", X, D_inf, ENC, r"\bD0?\b must be finite"),
    ("X-int", X.int(), D, ENC, r"\bX\b must be a floating"),
    ("X-1d", X[:, 0], D, ENC, r"\bX\b must have at least 2 dimensions"),
    ("batch", X.expand(2, m, n), D.expand(3, m, p), ENC, r"batch dimensions do not broadcast"),
    ("dtype", X.float(), D, ENC, r"same dtype"),
    ("lam<0", X, D, dict(ENC, lam=-0.1), r"\blam\b must be >= 0"),
    ("lam-nan", X, D, dict(ENC, lam=math.nan), r"\blam\b must be a finite"),
    ("lam-tensor<0", X, D, dict(ENC, lam=torch.tensor(-1.0)), r"\blam\b must be >= 0"),
    ("step=0", X, D, dict(ENC, step=0.0), r"\bstep\b must be > 0"),
    ("step<0", X, D, dict(ENC, step=-0.2), r"\bstep\b must be > 0"),
    ("step-inf", X, D, dict(ENC, step=math.inf), r"\bstep\b must be a finite"),
    ("T<0", X, D, dict(ENC, T=-1), r"\bT\b must be an integer >= 0"),
    ("T-float", X, D, dict(ENC, T=2.5), r"\bT\b must be an integer"),
    ("T-bool", X, D, dict(ENC, T=True), r"\bT\b must be an integer"),
]


@pytest.mark.parametrize("case", ENCODER_CASES, ids=[c[0] for c in ENCODER_CASES])
@pytest.mark.parametrize("call", _encoder_calls(), ids=[c[0] for c in _encoder_calls()])
def test_encoder_entry_points_reject_bad_input(call, case):
    _, fn = call
    _, Xc, Dc, kw, match = case
    with pytest.raises(ValueError, match=match):
        fn(Xc, Dc, **kw)


@pytest.mark.parametrize("fn", [
    lambda: udl.gradient(X, D, kind="dek", **ENC),
    lambda: udl.gradients(X, D, kinds=("dec", "ae"), **ENC),
    lambda: udl.train(X, D, kind="ae_ls", lr=0.1, n_steps=1, **ENC),
], ids=["gradient", "gradients", "train"])
def test_unknown_kind(fn):
    with pytest.raises(ValueError, match=r"\bkind\b must be one of 'dec', 'ae-lasso', 'ae-ls'"):
        fn()


def test_ae_kind_needs_a_differentiable_encoder():
    class Frozen(udl.ISTA):
        capabilities = frozenset({"soft_threshold"})

    with pytest.raises(ValueError, match=r"ae-lasso.*differentiable"):
        udl.gradient(X, D, kind="ae-lasso", encoder=Frozen(), **ENC)
    udl.gradient(X, D, kind="dec", encoder=Frozen(), **ENC)          # dec needs no backprop


# --------------------------------------------------------------------------------------------
# make_instances
# --------------------------------------------------------------------------------------------

MI = dict(m=6, p=8, s=2, n=10)
MAKE_CASES = [
    ("s>p", dict(MI, s=9), r"\bs\b must be an integer in \[1, 8\]"),
    ("s=0", dict(MI, s=0), r"\bs\b must be an integer in \[1, 8\]"),
    ("m=0", dict(MI, m=0), r"\bm\b must be an integer >= 1"),
    ("p-float", dict(MI, p=8.0), r"\bp\b must be an integer"),
    ("n<1", dict(MI, n=0), r"\bn\b must be an integer >= 1"),
    ("sign", dict(MI, sign="positive"), r"\bsign\b must be one of 'independent', 'shared'"),
    ("noise<0", dict(MI, noise=-0.1), r"\bnoise\b must be >= 0"),
    ("noise-nan", dict(MI, noise=math.nan), r"\bnoise\b must be a finite"),
    ("init_scale<0", dict(MI, init_scale=-1.0), r"\binit_scale\b must be >= 0"),
    ("init_distance>=2", dict(MI, init_distance=2.0), r"\binit_distance\b must be a number in \[0, 2\)"),
    ("init_distance<0", dict(MI, init_distance=-0.1), r"\binit_distance\b must be a number in \[0, 2\)"),
    ("init_distance-m1", dict(MI, m=1, init_distance=0.1), r"\binit_distance\b > 0 needs m >= 2"),
    ("amplitude-order", dict(MI, amplitude=(2.0, 1.0)), r"\bamplitude\b must be a pair \(a, b\)"),
    ("amplitude-negative", dict(MI, amplitude=(-1.0, 1.0)), r"\bamplitude\b must be a pair"),
    ("amplitude-scalar", dict(MI, amplitude=3.0), r"\bamplitude\b must be a pair"),
    ("amplitude-triple", dict(MI, amplitude=(1.0, 2.0, 3.0)), r"\bamplitude\b must be a pair"),
    ("dtype", dict(MI, dtype=torch.float16), r"\bdtype\b must be torch.float32 or torch.float64"),
    ("seed<0", dict(MI, seed=-1), r"\bseed\b must be >= 0"),
    ("seed-list-negative", dict(MI, seed=[3, -1]), r"\bseed\b must be a non-negative int"),
    ("seed-list-empty", dict(MI, seed=[]), r"\bseed\b must be a non-negative int"),
    ("seed-list-float", dict(MI, seed=[1.5]), r"\bseed\b must be a non-negative int"),
    ("seed-string", dict(MI, seed="abc"), r"\bseed\b must be a non-negative int"),
    ("batch-vs-seeds", dict(MI, seed=[1, 2], batch=3), r"\bbatch=3\b does not match the 2 seeds"),
    ("batch=0", dict(MI, batch=0), r"\bbatch\b must be an integer >= 1"),
]


@pytest.mark.parametrize("kw,match", [c[1:] for c in MAKE_CASES], ids=[c[0] for c in MAKE_CASES])
def test_make_instances_rejects_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        udl.make_instances(**kw)


# --------------------------------------------------------------------------------------------
# gradients, lasso
# --------------------------------------------------------------------------------------------

LASSO_CASES = [
    ("X-rows", dict(X=X_rows, D=D), r"\bX\b.*rows"),
    ("X-nan", dict(X=X_nan, D=D), r"\bX\b must be finite"),
    ("D-inf", dict(X=X, D=D_inf), r"\bD\b must be finite"),
    ("batch", dict(X=X.expand(2, m, n), D=D.expand(3, m, p)), r"batch dimensions do not broadcast"),
    ("dtype", dict(X=X.float(), D=D), r"same dtype"),
    ("lam=0", dict(X=X, D=D, lam=0.0), r"\blam\b must be > 0"),
    ("lam<0", dict(X=X, D=D, lam=-0.2), r"\blam\b must be > 0"),
    ("tol=0", dict(X=X, D=D, tol=0.0), r"\btol\b must be > 0"),
    ("max_iter=0", dict(X=X, D=D, max_iter=0), r"\bmax_iter\b must be an integer >= 1"),
]


@pytest.mark.parametrize("fn", [udl.lasso_solve, udl.lasso_gradient], ids=["lasso_solve", "lasso_gradient"])
@pytest.mark.parametrize("kw,match", [c[1:] for c in LASSO_CASES], ids=[c[0] for c in LASSO_CASES])
def test_lasso_rejects_bad_input(fn, kw, match):
    kw = dict(dict(lam=0.2), **kw)
    with pytest.raises(ValueError, match=match):
        fn(**kw)


def test_lasso_solve_rejects_bad_check_every():
    with pytest.raises(ValueError, match=r"\bcheck_every\b must be an integer >= 1"):
        udl.lasso_solve(X, D, lam=0.2, check_every=0)


CODE_CASES = [
    ("Z-rows", dict(X=X, D=D, Z=Z_rows), r"\bZ\b.*rows"),
    ("Z-cols", dict(X=X, D=D, Z=Z_cols), r"\bZ\b.*columns"),
    ("X-rows", dict(X=X_rows, D=D, Z=Z), r"\bX\b.*rows"),
    ("Z-nan", dict(X=X, D=D, Z=Z_nan), r"\bZ\b must be finite"),
    ("D-nan", dict(X=X, D=D_nan, Z=Z), r"\bD\b must be finite"),
]


@pytest.mark.parametrize("kw,match", [c[1:] for c in CODE_CASES], ids=[c[0] for c in CODE_CASES])
def test_oracle_gradient_rejects_bad_input(kw, match):
    with pytest.raises(ValueError, match=match.replace(r"\bZ\b", r"\bZ_star\b")):
        udl.oracle_gradient(kw["X"], kw["D"], kw["Z"])


@pytest.mark.parametrize("kw,match", [c[1:] for c in CODE_CASES], ids=[c[0] for c in CODE_CASES])
def test_decoder_gradient_rejects_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        udl.decoder_gradient(kw["X"], kw["D"], kw["Z"])


@pytest.mark.parametrize("kw,match", [c[1:] for c in CODE_CASES] + [(dict(X=X, D=D, Z=Z, lam=0.0),
                                                                     r"\blam\b must be > 0")],
                         ids=[c[0] for c in CODE_CASES] + ["lam=0"])
def test_kkt_violation_rejects_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        udl.kkt_violation(kw["X"], kw["D"], kw["Z"], kw.get("lam", 0.2))


@pytest.mark.parametrize("fn", [udl.soft_threshold, udl.hard_threshold], ids=["soft", "hard"])
def test_thresholds_reject_a_negative_threshold(fn):
    # P_b is defined for b >= 0 only; a negative b must not silently return v (or expand it)
    with pytest.raises(ValueError, match=r"\bb\b must be >= 0"):
        fn(X, -0.1)


@pytest.mark.parametrize("make,match", [
    (lambda: udl.HardThresholdISTA(tau=-0.1), r"\btau\b must be >= 0"),
    (lambda: udl.LambdaDecayISTA(decay=0.0), r"\bdecay\b must be in \(0, 1\]"),
    (lambda: udl.LambdaDecayISTA(decay=1.5), r"\bdecay\b must be in \(0, 1\]"),
    (lambda: udl.LambdaDecayISTA(lam_min=-1.0), r"\blam_min\b must be >= 0"),
], ids=["tau", "decay=0", "decay>1", "lam_min"])
def test_encoder_constructors_reject_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# --------------------------------------------------------------------------------------------
# interpret
# --------------------------------------------------------------------------------------------

INTERPRET = [
    ("stationary_dictionary", lambda X, Z, omega: udl.stationary_dictionary(X, Z, omega=omega)),
    ("contributions", lambda X, Z, omega: udl.contributions(X, Z, omega=omega)),
    ("reconstruction_coefficients", lambda X, Z, omega: udl.reconstruction_coefficients(
        X, Z, torch.ones(Z.shape[-2], 2, dtype=Z.dtype), omega=omega)),
]
INTERPRET_CASES = [
    ("Z-cols", dict(X=X, Z=Z_cols), r"\bZ\b.*columns"),
    ("X-nan", dict(X=X_nan, Z=Z), r"\bX\b must be finite"),
    ("Z-nan", dict(X=X, Z=Z_nan), r"\bZ\b must be finite"),
    ("batch", dict(X=X.expand(2, m, n), Z=Z.expand(3, p, n)), r"batch dimensions do not broadcast"),
    ("dtype", dict(X=X.float(), Z=Z), r"same dtype"),
    ("omega=0", dict(X=X, Z=Z, omega=0.0), r"\bomega\b must be > 0"),
    ("omega<0", dict(X=X, Z=Z, omega=-1.0), r"\bomega\b must be > 0"),
]


@pytest.mark.parametrize("kw,match", [c[1:] for c in INTERPRET_CASES], ids=[c[0] for c in INTERPRET_CASES])
@pytest.mark.parametrize("fn", [c[1] for c in INTERPRET], ids=[c[0] for c in INTERPRET])
def test_interpret_rejects_bad_input(fn, kw, match):
    with pytest.raises(ValueError, match=match):
        fn(kw["X"], kw["Z"], kw.get("omega", 1.0))


@pytest.mark.parametrize("Z_new,match", [
    (torch.randn(p + 1, 2, dtype=F64), r"\bZ_new\b.*rows"),
    (_with(torch.randn(p, 2, dtype=F64)), r"\bZ_new\b must be finite"),
    (torch.randn(p, 2), r"\bZ_new\b and Z must have the same dtype"),
], ids=["rows", "nan", "dtype"])
def test_reconstruction_coefficients_rejects_bad_new_codes(Z_new, match):
    with pytest.raises(ValueError, match=match):
        udl.reconstruction_coefficients(X, Z, Z_new, omega=1.0)


@pytest.mark.parametrize("Zc,omega,match", [(Z, 0.0, r"\bomega\b must be > 0"), (Z_nan, 1.0, r"\bZ\b must be finite")],
                         ids=["omega", "nan"])
def test_gram_condition_rejects_bad_input(Zc, omega, match):
    with pytest.raises(ValueError, match=match):
        udl.gram_condition(Zc, omega=omega)


# --------------------------------------------------------------------------------------------
# metrics and data helpers
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [lambda A, B: udl.dictionary_error(A, B), lambda A, B: udl.align(A, B),
                                lambda A, B: udl.dictionary_error(A, B, aligned=True)],
                         ids=["dictionary_error", "align", "dictionary_error-aligned"])
@pytest.mark.parametrize("A,B,match", [
    (D, D[:, :-1], r"\bD_star\b.*columns"),
    (D, D[:-1], r"\bD_star\b.*rows"),
    (D_nan, D, r"\bD\b must be finite"),
    (D, D_inf, r"\bD_star\b must be finite"),
    (D.expand(2, m, p), D.expand(3, m, p), r"batch dimensions do not broadcast"),
], ids=["cols", "rows", "D-nan", "D_star-inf", "batch"])
def test_dictionary_metrics_reject_bad_input(fn, A, B, match):
    with pytest.raises(ValueError, match=match):
        fn(A, B)


@pytest.mark.parametrize("fn", [udl.code_error, udl.support_recovery], ids=["code_error", "support_recovery"])
@pytest.mark.parametrize("A,B,match", [
    (Z, Z[:, :1], r"\bZ\b.*columns"),        # would broadcast silently without the check
    (Z, Z[:1], r"\bZ\b.*rows"),
    (Z_nan, Z, r"\bZ\b must be finite"),
    (Z, Z_nan, r"\bZ_star\b must be finite"),
    (Z.expand(2, p, n), Z.expand(3, p, n), r"batch dimensions do not broadcast"),
], ids=["cols", "rows", "Z-nan", "Z_star-nan", "batch"])
def test_code_metrics_reject_bad_input(fn, A, B, match):
    with pytest.raises(ValueError, match=match):
        fn(A, B)


def test_code_error_unknown_reduction():
    with pytest.raises(ValueError, match=r"\breduction\b must be one of 'max', 'mean', 'fro'"):
        udl.code_error(Z, Z, reduction="sum")


@pytest.mark.parametrize("A,B,match", [(Z, Z[:, :1], r"\bA\b.*columns"), (Z_nan, Z, r"\bA\b must be finite"),
                                       (Z, Z_nan, r"\bB\b must be finite")], ids=["cols", "A-nan", "B-nan"])
def test_relative_error_rejects_bad_input(A, B, match):
    with pytest.raises(ValueError, match=match):
        udl.relative_error(A, B)


@pytest.mark.parametrize("fn", [udl.normalize_columns, udl.coherence], ids=["normalize_columns", "coherence"])
@pytest.mark.parametrize("A,match", [(D_nan, r"\bD\b must be finite"),
                                     (torch.zeros(m, p, dtype=F64), r"\bD\b has \d+ zero columns"),
                                     (D[:, 0], r"\bD\b must have at least 2 dimensions")],
                         ids=["nan", "zero-column", "1d"])
def test_data_helpers_reject_bad_input(fn, A, match):
    with pytest.raises(ValueError, match=match):
        fn(A)


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------

TR = dict(kind="dec", lam=0.2, step=0.2, T=3, lr=0.1, n_steps=1)
inst = udl.make_instances(m, p, 2, n, seed=0)
TRAIN_CASES = [
    ("X-rows", dict(X=X_rows), r"\bX\b.*rows.*D0"),
    ("D0-nan", dict(D0=D_nan), r"\bD0\b must be finite"),
    ("optimizer", dict(optimizer="sgd"), r"\boptimizer\b must be one of 'gd', 'adam'"),
    ("lr=0", dict(lr=0.0), r"\blr\b must be > 0"),
    ("lr<0", dict(lr=-1.0), r"\blr\b must be > 0"),
    ("omega<0", dict(omega=-0.1), r"\bomega\b must be >= 0"),
    ("n_steps<0", dict(n_steps=-1), r"\bn_steps\b must be an integer >= 0"),
    ("record_every=0", dict(record_every=0), r"\brecord_every\b must be an integer >= 1"),
    ("batch_size>n", dict(batch_size=n + 1), r"\bbatch_size\b must be an integer in \[1, 9\]"),
    ("batch_size=0", dict(batch_size=0), r"\bbatch_size\b must be an integer in \[1, 9\]"),
    ("seed<0", dict(seed=-1), r"\bseed\b must be an integer >= 0"),
    ("D_star-cols", dict(D_star=D[:, :-1]), r"\bD_star\b.*columns"),
    ("D_star-batch", dict(X=X.expand(2, m, n), D0=D.expand(2, m, p), D_star=D.expand(3, m, p)),
     r"batch dimensions do not broadcast"),
    ("Z_star-cols", dict(Z_star=Z_cols), r"\bZ_star\b.*columns"),
    ("Z_star-nan", dict(Z_star=Z_nan), r"\bZ_star\b must be finite"),
    ("lam<0", dict(lam=-1.0), r"\blam\b must be >= 0"),
    ("step=0", dict(step=0.0), r"\bstep\b must be > 0"),
    ("T<0", dict(T=-2), r"\bT\b must be an integer >= 0"),
]


@pytest.mark.parametrize("kw,match", [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_train_rejects_bad_input(kw, match):
    args = dict(TR, X=X, D0=D)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        udl.train(**args)


def test_valid_inputs_pass():
    # the fixtures above are valid apart from the one thing each case breaks
    udl.ista(X, D, **ENC)
    udl.gradients(X, D, **ENC)
    udl.lasso_solve(X, D, lam=0.2)
    udl.stationary_dictionary(X, Z, omega=1.0)
    udl.code_error(Z, Z)
    udl.train(X, D, **TR, D_star=D, Z_star=Z)
