"""Executors: where the runner's per-cell work is computed.

The runner ships one task per (claim, cell, control) — a batch of instances — through an
executor. The seam is small:

- ``map(fn, tasks)`` (the :class:`Executor` protocol) yields ``fn(task)`` **in task order**,
  like :meth:`concurrent.futures.Executor.map`. Anything with this method is an executor.
- ``map_completed(fn, tasks)`` (optional) yields a :class:`Completed` ``(index, value,
  error)`` per task **as it finishes**; an exception raised on the executor's side for one
  task (a lost worker, a task that could not be shipped) comes back as that task's
  ``error`` instead of ending the whole map. The runner uses it when present (so finished
  cells are cached at once, whatever the order), and :func:`completed` adapts a plain
  ``map`` executor to it.

``fn`` is a module-level function and the tasks are picklable, so the process and Dask
executors run the same function as the serial one. Because instance seeds derive from the
cell's identity (never from order, worker or time), every executor gives identical tables.

Executors here:

- :class:`SerialExecutor` – in this process, one task after the other (default).
- :class:`ProcessExecutor` – ``concurrent.futures.ProcessPoolExecutor`` with the *spawn*
  start method; a lost worker process (the pool breaks) restarts the pool and retries the
  tasks that were in flight, up to ``retries`` times, then reports those cells as errors.
- :class:`DaskExecutor` – Dask distributed: a :class:`distributed.LocalCluster` on 127.0.0.1
  (``address=None``) or an existing scheduler (``address="tcp://host:port"``). A worker lost
  mid-task is handled by the scheduler, which reschedules the task on another worker
  (``distributed.scheduler.allowed-failures``, default 3, before it gives up with
  ``KilledWorker``, reported as that cell's error); a task that raises is resubmitted
  ``retries`` times.

**Threads.** Floating-point results of BLAS and torch reductions depend on how many threads
split them (measured here: a real claim's statistics moved in the last digits between 1 and
2 threads, and with numpy's OpenBLAS pool size). So every cell computes with the same
thread count on every executor: :func:`limit_threads` (``torch.set_num_threads`` plus the
OpenBLAS/MKL/OpenMP pools through ``threadpoolctl``) around each cell, with the run's
``threads`` (:data:`udl.engine.harness.CELL_THREADS` = 1 by default). Parallelism comes from cells
running side by side in workers. Worker processes additionally cap their pools at start
(``torch.set_num_threads`` and the OMP/MKL/OpenBLAS/NumExpr variables) at
``max(1, cores // workers)`` (:func:`threads_per_worker`), so nothing a worker runs
outside a cell oversubscribes the machine either. These thread helpers live in
:mod:`udl.engine.threads` (which the Dask worker plugin imports too) and are re-exported here.

:func:`make_executor` builds one from the ``udl verify --executor`` spec.
"""

from __future__ import annotations

import re
import signal
import traceback
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, runtime_checkable

from udl.engine.threads import (THREAD_ENV_VARS, cap_threads, limit_threads, thread_env, threads_per_worker,
                                usable_cores)

__all__ = [
    "Executor",
    "Completed",
    "ExecutorError",
    "SerialExecutor",
    "ProcessExecutor",
    "DaskExecutor",
    "completed",
    "make_executor",
    "parse_spec",
    "usable_cores",
    "threads_per_worker",
    "cap_threads",
    "limit_threads",
    "THREAD_ENV_VARS",
    "DEFAULT_RETRIES",
]

#: Extra attempts of a task whose worker was lost (processes) or that raised on the
#: executor's side (Dask ``retries``). 2 retries ride out an OOM-killed or pre-empted worker;
#: a task that kills its worker every time still ends (as that cell's error) after 3 tries.
DEFAULT_RETRIES = 2
#: Seconds to wait for an existing Dask scheduler before giving up with a clear error: a
#: reachable scheduler answers in milliseconds (even across a data centre), so a few seconds
#: separate "unreachable" from "slow" without leaving a mistyped address hanging for long.
CONNECT_TIMEOUT_S = 5
_TCP_SPEC = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")


class ExecutorError(RuntimeError):
    """An executor could not be built, started or reached (bad spec, unreachable scheduler)."""


@runtime_checkable
class Executor(Protocol):
    """The seam: ``map(fn, tasks)`` yields ``fn(task)`` for each task, in task order."""

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Apply ``fn`` to each task and yield the results in task order."""
        ...


@dataclass(frozen=True)
class Completed:
    """One finished task: its position in the task list, and ``fn``'s value or the error.

    ``error`` is the exception raised on the executor's side (``None`` on success) and
    ``traceback`` its formatted traceback.
    """

    index: int
    value: Any = None
    error: BaseException | None = None
    traceback: str | None = None


def _describe(task) -> str:
    label = getattr(task, "label", None)
    return label if isinstance(label, str) else repr(task)


def completed(executor, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Completed]:
    """Run ``tasks`` on ``executor`` and yield a :class:`Completed` per task as it finishes.

    Uses ``executor.map_completed`` when the executor has one (any order; per-task errors),
    else ``executor.map`` (task order; an exception from ``map`` is re-raised as an
    :class:`ExecutorError` naming the task it stopped at).
    """
    tasks = list(tasks)
    if hasattr(executor, "map_completed"):
        yield from executor.map_completed(fn, tasks)
        return
    index = 0
    try:
        for index, value in enumerate(executor.map(fn, tasks)):
            yield Completed(index, value)
    except Exception as exc:
        where = _describe(tasks[index + 1]) if index + 1 < len(tasks) else "a task"
        raise ExecutorError(f"executor {executor!r} failed at or after {where}: "
                            f"{type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- serial
class SerialExecutor:
    """Run every task in this process, one after the other (lazily, in order)."""

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(task)`` for each task in order.

        Parameters
        ----------
        fn : callable
            Function of one task.
        tasks : iterable
            The tasks.

        Yields
        ------
        object
            ``fn(task)``.
        """
        for task in tasks:
            yield fn(task)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return "SerialExecutor()"


# --------------------------------------------------------------------------- local processes
def _init_process_worker(threads: int) -> None:
    """Initializer of a pool worker: cap its threads; leave Ctrl-C to the parent.

    A terminal's SIGINT reaches the whole process group; the parent decides what happens
    (it saves what finished and stops the pool), so the workers ignore it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cap_threads(threads)


class ProcessExecutor:
    """Run tasks in ``workers`` local processes (``ProcessPoolExecutor``, spawn start method).

    Parameters
    ----------
    workers : int, optional
        Worker processes (default: the usable cores).
    threads : int, optional
        Threads per worker (default :func:`threads_per_worker`).
    retries : int
        Extra attempts of a task that was in flight when a worker process died (the pool
        breaks: OOM kill, segfault, ``kill -9``); after that the task is reported as failed
        (its cell becomes an ERROR in the results), never dropped.

    Notes
    -----
    At most ``workers`` tasks are in flight at a time, so a broken pool charges an attempt
    only to tasks that were really running. The pool is started on first use and kept
    until :meth:`close` (or the ``with`` block ends).
    """

    def __init__(self, workers: int | None = None, threads: int | None = None, retries: int = DEFAULT_RETRIES):
        self.workers = usable_cores() if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self.threads = threads_per_worker(self.workers) if threads is None else max(1, int(threads))
        self.retries = int(retries)
        self._pool = None
        #: Worker pools that broke (a worker process died) during this executor's life.
        self.restarts = 0

    def _start(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_process_worker, initargs=(self.threads,))
        return self._pool

    def _stop(self, kill: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=not kill, cancel_futures=True)
        if kill:
            for process in processes:
                if process.is_alive():
                    process.terminate()
            for process in processes:
                process.join(timeout=5)

    def map_completed(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Completed]:
        """Yield a :class:`Completed` per task as it finishes (see the module notes)."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        tasks = list(tasks)
        waiting = list(range(len(tasks)))[::-1]  # a stack: pop() gives task order
        attempts = [0] * len(tasks)
        running: dict = {}
        clean = False

        def lost(index, error):
            """A task whose worker died: retry it, or report it once its attempts are spent."""
            if attempts[index] <= self.retries:
                waiting.append(index)
                return None
            return Completed(index, None, ExecutorError(
                f"{_describe(tasks[index])}: a worker process died while running it "
                f"{attempts[index]} times ({type(error).__name__}: {error})"), None)

        try:
            while waiting or running:
                pool = self._start()
                broken = False
                while waiting and len(running) < self.workers:
                    index = waiting.pop()
                    try:
                        future = pool.submit(fn, tasks[index])
                    except BrokenProcessPool:
                        waiting.append(index)
                        broken = True
                        break
                    attempts[index] += 1
                    running[future] = index
                if not broken:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                else:
                    done = set(running)
                for future in sorted(done, key=running.get):
                    index = running.pop(future)
                    error = future.exception()  # waits: a broken pool fails every running future
                    if error is None:
                        yield Completed(index, future.result())
                    elif isinstance(error, BrokenProcessPool):
                        broken = True
                        report = lost(index, error)
                        if report is not None:
                            yield report
                    else:
                        yield Completed(index, None, error, "".join(traceback.format_exception(error)))
                if broken:
                    # the rest of the running tasks died with the pool (or finished just before)
                    for future, index in sorted(running.items(), key=lambda item: item[1]):
                        error = future.exception()
                        if error is None:
                            yield Completed(index, future.result())
                        elif isinstance(error, BrokenProcessPool):
                            report = lost(index, error)
                            if report is not None:
                                yield report
                        else:
                            yield Completed(index, None, error, "".join(traceback.format_exception(error)))
                    running.clear()
                    waiting.sort(reverse=True)
                    self._stop(kill=True)
                    self.restarts += 1
            clean = True
        finally:
            if not clean:  # interrupted (Ctrl-C) or abandoned: do not wait for running cells
                for future in running:
                    future.cancel()
                self._stop(kill=True)

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(task)`` in task order; raises the first task error."""
        tasks = list(tasks)
        yield from _in_order(self.map_completed(fn, tasks), len(tasks))

    def close(self) -> None:
        """Stop the worker processes (waits for tasks still running: call it between runs)."""
        self._stop(kill=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProcessExecutor(workers={self.workers}, threads={self.threads})"


def _in_order(results: Iterator[Completed], n: int) -> Iterator[Any]:
    held: dict[int, Completed] = {}
    following = 0
    for item in results:
        held[item.index] = item
        while following in held:
            item = held.pop(following)
            if item.error is not None:
                raise item.error
            yield item.value
            following += 1
    if following != n:  # pragma: no cover - an executor that lost a task
        raise ExecutorError(f"executor returned {following} of {n} results")


# --------------------------------------------------------------------------- dask
class DaskExecutor:
    """Run tasks on Dask distributed: a LocalCluster on 127.0.0.1, or an existing scheduler.

    Parameters
    ----------
    address : str, optional
        ``"tcp://host:port"`` of a running scheduler; ``None`` starts a
        :class:`distributed.LocalCluster` on 127.0.0.1 (worker processes, 1 thread each,
        no dashboard) that :meth:`close` stops.
    workers : int, optional
        Workers of the local cluster (default: the usable cores); unused with ``address``.
    retries : int
        Dask ``retries`` of each task (resubmissions when the task raises on the worker's
        side; losing a worker is handled by the scheduler, see the module notes).
    client : distributed.Client, optional
        Use this client (the caller owns it; ``close`` leaves it alone).

    Notes
    -----
    Workers must import ``udl`` and the claims package (same environment as this process).
    Every worker's thread pools are capped through a worker plugin (``udl-thread-cap``).
    """

    def __init__(self, address: str | None = None, workers: int | None = None, retries: int = DEFAULT_RETRIES,
                 client=None):
        self.address = address
        self.workers = None if address is not None or client is not None else (
            usable_cores() if workers is None else int(workers))
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self.retries = int(retries)
        self._client = client
        self._own_client = client is None
        self._cluster = None
        self._plugin_registered = False

    @property
    def client(self):
        """The :class:`distributed.Client` (starts the local cluster or connects on first use)."""
        if self._client is None:
            self._client = self._connect()
        if not self._plugin_registered:
            self._register_thread_cap()
        return self._client

    def _connect(self):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - dask is an optional dependency
            raise ExecutorError("the Dask executors need dask[distributed]: pip install 'udl[dask]'") from exc
        if self.address is not None:
            try:
                return Client(self.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ExecutorError(f"cannot reach the Dask scheduler at {self.address}: "
                                    f"{type(exc).__name__}: {exc}") from exc
        threads = threads_per_worker(self.workers)
        self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None, env=thread_env(threads))
        try:
            return Client(self._cluster, set_as_default=False)
        except BaseException:
            self._cluster.close()
            self._cluster = None
            raise

    def _register_thread_cap(self) -> None:
        from udl.engine._dask import ThreadCap

        client = self._client
        if self._cluster is not None:
            plugin = ThreadCap(threads=threads_per_worker(self.workers))
        else:
            by_host: dict[str, int] = {}
            for info in client.scheduler_info().get("workers", {}).values():
                host = str(info.get("host", ""))
                by_host[host] = by_host.get(host, 0) + int(info.get("nthreads", 1) or 1)
            plugin = ThreadCap(threads_by_host=by_host)
        client.register_plugin(plugin, name="udl-thread-cap")
        self._plugin_registered = True

    def map_completed(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Completed]:
        """Submit every task; yield a :class:`Completed` per task as it finishes."""
        from distributed import as_completed

        tasks = list(tasks)
        client = self.client
        run = uuid.uuid4().hex[:8]
        futures = {}
        try:
            for index, task in enumerate(tasks):
                try:
                    future = client.submit(fn, task, key=f"udl-{run}-{index}", retries=self.retries, pure=False)
                except Exception as exc:  # the task cannot be shipped (e.g. not serialisable)
                    yield Completed(index, None, exc, "".join(traceback.format_exception(exc)))
                    continue
                futures[future] = index
            for future in as_completed(futures, loop=client.loop):
                index = futures[future]
                try:
                    value, error = future.result(), None
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # raised remotely, lost worker, cancelled, undecodable
                    value, error = None, exc
                future.release()
                if error is None:
                    yield Completed(index, value)
                    continue
                if type(error).__name__ == "KilledWorker":
                    error = ExecutorError(f"{_describe(tasks[index])}: its worker died while running it, "
                                          f"on every retry ({error})")
                    trace = None
                else:
                    trace = "".join(traceback.format_exception(error))
                yield Completed(index, None, error, trace)
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:  # interrupted: stop the rest of this run's cells on the cluster
                try:
                    client.cancel(pending)
                except Exception:  # pragma: no cover - best effort while unwinding
                    pass

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(task)`` in task order; raises the first task error."""
        tasks = list(tasks)
        yield from _in_order(self.map_completed(fn, tasks), len(tasks))

    def close(self) -> None:
        """Close the client (when this executor made it) and stop the local cluster."""
        if not self._own_client:  # the caller's client: leave it (and its cluster) alone
            return
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        self._plugin_registered = False
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.address is not None:
            return f"DaskExecutor(address={self.address!r})"
        if not self._own_client:
            return "DaskExecutor(client=...)"
        return f"DaskExecutor(workers={self.workers})"


# --------------------------------------------------------------------------- specs
def parse_spec(spec: str) -> tuple[str, str | None]:
    """Check an ``--executor`` spec: ``auto``, ``serial``, ``processes``, ``dask`` or ``tcp://HOST:PORT``.

    Returns
    -------
    (kind, address)
        ``kind`` in {"auto", "serial", "processes", "dask"}; ``address`` for ``tcp://`` specs.

    Raises
    ------
    ValueError
        Anything else; the message names the spec and the allowed forms.
    """
    text = str(spec).strip()
    if text in ("auto", "serial", "processes", "dask"):
        return text, None
    match = _TCP_SPEC.match(text)
    if match and 0 < int(match["port"]) < 65536:
        return "dask", text
    raise ValueError(f"invalid executor {spec!r} (allowed: auto, serial, processes, dask, tcp://HOST:PORT)")


def make_executor(spec: str = "serial", workers: int | None = None, retries: int = DEFAULT_RETRIES):
    """Build the executor named by an ``--executor`` spec (see :func:`parse_spec`).

    Parameters
    ----------
    spec : str
        ``auto`` uses every usable core: local worker processes (``workers`` of them, default
        :func:`usable_cores`), or this process alone when that is one (serial). Results are
        bit-identical either way (every cell computes with the same thread count).
    workers : int, optional
        Worker processes for ``auto``, ``processes`` and ``dask`` (default: the usable cores).
    retries : int

    Returns
    -------
    SerialExecutor, ProcessExecutor or DaskExecutor
        Use it as a context manager (or call ``close``) to stop what it started.
    """
    kind, address = parse_spec(spec)
    if kind == "auto":
        workers = usable_cores() if workers is None else int(workers)
        kind = "serial" if workers <= 1 else "processes"
    if kind == "serial":
        return SerialExecutor()
    if kind == "processes":
        return ProcessExecutor(workers=workers, retries=retries)
    return DaskExecutor(address=address, workers=workers, retries=retries)
