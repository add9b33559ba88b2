r"""Reports: the paper's figures with bands, ``report.md`` and a self-contained ``report.html``.

Everything here is drawn from a stored run directory (:func:`udl.engine.results.load_run`): the
``results.json`` record and the tidy tables ``tables/<claim-id>.csv.gz``. Nothing is simulated or
decided again — a figure that needs a fitted line takes the fit from the stored verdict or fits
the stored points (a presentation fit, never a new decision). The one outside input is
scikit-learn's shipped ``load_digits`` data set, looked up by the indices that II.4c's table
stores, to show the training images beside the atoms and test images (Fig. 3a/3b).

Entry point: :func:`render` (used by ``udl verify`` after it writes a run, and by
``udl report RUN_DIR``). It writes, into the run directory or ``out_dir``::

    report.md              verdict table, per-claim sections, provenance
    report.html            the same document, self-contained (PNGs embedded as base64)
    figures/<claim>-<name>.png

Rendering is deterministic: the same run directory gives the same ``report.md``, the same PNG
bytes (no timestamps or software tags in the PNG metadata) and so the same ``report.html``.

Figures are registered per claim id (:data:`FIGURES`). Each draws only the claim's rows
(``control`` False); the negative control is reported in the text. A figure whose table lacks a
column it needs is skipped with a note in the report (:class:`FigureSkipped`); any other error
while drawing is caught and logged in the report too — rendering never loses a run.

Bands are over instances: the line is the median over instances at each x, the band the
10–90 % range (quantiles of the stored per-instance values), unless a caption says otherwise.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import shutil
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from udl.engine import results as _results

from udl.app._format import fmt_interval, fmt_number

__all__ = ["FIGURES", "FigureSpec", "FigureSkipped", "RenderResult", "render", "register_figure",
           "REPORT_MD", "REPORT_HTML", "FIGURES_DIR"]

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FIGURES_DIR = "figures"
#: Resolution of the PNG figures (pixels per inch): sharp on screen, a few 100 kB per figure.
DPI = 110
#: Quantiles of the band drawn around the median over instances.
BAND = (0.1, 0.9)
#: Fixed salt so that any SVG output (not used by default) is deterministic too.
SVG_HASHSALT = "udl-report"
#: Colours of the three gradient estimators (seaborn "colorblind" palette), fixed across figures.
ESTIMATORS = ("dec", "ae-lasso", "ae-ls")
#: g_ae-lasso dashed: it coincides with g_dec wherever the theory says they agree (large T, D = D*).
ESTIMATOR_STYLE = {"dec": "-", "ae-lasso": "--", "ae-ls": "-"}
ESTIMATOR_LABEL = {"dec": r"$g_{\mathrm{dec}}$", "ae-lasso": r"$g_{\mathrm{ae}\text{-}\mathrm{lasso}}$",
                   "ae-ls": r"$g_{\mathrm{ae}\text{-}\mathrm{ls}}$"}


# --------------------------------------------------------------------------- figure registry
class FigureSkipped(Exception):
    """A figure cannot be drawn from the stored table (e.g. a column is missing)."""


@dataclass(frozen=True)
class FigureInput:
    """What a figure function gets: the claim's rows, its control rows, and its records."""

    claim_id: str
    table: pd.DataFrame          # claim rows only (control False)
    control: pd.DataFrame        # negative-control rows
    record: dict                 # the claim's record in results.json
    run: dict                    # the whole results.json

    def need(self, *columns: str, table: pd.DataFrame | None = None) -> None:
        """Raise :class:`FigureSkipped` naming the columns of ``columns`` the table lacks."""
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


FIGURES: dict[str, list[FigureSpec]] = {}


def register_figure(claim: str, name: str, caption: str, *, per_cell: bool = True):
    """Decorator: register ``draw(FigureInput) -> matplotlib.figure.Figure`` for a claim id."""

    def wrap(function):
        FIGURES.setdefault(claim, []).append(FigureSpec(claim, name, caption, function, per_cell))
        return function

    return wrap


# --------------------------------------------------------------------------- drawing helpers
def _rc() -> dict:
    import seaborn as sns

    rc = {}
    rc.update(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("notebook", font_scale=0.85))
    rc.update({"svg.hashsalt": SVG_HASHSALT, "figure.dpi": 100, "savefig.dpi": DPI,
               "axes.titlesize": 11, "axes.titleweight": "bold", "legend.fontsize": 8.5,
               "legend.framealpha": 0.9, "grid.linewidth": 0.6, "axes.edgecolor": "0.3",
               "mathtext.fontset": "dejavusans", "image.interpolation": "nearest"})
    return rc


def _palette(n: int) -> list:
    import seaborn as sns

    return list(sns.color_palette("colorblind", max(n, 3)))


def _estimator_colour(kind: str):
    colours = _palette(3)
    return colours[ESTIMATORS.index(kind)] if kind in ESTIMATORS else "0.4"


def _new_figure(ncols: int = 1, nrows: int = 1, *, width: float | None = None, height: float = 3.8):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width or 5.2 * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def _is_true(series: pd.Series) -> pd.Series:
    """Booleans read back from CSV (bool dtype, or the strings 'True'/'False')."""
    if series.dtype == bool:
        return series
    return series.astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))


def _finite(df: pd.DataFrame, *columns: str, positive: bool = False, positive_only: tuple = ()) -> pd.DataFrame:
    """Rows where every column is finite (and > 0 when ``positive``, or for the ``positive_only`` columns)."""
    keep = np.ones(len(df), dtype=bool)
    for c in columns:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
        keep &= np.isfinite(v) & ((v > 0) if positive or c in positive_only else True)
    return df[keep]


def _quantiles(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Median and BAND quantiles of ``y`` over instances at each ``x`` (columns lo, med, hi, n)."""
    g = df.groupby(x, sort=True)[y]
    out = pd.DataFrame({"lo": g.quantile(BAND[0]), "med": g.median(), "hi": g.quantile(BAND[1]),
                        "n": g.count()})
    return out


def _band(ax, df: pd.DataFrame, x: str, y: str, *, colour, label: str, marker: str | None = None,
          linestyle: str = "-", positive: bool = False, alpha: float = 0.2) -> pd.DataFrame:
    """Draw the median over instances of ``y`` against ``x`` with the 10–90 % band; return the quantiles."""
    data = _finite(df, x, y, positive_only=(y,) if positive else ())
    if not len(data):
        return pd.DataFrame(columns=["lo", "med", "hi", "n"])
    q = _quantiles(data, x, y)
    xs = q.index.to_numpy(float)
    ax.fill_between(xs, q["lo"], q["hi"], color=colour, alpha=alpha, linewidth=0)
    ax.plot(xs, q["med"], color=colour, label=label, marker=marker, markersize=4, linestyle=linestyle,
            linewidth=1.8)
    return q


def _instances_of(df: pd.DataFrame) -> int:
    cols = [c for c in ("cell", "instance") if c in df.columns]
    return int(len(df[cols].drop_duplicates())) if cols else len(df)


def _band_note(n: int) -> str:
    return f"median over {n} instances, band 10–90 %"


def _ref_line(ax, xs, slope: float, x0: float, y0: float, *, label: str, colour="0.25",
              linestyle=":") -> None:
    """Power-law reference y = y0·(x/x0)^slope over ``xs`` (for log-log axes)."""
    xs = np.asarray(xs, float)
    ax.plot(xs, y0 * (xs / x0) ** slope, color=colour, linestyle=linestyle, linewidth=1.4, label=label)


def _plain(value, _pos=None) -> str:
    return f"{value:g}"


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Readable major ticks for a log axis spanning [lo, hi]: 1-2-5 per decade, or 1…9 if too few."""
    for subs in ((1.0, 2.0, 5.0), tuple(float(k) for k in range(1, 10))):
        ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for m in subs]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 2:
            return ticks
    return []


def _tidy(fig) -> None:
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
                ticks = _log_ticks(lo, hi)
                if ticks:
                    axis.set_major_locator(FixedLocator(ticks))
                    axis.set_major_formatter(FuncFormatter(_plain))
                    axis.set_minor_formatter(NullFormatter())
            elif scale == "linear" and axis is ax.xaxis and any(
                    w in ax.get_xlabel() for w in ("step", "layers")):
                axis.set_major_locator(MaxNLocator(integer=True))


def _data_ticks(axis, values) -> None:
    """Major ticks at the data values (e.g. the λ grid), plain numbers, no minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    values = sorted({float(v) for v in values})
    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _part(record: dict, name: str) -> dict | None:
    """A sub-test of a stored verdict (``detail.parts[name]``), or None."""
    parts = ((record.get("detail") or {}).get("parts") or {})
    return parts.get(name)


_fmt = fmt_number
_fmt_interval = fmt_interval


def _fmt_p(value) -> str:
    if value is None:
        return "–"
    v = float(value)
    if math.isnan(v):
        return "nan"
    return f"{v:.2g}"


def _cell_value(df: pd.DataFrame, column: str, default=None):
    if column in df.columns and len(df):
        values = pd.unique(df[column].dropna())
        if len(values):
            return values[0]
    return default


def _legend(ax, **kwargs) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(**kwargs)


# --------------------------------------------------------------------------- II.1
@register_figure("II.1a", "code-error-vs-T",
                 "Code error of the encoder against the number of layers T for each λ of the run (left), "
                 "and the relative step ‖Z_T − Z_{T−1}‖_F/‖Z*‖_F (right, log scale) with the predicted "
                 "geometric decay ρ^T, ρ = max|1 − α·eig(D_SᵀD_S)| on the final supports (dotted).",
                 per_cell=False)
def _fig_ii1a(fi: FigureInput):
    t = fi.table
    fi.need("T", "code_error")
    hue = "lam" if "lam" in t.columns else None
    groups = list(t.groupby(hue, sort=True)) if hue else [(None, t)]
    colours = _palette(len(groups))
    has_step = "diff" in t.columns
    fig, (a, b) = _new_figure(2)
    for (key, g), c in zip(groups, colours):
        label = f"λ = {key:g}" if key is not None else "code error"
        _band(a, g, "T", "code_error", colour=c, label=label, positive=True)
        if has_step:
            q = _band(b, g, "T", "diff", colour=c, label=label, positive=True)
            if "rho_pred" in g.columns and len(q) > 3:
                rho = float(pd.to_numeric(g["rho_pred"], errors="coerce").median())
                if 0 < rho < 1:
                    xs = q.index.to_numpy(float)
                    x0 = xs[int(0.5 * (len(xs) - 1))]
                    y0 = float(q.loc[x0, "med"])
                    span = xs[(xs >= x0 - 0.3 * (xs[-1] - xs[0]))]
                    b.plot(span, y0 * rho ** (span - x0), color=c, linestyle=":", linewidth=1.6,
                           label=rf"predicted $\rho^T$, $\rho$ = {rho:.3f}")
        floor = g[g["T"] == g["T"].max()]["code_error"].median()
        a.axhline(floor, color=c, linestyle="--", linewidth=0.9, alpha=0.8,
                  label=f"floor (median at T = {int(g['T'].max())}): {floor:.3g}")
    a.set_xlabel("layers T")
    a.set_ylabel(r"code error $\max_{j,k}|z_{T,jk} - z^*_{jk}|$")
    a.set_title("code error converges to a floor")
    _legend(a, title=_band_note(_instances_of(t)), title_fontsize=8)
    if has_step:
        if "eps" in t.columns:
            eps = float(pd.to_numeric(t["eps"], errors="coerce").median())
            b.axhline(1e3 * eps, color="0.5", linestyle="--", linewidth=1, label="precision floor 10³·eps")
        b.set_yscale("log")
        b.set_xlabel("layers T")
        b.set_ylabel(r"relative step $\|Z_T - Z_{T-1}\|_F / \|Z^*\|_F$")
        b.set_title("geometric decay once the support is fixed")
        _legend(b, loc="upper right")
    else:
        b.set_visible(False)
    return fig


@register_figure("II.1b", "floor-vs-lambda",
                 "Code-error floor at D = D* against λ on log-log axes: per-instance curves (thin), median "
                 "with 10–90 % band, the least-squares fit of the median (dashed) and the predicted slope 1 "
                 "(dotted). The stored verdict's mean per-instance slope and interval are in the legend.")
def _fig_ii1b(fi: FigureInput):
    t = _finite(fi.table, "lam", "floor", positive=True) if {"lam", "floor"} <= set(fi.table.columns) else fi.table
    fi.need("lam", "floor", table=t)
    fig, (a,) = _new_figure(1, width=5.8, height=4.2)
    c = _palette(1)[0]
    keys = [k for k in ("cell", "instance") if k in t.columns]
    for _, g in t.groupby(keys) if keys else []:
        g = g.sort_values("lam")
        a.plot(g["lam"], g["floor"], color="0.7", linewidth=0.7, alpha=0.8)
    q = _band(a, t, "lam", "floor", colour=c, label=_band_note(_instances_of(t)), marker="o", positive=True)
    lam = q.index.to_numpy(float)
    if len(lam) >= 2:
        slope, intercept = np.polyfit(np.log(lam), np.log(q["med"].to_numpy(float)), 1)
        a.plot(lam, np.exp(intercept) * lam ** slope, color="black", linestyle="--", linewidth=1.2, zorder=5,
               label=f"least-squares fit of the median: slope {slope:.3f}")
        part = _part(fi.record, "slope")
        if part:
            lo, hi = (part.get("interval") or [None, None])[:2]
            a.plot([], [], " ", label=f"stored mean per-instance slope {float(part['statistic']):.3f} "
                                      f"[{float(lo):.3f}, {float(hi):.3f}]")
        x0 = float(np.exp(np.log(lam).mean()))
        y0 = float(np.exp(intercept) * x0 ** slope)
        _ref_line(a, lam, 1.0, x0, y0 * 1.35, label="prediction: slope 1, floor ∝ λ (offset)")
    a.set_xscale("log")
    a.set_yscale("log")
    _data_ticks(a.xaxis, lam)
    a.set_xlabel("λ (sparsity weight)")
    a.set_ylabel(r"floor $\max_{j,k}|z_{T,jk} - z^*_{jk}|$ at $D = D^*$")
    a.set_title("the λ floor is linear in λ")
    _legend(a, loc="upper left")
    return fig


@register_figure("II.1c", "floor-vs-delta",
                 "Converged code error against the per-column dictionary distance δ = ‖D_j − D*_j‖ "
                 "(same D*, Z*, X and perturbation directions at every δ): per-instance curves (thin) and "
                 "the median with 10–90 % band. The theorem predicts an increasing trend (the √s·δ term).")
def _fig_ii1c(fi: FigureInput):
    t = fi.table
    fi.need("delta", "floor")
    fig, (a,) = _new_figure(1, width=5.8, height=4.2)
    c = _palette(1)[0]
    keys = [k for k in ("cell", "instance") if k in t.columns]
    for _, g in t.groupby(keys) if keys else []:
        g = g.sort_values("delta")
        a.plot(g["delta"], g["floor"], color="0.7", linewidth=0.7)
    _band(a, t, "delta", "floor", colour=c, label=_band_note(_instances_of(t)), marker="o")
    a.set_xlabel(r"column distance $\delta = \|D_j - D^*_j\|$")
    a.set_ylabel(r"floor $\max_{j,k}|z_{T,jk} - z^*_{jk}|$")
    a.set_title("the floor grows with the dictionary error")
    _legend(a, loc="upper left")
    return fig


@register_figure("II.1d", "support-recovery-vs-T",
                 "Fraction of independent trials (one example of its own instance each) whose support is "
                 "recovered exactly, supp(z_T) = supp(z*), against T, with the Clopper–Pearson interval at "
                 "the claim's α (band) and the claim's threshold 0.9 (dashed).")
def _fig_ii1d(fi: FigureInput):
    from udl.engine.stats import clopper_pearson

    t = fi.table
    fi.need("T", "recovered")
    alpha = float(fi.record.get("alpha") or 0.01)
    rec = _is_true(t["recovered"])
    counts = pd.DataFrame({"T": t["T"], "k": rec.astype(int)}).groupby("T")["k"].agg(["sum", "count"])
    bounds = np.array([clopper_pearson(int(k), int(n), alpha) for k, n in zip(counts["sum"], counts["count"])])
    fig, (a,) = _new_figure(1, width=5.8, height=4.0)
    c = _palette(1)[0]
    xs = counts.index.to_numpy(float)
    a.fill_between(xs, bounds[:, 0], bounds[:, 1], color=c, alpha=0.2, linewidth=0,
                   label=f"Clopper–Pearson interval (α = {alpha:g})")
    a.plot(xs, counts["sum"] / counts["count"], color=c, marker="o", markersize=4,
           label=f"recovered fraction ({int(counts['count'].max())} trials)")
    a.axhline(0.9, color="0.3", linestyle="--", linewidth=1, label="claim: > 0.9 (vast majority)")
    a.set_ylim(-0.02, 1.02)
    a.set_xlabel("layers T")
    a.set_ylabel(r"P(supp$(z_T)$ = supp$(z^*)$)")
    a.set_title("exact support recovery, incoherent regime")
    _legend(a, loc="lower right")
    return fig


@register_figure("II.1e", "floor-variants",
                 "Code error against T for fixed-λ ISTA, λ-decay (λ_t = λ·0.9ᵗ) and hard thresholding "
                 "(median and 10–90 % band over instances, log scale). Dashed: half the final fixed-λ floor "
                 "(median), the claim's threshold for 'well below'.")
def _fig_ii1e(fi: FigureInput):
    t = fi.table
    fi.need("T", "variant", "code_error")
    fig, (a,) = _new_figure(1, width=6.0, height=4.2)
    names = {"fixed": "fixed λ (ISTA)", "decay": "λ-decay", "hard": "hard threshold"}
    variants = [v for v in ("fixed", "decay", "hard") if v in set(t["variant"])] + \
        sorted(set(t["variant"]) - {"fixed", "decay", "hard"})
    colours = _palette(len(variants))
    for v, c in zip(variants, colours):
        _band(a, t[t["variant"] == v], "T", "code_error", colour=c, label=names.get(v, str(v)), positive=True)
    fixed = t[t["variant"] == "fixed"]
    if len(fixed):
        last = fixed[fixed["T"] == fixed["T"].max()]["code_error"].median()
        a.axhline(0.5 * last, color="0.3", linestyle="--", linewidth=1, label="½ × fixed-λ floor")
    a.set_yscale("log")
    a.set_xlabel("layers T")
    a.set_ylabel(r"code error $\max_{j,k}|z_{T,jk} - z^*_{jk}|$")
    a.set_title("removing the λ term lowers the floor")
    _legend(a, title=_band_note(_instances_of(t[t["variant"] == variants[0]])), title_fontsize=8)
    return fig


# --------------------------------------------------------------------------- II.2
@register_figure("II.2a", "contraction",
                 "Left: relative dictionary error e_l = ‖D⁽ˡ⁾ − D*‖_F/‖D*‖_F against the training step l under "
                 "g_dec (per instance thin, median bold; log scale); the shaded window holds the steps of the "
                 "fit and the dotted line is the fitted contraction e_l = e_0·ρ^{l/2}. Right: the recursion "
                 "e²_{l+1} against e²_l (window points coloured) with the fitted factor y = ρx (stored verdict) "
                 "and the line of no contraction y = x.")
def _fig_ii2a(fi: FigureInput):
    t = fi.table
    fi.need("train_step", "dict_error")
    fig, (a, b) = _new_figure(2)
    c = _palette(1)[0]
    K = int(_cell_value(t, "fit_steps", 0) or 0)
    rho = fi.record.get("statistic")
    rho = float(rho) if rho is not None and np.isfinite(float(rho)) else None
    keys = [k for k in ("cell", "instance") if k in t.columns]
    xs_all, ys_all, win = [], [], []
    for _, g in t.groupby(keys) if keys else [(None, t)]:
        g = g.sort_values("train_step")
        a.plot(g["train_step"], g["dict_error"], color="0.7", linewidth=0.7)
        e2 = g["dict_error"].to_numpy(float) ** 2
        steps = g["train_step"].to_numpy(int)
        xs_all.append(e2[:-1])
        ys_all.append(e2[1:])
        win.append(steps[:-1] < K)
    q = _band(a, t, "train_step", "dict_error", colour=c, label=_band_note(_instances_of(t)), positive=True)
    if K:
        a.axvspan(0, K, color=c, alpha=0.07, label=f"fit window (first {K} steps)")
    if rho is not None and 0 < rho and len(q):
        e0 = float(q["med"].iloc[0])
        steps = np.arange(0, int(q.index.max()) + 1)
        a.plot(steps, e0 * rho ** (steps / 2), color="0.2", linestyle=":", linewidth=1.5,
               label=f"fitted ρ = {rho:.3f}: $e_l = e_0 ρ^{{l/2}}$")
    a.set_yscale("log")
    a.set_xlabel("training step l")
    a.set_ylabel(r"$e_l = \|D^{(l)} - D^*\|_F / \|D^*\|_F$")
    a.set_title(r"$g_{\mathrm{dec}}$ contracts the dictionary error")
    _legend(a, loc="upper right")
    if xs_all:
        x, y, w = np.concatenate(xs_all), np.concatenate(ys_all), np.concatenate(win)
        b.scatter(x[~w], y[~w], s=12, color="0.6", label="steps after the window")
        b.scatter(x[w], y[w], s=16, color=c, label="fit window")
        pos = np.concatenate([x[x > 0], y[y > 0]])
        lim = np.array([pos.min() * 0.8, pos.max() * 1.2]) if len(pos) else np.array([1e-3, 1])
        b.plot(lim, lim, color="0.3", linestyle="--", linewidth=1, label="y = x (no contraction)")
        if rho is not None and rho > 0:
            interval = fi.record.get("interval") or [None, None]
            b.plot(lim, rho * lim, color=c, linestyle=":", linewidth=1.6,
                   label=f"fit y = ρx, ρ = {rho:.3f}, bound {_fmt_interval(interval)}")
        b.set_xscale("log")
        b.set_yscale("log")
        b.set_xlabel(r"$e_l^2$")
        b.set_ylabel(r"$e_{l+1}^2$")
        b.set_title(r"recursion $e_{l+1}^2 = \rho\, e_l^2 + \varepsilon_\lambda$")
        _legend(b, loc="upper left")
    return fig


@register_figure("II.2b", "neighbourhood",
                 "Left: dictionary error against the training step for each λ (median and 10–90 % band over "
                 "instances, log scale). Right: the plateau (error at the last step) against λ on log-log "
                 "axes, per instance (points) and median, with the predicted radius ∝ λ (slope 1, dotted); the "
                 "legend gives the stored per-instance slope and its interval.")
def _fig_ii2b(fi: FigureInput):
    t = fi.table
    fi.need("train_step", "dict_error", "lam")
    lams = sorted(pd.unique(t["lam"]))
    colours = _palette(len(lams))
    fig, (a, b) = _new_figure(2)
    for lam, c in zip(lams, colours):
        _band(a, t[t["lam"] == lam], "train_step", "dict_error", colour=c, label=f"λ = {lam:g}", positive=True)
    a.set_yscale("log")
    a.set_xlabel("training step l")
    a.set_ylabel(r"$e_l = \|D^{(l)} - D^*\|_F / \|D^*\|_F$")
    a.set_title(r"$g_{\mathrm{dec}}$ settles on a λ-dependent plateau")
    _legend(a, title=_band_note(_instances_of(t[t["lam"] == lams[0]])), title_fontsize=8)
    keys = [k for k in ("cell", "instance", "lam") if k in t.columns]
    last = t.sort_values("train_step").groupby(keys).tail(1)
    last = _finite(last, "lam", "dict_error", positive=True)
    b.scatter(last["lam"], last["dict_error"], s=14, color="0.55", label="plateau per instance", zorder=2)
    med = last.groupby("lam")["dict_error"].median()
    b.plot(med.index, med.to_numpy(), color=colours[0], marker="o", linewidth=1.8, label="median", zorder=3)
    if len(med) >= 2:
        x0 = float(med.index[0])
        detail = fi.record.get("detail") or {}
        slope = detail.get("slope_mean")
        label = "prediction: radius ∝ λ (slope 1)"
        _ref_line(b, med.index.to_numpy(float), 1.0, x0, float(med.iloc[0]), label=label)
        if slope is not None:
            b.plot([], [], " ", label=f"stored mean per-instance slope {float(slope):.3f} "
                                      f"{_fmt_interval(detail.get('slope_interval'))}")
    b.set_xscale("log")
    b.set_yscale("log")
    _data_ticks(b.xaxis, med.index)
    b.set_xlabel("λ (sparsity weight)")
    b.set_ylabel(r"plateau $e_\infty$")
    b.set_title("the neighbourhood grows with λ")
    _legend(b, loc="upper left")
    return fig


# --------------------------------------------------------------------------- II.3
def _by_estimator(ax, t: pd.DataFrame, x: str, y: str, *, positive=True) -> None:
    present = [k for k in ESTIMATORS if k in set(t["estimator"])]
    for k in present:
        _band(ax, t[t["estimator"] == k], x, y, colour=_estimator_colour(k), label=ESTIMATOR_LABEL[k],
              positive=positive, marker="o" if t[x].nunique() <= 12 else None, linestyle=ESTIMATOR_STYLE[k])


@register_figure("II.3a", "gradient-error-vs-T",
                 "Paper Fig. 2a over instances: the three gradient estimators against ĝ (the gradient at a "
                 "certified lasso solution; left, relative error, log scale) and against the desired "
                 "direction g* (right, ‖g_T − g*‖_F/‖g*‖_F) as the number of layers T grows. Median and "
                 "10–90 % band over instances. Left, dashed: the 10⁻³ level the claim reads as '→ 0'. "
                 "Right, dashed: ‖ĝ − g*‖/‖g*‖, the limit of g_dec and g_ae-lasso.")
def _fig_ii3a(fi: FigureInput):
    t = fi.table
    fi.need("T", "estimator", "err_hat")
    fig, (a, b) = _new_figure(2)
    _by_estimator(a, t, "T", "err_hat")
    a.axhline(1e-3, color="0.3", linestyle="--", linewidth=1, label="10⁻³ ('→ 0')")
    a.set_yscale("log")
    a.set_xlabel("layers T")
    a.set_ylabel(r"$\|g_T - \hat g\|_F / \|\hat g\|_F$")
    a.set_title(r"against $\hat g$ (lasso solution)")
    _legend(a, title=_band_note(_instances_of(t[t["estimator"] == t["estimator"].iloc[0]])),
            title_fontsize=8, loc="lower left")
    if "err_star_rel" in t.columns or {"err_star", "gstar_norm"} <= set(t.columns):
        if "err_star_rel" not in t.columns:
            t = t.assign(err_star_rel=t["err_star"] / t["gstar_norm"])
        _by_estimator(b, t, "T", "err_star_rel")
        if {"ghat_gstar", "gstar_norm"} <= set(t.columns):
            level = float((t["ghat_gstar"] / t["gstar_norm"]).median())
            b.axhline(level, color="0.3", linestyle="--", linewidth=1, label=r"$\|\hat g - g^*\|/\|g^*\|$")
        b.set_yscale("log")
        b.set_xlabel("layers T")
        b.set_ylabel(r"$\|g_T - g^*\|_F / \|g^*\|_F$")
        b.set_title(r"against $g^*$ (true codes)")
        _legend(b, loc="upper right")
    else:
        b.set_visible(False)
    return fig


@register_figure("II.3b", "gradient-error-vs-g-star",
                 "Distance of the three estimators to the desired direction g* against T (log-log; median "
                 "and 10–90 % band over instances): g_ae-ls overtakes g_ae-lasso ≈ g_dec after a few layers "
                 "(the crossover); the dashed line marks the decision depth.")
def _fig_ii3b(fi: FigureInput):
    t = fi.table
    fi.need("T", "estimator")
    if "err_star_rel" not in t.columns:
        fi.need("err_star", "gstar_norm")
        t = t.assign(err_star_rel=t["err_star"] / t["gstar_norm"])
    fig, (a,) = _new_figure(1, width=6.0, height=4.2)
    _by_estimator(a, t, "T", "err_star_rel")
    T_decide = _cell_value(t, "T_decide")
    if T_decide is not None:
        a.axvline(float(T_decide), color="0.3", linestyle="--", linewidth=1, label=f"decision at T = {T_decide:g}")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("layers T")
    a.set_ylabel(r"$\|g_T - g^*\|_F / \|g^*\|_F$")
    a.set_title(r"$g_{\mathrm{ae}\text{-}\mathrm{ls}}$ is the closest to $g^*$ past the crossover")
    _legend(a, title=_band_note(_instances_of(t[t["estimator"] == t["estimator"].iloc[0]])), title_fontsize=8)
    return fig


@register_figure("II.3c", "gradient-norm-vs-lambda",
                 "Gradient norms at D = D* (where g* = 0) against λ on log-log axes: median and 10–90 % band "
                 "over instances for each estimator, with the predicted slopes 1 (g_dec, g_ae-lasso) and 2 "
                 "(g_ae-ls) as dotted references; the legend gives the stored mean per-instance slopes.")
def _fig_ii3c(fi: FigureInput):
    t = fi.table
    fi.need("lam", "estimator", "g_norm")
    fig, (a,) = _new_figure(1, width=8.4, height=4.4)
    slopes = (fi.record.get("detail") or {}).get("slope_mean") or {}
    present = [k for k in ESTIMATORS if k in set(t["estimator"])]
    meds = {}
    for k in present:
        label = ESTIMATOR_LABEL[k] + (f" (stored slope {float(slopes[k]):.3f})" if k in slopes else "")
        meds[k] = _band(a, t[t["estimator"] == k], "lam", "g_norm", colour=_estimator_colour(k), label=label,
                        marker="o", positive=True, linestyle=ESTIMATOR_STYLE[k])
    lam = np.array(sorted(pd.unique(_finite(t, "lam", positive=True)["lam"])), float)
    if len(lam) >= 2:
        for k, slope, style in (("dec", 1.0, ":"), ("ae-ls", 2.0, "-.")):
            if k in meds and len(meds[k]):
                x0 = float(meds[k].index[0])
                y0 = float(meds[k]["med"].iloc[0]) * 0.7
                _ref_line(a, lam, slope, x0, y0, label=f"prediction: slope {slope:g} (∝ λ{'²' if slope == 2 else ''})",
                          linestyle=style)
    a.set_xscale("log")
    a.set_yscale("log")
    if len(lam):
        _data_ticks(a.xaxis, lam)
    a.set_xlabel("λ (sparsity weight)")
    a.set_ylabel(r"$\|g\|_F$ at $D = D^*$")
    a.set_title("bias at D = D*: ∝ λ (lasso loss), ∝ λ² (least squares)")
    _legend(a, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
            title=_band_note(_instances_of(t[t["estimator"] == present[0]])) if present else None,
            title_fontsize=8)
    return fig


@register_figure("II.3d", "dictionary-error-vs-step",
                 "Paper Fig. 2b over instances: relative dictionary error ‖D − D*‖_F/‖D*‖_F during "
                 "gradient-descent learning with each estimator from the same start (median and 10–90 % "
                 "band over instances, log scale).")
def _fig_ii3d(fi: FigureInput):
    t = fi.table
    fi.need("step_index", "estimator", "dict_error")
    fig, (a,) = _new_figure(1, width=6.0, height=4.2)
    _by_estimator(a, t, "step_index", "dict_error")
    a.set_yscale("log")
    a.set_xlabel("training step")
    a.set_ylabel(r"$\|D - D^*\|_F / \|D^*\|_F$")
    a.set_title(r"learning with $g_{\mathrm{ae}\text{-}\mathrm{ls}}$ ends closest to $D^*$")
    _legend(a, title=_band_note(_instances_of(t[t["estimator"] == t["estimator"].iloc[0]])), title_fontsize=8)
    return fig


# --------------------------------------------------------------------------- II.4
@register_figure("II.4a", "identity-ratios",
                 "Error/tolerance ratios of the three identity checks on every instance (log scale), by cell "
                 "(n, ω): forward error against an independent QR solve, the stationarity residual, and "
                 "D̃ẑ − Xβ. A point above the dashed line at 1 would be a violation.", per_cell=False)
def _fig_ii4a(fi: FigureInput):
    t = fi.table
    checks = [("e_fwd", "tol_fwd", "forward error"), ("e_stat", "tol_stat", "stationarity residual"),
              ("e_beta", "tol_beta", r"$\tilde D\hat z - X\beta$")]
    checks = [c for c in checks if {c[0], c[1]} <= set(t.columns)]
    if not checks:
        fi.need("e_fwd", "tol_fwd")
    fig, (a,) = _new_figure(1, width=6.4, height=4.0)
    cells = sorted(pd.unique(t["cell"])) if "cell" in t.columns else [None]
    colours = _palette(len(checks))
    rng = np.random.default_rng(0)   # fixed jitter: deterministic figure
    width = 0.8 / len(checks)
    for i, cell in enumerate(cells):
        g = t if cell is None else t[t["cell"] == cell]
        for j, ((e, tol, name), c) in enumerate(zip(checks, colours)):
            r = (g[e] / g[tol]).to_numpy(float)
            r = np.where(r > 0, r, np.nan)
            x = i - 0.4 + width * (j + 0.5) + rng.uniform(-0.3, 0.3, len(r)) * width
            a.scatter(x, r, s=6, color=c, alpha=0.6, label=name if i == 0 else None)
    a.axhline(1.0, color="0.2", linestyle="--", linewidth=1, label="tolerance (violation above)")
    labels = []
    for cell in cells:
        g = t if cell is None else t[t["cell"] == cell]
        n, omega = _cell_value(g, "n"), _cell_value(g, "omega")
        labels.append(f"n = {n}, ω = {omega:g}" if n is not None and omega is not None else f"cell {cell}")
    a.set_xticks(range(len(cells)), labels)
    a.set_yscale("log")
    a.set_ylabel("error / tolerance (per instance)")
    a.set_title("the stationary-dictionary identities hold to rounding")
    _legend(a, loc="center right", fontsize=7.5)
    return fig


@register_figure("II.4b", "stationarity-residual",
                 "Left: deviation of the trained dictionary from X G⁻¹Z̃ᵀ, ‖D − D̃‖_F/‖D‖_F, and its certified "
                 "bound ‖R‖_F/(ω‖D‖_F) from the training's gradient residual, against the training step (median "
                 "and 10–90 % band over instances, log scale). Right: deviation against bound per instance and "
                 "checkpoint; the inequality says every g_dec point lies on or below y = x. g_ae-ls networks "
                 "(informative) are shown as crosses.")
def _fig_ii4b(fi: FigureInput):
    t = fi.table
    fi.need("train_step", "dev", "bound")
    dec = t[t["kind"] == "dec"] if "kind" in t.columns else t
    fig, (a, b) = _new_figure(2)
    c0, c1, c2 = _palette(3)[:3]
    _band(a, dec, "train_step", "dev", colour=c0, label=r"deviation $\|D - \tilde D\|_F/\|D\|_F$",
          marker="o", positive=True)
    _band(a, dec, "train_step", "bound", colour=c1, label=r"bound $\|R\|_F/(\omega\|D\|_F)$", marker="s",
          linestyle="--", positive=True)
    if "tight" in dec.columns:
        _band(a, dec, "train_step", "tight", colour=c2, label=r"tighter $\|R\|_F/(\lambda_{\min}\|D\|_F)$",
              marker="^", linestyle=":", positive=True, alpha=0.0)
    a.set_yscale("log")
    _data_ticks(a.xaxis, pd.unique(dec["train_step"]))
    a.set_xlabel("training step (checkpoints)")
    a.set_ylabel("relative deviation / bound")
    a.set_title("the stationarity residual certifies the deviation")
    _legend(a, title=_band_note(_instances_of(dec[dec["train_step"] == dec["train_step"].max()])),
            title_fontsize=8, loc="lower left")
    d = _finite(dec, "dev", "bound", positive=True)
    steps = sorted(pd.unique(d["train_step"]))
    colours = _palette(len(steps))
    for s, c in zip(steps, colours):
        g = d[d["train_step"] == s]
        b.scatter(g["bound"], g["dev"], s=10, color=c, alpha=0.7, label=f"step {s:g}")
    if "kind" in t.columns:
        ae = _finite(t[t["kind"] == "ae-ls"], "dev", "bound", positive=True)
        if len(ae):
            b.scatter(ae["bound"], ae["dev"], s=30, marker="x", color="0.1", label=r"$g_{\mathrm{ae}\text{-}\mathrm{ls}}$ network")
    pos = d[["dev", "bound"]].to_numpy(float).ravel()
    if len(pos):
        lim = np.array([pos.min() * 0.5, pos.max() * 2])
        b.plot(lim, lim, color="0.2", linestyle="--", linewidth=1, label="y = x (bound attained)")
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel(r"bound $\|R\|_F/(\omega\|D\|_F)$")
    b.set_ylabel(r"deviation $\|D - \tilde D\|_F/\|D\|_F$")
    b.set_title("every instance, every checkpoint")
    _legend(b, loc="upper left", fontsize=7.5)
    return fig


@register_figure("II.4c", "label-agreement",
                 "Per split (train/test draw, independent instances): the fraction of test images whose "
                 "top-β training image shares their label, against the chance rate and the claim's 0.5 "
                 "(left); the resemblance gap corr(atom, top contributors) − corr(atom, bottom contributors) "
                 "against the claim's 0.2 (right).")
def _fig_ii4c_agreement(fi: FigureInput):
    t = fi.table
    fi.need("record", "agree_top1", "resemblance")
    s = t[t["record"] == "split"]
    fi.need("agree_top1", table=s)
    fig, (a, b) = _new_figure(2, height=3.6)
    c0, c1, _ = _palette(3)[:3]
    x = np.arange(len(s))
    a.bar(x, s["agree_top1"], color=c0, label="top-1 β label agreement")
    if "chance" in s.columns:
        a.scatter(x, s["chance"], color=_palette(4)[3], marker="_", s=300, linewidths=2.5,
                  label="chance rate (label frequencies)", zorder=3)
    a.axhline(0.5, color="0.3", linestyle="--", linewidth=1, label="claim: > 0.5")
    _stored_mean(a, _part(fi.record, "labels"), "stored mean")
    a.set_ylim(0, 1.3)
    a.set_xticks(x, [str(i) for i in s["instance"]] if "instance" in s.columns else x)
    a.set_xlabel("split (instance)")
    a.set_ylabel("fraction of test images")
    a.set_title("top-β training image shares the label")
    _legend(a, loc="upper center", ncol=2, fontsize=7.5)
    b.bar(x, s["resemblance"], color=c1, label="resemblance gap")
    b.axhline(0.2, color="0.3", linestyle="--", linewidth=1, label="claim: > 0.2")
    _stored_mean(b, _part(fi.record, "atoms"), "stored mean")
    b.set_ylim(0, max(1.0, float(s["resemblance"].max()) * 1.3))
    b.set_xticks(x, [str(i) for i in s["instance"]] if "instance" in s.columns else x)
    b.set_xlabel("split (instance)")
    b.set_ylabel("Pearson correlation gap (mean over atoms)")
    b.set_title("top contributors resemble the atom")
    _legend(b, loc="upper center", ncol=2, fontsize=7.5)
    return fig


def _stored_mean(ax, part: dict | None, label: str) -> None:
    """The stored verdict's mean over splits and its interval, as a line and a band."""
    if not part or part.get("statistic") is None:
        return
    value = float(part["statistic"])
    lo, hi = (part.get("interval") or [None, None])[:2]
    ax.axhline(value, color="black", linewidth=1.2, label=f"{label} {value:.3g} [{_fmt(lo, 3)}, {_fmt(hi, 3)}]")
    if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
        ax.axhspan(lo, hi, color="black", alpha=0.08, linewidth=0)


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


def _first_instance(fi: FigureInput, rows: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in ("cell", "instance") if k in rows.columns]
    if not keys or not len(rows):
        return rows
    first = rows[keys].drop_duplicates().sort_values(keys).iloc[0]
    mask = np.ones(len(rows), dtype=bool)
    for k in keys:
        mask &= (rows[k] == first[k]).to_numpy()
    return rows[mask]


def _pixels(px: pd.DataFrame, what: str, item) -> np.ndarray | None:
    g = px[(px["what"] == what) & (px["item"].astype("Int64") == int(item))].sort_values("pixel")
    if len(g) != 64:
        return None
    return g["value"].to_numpy(float).reshape(8, 8)


def _gallery(fi: FigureInput, record: str, what: str, left_titles: list[str], title: str):
    """Rows of items (atoms or test images): the item's pixels, then top-k and bottom-k training images."""
    t = fi.table
    fi.need("record", "item", "role", "rank", "train_index", "weight")
    rows = _first_instance(fi, t[t["record"] == record])
    fi.need("item", table=rows)
    px = _first_instance(fi, t[t["record"] == "fig_pixels"]) if "what" in t.columns else t.iloc[0:0]
    images, labels = _digits()
    items = list(pd.unique(rows["item"]))
    k = int(pd.to_numeric(rows["rank"], errors="coerce").max()) + 1
    lead = len(left_titles)
    ncols = lead + 2 * k + 1
    from matplotlib.figure import Figure

    fig = Figure(figsize=(0.95 * ncols, 1.15 * len(items) + 0.9), layout="constrained")
    grid = fig.subplots(len(items), ncols, squeeze=False,
                        gridspec_kw={"width_ratios": [1] * lead + [1] * k + [0.3] + [1] * k})
    for r, item in enumerate(items):
        axes = grid[r]
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[lead + k].axis("off")
        for j, name in enumerate(left_titles):
            ax = axes[j]
            if name == "test image":
                ax.imshow(images[int(item)], cmap="gray_r")
                ax.set_xlabel(f"label {labels[int(item)]}", fontsize=7)
            else:
                kind = "atom" if name.startswith("atom") else "recon"
                img = _pixels(px, kind, item) if len(px) else None
                if img is None:
                    ax.text(0.5, 0.5, "no pixels\nstored", ha="center", va="center", fontsize=6,
                            transform=ax.transAxes)
                elif kind == "atom":   # atoms have signed pixels: diverging map centred at 0
                    v = float(np.abs(img).max()) or 1.0
                    ax.imshow(img, cmap="RdBu_r", vmin=-v, vmax=v)
                else:                  # a reconstruction is an image: same grey map as the digits
                    ax.imshow(img, cmap="gray_r", vmin=min(0.0, float(img.min())), vmax=float(img.max()) or 1.0)
                ax.set_xlabel(f"atom j = {int(item)}" if kind == "atom" else r"$X\beta = \tilde D\hat z$",
                              fontsize=7)
            if r == 0:
                ax.set_title(name, fontsize=8)
        for role, offset in (("top", lead), ("bottom", lead + k + 1)):
            sub = rows[(rows["item"] == item) & (rows["role"] == role)].sort_values("rank")
            for _, row in sub.iterrows():
                col = offset + int(row["rank"])
                if col >= len(axes):
                    continue
                ax = axes[col]
                idx = int(row["train_index"])
                ax.imshow(images[idx], cmap="gray_r")
                ax.set_xlabel(f"{labels[idx]} · {float(row['weight']):.2g}", fontsize=6.5)
                if r == 0 and int(row["rank"]) == 0:
                    ax.set_title(f"{role} {k} " + ("β" if record == "fig_test" else "weights") + " →",
                                 fontsize=8, loc="left")
    fig.suptitle(title, fontsize=10, fontweight="bold")
    return fig


@register_figure("II.4c", "atoms-and-contributors",
                 "Paper Fig. 3a on scikit-learn's digits (first split of the run): each row is an atom of "
                 "D̃ = X G⁻¹Z̃ᵀ (red positive, blue negative), then the training images with the largest and "
                 "the most negative contributions (G⁻¹Z̃ᵀ)_kj to it; under each image its label · weight. "
                 "The images are load_digits() looked up by the indices stored in the table.")
def _fig_ii4c_atoms(fi: FigureInput):
    return _gallery(fi, "fig_atom", "atom", [r"atom $\tilde D_j$"],
                    "atoms beside their top and bottom contributing training images")


@register_figure("II.4c", "test-images-and-beta",
                 "Paper Fig. 3b on scikit-learn's digits (first split of the run): each row is a held-out "
                 "test image, its reconstruction Xβ = D̃ẑ, and the training images with the largest and the "
                 "most negative coefficients β_k; under each image its label · β_k.")
def _fig_ii4c_tests(fi: FigureInput):
    return _gallery(fi, "fig_test", "recon", ["test image", "reconstruction"],
                    "test images beside their top- and bottom-β training images")


# --------------------------------------------------------------------------- document model
@dataclass
class _Doc:
    """A tiny document model rendered to both Markdown and HTML (so the two always agree)."""

    blocks: list = field(default_factory=list)

    def h(self, level: int, text: str, anchor: str | None = None):
        self.blocks.append(("h", level, text, anchor))

    def p(self, *runs):
        self.blocks.append(("p", runs))

    def table(self, header: list[str], rows: list[list], links: dict | None = None):
        self.blocks.append(("table", header, rows, links or {}))

    def bullets(self, items: list[tuple]):
        self.blocks.append(("ul", items))

    def image(self, path: str, alt: str, caption: str):
        self.blocks.append(("img", path, alt, caption))

    def code(self, text: str):
        self.blocks.append(("code", text))


def _b(text: str) -> tuple:
    return ("b", text)


def _i(text: str) -> tuple:
    return ("i", text)


def _c(text: str) -> tuple:
    return ("c", text)


def _md_escape(text: str, *, table: bool = False) -> str:
    """Escape what Markdown would misread in prose: backslashes, ``*`` (g*, z*), HTML-tag starts."""
    text = str(text).replace("\\", "\\\\").replace("*", "\\*")
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)
    if table:
        text = text.replace("|", "\\|").replace("\n", " ")
    return text


def _md_runs(runs, *, table: bool = False) -> str:
    out = []
    for run in runs:
        if isinstance(run, tuple):
            style, text = run
            core = str(text).strip()
            lead, trail = str(text)[:len(str(text)) - len(str(text).lstrip())], \
                str(text)[len(str(text).rstrip()):]
            if style == "c":
                out.append(f"{lead}`{core}`{trail}")
            elif style == "b":
                out.append(f"{lead}**{_md_escape(core, table=table)}**{trail}")
            else:
                out.append(f"{lead}*{_md_escape(core, table=table)}*{trail}")
        else:
            out.append(_md_escape(run, table=table))
    return "".join(out)


def _to_markdown(doc: _Doc) -> str:
    lines: list[str] = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            _, level, text, anchor = block
            if anchor:
                lines.append(f'<a id="{anchor}"></a>')
                lines.append("")
            lines.append("#" * level + " " + _md_escape(text))
        elif kind == "p":
            lines.append(_md_runs(block[1]))
        elif kind == "table":
            _, header, rows, links = block
            lines.append("| " + " | ".join(_md_escape(h, table=True) for h in header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            for row in rows:
                cells = []
                for j, cell in enumerate(row):
                    text = _md_runs(cell if isinstance(cell, list) else [cell], table=True)
                    if j == 0 and str(row[0]) in links:
                        text = f"[{text}](#{links[str(row[0])]})"
                    cells.append(text)
                lines.append("| " + " | ".join(cells) + " |")
        elif kind == "ul":
            for item in block[1]:
                lines.append("- " + _md_runs(item))
        elif kind == "img":
            _, path, alt, caption = block
            lines.append(f"![{_md_escape(alt)}]({path})")
            lines.append("")
            lines.append("*" + _md_escape(caption) + "*")
        elif kind == "code":
            lines.append("```")
            lines.extend(block[1].rstrip("\n").splitlines())
            lines.append("```")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;line-height:1.45;color:#222}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}h3{margin-top:1.6em}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:0.88em;color:#444;font-style:italic}
code,pre{font-family:Menlo,Consolas,monospace;font-size:0.88em;background:#f5f5f5}
pre{padding:0.6em;overflow-x:auto}
.PASS{color:#176b1e;font-weight:bold}.FAIL{color:#a31515;font-weight:bold}
.INCONCLUSIVE{color:#9a6700;font-weight:bold}.ERROR{color:#7a1fa2;font-weight:bold}
""".strip()

_OUTCOME_WORDS = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")


def _html_text(text: str) -> str:
    out = html.escape(str(text), quote=True)
    for word in _OUTCOME_WORDS:   # colour verdict words where they stand alone
        if out == word:
            return f'<span class="{word}">{word}</span>'
    return out


def _html_runs(runs) -> str:
    out = []
    for run in runs:
        if isinstance(run, tuple):
            style, text = run
            tag = {"b": "strong", "i": "em", "c": "code"}[style]
            out.append(f"<{tag}>{_html_text(text)}</{tag}>")
        else:
            out.append(_html_text(run))
    return "".join(out)


def _to_html(doc: _Doc, base: Path, title: str) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            _, level, text, anchor = block
            ident = f' id="{html.escape(anchor)}"' if anchor else ""
            parts.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        elif kind == "p":
            parts.append(f"<p>{_html_runs(block[1])}</p>")
        elif kind == "table":
            _, header, rows, links = block
            parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                         + "</tr></thead><tbody>")
            for row in rows:
                cells = []
                for j, cell in enumerate(row):
                    text = _html_runs(cell if isinstance(cell, list) else [cell])
                    if j == 0 and str(row[0]) in links:
                        text = f'<a href="#{html.escape(links[str(row[0])])}">{text}</a>'
                    cells.append(f"<td>{text}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_html_runs(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "img":
            _, path, alt, caption = block
            data = base64.b64encode((base / path).read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        elif kind == "code":
            parts.append(f"<pre>{html.escape(block[1])}</pre>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- rendering
@dataclass
class RenderResult:
    """What :func:`render` wrote: the documents, the figures, and the notes on skipped figures."""

    out_dir: Path
    markdown: Path
    html: Path
    figures: list[Path]
    notes: list[str]


def _anchor(cid: str) -> str:
    return "claim-" + "".join(ch if ch.isalnum() else "-" for ch in cid)


def _split_table(table: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    if table is None:
        return pd.DataFrame(), pd.DataFrame()
    if "control" not in table.columns:
        return table, table.iloc[0:0]
    control = _is_true(table["control"])
    return table[~control].reset_index(drop=True), table[control].reset_index(drop=True)


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None}, facecolor="white")


def _draw_figures(stored, figures_dir: Path, rel: str) -> tuple[dict, list[str]]:
    """Draw every registered figure of every claim; returns ({cid: [(path, spec)]}, notes by claim)."""
    import matplotlib

    drawn: dict[str, list] = {}
    notes: dict[str, list[str]] = {}
    claims = stored.results.get("claims", {})
    with matplotlib.rc_context(_rc()):
        for cid in _claim_order(stored.results):
            record = claims[cid]
            specs = FIGURES.get(cid, [])
            table = stored.tables.get(cid)
            drawn[cid], notes[cid] = [], []
            if not specs:
                continue
            if table is None:
                notes[cid].append("figures skipped: no table was stored for this claim"
                                  + (f" (it ended in ERROR: {record.get('error')})" if record.get("error") else ""))
                continue
            main, control = _split_table(table)
            cells = sorted(pd.unique(main["cell"])) if "cell" in main.columns and len(main) else []
            for spec in specs:
                if spec.per_cell and len(cells) > 1:
                    jobs = [(f"{cid}-{spec.name}-cell{int(c)}", _cell_caption(record, int(c)),
                             main[main["cell"] == c].reset_index(drop=True),
                             control[control["cell"] == c].reset_index(drop=True) if "cell" in control else control)
                            for c in cells]
                else:
                    jobs = [(f"{cid}-{spec.name}", "", main, control)]
                for stem, suffix, rows, control_rows in jobs:
                    fi = FigureInput(cid, rows, control_rows, record, stored.results)
                    try:
                        fig = spec.draw(fi)
                        _tidy(fig)
                        _save(fig, figures_dir / f"{stem}.png")
                        drawn[cid].append((f"{rel}/{stem}.png", spec, suffix))
                    except FigureSkipped as exc:
                        notes[cid].append(f"figure '{stem}' skipped: {exc}")
                    except Exception as exc:  # a figure must never lose a run
                        where = traceback.extract_tb(exc.__traceback__)[-1]
                        notes[cid].append(f"figure '{stem}' failed: {type(exc).__name__}: {exc} "
                                          f"({Path(where.filename).name}:{where.lineno})")
    return drawn, notes


def _cell_caption(record: dict, index: int) -> str:
    """' Cell k: key = value, …' naming the settings in which the claim's cells differ."""
    cells = record.get("cells") or []
    if not 0 <= index < len(cells):
        return f" Cell {index}."
    keys = sorted({k for c in cells for k in c if len({_json_key(c2.get(k)) for c2 in cells}) > 1})
    text = ", ".join(f"{k} = {cells[index].get(k)}" for k in keys)
    return f" Cell {index}" + (f": {text}." if text else ".")


def _json_key(value) -> str:
    return repr(value)


def _claim_order(results: dict) -> list[str]:
    claims = results.get("claims", {})
    order = [c for c in (results.get("run") or {}).get("claims", []) if c in claims]
    return order + sorted(c for c in claims if c not in order)


def _verdict_cell(record: dict) -> str:
    outcome = record.get("outcome") or "ERROR"
    before = record.get("verdict_outcome")
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
    return f"{record.get('statistic_name')} = {_fmt(record.get('statistic'))}"


def _interval_cell(record: dict) -> str:
    if record.get("interval") is None:
        return "–"
    threshold = record.get("threshold")
    return _fmt_interval(record["interval"]) + (f" vs {_fmt(threshold)}" if threshold is not None else "")


def _build_document(results: dict, drawn: dict, notes: dict) -> _Doc:
    doc = _Doc()
    run = results.get("run") or {}
    claims = results.get("claims") or {}
    order = _claim_order(results)
    summary = results.get("summary") or {}
    doc.h(1, "udl verification report")
    counts = ", ".join(f"{n} {o}" for o, n in sorted((summary.get("outcomes") or {}).items()))
    doc.p(f"Profile {run.get('profile')}, root seed {run.get('seed')}, device {run.get('device')}, "
          f"dtype {run.get('dtype')}; {len(order)} claims: {counts or 'none'}. Overall: ",
          _b("all claims hold and every negative control fails" if summary.get("ok") else
             "not every claim holds (or some control did not fail)"), ".")

    doc.h(2, "Verdicts")
    rows = []
    for cid in order:
        r = claims[cid]
        rows.append([cid, _verdict_cell(r), _statistic_cell(r), _interval_cell(r), _fmt(r.get("n")),
                     _fmt(r.get("alpha")), _fmt(r.get("beta")), _control_cell(r)])
    doc.table(["claim", "verdict", "statistic", "interval", "n", "α", "β", "control"], rows,
              links={cid: _anchor(cid) for cid in order})
    holm = run.get("multiple_testing") or "Holm step-down across the PASS tests of the run"
    doc.p(_b("Multiple testing: "), f"{holm}. A claim PASSES only if its Holm-adjusted p-value is at most "
          "its α; the raw and adjusted p-values are given per claim below. A negative control must FAIL "
          "(✓); one that does not means the claim cannot detect a broken implementation.")

    theorem = None
    for cid in order:
        r = claims[cid]
        if r.get("theorem") != theorem:
            theorem = r.get("theorem")
            doc.h(2, f"Theorem {theorem}")
        doc.h(3, f"{cid} — {r.get('title', '')}", anchor=_anchor(cid))
        doc.p(_b(f"Verdict: {_verdict_cell(r)}"), f"  ·  negative control: {_control_cell(r)}  ·  kind: "
              f"{r.get('kind')}  ·  theorem {r.get('theorem')} (THEOREMS.md §{r.get('theorem')})")
        doc.p(_b("Statement. "), r.get("statement") or "–")
        cells = r.get("cells") or []
        cell_text = "; ".join(", ".join(f"{k} = {v}" for k, v in c.items()) for c in cells)
        doc.p(_b("Design. "), f"α = {_fmt(r.get('alpha'))} (false fail), β = {_fmt(r.get('beta'))} (miss at "
              f"the effect); {r.get('n_instances')} instances per cell × {len(cells)} cell(s) at profile "
              f"{r.get('profile')}.")
        doc.bullets([[_i("Effect and sample size: "), r.get("effect") or "–"],
                     [_i("Regime: "), r.get("regime") or "–"],
                     [_i("Cells: "), cell_text or "–"]])
        if r.get("statistic") is not None:
            doc.p(_b("Statistic. "), f"{r.get('statistic_name')} = {_fmt(r.get('statistic'))}, interval "
                  f"{_fmt_interval(r.get('interval'))} against threshold {_fmt(r.get('threshold'))}, n = "
                  f"{r.get('n')}; p raw = {_fmt_p(r.get('p_raw'))}, Holm-adjusted p = {_fmt_p(r.get('p_adjusted'))}"
                  f" (α = {_fmt(r.get('alpha'))}).")
        if r.get("error"):
            doc.p(_b("Error. "), _c(str(r["error"])))
        parts = (r.get("detail") or {}).get("parts") or {}
        if parts:
            prow = [[name, v.get("outcome") or "–", v.get("statistic_name") or "–", _fmt(v.get("statistic")),
                     _fmt_interval(v.get("interval")), _fmt(v.get("threshold")), _fmt_p(v.get("p_value"))]
                    for name, v in parts.items()]
            doc.p("Sub-tests (intersection–union: the claim PASSES only if every part PASSES):")
            doc.table(["part", "outcome", "statistic", "value", "interval", "threshold", "p"], prow)
        extra = _detail_summary(r.get("detail") or {})
        if extra:
            doc.p(_i("Other recorded numbers: "), extra)
        for path, spec, suffix in drawn.get(cid, []):
            doc.image(path, Path(path).stem, f"Figure {Path(path).stem}. {spec.caption}{suffix}")
        if not FIGURES.get(cid):
            doc.p(_i(f"No figure is defined for claim {cid}."))
        for note in notes.get(cid, []):
            doc.p(_b("Figure note: "), note)
        control = r.get("control") or {}
        ctext = f"{control.get('description') or '–'} "
        if control.get("run"):
            ctext += f"Outcome: {control.get('outcome') or 'ERROR'}"
            if control.get("statistic") is not None:
                ctext += (f" ({control.get('statistic_name')} = {_fmt(control.get('statistic'))}, interval "
                          f"{_fmt_interval(control.get('interval'))}, p = {_fmt_p(control.get('p_value'))})")
            if control.get("error"):
                ctext += f"; error: {control['error']}"
            ctext += "." if control.get("outcome") == "FAIL" else " — the control must FAIL."
        else:
            ctext += "Not run in this run."
        doc.p(_b("Negative control. "), ctext)

    all_notes = [f"{cid}: {n}" for cid in order for n in notes.get(cid, [])]
    doc.h(2, "Rendering notes")
    doc.p("Figures are drawn from the stored tables only (claim rows; controls are not mixed in); "
          "bands are the 10–90 % range over instances around the median unless a caption says otherwise.")
    if all_notes:
        doc.bullets([[n] for n in all_notes])
    else:
        doc.p("Every registered figure was drawn.")

    doc.h(2, "Provenance")
    env = results.get("environment") or {}
    timing = results.get("timing") or {}
    cells = (results.get("diagnostics") or {}).get("cells") or {}
    prow = [["profile", str(run.get("profile"))], ["root seed", str(run.get("seed"))],
            ["device", str(run.get("device"))], ["dtype", str(run.get("dtype"))],
            ["controls", str(run.get("controls"))], ["git commit", str(env.get("git_commit"))],
            ["started (UTC)", str(timing.get("started"))],
            ["wall time", f"{_fmt(timing.get('wall_seconds'))} s"]]
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
            f"{cid} {_fmt(v.get('seconds'), 3)} s (+{_fmt(v.get('control_seconds'), 3)} s control)"
            for cid, v in per_claim.items())])
    prow.append(["rendered with", _renderer_versions()])
    doc.table(["item", "value"], prow)
    return doc


#: Detail entries already shown elsewhere (sub-tests, the decisive part) or pure bookkeeping.
_DETAIL_SKIP = {"parts", "decisive", "alpha"}
#: A dict-valued detail entry is listed (flattened) only when it is this small; long curves
#: (e.g. medians by T) are in the table and the figure instead.
_DETAIL_MAX_ITEMS = 6


def _detail_summary(detail: dict) -> str:
    """Scalar (and small flat dict) entries of a verdict's detail, as ``key = value; …``."""
    items = []
    for key in sorted(detail):
        if key in _DETAIL_SKIP:
            continue
        value = detail[key]
        if isinstance(value, bool) or isinstance(value, str):
            items.append(f"{key} = {value}")
        elif isinstance(value, (int, float)) or value is None:
            items.append(f"{key} = {_fmt(value)}")
        elif isinstance(value, (list, tuple)) and len(value) <= _DETAIL_MAX_ITEMS and \
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            items.append(f"{key} = [" + ", ".join(_fmt(v) for v in value) + "]")
        elif isinstance(value, dict) and len(value) <= _DETAIL_MAX_ITEMS and \
                all(isinstance(v, (int, float, str, bool)) or v is None for v in value.values()):
            inner = ", ".join(f"{k}: {v if isinstance(v, (str, bool)) else _fmt(v)}" for k, v in value.items())
            items.append(f"{key} = {{{inner}}}")
    return "; ".join(items)


def _renderer_versions() -> str:
    from importlib import metadata

    out = []
    for name in ("matplotlib", "seaborn"):
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} ?")
    return ", ".join(out)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def render(run_dir: str | Path, out_dir: str | Path | None = None) -> RenderResult:
    """Render the figures, ``report.md`` and ``report.html`` of a stored run (no recomputation).

    Parameters
    ----------
    run_dir : path
        A run directory written by :func:`udl.engine.results.write_run`.
    out_dir : path, optional
        Where to write (default: the run directory itself). Created if needed; only
        ``report.md``, ``report.html`` and ``figures/`` there are replaced.

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
    staging = out / f".{FIGURES_DIR}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        drawn, notes = _draw_figures(stored, staging, FIGURES_DIR)
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
    doc = _build_document(stored.results, drawn, notes)
    md = _to_markdown(doc)
    title = f"udl report — {stored.results.get('run', {}).get('profile')} seed {stored.results.get('run', {}).get('seed')}"
    page = _to_html(doc, out, title)
    _atomic_write(out / REPORT_MD, md.encode("utf-8"))
    _atomic_write(out / REPORT_HTML, page.encode("utf-8"))
    figures = [out / path for cid in drawn for path, _, _ in drawn[cid]]
    return RenderResult(out, out / REPORT_MD, out / REPORT_HTML, figures,
                        [f"{cid}: {n}" for cid in notes for n in notes[cid]])
