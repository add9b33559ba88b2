"""Run directories: writing them atomically and reading them back.

Layout of a run directory::

    results.json          the record (see :func:`run_document`)
    tables/<claim-id>.csv.gz the tidy per-instance table of each claim, claim and control rows
                          together (``control`` column), engine columns first

``results.json`` top-level keys: ``format``, ``run`` (profile, seed, device, dtype, controls,
selected claims), ``claims`` (per-claim record), ``summary`` (counts and overall ``ok``) — all
deterministic for a given seed and selection — and ``environment`` (versions, git commit,
host), ``timing`` (start, wall time, per-claim seconds) and ``diagnostics`` (tracebacks;
``cells``: how many cell tasks were read from the cache, computed or failed, and on which
executor), which are not. Keys are sorted; floats are written as Python's ``repr`` (non-finite values
as ``Infinity``/``NaN``, which :func:`json.load` reads back).

Writing is atomic: everything goes into a temporary directory next to the target (same file
system), which is then renamed into place; an existing run is moved aside first and deleted
only once the new one is in place. A crash or bad input never leaves a half-written run over
a good one, and only an empty directory or an earlier run (a directory holding
``results.json``) is ever replaced.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from udl.engine.cells import cell_dict
from udl.engine.files import atomic_write

__all__ = [
    "FORMAT",
    "RESULTS_FILE",
    "TABLES_DIR",
    "StoredRun",
    "check_target",
    "run_document",
    "dumps",
    "environment",
    "write_run",
    "RunDirectoryError",
    "load_results",
    "load_run",
]

FORMAT = "udl-run/1"
RESULTS_FILE = "results.json"
TABLES_DIR = "tables"
#: Tables are gzip-compressed CSV (pandas reads them directly): the curves of a ci run are
#: ~8 MB as text and ~1.5 MB compressed. mtime=0 keeps the bytes identical between runs.
TABLE_SUFFIX = ".csv.gz"
#: Seconds allowed for `git rev-parse` when recording the commit; a slow or hung git must not
#: hold up writing results.
GIT_TIMEOUT_S = 5


@dataclass(frozen=True)
class StoredRun:
    """A run read back from disk: the parsed ``results.json`` and the tables by claim id."""

    results: dict
    tables: dict[str, pd.DataFrame]


# --------------------------------------------------------------------------- the target
def check_target(out_dir: str | Path) -> Path:
    """Check that a run may be written to ``out_dir``, before anything is computed.

    Parameters
    ----------
    out_dir : path

    Returns
    -------
    pathlib.Path
        The target path.

    Raises
    ------
    ValueError
        The target exists and is a file, or a non-empty directory that is not a run, or
        no writable directory can hold it.
    """
    target = Path(out_dir)
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise ValueError(f"output path {str(target)!r} exists and is not a directory")
        if any(target.iterdir()) and not (target / RESULTS_FILE).is_file():
            raise ValueError(f"output directory {str(target)!r} is not empty and holds no {RESULTS_FILE}; "
                             "refusing to replace it (choose a new or empty directory, or an earlier run)")
    ancestor = target.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create output directory {str(target)!r}: {str(ancestor)!r} is not writable")
    return target


# --------------------------------------------------------------------------- the record
def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """Versions, git commit and host of this process (not deterministic across machines)."""
    return {
        "udl": _version("udl"),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "pandas": _version("pandas"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "git_commit": _git_commit(),
        "argv": list(sys.argv),
    }


def _verdict_fields(verdict) -> dict:
    if verdict is None:
        return {"outcome": None, "statistic_name": None, "statistic": None, "interval": None,
                "threshold": None, "n": None, "p_value": None, "detail": None}
    return verdict.to_dict()


def _claim_record(result) -> dict:
    claim, verdict = result.claim, result.verdict
    fields = _verdict_fields(verdict)
    record = {
        "id": claim.id,
        "theorem": claim.theorem,
        "title": claim.title,
        "statement": claim.statement,
        "kind": claim.kind,
        "alpha": float(claim.alpha),
        "beta": float(claim.beta),
        "effect": claim.effect,
        "regime": claim.regime,
        "requires": sorted(claim.requires),
        "profile": result.profile,
        "cells": [cell_dict(cell) for cell in claim.cells(result.profile)],
        "n_instances": claim.n_instances(result.profile),
        "outcome": result.outcome,
        "ok": result.ok,
        "verdict_outcome": fields["outcome"],
        "statistic_name": fields["statistic_name"],
        "statistic": fields["statistic"],
        "interval": fields["interval"],
        "threshold": fields["threshold"],
        "n": fields["n"],
        "p_raw": result.p_raw,
        "p_adjusted": result.p_adjusted,
        "detail": fields["detail"],
        "error": result.error,
        "table": f"{TABLES_DIR}/{claim.id}{TABLE_SUFFIX}" if len(result.table) else None,
    }
    control = {"description": claim.control, "run": result.controls_run, "outcome": result.control_outcome,
               "error": result.control_error}
    if result.controls_run:
        cv = _verdict_fields(result.control_verdict)
        control.update({k: cv[k] for k in ("statistic_name", "statistic", "interval", "threshold", "n",
                                            "p_value", "detail")})
    record["control"] = control
    return record


def run_document(result) -> dict:
    """The content of ``results.json`` for a :class:`~udl.engine.harness.RunResult`."""
    from udl.engine.stats import to_builtin

    claims = {cid: _claim_record(r) for cid, r in result.claims.items()}
    outcomes = [r.outcome for r in result.claims.values()]
    controls = [r.control_outcome for r in result.claims.values() if r.controls_run]
    return to_builtin({
        "format": FORMAT,
        "run": {"profile": result.profile, "seed": result.seed, "device": result.device, "dtype": result.dtype,
                "controls": result.controls, "claims": list(result.claims),
                "claims_package": result.claims_package,
                "multiple_testing": ("Holm step-down across the PASS tests of all decided claims of this run; "
                                     "negative controls are not adjusted")},
        "claims": claims,
        "summary": {"ok": result.ok,
                    "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
                    "control_outcomes": {o: controls.count(o) for o in sorted(set(controls))}},
        "environment": environment(),
        "timing": {"started": result.started, "wall_seconds": result.wall_seconds,
                   "claims": {cid: {"seconds": r.seconds, "control_seconds": r.control_seconds}
                              for cid, r in result.claims.items()}},
        "diagnostics": {"tracebacks": {cid: {"claim": r.traceback, "control": r.control_traceback}
                                       for cid, r in result.claims.items()
                                       if r.traceback or r.control_traceback},
                        "cells": dict(getattr(result, "cells", None) or {})},
    })


def dumps(document: dict) -> str:
    """Deterministic JSON text of a document (sorted keys, two-space indent, final newline)."""
    return json.dumps(document, sort_keys=True, indent=2, allow_nan=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- writing
def _write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically, gzip-compressed (mtime 0) when the name ends in ``.gz``."""
    data = text.encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    atomic_write(path, data)


def _write_contents(result, directory: Path) -> None:
    """Write tables then results.json (last, so a complete file marks a complete run)."""
    tables = directory / TABLES_DIR
    tables.mkdir()
    for cid, claim_result in result.claims.items():
        if len(claim_result.table):
            _write_text(tables / f"{cid}{TABLE_SUFFIX}", claim_result.table.to_csv(index=False, lineterminator="\n"))
    _write_text(directory / RESULTS_FILE, dumps(run_document(result)))


def _swap_into_place(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing target is moved aside and deleted after."""
    if not target.exists():
        os.replace(new, target)
        return
    aside = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(target, aside)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(aside, target)  # put the old run back
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_run(result, out_dir: str | Path) -> Path:
    """Write a run directory atomically.

    Parameters
    ----------
    result : udl.engine.harness.RunResult
    out_dir : path
        Target directory: new, empty, or an earlier run (replaced).

    Returns
    -------
    pathlib.Path
        The run directory.
    """
    target = check_target(out_dir)
    target.absolute().parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir (unlike tempfile.mkdtemp) honours the umask, so the run gets normal permissions
    staging = target.absolute().parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        _write_contents(result, staging)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------- reading
class RunDirectoryError(ValueError):
    """A path that is not a readable run directory (the message names the path and why)."""


def load_results(directory: str | Path) -> dict:
    """Read and check the ``results.json`` of a run directory: the one reader of run records.

    Parameters
    ----------
    directory : path
        A run directory written by :func:`write_run`.

    Returns
    -------
    dict
        The parsed ``results.json`` (its ``format`` is :data:`FORMAT`, its ``claims`` a dict).

    Raises
    ------
    RunDirectoryError
        Missing directory, not a directory, no ``results.json``, unreadable JSON, an unknown
        format, or no claims record.
    """
    path = Path(directory)
    if not path.exists():
        raise RunDirectoryError(f"{str(path)!r} does not exist")
    if not path.is_dir():
        raise RunDirectoryError(f"{str(path)!r} is not a directory")
    file = path / RESULTS_FILE
    if not file.is_file():
        raise RunDirectoryError(f"{str(path)!r} is not a run directory (no {RESULTS_FILE})")
    try:
        with open(file, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError) as exc:
        raise RunDirectoryError(f"{str(file)!r} cannot be read: {type(exc).__name__}: {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        fmt = record.get("format") if isinstance(record, dict) else None
        raise RunDirectoryError(f"{str(file)!r} is not a {FORMAT} run (format {fmt!r})")
    if not isinstance(record.get("claims"), dict):
        raise RunDirectoryError(f"{str(file)!r} has no claims record")
    return record


def load_run(directory: str | Path) -> StoredRun:
    """Read a run directory written by :func:`write_run`: its record and its tables.

    Parameters
    ----------
    directory : path

    Returns
    -------
    StoredRun
        ``results`` (the parsed ``results.json``, read by :func:`load_results`) and
        ``tables`` (``{claim id: DataFrame}``).

    Raises
    ------
    RunDirectoryError
        ``directory`` is not a readable run directory (see :func:`load_results`).
    """
    directory = Path(directory)
    results = load_results(directory)
    tables = {}
    for cid, record in results["claims"].items():
        if record.get("table"):
            tables[cid] = pd.read_csv(directory / record["table"])
    return StoredRun(results=results, tables=tables)
