"""The report's entry point: :func:`render` writes the figures, ``report.md`` and ``report.html`` of a run."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from udl.engine import results as _results
from udl.engine.files import atomic_write

from udl.app.report.content import build_document
from udl.app.report.figures import draw_figures
from udl.app.report.html_page import to_html
from udl.app.report.markdown import to_markdown

__all__ = ["FIGURES_DIR", "REPORT_HTML", "REPORT_MD", "RenderResult", "render"]

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FIGURES_DIR = "figures"


@dataclass
class RenderResult:
    """What :func:`render` wrote: the documents, the figures, and the notes on skipped figures."""

    out_dir: Path
    markdown: Path
    html: Path
    figures: list[Path]
    notes: list[str]


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


def render(run_dir: str | Path, out_dir: str | Path | None = None, *,
           claims_package: str | None = None) -> RenderResult:
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

    Returns
    -------
    RenderResult

    Raises
    ------
    FileNotFoundError, ValueError
        ``run_dir`` is not a readable run directory. Figure problems never raise: they are
        noted in the report.
    """
    stored = _results.load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = _replace_figures(out, lambda staging: draw_figures(stored, staging, FIGURES_DIR, claims_package))
    doc = build_document(stored.results, figures.drawn, figures.notes, figures.has_figures)
    run = stored.results.get("run", {})
    title = f"udl report — {run.get('profile')} seed {run.get('seed')}"
    atomic_write(out / REPORT_MD, to_markdown(doc))
    atomic_write(out / REPORT_HTML, to_html(doc, out, title))
    paths = [out / path for cid in figures.drawn for path, _, _ in figures.drawn[cid]]
    return RenderResult(out, out / REPORT_MD, out / REPORT_HTML, paths,
                        [f"{cid}: {n}" for cid in figures.notes for n in figures.notes[cid]])
