r"""The plotting toolkit of claim figures: the ``@figure`` mark, the figure input, and drawing helpers.

A claim draws its own figures. In its class body it marks methods with :func:`figure`::

    from udl.engine import Claim, FigureInput, figure, plotting as plot

    class MyClaim(Claim):
        ...
        @figure("error-vs-T", "Code error against T (median and 10–90 % band over instances).")
        def draw_error(self, fi: FigureInput):
            fi.need("T", "code_error")
            fig, (ax,) = plot.new_figure(1)
            plot.band(ax, fi.table, "T", "code_error", colour=plot.palette(1)[0], label="median")
            return fig

The report (:mod:`udl.app.report`) collects the marked methods with :func:`figures_of`, calls
each with a :class:`FigureInput` (the stored table of the claim and its record in
``results.json``: never a new simulation) and saves the returned
:class:`matplotlib.figure.Figure` as ``figures/<claim id>-<name>.png``. A method that cannot draw
from the stored table raises :class:`FigureSkipped` (``fi.need`` does so for missing columns); the
report notes it and carries on.

The helpers keep every figure of a report in one style: :func:`rc_params` (seaborn "whitegrid",
fixed fonts), :func:`palette` (seaborn "colorblind"), the estimator colours, line styles and labels
(:data:`ESTIMATORS` are :data:`udl.core.estimators.KINDS`; :func:`estimator_style` draws g_dec
wide under a thin dashed g_ae-lasso, so that both show where they coincide), and :func:`band`: the
median over instances at each x with the :data:`BAND` quantiles around it. :func:`tidy` gives log
axes readable ticks with one near each end of the axis; :func:`signed_image` and
:func:`scaled_labels` draw signed pixel maps with a colour bar and label small numbers in one format.
The report saves each figure as PNG and vector files with :func:`udl.engine.figure_files.save_figure`.

matplotlib and seaborn are imported inside the functions that use them: importing this module
(and so :mod:`udl.engine` or a claim module) does not import them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from udl.core.estimators import KINDS as ESTIMATORS
from udl.engine.figure_files import DPI, SVG_HASHSALT
from udl.engine.formatting import fmt_interval, fmt_number
from udl.engine.plot_axes import LOG_END_GAP, data_ticks, log_ticks, tidy

__all__ = [
    "BAND", "DPI", "ESTIMATORS", "ESTIMATOR_LABEL", "ESTIMATOR_MARKER", "ESTIMATOR_STYLE", "ESTIMATOR_WIDTH",
    "LOG_END_GAP", "SVG_HASHSALT",
    "FigureInput", "FigureSkipped", "FigureSpec", "figure", "figures_of",
    "band", "band_note", "by_estimator", "cell_value", "curve_note", "first_curve_note", "data_ticks", "estimator_colour",
    "estimator_style", "finite", "first_instance", "instances_of", "is_true", "legend", "log_ticks",
    "new_figure", "new_grid", "palette", "part", "power_of_ten", "quantiles", "rc_params", "ref_line",
    "scaled_labels", "signed_image", "stored_mean", "tidy", "fmt_interval", "fmt_number",
]

#: Quantiles of the band drawn around the median over instances.
BAND = (0.1, 0.9)
#: g_ae-lasso dashed: it coincides with g_dec wherever the theory says they agree (large T, D = D*).
ESTIMATOR_STYLE = {"dec": "-", "ae-lasso": "--", "ae-ls": "-"}
#: Line widths: g_dec wide, g_ae-lasso thin on top of it, so that where the two coincide the
#: dashes of g_ae-lasso run inside a visible g_dec line instead of hiding it.
ESTIMATOR_WIDTH = {"dec": 3.0, "ae-lasso": 1.5, "ae-ls": 1.8}
#: Markers (size in points): a large g_dec circle around a small g_ae-lasso square, for the same reason.
ESTIMATOR_MARKER = {"dec": ("o", 7.5), "ae-lasso": ("s", 3.5), "ae-ls": ("^", 5.5)}
#: Legend label of each estimator, in the paper's notation.
ESTIMATOR_LABEL = {"dec": r"$g_{\mathrm{dec}}$", "ae-lasso": r"$g_{\mathrm{ae}\text{-}\mathrm{lasso}}$",
                   "ae-ls": r"$g_{\mathrm{ae}\text{-}\mathrm{ls}}$"}
#: Attribute under which :func:`figure` marks a method.
_MARK = "__udl_figure__"


# --------------------------------------------------------------------------- figure input and marks
class FigureSkipped(Exception):
    """A figure cannot be drawn from the stored table (e.g. a column is missing)."""


@dataclass(frozen=True)
class FigureInput:
    """What a figure method gets: the claim's rows, its control rows, and its records.

    Attributes
    ----------
    claim_id : str
        The claim's id.
    table : pandas.DataFrame
        The claim's stored rows (``control`` False), of one parameter cell when the figure is
        drawn per cell.
    control : pandas.DataFrame
        The negative-control rows (same cell selection).
    record : dict
        The claim's record in ``results.json`` (verdict, interval, ``detail``, cells).
    run : dict
        The whole ``results.json``.
    """

    claim_id: str
    table: pd.DataFrame
    control: pd.DataFrame
    record: dict
    run: dict

    def need(self, *columns: str, table: pd.DataFrame | None = None) -> None:
        """Raise :class:`FigureSkipped` naming the columns of ``columns`` the table lacks.

        Parameters
        ----------
        *columns : str
            Columns the figure needs.
        table : pandas.DataFrame, optional
            The table to check (default :attr:`table`); an empty one is skipped too.
        """
        t = self.table if table is None else table
        missing = [c for c in columns if c not in t.columns]
        if missing:
            raise FigureSkipped(f"table {self.claim_id} lacks column(s) {', '.join(missing)}")
        if not len(t):
            raise FigureSkipped(f"table {self.claim_id} has no claim rows")


@dataclass(frozen=True)
class FigureSpec:
    """A figure of a claim: file name ``<claim>-<name>.png``, its caption, and its drawing function."""

    claim: str
    name: str
    caption: str
    draw: Callable[[FigureInput], "object"]
    #: True: a table with several parameter cells gets one figure per cell (``-cell<k>``), so
    #: that cells with different settings (e.g. the paper profile's sign conventions) are not
    #: pooled into one band. False: the figure shows the cells itself (e.g. as hue).
    per_cell: bool = True


@dataclass(frozen=True)
class _Mark:
    name: str
    caption: str
    per_cell: bool


def figure(name: str, caption: str, *, per_cell: bool = True):
    """Mark a claim method ``draw(self, fi: FigureInput) -> matplotlib.figure.Figure`` as a figure.

    Parameters
    ----------
    name : str
        File-name part: the figure is saved as ``<claim id>-<name>.png``.
    caption : str
        The caption under the figure in the report.
    per_cell : bool
        True (default): one figure per parameter cell when the claim has several; False: one
        figure over all cells (the method shows them itself).

    Raises
    ------
    ValueError
        ``name`` is empty or not usable in a file name, or ``caption`` is empty.
    """
    if not isinstance(name, str) or not name or any(not (ch.isalnum() or ch in "-_.") for ch in name):
        raise ValueError(f"figure name {name!r} must be a non-empty string of letters, digits, '-', '_', '.'")
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"figure {name!r}: caption must be a non-empty string")
    mark = _Mark(name, caption, bool(per_cell))

    def wrap(method):
        if not callable(method):
            raise TypeError(f"@figure({name!r}) decorates a method, not {type(method).__name__}")
        setattr(method, _MARK, mark)
        return method

    return wrap


def figures_of(claim) -> list[FigureSpec]:
    """The figures of a claim instance: its methods marked with :func:`figure`, bound to it.

    Base-class figures come first, each class's in definition order; a method overridden in a
    subclass keeps its place (and is dropped if the override is not marked).

    Parameters
    ----------
    claim : Claim
        A claim instance (its ``id`` names the figure files).

    Returns
    -------
    list of FigureSpec

    Raises
    ------
    ValueError
        Two marked methods of the claim share a figure name.
    """
    marks: dict[str, _Mark | None] = {}
    for klass in reversed(type(claim).__mro__):
        for attr, value in vars(klass).items():
            mark = getattr(value, _MARK, None)
            if isinstance(mark, _Mark):
                marks[attr] = mark
            elif attr in marks:
                marks[attr] = None
    specs, seen = [], {}
    for attr, mark in marks.items():
        if mark is None:
            continue
        if mark.name in seen:
            raise ValueError(f"claim {getattr(claim, 'id', claim)!r}: methods {seen[mark.name]} and {attr} "
                             f"both draw figure {mark.name!r}")
        seen[mark.name] = attr
        specs.append(FigureSpec(getattr(claim, "id", type(claim).__name__), mark.name, mark.caption,
                                getattr(claim, attr), mark.per_cell))
    return specs


# --------------------------------------------------------------------------- style
def rc_params() -> dict:
    """matplotlib rc settings of every report figure (seaborn whitegrid, fixed sizes, no hash noise)."""
    import seaborn as sns

    rc = {}
    rc.update(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("notebook", font_scale=0.85))
    rc.update({"svg.hashsalt": SVG_HASHSALT, "figure.dpi": 100, "savefig.dpi": DPI,
               "axes.titlesize": 11, "axes.titleweight": "bold", "legend.fontsize": 8.5,
               "legend.framealpha": 0.9, "grid.linewidth": 0.6, "axes.edgecolor": "0.3",
               "mathtext.fontset": "dejavusans", "image.interpolation": "nearest",
               # TrueType (not Type 3) fonts in the PDFs: editable text, accepted by publishers
               "pdf.fonttype": 42})
    return rc


def palette(n: int) -> list:
    """``n`` colours (at least 3) of seaborn's "colorblind" palette."""
    import seaborn as sns

    return list(sns.color_palette("colorblind", max(n, 3)))


def estimator_colour(kind: str):
    """The fixed colour of a gradient estimator (grey for a kind not in :data:`ESTIMATORS`)."""
    colours = palette(3)
    return colours[ESTIMATORS.index(kind)] if kind in ESTIMATORS else "0.4"


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float | None = None, height: float = 3.8):
    """A constrained-layout figure of ``nrows × ncols`` axes; returns ``(figure, flat array of axes)``.

    ``width`` is the figure width in inches (default 5.2 per column), ``height`` per row.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width or 5.2 * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def new_grid(nrows: int, ncols: int, *, figsize: tuple[float, float], width_ratios=None):
    """A constrained-layout figure of a ``nrows × ncols`` grid; returns ``(figure, 2-D array of axes)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    kw = {"gridspec_kw": {"width_ratios": list(width_ratios)}} if width_ratios is not None else {}
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


# --------------------------------------------------------------------------- tables
def is_true(series: pd.Series) -> pd.Series:
    """Booleans read back from CSV (bool dtype, or the strings 'True'/'False')."""
    if series.dtype == bool:
        return series
    return series.astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))


def finite(df: pd.DataFrame, *columns: str, positive: bool = False, positive_only: tuple = ()) -> pd.DataFrame:
    """Rows where every column is finite (and > 0 when ``positive``, or for the ``positive_only`` columns)."""
    keep = np.ones(len(df), dtype=bool)
    for c in columns:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
        keep &= np.isfinite(v) & ((v > 0) if positive or c in positive_only else True)
    return df[keep]


def quantiles(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Median and :data:`BAND` quantiles of ``y`` over instances at each ``x`` (columns lo, med, hi, n)."""
    g = df.groupby(x, sort=True)[y]
    return pd.DataFrame({"lo": g.quantile(BAND[0]), "med": g.median(), "hi": g.quantile(BAND[1]),
                         "n": g.count()})


def instances_of(df: pd.DataFrame) -> int:
    """Number of distinct (cell, instance) pairs of a table (its rows if it has neither column)."""
    cols = [c for c in ("cell", "instance") if c in df.columns]
    return int(len(df[cols].drop_duplicates())) if cols else len(df)


def first_instance(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the first (cell, instance) of a table, in sort order."""
    keys = [k for k in ("cell", "instance") if k in rows.columns]
    if not keys or not len(rows):
        return rows
    first = rows[keys].drop_duplicates().sort_values(keys).iloc[0]
    mask = np.ones(len(rows), dtype=bool)
    for k in keys:
        mask &= (rows[k] == first[k]).to_numpy()
    return rows[mask]


def cell_value(df: pd.DataFrame, column: str, default=None):
    """The first non-missing value of ``column`` (a cell setting), or ``default``."""
    if column in df.columns and len(df):
        values = pd.unique(df[column].dropna())
        if len(values):
            return values[0]
    return default


def part(record: dict, name: str) -> dict | None:
    """A sub-test of a stored verdict (``detail.parts[name]``), or None."""
    parts = ((record.get("detail") or {}).get("parts") or {})
    return parts.get(name)


# --------------------------------------------------------------------------- drawing
def band(ax, df: pd.DataFrame, x: str, y: str, *, colour, label: str, marker: str | None = None,
         linestyle: str = "-", positive: bool = False, alpha: float = 0.2, linewidth: float = 1.8,
         markersize: float = 4) -> pd.DataFrame:
    """Draw the median over instances of ``y`` against ``x`` with the 10–90 % band; return the quantiles."""
    data = finite(df, x, y, positive_only=(y,) if positive else ())
    if not len(data):
        return pd.DataFrame(columns=["lo", "med", "hi", "n"])
    q = quantiles(data, x, y)
    xs = q.index.to_numpy(float)
    ax.fill_between(xs, q["lo"], q["hi"], color=colour, alpha=alpha, linewidth=0)
    ax.plot(xs, q["med"], color=colour, label=label, marker=marker, markersize=markersize, linestyle=linestyle,
            linewidth=linewidth)
    return q


def estimator_style(kind: str, *, markers: bool = True) -> dict:
    """The :func:`band` line keywords of a gradient estimator: style, width and (if ``markers``) marker.

    g_dec is drawn wide with large circles and g_ae-lasso thin and dashed with small squares
    (:data:`ESTIMATOR_WIDTH`, :data:`ESTIMATOR_MARKER`): where the theory makes them coincide,
    both stay visible.
    """
    marker, size = ESTIMATOR_MARKER.get(kind, ("o", 4))
    return {"linestyle": ESTIMATOR_STYLE.get(kind, "-"), "linewidth": ESTIMATOR_WIDTH.get(kind, 1.8),
            "marker": marker if markers else None, "markersize": size}


def by_estimator(ax, t: pd.DataFrame, x: str, y: str, *, positive=True) -> None:
    """One :func:`band` per gradient estimator of ``t["estimator"]``, in the estimators' colours and styles."""
    present = [k for k in ESTIMATORS if k in set(t["estimator"])]
    for k in present:
        band(ax, t[t["estimator"] == k], x, y, colour=estimator_colour(k), label=ESTIMATOR_LABEL[k],
             positive=positive, **estimator_style(k, markers=t[x].nunique() <= 12))


def band_note(n: int, *, per_curve: bool = False) -> str:
    """Legend title naming what a band is over (``per_curve``: each curve's own ``n`` instances)."""
    return f"median over {n} instances{' per curve' if per_curve else ''}, band 10–90 %"


def curve_note(df: pd.DataFrame, by: str) -> str:
    """Legend title of one curve per value of ``by``: the instances behind each curve, not their total.

    Parameters
    ----------
    df : pandas.DataFrame
        The rows drawn (with ``cell``/``instance`` columns, see :func:`instances_of`).
    by : str
        The column whose values are the curves (e.g. ``"lam"``).
    """
    counts = sorted({instances_of(g) for _, g in df.groupby(by, sort=True)}) or [0]
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return band_note(n, per_curve=True)


def first_curve_note(df: pd.DataFrame, by: str) -> str:
    """Legend title naming the instances behind the first curve of ``df`` (the first value of
    ``by`` in row order), for figures whose curves share their instances."""
    return band_note(instances_of(df[df[by] == df[by].iloc[0]]))


def ref_line(ax, xs, slope: float, x0: float, y0: float, *, label: str, colour="0.25",
             linestyle=":") -> None:
    """Power-law reference y = y0·(x/x0)^slope over ``xs`` (for log-log axes)."""
    xs = np.asarray(xs, float)
    ax.plot(xs, y0 * (xs / x0) ** slope, color=colour, linestyle=linestyle, linewidth=1.4, label=label)


def stored_mean(ax, part: dict | None, label: str) -> None:
    """The stored verdict's mean over splits and its interval, as a line and a band."""
    if not part or part.get("statistic") is None:
        return
    value = float(part["statistic"])
    lo, hi = (part.get("interval") or [None, None])[:2]
    ax.axhline(value, color="black", linewidth=1.2,
               label=f"{label} {value:.3g} [{fmt_number(lo, 3)}, {fmt_number(hi, 3)}]")
    if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
        ax.axhspan(lo, hi, color="black", alpha=0.08, linewidth=0)


def legend(ax, **kwargs) -> None:
    """A legend, only if something on ``ax`` has a label."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(**kwargs)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(value: float) -> str:
    """``1e-3`` → ``"10⁻³"`` (a power of ten in plain text); any other value as ``f"{value:g}"``."""
    if value > 0:
        exponent = round(math.log10(value))
        if math.isclose(value, 10.0 ** exponent, rel_tol=1e-12):
            return "10" + str(exponent).translate(_SUPERSCRIPT)
    return f"{value:g}"


# --------------------------------------------------------------------------- pictures and numbers
def signed_image(ax, image, *, colourbar: bool = True, label: str | None = None):
    """Draw signed pixels (e.g. a dictionary atom) on a diverging map centred at 0, with a colour bar.

    Red is positive, blue negative, white 0; the scale is symmetric, ±max|image|. The colour bar
    (left of ``ax``, ticks at −max, 0, +max) says what the colours mean.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    image : array of shape (h, w)
    colourbar : bool
        Draw the colour bar (default True).
    label : str, optional
        The colour bar's label.

    Returns
    -------
    matplotlib.image.AxesImage
    """
    image = np.asarray(image, float)
    v = float(np.nanmax(np.abs(image))) if image.size else 0.0
    v = v if v > 0 and np.isfinite(v) else 1.0
    shown = ax.imshow(image, cmap="RdBu_r", vmin=-v, vmax=v)
    if colourbar:
        bar = ax.figure.colorbar(shown, ax=ax, location="left", fraction=0.1, pad=0.03, aspect=14)
        bar.set_ticks([-v, 0.0, v], labels=[f"−{v:.2g}", "0", f"+{v:.2g}"])
        bar.ax.tick_params(labelsize=6, length=2, pad=1)
        bar.outline.set_linewidth(0.5)
        if label:
            bar.set_label(label, fontsize=6)
    return shown


def _exponent(value: float) -> int:
    """The power of ten of ``|value|`` (0 for 0 or a non-finite value)."""
    value = abs(float(value))
    return math.floor(math.log10(value)) if value > 0 and math.isfinite(value) else 0


def _signed(value: float, exponent: int, decimals: int = 2) -> str:
    """``value / 10**exponent`` with ``decimals`` decimals, an explicit sign and a true minus (−)."""
    scaled = float(value) / 10.0 ** exponent
    text = f"{scaled:+.{decimals}f}".replace("-", "−")
    return "0" if float(text.replace("−", "-")) == 0 else text


def scaled_labels(values, decimals: int = 2) -> tuple[list[str], str]:
    """Labels of numbers that differ in size and sign, all in one format and one unit.

    The unit is the power of ten of the largest magnitude (so the largest label lies in [1, 10)):
    ``[0.0052, -0.0071, 5.4e-06]`` → ``(["+5.20", "−7.10", "+0.01"], "×10⁻³")``.

    Parameters
    ----------
    values : sequence of float
    decimals : int
        Decimals of every label.

    Returns
    -------
    (list of str, str)
        The labels, and the unit to name once (e.g. in a column header); ``""`` for 10⁰.
    """
    values = [float(v) for v in values]
    finite_values = [abs(v) for v in values if math.isfinite(v)]
    exponent = _exponent(max(finite_values)) if finite_values else 0
    unit = "" if exponent == 0 else "×" + power_of_ten(10.0 ** exponent)
    return [_signed(v, exponent, decimals) if math.isfinite(v) else f"{v}" for v in values], unit
