r"""What a run will cost, before it runs: the work each cell declares and this machine's rate.

A rough model, for ``udl verify --plan``: the work of one instance of a cell is the arithmetic of
its unrolled encoder,

.. math::  W = 4\,T\,n\,m\,p \cdot R \quad\text{flops},

— ``T`` layers (the cell's ``T`` or ``T_max``), each computing ``D Z`` and ``Dᵀ(D Z − X)`` on
``n`` examples with an ``m × p`` dictionary (2·m·p·n flops each; ``m`` defaults to ``p``) — times
``R``, the product of the cell's repetition counts (:data:`REPETITION_FIELDS`: training steps, the
points of a sweep inside the cell). A cell of ``k`` instances costs ``k · W``, its negative control
as much again. A claim whose work is not like this declares it: a method ``cost(cell)`` returning
the flops of one instance (it replaces the model for that claim). A cell without ``p`` or a layer
count, and no ``cost``, gets no estimate.

Seconds are the work divided by the rate of a matrix product measured here
(:func:`matmul_rate`: a few seconds of ``p × p`` products on the chosen device and dtype with the
run's threads per cell). Small products, Python overhead, data generation and solvers make real
cells slower than the model, so the estimate is a lower bound of the right order, not a promise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from udl.engine.cells import canonical_cell, cell_dict

__all__ = ["FLOPS_PER_LAYER_FACTOR", "REPETITION_FIELDS", "RATE_SIZE", "RATE_SECONDS", "CellCost", "cell_work",
           "claim_costs", "matmul_rate"]

#: Flops of one layer per (example × dictionary entry): ``D Z`` and ``Dᵀ R``, 2·m·p·n each.
FLOPS_PER_LAYER_FACTOR = 4.0
#: Integer cell fields that repeat the encoder's work inside one instance (training steps,
#: fitting steps, points of a sweep); each present multiplies the work.
REPETITION_FIELDS = ("n_steps", "fit_steps", "n_lam", "n_delta")
#: Side of the square matrices whose product is timed by :func:`matmul_rate`.
RATE_SIZE = 256
#: Seconds spent timing the product (a few: enough to settle the clock and the caches).
RATE_SECONDS = 2.0


@dataclass(frozen=True)
class CellCost:
    """One cell of a claim in a plan: its parameters, instances, cell tasks and work (flops;
    None when the cell declares no work the model can read)."""

    claim: str
    index: int
    cell: str
    instances: int
    tasks: int
    flops: float | None


def _count(params: dict, name: str) -> float | None:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def cell_work(claim, cell) -> float | None:
    """Flops of one instance of ``cell`` (the claim's ``cost(cell)`` when it has one, else the
    model of this module); None when unknown."""
    hook = getattr(claim, "cost", None)
    if callable(hook):
        value = hook(cell)
        return None if value is None else float(value)
    params = cell_dict(cell)
    layers = _count(params, "T") or _count(params, "T_max")
    p = _count(params, "p")
    if layers is None or p is None:
        return None
    m = _count(params, "m") or p
    n = _count(params, "n") or 1.0
    repeats = math.prod(_count(params, name) or 1.0 for name in REPETITION_FIELDS)
    return FLOPS_PER_LAYER_FACTOR * layers * n * m * p * repeats


def claim_costs(claim, profile: str, controls: bool = True) -> list[CellCost]:
    """The :class:`CellCost` of every cell of ``claim`` at ``profile``."""
    instances = claim.n_instances(profile)
    tasks = 2 if controls else 1
    rows = []
    for index, cell in enumerate(claim.cells(profile)):
        work = cell_work(claim, cell)
        rows.append(CellCost(claim.id, index, canonical_cell(cell), instances, tasks,
                             None if work is None else work * instances * tasks))
    return rows


def matmul_rate(device: str = "cpu", dtype=None, seconds: float = RATE_SECONDS, size: int = RATE_SIZE,
                threads: int | None = None) -> float:
    """Flops per second of a ``size × size`` matrix product on ``device`` in ``dtype``.

    Parameters
    ----------
    device : str
    dtype : torch.dtype, optional
        Default float64.
    seconds : float
        Time spent measuring (the products repeat until it has passed).
    size : int
    threads : int, optional
        Threads to compute with (default :data:`udl.engine.tasks.CELL_THREADS`, as a cell).

    Returns
    -------
    float
    """
    import torch

    from udl.engine.tasks import CELL_THREADS
    from udl.engine.threads import limit_threads

    dtype = torch.float64 if dtype is None else dtype
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator, dtype=dtype).to(device)
    b = torch.randn(size, size, generator=generator, dtype=dtype).to(device)

    def sync():
        if str(device).startswith("cuda"):
            torch.cuda.synchronize(device)

    with limit_threads(CELL_THREADS if threads is None else threads):
        torch.matmul(a, b)  # warm-up
        sync()
        products, start = 0, time.perf_counter()
        while True:
            torch.matmul(a, b)
            products += 1
            if products % 8 == 0:
                sync()
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    break
    return 2.0 * size ** 3 * products / elapsed
