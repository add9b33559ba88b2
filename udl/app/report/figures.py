"""Drawing the figures of a stored run: each claim's own ``@figure`` methods, on its stored table.

The claim objects come from the run's claims package (``run.claims_package`` of
``results.json``, default :data:`udl.engine.discovery.DEFAULT_PACKAGE` for runs that predate the
field, or the package the caller names). Each figure method gets the claim's rows (``control``
False) — of one parameter cell at a time unless it is marked ``per_cell=False`` — and its record
(:class:`udl.engine.plotting.FigureInput`). A figure that cannot be drawn never loses the run: a
claim missing from the package, a missing table, a :class:`~udl.engine.plotting.FigureSkipped` or
any error while drawing becomes a note in the report.

Each figure is saved as ``<claim>-<name>.png`` at the report's resolution and, next to it, in
the vector formats asked for (:func:`udl.engine.figure_files.save_figure`; PDF by default).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from udl.engine import plotting
from udl.engine.discovery import DEFAULT_PACKAGE, discover
from udl.engine.anatomy import ClaimDefinitionError
from udl.engine.figure_files import DPI, VECTOR_DEFAULT, save_figure
from udl.engine.plotting import FigureInput, FigureSkipped, FigureSpec

from udl.app.report.content import claim_order

__all__ = ["Drawn", "DrawnFigures", "claims_package_of", "draw_figures", "load_claims"]


class Drawn(NamedTuple):
    """One picture drawn: its PNG and vector files (paths relative to the report), figure, caption suffix."""

    path: str
    spec: FigureSpec
    suffix: str
    vectors: tuple[str, ...] = ()


@dataclass
class DrawnFigures:
    """What :func:`draw_figures` did, by claim id."""

    #: ``{cid: [Drawn, ...]}``
    drawn: dict[str, list] = field(default_factory=dict)
    #: ``{cid: [note, ...]}``: figures skipped or failed, with the reason.
    notes: dict[str, list[str]] = field(default_factory=dict)
    #: ``{cid: True | False | None}``: the claim defines figures / defines none / was not found.
    has_figures: dict[str, bool | None] = field(default_factory=dict)


def claims_package_of(results: dict) -> str:
    """The claims package a stored run came from (:data:`DEFAULT_PACKAGE` when not recorded)."""
    return (results.get("run") or {}).get("claims_package") or DEFAULT_PACKAGE


def load_claims(package: str) -> tuple[dict, list[str]]:
    """The claims of ``package`` (several comma-separated), and why a package could not be loaded.

    Returns
    -------
    (dict, list of str)
        ``{claim id: claim instance}`` and one problem text per package that failed to load.
    """
    found, problems = {}, []
    for name in [p.strip() for p in str(package).split(",") if p.strip()]:
        try:
            for cid, claim in discover(name).items():
                found.setdefault(cid, claim)
        except ClaimDefinitionError as exc:
            problems.append(f"claims package {name!r} could not be loaded ({exc})")
    return found, problems


def _split_table(table: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(claim rows, control rows) of a stored table."""
    if table is None:
        return pd.DataFrame(), pd.DataFrame()
    if "control" not in table.columns:
        return table, table.iloc[0:0]
    control = plotting.is_true(table["control"])
    return table[~control].reset_index(drop=True), table[control].reset_index(drop=True)


def _cell_caption(record: dict, index: int) -> str:
    """' Cell k: key = value, …' naming the settings in which the claim's cells differ."""
    cells = record.get("cells") or []
    if not 0 <= index < len(cells):
        return f" Cell {index}."
    keys = sorted({k for c in cells for k in c if len({repr(c2.get(k)) for c2 in cells}) > 1})
    text = ", ".join(f"{k} = {cells[index].get(k)}" for k in keys)
    return f" Cell {index}" + (f": {text}." if text else ".")


def _jobs(cid: str, spec, record: dict, main: pd.DataFrame, control: pd.DataFrame) -> list[tuple]:
    """(file stem, caption suffix, claim rows, control rows) of each picture of one figure."""
    cells = sorted(pd.unique(main["cell"])) if "cell" in main.columns and len(main) else []
    if not (spec.per_cell and len(cells) > 1):
        return [(f"{cid}-{spec.name}", "", main, control)]
    return [(f"{cid}-{spec.name}-cell{int(c)}", _cell_caption(record, int(c)),
             main[main["cell"] == c].reset_index(drop=True),
             control[control["cell"] == c].reset_index(drop=True) if "cell" in control else control)
            for c in cells]


def _draw_claim(out: DrawnFigures, cid: str, specs: list, record: dict, table, stored_results: dict,
                figures_dir: Path, rel: str, save) -> None:
    """Draw every figure of one claim into ``figures_dir``; record paths and notes in ``out``."""
    if table is None:
        out.notes[cid].append("figures skipped: no table was stored for this claim"
                              + (f" (it ended in ERROR: {record.get('error')})" if record.get("error") else ""))
        return
    main, control = _split_table(table)
    for spec in specs:
        for stem, suffix, rows, control_rows in _jobs(cid, spec, record, main, control):
            fi = FigureInput(cid, rows, control_rows, record, stored_results)
            try:
                fig = spec.draw(fi)
                plotting.tidy(fig)
                png, *vectors = save(fig, figures_dir / stem)
                out.drawn[cid].append(Drawn(f"{rel}/{png.name}", spec, suffix,
                                            tuple(f"{rel}/{v.name}" for v in vectors)))
            except FigureSkipped as exc:
                out.notes[cid].append(f"figure '{stem}' skipped: {exc}")
            except Exception as exc:  # a figure must never lose a run
                where = traceback.extract_tb(exc.__traceback__)[-1]
                out.notes[cid].append(f"figure '{stem}' failed: {type(exc).__name__}: {exc} "
                                      f"({Path(where.filename).name}:{where.lineno})")


def draw_figures(stored, figures_dir: Path, rel: str, claims_package: str | None = None, *,
                 dpi: int = DPI, vector: str = VECTOR_DEFAULT) -> DrawnFigures:
    """Draw the figures of every claim of a stored run.

    Parameters
    ----------
    stored : udl.engine.results.StoredRun
        The run (record and tables).
    figures_dir : pathlib.Path
        Existing directory the PNGs are written to.
    rel : str
        The directory's path relative to the report (used in the returned paths).
    claims_package : str, optional
        Where the claims (and so their figures) are found; default :func:`claims_package_of`.
    dpi : int
        Resolution of the PNGs (:data:`udl.engine.figure_files.DPI_RANGE`).
    vector : str
        Vector copies written next to each PNG: ``"pdf"`` (default), ``"svg"``, ``"both"``, ``"none"``.

    Returns
    -------
    DrawnFigures
    """
    import matplotlib

    def save(fig, stem):
        return save_figure(fig, stem, dpi=dpi, vector=vector)

    package = claims_package or claims_package_of(stored.results)
    available, problems = load_claims(package)
    out = DrawnFigures()
    records = stored.results.get("claims", {})
    with matplotlib.rc_context(plotting.rc_params()):
        for cid in claim_order(stored.results):
            out.drawn[cid], out.notes[cid] = [], []
            claim = available.get(cid)
            if claim is None:
                out.has_figures[cid] = None
                out.notes[cid].append(f"figures skipped: claim {cid} is not in claims package {package!r}"
                                      + (f"; {'; '.join(problems)}" if problems else ""))
                continue
            try:
                specs = plotting.figures_of(claim)
            except ValueError as exc:
                out.has_figures[cid] = None
                out.notes[cid].append(f"figures skipped: {exc}")
                continue
            out.has_figures[cid] = bool(specs)
            if specs:
                _draw_claim(out, cid, specs, records[cid], stored.tables.get(cid), stored.results,
                            figures_dir, rel, save)
    return out
