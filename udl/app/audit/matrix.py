"""The claims × encoders matrix: several encoders audited, and a sentence for each cell that differs
from the reference ISTA (:func:`encoder_matrix`, :func:`matrix_grid`, :func:`matrix_markdown`,
:func:`write_matrix`).

A cell's sentence comes from its claim's ``audit_sentences`` (see :mod:`udl.engine.sentences`):
the entry for (outcome, encoder name), else for the outcome; a NOT APPLICABLE cell names the
missing capabilities; anything else gets a generic sentence built from the verdict.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from udl.app.audit.check import check_encoder, choose_claims
from udl.app.audit.encoders import encoder_name, load_encoder, shipped_encoders
from udl.app.audit.results import NOT_APPLICABLE, AuditResult, fmt, md_cell
from udl.app.options import AUDIT_PROFILE
from udl.engine.defaults import DEFAULT_PACKAGE
from udl.engine.files import OutputPathError, check_replaceable, check_writable, write_directory
from udl.engine.sentences import audit_sentence

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["REFERENCE", "MATRIX_FILES", "cell_sentence", "matrix_notes", "encoder_matrix", "matrix_grid",
           "matrix_markdown", "check_matrix_target", "write_matrix", "short_outcome"]

#: Name of the reference encoder in the matrix; cells are compared against its column.
REFERENCE = "ista"
MATRIX_FILES = ("matrix.csv", "cells.csv", "matrix.md")
#: Everything the matrix writes into its directory (:func:`udl.engine.files.foreign_entries`).
MATRIX_LAYOUT = dict.fromkeys(MATRIX_FILES)


def _not_applicable_text(missing: Iterable[str], name: str, declared: Iterable[str]) -> str:
    from udl.core.encoders import CAPABILITIES

    needs = " and ".join(f"{m} [{CAPABILITIES.get(m, 'a capability')}]" for m in missing)
    declared = ", ".join(sorted(declared)) or "nothing"
    return f"needs {needs}; {name} declares {declared}"


def cell_sentence(row: Mapping, reference: Mapping | None, sentences: Mapping | None = None) -> str:
    """The sentence of one matrix cell that differs from the reference.

    Parameters
    ----------
    row : mapping
        The cell: claim, outcome, encoder, statistic_name, statistic, lower, upper, threshold,
        reason (and missing, declared when NOT APPLICABLE).
    reference : mapping or None
        The reference encoder's cell of the same claim (its statistic is the ``reference`` value
        when it measures the same thing).
    sentences : mapping, optional
        The claim's ``audit_sentences`` (:mod:`udl.engine.sentences`); without an entry that
        applies, the sentence is built from the verdict.
    """
    import pandas as pd

    head = f"{row['claim']} {row['outcome']} for {row['encoder']}"

    def number(value):
        return float(value) if value is not None and not pd.isna(value) else math.nan

    if row["outcome"] == NOT_APPLICABLE:
        return f"{head}: " + _not_applicable_text(str(row.get("missing") or "").split(), row["encoder"],
                                                   str(row.get("declared") or "").split()) + "."
    values = {k: number(row.get(k)) for k in ("statistic", "lower", "upper", "threshold")}
    values["statistic_name"] = row.get("statistic_name") or "statistic"
    same_measure = reference is not None and reference.get("statistic_name") == row.get("statistic_name")
    values["reference"] = number(reference.get("statistic")) if same_measure else math.nan
    text = audit_sentence(sentences or {}, row["outcome"], row["encoder"], values)
    if text:
        return f"{head}: {text}."
    if row["outcome"] == "ERROR":
        return f"{head}: {row['reason']}."
    ref_text = f"; the reference has {fmt(values['reference'])}" if same_measure else ""
    return (f"{head}: {values['statistic_name']} = {fmt(values['statistic'])} [{fmt(values['lower'])}, "
            f"{fmt(values['upper'])}] against the threshold {fmt(values['threshold'])}{ref_text}"
            + (f" ({row['reason']})" if row["outcome"] == "INCONCLUSIVE" and row.get("reason") else "") + ".")


def matrix_notes(cells) -> list[str]:
    """The sentences of the cells that differ from the reference, one per cell except that an
    encoder's NOT APPLICABLE cells with the same missing capabilities share one sentence."""
    notes = []
    differing = cells[cells["differs"]]
    for encoder in dict.fromkeys(differing["encoder"]):
        mine = differing[differing["encoder"] == encoder]
        na = mine[mine["outcome"] == NOT_APPLICABLE]
        for missing, group in na.groupby("missing", sort=False):
            first = group.iloc[0]
            notes.append(f"{', '.join(group['claim'])} NOT APPLICABLE for {encoder}: "
                         + _not_applicable_text(str(missing).split(), encoder, str(first["declared"]).split()) + ".")
        notes += list(mine.loc[mine["outcome"] != NOT_APPLICABLE, "sentence"])
    return notes


def encoder_matrix(encoders: Mapping[str, Any] | Iterable | None = None, *, profile: str = AUDIT_PROFILE,
                   claims=None, seed: int = 0, device: str = "cpu", dtype="float64", executor=None,
                   package=DEFAULT_PACKAGE, reference: str = REFERENCE, cache=None, progress: bool = False,
                   on_audit: Callable[[AuditResult], None] | None = None) -> pd.DataFrame:
    """Audit several encoders; return the claims × encoders matrix as a tidy table.

    Parameters
    ----------
    encoders : mapping name → encoder, iterable of encoders/specs, or None
        None: :func:`shipped_encoders` (ista, fista, hard-threshold, lambda-decay, learned-step,
        and the controls no-threshold and unscaled-threshold declared as the reference).
    profile : default quick (the full matrix at ci takes about ten times as long).
    reference : name of the reference column (default ``"ista"``, added when absent).
    on_audit : called with each encoder's :class:`AuditResult` as it finishes (progress).
    claims, seed, device, dtype, executor, package, cache, progress : as :func:`check_encoder`.

    Returns
    -------
    pandas.DataFrame
        One row per (claim, encoder): claim, theorem, title, encoder, outcome, statistic_name,
        statistic, lower, upper, threshold, n, reason, reference_outcome, differs (outcome ≠
        the reference's) and sentence (non-empty exactly where it differs). Rows are in claim
        order, then encoder order. :func:`matrix_grid` pivots it to claims × encoders.
    """
    import pandas as pd

    if encoders is None:
        encoders = shipped_encoders()
    elif not isinstance(encoders, Mapping):
        loaded = [load_encoder(e) if isinstance(e, str) else e for e in encoders]
        encoders = {encoder_name(e): e for e in loaded}
    encoders = dict(encoders)
    if reference not in encoders:
        if reference != REFERENCE:
            raise ValueError(f"reference {reference!r} is not one of the encoders {list(encoders)}")
        encoders = {REFERENCE: load_encoder(REFERENCE), **encoders}
    encoders = {reference: encoders[reference], **{k: v for k, v in encoders.items() if k != reference}}
    chosen, _ = choose_claims(claims, package)
    frames = []
    for name, encoder in encoders.items():
        audit = check_encoder(encoder, profile=profile, claims=list(chosen.values()), seed=seed, device=device,
                              dtype=dtype, executor=executor, cache=cache, progress=progress)
        frame = audit.to_frame()
        frame["encoder"] = name
        frames.append(frame)
        if on_audit is not None:
            on_audit(audit)
    cells = pd.concat(frames, ignore_index=True)
    ref = cells[cells["encoder"] == reference].set_index("claim")
    cells["reference_outcome"] = cells["claim"].map(ref["outcome"])
    cells["differs"] = (cells["outcome"] != cells["reference_outcome"]) & (cells["encoder"] != reference)
    sentences = []
    for row in cells.to_dict("records"):
        reference_row = ref.loc[row["claim"]].to_dict() if row["claim"] in ref.index else None
        claim_sentences = getattr(chosen[row["claim"]], "audit_sentences", {})
        sentences.append(cell_sentence(row, reference_row, claim_sentences) if row["differs"] else "")
    cells["sentence"] = sentences
    order = {cid: i for i, cid in enumerate(dict.fromkeys(cells["claim"]))}
    enc_order = {e: i for i, e in enumerate(encoders)}
    cells = cells.sort_values(by=["claim", "encoder"], key=lambda s: s.map(order if s.name == "claim" else enc_order))
    columns = ["claim", "theorem", "title", "encoder", "outcome", "statistic_name", "statistic", "lower", "upper",
               "threshold", "n", "declared", "missing", "reason", "reference_outcome", "differs", "sentence",
               "seconds"]
    return cells[columns].reset_index(drop=True)


def matrix_grid(cells: pd.DataFrame) -> pd.DataFrame:
    """Claims × encoders table of outcomes from :func:`encoder_matrix`'s tidy table."""
    grid = cells.pivot(index="claim", columns="encoder", values="outcome")
    grid = grid.reindex(index=list(dict.fromkeys(cells["claim"])), columns=list(dict.fromkeys(cells["encoder"])))
    grid.columns.name = None
    return grid


#: Outcomes abbreviated in the grid of ``matrix.md`` and of the terminal.
_SHORT = {NOT_APPLICABLE: "n/a", "INCONCLUSIVE": "INCONCL."}


def short_outcome(outcome: str) -> str:
    """An outcome as written in the grid: ``n/a``, ``INCONCL.``, else unchanged."""
    return _SHORT.get(outcome, outcome)


def matrix_markdown(cells: pd.DataFrame, *, profile: str, seed: int, note: str | None = None) -> str:
    """``matrix.md``: the grid (PASS/FAIL/INCONCL./ERROR/n/a) and one sentence per differing cell."""
    grid = matrix_grid(cells)
    titles = cells.drop_duplicates("claim").set_index("claim")["title"]
    encoders = list(grid.columns)
    reference = encoders[0]
    lines = [f"# Claims × encoders (profile {profile}, seed {seed})", "",
             f"Each column is one `udl audit` of that encoder (Holm across its applicable claims); "
             f"`n/a` = not applicable (a required capability is not declared). Reference: {reference}. "
             f"Profile {profile}" + (" (the matrix's default: every claim at the sizes of the test suite; "
                                      "`--profile ci` for the reference report's power)" if profile == "quick" else "")
             + ".", ""]
    if note:
        lines += [note, ""]
    lines.append("| claim | " + " | ".join(encoders) + " | title |")
    lines.append("|---|" + "---|" * len(encoders) + "---|")
    for cid, row in grid.iterrows():
        lines.append(f"| {cid} | " + " | ".join(short_outcome(row[e]) for e in encoders)
                     + f" | {md_cell(titles[cid])} |")
    notes = matrix_notes(cells)
    lines += ["", f"## Where an encoder differs from {reference}", ""]
    if not notes:
        lines.append("Nowhere: every encoder has the reference's outcome on every claim.")
    lines += [f"- {md_cell(note)}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"


def check_matrix_target(out_dir) -> Path:
    """The matrix's output directory: new, empty, or a complete earlier output (``matrix.csv`` and
    nothing but :data:`MATRIX_FILES`), with a writable parent (a probe write); anything else
    raises ValueError (:class:`udl.engine.files.OutputPathError`) before anything is computed."""
    marker = MATRIX_FILES[0]
    target = Path(out_dir)
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise OutputPathError(f"output path {str(target)!r} exists and is not a directory")
        if any(target.iterdir()) and not (target / marker).is_file():
            raise OutputPathError(f"output directory {str(target)!r} is not empty and holds no {marker}; refusing "
                                  "to replace it (choose a new or empty directory, or an earlier output)")
        check_replaceable(target, MATRIX_LAYOUT, "output directory")
    check_writable(target, beside=True)
    return target


def write_matrix(cells: pd.DataFrame, out_dir, *, profile: str, seed: int, note: str | None = None) -> Path:
    """Write ``matrix.csv`` (claims × encoders), ``cells.csv`` (tidy) and ``matrix.md`` atomically."""
    target = check_matrix_target(out_dir)
    return write_directory(target, {
        "matrix.csv": matrix_grid(cells).to_csv(index_label="claim", lineterminator="\n"),
        "cells.csv": cells.to_csv(index=False, lineterminator="\n"),
        "matrix.md": matrix_markdown(cells, profile=profile, seed=seed, note=note)}, MATRIX_LAYOUT)
