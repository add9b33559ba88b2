"""The claims engine: claim anatomy, seeding, discovery and the runner.

A *claim* is a falsifiable consequence of a theorem. A claim module in ``claims/`` defines one
or more :class:`Claim` subclasses; each says what it simulates (``simulate``: a tidy table, one
row per instance × measurement), how it decides (``decide``: a pure function of that table to
a :class:`Verdict`) and what its negative control is (``simulate`` under
``Context(control=True)``; the control must FAIL).

:func:`run` executes claims at a profile: for every claim and parameter cell it derives the
instance seeds (:func:`instance_seeds`), ships ``simulate`` through an executor, adds the
engine columns, decides, runs the control with the same seeds, Holm-adjusts the PASS tests
across the run, and optionally writes a run directory (:mod:`udl.engine.results`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import re
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Callable, ClassVar, Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from udl.engine import stats
from udl.engine import executors as _executors
from udl.engine.executors import Executor, SerialExecutor
from udl.engine.stats import OUTCOMES, Verdict

__all__ = [
    "OUTCOMES",
    "FINAL_OUTCOMES",
    "CELL_THREADS",
    "KINDS",
    "PROFILES",
    "ENGINE_COLUMNS",
    "Verdict",
    "Context",
    "Claim",
    "ClaimDefinitionError",
    "check_claim",
    "discover",
    "select_claims",
    "canonical_cell",
    "instance_seeds",
    "CellTask",
    "CellOutcome",
    "simulate_cell",
    "ClaimResult",
    "RunResult",
    "RunInterrupted",
    "run",
    "replay",
]

#: Final outcomes of a claim in a run: a verdict's outcome after Holm, or ERROR when its
#: simulate/decide raised.
FINAL_OUTCOMES = (*OUTCOMES, "ERROR")
KINDS = ("identity", "probabilistic", "ordering", "rate")
PROFILES = ("quick", "ci", "paper")
#: Columns the engine adds to every simulate() table, in this order, before the cell keys.
ENGINE_COLUMNS = ("claim", "control", "cell", "seed")
#: Claim ids become file names (tables/<id>.csv.gz) and CLI tokens: keep them plain.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Threads each cell computes with, on every executor (torch intra-op and the BLAS/OpenMP
#: pools): results of BLAS calls and reductions depend on the thread count in their last
#: digits, so a fixed count makes serial, process and Dask runs bit-identical, on any machine.
CELL_THREADS = 1
#: Bits of the sha256 digest used per spawn-key word (SeedSequence takes arbitrary ints;
#: 64 bits make collisions between claim ids or cells negligible).
_KEY_BYTES = 8


# --------------------------------------------------------------------------- anatomy
@dataclass(frozen=True)
class Context:
    """Where and how a claim computes.

    Parameters
    ----------
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    dtype : torch.dtype
        Floating dtype of the simulation.
    encoder : object, optional
        Encoder under test; ``None`` means the reference ISTA (claims resolve it).
    control : bool
        True: run the claim's negative control instead.
    progress : callable, optional
        Claims may call it with the number of work units done.
    """

    device: str = "cpu"
    dtype: torch.dtype = torch.float64
    encoder: object | None = None
    control: bool = False
    progress: Callable[[int], None] | None = None

    def encoder_under_test(self):
        """``encoder`` if one was given, else the reference :class:`udl.ISTA`."""
        from udl.core.encoders import ISTA

        return ISTA() if self.encoder is None else self.encoder


class Claim:
    """Base class of a claim; subclass it in a module of ``claims/``.

    Class attributes (all required unless a default is shown): ``id`` (e.g. ``"II.3b"``),
    ``theorem`` (``"II.3"``), ``title``, ``statement`` (one paragraph, in the paper's
    notation), ``kind`` (one of :data:`KINDS`), ``alpha = 0.01`` (false-fail rate),
    ``beta = 0.05`` (miss rate at the declared effect), ``effect`` (smallest effect the
    design must detect and why n suffices), ``regime`` (sizes, λ, α, T, ω, n and why; where it
    leaves the theorem), ``control`` (the negative control, which must FAIL),
    ``requires = frozenset()`` (encoder capabilities), ``profiles`` (``{"quick": {"cells":
    [dict, ...], "n_instances": int}, "ci": {...}, "paper": {...}}``; cell values are
    scalars or strings and become table columns).

    Subclasses implement :meth:`simulate` and :meth:`decide`.
    """

    id: ClassVar[str]
    theorem: ClassVar[str]
    title: ClassVar[str]
    statement: ClassVar[str]
    kind: ClassVar[str]
    alpha: ClassVar[float] = 0.01
    beta: ClassVar[float] = 0.05
    effect: ClassVar[str]
    regime: ClassVar[str]
    control: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()
    profiles: ClassVar[dict[str, dict]]

    def simulate(self, cell: dict, seeds: list[int], ctx: Context) -> pd.DataFrame:
        """Simulate ``len(seeds)`` independent instances of one parameter cell.

        Parameters
        ----------
        cell : dict
            Parameters of the cell (scalars/strings).
        seeds : list of int
            One seed per instance; instance i must depend on ``seeds[i]`` only, so that
            ``simulate(cell, [seeds[i]], ctx)`` replays it.
        ctx : Context
            Device, dtype, encoder; ``ctx.control`` selects the negative control.

        Returns
        -------
        pandas.DataFrame
            Tidy table with a column ``instance`` (0..len(seeds)-1, each present) and the
            measurements; may be long format (extra index columns such as ``T``).
        """
        raise NotImplementedError

    def decide(self, table: pd.DataFrame) -> Verdict:
        """Decide from the concatenated table of all cells (engine columns present).

        Must be a pure function of ``table`` (typically one call into :mod:`udl.engine.stats`).
        """
        raise NotImplementedError

    def cells(self, profile: str) -> list[dict]:
        """Parameter cells of ``profile``."""
        return list(self.profiles[profile]["cells"])

    def n_instances(self, profile: str) -> int:
        """Independent instances per cell at ``profile``."""
        return int(self.profiles[profile]["n_instances"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'id', '?')}>"


class ClaimDefinitionError(ValueError):
    """A claim module or class does not follow the claim anatomy."""


_TEXT_FIELDS = ("theorem", "title", "statement", "effect", "regime", "control")


def _check_cell(cell, where: str) -> list[str]:
    if not isinstance(cell, dict):
        return [f"{where}: cell {cell!r} is not a dict"]
    problems = []
    for key, value in cell.items():
        if not isinstance(key, str) or key in (*ENGINE_COLUMNS, "instance"):
            problems.append(f"{where}: cell key {key!r} is not a string or is reserved")
        if not isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
            problems.append(f"{where}: cell value {key}={value!r} is not a scalar or string")
    return problems


def check_claim(claim: Claim | type) -> list[str]:
    """List what is wrong with a claim's declaration (empty when it is well formed).

    Parameters
    ----------
    claim : Claim or Claim subclass

    Returns
    -------
    list of str
        Human-readable problems.
    """
    cls = claim if isinstance(claim, type) else type(claim)
    name = getattr(cls, "id", cls.__name__)
    problems = []
    if not isinstance(getattr(cls, "id", None), str) or not ID_PATTERN.match(cls.id):
        problems.append(f"{cls.__name__}: id {getattr(cls, 'id', None)!r} must match {ID_PATTERN.pattern}")
    for attr in _TEXT_FIELDS:
        if not isinstance(getattr(cls, attr, None), str) or not getattr(cls, attr).strip():
            problems.append(f"{name}: {attr} must be a non-empty string")
    if getattr(cls, "kind", None) not in KINDS:
        problems.append(f"{name}: kind {getattr(cls, 'kind', None)!r} is not one of {KINDS}")
    if not 0 < getattr(cls, "alpha", 0) < 0.5:
        problems.append(f"{name}: alpha must be in (0, 0.5)")
    if not 0 < getattr(cls, "beta", 0) < 1:
        problems.append(f"{name}: beta must be in (0, 1)")
    if not isinstance(getattr(cls, "requires", None), frozenset):
        problems.append(f"{name}: requires must be a frozenset")
    for method in ("simulate", "decide"):
        if getattr(cls, method, None) is getattr(Claim, method):
            problems.append(f"{name}: {method}() is not implemented")
    profiles = getattr(cls, "profiles", None)
    if not isinstance(profiles, dict):
        return [*problems, f"{name}: profiles must be a dict"]
    for profile in PROFILES:
        spec = profiles.get(profile)
        where = f"{name} profile {profile!r}"
        if not isinstance(spec, dict):
            problems.append(f"{where}: missing")
            continue
        cells, n = spec.get("cells"), spec.get("n_instances")
        if not isinstance(cells, list) or not cells:
            problems.append(f"{where}: cells must be a non-empty list")
        else:
            problems += [p for cell in cells for p in _check_cell(cell, where)]
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            problems.append(f"{where}: n_instances must be an int >= 1")
    return problems


# --------------------------------------------------------------------------- discovery
def _import_package(package: str | ModuleType) -> ModuleType:
    """Import a package given as a module, a dotted name, or a directory path (with a '/')."""
    if isinstance(package, ModuleType):
        return package
    if "/" in package or "\\" in package:
        path = Path(package).resolve()
        if not (path / "__init__.py").is_file():
            raise ClaimDefinitionError(f"{package!r} is not a package directory (no __init__.py)")
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        package = path.name
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ClaimDefinitionError(f"cannot import claims package {package!r}: {exc}") from exc


def discover(package: str | ModuleType = "claims") -> dict[str, Claim]:
    """Find every claim of a package.

    Imports every module of ``package`` (names starting with ``_`` are skipped) and collects
    the :class:`Claim` subclasses defined there that set an ``id``.

    Parameters
    ----------
    package : str or module
        Dotted package name (``"claims"``), a package directory path (its parent is put on
        ``sys.path``), or the imported package.

    Returns
    -------
    dict
        ``{id: claim instance}`` sorted by id.

    Raises
    ------
    ClaimDefinitionError
        A module fails to import, two claims share an id, or a claim is malformed.
    """
    pkg = _import_package(package)
    found: dict[str, Claim] = {}
    for info in sorted(pkgutil.iter_modules(getattr(pkg, "__path__", [])), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{pkg.__name__}.{info.name}"
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a broken claim module must be loud, not skipped
            raise ClaimDefinitionError(f"claim module {name} failed to import: "
                                       f"{type(exc).__name__}: {exc}") from exc
        for obj in vars(module).values():
            if not (isinstance(obj, type) and issubclass(obj, Claim) and obj is not Claim):
                continue
            if obj.__module__ != module.__name__ or "id" not in _class_attrs(obj):
                continue
            problems = check_claim(obj)
            if problems:
                raise ClaimDefinitionError("; ".join(problems))
            if obj.id in found:
                raise ClaimDefinitionError(f"claim id {obj.id!r} defined twice "
                                           f"({type(found[obj.id]).__module__} and {name})")
            found[obj.id] = obj()
    return dict(sorted(found.items()))


def _class_attrs(cls: type) -> set[str]:
    return {attr for klass in cls.__mro__ if klass is not Claim and klass is not object for attr in vars(klass)}


def select_claims(available: Mapping[str, Claim], tokens: Iterable[str]) -> dict[str, Claim]:
    """Select claims by id or by theorem id.

    Parameters
    ----------
    available : mapping
        ``{id: claim}`` (e.g. from :func:`discover`).
    tokens : iterable of str
        Claim ids (``"II.3b"``) or theorem ids (``"II.3"`` selects all its claims).

    Returns
    -------
    dict
        Selected claims sorted by id.

    Raises
    ------
    ValueError
        A token names neither a claim nor a theorem; the message names it.
    """
    chosen = {}
    for token in tokens:
        token = token.strip()
        matches = {cid: c for cid, c in available.items() if cid == token or c.theorem == token}
        if not matches:
            known = ", ".join(available) or "none"
            theorems = ", ".join(sorted({c.theorem for c in available.values()})) or "none"
            raise ValueError(f"unknown claim {token!r} (claims: {known}; theorems: {theorems})")
        chosen.update(matches)
    return dict(sorted(chosen.items()))


# --------------------------------------------------------------------------- seeding
def canonical_cell(cell: Mapping) -> str:
    """Canonical JSON of a cell: sorted keys, no spaces, numpy scalars as builtins."""
    return json.dumps(stats._builtin(dict(cell)), sort_keys=True, separators=(",", ":"), allow_nan=True)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:_KEY_BYTES], "big")


def instance_seeds(root_seed: int, claim_id: str, cell: Mapping, n: int) -> list[int]:
    """Seeds of the first ``n`` instances of a claim's cell.

    ``SeedSequence(entropy=root_seed, spawn_key=(h(claim_id), h(canonical_cell(cell))))
    .spawn(n)``, each child turned into a 63-bit integer; h is the first 64 bits of sha256.
    The seeds depend on nothing else (not on other claims, their order, the profile, the
    worker count), and the first k of n seeds are the seeds for n = k.

    Parameters
    ----------
    root_seed : int
        The run's seed (>= 0).
    claim_id : str
    cell : mapping
        The parameter cell.
    n : int
        Number of instances.

    Returns
    -------
    list of int
        ``n`` seeds in [0, 2**63).
    """
    if int(root_seed) < 0:
        raise ValueError(f"root seed must be >= 0, got {root_seed}")
    key = (_stable_int(claim_id), _stable_int(canonical_cell(cell)))
    children = np.random.SeedSequence(entropy=int(root_seed), spawn_key=key).spawn(int(n))
    return [int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for child in children]


# --------------------------------------------------------------------------- per-cell work
@dataclass(frozen=True)
class CellTask:
    """One unit of work shipped through the executor: a claim's cell with its seeds, and the
    thread count it computes with (:data:`CELL_THREADS`)."""

    claim: Claim
    cell_index: int
    cell: dict
    seeds: tuple[int, ...]
    ctx: Context
    threads: int = CELL_THREADS

    @property
    def label(self) -> str:
        """Names the task in messages: claim id, cell index and parameters, control flag."""
        control = " (control)" if self.ctx.control else ""
        return f"{self.claim.id} cell {self.cell_index} {canonical_cell(self.cell)}{control}"


@dataclass(frozen=True)
class CellOutcome:
    """What a cell task returns: the annotated table, or the error that stopped it."""

    table: pd.DataFrame | None
    error: str | None
    traceback: str | None
    seconds: float


def _annotate(table, task: CellTask) -> pd.DataFrame:
    """Check a simulate() table and add the engine columns and the cell keys."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"simulate() returned {type(table).__name__}, not a pandas.DataFrame")
    if "instance" not in table.columns:
        raise ValueError("simulate() table has no 'instance' column")
    reserved = [c for c in ENGINE_COLUMNS if c in table.columns]
    if reserved:
        raise ValueError(f"simulate() table uses engine column names {reserved}")
    instance = table["instance"].to_numpy()
    n = len(task.seeds)
    if not np.issubdtype(instance.dtype, np.integer) or set(np.unique(instance).tolist()) != set(range(n)):
        raise ValueError(f"simulate() 'instance' column must hold each of 0..{n - 1}")
    table = table.reset_index(drop=True)
    for key, value in task.cell.items():
        if key in table.columns and not (table[key] == value).all():
            raise ValueError(f"simulate() column {key!r} disagrees with the cell value {value!r}")
    engine = pd.DataFrame({
        "claim": task.claim.id,
        "control": bool(task.ctx.control),
        "cell": task.cell_index,
        "seed": np.asarray(task.seeds, dtype=np.int64)[instance],
    }, index=table.index)
    cell_columns = pd.DataFrame({k: [stats._builtin(v)] * len(table) for k, v in task.cell.items()},
                                index=table.index)
    rest = table.drop(columns=[k for k in task.cell if k in table.columns])
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
        with _executors.limit_threads(task.threads):
            table = task.claim.simulate(dict(task.cell), list(task.seeds), task.ctx)
        table = _annotate(table, task)
        return CellOutcome(table, None, None, time.perf_counter() - start)
    except Exception as exc:
        message = f"cell {task.cell_index} {canonical_cell(task.cell)}: {type(exc).__name__}: {exc}"
        return CellOutcome(None, message, traceback.format_exc(), time.perf_counter() - start)


# --------------------------------------------------------------------------- results
@dataclass
class ClaimResult:
    """Everything a run knows about one claim.

    ``outcome`` is final: the verdict's outcome after the Holm adjustment, or ``"ERROR"``.
    ``ok`` is True when the claim PASSES and its control (when run) FAILS.
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

    @property
    def id(self) -> str:
        return self.claim.id

    @property
    def control_outcome(self) -> str | None:
        """Outcome of the negative control, ``"ERROR"``, or None when controls were off."""
        if not self.controls_run:
            return None
        return "ERROR" if self.control_verdict is None else self.control_verdict.outcome

    @property
    def ok(self) -> bool:
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


def _decide(claim: Claim, table: pd.DataFrame) -> tuple[Verdict | None, str | None, str | None, float]:
    start = time.perf_counter()
    try:
        verdict = claim.decide(table.copy())
        if not isinstance(verdict, Verdict):
            raise TypeError(f"decide() returned {type(verdict).__name__}, not a Verdict")
        return verdict, None, None, time.perf_counter() - start
    except Exception as exc:
        return None, f"decide: {type(exc).__name__}: {exc}", traceback.format_exc(), time.perf_counter() - start


def _tasks(claims: Mapping[str, Claim], profile: str, seed: int, ctx: Context, controls: bool,
           threads: int = CELL_THREADS) -> list[CellTask]:
    tasks = []
    for claim in claims.values():
        n = claim.n_instances(profile)
        for index, cell in enumerate(claim.cells(profile)):
            seeds = tuple(instance_seeds(seed, claim.id, cell, n))
            for control in ((False, True) if controls else (False,)):
                tasks.append(CellTask(claim, index, dict(cell), seeds, replace(ctx, control=control), threads))
    return tasks


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    show = enabled and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(total=total, disable=not show, file=sys.stderr, unit="cell", leave=False)


def _collect(claim: Claim, profile: str, outcomes: list[tuple[CellTask, CellOutcome]], controls: bool) -> ClaimResult:
    result = ClaimResult(claim=claim, profile=profile, controls_run=controls)
    tables = []
    for control in ((False, True) if controls else (False,)):
        mine = [o for t, o in outcomes if t.ctx.control == control]
        seconds = sum(o.seconds for o in mine)
        errors = [o for o in mine if o.error is not None]
        parts = [o.table for o in mine if o.table is not None]
        tables += parts
        if errors:
            verdict, error, trace = None, errors[0].error, errors[0].traceback
        else:
            verdict, error, trace, decide_seconds = _decide(claim, pd.concat(parts, ignore_index=True))
            seconds += decide_seconds
        if control:
            result.control_verdict, result.control_error, result.control_traceback = verdict, error, trace
            result.control_seconds = seconds
        else:
            result.verdict, result.error, result.traceback, result.seconds = verdict, error, trace, seconds
            result.outcome = verdict.outcome if verdict is not None else "ERROR"
    if tables:
        result.table = pd.concat(tables, ignore_index=True)
    return result


def _apply_holm(results: Mapping[str, ClaimResult]) -> None:
    """Holm-adjust the PASS tests of every decided claim; downgrade PASS with p̃ > α."""
    decided = [r for r in results.values() if r.verdict is not None]
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


def run(claims, profile: str, seed: int, ctx: Context | None = None, executor: Executor | None = None,
        out_dir: str | Path | None = None, controls: bool = True, *, progress: bool = True,
        cache=None, threads: int = CELL_THREADS) -> RunResult:
    """Run claims at a profile and decide them.

    Parameters
    ----------
    claims : mapping or iterable of Claim
        Claim instances (e.g. from :func:`discover`); run in id order.
    profile : {"quick", "ci", "paper"}
    seed : int
        Root seed (>= 0); instance seeds come from :func:`instance_seeds`.
    ctx : Context, optional
        Device/dtype/encoder (default ``Context()``); its ``control`` is set per task.
    executor : Executor, optional
        Where cells are simulated (default :class:`~udl.engine.executors.SerialExecutor`); see
        :mod:`udl.engine.executors` for local processes and Dask. The caller closes it.
    out_dir : path, optional
        When given, the run directory is written there atomically (:mod:`udl.engine.results`);
        the target is checked before anything is computed.
    controls : bool
        Also run every claim's negative control (same seeds).
    progress : bool
        Show a progress bar on stderr (one tick per cell; only when stderr is a TTY).
    cache : udl.engine.cache.CellCache or path, optional
        Read finished cells from, and store newly finished ones in, this cache
        (:mod:`udl.engine.cache`); ``None`` (default) computes everything and stores nothing.
        A cell is stored as soon as it finishes, so an interrupted run resumes.
    threads : int
        Threads each cell computes with, on every executor (default :data:`CELL_THREADS`);
        results can differ in their last digits between thread counts, never between
        executors at the same count.

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        Bad profile, seed, output target or cache directory (before any computation).
    RunInterrupted
        Ctrl-C (a :class:`KeyboardInterrupt`) during the computation; the finished cells
        are in the cache, and nothing is written to ``out_dir``.
    """
    from udl.engine.cache import CellCache
    from udl.engine import results as _results

    ctx = Context() if ctx is None else ctx
    executor = SerialExecutor() if executor is None else executor
    chosen = _as_claims(claims)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (allowed: {', '.join(PROFILES)})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if out_dir is not None:
        _results.check_target(out_dir)
    if cache is not None and not isinstance(cache, CellCache):
        cache = CellCache(cache)
    if cache is not None:
        cache.check()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    tasks = _tasks(chosen, profile, int(seed), ctx, controls, int(threads))
    results_by_task = _compute(tasks, executor, cache, progress)
    outcomes: dict[str, list] = {cid: [] for cid in chosen}
    for task, outcome in zip(tasks, results_by_task["outcomes"]):
        outcomes[task.claim.id].append((task, outcome))
    claim_results = {cid: _collect(chosen[cid], profile, outcomes[cid], controls) for cid in chosen}
    _apply_holm(claim_results)
    result = RunResult(profile=profile, seed=int(seed), device=str(ctx.device), dtype=_dtype_name(ctx.dtype),
                       controls=controls, claims=claim_results, started=started,
                       wall_seconds=time.perf_counter() - start, cells=results_by_task["cells"])
    if out_dir is not None:
        _results.write_run(result, out_dir)
    return result


def _compute(tasks: list[CellTask], executor, cache, progress: bool) -> dict:
    """Every task's outcome, in task order: from the cache where it holds the cell, else
    computed on the executor (each finished cell stored at once), plus the cell counts."""
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
    with ``threads`` threads like the run's cells.
    """
    with _executors.limit_threads(threads):
        return claim.simulate(dict(cell), [int(seed)], Context() if ctx is None else ctx)
