"""The runner: execute claims at a profile and decide them.

:func:`run` executes claims at a profile: for every claim and parameter cell it derives the
instance seeds (:func:`~udl.engine.cells.instance_seeds`), ships
:func:`~udl.engine.tasks.simulate_cell` through an executor (reading finished cells from a
cache when given one), decides, runs the control with the same seeds, Holm-adjusts the PASS
tests across the run, and optionally writes a run directory (:mod:`udl.engine.results`).
:func:`replay` re-simulates one recorded instance.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from udl.engine import executors as _executors
from udl.engine import results as _results
from udl.engine import stats
from udl.engine.anatomy import PROFILES, Claim, ClaimDefinitionError, Context, check_claim
from udl.engine.cache import CellCache
from udl.engine.cells import as_cell, canonical_cell, instance_seeds
from udl.engine.executors import Executor, SerialExecutor
from udl.engine.progress import ClaimLog, is_terminal
from udl.engine.guards import cell_hypotheses, check_cells, check_evidence, reported_only_reason
from udl.engine.mutants import get as get_mutant, mutated
from udl.engine.stats import OUTCOMES, Verdict
from udl.engine.tasks import CELL_THREADS, CellOutcome, CellTask, simulate_cell
from udl.engine.threads import limit_threads

__all__ = ["FINAL_OUTCOMES", "ClaimResult", "RunResult", "RunInterrupted", "run", "replay"]

#: Final outcomes of a claim in a run: a verdict's outcome after Holm, or ERROR when its
#: simulate/decide raised.
FINAL_OUTCOMES = (*OUTCOMES, "ERROR")


@dataclass
class ClaimResult:
    """Everything a run knows about one claim.

    ``outcome`` is final: the verdict's outcome after the Holm adjustment, or ``"ERROR"``.
    ``ok`` is True when the claim PASSES and its control (when run) FAILS.

    ``decided`` is False at a profile outside the claim's ``decides_at``: the claim was
    simulated and decided (``verdict``), but its ``outcome`` is INCONCLUSIVE with ``reason``,
    it stays out of the Holm family, and it is ``ok`` unless it or its control raised (ERROR).
    ``hypotheses`` holds the theorem's hypotheses per cell (:func:`~udl.engine.guards.cell_hypotheses`).
    """

    claim: Claim
    profile: str
    verdict: Verdict | None = None
    outcome: str = "ERROR"
    p_raw: float | None = None
    p_adjusted: float | None = None
    error: str | None = None
    traceback: str | None = None
    control_verdict: Verdict | None = None
    control_error: str | None = None
    control_traceback: str | None = None
    controls_run: bool = True
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: float = 0.0
    control_seconds: float = 0.0
    decided: bool = True
    reason: str | None = None
    hypotheses: list = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.claim.id

    @property
    def evidence(self) -> str:
        """``"statistical"`` or ``"deterministic"``: the verdict's, else what the claim's kind calls for."""
        if self.verdict is not None:
            return self.verdict.evidence
        return "deterministic" if self.claim.kind == "deterministic" else "statistical"

    @property
    def control_outcome(self) -> str | None:
        """Outcome of the negative control, ``"ERROR"``, or None when controls were off."""
        if not self.controls_run:
            return None
        return "ERROR" if self.control_verdict is None else self.control_verdict.outcome

    @property
    def ok(self) -> bool:
        if not self.decided:  # reported only: expected, unless something raised
            return self.outcome != "ERROR" and self.control_outcome != "ERROR"
        return self.outcome == "PASS" and self.control_outcome in (None, "FAIL")


@dataclass
class RunResult:
    """A whole run: its settings, per-claim results and timing."""

    profile: str
    seed: int
    device: str
    dtype: str
    controls: bool
    claims: dict[str, ClaimResult]
    started: str
    wall_seconds: float
    #: How the cell tasks were obtained (not deterministic; ``diagnostics.cells`` of
    #: results.json): ``total``, ``cached`` (read from the cache), ``computed``, ``errors``
    #: (cells that raised or were lost), ``executor``, ``cache`` (directory or None),
    #: ``threads_per_cell``.
    cells: dict = field(default_factory=dict)
    #: The claims package the claims came from (``run.claims_package`` of results.json): the
    #: dotted name or path given to :func:`~udl.engine.discovery.discover`, or None.
    claims_package: str | None = None

    @property
    def ok(self) -> bool:
        """True when there was at least one claim and every claim is ok."""
        return bool(self.claims) and all(r.ok for r in self.claims.values())


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT); the cells finished before it are in the cache.

    Attributes
    ----------
    done, total : int
        Cell tasks finished (computed or read from the cache) and in the run.
    cached : int
        Cell tasks now in the cache (read from it or stored by this run).
    cache : str or None
        The cache directory (None when the run had no cache: nothing is kept).
    """

    def __init__(self, done: int, total: int, cached: int, cache: str | None):
        self.done, self.total, self.cached, self.cache = done, total, cached, cache
        where = f"{cached} cells kept in the cache {cache}" if cache else "no cache: nothing kept"
        super().__init__(f"interrupted after {done} of {total} cells; {where}")


def _executor_failure(task: CellTask, item) -> CellOutcome:
    """A task that failed on the executor's side (lost worker, unshippable task) as an error."""
    error = item.error
    text = str(error)
    message = text if text.startswith(task.label) else (
        f"cell {task.cell_index} {canonical_cell(task.cell)}: executor: {type(error).__name__}: {text}")
    return CellOutcome(None, message, item.traceback or f"{type(error).__name__}: {text}\n", 0.0)


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _decide(claim: Claim, cells: list) -> tuple[Verdict | None, str | None, str | None, float]:
    """Check the cells' independence, decide from their concatenated tables, check the evidence."""
    start = time.perf_counter()
    try:
        check_cells(claim, cells)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}", traceback.format_exc(), time.perf_counter() - start
    try:
        verdict = claim.decide(pd.concat([table for _, _, table in cells], ignore_index=True))
        if not isinstance(verdict, Verdict):
            raise TypeError(f"decide() returned {type(verdict).__name__}, not a Verdict")
        check_evidence(claim, verdict)
        return verdict, None, None, time.perf_counter() - start
    except Exception as exc:
        return None, f"decide: {type(exc).__name__}: {exc}", traceback.format_exc(), time.perf_counter() - start


def _hypotheses(claim: Claim, cells: list) -> tuple[list, str | None, str | None]:
    try:
        return cell_hypotheses(claim, cells), None, None
    except Exception as exc:
        return [], f"hypotheses: {type(exc).__name__}: {exc}", traceback.format_exc()


def _tasks(claims: Mapping[str, Claim], profile: str, seed: int, ctx: Context, controls: bool,
           threads: int = CELL_THREADS) -> list[CellTask]:
    tasks = []
    for claim in claims.values():
        n = claim.n_instances(profile)
        for index, cell in enumerate(claim.cells(profile)):
            seeds = tuple(instance_seeds(seed, claim.id, cell, n))
            tasks.append(CellTask(claim, index, cell, seeds, replace(ctx, control=False), threads))
            if controls:
                tasks.append(_control_task(claim, index, cell, seeds, ctx, threads))
    return tasks


def _control_task(claim: Claim, index: int, cell, seeds: tuple, ctx: Context, threads: int) -> CellTask:
    """The negative control of one cell: ``simulate`` under the claim's ``control_mutant`` when it
    declares one (``ctx.control`` False), else ``simulate`` with ``ctx.control`` True."""
    mutant = getattr(claim, "control_mutant", None)
    if mutant is None:
        return CellTask(claim, index, cell, seeds, replace(ctx, control=True), threads)
    return CellTask(claim, index, cell, seeds, replace(ctx, control=False, mutant=mutant), threads,
                    mutant_control=True)


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar on a terminal; elsewhere a disabled one (a log gets :class:`ClaimLog` lines)."""
    from tqdm import tqdm

    show = enabled and is_terminal()
    return tqdm(total=total, disable=not show, file=sys.stderr, unit="cell", leave=False)


def _collect(claim: Claim, profile: str, outcomes: list[tuple[CellTask, CellOutcome]], controls: bool) -> ClaimResult:
    reason = reported_only_reason(claim, profile)
    result = ClaimResult(claim=claim, profile=profile, controls_run=controls, decided=reason is None, reason=reason)
    tables = []
    for control in ((False, True) if controls else (False,)):
        pairs = [(t, o) for t, o in outcomes if t.is_control == control]
        mine = [o for _, o in pairs]
        seconds = sum(o.seconds for o in mine)
        errors = [o for o in mine if o.error is not None]
        parts = [o.table for o in mine if o.table is not None]
        tables += parts
        if errors:
            verdict, error, trace = None, errors[0].error, errors[0].traceback
        else:
            cells = [(t.cell_index, t.cell, o.table) for t, o in pairs]
            verdict, error, trace, decide_seconds = _decide(claim, cells)
            seconds += decide_seconds
            if not control and verdict is not None:
                result.hypotheses, error, trace = _hypotheses(claim, cells)
                verdict = verdict if error is None else None
        if control:
            result.control_verdict, result.control_error, result.control_traceback = verdict, error, trace
            result.control_seconds = seconds
        else:
            result.verdict, result.error, result.traceback, result.seconds = verdict, error, trace, seconds
            result.outcome = "ERROR" if verdict is None else verdict.outcome if reason is None else "INCONCLUSIVE"
    if tables:
        result.table = pd.concat(tables, ignore_index=True)
    return result


def _apply_holm(results: Mapping[str, ClaimResult]) -> None:
    """Holm-adjust the PASS tests of every decided statistical claim; downgrade PASS with p̃ > α.

    Deterministic checks (no p-value) and claims reported only at this profile are not in the
    family; a reported-only statistical claim keeps its raw p-value (``p_adjusted`` None).
    """
    for result in results.values():
        if result.verdict is not None and result.verdict.evidence == "statistical" and not result.decided:
            result.p_raw = float(result.verdict.p_value)
    decided = [r for r in results.values()
               if r.verdict is not None and r.decided and r.verdict.evidence == "statistical"]
    raw = [r.verdict.p_value if np.isfinite(r.verdict.p_value) else 1.0 for r in decided]
    for result, p_raw, p_adj in zip(decided, raw, stats.holm(raw)):
        result.p_raw, result.p_adjusted = float(p_raw), float(p_adj)
        if result.outcome == "PASS" and p_adj > result.claim.alpha:
            result.outcome = "INCONCLUSIVE"


def _as_claims(claims) -> dict[str, Claim]:
    items = list(claims.values()) if isinstance(claims, Mapping) else list(claims)
    found = {}
    for claim in items:
        problems = check_claim(claim)
        if problems:
            raise ClaimDefinitionError("; ".join(problems))
        if claim.id in found:
            raise ValueError(f"claim {claim.id!r} given twice")
        found[claim.id] = claim
    return dict(sorted(found.items()))


def _package_of(claims: Mapping[str, Claim]) -> str | None:
    """The package (or packages, comma-separated) whose modules define ``claims``."""
    packages = sorted({type(c).__module__.rpartition(".")[0] or type(c).__module__ for c in claims.values()})
    return ",".join(packages) or None


def run(claims, profile: str, seed: int, ctx: Context | None = None, executor: Executor | None = None,
        out_dir: str | Path | None = None, controls: bool = True, *, progress: bool = True,
        cache=None, threads: int = CELL_THREADS, claims_package: str | None = None) -> RunResult:
    """Run claims at a profile and decide them.

    Parameters
    ----------
    claims : mapping or iterable of Claim
        Claim instances (e.g. from :func:`~udl.engine.discovery.discover`); run in id order.
    profile : {"quick", "ci", "paper"}
    seed : int
        Root seed (>= 0); instance seeds come from :func:`~udl.engine.cells.instance_seeds`.
    ctx : Context, optional
        Device/dtype/encoder (default ``Context()``); its ``control`` is set per task. A
        ``ctx.mutant`` runs every cell with that mutant installed (:mod:`udl.engine.mutants`;
        such cells bypass the cache).
    executor : Executor, optional
        Where cells are simulated (default :class:`~udl.engine.executors.SerialExecutor`); see
        :mod:`udl.engine.executors` for local processes and Dask. The caller closes it.
    out_dir : path, optional
        When given, the run directory is written there atomically (:mod:`udl.engine.results`);
        the target is checked before anything is computed.
    controls : bool
        Also run every claim's negative control (same seeds): ``simulate`` under its
        ``control_mutant`` when it declares one, else under ``ctx.control`` True.
    progress : bool
        Show progress on stderr: a bar (one tick per cell) on a terminal, otherwise one line
        per finished claim (:class:`udl.engine.progress.ClaimLog`).
    cache : udl.engine.cache.CellCache or path, optional
        Read finished cells from, and store newly finished ones in, this cache
        (:mod:`udl.engine.cache`); ``None`` (default) computes everything and stores nothing.
        A cell is stored as soon as it finishes, so an interrupted run resumes.
    threads : int
        Threads each cell computes with, on every executor (default :data:`CELL_THREADS`);
        results can differ in their last digits between thread counts, never between
        executors at the same count.
    claims_package : str, optional
        Where the claims came from: the dotted name or path given to
        :func:`~udl.engine.discovery.discover`; recorded as ``run.claims_package`` in
        results.json. Default: the package of the claims' modules (e.g. ``"claims"``).

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        Bad profile, seed, mutant, output target or cache directory (before any computation).
    RunInterrupted
        Ctrl-C (a :class:`KeyboardInterrupt`) during the computation; the finished cells
        are in the cache, and nothing is written to ``out_dir``.
    """
    ctx = Context() if ctx is None else ctx
    executor = SerialExecutor() if executor is None else executor
    chosen = _as_claims(claims)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (allowed: {', '.join(PROFILES)})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if ctx.mutant is not None:
        get_mutant(ctx.mutant)
    if out_dir is not None:
        _results.check_target(out_dir)
    if cache is not None and not isinstance(cache, CellCache):
        cache = CellCache(cache)
    if cache is not None:
        cache.check()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    tasks = _tasks(chosen, profile, int(seed), ctx, controls, int(threads))
    collected: dict[str, ClaimResult] = {}  # claims decided as their last cell came in (a log's lines)

    def collect(cid: str, pairs: list) -> ClaimResult:
        if cid not in collected:
            collected[cid] = _collect(chosen[cid], profile, pairs, controls)
        return collected[cid]

    log = ClaimLog(tasks, collect) if progress and not is_terminal() else None
    results_by_task = _compute(tasks, executor, cache, progress, log)
    outcomes: dict[str, list] = {cid: [] for cid in chosen}
    for task, outcome in zip(tasks, results_by_task["outcomes"]):
        outcomes[task.claim.id].append((task, outcome))
    claim_results = {cid: collect(cid, outcomes[cid]) for cid in chosen}
    _apply_holm(claim_results)
    result = RunResult(profile=profile, seed=int(seed), device=str(ctx.device), dtype=_dtype_name(ctx.dtype),
                       controls=controls, claims=claim_results, started=started,
                       wall_seconds=time.perf_counter() - start, cells=results_by_task["cells"],
                       claims_package=_package_of(chosen) if claims_package is None else str(claims_package))
    if out_dir is not None:
        _results.write_run(result, out_dir)
    return result


def _compute(tasks: list[CellTask], executor, cache, progress: bool, log: ClaimLog | None = None) -> dict:
    """Every task's outcome, in task order: from the cache where it holds the cell, else
    computed on the executor (each finished cell stored at once), plus the cell counts.
    ``log`` (when stderr is not a terminal) is told of every finished task."""
    outcomes: list[CellOutcome | None] = [None] * len(tasks)
    keys = [cache.key(task) for task in tasks] if cache is not None else [None] * len(tasks)
    cached = computed = errors = stored = 0
    with _progress_bar(len(tasks), progress) as bar:
        try:
            missing = []
            for index, task in enumerate(tasks):
                hit = cache.load(task, keys[index]) if cache is not None else None
                if hit is None:
                    missing.append(index)
                else:
                    outcomes[index] = hit
                    cached += 1
                    bar.update(1)
                    if log is not None:
                        log.done(task, hit)
            for item in _executors.completed(executor, simulate_cell, [tasks[i] for i in missing]):
                index = missing[item.index]
                task = tasks[index]
                outcome = item.value if item.error is None else _executor_failure(task, item)
                if not isinstance(outcome, CellOutcome):
                    outcome = CellOutcome(None, f"cell {task.cell_index} {canonical_cell(task.cell)}: executor "
                                          f"returned {type(outcome).__name__}, not a CellOutcome", None, 0.0)
                outcomes[index] = outcome
                computed += 1
                errors += outcome.error is not None
                if cache is not None:
                    stored += cache.store(task, keys[index], outcome)
                bar.set_postfix_str(task.claim.id, refresh=False)
                bar.update(1)
                if log is not None:
                    log.done(task, outcome)
        except KeyboardInterrupt as exc:
            raise RunInterrupted(cached + computed, len(tasks), cached + stored if cache is not None else 0,
                                 str(cache.directory) if cache is not None else None) from exc
    lost = [tasks[i].label for i, outcome in enumerate(outcomes) if outcome is None]
    if lost:  # an executor that skipped tasks: never let a cell go silently missing
        raise _executors.ExecutorError(f"executor {executor!r} returned no result for: {'; '.join(lost)}")
    return {"outcomes": outcomes,
            "cells": {"total": len(tasks), "cached": cached, "computed": computed, "errors": errors,
                      "executor": repr(executor), "cache": str(cache.directory) if cache is not None else None,
                      "threads_per_cell": tasks[0].threads if tasks else CELL_THREADS}}


def replay(claim: Claim, cell: Mapping, seed: int, ctx: Context | None = None, *,
           threads: int = CELL_THREADS) -> pd.DataFrame:
    """Re-simulate one recorded instance from its seed (the ``seed`` column of a table).

    Returns the claim's raw table for that single instance (``instance`` = 0), computed
    with ``threads`` threads like the run's cells. ``cell`` may be the claim's ``Cell`` or a
    mapping of its parameters (converted to ``Cell`` when the claim declares one).
    """
    ctx = Context() if ctx is None else ctx
    with limit_threads(threads), mutated(ctx.mutant):
        return claim.simulate(as_cell(cell, claim.Cell), [int(seed)], ctx)
