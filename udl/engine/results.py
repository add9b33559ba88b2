"""Run directories: writing them atomically and reading them back.

Layout of a run directory::

    results.json          the record (see :func:`run_document`)
    tables/<claim-id>.csv.gz the tidy per-instance table of each claim, claim and control rows
                          together (``control`` column), engine columns first

and what other commands add to it: ``report.md``, ``report.html``, ``figures/`` (PNGs and their
vector copies; ``udl report``) and ``audit.json``, ``audit.csv``, ``audit.md`` (``udl audit``). :data:`RUN_LAYOUT` is
the one list of everything udl writes into a run directory.

``results.json`` top-level keys: ``format``, ``run`` (profile, seed, device, dtype, controls,
selected claims), ``claims`` (per-claim record: the verdict, its ``evidence`` (statistical or deterministic),
``decided`` and ``reason`` (a claim reported only at this profile), ``predictions``, ``hypotheses``
per cell, the control), ``summary`` (counts and overall ``ok``) — all
deterministic for a given seed and selection — and ``environment`` (versions, git commit,
host), ``timing`` (start, wall time, per-claim seconds) and ``diagnostics`` (tracebacks;
``cells``: how many cell tasks were read from the cache, computed or failed, and on which
executor), which are not. ``environment`` records udl's version, the git commit of udl's own
checkout and whether its tree was dirty (:mod:`udl.engine.provenance`), the versions of torch,
numpy, scipy and pandas, the device and the threads. The file is strict JSON (RFC 8259): keys
sorted, floats written as Python's ``repr``, and the non-finite values as the strings
``"Infinity"``, ``"-Infinity"`` and ``"NaN"`` (:mod:`udl.engine.strict_json`), which
:func:`load_results` maps back to floats.

Reading (:func:`load_results`, :func:`load_run`) validates the record: the format, the run
settings, each claim's record, and the outcome vocabulary (exactly PASS, FAIL, INCONCLUSIVE,
ERROR); a malformed run raises :class:`RunDirectoryError` naming the file and the bad field.

Writing is atomic: everything goes into a temporary directory next to the target (same file
system), which is then renamed into place; an existing run is moved aside first and deleted
only once the new one is in place. A crash or bad input never leaves a half-written run over
a good one. Only a new or empty directory, or a complete earlier run, is ever replaced: a
directory whose ``results.json`` is a valid run and which holds nothing but what udl writes
(:data:`RUN_LAYOUT`). Anything else is refused (:func:`check_target`) before any computation,
and the earlier run is deleted entry by entry, never a file udl did not write.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from udl.engine import strict_json
from udl.engine.cells import cell_dict
from udl.engine.figure_files import RASTER_FORMAT, VECTOR_FORMATS
from udl.engine.files import (OutputPathError, atomic_write, check_replaceable, check_writable, discard_directory,
                              describe_entries)
from udl.engine.provenance import GIT_TIMEOUT_S, environment
from udl.engine.run_schema import OUTCOMES, check_record

__all__ = [
    "FORMAT",
    "RESULTS_FILE",
    "TABLES_DIR",
    "REPORT_MD",
    "REPORT_HTML",
    "FIGURES_DIR",
    "AUDIT_FILES",
    "RUN_LAYOUT",
    "FIGURE_SUFFIXES",
    "OUTCOMES",
    "GIT_TIMEOUT_S",
    "StoredRun",
    "RunTarget",
    "OutputPathError",
    "check_target",
    "inspect_target",
    "REPORT_ENTRIES",
    "check_report_target",
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
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FIGURES_DIR = "figures"
#: The files ``udl audit --out`` adds to the run directory of the claims it ran.
AUDIT_FILES = ("audit.json", "audit.csv", "audit.md")
#: The files of a figure: the PNG the report shows and its vector copies.
FIGURE_SUFFIXES = tuple(f".{fmt}" for fmt in (RASTER_FORMAT, *VECTOR_FORMATS))
#: Everything udl writes into a run directory — the one list (a command that writes a new kind
#: of file there adds it here): ``{name: None}`` for a file, ``{name: suffixes}`` for a directory
#: holding only files that end in one of ``suffixes``. A directory holding anything else is not
#: replaced.
RUN_LAYOUT = {RESULTS_FILE: None, TABLES_DIR: (TABLE_SUFFIX,), REPORT_MD: None, REPORT_HTML: None,
              FIGURES_DIR: FIGURE_SUFFIXES, **{name: None for name in AUDIT_FILES}}


@dataclass(frozen=True)
class StoredRun:
    """A run read back from disk: the parsed ``results.json`` and the tables by claim id."""

    results: dict
    tables: dict[str, pd.DataFrame]


# --------------------------------------------------------------------------- the target
@dataclass(frozen=True)
class RunTarget:
    """Where a run will be written: the path, and the earlier run it replaces (a one-line
    description, or None when the directory is new or empty)."""

    path: Path
    replaces: str | None = None


def _describe_run(record: dict) -> str:
    run = record.get("run") or {}
    started = (record.get("timing") or {}).get("started") or "unknown time"
    n = len(record.get("claims") or {})
    return (f"the earlier run there (profile {run.get('profile')}, seed {run.get('seed')}, {n} claim"
            f"{'s' if n != 1 else ''}, started {started})")


def inspect_target(out_dir: str | Path) -> RunTarget:
    """Check that a run may be written to ``out_dir``, before anything is computed.

    Allowed: a path that does not exist (its parents are created), an empty directory, or a
    complete earlier run — a valid ``results.json`` and nothing but what udl writes
    (:data:`RUN_LAYOUT`). The nearest existing ancestor must take a probe write.

    Parameters
    ----------
    out_dir : path

    Returns
    -------
    RunTarget
        The path and, when it holds an earlier run, what will be replaced.

    Raises
    ------
    OutputPathError
        A file or symbolic link; a non-empty directory that is not a udl run, holds a
        malformed run, or holds files udl did not write; no writable directory to hold it.
    """
    target = Path(out_dir)
    replaces = None
    if target.is_symlink():
        raise OutputPathError(f"output path {str(target)!r} is a symbolic link (give a directory: a link is "
                              "never replaced)")
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"output path {str(target)!r} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        if not (target / RESULTS_FILE).is_file():
            foreign = describe_entries(sorted(entry.name for entry in target.iterdir()))
            raise OutputPathError(f"output directory {str(target)!r} is not empty and is not a udl run (no "
                                  f"{RESULTS_FILE}; it holds {foreign}); refusing to replace it (choose a new "
                                  "or empty directory, or an earlier run)")
        try:
            record = load_results(target)
        except RunDirectoryError as exc:
            raise OutputPathError(f"output directory {str(target)!r} holds a {RESULTS_FILE} that is not a valid "
                                  f"udl run ({exc}); refusing to replace it") from None
        check_replaceable(target, RUN_LAYOUT, "output directory")
        replaces = _describe_run(record)
    check_writable(target, beside=True)
    return RunTarget(target, replaces)


def check_target(out_dir: str | Path) -> Path:
    """:func:`inspect_target`, returning the path only.

    Raises
    ------
    OutputPathError
        See :func:`inspect_target` (a :class:`ValueError`).
    """
    return inspect_target(out_dir).path


#: What rendering a report replaces in its directory (nothing else there is touched).
REPORT_ENTRIES = (REPORT_MD, REPORT_HTML, FIGURES_DIR)


def check_report_target(out_dir: str | Path) -> Path:
    """Check that a report may be rendered into ``out_dir`` (a run directory or any other).

    Only :data:`REPORT_ENTRIES` are replaced there, so each of them that exists must be udl's
    (``figures/`` holding only figure files); the directory (or its nearest existing ancestor)
    must take a probe write.

    Raises
    ------
    OutputPathError
        ``out_dir`` is a file or a symbolic link, a report entry there is not udl's, or the
        directory cannot be written.
    """
    target = Path(out_dir)
    if target.is_symlink():
        raise OutputPathError(f"report directory {str(target)!r} is a symbolic link (give the directory it "
                              "points to)")
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"report directory {str(target)!r} exists and is not a directory")
    if target.is_dir():
        check_replaceable(target, RUN_LAYOUT, "report directory", names=REPORT_ENTRIES)
    check_writable(target, "report directory")
    return target


# --------------------------------------------------------------------------- the record


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
        "evidence": result.evidence,
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
        "decides_at": list(claim.decides_at),
        "decided": result.decided,
        "reason": result.reason,
        "verdict_outcome": fields["outcome"],
        "statistic_name": fields["statistic_name"],
        "statistic": fields["statistic"],
        "interval": fields["interval"],
        "threshold": fields["threshold"],
        "n": fields["n"],
        "p_raw": result.p_raw,
        "p_adjusted": result.p_adjusted,
        "detail": fields["detail"],
        "predictions": fields.get("predictions") or [],
        "hypotheses": list(result.hypotheses),
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
                "multiple_testing": ("Holm step-down across the PASS tests of all decided statistical claims of "
                                     "this run; deterministic checks, claims reported only at this profile and "
                                     "negative controls are not adjusted")},
        "claims": claims,
        "summary": {"ok": result.ok,
                    "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
                    "reported_only": [cid for cid, r in result.claims.items() if not r.decided],
                    "control_outcomes": {o: controls.count(o) for o in sorted(set(controls))}},
        "environment": environment(result.device, (getattr(result, "cells", None) or {}).get("threads_per_cell")),
        "timing": {"started": result.started, "wall_seconds": result.wall_seconds,
                   "claims": {cid: {"seconds": r.seconds, "control_seconds": r.control_seconds}
                              for cid, r in result.claims.items()}},
        "diagnostics": {"tracebacks": {cid: {"claim": r.traceback, "control": r.control_traceback}
                                       for cid, r in result.claims.items()
                                       if r.traceback or r.control_traceback},
                        "cells": dict(getattr(result, "cells", None) or {})},
    })


def dumps(document: dict) -> str:
    """Deterministic strict JSON text of a document (sorted keys, two-space indent, final newline;
    non-finite numbers as the strings of :data:`udl.engine.strict_json.NONFINITE`)."""
    return strict_json.dumps(document)


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
    """Rename ``new`` to ``target``; an existing target is moved aside, then its udl entries are
    deleted (anything else that appeared there meanwhile is kept, and said on stderr)."""
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
    kept = discard_directory(aside, RUN_LAYOUT)
    if kept:
        print(f"udl: files udl did not write appeared in {str(target)!r} while it was being replaced; they "
              f"are kept in {str(aside)!r}: {describe_entries(kept)}", file=sys.stderr)


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
        format, or a record that does not validate (:func:`udl.engine.run_schema.check_record`:
        no claims record, a missing or mistyped field, an outcome outside PASS, FAIL,
        INCONCLUSIVE, ERROR).
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
        record = strict_json.load(file)
    except (OSError, ValueError) as exc:
        raise RunDirectoryError(f"{str(file)!r} cannot be read: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())}") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        fmt = record.get("format") if isinstance(record, dict) else None
        raise RunDirectoryError(f"{str(file)!r} is not a {FORMAT} run (format {fmt!r})")
    try:
        check_record(record)
    except ValueError as exc:
        raise RunDirectoryError(f"{str(file)!r} {exc}") from None
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
        ``directory`` is not a readable run directory (see :func:`load_results`), or a table
        its record names is missing or unreadable.
    """
    directory = Path(directory)
    results = load_results(directory)
    tables = {}
    for cid, record in results["claims"].items():
        if record.get("table"):
            tables[cid] = _read_table(directory, record["table"])
    return StoredRun(results=results, tables=tables)


def _read_table(directory: Path, relative: str) -> pd.DataFrame:
    path = directory / relative
    if not path.is_file():
        raise RunDirectoryError(f"{str(directory)!r} is not a complete run: its table {relative} is missing")
    try:
        return pd.read_csv(path)
    except Exception as exc:  # gzip, CSV and decoding errors of a damaged file, all alike
        raise RunDirectoryError(f"{str(path)!r} cannot be read: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())}") from None
