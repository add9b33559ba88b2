"""What a report says about the kind of evidence behind each verdict: statistical or deterministic,
decided or only reported at this profile, the theory's predictions against the estimates, and the
cells inside a theorem's hypotheses.

Every function reads a claim's record of ``results.json`` (:mod:`udl.engine.results`); a record
written before these fields existed reads as statistical, decided, without predictions or
hypotheses.
"""

from __future__ import annotations

from udl.engine.formatting import fmt_interval, fmt_number

from udl.app.report.document import Doc, bold, italic

__all__ = ["evidence_of", "is_reported_only", "prediction_text", "predictions_text", "deterministic_checks",
           "reported_only", "hypotheses_block", "statistic_sentence", "verdict_suffix"]


def evidence_of(record: dict) -> str:
    """``"statistical"`` or ``"deterministic"`` (from the record, else from the claim's kind)."""
    return record.get("evidence") or ("deterministic" if record.get("kind") == "deterministic" else "statistical")


def is_reported_only(record: dict) -> bool:
    """True when the claim was reported, not decided, at the run's profile."""
    return record.get("decided") is False


def prediction_text(prediction: dict) -> str:
    """``name: predicted vs estimate [L, U] contained`` (or ``not contained``)."""
    where = "contained" if prediction.get("contained") else "not contained"
    return (f"{prediction.get('name')}: {fmt_number(prediction.get('predicted'))} vs "
            f"{fmt_number(prediction.get('estimate'))} {fmt_interval(prediction.get('interval'))} {where}")


def predictions_text(record: dict) -> str:
    """Every prediction of the claim's verdict, ``; ``-separated (empty when none)."""
    return "; ".join(prediction_text(p) for p in record.get("predictions") or [])


def statistic_sentence(record: dict) -> str | None:
    """The sentence after "Statistic." for a deterministic check (None for a statistical claim)."""
    if evidence_of(record) != "deterministic" or record.get("statistic") is None:
        return None
    detail = record.get("detail") or {}
    budget = detail.get("budget")
    return (f"{record.get('statistic_name')} = {fmt_number(record.get('statistic'))} against tolerance "
            f"{fmt_number(record.get('threshold'))} over n = {record.get('n')} values "
            f"({fmt_number(detail.get('violations'))} beyond it)"
            + (f"; rounding budget: {budget}" if budget else "")
            + ". A deterministic check: no p-value, never INCONCLUSIVE, not in the Holm family.")


def deterministic_checks(doc: Doc, claims: dict, order: list[str], links: dict) -> None:
    """The table of deterministic checks (exact consequences), apart from the statistical evidence."""
    rows = []
    for cid in order:
        r = claims[cid]
        if evidence_of(r) != "deterministic":
            continue
        detail = r.get("detail") or {}
        rows.append([cid, r.get("outcome") or "ERROR", f"{r.get('statistic_name')} = {fmt_number(r.get('statistic'))}"
                     if r.get("statistic") is not None else "–", fmt_number(r.get("threshold")),
                     fmt_number(r.get("n")), str(detail.get("budget") or "–")])
    if not rows:
        return
    doc.h(2, "Deterministic checks")
    doc.p("Exact (algebraic) consequences, checked value by value against a stated rounding budget: PASS when "
          "every value is within the tolerance, FAIL otherwise. They are not statistical evidence (no "
          "p-value, not in the Holm family).")
    doc.table(["claim", "verdict", "worst", "tolerance", "values", "rounding budget"], rows, links=links)


def reported_only(doc: Doc, claims: dict, order: list[str]) -> None:
    """The claims reported, not decided, at this profile (a paragraph; nothing when none)."""
    reported = [cid for cid in order if is_reported_only(claims[cid])]
    if reported:
        doc.p(bold("Reported, not decided: "), ", ".join(reported), " — ",
              claims[reported[0]].get("reason") or "this profile stops before the regime these claims need",
              ". Their outcome is INCONCLUSIVE by design and does not count against the run; the statistic is "
              "shown for information.")


def hypotheses_block(doc: Doc, record: dict) -> None:
    """Which cells lie inside the theorem's hypotheses, and each hypothesis per cell."""
    cells = record.get("hypotheses") or []
    if not cells:
        return
    inside = [str(c.get("cell")) for c in cells if c.get("inside")]
    outside = [str(c.get("cell")) for c in cells if not c.get("inside")]
    doc.p(bold("Hypotheses. "), f"cells inside the theorem's hypotheses: {', '.join(inside) or 'none'}; "
          f"outside: {', '.join(outside) or 'none'}.")
    rows = [[str(c.get("cell")), h.get("name"), fmt_number(h.get("value")), fmt_number(h.get("bound")),
             "holds" if h.get("holds") else "does not hold", h.get("note") or ""]
            for c in cells for h in c.get("hypotheses") or []]
    doc.table(["cell", "hypothesis", "value", "bound", "status", "note"], rows)


def verdict_suffix(record: dict) -> list:
    """Runs appended to a claim's verdict line: its evidence and its predictions."""
    runs = [f"  ·  evidence: {evidence_of(record)}"]
    text = predictions_text(record)
    if text:
        runs += ["  ·  ", italic("predictions: "), text]
    return runs
