"""The cache of finished cells: hits and misses, what the key depends on, resuming an
interrupted run, errors never cached, atomic entries, entries stored as data (never unpickled),
the default location, the `udl verify` cache flags, and `udl cache info|prune|clear`."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from udl.app import options
from udl.engine import cache_files, harness, results, runner, sources, table_codec, tasks
from udl.engine.cache import CellCache
from udl.engine.harness import Context, RunInterrupted, run

from _helpers import EXEC_PACKAGE, claims_section, tables_csv

QUICK = "quick"


def _entries(directory) -> list[Path]:
    """The description (``<key>.json``) of every entry; each has its table (``<key>.csv.gz``) beside it."""
    found = sorted(Path(directory).rglob("*.json"))
    assert all(p.with_name(p.name.replace(".json", ".csv.gz")).is_file() for p in found)
    return found


def _table_of(entry: Path) -> Path:
    return entry.with_name(entry.name.replace(".json", ".csv.gz"))


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
    entries[0].write_bytes(b"\x80not json")
    _table_of(entries[1]).write_bytes(_table_of(entries[1]).read_bytes()[:20])  # truncated
    again = run([claim], QUICK, 0, progress=False, cache=cache)
    assert again.cells["computed"] == 2 and again.cells["cached"] == 10
    assert claims_section(again) == claims_section(reference)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files and all(p.name.endswith((".json", ".csv.gz")) or p.name == "CACHEDIR.TAG" for p in files)
    assert len(_entries(cache)) == 12 and run([claim], QUICK, 0, progress=False, cache=cache).cells["cached"] == 12


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
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert verify("--claims", "T.1a", "--out", "r1")[0] == 0
    assert len(_entries(tmp_path / "xdg" / "udl")) == 4  # the default cache directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1", "xdg"]  # nothing in the working directory
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
    (["--executor", "serial", "--workers", "2"], "--workers"),
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


# --------------------------------------------------------------------------- the default location
@pytest.mark.parametrize("env, expected", [
    ({"UDL_CACHE_DIR": "{tmp}/explicit", "XDG_CACHE_HOME": "{tmp}/xdg"}, "{tmp}/explicit"),
    ({"XDG_CACHE_HOME": "{tmp}/xdg"}, "{tmp}/xdg/udl"),
    ({"XDG_CACHE_HOME": "relative/xdg"}, "{tmp}/home/.cache/udl"),  # the XDG spec ignores a relative path
    ({}, "{tmp}/home/.cache/udl"),
])
def test_default_directory_is_never_the_working_directory(tmp_path, monkeypatch, env, expected):
    monkeypatch.chdir(tmp_path)
    for name in ("UDL_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_files.default_directory() == Path(expected.format(tmp=tmp_path))
    assert CellCache().directory == Path(expected.format(tmp=tmp_path))


def test_verify_help_names_the_default_location(capsys):
    from udl.app import cli

    assert cli.main(["verify", "--help"]) == 0
    assert "$UDL_CACHE_DIR, else $XDG_CACHE_HOME/udl, else ~/.cache/udl" in " ".join(capsys.readouterr().out.split())


# --------------------------------------------------------------------------- entries are data
def _mixed_table() -> pd.DataFrame:
    """Every column kind the codec writes, with the values that are easy to lose."""
    negative_nan = np.frombuffer(np.uint64(0xFFF8000000000000).tobytes(), dtype=np.float64)[0]
    floats = np.array([0.1, 1 / 3, -0.0, np.inf, -np.inf, np.nan, negative_nan, 5e-324, 1.7976931348623157e308,
                       -2.5e-310], dtype=np.float64)
    n = len(floats)
    return pd.DataFrame({
        "claim": pd.array(["X.1"] * n, dtype=pd.StringDtype(na_value=np.nan)),
        "control": np.array([True, False] * (n // 2)),
        "instance": np.arange(n, dtype=np.int64),
        "seed": np.array([2**63 - 1, -2**63] + [7] * (n - 2), dtype=np.int64),
        "big": np.array([2**64 - 1] * n, dtype=np.uint64),
        "x": floats,
        "x32": np.array([0.1, 1 / 3, -0.0, np.inf, -np.inf, np.nan, negative_nan, 1e-45, 3.4e38, -2.5e-40],
                        dtype=np.float32),
        "text": pd.array(["", None, "a,b", 'say "hi"', "line\nbreak", "ünï", "nan", "None", " ", "NaN"],
                         dtype=pd.StringDtype(na_value=np.nan)),
        "label": pd.array(["a", pd.NA, "", "b", "c", "d", "e", "f", "g", "h"], dtype=pd.StringDtype()),
        "count": pd.array([1, None, -3, None, None, 6, 7, 8, 9, 2**62], dtype="Int64"),
        "flag": pd.array([True, None, False] + [True] * (n - 3), dtype="boolean"),
        "obj": pd.Series([None, [1, 2.5], {"k": "v"}, "s", 3, 0.5, float("nan"), True, [], "x"], dtype=object),
    })


def test_a_table_reads_back_identical_bit_for_bit():
    table = _mixed_table()
    data, columns = table_codec.encode_table(table)
    back = table_codec.decode_table(data, columns)
    assert table_codec.identical(back, table)
    assert list(back.dtypes.astype(str)) == list(table.dtypes.astype(str))
    for name in ("x", "x32", "seed", "big"):
        assert back[name].to_numpy().tobytes() == table[name].to_numpy().tobytes()
    assert np.signbit(back["x"].to_numpy()[6]) and not np.signbit(back["x"].to_numpy()[5])  # NaN signs kept
    assert back["text"].isna().tolist() == table["text"].isna().tolist() and back["text"][0] == ""
    assert data.decode().splitlines()[0].startswith("claim,control,instance,seed,big,x,x32,text")
    empty = table.iloc[:0].reset_index(drop=True)
    assert table_codec.identical(table_codec.decode_table(*table_codec.encode_table(empty)), empty)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True), max_size=30),
       st.lists(st.text(max_size=8) | st.none(), max_size=30))
def test_any_floats_and_texts_read_back_bit_for_bit(floats, texts):
    n = min(len(floats), len(texts))
    values = np.array(floats[:n], dtype=np.float64)
    table = pd.DataFrame({"x": values, "negated": -values,  # every sign bit flipped, NaNs' included
                          "t": pd.array(texts[:n], dtype=pd.StringDtype(na_value=np.nan))})
    back = table_codec.decode_table(*table_codec.encode_table(table))
    assert table_codec.identical(back, table)
    assert back["x"].to_numpy().tobytes() == values.tobytes()
    assert back["negated"].to_numpy().tobytes() == (-values).tobytes()


def test_the_identity_check_sees_one_flipped_bit():
    """identical() is what guarantees a stored table reads back the same: it must notice a NaN sign."""
    table = _mixed_table()
    flipped = table.copy()
    flipped["x"] = np.where(np.arange(len(table)) == 5, -table["x"].to_numpy(), table["x"].to_numpy())
    assert not table_codec.identical(flipped, table)
    renamed = table.rename(columns={"x": "y"})
    assert not table_codec.identical(renamed, table)
    retyped = table.astype({"instance": np.int32})
    assert not table_codec.identical(retyped, table)


@pytest.mark.parametrize("bad", [
    lambda t: t.assign(obj=pd.Series([(1, 2)] * len(t), dtype=object)),        # a tuple reads back as a list
    lambda t: t.assign(obj=pd.Series([np.float64(1.0)] * len(t), dtype=object)),  # a numpy scalar as a float
    lambda t: t.assign(when=pd.Timestamp("2024-01-01")),
    lambda t: t.assign(kind=pd.Categorical(["a"] * len(t))),
    lambda t: t.set_index("instance"),
])
def test_a_table_that_cannot_read_back_identical_is_refused(bad):
    with pytest.raises(table_codec.TableCodecError):
        table_codec.encode_table(bad(_mixed_table()))


def test_an_entry_is_csv_and_json_with_its_provenance(sleepy, tmp_path):
    claim, _ = sleepy
    cache = CellCache(tmp_path / "cache")
    task = runner._tasks({"E.1": claim}, QUICK, 0, Context(), controls=False)[0]
    key = cache.key(task)
    outcome = tasks.simulate_cell(task)
    assert cache.store(task, key, outcome)
    entry, = _entries(tmp_path / "cache")
    meta = json.loads(entry.read_text())
    assert meta["format"] == "udl-cell-cache/2" and meta["key"] == key.digest and entry.stem == key.digest
    assert (meta["claim"], meta["cell_index"], meta["cell"], meta["control"]) == ("E.1", 0, {"k": 0}, False)
    assert meta["seeds"] == list(task.seeds) and meta["udl_version"]
    assert meta["code"]["version"] == key.version and entry.parent.parent.name == key.version[:16]
    assert str(sources.UDL_ROOT) in meta["code"]["sources"]  # all of udl (core included), not only the engine
    assert [c["name"] for c in meta["table"]["columns"]] == list(outcome.table.columns)
    assert {c["name"]: c["dtype"] for c in meta["table"]["columns"]} == outcome.table.dtypes.astype(str).to_dict()
    text = gzip.decompress(_table_of(entry).read_bytes()).decode()
    assert text.splitlines()[0] == ",".join(outcome.table.columns) and len(text.splitlines()) == len(outcome.table) + 1
    assert (tmp_path / "cache" / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    hit = CellCache(tmp_path / "cache").load(task, key)
    assert hit is not None and table_codec.identical(hit.table, outcome.table)


def test_a_table_that_cannot_be_stored_is_computed_every_time(sleepy, tmp_path):
    claim, _ = sleepy
    cache = CellCache(tmp_path / "cache")
    task = runner._tasks({"E.1": claim}, QUICK, 0, Context(), controls=False)[0]
    outcome = tasks.simulate_cell(task)
    odd = tasks.CellOutcome(outcome.table.assign(extra=pd.Series([(1,)] * len(outcome.table), dtype=object)),
                            None, None, 0.0)
    assert not cache.store(task, cache.key(task), odd) and cache.stats.uncacheable == 1
    assert cache.load(task, cache.key(task)) is None and not _entries(tmp_path / "cache")


class _Planted:
    """Unpickling this creates the directory ``marker``: a stand-in for a pickle that runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_pickle_or_malformed_entry_is_never_executed_only_recomputed(sleepy, tmp_path):
    claim, _ = sleepy
    cache = tmp_path / "cache"
    reference = run([claim], QUICK, 0, progress=False, cache=cache)
    entries = _entries(cache)
    marker = tmp_path / "executed"
    payload = pickle.dumps(_Planted(marker))
    _table_of(entries[0]).write_bytes(payload)                         # table replaced by a pickle
    entries[1].write_bytes(payload)                                    # description replaced by a pickle
    _table_of(entries[2]).write_bytes(gzip.compress(payload))          # a gzipped pickle as the table
    meta = json.loads(entries[3].read_text())
    meta["table"]["columns"][0]["kind"] = "pickle"                     # a kind that does not exist
    entries[3].write_text(json.dumps(meta))
    meta = json.loads(entries[4].read_text())
    meta["key"] = "0" * 64                                             # another entry's description
    entries[4].write_text(json.dumps(meta))
    (entries[5].parent / f"{entries[5].stem}.pkl").write_bytes(payload)  # a pickle beside a good entry
    legacy = cache / "v1" / ("0" * 16) / "E.1" / ("1" * 64 + ".pkl")  # a (pickled) entry of an earlier udl
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(payload)
    again = run([claim], QUICK, 0, progress=False, cache=cache)
    assert again.cells["computed"] == 5 and again.cells["cached"] == 7
    assert claims_section(again) == claims_section(reference) and tables_csv(again) == tables_csv(reference)
    assert not marker.exists()  # nothing was unpickled
    pickle.loads(payload)
    assert marker.exists()  # ... and the payload is live: unpickling it would have left this trace


# --------------------------------------------------------------------------- code versions
def test_a_package_installed_under_another_name_is_versioned_by_its_own_folder(tmp_path, monkeypatch):
    """udl.claims of an editable install lives in the checkout's claims/, not in udl/: editing a
    claim must still change the code version (its own folder is hashed)."""
    host, elsewhere = tmp_path / "host" / "hostpkg", tmp_path / "checkout" / "mapped"
    for folder in (host, elsewhere):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    (elsewhere / "mod.py").write_text("class C:\n    pass\n")
    monkeypatch.syspath_prepend(str(host.parent))
    import importlib
    import importlib.util

    monkeypatch.delitem(sys.modules, "hostpkg", raising=False)
    importlib.import_module("hostpkg")
    spec = importlib.util.spec_from_file_location("hostpkg.mapped", elsewhere / "__init__.py",
                                                  submodule_search_locations=[str(elsewhere)])
    package = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "hostpkg.mapped", package)
    spec.loader.exec_module(package)
    module = importlib.import_module("hostpkg.mapped.mod")
    try:
        assert sources.source_root("hostpkg.mapped.mod") == elsewhere.resolve()
        before = sources.code_version(module.C)
        (elsewhere / "mod.py").write_text("class C:\n    pass\n# an edit\n")
        assert sources.code_version(module.C) != before
    finally:
        for name in ("hostpkg.mapped.mod", "hostpkg"):
            sys.modules.pop(name, None)


# --------------------------------------------------------------------------- udl cache info|prune|clear
def _cache_cli(capsys, *args):
    from udl.app import cli

    status = cli.main(["cache", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def two_versions(tmp_path):
    """A cache with 12 entries of an edited claim module (stale) and 12 of its current source, plus
    files that are not udl's; returns (cache dir, claims, foreign files)."""
    package = tmp_path / "pkg_cache_cli"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = Path(EXEC_PACKAGE, "sleepy.py").read_text()
    (package / "sleepy.py").write_text(source)
    cache = tmp_path / "cache"
    assert run(harness.discover(str(package)), QUICK, 0, progress=False, cache=cache).cells["computed"] == 12
    (package / "sleepy.py").write_text(source + "\n# an edit\n")
    claims = harness.discover(str(package))
    assert run(claims, QUICK, 0, progress=False, cache=cache).cells["computed"] == 12
    foreign = [cache / "notes.txt", next(cache.rglob("*.json")).parent / "mine.txt"]
    for path in foreign:
        path.write_text("not udl's")
    return cache, claims, foreign


def test_cache_info_prune_and_clear(two_versions, capsys):
    cache, claims, foreign = two_versions
    status, out, _ = _cache_cli(capsys, "info", "--cache-dir", str(cache))
    assert status == 0 and f"cache: {cache} (--cache-dir)" in out
    assert "entries: 24 (" in out and "current: 12 (" in out and "stale: 12 (" in out
    assert "not udl's, left alone: 2 files" in out
    status, out, _ = _cache_cli(capsys, "prune", "--cache-dir", str(cache))
    assert status == 0 and "removed 12 stale or broken entries" in out and "kept 12 current entries" in out
    assert len(_entries(cache)) == 12
    assert run(claims, QUICK, 0, progress=False, cache=cache).cells["cached"] == 12  # the current ones stay
    status, out, err = _cache_cli(capsys, "clear", "--cache-dir", str(cache))
    assert status == 0 and "removed 12 entries" in out and "notes.txt" in err
    assert not _entries(cache) and all(p.read_text() == "not udl's" for p in foreign)
    assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()) == sorted(
        p.relative_to(cache).as_posix() for p in foreign)  # nothing else is left, and nothing else was removed
    status, out, _ = _cache_cli(capsys, "info", "--cache-dir", str(cache))
    assert status == 0 and "entries: 0 (" in out


def test_clear_removes_the_directory_when_only_udl_wrote_there(toy_claims, tmp_path, capsys):
    run(toy_claims, QUICK, 0, progress=False, cache=tmp_path / "cache")
    assert _cache_cli(capsys, "clear", "--cache-dir", str(tmp_path / "cache"))[0] == 0
    assert not (tmp_path / "cache").exists()
    status, out, _ = _cache_cli(capsys, "clear", "--cache-dir", str(tmp_path / "cache"))
    assert status == 0 and "nothing to remove" in out


def test_legacy_pickled_entries_are_stale(tmp_path, capsys):
    legacy = tmp_path / "old" / "v1" / ("a" * 16) / "II.1a" / ("b" * 64 + ".pkl")
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"\x80\x04N.")
    status, out, _ = _cache_cli(capsys, "info", "--cache-dir", str(tmp_path / "old"))
    assert status == 0 and "entries: 1 (" in out and "stale: 1 (" in out
    assert _cache_cli(capsys, "prune", "--cache-dir", str(tmp_path / "old"))[0] == 0
    assert not legacy.exists()


@pytest.mark.parametrize("action", ["clear", "prune"])
def test_a_folder_that_is_not_a_udl_cache_is_refused(tmp_path, capsys, action):
    folder = tmp_path / "work"
    (folder / "v2" / ("0" * 16) / "x").mkdir(parents=True)
    files = [folder / "paper.tex", folder / "v2" / ("0" * 16) / "x" / ("c" * 64 + ".json")]
    for path in files:
        path.write_text("keep me")
    status, out, err = _cache_cli(capsys, action, "--cache-dir", str(folder))
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "not a udl cache" in err and str(folder) in err
    assert all(p.read_text() == "keep me" for p in files)


@pytest.mark.parametrize("action", ["info", "clear", "prune"])
def test_cache_dir_that_is_a_file_is_refused(tmp_path, capsys, action):
    (tmp_path / "file").write_text("x")
    status, out, err = _cache_cli(capsys, action, "--cache-dir", str(tmp_path / "file"))
    assert status == 2 and "--cache-dir" in err and "not a directory" in err
    assert (tmp_path / "file").read_text() == "x"


def test_cache_without_an_action_is_bad_input(capsys):
    status, _, err = _cache_cli(capsys)
    assert status == 2 and "ACTION" in err
    status, _, err = _cache_cli(capsys, "purge")
    assert status == 2 and "'purge'" in err
