"""The cache of finished cells: hits and misses, what the key depends on, resuming an
interrupted run, errors never cached, atomic entries, and the `udl verify` cache flags."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from udl.app import options
from udl.engine import harness, results, runner, tasks
from udl.engine.cache import CellCache
from udl.engine.harness import Context, RunInterrupted, run

from _helpers import EXEC_PACKAGE, claims_section, tables_csv

QUICK = "quick"


def _entries(directory) -> list[Path]:
    return sorted(Path(directory).rglob("*.pkl"))


@pytest.fixture
def sleepy():
    """A fresh instance of the six-cell executor toy claim E.1 and its CALLS log (cleared)."""
    claim = harness.discover(EXEC_PACKAGE)["E.1"]
    calls = sys.modules[type(claim).__module__].CALLS
    calls.clear()
    return claim, calls


def test_second_run_reads_every_finished_cell_and_is_identical(toy_claims, tmp_path):
    cache = tmp_path / "cache"
    first = run(toy_claims, QUICK, 0, progress=False, cache=cache, out_dir=tmp_path / "a")
    second = run(toy_claims, QUICK, 0, progress=False, cache=cache, out_dir=tmp_path / "b")
    # 5 claims: 7 cells x (claim, control) = 14 tasks; T.2's two cells raise (never cached)
    assert first.cells == {"total": 14, "cached": 0, "computed": 14, "errors": 2, "threads_per_cell": 1,
                           "executor": "SerialExecutor()", "cache": str(cache)}
    assert second.cells["cached"] == 12 and second.cells["computed"] == 2 and second.cells["errors"] == 2
    assert len(_entries(cache)) == 12
    assert claims_section(first) == claims_section(second) and tables_csv(first) == tables_csv(second)
    a, b = results.load_run(tmp_path / "a").results, results.load_run(tmp_path / "b").results
    assert json.dumps(a["claims"], sort_keys=True) == json.dumps(b["claims"], sort_keys=True)
    assert b["diagnostics"]["cells"] == second.cells  # counts live in diagnostics, not in claims
    assert "cached" not in json.dumps(b["claims"])


def test_no_cache_computes_everything(toy_claims, tmp_path):
    run(toy_claims, QUICK, 0, progress=False, cache=tmp_path)
    again = run(toy_claims, QUICK, 0, progress=False)
    assert again.cells["cached"] == 0 and again.cells["computed"] == 14 and again.cells["cache"] is None


def test_key_depends_on_seed_dtype_device_encoder_control_and_cell(sleepy, toy_claims):
    claim, _ = sleepy
    cache = CellCache("unused")
    task = runner._tasks({"E.1": claim}, QUICK, 0, Context(), controls=True)
    base = cache.key(task[0])
    assert base is not None and cache.key(task[0]) == base
    assert cache.key(task[1]) != base  # control
    assert cache.key(task[2]) != base  # next cell
    other_seed = runner._tasks({"E.1": claim}, QUICK, 1, Context(), controls=False)[0]
    assert cache.key(other_seed) != base
    for ctx in (Context(dtype=torch.float32), Context(device="cuda"), Context(encoder={"kind": "fista"})):
        changed = runner._tasks({"E.1": claim}, QUICK, 0, ctx, controls=False)[0]
        assert cache.key(changed) != base
    fewer = tasks.CellTask(claim, 0, task[0].cell, task[0].seeds[:3], task[0].ctx)
    assert cache.key(fewer) != base  # the instance seeds (n) are part of the key
    assert cache.key(tasks.CellTask(claim, 0, task[0].cell, task[0].seeds, task[0].ctx, threads=2)) != base
    other_claim = runner._tasks(toy_claims, QUICK, 0, Context(), controls=False)[0]
    assert cache.key(other_claim)[1] != base[1]


def test_editing_the_claim_source_invalidates_its_entries(tmp_path):
    package = tmp_path / "pkg_cache_version"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = Path(EXEC_PACKAGE, "sleepy.py").read_text()
    (package / "sleepy.py").write_text(source)
    claims = harness.discover(str(package))
    cache = tmp_path / "cache"
    assert run(claims, QUICK, 0, progress=False, cache=cache).cells["computed"] == 12
    assert run(claims, QUICK, 0, progress=False, cache=cache).cells["computed"] == 0
    (package / "sleepy.py").write_text(source + "\n# an edit\n")
    assert run(claims, QUICK, 0, progress=False, cache=cache).cells["computed"] == 12


def test_an_interrupted_run_resumes_and_recomputes_only_missing_cells(sleepy, tmp_path):
    claim, calls = sleepy
    reference = run([harness.discover(EXEC_PACKAGE)["E.1"]], QUICK, 0, progress=False)
    calls.clear()
    claim.interrupt_dir = str(tmp_path)  # cell 3 raises KeyboardInterrupt the first time
    cache = tmp_path / "cache"
    with pytest.raises(RunInterrupted) as interrupted:
        run([claim], QUICK, 0, progress=False, cache=cache)
    assert isinstance(interrupted.value, KeyboardInterrupt)
    assert (interrupted.value.done, interrupted.value.total, interrupted.value.cached) == (6, 12, 6)
    assert len(_entries(cache)) == 6
    first_calls = list(calls)
    assert first_calls == [(k, c) for k in range(3) for c in (False, True)] + [(3, False)]
    calls.clear()
    resumed = run([claim], QUICK, 0, progress=False, cache=cache)
    assert resumed.cells["cached"] == 6 and resumed.cells["computed"] == 6
    assert sorted(calls) == [(k, c) for k in range(3, 6) for c in (False, True)]
    assert claims_section(resumed) == claims_section(reference) and tables_csv(resumed) == tables_csv(reference)


def test_errors_are_never_cached(sleepy, tmp_path):
    claim, calls = sleepy
    claim.fail_dir = str(tmp_path)  # cell 2 (claim side) raises the first time only
    cache = tmp_path / "cache"
    first = run([claim], QUICK, 0, progress=False, cache=cache)
    assert first.claims["E.1"].outcome == "ERROR" and "first-time failure in cell 2" in first.claims["E.1"].error
    assert first.cells["errors"] == 1 and len(_entries(cache)) == 11
    calls.clear()
    second = run([claim], QUICK, 0, progress=False, cache=cache)
    assert calls == [(2, False)] and second.cells["computed"] == 1 and second.cells["cached"] == 11
    assert second.claims["E.1"].outcome == "PASS" and second.claims["E.1"].control_outcome == "FAIL"


def test_unreadable_entries_are_recomputed_and_no_temporary_files_remain(sleepy, tmp_path):
    claim, _ = sleepy
    cache = tmp_path / "cache"
    reference = run([claim], QUICK, 0, progress=False, cache=cache)
    entries = _entries(cache)
    entries[0].write_bytes(b"\x80not a pickle")
    entries[1].write_bytes(entries[1].read_bytes()[:20])  # truncated
    again = run([claim], QUICK, 0, progress=False, cache=cache)
    assert again.cells["computed"] == 2 and again.cells["cached"] == 10
    assert claims_section(again) == claims_section(reference)
    assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".pkl"]


def test_a_claim_that_cannot_be_pickled_is_computed_not_cached(toy_claims, tmp_path):
    claim = type(toy_claims["T.1a"])()
    real = claim.simulate
    claim.simulate = lambda cell, seeds, ctx: real(cell, seeds, ctx)  # instance state: a lambda
    cache = CellCache(tmp_path)
    for _ in range(2):
        result = run([claim], QUICK, 0, progress=False, cache=cache)
        assert result.cells["computed"] == 4 and result.claims["T.1a"].outcome == "PASS"
    assert cache.stats.uncacheable == 8 and not _entries(tmp_path)


def test_cache_path_that_is_a_file_is_rejected_before_computing(toy_claims, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        run(toy_claims, QUICK, 0, progress=False, cache=tmp_path / "file")


# --------------------------------------------------------------------------- udl verify
def test_verify_caches_by_default_and_no_cache_recomputes(verify, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(options.CACHE_ENV, raising=False)
    assert verify("--claims", "T.1a", "--out", "r1")[0] == 0
    assert len(_entries(tmp_path / ".udl-cache")) == 4  # the default cache directory
    status, out, _ = verify("--claims", "T.1a", "--out", "r2")
    assert status == 0 and "cells: 4 (4 from the cache, 0 computed, 0 errors)" in out
    status, out, _ = verify("--claims", "T.1a", "--out", "r3", "--no-cache")
    assert status == 0 and "0 from the cache, 4 computed" in out and "no cache" in out
    docs = [json.loads((tmp_path / r / "results.json").read_text()) for r in ("r1", "r2", "r3")]
    assert docs[1]["diagnostics"]["cells"]["cached"] == 4 and docs[2]["diagnostics"]["cells"]["cache"] is None
    assert len({json.dumps(d["claims"], sort_keys=True) for d in docs}) == 1


def test_verify_cache_dir_and_environment_variable(verify, tmp_path, monkeypatch):
    monkeypatch.setenv(options.CACHE_ENV, str(tmp_path / "from-env"))
    assert verify("--claims", "T.1a", "--out", str(tmp_path / "r"))[0] == 0
    assert len(_entries(tmp_path / "from-env")) == 4
    assert verify("--claims", "T.1a", "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "flag"))[0] == 0
    assert len(_entries(tmp_path / "flag")) == 4


def test_verify_interrupted_exits_130_and_the_rerun_resumes(verify, tmp_path, monkeypatch):
    calls = []

    def interrupt_third(task):
        calls.append(task.label)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(task)

    real = runner.simulate_cell
    monkeypatch.setattr(runner, "simulate_cell", interrupt_third)  # where run() looks it up
    args = ("--claims", "T.1a", "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"))
    status, out, err = verify(*args)
    assert status == options.EXIT_INTERRUPTED and out == ""
    assert "interrupted after 2 of 4 cells; 2 cells kept in the cache" in err and "rerun" in err
    assert not (tmp_path / "r").exists()
    status, out, _ = verify(*args)
    assert status == 0 and "cells: 4 (2 from the cache, 2 computed, 0 errors)" in out
    assert len(calls) == 5


@pytest.mark.parametrize("args, named", [
    (["--no-cache", "--cache-dir", "x"], "--cache-dir"),
    (["--executor", "spark"], "'spark'"),
    (["--executor", "tcp://nohost"], "'tcp://nohost'"),
    (["--workers", "0"], "'0'"),
    (["--workers", "2"], "--workers"),
    (["--executor", "tcp://127.0.0.1:8786", "--workers", "2"], "--workers"),
])
def test_bad_executor_and_cache_flags_exit_2(verify, tmp_path, args, named):
    status, out, err = verify("--claims", "T.1a", "--out", str(tmp_path / "r"), *args)
    lines = err.strip().splitlines()
    assert status == 2 and out == "" and len(lines) == 1 and named in lines[0], err
    assert not (tmp_path / "r").exists()


def test_cache_dir_that_is_a_file_exits_2(verify, tmp_path):
    (tmp_path / "file").write_text("x")
    status, _, err = verify("--claims", "T.1a", "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "file"))
    assert status == 2 and "--cache-dir" in err and not (tmp_path / "r").exists()
