"""The plotting toolkit of claim figures (udl.engine.plotting): the @figure mark and its collection,
and the pieces of a figure that are plain logic (no drawing compared pixel by pixel here; the
report tests draw the real figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from udl.engine import plotting
from udl.engine.plotting import FigureInput, FigureSkipped, figure, figures_of

ROOT = Path(__file__).resolve().parents[1]


class _Base:
    id = "T.0"

    @figure("first", "The first figure.")
    def draw_first(self, fi):
        return "first"

    @figure("second", "The second figure.", per_cell=False)
    def draw_second(self, fi):
        return "second"

    def helper(self):
        return "not a figure"


class _Child(_Base):
    id = "T.1"

    @figure("third", "The child's own figure.")
    def draw_third(self, fi):
        return "third"

    @figure("first-again", "An override keeps its place.")
    def draw_first(self, fi):
        return "override"


class _Unmarked(_Base):
    id = "T.2"

    def draw_second(self, fi):   # overridden without the mark: no longer a figure
        return None


def test_figures_of_collects_marked_methods_in_definition_order_bases_first():
    specs = figures_of(_Child())
    assert [(s.name, s.claim, s.per_cell) for s in specs] == [
        ("first-again", "T.1", True), ("second", "T.1", False), ("third", "T.1", True)]
    assert [s.draw(None) for s in specs] == ["override", "second", "third"]   # bound to the instance
    assert [s.caption for s in figures_of(_Base())] == ["The first figure.", "The second figure."]


def test_an_unmarked_override_drops_the_figure():
    assert [s.name for s in figures_of(_Unmarked())] == ["first"]


def test_two_methods_drawing_the_same_file_are_an_error():
    class Twice(_Base):
        id = "T.3"

        @figure("first", "Same file name as the base's figure.")
        def draw_other(self, fi):
            return None

    with pytest.raises(ValueError, match="'first'"):
        figures_of(Twice())


@pytest.mark.parametrize("name, caption", [("", "caption"), ("a b", "caption"), ("a/b", "caption"),
                                           ("ok", ""), ("ok", "   ")])
def test_bad_figure_marks_are_refused(name, caption):
    with pytest.raises(ValueError, match="figure"):
        figure(name, caption)


def test_need_names_the_missing_columns_and_refuses_empty_tables():
    fi = FigureInput("T.0", pd.DataFrame({"a": [1.0]}), pd.DataFrame(), {}, {})
    fi.need("a")
    with pytest.raises(FigureSkipped, match=r"table T.0 lacks column\(s\) b, c"):
        fi.need("a", "b", "c")
    with pytest.raises(FigureSkipped, match="no claim rows"):
        fi.need("a", table=pd.DataFrame({"a": []}))


def test_quantiles_are_the_band_around_the_median():
    df = pd.DataFrame({"x": [1] * 11 + [2] * 11, "y": list(range(11)) + list(range(10, 21))})
    q = plotting.quantiles(df, "x", "y")
    assert q.loc[1, "med"] == 5 and q.loc[1, "lo"] == pytest.approx(1.0) and q.loc[1, "hi"] == pytest.approx(9.0)
    assert q.loc[2, "med"] == 15 and list(q["n"]) == [11, 11]
    assert plotting.BAND == (0.1, 0.9)


def test_finite_keeps_finite_and_optionally_positive_rows():
    df = pd.DataFrame({"a": [1.0, np.nan, 2.0, -1.0, 3.0], "b": [1.0, 1.0, np.inf, 1.0, 0.0]})
    assert list(plotting.finite(df, "a").index) == [0, 2, 3, 4]
    assert list(plotting.finite(df, "a", "b").index) == [0, 3, 4]
    assert list(plotting.finite(df, "a", "b", positive=True).index) == [0]
    assert list(plotting.finite(df, "a", "b", positive_only=("a",)).index) == [0, 4]


def test_is_true_reads_booleans_back_from_csv():
    assert list(plotting.is_true(pd.Series(["True", "False", " true ", "1", "0"]))) == [True, False, True, True, False]


def test_first_instance_and_cell_value():
    rows = pd.DataFrame({"cell": [1, 0, 0, 0], "instance": [0, 2, 1, 1], "v": [9, 8, 7, 6]})
    assert list(plotting.first_instance(rows)["v"]) == [7, 6]
    assert plotting.cell_value(pd.DataFrame({"T": [np.nan, 25.0]}), "T") == 25.0
    assert plotting.cell_value(rows, "missing", "default") == "default"


def test_part_reads_a_stored_sub_test():
    record = {"detail": {"parts": {"slope": {"statistic": 1.0}}}}
    assert plotting.part(record, "slope") == {"statistic": 1.0}
    assert plotting.part(record, "other") is None and plotting.part({}, "slope") is None


@pytest.mark.parametrize("value, text", [(1e-3, "10⁻³"), (1e3, "10³"), (1.0, "10⁰"), (1e-11, "10⁻¹¹"),
                                         (0.5, "0.5"), (2e-3, "0.002"), (0.0, "0")])
def test_power_of_ten(value, text):
    assert plotting.power_of_ten(value) == text


def test_log_ticks_are_readable():
    assert plotting.log_ticks(0.1, 1.0) == pytest.approx([0.1, 0.2, 0.5, 1.0])
    assert plotting.log_ticks(0.3, 0.45) == pytest.approx([0.3, 0.4])


@pytest.mark.parametrize("lo, hi", [(0.0297, 0.15), (0.027, 0.125), (0.3, 2.3), (0.018, 0.13), (0.1, 1.0)])
def test_log_ticks_label_a_value_near_each_end(lo, hi):
    """A plateau at the bottom or top of a log axis can be read off: a tick within LOG_END_GAP of each end."""
    ticks = plotting.log_ticks(lo, hi)
    span = np.log10(hi / lo)
    assert len(ticks) >= 2 and lo <= ticks[0] and ticks[-1] <= hi
    assert np.log10(ticks[0] / lo) <= plotting.LOG_END_GAP * span
    assert np.log10(hi / ticks[-1]) <= plotting.LOG_END_GAP * span


def test_log_ticks_stay_sparse_when_they_can():
    assert plotting.log_ticks(0.0297, 0.15) == pytest.approx([0.03, 0.05, 0.07, 0.1, 0.15])
    assert plotting.log_ticks(0.027, 0.125) == pytest.approx([0.03, 0.05, 0.1])


def test_curve_note_counts_the_instances_of_one_curve():
    """Three λ cells of 12 instances each: each curve is over 12 instances, not 36."""
    t = pd.DataFrame({"cell": np.repeat([0, 1, 2], 12 * 5), "instance": np.tile(np.repeat(np.arange(12), 5), 3),
                      "lam": np.repeat([0.1, 0.2, 0.4], 12 * 5)})
    assert plotting.instances_of(t) == 36
    assert plotting.curve_note(t, "lam") == "median over 12 instances per curve, band 10–90 %"
    uneven = t[~((t["cell"] == 2) & (t["instance"] >= 8))]
    assert plotting.curve_note(uneven, "lam").startswith("median over 8–12 instances per curve")


def test_scaled_labels_share_one_format_and_unit():
    labels, unit = plotting.scaled_labels([0.0052, -0.0071, 5.4e-06, -6e-05])
    assert (labels, unit) == (["+5.20", "−7.10", "+0.01", "−0.06"], "×10⁻³")
    assert plotting.scaled_labels([1.5, -2.0]) == (["+1.50", "−2.00"], "")
    assert plotting.scaled_labels([1e-9, 0.0])[0] == ["+1.00", "0"]


def test_g_dec_is_drawn_wide_under_a_thin_g_ae_lasso():
    dec, lasso = plotting.estimator_style("dec"), plotting.estimator_style("ae-lasso")
    assert dec["linewidth"] >= 1.8 * lasso["linewidth"] and dec["markersize"] >= 1.8 * lasso["markersize"]
    assert lasso["linestyle"] == "--" and dec["marker"] != lasso["marker"]
    assert plotting.estimator_style("ae-ls", markers=False)["marker"] is None


def test_estimators_are_the_core_kinds():
    from udl.core.estimators import KINDS

    assert plotting.ESTIMATORS is KINDS
    assert set(plotting.ESTIMATOR_STYLE) == set(KINDS) == set(plotting.ESTIMATOR_LABEL) \
        == set(plotting.ESTIMATOR_WIDTH) == set(plotting.ESTIMATOR_MARKER)


def test_importing_the_engine_and_the_claims_loads_no_plotting_library():
    code = ("import udl.engine, udl.engine.plotting, claims\nclaims.discover()\nimport sys\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'seaborn')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
