"""Executors: the seam, local processes and Dask give results identical to a serial run; a lost
worker is retried or reported as an error naming its cell; worker threads are capped.

The Dask tests start one LocalCluster (2 worker processes, 1 thread each, on 127.0.0.1) for
the module and stop it at the end; they and the process tests are marked ``slow`` (they
start Python processes that import torch) but still run in CI.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from udl.app import cli
from udl.engine import executors, harness, results
from udl.engine.executors import Completed, ExecutorError, ProcessExecutor, SerialExecutor
from udl.engine.harness import run

from _helpers import EXEC_PACKAGE, claims_section, tables_csv

QUICK = "quick"


def _sleepy(**switches):
    claim = harness.discover(EXEC_PACKAGE)["E.1"]
    for name, value in switches.items():
        setattr(claim, name, value)
    return claim


@pytest.fixture(scope="module")
def serial_reference(toy_claims):
    """Serial run of the toy claims and the six-cell claim E.1 (the reference of every backend)."""
    return run({**toy_claims, "E.1": _sleepy()}, QUICK, 0, progress=False)


# --------------------------------------------------------------------------- specs and threads
@pytest.mark.parametrize("spec, parsed", [
    ("serial", ("serial", None)), ("processes", ("processes", None)), ("dask", ("dask", None)),
    ("tcp://127.0.0.1:8786", ("dask", "tcp://127.0.0.1:8786")),
    ("tcp://scheduler.example.org:8786", ("dask", "tcp://scheduler.example.org:8786")),
])
def test_parse_spec_accepts_the_documented_forms(spec, parsed):
    assert executors.parse_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["", "threads", "tcp://", "tcp://host", "tcp://host:0", "tcp://host:99999",
                                  "http://host:8786", "tcp://host:87x"])
def test_parse_spec_rejects_anything_else_naming_it(spec):
    with pytest.raises(ValueError, match="invalid executor"):
        executors.parse_spec(spec)


def test_make_executor_builds_without_starting_anything():
    assert isinstance(executors.make_executor("serial"), SerialExecutor)
    processes = executors.make_executor("processes", workers=3)
    assert isinstance(processes, ProcessExecutor) and processes.workers == 3 and processes._pool is None
    remote = executors.make_executor("tcp://127.0.0.1:1")
    assert isinstance(remote, executors.DaskExecutor) and remote._client is None and remote.workers is None


def test_threads_per_worker_divides_the_cores():
    assert executors.threads_per_worker(2, cores=16) == 8
    assert executors.threads_per_worker(3, cores=16) == 5
    assert executors.threads_per_worker(4, cores=2) == 1
    assert executors.threads_per_worker(1, cores=1) == 1


def test_cap_threads_sets_torch_and_the_blas_variables(monkeypatch):
    import torch

    before = torch.get_num_threads()
    for name in executors.THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    try:
        executors.cap_threads(1)
        assert torch.get_num_threads() == 1
        assert all(os.environ[name] == "1" for name in executors.THREAD_ENV_VARS)
    finally:
        torch.set_num_threads(before)


def test_limit_threads_sets_every_pool_and_restores_them():
    import torch
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with executors.limit_threads(1):
            assert torch.get_num_threads() == 1
            assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_every_cell_computes_with_the_runs_thread_count(toy_claims):
    import torch

    seen = []
    claim = type(toy_claims["T.1a"])()
    real = type(claim).simulate
    claim.simulate = lambda cell, seeds, ctx: seen.append(torch.get_num_threads()) or real(claim, cell, seeds, ctx)
    run([claim], QUICK, 0, progress=False)
    run([claim], QUICK, 0, progress=False, threads=2)
    assert seen == [1] * 4 + [2] * 4
    with pytest.raises(ValueError, match="threads"):
        run([claim], QUICK, 0, threads=0)


# --------------------------------------------------------------------------- the seam
class _MapOnly:
    """An executor with only ``map`` (the protocol's minimum)."""

    def __init__(self, fail_at=None):
        self.fail_at = fail_at

    def map(self, fn, tasks):
        for index, task in enumerate(tasks):
            if index == self.fail_at:
                raise OSError("link down")
            yield fn(task)


def test_completed_adapts_a_map_only_executor(toy_claims, serial_reference):
    items = list(executors.completed(_MapOnly(), lambda x: x * 2, [1, 2, 3]))
    assert items == [Completed(0, 2), Completed(1, 4), Completed(2, 6)]
    shipped = run(toy_claims, QUICK, 0, executor=_MapOnly(), progress=False)
    reference = {cid: r for cid, r in serial_reference.claims.items() if cid in toy_claims}
    assert tables_csv(shipped) == {cid: r.table.to_csv(index=False, lineterminator="\n") for cid, r in reference.items()}


def test_a_failing_map_only_executor_names_the_task(toy_claims):
    with pytest.raises(ExecutorError, match=r"T\.1a cell 1 \{\"flips\":200\}: .*OSError: link down"):
        run({"T.1a": toy_claims["T.1a"]}, QUICK, 0, executor=_MapOnly(fail_at=2), progress=False)


class _LosesOne:
    """map_completed that reports task ``lost`` as failed on the executor's side."""

    def __init__(self, lost, drop=False):
        self.lost, self.drop = lost, drop

    def map(self, fn, tasks):  # pragma: no cover - the runner prefers map_completed
        raise AssertionError

    def map_completed(self, fn, tasks):
        for index, task in reversed(list(enumerate(tasks))):  # any order is allowed
            if index != self.lost:
                yield Completed(index, fn(task))
            elif not self.drop:
                yield Completed(index, None, ExecutorError(f"{task.label}: its worker died on every retry"))


def test_an_executor_side_failure_is_an_error_naming_the_cell_not_a_dropped_cell(toy_claims):
    chosen = {"T.1a": toy_claims["T.1a"], "T.3": toy_claims["T.3"]}
    result = run(chosen, QUICK, 0, executor=_LosesOne(lost=1), progress=False)
    lost = result.claims["T.1a"]
    assert lost.outcome == "PASS"  # the claim side (task 0) is complete and decided
    assert lost.control_outcome == "ERROR"
    assert lost.control_error == 'T.1a cell 0 {"flips":100} (control): its worker died on every retry'
    assert "ExecutorError" in lost.control_traceback
    assert result.claims["T.3"].outcome == "PASS" and result.cells["errors"] == 1
    assert not result.ok


def test_an_executor_that_drops_a_task_is_loud(toy_claims):
    with pytest.raises(ExecutorError, match=r"no result for: T\.1a cell 0 \{\"flips\":100\} \(control\)"):
        run({"T.1a": toy_claims["T.1a"]}, QUICK, 0, executor=_LosesOne(lost=1, drop=True), progress=False)


class _FakePool:
    """A process pool double: a task in ``crashes`` breaks the pool (its count runs down)."""

    def __init__(self, crashes, log):
        self.crashes, self.log = crashes, log

    def submit(self, fn, task):
        future = Future()
        self.log.append(task)
        if self.crashes.get(task, 0) > 0:
            self.crashes[task] -= 1
            future.set_exception(BrokenProcessPool("a worker died"))
        else:
            future.set_result(fn(task))
        return future


def test_process_executor_retries_lost_workers_then_reports_the_cell(monkeypatch):
    crashes, log, pools = {"b": 1, "c": 99}, [], []
    executor = ProcessExecutor(workers=2, retries=2)

    def start():
        if executor._pool is None:
            executor._pool = _FakePool(crashes, log)
            pools.append(executor._pool)
        return executor._pool

    monkeypatch.setattr(executor, "_start", start)
    monkeypatch.setattr(executor, "_stop", lambda kill: setattr(executor, "_pool", None))
    items = sorted(executor.map_completed(str.upper, ["a", "b", "c", "d"]), key=lambda item: item.index)
    assert [item.index for item in items] == [0, 1, 2, 3]  # every task reported exactly once
    assert [item.value for item in items] == ["A", "B", None, "D"]
    assert isinstance(items[2].error, ExecutorError)
    assert "'c': a worker process died while running it 3 times" in str(items[2].error)
    assert log.count("b") == 2 and log.count("c") == 3 and log.count("a") == log.count("d") == 1
    assert executor.restarts == len(pools) == 4  # every break replaced the pool


# --------------------------------------------------------------------------- local processes
@pytest.mark.slow
def test_processes_match_serial_and_survive_a_worker_that_dies(toy_claims, serial_reference, tmp_path):
    crashing = _sleepy(crash_dir=str(tmp_path))  # cell 1 kills its worker process the first time
    with ProcessExecutor(workers=2) as executor:
        shipped = run({**toy_claims, "E.1": crashing}, QUICK, 0, executor=executor, progress=False)
        threads = executor._start().submit(_probe().thread_settings).result()
        assert executor.restarts == 1  # the pool broke once, the cells in flight were retried
    assert (tmp_path / "E.1-1-crash").exists()
    assert claims_section(shipped) == claims_section(serial_reference)
    assert tables_csv(shipped) == tables_csv(serial_reference)
    assert shipped.cells["computed"] == 26 and shipped.cells["errors"] == 2  # T.2 raises (as serially)
    cap = executors.threads_per_worker(2)
    assert threads == {"torch": cap, "OMP_NUM_THREADS": str(cap), "MKL_NUM_THREADS": str(cap)}


def _probe():
    import importlib

    harness.discover(EXEC_PACKAGE)  # puts the package's parent on sys.path
    return importlib.import_module("toy_claims_exec._probe")


# --------------------------------------------------------------------------- dask
@pytest.fixture(scope="module")
def dask_executor(toy_claims):
    """A DaskExecutor with its own LocalCluster: 2 worker processes on 127.0.0.1, 1 thread each."""
    pytest.importorskip("distributed")
    harness.discover(EXEC_PACKAGE)  # workers inherit sys.path at spawn: make the toys importable
    with executors.DaskExecutor(workers=2) as executor:
        executor.client  # start the cluster now
        yield executor


@pytest.mark.slow
def test_dask_matches_serial_and_caps_worker_threads(toy_claims, serial_reference, dask_executor):
    shipped = run({**toy_claims, "E.1": _sleepy()}, QUICK, 0, executor=dask_executor, progress=False)
    assert claims_section(shipped) == claims_section(serial_reference)
    assert tables_csv(shipped) == tables_csv(serial_reference)
    assert shipped.cells["computed"] == 26 and shipped.cells["executor"] == "DaskExecutor(workers=2)"
    client = dask_executor.client
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2 and all(address.startswith("tcp://127.0.0.1:") for address in workers)
    cap = executors.threads_per_worker(2)
    settings = client.run(_probe().thread_settings)
    assert all(s == {"torch": cap, "OMP_NUM_THREADS": str(cap), "MKL_NUM_THREADS": str(cap)}
               for s in settings.values()), settings


#: Real claims that are cheap at quick (about a second each) and whose last digits moved with
#: the thread count before cells ran at a fixed one: II.2a with numpy's OpenBLAS pool, II.4a
#: with torch's intra-op threads.
REAL_CLAIMS = ("II.1d", "II.2a", "II.4a")


@pytest.mark.slow
def test_dask_matches_serial_on_real_claims(dask_executor):
    import torch

    available = harness.discover("claims")
    chosen = {cid: available[cid] for cid in REAL_CLAIMS if cid in available}
    if not chosen:
        pytest.skip(f"none of {REAL_CLAIMS} is in claims/")
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # this process's setting must not reach the cells
    try:
        serial = run(chosen, QUICK, 0, progress=False)
    finally:
        torch.set_num_threads(before)
    shipped = run(chosen, QUICK, 0, executor=dask_executor, progress=False)
    assert all(r.outcome != "ERROR" for r in serial.claims.values()), {c: r.error for c, r in serial.claims.items()}
    assert claims_section(shipped) == claims_section(serial) and tables_csv(shipped) == tables_csv(serial)


@pytest.mark.slow
def test_udl_verify_on_an_existing_scheduler_matches_serial(toy_package, dask_executor, tmp_path, capsys):
    address = dask_executor._cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    common = ["verify", "--claims-package", toy_package, "--profile", QUICK, "--no-progress", "--no-cache"]
    assert cli.main([*common, "--out", str(tmp_path / "serial")]) == 1  # T.2 raises, T.1b's control passes
    assert cli.main([*common, "--out", str(tmp_path / "dask"), "--executor", address]) == 1
    out = capsys.readouterr().out
    assert f"on DaskExecutor(address='{address}')" in out
    serial, dask = results.load_run(tmp_path / "serial"), results.load_run(tmp_path / "dask")
    assert (json.dumps(serial.results["claims"], sort_keys=True) == json.dumps(dask.results["claims"], sort_keys=True))
    for table in ("T.1a", "T.1b", "T.3", "T.3b"):
        path = Path("tables") / f"{table}.csv.gz"
        assert (tmp_path / "serial" / path).read_bytes() == (tmp_path / "dask" / path).read_bytes()
    assert dask_executor.client.status == "running"  # the CLI closed only its own client


@pytest.mark.slow
def test_a_callers_client_is_used_and_left_open(toy_claims, serial_reference, dask_executor):
    client = dask_executor.client
    with executors.DaskExecutor(client=client) as borrowed:
        shipped = run({"T.1a": toy_claims["T.1a"]}, QUICK, 0, executor=borrowed, progress=False)
    assert client.status == "running" and borrowed.client is client
    assert tables_csv(shipped)["T.1a"] == tables_csv(serial_reference)["T.1a"]


def test_an_unreachable_scheduler_exits_2_naming_it(toy_package, tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 2)
    status = cli.main(["verify", "--claims-package", toy_package, "--profile", QUICK, "--claims", "T.1a",
                       "--out", str(tmp_path / "r"), "--executor", "tcp://127.0.0.1:9", "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "tcp://127.0.0.1:9" in err[0] and "--executor" in err[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_killing_a_dask_worker_mid_run_still_gives_a_complete_correct_run(serial_reference, dask_executor):
    """Runs last in the module: the cluster's nanny restarts the killed worker afterwards."""
    client, cluster = dask_executor.client, dask_executor._cluster
    killed = []

    def kill_a_busy_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = sorted(address for address, keys in client.processing().items() if keys)
            for nanny in cluster.workers.values():
                if busy and nanny.worker_address == busy[0] and nanny.process is not None:
                    pid = nanny.process.process.pid
                    os.kill(pid, signal.SIGKILL)
                    killed.append((busy[0], pid))
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    shipped = run([_sleepy(nap=1.0)], QUICK, 0, executor=dask_executor, progress=False)
    killer.join(timeout=5)
    assert killed, "no worker was busy to kill"
    assert shipped.cells == {**shipped.cells, "total": 12, "computed": 12, "errors": 0}
    reference = serial_reference.claims["E.1"]
    assert shipped.claims["E.1"].table.equals(reference.table)
    assert shipped.claims["E.1"].outcome == reference.verdict.outcome == "PASS"
    assert shipped.claims["E.1"].verdict == reference.verdict
    assert shipped.claims["E.1"].control_verdict == reference.control_verdict
