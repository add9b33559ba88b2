"""Per-cell work: one claim's cell with its seeds (:class:`CellTask`), shipped through an
executor to :func:`simulate_cell`, which returns the annotated table or the error
(:class:`CellOutcome`). Workers need this module only, not the runner."""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass

import numpy as np
import pandas as pd

from udl.engine.anatomy import Claim, Context
from udl.engine.cells import ENGINE_COLUMNS, canonical_cell, cell_dict, is_cell
from udl.engine.mutants import mutated
from udl.engine.schema import check_table
from udl.engine.stats import to_builtin
from udl.engine.threads import limit_threads

__all__ = ["CELL_THREADS", "CellTask", "CellOutcome", "simulate_cell"]

#: Threads each cell computes with, on every executor (torch intra-op and the BLAS/OpenMP
#: pools): results of BLAS calls and reductions depend on the thread count in their last
#: digits, so a fixed count makes serial, process and Dask runs bit-identical, on any machine.
CELL_THREADS = 1


@dataclass(frozen=True)
class CellTask:
    """One unit of work shipped through the executor: a claim's cell (its ``Cell``, or a dict
    for a claim without one) with its seeds, and the thread count it computes with
    (:data:`CELL_THREADS`).

    ``ctx.mutant`` names a mutant (:mod:`udl.engine.mutants`) that :func:`simulate_cell` installs
    around ``simulate`` in the worker (the task pickles the name, not the bug).
    ``mutant_control`` marks the negative control of a claim with a ``control_mutant`` (run
    with ``ctx.control`` False and ``ctx.mutant`` set): see :attr:`is_control`.
    """

    claim: Claim
    cell_index: int
    cell: object
    seeds: tuple[int, ...]
    ctx: Context
    threads: int = CELL_THREADS
    mutant_control: bool = False

    @property
    def is_control(self) -> bool:
        """Whether the task computes the claim's negative control (``ctx.control``, or its
        control mutant)."""
        return bool(self.ctx.control) or self.mutant_control

    @property
    def label(self) -> str:
        """Names the task in messages: claim id, cell index and parameters, control flag, mutant."""
        control = " (control)" if self.is_control else ""
        mutant = f" [mutant {self.ctx.mutant}]" if getattr(self.ctx, "mutant", None) else ""
        return f"{self.claim.id} cell {self.cell_index} {canonical_cell(self.cell)}{control}{mutant}"


@dataclass(frozen=True)
class CellOutcome:
    """What a cell task returns: the annotated table, or the error that stopped it."""

    table: pd.DataFrame | None
    error: str | None
    traceback: str | None
    seconds: float


def _cell_names(cell) -> set[str]:
    """Every parameter name of a cell: a Cell's fields (named or at their default), a dict's keys."""
    return {f.name for f in dataclasses.fields(cell)} if is_cell(cell) else set(cell)


def _annotate(table, task: CellTask) -> pd.DataFrame:
    """Check a simulate() table (and its schema) and add the engine columns and the cell keys."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"simulate() returned {type(table).__name__}, not a pandas.DataFrame")
    if "instance" not in table.columns:
        raise ValueError("simulate() table has no 'instance' column")
    reserved = [c for c in ENGINE_COLUMNS if c in table.columns]
    if reserved:
        raise ValueError(f"simulate() table uses engine column names {reserved}")
    if task.claim.schema is not None:
        check_table(table, task.claim.schema, task.claim.id, exempt=_cell_names(task.cell))
    instance = table["instance"].to_numpy()
    n = len(task.seeds)
    if not np.issubdtype(instance.dtype, np.integer) or set(np.unique(instance).tolist()) != set(range(n)):
        raise ValueError(f"simulate() 'instance' column must hold each of 0..{n - 1}")
    table = table.reset_index(drop=True)
    named = cell_dict(task.cell)
    for key, value in named.items():
        if key in table.columns and not (table[key] == value).all():
            raise ValueError(f"simulate() column {key!r} disagrees with the cell value {value!r}")
    engine = pd.DataFrame({
        "claim": task.claim.id,
        "control": task.is_control,
        "cell": task.cell_index,
        "seed": np.asarray(task.seeds, dtype=np.int64)[instance],
    }, index=table.index)
    cell_columns = pd.DataFrame({k: [to_builtin(v)] * len(table) for k, v in named.items()}, index=table.index)
    rest = table.drop(columns=[k for k in named if k in table.columns])
    front = rest[["instance"]]
    return pd.concat([engine, front, cell_columns, rest.drop(columns="instance")], axis=1)


def simulate_cell(task: CellTask) -> CellOutcome:
    """Run one cell of one claim; never raises (errors are returned).

    Parameters
    ----------
    task : CellTask

    Returns
    -------
    CellOutcome
    """
    start = time.perf_counter()
    try:
        cell = task.cell if is_cell(task.cell) else dict(task.cell)
        with limit_threads(task.threads), mutated(getattr(task.ctx, "mutant", None)):
            table = task.claim.simulate(cell, list(task.seeds), task.ctx)
        table = _annotate(table, task)
        return CellOutcome(table, None, None, time.perf_counter() - start)
    except Exception as exc:
        message = f"cell {task.cell_index} {canonical_cell(task.cell)}: {type(exc).__name__}: {exc}"
        return CellOutcome(None, message, traceback.format_exc(), time.perf_counter() - start)
