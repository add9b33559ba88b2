"""Honest verdicts: deterministic checks, degenerate samples, predictions, hypotheses, claims reported
only at a profile, failed certificates (the engine and the toy claims of tests/toy_claims_honest/), and
the default executor that uses every core."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from udl.app import cli
from udl.engine import CertificateError, stats
from udl.engine.discovery import discover
from udl.engine.independence import duplicate_instances
from udl.engine.results import load_run
from udl.engine.runner import run

HONEST = str(Path(__file__).resolve().parent / "toy_claims_honest")
EPS = float(np.finfo(float).eps)


@pytest.fixture(scope="module")
def honest():
    return discover(HONEST)


@pytest.fixture(scope="module")
def quick_run(honest):
    return run(honest, "quick", 0, progress=False)


# --------------------------------------------------------------------------- deterministic checks
def test_deterministic_check_passes_within_the_tolerance_and_records_the_budget():
    v = stats.deterministic_check([1e-16, -3e-15, 0.0], tolerance=1e-14, budget="100 ulps", name="dev")
    assert (v.outcome, v.evidence, v.statistic, v.threshold, v.n) == ("PASS", "deterministic", 3e-15, 1e-14, 3)
    assert math.isnan(v.p_value)  # no p-value pretending to be evidence
    assert v.detail["budget"] == "100 ulps" and v.detail["worst_index"] == 1 and v.detail["violations"] == 0
    assert v.to_dict()["evidence"] == "deterministic"


def test_deterministic_check_fails_when_one_value_exceeds_the_tolerance():
    v = stats.deterministic_check([1e-16, 2e-14, 1e-15], tolerance=1e-14, budget="100 ulps")
    assert v.outcome == "FAIL" and v.statistic == 2e-14 and v.detail["violations"] == 1
    assert stats.deterministic_check([0.0, math.nan], tolerance=1.0, budget="b").outcome == "FAIL"  # NaN violates


def test_deterministic_check_with_one_tolerance_per_value_reports_the_worst_ratio():
    v = stats.deterministic_check([1.0, 3.0], tolerance=[2.0, 4.0], budget="per instance")
    assert v.outcome == "PASS" and v.statistic == 0.75 and v.threshold == 1.0 and v.detail["worst_value"] == 3.0
    assert stats.deterministic_check([1.0, 5.0], tolerance=[2.0, 4.0], budget="b").outcome == "FAIL"


@pytest.mark.parametrize("kwargs, named", [
    ({"tolerance": 0.0, "budget": "b"}, "tolerance"),
    ({"tolerance": [1.0, 2.0, 3.0], "budget": "b"}, "tolerance has 3 entries"),
    ({"tolerance": 1.0, "budget": " "}, "budget"),
])
def test_deterministic_check_rejects_bad_input_naming_it(kwargs, named):
    with pytest.raises(ValueError, match=named):
        stats.deterministic_check([1.0, 2.0], **kwargs)


def test_a_deterministic_verdict_is_never_inconclusive_and_evidence_is_checked():
    with pytest.raises(ValueError, match="never INCONCLUSIVE"):
        stats.Verdict("INCONCLUSIVE", 0.0, "x", (0, 1), 0, 1, math.nan, evidence="deterministic")
    with pytest.raises(ValueError, match="evidence"):
        stats.Verdict("PASS", 0.0, "x", (0, 1), 0, 1, 0.5, evidence="anecdotal")


def test_all_of_is_deterministic_only_when_every_part_is():
    exact = stats.deterministic_check([0.0, 1e-17], tolerance=1e-15, budget="b")
    tested = stats.mean_test([1.0, 1.2, 0.9, 1.1], threshold=0.0)
    both = stats.all_of({"exact": exact, "tested": tested}, n=4, alpha=0.01)
    assert both.evidence == "statistical" and both.p_value == tested.p_value and both.outcome == "PASS"
    only = stats.all_of({"a": exact, "b": exact}, n=2, alpha=0.01)
    assert only.evidence == "deterministic" and math.isnan(only.p_value) and only.outcome == "PASS"


# --------------------------------------------------------------------------- degenerate samples
def test_zero_spread_on_the_claims_side_is_an_error_not_a_pass():
    with pytest.raises(stats.DegenerateSampleError, match="instances are not independent"):
        stats.mean_test([0.1, 0.1, 0.1], threshold=0.0, side="greater")
    with pytest.raises(stats.DegenerateSampleError):
        stats.mean_test([2.0] * 5, threshold=2.0, margin=0.5, side="equal")
    with pytest.raises(stats.DegenerateSampleError):
        stats.slope_test([1, 2, 3, 4], [2, 4, 6, 8], threshold=3.0, side="less")  # points exactly on a line


def test_zero_spread_on_the_failing_side_is_a_fail_with_every_instance_a_counterexample():
    v = stats.mean_test([0.0] * 6, threshold=1.0, side="greater", name="slope")
    assert v.outcome == "FAIL" and v.interval == (0.0, 0.0) and v.detail["p_fail"] == 0.0 and v.detail["zero_spread"]


def test_duplicate_instances_are_found_on_the_measurements_only():
    base = pd.DataFrame({"instance": np.repeat([0, 1, 2], 3), "T": np.tile([1, 2, 3], 3), "m": 20,
                         "err": [0.5, 0.25, 0.1, 0.6, 0.3, 0.2, 0.5, 0.25, 0.1]})
    assert duplicate_instances(base, {"m": 20}) == [[0, 2]]  # the T grid and the cell parameter are constant
    distinct = base.assign(err=base["err"] + np.repeat([0.0, 0.0, 1e-9], 3))
    assert duplicate_instances(distinct, {"m": 20}) == []
    counts = pd.DataFrame({"instance": [0, 1, 2], "heads": [50, 50, 47], "rate": [0.5, 0.5, 0.47]})
    assert duplicate_instances(counts, None, discrete={"rate"}) == []  # ties in discrete measurements are fine
    assert duplicate_instances(counts, None) == [[0, 1]]  # a float column is continuous unless declared


def test_a_claim_whose_instances_are_copies_ends_in_error(quick_run):
    result = quick_run.claims["H.2"]
    assert result.outcome == "ERROR" and result.verdict is None and not result.ok
    assert "instances are not independent" in result.error and "instances 0, 1, 2, 3, 4, 5" in result.error
    assert result.control_outcome == "ERROR"


# --------------------------------------------------------------------------- the run record
def test_deterministic_claim_passes_its_control_fails_and_stays_out_of_holm(quick_run):
    result = quick_run.claims["H.1"]
    assert result.outcome == "PASS" and result.control_outcome == "FAIL" and result.ok
    assert result.evidence == "deterministic" and result.p_raw is None and result.p_adjusted is None
    # the only statistical claim decided at quick is H.3: Holm over a family of one
    assert quick_run.claims["H.3"].p_adjusted == quick_run.claims["H.3"].p_raw


def test_kind_and_evidence_must_agree(honest):
    exact, mean = honest["H.1"], honest["H.3"]
    lying = type("Lying", (type(exact),), {"decide": lambda self, t: stats.mean_test(t["scale"], threshold=0.0)})()
    posing = type("Posing", (type(mean),), {"decide": lambda self, t: stats.deterministic_check(
        t["value"], tolerance=1e9, budget="b")})()
    result = run([lying, posing], "quick", 0, progress=False, controls=False)
    assert result.claims["H.1"].outcome == "ERROR" and "stats.deterministic_check" in result.claims["H.1"].error
    assert result.claims["H.3"].outcome == "ERROR" and "statistical rule" in result.claims["H.3"].error


def test_predictions_and_hypotheses_are_recorded(quick_run, tmp_path):
    from udl.engine.results import write_run

    write_run(quick_run, tmp_path / "r")
    record = load_run(tmp_path / "r").results["claims"]["H.3"]
    (prediction,) = record["predictions"]
    verdict = quick_run.claims["H.3"].verdict
    assert prediction == {"name": "mean", "predicted": 1.5, "estimate": verdict.statistic,
                          "interval": list(verdict.interval), "contained": True}
    assert [(c["cell"], c["inside"]) for c in record["hypotheses"]] == [(0, True), (1, False)]
    assert record["hypotheses"][1]["hypotheses"][0] == {"name": "σ < 2", "value": 3.0, "bound": 2.0, "holds": False,
                                                        "note": "the toy theorem's noise condition"}
    assert record["evidence"] == "statistical" and record["decided"] is True
    exact = load_run(tmp_path / "r").results["claims"]["H.1"]
    assert exact["evidence"] == "deterministic" and exact["hypotheses"] == [] and exact["predictions"] == []


def test_prediction_and_hypothesis_helpers():
    assert not stats.prediction("ρ", 2.0, 1.0, (0.5, 1.5)).contained
    assert stats.prediction("ρ", 1.0, 1.1, (0.5, 1.5)).contained
    with pytest.raises(ValueError, match="lower end above"):
        stats.prediction("ρ", 1.0, 1.1, (1.5, 0.5))
    assert stats.hypothesis("μ(2s − 1) < 1", 0.9, 1.0).holds and not stats.hypothesis("x", 1.0, 1.0).holds
    assert stats.hypothesis("λ > c", 2.0, 1.0, side="greater").holds
    assert not stats.hypothesis("x", math.nan, 1.0).holds
    v = replace(stats.mean_test([1.0, 2.0, 3.0], threshold=0.0), predictions=[stats.prediction("m", 2, 2, (1, 3))])
    assert stats.Verdict.from_dict(json.loads(json.dumps(v.to_dict()))).predictions == v.predictions


# --------------------------------------------------------------------------- reported, not decided
def test_a_claim_outside_its_profiles_is_reported_not_decided(quick_run, honest):
    late = quick_run.claims["H.4"]
    assert late.verdict.outcome == "PASS" and late.outcome == "INCONCLUSIVE" and not late.decided
    assert late.reason == "profile quick stops before the regime this claim needs: reported, not decided"
    assert late.ok and late.p_adjusted is None and late.p_raw == late.verdict.p_value
    at_ci = run([honest["H.4"]], "ci", 0, progress=False).claims["H.4"]
    assert at_ci.decided and at_ci.outcome == "PASS" and at_ci.reason is None


def test_reported_only_never_masks_an_error(honest):
    broken = type("Broken", (type(honest["H.4"]),), {"simulate": honest["H.5"].simulate})()
    result = run([broken], "quick", 0, progress=False).claims["H.4"]
    assert not result.decided and result.outcome == "ERROR" and not result.ok


def test_bad_decides_at_is_a_definition_error(honest):
    from udl.engine.anatomy import check_claim

    bad = type("Bad", (type(honest["H.3"]),), {"decides_at": ("fast",)})
    assert any("decides_at" in p for p in check_claim(bad))


def test_a_failed_certificate_ends_the_claim_in_error(quick_run):
    result = quick_run.claims["H.5"]
    assert result.outcome == "ERROR" and "CertificateError: reference mean: KKT residual 0.3" in result.error
    assert issubclass(CertificateError, Exception)


# --------------------------------------------------------------------------- the CLI table and the report
def test_verify_shows_evidence_predictions_and_reported_only_and_exits_0(tmp_path, capsys):
    out = tmp_path / "r"
    status = cli.main(["verify", "--claims-package", HONEST, "--claims", "H.1,H.3,H.4", "--profile", "quick",
                       "--no-progress", "--out", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text  # H.4 is only reported at quick: it does not fail the run
    rows = {line.split()[0]: line for line in text.splitlines()[1:4]}
    assert "deterministic" in rows["H.1"] and "tolerance" in rows["H.1"]
    assert "mean: 1.5 vs" in rows["H.3"] and "contained" in rows["H.3"] and "not contained" not in rows["H.3"]
    assert "INCONCLUSIVE (reported only)" in rows["H.4"]
    assert "H.4: profile quick stops before the regime this claim needs" in text
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Deterministic checks" in md and "8 ulps of the largest term" in md and "| tolerance 1.776e-15 |" in md
    assert md.index("## Deterministic checks") < md.index("### H.1")
    assert "Reported, not decided:** H.4" in md
    assert "cells inside the theorem's hypotheses: 0; outside: 1" in md
    assert "predictions:* mean: 1.5 vs" in md and "evidence: statistical" in md
    assert "| 1 | σ < 2 | 3 | 2 | does not hold |" in md


# --------------------------------------------------------------------------- calibrate
def _calibrate(capsys, *args):
    status = cli.main(["calibrate", "--claims-package", HONEST, "--profile", "quick", "--no-cache", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_calibrate_writes_rates_with_clopper_pearson_intervals(tmp_path, capsys):
    status, _, err = _calibrate(capsys, "--seeds", "1-3", "--claims", "H.1,H.2,H.3,H.4", "--out", str(tmp_path / "c"))
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["calibration.csv", "calibration.json",
                                                                  "calibration.md"]
    doc = json.loads((tmp_path / "c" / "calibration.json").read_text())
    exact, copies, late = doc["claims"]["H.1"], doc["claims"]["H.2"], doc["claims"]["H.4"]
    assert exact["pass"]["successes"] == 3 and exact["pass"]["interval"] == pytest.approx(
        list(stats.clopper_pearson(3, 3, 0.025)))
    assert exact["control_fail"]["rate"] == 1.0 and exact["evidence"] == "deterministic" and exact["flags"] == []
    assert copies["outcomes"]["ERROR"] == 3 and any("ERROR" in f for f in copies["flags"])
    assert late["decided"] is False and late["outcomes"]["INCONCLUSIVE"] == 3 and late["raw_pass"]["rate"] == 1.0
    assert sorted(doc["seeds"]) == ["1", "2", "3"] and doc["settings"]["seeds"] == [1, 2, 3]
    csv = pd.read_csv(tmp_path / "c" / "calibration.csv")
    assert list(csv["claim"]) == ["H.1", "H.2", "H.3", "H.4"] and csv.loc[0, "pass_rate"] == 1.0
    assert "| H.1 | deterministic | 3/3 = 1 [0.292, 1]" in (tmp_path / "c" / "calibration.md").read_text()
    assert err.count("udl calibrate: seed") == 3
    # the same seeds give the same per-seed outcomes
    status, _, _ = _calibrate(capsys, "--seeds", "1-3", "--claims", "H.1,H.2,H.3,H.4", "--out", str(tmp_path / "c"))
    again = json.loads((tmp_path / "c" / "calibration.json").read_text())
    assert status == 0 and _outcomes(again) == _outcomes(doc)


def _outcomes(document: dict) -> dict:
    """Per seed and claim, everything recorded but the seconds."""
    return {seed: {cid: {k: v for k, v in r.items() if k != "seconds"} for cid, r in run["claims"].items()}
            for seed, run in document["seeds"].items()}


@pytest.mark.parametrize("seeds, named", [
    ("0-3", "seed 0 is the reference run's root seed"),
    ("3-1", "runs backwards"),
    ("1,2,2", "seed 2 is given twice"),
    ("1-x", "'1-x' is not a seed or a range"),
])
def test_calibrate_refuses_bad_seeds(tmp_path, capsys, seeds, named):
    status, _, err = _calibrate(capsys, "--seeds", seeds, "--out", str(tmp_path / "c"))
    assert status == 2 and named in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "c").exists()


def test_calibrate_accepts_the_reference_seed_when_told(tmp_path, capsys):
    from udl.app.calibrate import parse_seeds

    assert parse_seeds("0-2", allow_reference=True) == [0, 1, 2] and parse_seeds("1,4-5") == [1, 4, 5]


def test_calibrate_never_replaces_what_it_did_not_write(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    status, _, err = _calibrate(capsys, "--seeds", "1", "--out", str(tmp_path / "c"))
    assert status == 2 and "notes.txt" in err and (tmp_path / "c" / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- every core by default
def test_auto_executor_uses_every_usable_core_and_one_core_is_serial(monkeypatch):
    from udl.engine import executors

    assert isinstance(executors.make_executor("auto", workers=1), executors.SerialExecutor)
    pool = executors.make_executor("auto", workers=3)
    assert isinstance(pool, executors.ProcessExecutor) and pool.workers == 3
    monkeypatch.setattr(executors, "usable_cores", lambda: 1)
    assert isinstance(executors.make_executor("auto"), executors.SerialExecutor)
    monkeypatch.setattr(executors, "usable_cores", lambda: 4)
    assert executors.make_executor("auto").workers == 4


def test_commands_default_to_every_core_unless_the_environment_says_otherwise(monkeypatch):
    from argparse import Namespace

    from udl.app.options import executor_and_cache
    from udl.engine import executors

    args = Namespace(executor=None, workers=None, no_cache=True, cache_dir=None)
    monkeypatch.setattr(executors, "usable_cores", lambda: 4)
    monkeypatch.delenv("UDL_EXECUTOR")
    assert executor_and_cache(args, "udl verify")[0].workers == 4
    assert isinstance(executor_and_cache(Namespace(**{**vars(args), "workers": 1}), "udl verify")[0],
                      executors.SerialExecutor)
    on_gpu = Namespace(**{**vars(args), "device": "cuda"})
    assert isinstance(executor_and_cache(on_gpu, "udl verify")[0], executors.SerialExecutor)
    monkeypatch.setenv("UDL_EXECUTOR", "serial")
    assert isinstance(executor_and_cache(args, "udl verify")[0], executors.SerialExecutor)
    monkeypatch.setenv("UDL_EXECUTOR", "spark")
    with pytest.raises(cli.UsageError, match=r"\$UDL_EXECUTOR: invalid executor 'spark'"):
        executor_and_cache(args, "udl verify")
