"""The content of a report: verdict table, one section per claim, rendering notes, provenance.

:func:`build_document` turns a stored ``results.json`` and the figures drawn from it into a
:class:`~udl.app.report.document.Doc`; nothing is decided again.
"""

from __future__ import annotations

import math
from importlib import metadata
from pathlib import Path

from udl.engine.formatting import fmt_interval, fmt_number

from udl.app.report.document import Doc, bold, code, italic
from udl.app.report.evidence import (deterministic_checks, evidence_of, hypotheses_block, is_reported_only,
                                     reported_only, statistic_sentence, verdict_suffix)

__all__ = ["anchor", "build_document", "claim_order", "detail_summary"]

#: Detail entries already shown elsewhere (sub-tests, the decisive part) or pure bookkeeping.
DETAIL_SKIP = frozenset({"parts", "decisive", "alpha"})
#: A dict-valued detail entry is listed (flattened) only when it is this small; long curves
#: (e.g. medians by T) are in the table and the figure instead.
DETAIL_MAX_ITEMS = 6


def claim_order(results: dict) -> list[str]:
    """Claim ids in the run's order (its selection), then any others sorted."""
    claims = results.get("claims", {})
    order = [c for c in (results.get("run") or {}).get("claims", []) if c in claims]
    return order + sorted(c for c in claims if c not in order)


def anchor(cid: str) -> str:
    """The anchor id of a claim's section."""
    return "claim-" + "".join(ch if ch.isalnum() else "-" for ch in cid)


def _fmt_p(value) -> str:
    if value is None:
        return "–"
    v = float(value)
    if math.isnan(v):
        return "nan"
    return f"{v:.2g}"


def _verdict_cell(record: dict) -> str:
    outcome = record.get("outcome") or "ERROR"
    before = record.get("verdict_outcome")
    if is_reported_only(record) and outcome != "ERROR":
        return f"{outcome} (reported only; verdict {before})"
    if before and before != outcome:
        return f"{outcome} ({before} before Holm)"
    return outcome


def _control_cell(record: dict) -> str:
    control = record.get("control") or {}
    if not control.get("run"):
        return "not run"
    outcome = control.get("outcome") or "ERROR"
    return f"{outcome} ✓" if outcome == "FAIL" else f"{outcome} ✗ (must FAIL)"


def _statistic_cell(record: dict) -> str:
    if record.get("statistic") is None:
        return "–"
    return f"{record.get('statistic_name')} = {fmt_number(record.get('statistic'))}"


def _interval_cell(record: dict) -> str:
    if record.get("interval") is None:
        return "–"
    if evidence_of(record) == "deterministic":  # no confidence interval: the tolerance it is checked against
        return f"tolerance {fmt_number(record.get('threshold'))}"
    threshold = record.get("threshold")
    return fmt_interval(record["interval"]) + (f" vs {fmt_number(threshold)}" if threshold is not None else "")


def detail_summary(detail: dict) -> str:
    """Scalar (and small flat dict) entries of a verdict's detail, as ``key = value; …``."""
    items = []
    for key in sorted(detail):
        if key in DETAIL_SKIP:
            continue
        value = detail[key]
        if isinstance(value, bool) or isinstance(value, str):
            items.append(f"{key} = {value}")
        elif isinstance(value, (int, float)) or value is None:
            items.append(f"{key} = {fmt_number(value)}")
        elif isinstance(value, (list, tuple)) and len(value) <= DETAIL_MAX_ITEMS and \
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            items.append(f"{key} = [" + ", ".join(fmt_number(v) for v in value) + "]")
        elif isinstance(value, dict) and len(value) <= DETAIL_MAX_ITEMS and \
                all(isinstance(v, (int, float, str, bool)) or v is None for v in value.values()):
            inner = ", ".join(f"{k}: {v if isinstance(v, (str, bool)) else fmt_number(v)}" for k, v in value.items())
            items.append(f"{key} = {{{inner}}}")
    return "; ".join(items)


def _renderer_versions() -> str:
    out = []
    for name in ("matplotlib", "seaborn"):
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} ?")
    return ", ".join(out)


def _head(doc: Doc, results: dict, order: list[str], encoder: str | None = None) -> None:
    """Title (naming the audited encoder of an audit), one-line summary, the verdict table and the
    multiple-testing note."""
    run = results.get("run") or {}
    claims = results.get("claims") or {}
    summary = results.get("summary") or {}
    doc.h(1, "udl verification report" if encoder is None else f"udl audit of encoder {encoder}")
    counts = ", ".join(f"{n} {o}" for o, n in sorted((summary.get("outcomes") or {}).items()))
    doc.p(f"Profile {run.get('profile')}, root seed {run.get('seed')}, device {run.get('device')}, "
          f"dtype {run.get('dtype')}; {len(order)} claims: {counts or 'none'}. Overall: ",
          bold("all claims hold and every negative control fails" if summary.get("ok") else
               "not every claim holds (or some control did not fail)"), ".")
    doc.h(2, "Verdicts")
    rows = []
    for cid in order:
        r = claims[cid]
        rows.append([cid, _verdict_cell(r), evidence_of(r), _statistic_cell(r), _interval_cell(r),
                     fmt_number(r.get("n")), fmt_number(r.get("alpha")), fmt_number(r.get("beta")), _control_cell(r)])
    links = {cid: anchor(cid) for cid in order}
    doc.table(["claim", "verdict", "evidence", "statistic", "interval", "n", "α", "β", "control"], rows, links=links)
    reported_only(doc, claims, order)
    holm = run.get("multiple_testing") or "Holm step-down across the PASS tests of the run"
    doc.p(bold("Statistical evidence, multiple testing: "), f"{holm}. A statistical claim PASSES only if its "
          "Holm-adjusted p-value is at most its α; the raw and adjusted p-values are given per claim below. A "
          "negative control must FAIL (✓); one that does not means the claim cannot detect a broken implementation.")
    deterministic_checks(doc, claims, order, links)


def _claim_section(doc: Doc, cid: str, r: dict, drawn: list, notes: list[str], has_figures: bool | None) -> None:
    """One claim: verdict, statement, design, statistic, sub-tests, figures, negative control."""
    doc.h(3, f"{cid} — {r.get('title', '')}", anchor=anchor(cid))
    doc.p(bold(f"Verdict: {_verdict_cell(r)}"), f"  ·  negative control: {_control_cell(r)}  ·  kind: "
          f"{r.get('kind')}  ·  theorem {r.get('theorem')} (docs/theory.md)", *verdict_suffix(r))
    if is_reported_only(r):
        doc.p(bold("Reported, not decided. "), f"{r.get('reason')}; the claim decides at "
              f"{', '.join(r.get('decides_at') or [])}.")
    doc.p(bold("Statement. "), r.get("statement") or "–")
    cells = r.get("cells") or []
    cell_text = "; ".join(", ".join(f"{k} = {v}" for k, v in c.items()) for c in cells)
    doc.p(bold("Design. "), f"α = {fmt_number(r.get('alpha'))} (false fail), β = {fmt_number(r.get('beta'))} "
          f"(miss at the effect); {r.get('n_instances')} instances per cell × {len(cells)} cell(s) at profile "
          f"{r.get('profile')}.")
    doc.bullets([[italic("Effect and sample size: "), r.get("effect") or "–"],
                 [italic("Regime: "), r.get("regime") or "–"],
                 [italic("Cells: "), cell_text or "–"]])
    hypotheses_block(doc, r)
    if statistic_sentence(r) is not None:
        doc.p(bold("Statistic. "), statistic_sentence(r))
    elif r.get("statistic") is not None:
        doc.p(bold("Statistic. "), f"{r.get('statistic_name')} = {fmt_number(r.get('statistic'))}, interval "
              f"{fmt_interval(r.get('interval'))} against threshold {fmt_number(r.get('threshold'))}, n = "
              f"{r.get('n')}; p raw = {_fmt_p(r.get('p_raw'))}, Holm-adjusted p = {_fmt_p(r.get('p_adjusted'))}"
              f" (α = {fmt_number(r.get('alpha'))}).")
    if r.get("error"):
        doc.p(bold("Error. "), code(str(r["error"])))
    parts = (r.get("detail") or {}).get("parts") or {}
    if parts:
        prow = [[name, v.get("outcome") or "–", v.get("statistic_name") or "–", fmt_number(v.get("statistic")),
                 fmt_interval(v.get("interval")), fmt_number(v.get("threshold")), _fmt_p(v.get("p_value"))]
                for name, v in parts.items()]
        doc.p("Sub-tests (intersection–union: the claim PASSES only if every part PASSES):")
        doc.table(["part", "outcome", "statistic", "value", "interval", "threshold", "p"], prow)
    extra = detail_summary(r.get("detail") or {})
    if extra:
        doc.p(italic("Other recorded numbers: "), extra)
    for d in drawn:
        stem = Path(d.path).stem
        doc.image(d.path, stem, f"Figure {stem}. {d.spec.caption}{d.suffix}",
                  links=[(Path(v).suffix.lstrip(".").upper(), v) for v in d.vectors])
    if has_figures is False:
        doc.p(italic(f"No figure is defined for claim {cid}."))
    for note in notes:
        doc.p(bold("Figure note: "), note)
    control = r.get("control") or {}
    ctext = f"{control.get('description') or '–'} "
    if control.get("run"):
        ctext += f"Outcome: {control.get('outcome') or 'ERROR'}"
        if control.get("statistic") is not None:
            ctext += (f" ({control.get('statistic_name')} = {fmt_number(control.get('statistic'))}, interval "
                      f"{fmt_interval(control.get('interval'))}, p = {_fmt_p(control.get('p_value'))})")
        if control.get("error"):
            ctext += f"; error: {control['error']}"
        ctext += "." if control.get("outcome") == "FAIL" else " — the control must FAIL."
    else:
        ctext += "Not run in this run."
    doc.p(bold("Negative control. "), ctext)


def _provenance(doc: Doc, results: dict) -> None:
    """Profile, seed, device, versions, commit, command, cells and timing of the run."""
    run = results.get("run") or {}
    env = results.get("environment") or {}
    timing = results.get("timing") or {}
    cells = (results.get("diagnostics") or {}).get("cells") or {}
    doc.h(2, "Provenance")
    prow = [["profile", str(run.get("profile"))], ["root seed", str(run.get("seed"))],
            ["device", str(run.get("device"))], ["dtype", str(run.get("dtype"))],
            ["controls", str(run.get("controls"))], ["git commit", str(env.get("git_commit"))],
            ["started (UTC)", str(timing.get("started"))],
            ["wall time", f"{fmt_number(timing.get('wall_seconds'))} s"]]
    for key in ("udl", "torch", "numpy", "scipy", "pandas", "python", "platform", "host"):
        if key in env:
            prow.append([key if key in ("platform", "host") else f"{key} version", str(env.get(key))])
    if env.get("argv"):
        prow.append(["command", " ".join(str(a) for a in env["argv"])])
    if cells:
        prow.append(["cells", f"{cells.get('total')} total, {cells.get('cached')} from the cache, "
                              f"{cells.get('computed')} computed, {cells.get('errors')} errors on "
                              f"{cells.get('executor')}"])
    per_claim = timing.get("claims") or {}
    if per_claim:
        prow.append(["time per claim", "; ".join(
            f"{cid} {fmt_number(v.get('seconds'), 3)} s (+{fmt_number(v.get('control_seconds'), 3)} s control)"
            for cid, v in per_claim.items())])
    prow.append(["rendered with", _renderer_versions()])
    doc.table(["item", "value"], prow)


def build_document(results: dict, drawn: dict, notes: dict, has_figures: dict, *, encoder: str | None = None) -> Doc:
    """The report of a stored run as a document.

    Parameters
    ----------
    results : dict
        The parsed ``results.json``.
    drawn : dict
        ``{claim id: [Drawn, ...]}`` (:class:`udl.app.report.figures.Drawn`: relative PNG path,
        FigureSpec, caption suffix, relative vector paths).
    notes : dict
        ``{claim id: [note, ...]}``: figures skipped or failed.
    has_figures : dict
        ``{claim id: bool or None}``: whether the claim defines figures (None: the claim was
        not found, which a note says).
    encoder : str, optional
        The audited encoder's name, for the report of an audit directory (None: a verification run).

    Returns
    -------
    Doc
    """
    doc = Doc()
    claims = results.get("claims") or {}
    order = claim_order(results)
    _head(doc, results, order, encoder)
    theorem = None
    for cid in order:
        r = claims[cid]
        if r.get("theorem") != theorem:
            theorem = r.get("theorem")
            doc.h(2, f"Theorem {theorem}")
        _claim_section(doc, cid, r, drawn.get(cid, []), notes.get(cid, []), has_figures.get(cid))
    all_notes = [f"{cid}: {n}" for cid in order for n in notes.get(cid, [])]
    doc.h(2, "Rendering notes")
    doc.p("Figures are drawn from the stored tables only (claim rows; controls are not mixed in); "
          "bands are the 10–90 % range over instances around the median unless a caption says otherwise.")
    if all_notes:
        doc.bullets([[n] for n in all_notes])
    else:
        doc.p("Every registered figure was drawn.")
    _provenance(doc, results)
    return doc
