"""Dask-side helpers of :mod:`udl.engine.executors` (imported only when a Dask executor is used).

Kept in their own module so that ``import udl`` does not import ``distributed``, while the
worker plugin still pickles by reference (workers import ``udl.engine._dask``).
"""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from udl.engine.threads import cap_threads, threads_per_worker

__all__ = ["ThreadCap"]


class ThreadCap(WorkerPlugin):
    """Cap a Dask worker's thread pools; runs on every worker, restarted ones included.

    Parameters
    ----------
    threads : int, optional
        Threads per worker, when the caller knows (a local cluster).
    threads_by_host : dict, optional
        ``{host: task threads the cluster runs on that host}`` from the scheduler's view at
        registration; a worker on a host caps at ``max(1, cores // that number)``. A host
        missing from it divides its cores by the worker's own ``nthreads``.
    """

    idempotent = False

    def __init__(self, threads: int | None = None, threads_by_host: dict[str, int] | None = None):
        self.threads = threads
        self.threads_by_host = dict(threads_by_host or {})

    def cap_for(self, worker) -> int:
        """Threads the worker's pools get."""
        if self.threads is not None:
            return max(1, int(self.threads))
        host = worker.address.split("://")[-1].rsplit(":", 1)[0]
        busy = self.threads_by_host.get(host) or getattr(getattr(worker, "state", None), "nthreads", None) or 1
        return threads_per_worker(busy)

    def setup(self, worker) -> None:
        cap_threads(self.cap_for(worker))
