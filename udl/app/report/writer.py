"""The report's entry point: :func:`render` writes the figures, ``report.md`` and ``report.html`` of a run."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from udl.engine import results as _results
from udl.engine.figure_files import DPI, VECTOR_DEFAULT, check_dpi, formats_of
from udl.engine.files import atomic_write

from udl.app.report.content import build_document
from udl.app.report.figures import draw_figures
from udl.app.report.html_page import to_html
from udl.app.report.markdown import to_markdown

__all__ = ["FIGURES_DIR", "REPORT_HTML", "REPORT_MD", "RenderResult", "audited_encoder", "render"]

#: The report's files, named in the one list of what udl writes (:data:`udl.engine.results.RUN_LAYOUT`).
REPORT_MD, REPORT_HTML, FIGURES_DIR = _results.REPORT_MD, _results.REPORT_HTML, _results.FIGURES_DIR


@dataclass
class RenderResult:
    """What :func:`render` wrote: the documents, the figures (PNGs; their vector copies apart), and
    the notes on skipped figures."""

    out_dir: Path
    markdown: Path
    html: Path
    figures: list[Path]
    notes: list[str]
    vector_figures: list[Path] = field(default_factory=list)


def _replace_figures(out: Path, draw) -> object:
    """Draw into a staging directory, then swap it in for ``out/figures`` (the old one removed last)."""
    staging = out / f".{FIGURES_DIR}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        result = draw(staging)
        final = out / FIGURES_DIR
        aside = None
        if final.exists():
            aside = out / f".{FIGURES_DIR}.old-{uuid.uuid4().hex[:8]}"
            os.replace(final, aside)
        os.replace(staging, final)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def audited_encoder(run_dir: str | Path) -> str | None:
    """The name of the encoder an audit directory audited (its ``audit.json``), or None for a run
    that is not an audit (or whose ``audit.json`` cannot be read: the report still renders)."""
    path = Path(run_dir) / _results.AUDIT_FILES[0]
    try:
        name = json.loads(path.read_text(encoding="utf-8"))["encoder"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(name) if name is not None else None


def render(run_dir: str | Path, out_dir: str | Path | None = None, *,
           claims_package: str | None = None, dpi: int = DPI, vector: str = VECTOR_DEFAULT) -> RenderResult:
    """Render the figures, ``report.md`` and ``report.html`` of a stored run (no recomputation).

    Parameters
    ----------
    run_dir : path
        A run directory written by :func:`udl.engine.results.write_run`.
    out_dir : path, optional
        Where to write (default: the run directory itself). Created if needed; only
        ``report.md``, ``report.html`` and ``figures/`` there are replaced.
    claims_package : str, optional
        The claims package whose claims draw the figures (dotted name or directory path;
        several comma-separated). Default: the run's ``run.claims_package``, or ``"claims"``
        for runs that do not record one.
    dpi : int
        Resolution of the PNG figures (pixels per inch, default
        :data:`udl.engine.figure_files.DPI`); ``report.html`` embeds the PNGs.
    vector : str
        Vector copies of each figure written next to its PNG: ``"pdf"`` (default), ``"svg"``,
        ``"both"`` or ``"none"``.

    Returns
    -------
    RenderResult

    Raises
    ------
    FileNotFoundError, ValueError
        ``run_dir`` is not a readable run directory, or ``dpi`` or ``vector`` is not allowed
        (checked before anything is read or written), or ``out_dir`` may not be written
        (:func:`udl.engine.results.check_report_target`: a report file or ``figures/`` there
        that udl did not write, a directory that takes no probe write; an
        :class:`~udl.engine.files.OutputPathError`). Figure problems never raise: they are
        noted in the report.
    """
    dpi, _ = check_dpi(dpi), formats_of(vector)
    stored = _results.load_run(run_dir)
    out = _results.check_report_target(Path(out_dir) if out_dir is not None else Path(run_dir))
    out.mkdir(parents=True, exist_ok=True)
    figures = _replace_figures(out, lambda staging: draw_figures(stored, staging, FIGURES_DIR, claims_package,
                                                                 dpi=dpi, vector=vector))
    encoder = audited_encoder(run_dir)
    doc = build_document(stored.results, figures.drawn, figures.notes, figures.has_figures, encoder=encoder)
    run = stored.results.get("run", {})
    title = (f"udl {'audit of encoder ' + encoder if encoder is not None else 'report'} — "
             f"{run.get('profile')} seed {run.get('seed')}")
    atomic_write(out / REPORT_MD, to_markdown(doc))
    atomic_write(out / REPORT_HTML, to_html(doc, out, title))
    drawn = [d for cid in figures.drawn for d in figures.drawn[cid]]
    return RenderResult(out, out / REPORT_MD, out / REPORT_HTML, [out / d.path for d in drawn],
                        [f"{cid}: {n}" for cid in figures.notes for n in figures.notes[cid]],
                        [out / v for d in drawn for v in d.vectors])
