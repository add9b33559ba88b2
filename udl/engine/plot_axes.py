"""Readable axes for the report's figures: ticks that label the data, titles that fit.

:func:`tidy` is applied by the report to every figure a claim draws: plain-number ticks on short
log axes with a labelled tick near each end (:func:`log_ticks`), round integer ticks on step and
layer axes, and a title wider than its axes broken onto two lines. :func:`data_ticks` puts the
ticks of an axis at the data values (a λ grid, the layer counts T). Re-exported by
:mod:`udl.engine.plotting`, where claims find them.

matplotlib is imported inside the functions: importing this module does not import it.
"""

from __future__ import annotations

import math

__all__ = ["LOG_END_GAP", "data_ticks", "log_ticks", "tidy"]

#: A log axis gets a labelled tick within this fraction of its (log) span from each end, so that
#: a curve settling near the top or bottom of the axis (a plateau) can be read off.
LOG_END_GAP = 0.2


def _plain(value, _pos=None) -> str:
    """A tick label: at most 4 significant digits (a √2-spaced grid reads 0.07071, not 0.0707107)."""
    return f"{value:.4g}"


#: Mantissas of the log ticks, sparsest first: the first set that puts two ticks on the axis and
#: one within :data:`LOG_END_GAP` of each end is used.
_LOG_MANTISSAS = ((1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
                  tuple(float(k) for k in range(1, 10)))


def log_ticks(lo: float, hi: float) -> list[float]:
    """Readable major ticks for a log axis spanning [lo, hi].

    1-2-5 per decade; 1-2-3-5, 1-1.5-2-3-5-7, then 1…9, when a sparser set leaves an end of the axis
    without a tick within :data:`LOG_END_GAP` of the axis's log span (or gives fewer than two).
    """
    span = math.log10(hi / lo)
    ticks = []
    for subs in _LOG_MANTISSAS:
        ticks = [float(f"{m * 10.0 ** k:.6g}")   # 0.15, not 1.5·10⁻¹ = 0.15000000000000002
                 for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1) for m in subs]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 2 and math.log10(ticks[0] / lo) <= LOG_END_GAP * span \
                and math.log10(hi / ticks[-1]) <= LOG_END_GAP * span:
            return ticks
    return ticks if len(ticks) >= 2 else []


def _break_points(text: str) -> list[int]:
    """Indices of the spaces of ``text`` outside ``$…$`` mathtext, where a line may break."""
    points, dollars = [], 0
    for i, ch in enumerate(text):
        dollars += ch == "$"
        if ch == " " and dollars % 2 == 0:
            points.append(i)
    return points


def _fit_titles(fig) -> None:
    """Break an axes title wider than its axes onto two lines (at the space nearest its middle,
    never inside mathtext), so that no title is clipped at the figure's edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = None
    for ax in fig.axes:
        title = ax.title
        text = title.get_text()
        points = _break_points(text)
        if not ax.get_visible() or "\n" in text or not points:
            continue
        if renderer is None:   # measured after the layout has placed the axes
            canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
            fig.draw_without_rendering()
            renderer = canvas.get_renderer()
        if title.get_window_extent(renderer).width > ax.get_window_extent(renderer).width:
            cut = min(points, key=lambda i: abs(i - len(text) / 2))
            title.set_text(text[:cut] + "\n" + text[cut + 1:])


def tidy(fig) -> None:
    """Plain-number ticks on log axes spanning under 2.5 decades (0.2, 0.5 rather than 2×10⁻¹, one
    near each end: :func:`log_ticks`); round integer ticks (1, 2, 5 × 10ᵏ apart) on step/layer axes;
    a title wider than its axes on two lines. Axes whose ticks a figure fixed are left alone."""
    from matplotlib.ticker import (
        FixedLocator,
        FuncFormatter,
        MaxNLocator,
        NullFormatter,
    )

    _fit_titles(fig)
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
                axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))


def data_ticks(axis, values) -> None:
    """Major ticks at the data values (e.g. the λ grid), plain numbers, no minor labels."""
    from matplotlib.ticker import (
        FixedLocator,
        FuncFormatter,
        NullFormatter,
        NullLocator,
    )

    values = sorted({float(v) for v in values})
    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())
