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
(:data:`ESTIMATORS` are :data:`udl.core.estimators.KINDS`), and :func:`band`: the median over
instances at each x with the :data:`BAND` quantiles around it.

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
from udl.engine.formatting import fmt_interval, fmt_number

__all__ = [
    "BAND", "DPI", "ESTIMATORS", "ESTIMATOR_LABEL", "ESTIMATOR_STYLE", "SVG_HASHSALT",
    "FigureInput", "FigureSkipped", "FigureSpec", "figure", "figures_of",
    "band", "band_note", "by_estimator", "cell_value", "data_ticks", "estimator_colour", "finite",
    "first_instance", "instances_of", "is_true", "legend", "log_ticks", "new_figure", "new_grid",
    "palette", "part", "power_of_ten", "quantiles", "rc_params", "ref_line", "save_png",
    "stored_mean", "tidy", "fmt_interval", "fmt_number",
]

#: Resolution of the PNG figures (pixels per inch): sharp on screen, a few 100 kB per figure.
DPI = 110
#: Quantiles of the band drawn around the median over instances.
BAND = (0.1, 0.9)
#: Fixed salt so that any SVG output (not used by default) is deterministic too.
SVG_HASHSALT = "udl-report"
#: g_ae-lasso dashed: it coincides with g_dec wherever the theory says they agree (large T, D = D*).
ESTIMATOR_STYLE = {"dec": "-", "ae-lasso": "--", "ae-ls": "-"}
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
               "mathtext.fontset": "dejavusans", "image.interpolation": "nearest"})
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


def save_png(fig, path) -> None:
    """Save ``fig`` as a deterministic PNG (no software tag, white background, :data:`DPI`)."""
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None}, facecolor="white")


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
         linestyle: str = "-", positive: bool = False, alpha: float = 0.2) -> pd.DataFrame:
    """Draw the median over instances of ``y`` against ``x`` with the 10–90 % band; return the quantiles."""
    data = finite(df, x, y, positive_only=(y,) if positive else ())
    if not len(data):
        return pd.DataFrame(columns=["lo", "med", "hi", "n"])
    q = quantiles(data, x, y)
    xs = q.index.to_numpy(float)
    ax.fill_between(xs, q["lo"], q["hi"], color=colour, alpha=alpha, linewidth=0)
    ax.plot(xs, q["med"], color=colour, label=label, marker=marker, markersize=4, linestyle=linestyle,
            linewidth=1.8)
    return q


def by_estimator(ax, t: pd.DataFrame, x: str, y: str, *, positive=True) -> None:
    """One :func:`band` per gradient estimator of ``t["estimator"]``, in the estimators' colours and styles."""
    present = [k for k in ESTIMATORS if k in set(t["estimator"])]
    for k in present:
        band(ax, t[t["estimator"] == k], x, y, colour=estimator_colour(k), label=ESTIMATOR_LABEL[k],
             positive=positive, marker="o" if t[x].nunique() <= 12 else None, linestyle=ESTIMATOR_STYLE[k])


def band_note(n: int) -> str:
    """Legend title naming what a band is over."""
    return f"median over {n} instances, band 10–90 %"


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


# --------------------------------------------------------------------------- axes
def _plain(value, _pos=None) -> str:
    return f"{value:g}"


def log_ticks(lo: float, hi: float) -> list[float]:
    """Readable major ticks for a log axis spanning [lo, hi]: 1-2-5 per decade, or 1…9 if too few."""
    for subs in ((1.0, 2.0, 5.0), tuple(float(k) for k in range(1, 10))):
        ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for m in subs]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 2:
            return ticks
    return []


def tidy(fig) -> None:
    """Plain-number ticks on log axes spanning under 2.5 decades (0.2, 0.5 rather than 2×10⁻¹);
    integer ticks on step/layer axes. Axes whose ticks a figure fixed are left alone."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

    for ax in fig.axes:
        if not ax.get_visible() or not ax.has_data():
            continue
        for axis, (lo, hi), scale in ((ax.xaxis, ax.get_xlim(), ax.get_xscale()),
                                      (ax.yaxis, ax.get_ylim(), ax.get_yscale())):
            if isinstance(axis.get_major_locator(), FixedLocator):
                continue
            lo, hi = min(lo, hi), max(lo, hi)
            if scale == "log" and lo > 0 and math.log10(hi / lo) < 2.5:
                ticks = log_ticks(lo, hi)
                if ticks:
                    axis.set_major_locator(FixedLocator(ticks))
                    axis.set_major_formatter(FuncFormatter(_plain))
                    axis.set_minor_formatter(NullFormatter())
            elif scale == "linear" and axis is ax.xaxis and any(
                    w in ax.get_xlabel() for w in ("step", "layers")):
                axis.set_major_locator(MaxNLocator(integer=True))


def data_ticks(axis, values) -> None:
    """Major ticks at the data values (e.g. the λ grid), plain numbers, no minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    values = sorted({float(v) for v in values})
    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())
