"""The result of an audit: one :class:`ClaimAudit` line per claim, gathered in an :class:`AuditResult`,
and the audit directory (:func:`write_audit`).

Outcomes of an audit (:data:`AUDIT_OUTCOMES`): PASS, FAIL, INCONCLUSIVE, ERROR (the run's
outcome after Holm), NOT APPLICABLE, XFAIL (expected failure that failed) and XPASS (expected
failure that passed: flagged). The audit is ok when none is FAIL, INCONCLUSIVE, ERROR or XPASS
(:data:`UNEXPECTED`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from udl.app._format import fmt_number

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AUDIT_OUTCOMES", "UNEXPECTED", "NOT_APPLICABLE", "AUDIT_FORMAT", "AUDIT_FILES", "ClaimAudit",
           "AuditResult", "write_audit", "fmt", "md_cell", "md_code", "md_text"]

AUDIT_OUTCOMES = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR", "NOT APPLICABLE", "XFAIL", "XPASS")
#: Outcomes that make an audit not ok (exit status 1 of ``udl audit``).
UNEXPECTED = ("FAIL", "INCONCLUSIVE", "ERROR", "XPASS")
NOT_APPLICABLE = "NOT APPLICABLE"
AUDIT_FORMAT = "udl-audit/1"
#: The files an audit adds to its run directory (named in :data:`udl.engine.results.AUDIT_FILES`,
#: the one list of what udl writes there).
AUDIT_FILES = ("audit.json", "audit.csv", "audit.md")


def fmt(value) -> str:
    """A number for the terminal and the audit files (:func:`udl.app._format.fmt_number`, ASCII)."""
    return fmt_number(value, plain=True)


def md_cell(text: str) -> str:
    """``text`` as one Markdown table cell: pipes escaped, newlines as spaces."""
    return (text or "").replace("|", "\\|").replace("\n", " ")


#: Characters Markdown may read as syntax inside a line (emphasis, links, code, HTML, headings,
#: table cells); CommonMark lets any of them be escaped with a backslash.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()<>#+!|~])")


def md_text(text: str) -> str:
    """``text`` (e.g. an encoder name such as ``my_mod:make[x]*``) as literal Markdown: every
    character Markdown could read as syntax backslash-escaped, newlines as spaces; safe in a
    heading, in prose and in a table cell."""
    return _MD_SPECIAL.sub(r"\\\1", str(text or "")).replace("\n", " ")


def md_code(text: str) -> str:
    """``text`` as one Markdown code span, fenced by more backticks than it holds in a row."""
    text = str(text).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


@dataclass
class ClaimAudit:
    """One claim's line of an audit.

    ``outcome`` is one of :data:`AUDIT_OUTCOMES`; ``verdict_outcome`` the run's outcome before
    expectations were applied (None when not applicable). ``statistic``, ``interval``,
    ``threshold``, ``n`` come from the claim's verdict (None when it has none). ``reason`` says
    why the outcome is what it is (missing capability, error, expectation, Holm downgrade).
    """

    id: str
    theorem: str
    title: str
    outcome: str
    reason: str = ""
    verdict_outcome: str | None = None
    statistic_name: str | None = None
    statistic: float | None = None
    interval: tuple[float, float] | None = None
    threshold: float | None = None
    n: int | None = None
    p_raw: float | None = None
    p_adjusted: float | None = None
    requires: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    expected: str | None = None
    error: str | None = None
    control_outcome: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        from udl.engine.stats import to_builtin

        return to_builtin({k: getattr(self, k) for k in self.__dataclass_fields__})

    def describe(self) -> str:
        """``statistic_name = value [lo, hi]`` (or ``-``)."""
        if self.statistic is None:
            return "-"
        lo, hi = self.interval if self.interval is not None else (None, None)
        return f"{self.statistic_name} = {fmt(self.statistic)} [{fmt(lo)}, {fmt(hi)}]"


@dataclass
class AuditResult:
    """The result of :func:`check_encoder`: one :class:`ClaimAudit` per claim, and the run.

    Attributes
    ----------
    encoder : the encoder audited.  name : its display name.  capabilities : what it declares.
    profile, seed, device, dtype : the settings.  claims : ``{id: ClaimAudit}`` in id order.
    run : the :class:`udl.engine.runner.RunResult` of the applicable claims (None when none applied).
    controls : whether the claims' negative controls ran too.
    """

    encoder: Any
    name: str
    capabilities: frozenset
    profile: str
    seed: int
    device: str
    dtype: str
    claims: dict[str, ClaimAudit]
    run: Any = None
    controls: bool = False
    wall_seconds: float = 0.0

    # ------------------------------------------------------------------ summaries
    def outcomes(self) -> dict[str, str]:
        """``{claim id: outcome}``."""
        return {cid: c.outcome for cid, c in self.claims.items()}

    @property
    def counts(self) -> dict[str, int]:
        """claims, ran, not_applicable, expected_to_fail, passed, failed, xfail, xpass,
        inconclusive, error (``passed``/``failed`` exclude XPASS/XFAIL)."""
        outs = [c.outcome for c in self.claims.values()]
        ran = [c for c in self.claims.values() if c.outcome != NOT_APPLICABLE]
        return {
            "claims": len(outs),
            "ran": len(ran),
            "not_applicable": outs.count(NOT_APPLICABLE),
            "expected_to_fail": sum(c.expected is not None for c in ran),
            "passed": outs.count("PASS"),
            "failed": outs.count("FAIL"),
            "xfail": outs.count("XFAIL"),
            "xpass": outs.count("XPASS"),
            "inconclusive": outs.count("INCONCLUSIVE"),
            "error": outs.count("ERROR"),
        }

    @property
    def control_problems(self) -> list[str]:
        """Claims whose negative control (when run) did not FAIL: the claim itself is broken."""
        if not self.controls:
            return []
        return [cid for cid, c in self.claims.items()
                if c.outcome != NOT_APPLICABLE and c.control_outcome not in ("FAIL", None)]

    @property
    def unexpected(self) -> list[str]:
        """Ids of the claims with an outcome in :data:`UNEXPECTED`."""
        return [cid for cid, c in self.claims.items() if c.outcome in UNEXPECTED]

    @property
    def ok(self) -> bool:
        """True when nothing unexpected happened: no FAIL, INCONCLUSIVE, ERROR or XPASS (and,
        with controls, every control FAILED)."""
        return not self.unexpected and not self.control_problems

    def summary(self, *, name: str | None = None) -> str:
        """The summary line: how many claims ran, were not applicable, expected to fail, passed, failed
        (``name``: the encoder's name as written there, default :attr:`name`)."""
        k = self.counts
        who = self.name if name is None else name
        text = (f"audit of {who}: {k['claims']} claims: {k['ran']} ran, {k['not_applicable']} not applicable, "
                f"{k['expected_to_fail']} expected to fail; {k['passed']} passed, {k['failed']} failed, "
                f"{k['xfail']} XFAIL, {k['xpass']} XPASS, {k['inconclusive']} inconclusive, {k['error']} errors "
                f"(profile {self.profile}, seed {self.seed}, {self.device}, {self.dtype}; Holm across the "
                f"{k['ran']} claims run)")
        if self.ok:
            return text + " — OK"
        bad = [f"{cid} {self.claims[cid].outcome}" for cid in self.unexpected]
        bad += [f"{cid} control {self.claims[cid].control_outcome}" for cid in self.control_problems]
        return text + " — NOT OK: " + ", ".join(bad)

    def to_frame(self) -> pd.DataFrame:
        """One row per claim (tidy): encoder, claim, outcome, statistic, interval, reason, …"""
        import pandas as pd

        rows = []
        for c in self.claims.values():
            lo, hi = c.interval if c.interval is not None else (None, None)
            rows.append({"encoder": self.name, "claim": c.id, "theorem": c.theorem, "title": c.title,
                         "outcome": c.outcome, "verdict_outcome": c.verdict_outcome,
                         "statistic_name": c.statistic_name, "statistic": c.statistic, "lower": lo, "upper": hi,
                         "threshold": c.threshold, "n": c.n, "p_raw": c.p_raw, "p_adjusted": c.p_adjusted,
                         "requires": " ".join(c.requires), "missing": " ".join(c.missing),
                         "declared": " ".join(sorted(self.capabilities)),
                         "expected": c.expected, "control_outcome": c.control_outcome,
                         "reason": c.reason, "seconds": c.seconds})
        return pd.DataFrame(rows)

    def format_table(self) -> str:
        """The table printed by ``udl audit``: claim, outcome, statistic, interval, n, time, reason."""
        header = ["claim", "outcome", "statistic", "interval", "n", "time", "reason"]
        rows = [header]
        for c in self.claims.values():
            if c.statistic is None:
                stat, interval = "-", "-"
            else:
                stat = f"{c.statistic_name} = {fmt(c.statistic)}"
                lo, hi = c.interval
                interval = f"[{fmt(lo)}, {fmt(hi)}]"
            outcome = c.outcome + (" (!)" if c.outcome in UNEXPECTED else "")
            seconds = "-" if c.outcome == NOT_APPLICABLE else f"{c.seconds:.1f}s"
            rows.append([c.id, outcome, stat, interval, "-" if c.n is None else str(c.n), seconds, c.reason])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        return "\n".join("  ".join([cell.ljust(w) for cell, w in zip(r[:-1], widths)] + [r[-1]]).rstrip()
                         for r in rows)

    def to_dict(self) -> dict:
        """JSON-able record (``audit.json``)."""
        from udl.engine.stats import to_builtin

        return to_builtin({
            "format": AUDIT_FORMAT,
            "encoder": {"name": self.name, "repr": repr(self.encoder), "class": _qualname(self.encoder),
                        "capabilities": sorted(self.capabilities)},
            "settings": {"profile": self.profile, "seed": self.seed, "device": self.device, "dtype": self.dtype,
                         "controls": self.controls,
                         "multiple_testing": "Holm step-down across the PASS tests of the claims that ran"},
            "summary": {"ok": self.ok, **self.counts, "unexpected": self.unexpected,
                        "control_problems": self.control_problems},
            "claims": {cid: c.to_dict() for cid, c in self.claims.items()},
            "wall_seconds": self.wall_seconds,
        })

    def to_markdown(self) -> str:
        """``audit.md``: the title naming the encoder, the summary line and the table. The encoder's
        name and repr are user text: escaped (:func:`md_text`), so that ``my_mod:make[x]*`` reads
        as written."""
        name = md_text(self.name)
        lines = [f"# udl audit of encoder {name}", "", f"Encoder: {md_code(repr(self.encoder))}  ",
                 f"Capabilities: {md_text(', '.join(sorted(self.capabilities)) or 'none')}", "",
                 self.summary(name=name), "",
                 "| claim | outcome | statistic | interval | n | reason |", "|---|---|---|---|---|---|"]
        for c in self.claims.values():
            lo, hi = c.interval if c.interval is not None else (None, None)
            stat = "-" if c.statistic is None else f"{c.statistic_name} = {fmt(c.statistic)}"
            interval = "-" if c.interval is None else f"[{fmt(lo)}, {fmt(hi)}]"
            lines.append(f"| {c.id} | {c.outcome} | {md_cell(stat)} | {interval} | {'-' if c.n is None else c.n} | "
                         f"{md_text(c.reason)} |")
        return "\n".join(lines) + "\n"


def _qualname(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def write_audit(result: AuditResult, out_dir) -> Path:
    """Write an audit directory: the run directory of the claims that ran (``results.json``,
    ``tables/``, readable by :func:`udl.engine.results.load_run`) plus ``audit.json`` (strict JSON,
    :mod:`udl.engine.strict_json`), ``audit.csv`` and ``audit.md``. The directory is checked like a
    run's (:func:`udl.engine.results.check_target`: new, empty, or a complete earlier udl output)."""
    from udl.engine import results, strict_json
    from udl.engine.files import atomic_write
    from udl.engine.runner import RunResult

    run = result.run
    if run is None:  # nothing applicable: an empty run keeps the directory a valid run directory
        run = RunResult(profile=result.profile, seed=result.seed, device=result.device, dtype=result.dtype,
                        controls=result.controls, claims={}, started="", wall_seconds=0.0)
    target = results.write_run(run, out_dir)
    for file, text in (("audit.json", strict_json.dumps(result.to_dict())),
                       ("audit.csv", result.to_frame().to_csv(index=False, lineterminator="\n")),
                       ("audit.md", result.to_markdown())):
        atomic_write(target / file, text)
    return target
