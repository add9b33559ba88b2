"""The shape of a run record (``results.json``) and its check: what every reader may rely on.

:func:`check_record` is applied by the one reader of run records
(:func:`udl.engine.results.load_results`), so ``udl report``, ``udl compare`` and everything that
loads a run refuse a malformed or hand-edited record instead of rendering or comparing it as if
it were valid. It checks the fields the readers use — types, the outcome vocabulary (exactly
:data:`OUTCOMES`, upper case), table paths inside the run directory — and ignores fields it does
not know (newer writers may add some).
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["OUTCOMES", "VERDICT_OUTCOMES", "check_record"]

#: Final outcomes of a claim (and of a negative control) in a run: exactly these strings.
OUTCOMES = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")
#: Outcomes of a verdict (before Holm; a claim without a verdict has None).
VERDICT_OUTCOMES = ("PASS", "FAIL", "INCONCLUSIVE")
_TABLES = "tables"
_TABLE_SUFFIX = ".csv.gz"


class _Bad(ValueError):
    pass


def _where(path: tuple) -> str:
    return "".join(f"[{p!r}]" for p in path)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expect(record: dict, path: tuple, key: str, check, allowed: str) -> None:
    if key not in record:
        raise _Bad(f"has no {_where(path + (key,))} field (expected {allowed})")
    if not check(record[key]):
        raise _Bad(f"has {_where(path + (key,))} = {record[key]!r} (expected {allowed})")


def _optional(record: dict, path: tuple, key: str, check, allowed: str) -> None:
    if key in record and record[key] is not None and not check(record[key]):
        raise _Bad(f"has {_where(path + (key,))} = {record[key]!r} (expected {allowed} or null)")


def _is_str(value) -> bool:
    return isinstance(value, str)


def _outcome(choices):
    return lambda value: isinstance(value, str) and value in choices


def _interval(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(v is None or _number(v) for v in value)


def _table_path(value) -> bool:
    """``tables/<name>.csv.gz``: a file inside the run directory's tables folder, never elsewhere."""
    if not isinstance(value, str) or "\\" in value:
        return False
    parts = PurePosixPath(value).parts
    return len(parts) == 2 and parts[0] == _TABLES and parts[1].endswith(_TABLE_SUFFIX)


def _check_run(run, path: tuple) -> None:
    if not isinstance(run, dict):
        raise _Bad(f"has {_where(path)} = {run!r} (expected an object)")
    _expect(run, path, "profile", _is_str, "a profile name")
    _expect(run, path, "seed", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "an integer >= 0")
    _expect(run, path, "device", _is_str, "a device name")
    _expect(run, path, "dtype", _is_str, "a dtype name")
    _expect(run, path, "controls", lambda v: isinstance(v, bool), "true or false")
    _optional(run, path, "claims", lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v),
              "a list of claim ids")
    _optional(run, path, "claims_package", _is_str, "a package name or path")


def _check_numbers(claim: dict, path: tuple) -> None:
    for key in ("statistic", "threshold", "p_raw", "p_adjusted", "p_value"):
        _optional(claim, path, key, _number, "a number")
    _optional(claim, path, "n", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
              "an integer >= 0")
    _optional(claim, path, "interval", _interval, "[lower, upper]")
    _optional(claim, path, "statistic_name", _is_str, "a name")


def _check_control(control, path: tuple) -> None:
    if not isinstance(control, dict):
        raise _Bad(f"has {_where(path)} = {control!r} (expected an object)")
    _expect(control, path, "run", lambda v: isinstance(v, bool), "true or false")
    if control["run"]:
        _expect(control, path, "outcome", _outcome(OUTCOMES), " or ".join(OUTCOMES))
        _check_numbers(control, path)
    elif control.get("outcome") is not None:
        raise _Bad(f"has {_where(path + ('outcome',))} = {control['outcome']!r} for a control that did not run "
                   "(expected null)")
    _optional(control, path, "error", _is_str, "a message")


def _check_claim(cid: str, claim, path: tuple) -> None:
    if not isinstance(claim, dict):
        raise _Bad(f"has {_where(path)} = {claim!r} (expected an object)")
    _expect(claim, path, "id", lambda v: v == cid, f"the claim id {cid!r}")
    _expect(claim, path, "outcome", _outcome(OUTCOMES), " or ".join(OUTCOMES))
    _expect(claim, path, "ok", lambda v: isinstance(v, bool), "true or false")
    for key in ("title", "theorem", "kind"):
        _expect(claim, path, key, _is_str, "text")
    _optional(claim, path, "verdict_outcome", _outcome(VERDICT_OUTCOMES), " or ".join(VERDICT_OUTCOMES))
    _optional(claim, path, "error", _is_str, "a message")
    _optional(claim, path, "table", _table_path, f"{_TABLES}/<name>{_TABLE_SUFFIX}")
    _optional(claim, path, "detail", lambda v: isinstance(v, dict), "an object")
    _check_numbers(claim, path)
    _expect(claim, path, "control", lambda v: True, "an object")
    _check_control(claim["control"], path + ("control",))


def check_record(record) -> None:
    """Check a parsed ``results.json`` (non-finite numbers already mapped back to floats).

    Parameters
    ----------
    record : object
        The parsed document (its ``format`` checked by the caller).

    Raises
    ------
    ValueError
        The first problem, as ``has ['claims']['A.1']['outcome'] = 'MAYBE' (expected PASS or
        FAIL or INCONCLUSIVE or ERROR)`` (the caller prefixes the file name).
    """
    if not isinstance(record, dict):
        raise ValueError(f"is not a JSON object (got {type(record).__name__})")
    if not isinstance(record.get("claims"), dict):
        raise ValueError("has no claims record")
    try:
        _expect(record, (), "run", lambda v: True, "an object")
        _check_run(record["run"], ("run",))
        _expect(record, (), "summary", lambda v: isinstance(v, dict), "an object")
        _expect(record["summary"], ("summary",), "ok", lambda v: isinstance(v, bool), "true or false")
        for cid, claim in record["claims"].items():
            _check_claim(cid, claim, ("claims", cid))
    except _Bad as exc:
        raise ValueError(str(exc)) from None
