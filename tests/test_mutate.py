"""The mutation machinery end to end: a claim's control mutant, mutants in worker processes, the
cell cache under a mutant, and `udl mutate` (the kill matrix) on the toy claims of
tests/toy_claims_mutate (three tiny claims on udl.core, each killed by one mutant)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from udl.app import cli
from udl.app.mutate import MATRIX_FILES, expected_outcome, is_kill
from udl.engine.anatomy import Context, check_claim
from udl.engine.cache import CellCache
from udl.engine.discovery import discover
from udl.engine.runner import run

PACKAGE = str(Path(__file__).resolve().parent / "toy_claims_mutate")
#: One mutant killed by each toy claim (M.1, M.2, M.3 — the last by an ERROR the claim declares),
#: and one that reaches none of them.
KILLED = ("oracle-sign", "threshold-lambda", "lasso-unconverged")
SURVIVOR = "omega-rescaled"


@pytest.fixture(scope="module")
def toy():
    return discover(PACKAGE)


def _files(directory: Path) -> dict:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _mutate(capsys, *args):
    status = cli.main(["mutate", "--claims-package", PACKAGE, "--no-cache", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --------------------------------------------------------------------------- control mutants
def test_a_control_mutant_is_the_claims_own_simulate_under_the_mutant(toy):
    result = run({"M.1": toy["M.1"]}, "quick", 0, progress=False).claims["M.1"]
    assert result.outcome == "PASS" and result.control_outcome == "FAIL"
    control_rows = result.table[result.table["control"]]
    claim_rows = result.table[~result.table["control"]]
    assert len(control_rows) == len(claim_rows) == 10
    # the same instances, with g*'s sign flipped: ⟨g*, D − D*⟩ changes sign exactly
    assert (control_rows["inner"].to_numpy() == -claim_rows["inner"].to_numpy()).all()


def test_check_claim_rejects_an_unknown_control_mutant(toy):
    broken = type("Broken", (type(toy["M.1"]),), {"control_mutant": "no-such-bug"})
    problems = check_claim(broken)
    assert any("control_mutant 'no-such-bug' is not a mutant (known: " in p for p in problems)
    assert check_claim(type(toy["M.1"])) == []


def test_run_rejects_an_unknown_mutant_before_computing(toy):
    with pytest.raises(ValueError, match="unknown mutant 'nope'"):
        run(toy, "quick", 0, Context(mutant="nope"), progress=False)


def test_a_mutant_reaches_worker_processes(toy):
    from udl.engine.executors import ProcessExecutor

    with ProcessExecutor(workers=2) as executor:
        result = run({"M.1": toy["M.1"]}, "quick", 0, Context(mutant="oracle-sign"), executor=executor,
                     controls=False, progress=False)
    assert result.claims["M.1"].outcome == "FAIL"


# --------------------------------------------------------------------------- the cache
def test_a_mutated_cell_is_never_written_to_the_cache(toy, tmp_path):
    cache_dir = tmp_path / "cache"
    run(toy, "quick", 0, Context(mutant="threshold-lambda"), cache=cache_dir, controls=False, progress=False)
    assert not cache_dir.exists() or not any(p.is_file() for p in cache_dir.rglob("*"))


def test_a_cached_unmutated_cell_is_not_served_to_a_mutated_run(toy, tmp_path):
    cache = CellCache(tmp_path / "cache")
    clean = run({"M.2": toy["M.2"]}, "quick", 0, cache=cache, controls=False, progress=False)
    assert clean.claims["M.2"].outcome == "PASS" and cache.stats.stored == 1
    before = _files(cache.directory)
    mutated = run({"M.2": toy["M.2"]}, "quick", 0, Context(mutant="threshold-lambda"), cache=cache,
                  controls=False, progress=False)
    assert mutated.claims["M.2"].outcome == "FAIL" and mutated.cells["cached"] == 0
    assert cache.stats.hits == 0 and _files(cache.directory) == before     # nothing read, nothing written
    again = run({"M.2": toy["M.2"]}, "quick", 0, cache=cache, controls=False, progress=False)
    assert again.cells["cached"] == 1 and again.claims["M.2"].outcome == "PASS"


# --------------------------------------------------------------------------- the kill rule
def test_the_kill_rule():
    assert is_kill("PASS", "FAIL", False) and is_kill("INCONCLUSIVE", "FAIL", False)
    assert not is_kill("PASS", "INCONCLUSIVE", False) and not is_kill("PASS", "PASS", True)
    assert not is_kill("PASS", "ERROR", False) and is_kill("PASS", "ERROR", True)
    assert is_kill("PASS", "ERROR", False, "DegenerateSampleError: cell 0: instances are not independent")
    assert is_kill("PASS", "ERROR", False, "decide: DegenerateSampleError: log ratio is 0.0 with zero spread")
    assert not is_kill("PASS", "ERROR", False, "decide: ValueError: DegenerateSampleError: quoted")
    assert not is_kill("FAIL", "FAIL", False) and not is_kill("ERROR", "ERROR", True)   # a broken claim kills nothing
    assert expected_outcome("PASS", True, False) == "FAIL" and expected_outcome("PASS", False, False) == "PASS"
    assert expected_outcome("FAIL", True, False) == "FAIL" and expected_outcome("PASS", True, True) == "FAIL or ERROR"


# --------------------------------------------------------------------------- udl mutate
def test_the_kill_matrix_of_the_toy_claims(capsys, tmp_path):
    out = tmp_path / "matrix"
    status, stdout, stderr = _mutate(capsys, "--mutants", ",".join((*KILLED, SURVIVOR)), "--out", str(out))
    assert status == 1, stderr
    assert f"3 of 4 mutants killed; surviving: {SURVIVOR}" in stdout
    assert stderr.count("udl mutate: [") == 4 and f"{SURVIVOR} (interpretation): SURVIVED" in stderr
    assert set(_files(out)) == set(MATRIX_FILES)
    matrix = pd.read_csv(out / "kill-matrix.csv").set_index("claim")
    assert list(matrix.columns) == ["baseline", *KILLED, SURVIVOR]
    assert matrix.loc["M.1"].tolist() == ["PASS", "FAIL", "PASS", "PASS", "PASS"]
    assert matrix.loc["M.2"].tolist() == ["PASS", "PASS", "FAIL", "PASS", "PASS"]
    assert matrix.loc["M.3"].tolist() == ["PASS", "PASS", "PASS", "ERROR", "PASS"]
    cells = pd.read_csv(out / "cells.csv", keep_default_na=False)
    killed = cells[cells["killed"]]
    assert sorted(zip(killed["claim"], killed["mutant"])) == [("M.1", "oracle-sign"), ("M.2", "threshold-lambda"),
                                                               ("M.3", "lasso-unconverged")]
    assert not cells.loc[cells["mutant"] == SURVIVOR, "reached"].any()
    assert (cells["sentence"] == "").all()          # every outcome here is the expected one
    text = (out / "kill-matrix.md").read_text(encoding="utf-8")
    assert f"`{SURVIVOR}`: **survives** (reaches no claim)" in text and "| M.3 | PASS | PASS · | PASS · | **ERROR** |" in text


def test_every_mutant_killed_exits_0_and_replaces_an_earlier_matrix(capsys, tmp_path):
    out = tmp_path / "matrix"
    assert _mutate(capsys, "--mutants", SURVIVOR, "--claims", "M.1", "--out", str(out))[0] == 1
    status, stdout, _ = _mutate(capsys, "--mutants", "oracle-sign", "--claims", "M.1", "--out", str(out))
    assert status == 0 and "1 of 1 mutants killed" in stdout
    assert pd.read_csv(out / "kill-matrix.csv").columns.tolist() == ["claim", "baseline", "oracle-sign"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrix"]           # no staging or set-aside left


def test_a_sentence_for_a_claim_blind_to_a_bug_that_reaches_it(capsys, tmp_path):
    # shared signs change the instances of M.1, but ⟨g*, D − D*⟩ stays positive: M.1 is blind to them
    out = tmp_path / "m"
    status, _, _ = _mutate(capsys, "--mutants", "shared-signs", "--claims", "M.1", "--out", str(out))
    cells = pd.read_csv(out / "cells.csv", keep_default_na=False)
    assert status == 1 and cells["reached"].all() and cells["outcome"].tolist() == ["PASS"]
    assert "M.1 still PASSES under shared-signs" in cells["sentence"].iloc[0]
    assert "blind to it" in (out / "kill-matrix.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("args, message", [
    (["--mutants", "nope"], "argument --mutants: unknown mutant 'nope' (known: "),
    (["--mutants", "oracle-sign,"], "argument --mutants: empty name"),
    (["--claims", "Z.9"], "argument --claims"),
    (["--profile", "huge"], "argument --profile"),
])
def test_bad_input_exits_2_and_writes_nothing(capsys, tmp_path, args, message):
    out = tmp_path / "matrix"
    status, stdout, stderr = _mutate(capsys, "--out", str(out), *args)
    assert status == 2 and message in stderr and not out.exists() and stdout == ""


def test_an_output_directory_that_is_not_a_kill_matrix_is_refused(capsys, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    status, _, stderr = _mutate(capsys, "--mutants", "oracle-sign", "--out", str(out))
    assert status == 2 and "argument --out" in stderr and "notes.txt" in stderr
    assert _files(out) == {"notes.txt": b"keep me"}


def test_a_failed_write_leaves_the_earlier_matrix_whole(capsys, tmp_path, monkeypatch):
    from udl.app import mutate

    out = tmp_path / "matrix"
    assert _mutate(capsys, "--mutants", "oracle-sign", "--claims", "M.1", "--out", str(out))[0] == 0
    before = _files(out)

    def broken(matrix):
        raise OSError("disk full")

    monkeypatch.setattr(mutate, "to_markdown", broken)
    status, _, stderr = _mutate(capsys, "--mutants", "threshold-lambda", "--claims", "M.1", "--out", str(out))
    assert status == 2 and "disk full" in stderr                  # an OSError: one line, exit 2
    assert _files(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["matrix"]
