"""The engine: seeding, running, Holm, errors, discovery, and atomic run directories."""

from __future__ import annotations

import json
import os
import pickle
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from udl.engine import cells, harness, results
from udl.engine.executors import Executor, SerialExecutor
from udl.engine.harness import Context, instance_seeds, run

QUICK = "quick"


def _tree(directory) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes), to compare byte for byte."""
    return {os.path.relpath(os.path.join(root, name), directory): Path(root, name).read_bytes()
            for root, _, files in os.walk(directory) for name in files}


def _pick(claims, *ids):
    return {i: claims[i] for i in ids}


# --------------------------------------------------------------------------- seeding
def test_instance_seeds_follow_the_seed_sequence_spec():
    seeds = instance_seeds(7, "II.3b", {"T": 25, "lam": 0.2}, 4)
    key = (cells._stable_int("II.3b"), cells._stable_int('{"T":25,"lam":0.2}'))
    children = np.random.SeedSequence(entropy=7, spawn_key=key).spawn(4)
    assert seeds == [int(c.generate_state(1, dtype=np.uint64)[0]) >> 1 for c in children]
    assert all(0 <= s < 2 ** 63 for s in seeds) and len(set(seeds)) == 4


def test_instance_seeds_depend_only_on_root_claim_cell_and_index():
    cell = {"lam": 0.2, "T": 25}
    base = instance_seeds(0, "A", cell, 10)
    assert instance_seeds(0, "A", {"T": 25, "lam": 0.2}, 10) == base  # key order is irrelevant
    assert instance_seeds(0, "A", {"T": np.int64(25), "lam": np.float64(0.2)}, 10) == base
    assert instance_seeds(0, "A", cell, 4) == base[:4]  # a prefix: quick instances ⊂ ci instances
    assert not set(instance_seeds(1, "A", cell, 10)) & set(base)
    assert not set(instance_seeds(0, "B", cell, 10)) & set(base)
    assert not set(instance_seeds(0, "A", {**cell, "T": 26}, 10)) & set(base)
    with pytest.raises(ValueError):
        instance_seeds(-1, "A", cell, 3)


def test_seeds_are_independent_of_claim_order_and_subset(toy_claims):
    alone = run(_pick(toy_claims, "T.1a"), QUICK, 3, progress=False)
    together = run([toy_claims["T.3"], toy_claims["T.2"], toy_claims["T.1a"]], QUICK, 3, progress=False)
    pd.testing.assert_frame_equal(alone.claims["T.1a"].table, together.claims["T.1a"].table)
    assert list(together.claims) == ["T.1a", "T.2", "T.3"]  # run in id order


def test_tables_carry_engine_columns_and_paired_control_seeds(toy_claims):
    result = run(_pick(toy_claims, "T.1a"), QUICK, 0, progress=False).claims["T.1a"]
    table = result.table
    assert list(table.columns[:6]) == ["claim", "control", "cell", "seed", "instance", "flips"]
    assert set(table["cell"]) == {0, 1} and set(table["flips"]) == {100, 200}
    claim_rows, control_rows = table[~table["control"]], table[table["control"]]
    assert len(claim_rows) == len(control_rows) == 2 * toy_claims["T.1a"].n_instances(QUICK)
    np.testing.assert_array_equal(claim_rows["seed"].to_numpy(), control_rows["seed"].to_numpy())
    cell = toy_claims["T.1a"].cells(QUICK)[1]
    expected = instance_seeds(0, "T.1a", cell, toy_claims["T.1a"].n_instances(QUICK))
    assert claim_rows.loc[claim_rows["cell"] == 1, "seed"].tolist() == expected


def test_an_instance_replays_from_its_recorded_seed(toy_claims):
    claim = toy_claims["T.1a"]
    table = run(_pick(toy_claims, "T.1a"), QUICK, 0, progress=False).claims["T.1a"].table
    row = table[(~table["control"]) & (table["cell"] == 1)].iloc[5]
    replayed = harness.replay(claim, {"flips": int(row["flips"])}, int(row["seed"]))
    assert replayed["heads"].iloc[0] == row["heads"]


# --------------------------------------------------------------------------- verdicts
def test_claim_passes_and_its_control_fails(toy_claims):
    result = run(_pick(toy_claims, "T.1a"), QUICK, 0, progress=False)
    claim = result.claims["T.1a"]
    assert claim.outcome == "PASS" and claim.control_outcome == "FAIL" and claim.ok and result.ok


def test_a_control_that_does_not_fail_makes_the_claim_not_ok(toy_claims):
    result = run(_pick(toy_claims, "T.1b"), QUICK, 0, progress=False)
    assert result.claims["T.1b"].outcome == "PASS" and result.claims["T.1b"].control_outcome == "PASS"
    assert not result.ok


def test_holm_downgrades_a_marginal_pass(toy_claims):
    alone = run(_pick(toy_claims, "T.3"), QUICK, 0, progress=False).claims["T.3"]
    assert alone.outcome == "PASS" and alone.p_adjusted == alone.p_raw
    pair = run(_pick(toy_claims, "T.3", "T.3b"), QUICK, 0, progress=False)
    for result in pair.claims.values():
        assert result.verdict.outcome == "PASS"  # raw verdict unchanged
        assert result.outcome == "INCONCLUSIVE"
        assert result.p_adjusted == pytest.approx(2 * result.p_raw) and result.p_adjusted > 0.01


def test_simulate_error_is_recorded_not_dropped(toy_claims):
    result = run(toy_claims, QUICK, 0, progress=False)
    broken = result.claims["T.2"]
    assert broken.outcome == "ERROR" and "deliberate failure in simulate" in broken.error
    assert "RuntimeError" in broken.traceback and broken.control_outcome == "ERROR"
    assert broken.p_raw is None  # not in the Holm family
    assert result.claims["T.1a"].outcome == "PASS" and not result.ok



@pytest.mark.parametrize("decide, message", [
    (lambda table: 1 / 0, "decide: ZeroDivisionError"),
    (lambda table: "PASS", "not a Verdict"),
])
def test_decide_errors_are_recorded(toy_claims, decide, message):
    claim = type(toy_claims["T.1a"])()
    claim.decide = decide
    result = run([claim], QUICK, 0, progress=False).claims["T.1a"]
    assert result.outcome == "ERROR" and message in result.error


@pytest.mark.parametrize("table, message", [
    (pd.DataFrame({"x": [1]}), "no 'instance' column"),
    (pd.DataFrame({"instance": [0], "seed": [1]}), "engine column"),
    (pd.DataFrame({"instance": [0, 0]}), "each of 0.."),
    ([1, 2], "not a pandas.DataFrame"),
    (pd.DataFrame({"instance": np.arange(40), "flips": 7}), "disagrees with the cell"),
])
def test_malformed_simulate_tables_are_errors(toy_claims, table, message):
    claim = type(toy_claims["T.1a"])()
    claim.simulate = lambda cell, seeds, ctx: table
    result = run([claim], QUICK, 0, progress=False, controls=False).claims["T.1a"]
    assert result.outcome == "ERROR" and message in result.error


def test_controls_can_be_skipped(toy_claims):
    result = run(_pick(toy_claims, "T.1b"), QUICK, 0, progress=False, controls=False)
    claim = result.claims["T.1b"]
    assert claim.control_outcome is None and claim.ok and not claim.table["control"].any()


def test_run_rejects_bad_input_before_computing(toy_claims, tmp_path):
    with pytest.raises(ValueError, match="profile"):
        run(toy_claims, "nope", 0)
    with pytest.raises(ValueError, match="seed"):
        run(toy_claims, QUICK, -1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        run(toy_claims, QUICK, 0, out_dir=tmp_path / "file")


def test_progress_is_one_line_per_claim_not_a_bar_when_stderr_is_not_a_tty(toy_claims, capsys):
    run(_pick(toy_claims, "T.3"), QUICK, 0, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "udl: running 1 claim (2 cell tasks)" and len(lines) == 2
    assert lines[1].startswith("udl: [1/1] T.3 PASS, control FAIL (") and "\r" not in lines[1]
    run(_pick(toy_claims, "T.3"), QUICK, 0, progress=False)
    assert capsys.readouterr().err == ""


class _RecordingExecutor:
    def __init__(self):
        self.tasks = []

    def map(self, fn, tasks):
        tasks = list(tasks)
        self.tasks += tasks
        # round-trip every task through pickle, as a process executor would
        return [fn(pickle.loads(pickle.dumps(task))) for task in tasks]


def test_executor_seam_ships_picklable_cell_tasks(toy_claims):
    executor = _RecordingExecutor()
    assert isinstance(executor, Executor) and isinstance(SerialExecutor(), Executor)
    shipped = run(_pick(toy_claims, "T.1a"), QUICK, 0, executor=executor, progress=False)
    assert len(executor.tasks) == 4  # 2 cells x (claim, control)
    serial = run(_pick(toy_claims, "T.1a"), QUICK, 0, progress=False)
    pd.testing.assert_frame_equal(shipped.claims["T.1a"].table, serial.claims["T.1a"].table)


# --------------------------------------------------------------------------- discovery
def _write_package(root, name, files):
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for filename, text in files.items():
        (package / filename).write_text(textwrap.dedent(text))
    return str(package)


_CLAIM_SOURCE = """
    from udl.engine.harness import Claim
    P = {"cells": [{"a": 1}], "n_instances": 2}
    class C(Claim):
        id = "{id}"
        theorem = "X"; title = "t"; statement = "s"; kind = "identity"
        effect = "e"; regime = "r"; control = "c"
        profiles = {"quick": P, "ci": P, "paper": P}
        def simulate(self, cell, seeds, ctx): ...
        def decide(self, table): ...
"""


def test_discover_finds_toy_claims_sorted_by_id(toy_claims):
    assert list(toy_claims) == ["T.1a", "T.1b", "T.2", "T.3", "T.3b"]
    assert all(isinstance(c, harness.Claim) for c in toy_claims.values())


def test_discover_skips_private_modules_and_rejects_duplicates(tmp_path):
    ok = _write_package(tmp_path, "pkg_ok", {"one.py": _CLAIM_SOURCE.replace("{id}", "X.1"),
                                             "_helpers.py": "raise RuntimeError('never imported')"})
    assert list(harness.discover(ok)) == ["X.1"]
    dup = _write_package(tmp_path, "pkg_dup", {"a.py": _CLAIM_SOURCE.replace("{id}", "X.1"),
                                               "b.py": _CLAIM_SOURCE.replace("{id}", "X.1")})
    with pytest.raises(harness.ClaimDefinitionError, match="defined twice"):
        harness.discover(dup)


def test_discover_is_loud_about_broken_modules_and_claims(tmp_path):
    broken = _write_package(tmp_path, "pkg_broken", {"a.py": "import does_not_exist_anywhere"})
    with pytest.raises(harness.ClaimDefinitionError, match="failed to import"):
        harness.discover(broken)
    bad = _write_package(tmp_path, "pkg_bad", {"a.py": _CLAIM_SOURCE.replace("{id}", "bad id")
                                               .replace('kind = "identity"', 'kind = "vibes"')})
    with pytest.raises(harness.ClaimDefinitionError, match="kind"):
        harness.discover(bad)


def test_check_claim_lists_every_problem():
    class Incomplete(harness.Claim):
        id = "Q.1"
        kind = "identity"
        profiles = {"quick": {"cells": [{"instance": 1}], "n_instances": 0}}

    problems = "\n".join(harness.check_claim(Incomplete))
    for fragment in ("theorem", "statement", "simulate", "decide", "reserved", "n_instances", "'ci': missing"):
        assert fragment in problems


def test_select_claims_by_id_and_theorem(toy_claims):
    assert list(harness.select_claims(toy_claims, ["T.1"])) == ["T.1a", "T.1b"]
    assert list(harness.select_claims(toy_claims, ["T.3b", " T.1a"])) == ["T.1a", "T.3b"]
    with pytest.raises(ValueError, match="'XYZ'"):
        harness.select_claims(toy_claims, ["XYZ"])


# --------------------------------------------------------------------------- run directories
def test_two_runs_with_the_same_seed_have_identical_claims_sections(toy_claims, tmp_path):
    first = run(toy_claims, QUICK, 5, out_dir=tmp_path / "a", progress=False)
    run(toy_claims, QUICK, 5, out_dir=tmp_path / "b", progress=False)
    a, b = results.load_run(tmp_path / "a"), results.load_run(tmp_path / "b")
    for key in ("claims", "run", "summary"):
        assert json.dumps(a.results[key], sort_keys=True) == json.dumps(b.results[key], sort_keys=True)
    tree_a, tree_b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert {k: v for k, v in tree_a.items() if k.startswith("tables")} == \
        {k: v for k, v in tree_b.items() if k.startswith("tables")}
    other = run(_pick(toy_claims, "T.1a"), QUICK, 6, progress=False)
    assert not other.claims["T.1a"].table.equals(first.claims["T.1a"].table)


def test_results_json_records_the_run(toy_claims, tmp_path):
    run(toy_claims, QUICK, 0, out_dir=tmp_path / "r", progress=False,
        ctx=Context(device="cpu"))
    stored = results.load_run(tmp_path / "r")
    doc = stored.results
    assert doc["format"] == results.FORMAT and doc["run"]["seed"] == 0 and doc["run"]["dtype"] == "float64"
    for key in ("udl", "torch", "numpy", "python", "host", "git_commit"):
        assert key in doc["environment"]
    assert set(doc["timing"]["claims"]) == set(toy_claims)
    record = doc["claims"]["T.1a"]
    for key in ("id", "theorem", "title", "statement", "kind", "outcome", "statistic_name", "statistic",
                "interval", "threshold", "n", "alpha", "beta", "effect", "regime", "p_raw", "p_adjusted",
                "control", "detail"):
        assert key in record
    assert record["control"]["outcome"] == "FAIL" and record["control"]["description"]
    assert doc["claims"]["T.2"]["outcome"] == "ERROR" and doc["claims"]["T.2"]["table"] is None
    assert "RuntimeError" in doc["diagnostics"]["tracebacks"]["T.2"]["claim"]
    assert set(stored.tables) == {"T.1a", "T.1b", "T.3", "T.3b"}
    assert stored.tables["T.1a"]["control"].dtype == bool
    assert doc["summary"]["ok"] is False


def test_write_replaces_an_earlier_run_and_leaves_no_debris(toy_claims, tmp_path):
    target = tmp_path / "run"
    run(_pick(toy_claims, "T.1a"), QUICK, 0, out_dir=target, progress=False)
    run(_pick(toy_claims, "T.3"), QUICK, 0, out_dir=target, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["run"]
    assert list(results.load_run(target).tables) == ["T.3"]


def test_a_crash_mid_write_leaves_the_old_run_intact(toy_claims, tmp_path, monkeypatch):
    target = tmp_path / "run"
    run(_pick(toy_claims, "T.1a"), QUICK, 0, out_dir=target, progress=False)
    before = _tree(target)
    real_write, calls = results._write_text, []

    def crash_after_first_file(path, text):
        calls.append(path)
        if len(calls) > 1:
            raise OSError("disk full (simulated)")
        real_write(path, text)

    monkeypatch.setattr(results, "_write_text", crash_after_first_file)
    with pytest.raises(OSError, match="simulated"):
        run(_pick(toy_claims, "T.1a", "T.3"), QUICK, 1, out_dir=target, progress=False)
    assert _tree(target) == before and sorted(os.listdir(tmp_path)) == ["run"]


def test_a_crash_while_swapping_restores_the_old_run(toy_claims, tmp_path, monkeypatch):
    target = tmp_path / "run"
    run(_pick(toy_claims, "T.1a"), QUICK, 0, out_dir=target, progress=False)
    before = _tree(target)
    real_replace, calls = os.replace, []

    def fail_second_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # staging -> target, after the old run was moved aside
            raise OSError("rename failed (simulated)")
        real_replace(src, dst)

    monkeypatch.setattr(results.os, "replace", fail_second_rename)
    with pytest.raises(OSError, match="simulated"):
        run(_pick(toy_claims, "T.3"), QUICK, 0, out_dir=target, progress=False)
    monkeypatch.undo()
    assert _tree(target) == before and sorted(os.listdir(tmp_path)) == ["run"]


def test_never_replaces_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="refusing"):
        results.check_target(tmp_path / "precious")
    (tmp_path / "empty").mkdir()
    assert results.check_target(tmp_path / "empty") == tmp_path / "empty"
    assert results.check_target(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
