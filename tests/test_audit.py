"""udl.app.audit: check_encoder, expected failures, NOT APPLICABLE, parametrize_with_claims, the matrix,
the `udl audit` command, encoder specs, and the learned-step encoder.

Fast by design: the toy claims of tests/audit_claims run in milliseconds; three cheap real claims
(II.1b, II.3c, II.4a at quick, ≈ 5 s together) show that the reference passes and a broken
encoder fails; one subprocess runs `udl audit` on examples/my_encoder.py.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import udl
from udl.app import audit
from udl.app.audit import (AuditResult, ClaimNotHeld, Declared, EncoderInterfaceError, EncoderSpecError, cell_sentence,
                           check_encoder, encoder_matrix, load_encoder, matrix_grid, parametrize_with_claims,
                           validate_encoder)
from udl.app.cli import main
from udl.engine.harness import discover

ROOT = Path(__file__).resolve().parent.parent
AUDIT_PACKAGE = str(Path(__file__).resolve().parent / "audit_claims")
ENCODERS = str(Path(__file__).resolve().parent / "audit_claims" / "_encoders.py")
EXAMPLE = ROOT / "examples" / "my_encoder.py"
#: Three cheap real claims at quick (≈ 1 s, 2 s, 1 s on one core).
CHEAP = ["II.1b", "II.3c", "II.4a"]


def _enc(name: str):
    return load_encoder(f"{ENCODERS}:{name}")


@pytest.fixture(scope="module")
def toy():
    return discover(AUDIT_PACKAGE)


# --------------------------------------------------------------------------- real claims
@pytest.fixture(scope="module")
def reference_audit() -> AuditResult:
    return check_encoder(udl.ISTA(), claims=CHEAP)


def test_reference_passes_every_claim_it_runs(reference_audit):
    assert reference_audit.outcomes() == {cid: "PASS" for cid in CHEAP}
    assert reference_audit.ok
    k = reference_audit.counts
    assert (k["ran"], k["not_applicable"], k["passed"], k["failed"]) == (3, 0, 3, 0)
    line = reference_audit.claims["II.1b"]   # deterministic: worst deviation over its rounding budget
    assert 0 <= line.statistic < 1 and line.interval[0] <= line.statistic <= line.interval[1]
    assert reference_audit.summary().endswith("— OK")


def test_broken_encoder_fails_the_claim_it_should():
    """No threshold (declared as ISTA): the codes at D* are not z* − λ(D_SᵀD_S)⁻¹sign(z*_S) → II.1b FAILS."""
    result = check_encoder(_enc("broken"), claims=["II.1b", "II.4a"])
    assert result.outcomes() == {"II.1b": "FAIL", "II.4a": "PASS"}
    assert not result.ok and result.unexpected == ["II.1b"]
    assert result.claims["II.1b"].statistic > 1e6          # deviations of order 1 against a ≈ 1e-12 budget
    assert "NOT OK: II.1b FAIL" in result.summary()


def test_encoder_without_gradient_is_not_applicable_for_gradient_claims():
    result = check_encoder(_enc("Detached"), claims="II.3")
    assert result.outcomes() == {cid: "NOT APPLICABLE" for cid in ("II.3a", "II.3b", "II.3c", "II.3d")}
    for line in result.claims.values():
        assert "differentiable" in line.missing and "needs differentiable" in line.reason
    assert result.run is None  # nothing ran
    assert result.ok and result.counts["ran"] == 0 and result.counts["not_applicable"] == 4


# --------------------------------------------------------------------------- outcomes (toy claims)
def test_not_applicable_is_reported_not_dropped(toy):
    result = check_encoder(_enc("Detached"), claims=toy)
    assert result.outcomes() == {"A.1": "PASS", "A.2": "NOT APPLICABLE", "A.3": "PASS"}
    assert result.claims["A.2"].reason.startswith("needs differentiable, which detached does not declare")
    assert result.counts == {"claims": 3, "ran": 2, "not_applicable": 1, "expected_to_fail": 0, "passed": 2,
                             "failed": 0, "xfail": 0, "xpass": 0, "inconclusive": 0, "error": 0}


def test_expected_failure_that_fails_is_xfail_and_ok(toy):
    result = check_encoder(_enc("broken"), claims=toy, expected_failures={"A.1": "no threshold by design"})
    line = result.claims["A.1"]
    assert (line.outcome, line.verdict_outcome, line.expected) == ("XFAIL", "FAIL", "no threshold by design")
    assert line.reason.startswith("expected: no threshold by design (FAIL")
    assert result.ok and result.counts["xfail"] == 1 and result.counts["expected_to_fail"] == 1


def test_expected_failure_that_passes_is_xpass_and_flagged(toy):
    result = check_encoder(udl.ISTA(), claims=toy, expected_failures={"A": "theorem id selects all"})
    assert set(result.outcomes().values()) == {"XPASS"}
    assert not result.ok and result.counts["xpass"] == 3
    assert "stale" in result.claims["A.1"].reason
    assert "XPASS (!)" in result.format_table()


def test_an_error_is_never_the_expected_failure(toy):
    result = check_encoder(_enc("Flaky"), claims=toy, expected_failures={"A.1": "x"})
    assert result.claims["A.1"].outcome == "ERROR" and "deliberate failure" in result.claims["A.1"].reason
    assert result.claims["A.3"].outcome == "ERROR"
    assert not result.ok and result.counts["error"] == 3


def test_bad_expectations_and_claims_raise(toy):
    with pytest.raises(ValueError, match="unknown claim 'Z.9'"):
        check_encoder(udl.ISTA(), claims=toy, expected_failures={"Z.9": "typo"})
    with pytest.raises(ValueError, match="non-empty reason"):
        check_encoder(udl.ISTA(), claims=toy, expected_failures={"A.1": " "})
    with pytest.raises(ValueError, match="unknown claim 'II.99'"):
        check_encoder(udl.ISTA(), claims="II.99")
    with pytest.raises(ValueError, match="unknown profile"):
        check_encoder(udl.ISTA(), claims=toy, profile="huge")


def test_controls_option_runs_the_negative_controls(toy):
    result = check_encoder(udl.ISTA(), claims=toy, controls=True)
    assert {c.control_outcome for c in result.claims.values()} == {"FAIL"} and result.ok


def test_frames_json_and_audit_directory(toy, tmp_path):
    from udl.engine.results import load_run

    result = check_encoder(_enc("Detached"), claims=toy, expected_failures={"A.3": "r"})
    frame = result.to_frame()
    assert list(frame["outcome"]) == ["PASS", "NOT APPLICABLE", "XPASS"]
    assert {"statistic", "lower", "upper", "reason", "missing"} <= set(frame.columns)
    out = audit.write_audit(result, tmp_path / "a")
    doc = json.loads((out / "audit.json").read_text())
    assert doc["summary"]["ok"] is False and doc["summary"]["unexpected"] == ["A.3"]
    assert doc["encoder"]["capabilities"] == ["fixed_lambda", "soft_threshold"]
    assert set(load_run(out).results["claims"]) == {"A.1", "A.3"}  # the run directory of what ran
    assert "| A.2 | NOT APPLICABLE |" in (out / "audit.md").read_text()


# --------------------------------------------------------------------------- encoder specs and interface
def test_load_encoder_specs():
    assert type(load_encoder("udl:ISTA")) is udl.ISTA
    assert type(load_encoder("udl.core.encoders:FISTA")) is udl.FISTA
    assert type(load_encoder("hard-threshold")) is udl.HardThresholdISTA
    assert load_encoder(f"{ENCODERS}:INSTANCE").name == "fista"  # an encoder object is used as is
    mine = load_encoder(f"{EXAMPLE}:make_encoder")
    assert mine.name == "momentum-ista" and type(mine).__module__ == "my_encoder"
    assert pickle.loads(pickle.dumps(mine)).beta == mine.beta  # importable by name: workers can unpickle it


@pytest.mark.parametrize("spec, message", [
    ("", "is empty"),
    ("nope", "expected MODULE:FACTORY"),
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("udl:nope", "has no attribute 'nope'"),
    ("udl:", "expected MODULE:FACTORY"),
    ("missing/file.py:f", "no such file"),
    ("udl.core.encoders:CAPABILITIES", "neither a factory nor an encoder"),
    (f"{ENCODERS}:raises", "calling the factory raised RuntimeError: factory exploded"),
])
def test_bad_encoder_specs(spec, message):
    with pytest.raises(EncoderSpecError, match=message):
        load_encoder(spec)


@pytest.mark.parametrize("name, message", [
    ("NoCapabilities", "declares no capabilities"),
    ("Typo", r"unknown capabilities \['differentiabel'\]"),
    ("WrongShape", r"expected codes of shape \(2, 6, 3\)"),
    ("LiesAboutGradient", "declares 'differentiable' but its codes carry no gradient"),
])
def test_validate_encoder_catches_interface_errors(name, message):
    with pytest.raises(EncoderInterfaceError, match=message):
        validate_encoder(_enc(name))


def test_declared_wraps_without_changing_the_codes():
    wrapped = Declared(udl.NoThreshold(), udl.ISTA.capabilities, name="nt")
    inst = udl.make_instances(6, 8, 2, 4, seed=[1, 2])
    torch.testing.assert_close(wrapped(inst.X, inst.D0, lam=0.1, step=0.2, T=5),
                               udl.NoThreshold()(inst.X, inst.D0, lam=0.1, step=0.2, T=5))
    assert wrapped.capabilities == udl.ISTA.capabilities and wrapped.name == "nt"
    assert repr(pickle.loads(pickle.dumps(wrapped))) == repr(wrapped)


# --------------------------------------------------------------------------- pytest integration
@parametrize_with_claims(udl.ISTA(), claims=["A"], package=AUDIT_PACKAGE)
def test_toy_claims_hold_for_the_reference(claim_id, check):
    assert check().outcome == "PASS"


@parametrize_with_claims(f"{ENCODERS}:broken", claims=["A.1", "A.3"], package=AUDIT_PACKAGE,
                         expected_failures={"A.1": "no threshold, so no zeros"})
def test_toy_claims_with_an_expected_failure(claim_id, check):
    check()  # A.1 xfails (strictly), A.3 passes


@parametrize_with_claims(f"{ENCODERS}:Detached", claims=["A.2"], package=AUDIT_PACKAGE)
def test_toy_claim_not_applicable_is_skipped(claim_id, check):
    raise AssertionError("never runs: A.2 needs 'differentiable'")  # pragma: no cover


@parametrize_with_claims(udl.ISTA(), claims=["II.4a"])
def test_a_real_claim_through_pytest(claim_id, check):
    check()


def test_parametrize_with_claims_marks():
    mark = parametrize_with_claims(_enc("Detached"), claims=["A"], package=AUDIT_PACKAGE,
                                   expected_failures={"A.3": "why"})
    names, params = mark.args
    assert names == ("claim_id", "check")
    marks = {p.id: [m.name for m in p.marks] for p in params}
    assert marks == {"A.1": [], "A.2": ["skip"], "A.3": ["xfail"]}
    xfail = params[2].marks[0]
    assert xfail.kwargs["strict"] is True and xfail.kwargs["raises"] is ClaimNotHeld
    assert "needs differentiable" in params[1].marks[0].kwargs["reason"]


def test_claim_check_raises_when_the_claim_does_not_hold(toy):
    check = audit.ClaimCheck(toy["A.1"], _enc("broken"))
    with pytest.raises(ClaimNotHeld, match="A.1 FAIL for broken"):
        check()
    with pytest.raises(audit.ClaimErrored, match="deliberate failure"):
        audit.ClaimCheck(toy["A.1"], _enc("Flaky"))()


# --------------------------------------------------------------------------- the matrix
def test_encoder_matrix_and_its_sentences(toy, tmp_path):
    encoders = {"ista": udl.ISTA(), "broken": _enc("broken"), "detached": _enc("Detached"),
                "hard-threshold": udl.HardThresholdISTA()}
    cells = encoder_matrix(encoders, claims=toy)
    grid = matrix_grid(cells)
    assert list(grid.columns) == list(encoders) and list(grid.index) == ["A.1", "A.2", "A.3"]
    assert grid.loc["A.1", "broken"] == "FAIL" and grid.loc["A.2", "detached"] == "NOT APPLICABLE"
    assert (grid["ista"] == "PASS").all()
    differs = cells[cells["differs"]]
    assert set(zip(differs["claim"], differs["encoder"])) == {("A.1", "broken"), ("A.2", "detached"),
                                                              ("A.1", "hard-threshold")}
    assert (cells["sentence"] != "").equals(cells["differs"])
    sentence = cells.set_index(["claim", "encoder"]).loc[("A.2", "detached"), "sentence"]
    assert sentence.startswith("A.2 NOT APPLICABLE for detached: needs differentiable")
    assert "gradients backpropagate" in sentence  # the capability's description
    out = audit.write_matrix(cells, tmp_path / "m", profile="quick", seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["cells.csv", "matrix.csv", "matrix.md"]
    md = (out / "matrix.md").read_text()
    assert "| A.1 | PASS | FAIL | PASS | n/a |" in md and "A.1 FAIL for broken" in md


def test_matrix_sentence_uses_the_claims_audit_sentences():
    sentences = discover("claims")["II.1b"].audit_sentences
    row = {"claim": "II.1b", "outcome": "FAIL", "encoder": "no-threshold", "statistic": 0.0, "lower": -0.01,
           "upper": 0.01, "threshold": 1.0, "statistic_name": "slope", "reason": ""}
    reference = {"outcome": "PASS", "statistic": 1.0, "statistic_name": "slope"}
    specific = cell_sentence(row, reference, sentences)  # keyed by (outcome, encoder)
    assert specific.startswith("II.1b FAIL for no-threshold: without a threshold the codes converge to the "
                               "minimum-norm least-squares solution whatever λ is")
    generic = cell_sentence(dict(row, encoder="mine"), reference, sentences)  # keyed by outcome
    assert generic.startswith("II.1b FAIL for mine: the converged codes at D* are not the lasso solution "
                              "z* − λ(D_SᵀD_S)⁻¹sign(z*_S) on the witnessed supports (worst deviation/budget 0)")
    fallback = cell_sentence(dict(row, claim="Z.1"), reference, {})  # no sentence: from the verdict
    assert fallback == "Z.1 FAIL for no-threshold: slope = 0 [-0.01, 0.01] against the threshold 1; " \
                       "the reference has 1."


def test_every_claims_audit_sentences_are_well_formed():
    """Keys are an outcome or (outcome, shipped encoder); every entry formats with the matrix's values."""
    from udl.app.audit import AUDIT_OUTCOMES, SHIPPED

    values = {"statistic": 0.5, "lower": 0.25, "upper": 0.75, "threshold": 1.0, "reference": 0.9}
    checked = 0
    for cid, claim in discover("claims").items():
        for key, entry in getattr(claim, "audit_sentences", {}).items():
            outcome, encoder = (key, None) if isinstance(key, str) else key
            assert outcome in AUDIT_OUTCOMES and encoder in (None, *SHIPPED), f"{cid}: bad key {key!r}"
            names = ["slope", "x [ae-lasso ≈ dec]", "x [e_ae-ls / e_dec]", "rate [trend]"]
            texts = [entry(dict(values, statistic_name=n)) if callable(entry)
                     else entry.format(**values, statistic_name=n) for n in names]
            assert any(texts) and all(t is None or t.strip() for t in texts), f"{cid} {key!r}"
            checked += 1
    assert checked >= 20


def test_when_applies_only_to_its_part():
    from udl.engine import when

    entry = when("[trend]", "rate {statistic:.2g}")
    assert entry({"statistic_name": "rate [trend]", "statistic": 0.123}) == "rate 0.12"
    assert entry({"statistic_name": "rate [level]", "statistic": 0.123}) is None


# --------------------------------------------------------------------------- the command line
def _cli(capsys, *argv):
    code = main(["audit", *argv, "--no-cache", "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exit_codes(capsys):
    pkg = ["--claims-package", AUDIT_PACKAGE]
    code, out, _ = _cli(capsys, "--encoder", "ista", *pkg)
    assert code == 0 and "audit of ista: 3 claims: 3 ran, 0 not applicable, 0 expected to fail; 3 passed, " \
                          "0 failed" in out
    code, out, _ = _cli(capsys, "--encoder", f"{ENCODERS}:broken", *pkg)
    assert code == 1 and "NOT OK: A.1 FAIL" in out
    code, out, _ = _cli(capsys, "--encoder", f"{ENCODERS}:broken", *pkg, "--expect-fail", "A.1=no threshold")
    assert code == 0 and "1 XFAIL" in out
    code, out, _ = _cli(capsys, "--encoder", "ista", *pkg, "--expect-fail", "A.3=stale")
    assert code == 1 and "A.3 XPASS" in out
    code, out, _ = _cli(capsys, "--encoder", f"{ENCODERS}:Detached", *pkg, "--claims", "A.2")
    assert code == 0 and "1 not applicable" in out and "NOT APPLICABLE" in out


@pytest.mark.parametrize("argv, message", [
    (["--encoder", "nope"], "argument --encoder: encoder spec 'nope'"),
    (["--encoder", "udl:nope"], "has no attribute 'nope'"),
    (["--encoder", f"{ENCODERS}:LiesAboutGradient"], "declares 'differentiable'"),
    (["--encoder", "ista", "--claims", "A.9"], "argument --claims: unknown claim 'A.9'"),
    (["--encoder", "ista", "--expect-fail", "A.1"], "invalid expected failure 'A.1'"),
    (["--encoder", "ista", "--expect-fail", "A.1="], "invalid expected failure 'A.1='"),
    (["--encoder", "ista", "--expect-fail", "Q.1=typo"], "argument --expect-fail: expected failure: unknown claim"),
    (["--encoder", "ista", "--seed", "-3"], "invalid seed '-3'"),
    (["--encoder", "ista", "--matrix"], "not allowed with argument"),
    ([], "one of the arguments --encoder --matrix is required"),
    (["--encoder", "ista", "--device", "tpu"], "invalid device 'tpu'"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, argv, message):
    code, out, err = _cli(capsys, *argv, "--claims-package", AUDIT_PACKAGE)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_cli_out_is_checked_before_computing(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    code, _, err = _cli(capsys, "--encoder", "ista", "--claims-package", AUDIT_PACKAGE, "--out", str(tmp_path / "f"))
    assert code == 2 and "argument --out" in err


def test_cli_writes_the_audit_and_the_matrix(capsys, tmp_path):
    code, out, _ = _cli(capsys, "--encoder", "ista", "--claims-package", AUDIT_PACKAGE, "--out", str(tmp_path / "a"))
    assert code == 0 and (tmp_path / "a" / "audit.json").is_file() and (tmp_path / "a" / "results.json").is_file()
    code, out, err = _cli(capsys, "--matrix", "--with-encoders", "ista", "--with-encoders", f"{ENCODERS}:broken",
                          "--claims-package", AUDIT_PACKAGE, "--out", str(tmp_path / "m"))
    assert code == 0, err
    assert "A.1 FAIL for broken" in out and "1 cells differ from ista" in out
    assert (tmp_path / "m" / "matrix.csv").read_text().splitlines()[0] == "claim,ista,broken"


def test_cli_audits_a_user_file_in_a_subprocess(tmp_path):
    """As documented in the README: the encoder lives in a file outside the package."""
    env = dict(os.environ, UDL_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "udl", "audit", "--encoder", "examples/my_encoder.py:make_encoder",
                           "--claims", "II.4a", "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "audit of momentum-ista: 1 claims: 1 ran, 0 not applicable, 0 expected to fail; 1 passed, 0 failed" \
        in proc.stdout


# --------------------------------------------------------------------------- the learned-step encoder
def test_learned_step_defaults_to_ista_and_declares_fixed_lambda_only_when_thresholds_are_one():
    inst = udl.make_instances(10, 20, 2, 8, seed=[3, 4])
    enc = udl.LearnedStepISTA(layers=4)
    torch.testing.assert_close(enc(inst.X, inst.D0, lam=0.2, step=0.2, T=30),
                               udl.ista(inst.X, inst.D0, lam=0.2, step=0.2, T=30))
    assert enc.capabilities == udl.ISTA.capabilities
    assert udl.LearnedStepISTA([1.1, 0.9], [1.0, 1.0]).capabilities == udl.ISTA.capabilities
    assert udl.LearnedStepISTA([1.0, 1.0], [2.0, 0.5]).capabilities == {"differentiable", "soft_threshold"}


def test_learned_step_layers_and_tail():
    """Layer t uses α·a_t and threshold α·a_t·λ·b_t; layers beyond K reuse the last one."""
    inst = udl.make_instances(10, 20, 2, 8, seed=[5])
    a, b = [1.2, 0.8], [2.0, 0.5]
    enc = udl.LearnedStepISTA(a, b)
    X, D = inst.X, inst.D0
    Z = torch.zeros(1, 20, 8, dtype=X.dtype)
    for t in range(5):
        k = min(t, 1)
        alpha = 0.2 * a[k]
        Z = udl.soft_threshold(Z - alpha * D.mT @ (D @ Z - X), alpha * 0.3 * b[k])
    torch.testing.assert_close(enc(X, D, lam=0.3, step=0.2, T=5), Z)


def test_learned_step_is_differentiable_in_d_and_in_its_scales():
    inst = udl.make_instances(10, 20, 2, 8, seed=[6])
    a = torch.full((3,), 1.0, dtype=torch.float64, requires_grad=True)
    b = torch.full((3,), 1.0, dtype=torch.float64, requires_grad=True)
    enc = udl.LearnedStepISTA(a, b)
    g = udl.gradient(inst.X, inst.D0, kind="ae-ls", lam=0.2, step=0.2, T=10, encoder=enc)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    enc(inst.X, inst.D0, lam=0.2, step=0.2, T=10).square().sum().backward()
    assert a.grad is not None and b.grad is not None and b.grad.abs().sum() > 0
    validate_encoder(enc)


def test_learned_step_learn_lowers_the_code_error_and_repr_tells_encoders_apart():
    inst = udl.make_instances(20, 40, 3, 20, init_scale=0.0, seed=[7, 8])
    kw = dict(lam=0.2, step=0.2, layers=5, target=inst.Z_star)
    learned = udl.LearnedStepISTA.learn(inst.X, inst.D_star, n_steps=30, **kw)
    plain = udl.LearnedStepISTA.learn(inst.X, inst.D_star, n_steps=0, **kw)

    def err(enc):
        Z = enc(inst.X, inst.D_star, lam=0.2, step=0.2, T=5)
        return float(((Z - inst.Z_star).square().sum() / inst.Z_star.square().sum()))

    assert err(learned) < 0.9 * err(plain)
    assert float(learned.step_scales.max()) <= udl.core.learned.MAX_STEP_SCALE
    assert repr(learned) != repr(plain) and "digest=" in repr(learned)
    assert repr(pickle.loads(pickle.dumps(learned))) == repr(learned)
    frozen_thresholds = udl.LearnedStepISTA.learn(inst.X, inst.D_star, n_steps=5, learn_thresholds=False, **kw)
    assert "fixed_lambda" in frozen_thresholds.capabilities


@pytest.mark.parametrize("kwargs, message", [
    (dict(step_scales=[1.0, -1.0]), "step_scales must be > 0"),
    (dict(threshold_scales=[-0.1]), "threshold_scales must be >= 0"),
    (dict(step_scales=[1.0, 1.0], threshold_scales=[1.0]), "disagree on the number of layers"),
    (dict(step_scales=[[1.0]]), "1-D"),
    (dict(layers=0), "layers"),
])
def test_learned_step_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        udl.LearnedStepISTA(**kwargs)
