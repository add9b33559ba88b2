"""Thread pools of a process: how many threads a worker may use, and capping them.

Floating-point results of BLAS and torch reductions depend on how many threads split them
(measured here: a real claim's statistics moved in the last digits between 1 and 2 threads,
and with numpy's OpenBLAS pool size). So every cell computes with the same thread count on
every executor (:func:`limit_threads` around each cell), and worker processes cap their
pools at start (:func:`cap_threads`) at ``max(1, cores // workers)``
(:func:`threads_per_worker`).

Used by :mod:`udl.engine.executors` and by the Dask worker plugin (:mod:`udl.engine._dask`);
imports nothing else of udl.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["THREAD_ENV_VARS", "usable_cores", "threads_per_worker", "cap_threads", "limit_threads", "thread_env"]

#: Environment variables that size the BLAS/OpenMP thread pools of a worker process.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Threads each of ``workers`` worker processes on one machine may use: max(1, cores // workers)."""
    cores = usable_cores() if cores is None else int(cores)
    return max(1, cores // max(1, int(workers)))


def cap_threads(threads: int) -> None:
    """Cap this process's thread pools at ``threads``.

    Sets the OpenMP/BLAS variables (read by libraries that start their pools later) and
    ``torch.set_num_threads`` (torch's intra-op pool, effective at once).
    """
    threads = max(1, int(threads))
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def limit_threads(threads: int):
    """Run the ``with`` block with exactly ``threads`` threads in torch and the native pools.

    Sets torch's intra-op threads and, through ``threadpoolctl`` (when installed), the
    OpenBLAS, MKL and OpenMP pools that numpy, scipy and torch loaded; restores both after.
    The same count on every executor gives bit-identical cells.
    """
    import torch

    threads = max(1, int(threads))
    previous = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn, hence of udl
        threadpool_limits = None
    torch.set_num_threads(threads)
    try:
        if threadpool_limits is None:  # pragma: no cover
            yield
        else:
            with threadpool_limits(limits=threads):
                yield
    finally:
        torch.set_num_threads(previous)


def thread_env(threads: int) -> dict[str, str]:
    """The :data:`THREAD_ENV_VARS` of a process capped at ``threads`` (for a worker's environment)."""
    return {name: str(max(1, int(threads))) for name in THREAD_ENV_VARS}
