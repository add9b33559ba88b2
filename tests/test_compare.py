"""`udl compare OLD NEW`: verdict changes, statistics beyond intervals, exit codes, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from udl.app import cli, compare
from udl.engine import harness, results


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, toy_claims):
    """A stored run: T.1a PASSES; the twins T.3, T.3b are INCONCLUSIVE after Holm; controls FAIL."""
    out = tmp_path_factory.mktemp("compare") / "good"
    harness.run({cid: toy_claims[cid] for cid in ("T.1a", "T.3", "T.3b")}, "quick", 0, out_dir=out,
                progress=False)
    record = json.loads((out / "results.json").read_text())
    assert {cid: r["outcome"] for cid, r in record["claims"].items()} == {
        "T.1a": "PASS", "T.3": "INCONCLUSIVE", "T.3b": "INCONCLUSIVE"}
    return out


def _edited(run_dir: Path, target: Path, edit) -> Path:
    shutil.copytree(run_dir, target)
    record = json.loads((target / "results.json").read_text())
    edit(record)
    (target / "results.json").write_text(results.dumps(record))
    return target


def _call(capsys, *args):
    status = cli.main(["compare", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_identical_runs_exit_0(good_run, capsys):
    status, out, err = _call(capsys, good_run, good_run)
    assert status == 0 and err == ""
    assert "no regression" in out and "Unchanged: T.1a, T.3, T.3b." in out


def test_broken_claim_exits_1_and_is_named(good_run, tmp_path, capsys, toy_claims, monkeypatch):
    """The claim run with its own negative control's coin: T.1a FAILs, compare names it."""
    coin = toy_claims["T.1a"]
    monkeypatch.setattr(type(coin), "head_probability", lambda self, control: 0.8)
    broken = tmp_path / "broken"
    harness.run({"T.1a": coin, "T.3": toy_claims["T.3"], "T.3b": toy_claims["T.3b"]}, "quick", 0,
                out_dir=broken, progress=False)
    status, out, _ = _call(capsys, good_run, broken)
    assert status == 1
    assert "### Regressions" in out and "| T.1a | PASS | FAIL | T.1a was PASS and is now FAIL |" in out
    assert "T.3" not in out.split("### Regressions")[1].split("###")[0]   # only the broken claim regressed
    # the statistic moved far outside its interval
    assert "### Statistics beyond their intervals" in out and "in-band rate" in out
    status, text, _ = _call(capsys, good_run, broken, "--format", "json")
    diff = json.loads(text)
    assert status == 1 and diff["regressed"] is True
    assert [(r["claim"], r["kind"], r["old"], r["new"]) for r in diff["regressions"]] == [
        ("T.1a", "verdict", "PASS", "FAIL")]
    assert diff["moved"][0]["claim"] == "T.1a" and diff["moved"][0]["statistics"][0]["new_outside_old_interval"]


@pytest.mark.parametrize("new_outcome", ["INCONCLUSIVE", "ERROR"])
def test_pass_to_inconclusive_or_error_exits_1(good_run, tmp_path, capsys, new_outcome):
    def edit(record):
        record["claims"]["T.1a"]["outcome"] = new_outcome

    new = _edited(good_run, tmp_path / "new", edit)
    status, out, _ = _call(capsys, good_run, new)
    assert status == 1 and f"T.1a was PASS and is now {new_outcome}" in out


def test_improvement_exits_0_but_is_listed(good_run, tmp_path, capsys):
    def edit(record):
        record["claims"]["T.3"]["outcome"] = "PASS"

    new = _edited(good_run, tmp_path / "new", edit)
    status, out, _ = _call(capsys, good_run, new)
    assert status == 0
    assert "### Verdict changes" in out and "| T.3 | INCONCLUSIVE | PASS |" in out
    assert "### Regressions" not in out


def test_disappeared_claim_exits_1_and_added_claim_is_listed(good_run, tmp_path, capsys):
    def edit(record):
        record["claims"]["T.9"] = dict(record["claims"].pop("T.3"), id="T.9")
        record["run"]["claims"] = ["T.1a", "T.3b", "T.9"]

    new = _edited(good_run, tmp_path / "new", edit)
    status, out, _ = _call(capsys, good_run, new)
    assert status == 1
    assert "T.3 (INCONCLUSIVE in old) is missing from the new run" in out
    assert "### Added claims" in out and "T.9" in out


def test_control_that_stops_failing_is_a_regression(good_run, tmp_path, capsys):
    def edit(record):
        record["claims"]["T.1a"]["control"]["outcome"] = "PASS"

    new = _edited(good_run, tmp_path / "new", edit)
    status, out, _ = _call(capsys, good_run, new)
    assert status == 1 and "negative control FAILED before and is now PASS" in out


def test_moved_statistic_without_verdict_change_exits_0(good_run, tmp_path, capsys):
    def edit(record):
        claim = record["claims"]["T.3"]
        lo, hi = claim["interval"]
        claim["statistic"] = hi + 0.01    # outside the old interval, verdict unchanged
        claim["interval"] = [hi, hi + 0.02]

    new = _edited(good_run, tmp_path / "new", edit)
    status, out, _ = _call(capsys, good_run, new)
    assert status == 0
    assert "### Statistics beyond their intervals" in out and "| T.3 | win rate" in out


def test_statistic_inside_both_intervals_is_not_listed(good_run, tmp_path, capsys):
    def edit(record):
        claim = record["claims"]["T.3"]
        lo, hi = claim["interval"]
        claim["statistic"] = claim["statistic"] + 0.25 * (hi - claim["statistic"])

    new = _edited(good_run, tmp_path / "new", edit)
    status, out, _ = _call(capsys, good_run, new)
    assert status == 0 and "beyond their intervals" not in out.split("\n\n", 2)[2]


def test_settings_difference_is_noted(good_run, tmp_path, capsys):
    def edit(record):
        record["run"]["seed"] = 7

    new = _edited(good_run, tmp_path / "new", edit)
    status, out, _ = _call(capsys, good_run, new)
    assert status == 0 and "runs differ in seed: 0 (old) vs 7 (new)" in out


def test_out_file(good_run, tmp_path, capsys):
    target = tmp_path / "comment.md"
    status, out, _ = _call(capsys, good_run, good_run, "--out", target)
    assert status == 0 and "no regression" in out and str(target) in out
    assert target.read_text(encoding="utf-8").startswith("## udl compare")


@pytest.mark.parametrize("make", ["missing", "file", "empty-dir", "bad-json", "wrong-format"])
@pytest.mark.parametrize("side", ["old", "new"])
def test_bad_input_exits_2_with_one_line(good_run, tmp_path, capsys, make, side):
    bad = tmp_path / "bad"
    if make == "file":
        bad.write_text("x")
    elif make != "missing":
        bad.mkdir()
        if make == "bad-json":
            (bad / "results.json").write_text("{")
        elif make == "wrong-format":
            (bad / "results.json").write_text(json.dumps({"format": "other/1", "claims": {}}))
    args = (bad, good_run) if side == "old" else (good_run, bad)
    status, out, err = _call(capsys, *args)
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ("OLD_RUN" if side == "old" else "NEW_RUN") in lines[0] and "bad" in lines[0]


def test_compare_api_reads_only_results_json(good_run, tmp_path):
    """Tables are not needed (nothing is recomputed or re-decided)."""
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(good_run / "results.json", bare / "results.json")
    diff = compare.compare(compare.load_record(good_run), compare.load_record(bare))
    assert compare.exit_status(diff) == 0 and diff["unchanged"] == ["T.1a", "T.3", "T.3b"]


@pytest.mark.parametrize("make", ["missing", "no-results", "bad-json", "wrong-format", "no-claims"])
def test_compare_and_load_run_share_one_reader_and_its_messages(tmp_path, make):
    bad = tmp_path / "bad"
    if make != "missing":
        bad.mkdir()
    contents = {"bad-json": "{", "wrong-format": json.dumps({"format": "other/1", "claims": {}}),
                "no-claims": json.dumps({"format": results.FORMAT, "claims": []})}
    if make in contents:
        (bad / "results.json").write_text(contents[make])
    with pytest.raises(results.RunDirectoryError) as from_results:
        results.load_run(bad)
    with pytest.raises(compare.CompareError) as from_compare:
        compare.load_record(bad)
    assert str(from_compare.value) == str(from_results.value) and "bad" in str(from_results.value)
