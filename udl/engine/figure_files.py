"""Writing a drawn figure to files: a PNG at a chosen resolution and vector copies (SVG, PDF).

Every file is deterministic — the same figure gives the same bytes on every save: no software
tag or date in the PNG, SVG or PDF metadata, and a fixed ``svg.hashsalt`` for the SVG's element
ids. The PNG is what the report shows (``report.html`` embeds it); the vector copies, written
next to it under the same stem, are for publication.

Importing this module is cheap (standard library only; matplotlib is imported by the figure
being saved): the ``udl`` parser takes its defaults from here without loading matplotlib.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DPI",
    "DPI_RANGE",
    "RASTER_FORMAT",
    "SVG_HASHSALT",
    "VECTOR_CHOICES",
    "VECTOR_DEFAULT",
    "VECTOR_FORMATS",
    "check_dpi",
    "formats_of",
    "save_figure",
]

#: Default resolution of the PNG figures (pixels per inch): sharp on screen, a few 10–100 kB per
#: figure, so that the report (which embeds every PNG in report.html) stays small.
DPI = 110
#: Allowed ``dpi`` values: below 30 the labels are unreadable; above 600 a figure's PNG runs to
#: tens of MB and the self-contained report.html with it.
DPI_RANGE = (30, 600)
#: The raster format, always written: the report shows it.
RASTER_FORMAT = "png"
#: The vector formats a figure can also be written in.
VECTOR_FORMATS = ("svg", "pdf")
#: What ``vector=`` / ``--vector`` accepts: one format, both, or none.
VECTOR_CHOICES = ("svg", "pdf", "both", "none")
#: Vector copies written by default: the PDF. The reference report's 16 figures take 0.65 MB as
#: PDF (TrueType text) against 1.5 MB as SVG (every glyph a path, every band vertex in text) and
#: 1.1 MB as PNG at 110 dpi, and PDF is what journals and LaTeX take; ``--vector svg`` or
#: ``both`` writes the SVG.
VECTOR_DEFAULT = "pdf"
#: Fixed salt of the SVG element ids (clip paths, images), so that SVG output is deterministic.
SVG_HASHSALT = "udl-report"
#: Metadata keys that would carry the software version or the time of saving, cleared per format.
_NO_METADATA = {"png": {"Software": None},
                "svg": {"Creator": None, "Date": None},
                "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def check_dpi(dpi) -> int:
    """``dpi`` as an int, checked against :data:`DPI_RANGE`.

    Raises
    ------
    ValueError
        ``dpi`` is not an integer in :data:`DPI_RANGE`.
    """
    lo, hi = DPI_RANGE
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or dpi != int(dpi) or not lo <= dpi <= hi:
        raise ValueError(f"dpi must be an integer from {lo} to {hi}, got {dpi!r}")
    return int(dpi)


def formats_of(vector: str) -> tuple[str, ...]:
    """The file formats written for a ``vector`` choice: always the PNG, then the vector ones.

    Raises
    ------
    ValueError
        ``vector`` is not one of :data:`VECTOR_CHOICES`.
    """
    if vector not in VECTOR_CHOICES:
        raise ValueError(f"vector must be one of {', '.join(VECTOR_CHOICES)}, got {vector!r}")
    extra = {"both": VECTOR_FORMATS, "none": ()}.get(vector, (vector,))
    return (RASTER_FORMAT, *extra)


#: The fontTools logger of a font's 'head' table (see :func:`save_figure`).
FONT_HEAD_LOGGER = "fontTools.ttLib.tables._h_e_a_d"


def save_figure(fig, stem: str | Path, *, dpi: int = DPI, vector: str = VECTOR_DEFAULT) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` at ``dpi`` and in the vector formats of ``vector``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The drawn figure.
    stem : path
        The file path without its extension.
    dpi : int
        Resolution of the PNG (pixels per inch), in :data:`DPI_RANGE`.
    vector : str
        One of :data:`VECTOR_CHOICES`.

    Returns
    -------
    list of pathlib.Path
        The files written, the PNG first.
    """
    import logging

    import matplotlib

    dpi = check_dpi(dpi)
    stem = Path(stem)
    paths = []
    # The PDF backend embeds font subsets whose 'head' timestamps are zero (no dates, for
    # deterministic files); fontTools warns about each ("timestamp seems very low"): expected here.
    head_log = logging.getLogger(FONT_HEAD_LOGGER)
    level = head_log.level
    head_log.setLevel(logging.ERROR)
    try:
        with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT}):
            for fmt in formats_of(vector):
                path = stem.with_name(f"{stem.name}.{fmt}")
                fig.savefig(path, dpi=dpi, format=fmt, metadata=_NO_METADATA[fmt], facecolor="white")
                paths.append(path)
    finally:
        head_log.setLevel(level)
    return paths
