r"""Reports: each claim's figures with bands, ``report.md`` and a self-contained ``report.html``.

Everything here is drawn from a stored run directory (:func:`udl.engine.results.load_run`): the
``results.json`` record and the tidy tables ``tables/<claim-id>.csv.gz``. Nothing is simulated or
decided again — a figure that needs a fitted line takes the fit from the stored verdict or fits
the stored points (a presentation fit, never a new decision).

Entry point: :func:`render` (used by ``udl verify`` after it writes a run, and by
``udl report RUN_DIR``). It writes, into the run directory or ``out_dir``::

    report.md              verdict table, per-claim sections, provenance
    report.html            the same document, self-contained (PNGs embedded as base64)
    figures/<claim>-<name>.png

Rendering is deterministic: the same run directory gives the same ``report.md``, the same PNG
bytes (no timestamps or software tags in the PNG metadata) and so the same ``report.html``.

Figures belong to the claims: a claim class marks its drawing methods with
:func:`udl.engine.plotting.figure`, and the report finds them on the claims of the run's claims
package (:mod:`.figures`). Each draws only the claim's rows (``control`` False); the negative
control is reported in the text. A figure whose table lacks a column it needs is skipped with a
note in the report (:class:`FigureSkipped`); a claim the package lacks, and any other error while
drawing, are noted too — rendering never loses a run.

Modules: :mod:`.document` (the document model), :mod:`.content` (what the report says),
:mod:`.markdown` and :mod:`.html_page` (the two renderings), :mod:`.figures` (the drawing loop),
:mod:`.writer` (:func:`render`).
"""

from udl.engine.plotting import FigureInput, FigureSkipped, FigureSpec

from udl.app.report.writer import FIGURES_DIR, REPORT_HTML, REPORT_MD, RenderResult, render

__all__ = ["FIGURES_DIR", "FigureInput", "FigureSkipped", "FigureSpec", "REPORT_HTML", "REPORT_MD",
           "RenderResult", "render"]

#: Names of the id-keyed figure registry that claims' own figures replaced.
_REMOVED = ("FIGURES", "register_figure")


def __getattr__(name: str):
    if name in _REMOVED:
        raise AttributeError(f"udl.app.report.{name} was removed: a claim draws its own figures — mark a "
                             "method of the Claim class with udl.engine.figure(name, caption)")
    raise AttributeError(f"module 'udl.app.report' has no attribute {name!r}")
