"""``udl compare OLD_RUN NEW_RUN``: what changed between two stored runs, for a CI job.

Reads only the two ``results.json`` records (no tables, nothing recomputed) and lists:

- **regressions** (exit status 1): a claim that PASSED in OLD and is FAIL, INCONCLUSIVE or ERROR in
  NEW; a claim of OLD missing from NEW; a negative control that FAILED in OLD and no longer FAILS
  in NEW (a claim whose control passes cannot detect anything — it is broken too);
- other **verdict changes** (e.g. FAIL → PASS, INCONCLUSIVE → FAIL) and **added** claims;
- **moved statistics**: the claim's statistic — and each sub-test of its verdict
  (``detail.parts``) present in both runs — where the new value lies outside the old interval
  or the old value outside the new one. Statistics whose name changed are not compared (noted).

Runs that differ in a setting — profile, seed, device, dtype, controls, claims package, the
claims selected, or the udl version — compare apples with oranges: each difference is a warning
(``differences`` and ``warnings`` of the JSON, the Notes of the Markdown, and one
``udl compare: warning:`` line on stderr).

Both records are read by :func:`udl.engine.results.load_results`, which validates them (format,
fields, the outcome vocabulary PASS/FAIL/INCONCLUSIVE/ERROR): a malformed run is bad input.

Output is Markdown (default) or strict JSON (non-finite numbers as the strings ``"Infinity"``,
``"-Infinity"``, ``"NaN"``: :mod:`udl.engine.strict_json`), suitable for a CI comment. Exit
status: 0 no regression, 1 some regression, 2 bad input (a directory that is missing or not a
valid run; one line on stderr).
"""

from __future__ import annotations

import math
from pathlib import Path

from udl.engine import results as _results
from udl.engine import strict_json

from udl.app._format import fmt_number
from udl.app.options import EXIT_NOT_OK, EXIT_OK

__all__ = ["CompareError", "load_record", "compare", "to_markdown", "to_json", "exit_status"]

#: Outcomes that a PASS must not turn into.
_BAD = ("FAIL", "INCONCLUSIVE", "ERROR")
#: Run settings whose difference makes a comparison apples-to-oranges (reported as a warning).
_SETTINGS = ("profile", "seed", "device", "dtype", "controls", "claims_package")


class CompareError(ValueError):
    """Bad input: a path that is not a readable run directory."""


def load_record(directory: str | Path) -> dict:
    """The parsed ``results.json`` of a run directory (read by :func:`udl.engine.results.load_results`).

    Raises
    ------
    CompareError
        Missing directory, no ``results.json``, unreadable JSON or an unknown format.
    """
    try:
        return _results.load_results(directory)
    except _results.RunDirectoryError as exc:
        raise CompareError(str(exc)) from exc


def _num(value) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _inside(value: float, interval) -> bool:
    lo, hi = (_num(interval[0]), _num(interval[1])) if interval and len(interval) == 2 else (None, None)
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    return lo <= value <= hi


def _moved(what: str, old: dict, new: dict) -> dict | None:
    """A statistic that moved beyond an interval, as a record; None when it did not (or cannot be compared)."""
    s_old, s_new = _num(old.get("statistic")), _num(new.get("statistic"))
    i_old, i_new = old.get("interval"), new.get("interval")
    if s_old is None or s_new is None or not i_old or not i_new:
        return None
    new_outside_old = not _inside(s_new, i_old)
    old_outside_new = not _inside(s_old, i_new)
    if not (new_outside_old or old_outside_new):
        return None
    return {"what": what, "statistic_name": new.get("statistic_name"),
            "old": s_old, "old_interval": list(i_old), "new": s_new, "new_interval": list(i_new),
            "change": s_new - s_old, "new_outside_old_interval": new_outside_old,
            "old_outside_new_interval": old_outside_new,
            "threshold": _num(new.get("threshold"))}


def _statistics(cid: str, old: dict, new: dict) -> tuple[list[dict], list[str]]:
    moved, notes = [], []
    if old.get("statistic_name") != new.get("statistic_name") and old.get("statistic") is not None \
            and new.get("statistic") is not None:
        notes.append(f"{cid}: statistic changed from {old.get('statistic_name')!r} to "
                     f"{new.get('statistic_name')!r}; not compared")
    else:
        m = _moved("claim", old, new)
        if m:
            moved.append(m)
    old_parts = ((old.get("detail") or {}).get("parts") or {})
    new_parts = ((new.get("detail") or {}).get("parts") or {})
    for name in sorted(set(old_parts) & set(new_parts)):
        po, pn = old_parts[name], new_parts[name]
        if po.get("statistic_name") != pn.get("statistic_name"):
            continue
        m = _moved(f"part {name}", po, pn)
        if m:
            moved.append(m)
    return moved, notes


def differences(old: dict, new: dict) -> list[dict]:
    """The settings in which two run records differ: ``[{"setting", "old", "new", "message"}]``.

    Compared: the run settings :data:`_SETTINGS`, the claims selected (``run.claims``, as sets)
    and the udl version (``environment.udl``).
    """
    found = []
    old_run, new_run = old.get("run") or {}, new.get("run") or {}
    for key in _SETTINGS:
        a, b = old_run.get(key), new_run.get(key)
        if a != b:
            found.append({"setting": key, "old": a, "new": b, "message": f"runs differ in {key}: {a!r} (old) vs "
                                                                          f"{b!r} (new)"})
    a, b = set(old_run.get("claims") or old.get("claims") or ()), set(new_run.get("claims") or new.get("claims") or ())
    if a != b:
        parts = [f"only in old: {', '.join(sorted(a - b))}" if a - b else "",
                 f"only in new: {', '.join(sorted(b - a))}" if b - a else ""]
        found.append({"setting": "claims", "old": sorted(a), "new": sorted(b),
                      "message": "runs differ in the claims selected (" + "; ".join(p for p in parts if p) + ")"})
    a, b = (old.get("environment") or {}).get("udl"), (new.get("environment") or {}).get("udl")
    if a != b:
        found.append({"setting": "udl", "old": a, "new": b,
                      "message": f"runs differ in udl version: {a!r} (old) vs {b!r} (new)"})
    return found


def compare(old: dict, new: dict, *, old_label: str = "OLD", new_label: str = "NEW") -> dict:
    """Compare two run records (``results.json`` contents).

    Returns
    -------
    dict
        ``old``/``new`` (labels and settings), ``regressions`` (claim, kind, old, new, reason),
        ``verdict_changes``, ``control_changes``, ``moved`` (claim, statistic records),
        ``added``, ``removed``, ``unchanged`` (claim ids), ``differences`` (the settings the
        runs differ in, :func:`differences`), ``warnings`` (their messages, then notes on
        statistics not compared), ``regressed`` (bool).
    """
    oc, nc = old["claims"], new["claims"]
    regressions, changes, control_changes, moved = [], [], [], []
    unchanged = []
    settings = differences(old, new)
    warnings = [d["message"] for d in settings]
    removed = sorted(set(oc) - set(nc))
    added = sorted(set(nc) - set(oc))
    for cid in removed:
        regressions.append({"claim": cid, "kind": "removed", "old": oc[cid].get("outcome"), "new": None,
                            "reason": f"claim {cid} ({oc[cid].get('outcome')} in old) is missing from the new run"})
    for cid in sorted(set(oc) & set(nc)):
        o, n = oc[cid], nc[cid]
        oo, no = o.get("outcome") or "ERROR", n.get("outcome") or "ERROR"
        changed = False
        if oo != no:
            changed = True
            entry = {"claim": cid, "old": oo, "new": no, "title": n.get("title")}
            changes.append(entry)
            if oo == "PASS" and no in _BAD:
                reason = f"{cid} was PASS and is now {no}"
                if no == "ERROR" and n.get("error"):
                    reason += f" ({n['error']})"
                regressions.append({"claim": cid, "kind": "verdict", "old": oo, "new": no, "reason": reason})
        co, cn = o.get("control") or {}, n.get("control") or {}
        if co.get("run") and cn.get("run"):
            a, b = co.get("outcome") or "ERROR", cn.get("outcome") or "ERROR"
            if a != b:
                changed = True
                control_changes.append({"claim": cid, "old": a, "new": b})
                if a == "FAIL":
                    regressions.append({"claim": cid, "kind": "control", "old": a, "new": b,
                                        "reason": f"{cid}'s negative control FAILED before and is now {b}: "
                                                  "the claim no longer detects its broken setting"})
        stats_moved, notes = _statistics(cid, o, n)
        warnings += notes
        if stats_moved:
            changed = True
            moved.append({"claim": cid, "statistics": stats_moved})
        if not changed:
            unchanged.append(cid)
    return {"old": {"label": old_label, "run": old.get("run") or {}, "summary": old.get("summary") or {},
                    "git_commit": (old.get("environment") or {}).get("git_commit")},
            "new": {"label": new_label, "run": new.get("run") or {}, "summary": new.get("summary") or {},
                    "git_commit": (new.get("environment") or {}).get("git_commit")},
            "regressed": bool(regressions), "regressions": regressions, "verdict_changes": changes,
            "control_changes": control_changes, "moved": moved, "added": added, "removed": removed,
            "unchanged": unchanged, "differences": settings, "warnings": warnings}


def exit_status(diff: dict) -> int:
    """:data:`~udl.app.options.EXIT_NOT_OK` (1) when the comparison found a regression, else
    :data:`~udl.app.options.EXIT_OK` (0)."""
    return EXIT_NOT_OK if diff["regressed"] else EXIT_OK


def _f(value) -> str:
    return fmt_number(_num(value))                 # NaN and non-numbers as a dash


def _interval(i) -> str:
    return f"[{_f(i[0])}, {_f(i[1])}]" if i and len(i) == 2 else "–"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(diff: dict) -> str:
    """A Markdown summary for a CI comment."""
    old, new = diff["old"], diff["new"]
    lines = ["## udl compare", ""]
    status = "❌ **regression**" if diff["regressed"] else "✅ **no regression**"
    lines.append(f"{status}: {len(diff['regressions'])} regression(s), {len(diff['verdict_changes'])} verdict "
                 f"change(s), {len(diff['moved'])} claim(s) with statistics beyond their intervals, "
                 f"{len(diff['added'])} added, {len(diff['removed'])} removed.")
    lines.append("")

    def who(side):
        run = side["run"]
        commit = (side.get("git_commit") or "?")[:10]
        return (f"`{side['label']}` (profile {run.get('profile')}, seed {run.get('seed')}, {run.get('device')}, "
                f"{run.get('dtype')}, commit {commit})")

    lines += [f"- old: {who(old)}", f"- new: {who(new)}", ""]
    if diff["regressions"]:
        lines += ["### Regressions", "", "| claim | old | new | why |", "|---|---|---|---|"]
        for r in diff["regressions"]:
            lines.append(f"| {_cell(r['claim'])} | {_cell(r['old'] or '–')} | {_cell(r['new'] or 'missing')} | "
                         f"{_cell(r['reason'])} |")
        lines.append("")
    if diff["verdict_changes"]:
        lines += ["### Verdict changes", "", "| claim | old | new | title |", "|---|---|---|---|"]
        for c in diff["verdict_changes"]:
            lines.append(f"| {_cell(c['claim'])} | {c['old']} | {c['new']} | {_cell(c.get('title') or '')} |")
        lines.append("")
    if diff["control_changes"]:
        lines += ["### Negative-control changes", "", "| claim | old | new |", "|---|---|---|"]
        for c in diff["control_changes"]:
            lines.append(f"| {_cell(c['claim'])} | {c['old']} | {c['new']} |")
        lines.append("")
    if diff["moved"]:
        lines += ["### Statistics beyond their intervals", "",
                  "| claim | statistic | old [interval] | new [interval] | change |", "|---|---|---|---|---|"]
        for m in diff["moved"]:
            for s in m["statistics"]:
                name = s["what"] if s["what"] == "claim" else s["what"]
                label = f"{name}: {s.get('statistic_name') or ''}" if name != "claim" else (s.get("statistic_name") or "")
                lines.append(f"| {_cell(m['claim'])} | {_cell(label)} | {_f(s['old'])} {_interval(s['old_interval'])} "
                             f"| {_f(s['new'])} {_interval(s['new_interval'])} | {_f(s['change'])} |")
        lines.append("")
    if diff["added"]:
        lines += ["### Added claims", "", ", ".join(diff["added"]), ""]
    if diff["removed"]:
        lines += ["### Removed claims", "", ", ".join(diff["removed"]), ""]
    if diff["warnings"]:
        lines += ["### Notes", ""] + [f"- {w}" for w in diff["warnings"]] + [""]
    if diff["unchanged"]:
        lines += [f"Unchanged: {', '.join(diff['unchanged'])}.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def to_json(diff: dict) -> str:
    """The comparison as strict JSON (sorted keys; non-finite numbers as the strings of
    :data:`udl.engine.strict_json.NONFINITE`)."""
    return strict_json.dumps(diff)
