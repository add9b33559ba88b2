"""Reports: figures and documents drawn from a stored run only, deterministic, self-contained.

Runs are small and synthetic: stand-in claims defined here carry the ids of real claims
(II.1b, II.3c, II.3d, II.4c) and produce tables with the columns the real claims store; their
runs record the real claims package (``claims``), so the real claims' ``@figure`` methods draw
them in seconds through the real engine (``harness.run`` writes the run directory exactly as
``udl verify`` does). A toy package (``tests/toy_claims_fig``) shows that a new claim with its
own figure is one file.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from udl.app import cli, report
from udl.engine import harness, plotting, results, stats
from udl.engine.harness import Claim

#: Directory path of the toy package whose one claim (T.9) defines a figure.
FIGURE_PACKAGE = str(Path(__file__).resolve().parent / "toy_claims_fig")

_QUICK = {"cells": [{"m": 10}], "n_instances": 6}
_PROFILES = {"quick": _QUICK, "ci": _QUICK, "paper": _QUICK}


class _Stub(Claim):
    theorem = "II.x"
    title = "stand-in"
    statement = "A stand-in with the table layout of the real claim; z* and g* must survive Markdown."
    kind = "rate"
    effect = "synthetic"
    regime = "synthetic"
    control = "the same table scaled: must FAIL (it does not; irrelevant here)"
    profiles = _PROFILES

    def decide(self, table):
        main = table[~table["control"]]
        return stats.mean_test(np.ones(len(main)) + 0.01 * np.arange(len(main)), threshold=0.5,
                               side="greater", name="synthetic statistic")


class FloorStub(_Stub):
    id, theorem = "II.1b", "II.1"

    def simulate(self, cell, seeds, ctx):
        lam = np.array([0.1, 0.2, 0.4])
        rows = [{"instance": i, "lam": l, "floor": (2.5 + 0.1 * i) * l, "conv": 1e-9,
                 "floor_witnessed": (2.4 + 0.1 * i) * l, "predicted_witnessed": (2.4 + 0.1 * i) * l,
                 "deviation": 1e-15 * (1 + i), "tolerance": 1e-12}
                for i in range(len(seeds)) for l in lam]
        return pd.DataFrame(rows)


class NormStub(_Stub):
    id, theorem = "II.3c", "II.3"
    drop: tuple = ()

    def simulate(self, cell, seeds, ctx):
        rows = []
        for i in range(len(seeds)):
            for dist in (0.0, 0.05, 0.1):          # D = D* (dist 0) and two distances away from it
                for lam in (0.05, 0.1, 0.2):
                    for k, slope in (("dec", 1.0), ("ae-lasso", 1.0), ("ae-ls", 2.0)):
                        rows.append({"instance": i, "dist": dist, "lam": lam, "estimator": k,
                                     "g_norm": (1 + 0.05 * i) * lam ** slope, "gstar_norm": dist,
                                     "err_star": (1 + 0.05 * i) * lam ** slope + dist})
        return pd.DataFrame(rows).drop(columns=list(self.drop))

    def decide(self, table):
        verdict = super().decide(table)
        detail = dict(verdict.detail, slope_mean={"dec": 0.92, "ae-lasso": 0.92, "ae-ls": 2.0})
        return stats.Verdict(**{**verdict.__dict__, "detail": detail})


class NormStubMissing(NormStub):
    drop = ("g_norm",)


class LearnStub(_Stub):
    id, theorem = "II.3d", "II.3"

    def simulate(self, cell, seeds, ctx):
        rows = []
        for i in range(len(seeds)):
            for step in range(13):
                for k, floor in (("dec", 0.07), ("ae-lasso", 0.065), ("ae-ls", 0.033)):
                    rows.append({"instance": i, "lam": 0.2, "n_steps": 12, "step_index": step, "estimator": k,
                                 "dict_error": floor + 0.1 * 0.6 ** step * (1 + 0.1 * i)})
        return pd.DataFrame(rows)


class LearnStubTwoCells(LearnStub):
    profiles = {name: {"cells": [{"T": 25}, {"T": 50}], "n_instances": 3} for name in ("quick", "ci", "paper")}


class DigitStub(_Stub):
    id, theorem = "II.4c", "II.4"

    def simulate(self, cell, seeds, ctx):
        rng = np.random.default_rng(int(seeds[0]))
        B = len(seeds)
        split = pd.DataFrame({"instance": np.arange(B), "record": "split", "agree_top1": 0.8,
                              "chance": 0.1, "resemblance": 0.6, "train_step": 150, "faith": 0.004,
                              "omega": 0.01})
        frames = [split]
        for record, items in (("fig_atom", [3, 7]), ("fig_test", [100, 200])):
            for role in ("top", "bottom"):
                for item in items:
                    for rank in range(5):
                        frames.append(pd.DataFrame({
                            "instance": np.arange(B), "record": record, "item": item, "role": role,
                            "rank": rank, "train_index": rng.integers(0, 1797, B),
                            "weight": rng.normal(size=B)}))
        for what, items in (("atom", [3, 7]), ("recon", [100, 200])):
            for item in items:
                frames.append(pd.DataFrame({
                    "instance": np.repeat(np.arange(B), 64), "record": "fig_pixels", "what": what,
                    "item": item, "pixel": np.tile(np.arange(64), B), "value": rng.normal(size=64 * B)}))
        return pd.concat(frames, ignore_index=True)


def _run(tmp_path, claims, name="run") -> Path:
    """Run stand-ins into ``tmp_path/name``, recorded as claims of the real package (their figures)."""
    out = tmp_path / name
    harness.run(claims, "quick", 0, out_dir=out, progress=False, claims_package="claims")
    return out


def _only_figure(claim_id: str, draw):
    """A ``figures_of`` under which claim ``claim_id`` has the one figure ``draw`` and no other claim any."""
    def figures_of(claim):
        return [report.FigureSpec(claim_id, "probe", "caption", draw)] if claim.id == claim_id else []

    return figures_of


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    """A stored run of the stand-in claims (no report yet)."""
    tmp = tmp_path_factory.mktemp("report")
    return _run(tmp, [FloorStub(), NormStub(), LearnStub(), DigitStub()])


@pytest.fixture(scope="module")
def rendered(stub_run, tmp_path_factory):
    """The stand-in run rendered once in place (a copy): (run directory, RenderResult)."""
    run_dir = _copy(stub_run, tmp_path_factory.mktemp("rendered"))
    return run_dir, report.render(run_dir)


def _copy(run_dir: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(run_dir, target)
    return target


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_render_writes_documents_and_figures(rendered):
    run_dir, rendered = rendered
    assert rendered.markdown.is_file() and rendered.html.is_file()
    names = sorted(p.name for p in rendered.figures)
    assert names == ["II.1b-floor-vs-lambda.png", "II.1b-lambda-term-check.png", "II.3c-advantage-vs-distance.png",
                     "II.3c-gradient-norm-vs-lambda.png", "II.3d-dictionary-error-vs-step.png",
                     "II.3d-final-error-vs-lambda.png", "II.4c-atoms-and-contributors.png",
                     "II.4c-label-agreement.png", "II.4c-sweep.png", "II.4c-test-images-and-beta.png"]
    assert rendered.notes == []
    md = rendered.markdown.read_text(encoding="utf-8")
    # the verdict table comes first, then the Holm line, then the per-claim sections
    assert md.index("## Verdicts") < md.index("multiple testing") < md.index("### II.1b")
    header = next(line for line in md.splitlines() if line.startswith("| claim |"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "claim", "verdict", "evidence", "statistic", "interval", "n", "α", "β", "control"]
    for cid in ("II.1b", "II.3c", "II.3d", "II.4c"):
        assert f"### {cid} — stand-in" in md
    assert "![II.3c-gradient-norm-vs-lambda](figures/II.3c-gradient-norm-vs-lambda.png)" in md
    assert "z\\* and g\\*" in md            # Markdown-escaped, not emphasis
    assert "Holm-adjusted p" in md and "## Provenance" in md and "git commit" in md
    for path in rendered.figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_is_deterministic_in_place(rendered):
    """Rendering again over the same run gives byte-identical documents and figures."""
    run_dir, _ = rendered
    first = _files(run_dir)
    report.render(run_dir)
    second = _files(run_dir)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], f"{name} differs between two renders"
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]   # no staging left behind


def test_render_never_recomputes(rendered, tmp_path, monkeypatch):
    """With every simulate/decide/run booby-trapped, the report renders, identical, elsewhere."""
    run_dir, first = rendered
    expected = first.markdown.read_text(encoding="utf-8")

    def boom(*args, **kwargs):
        raise AssertionError("the report must not simulate or decide")

    for cls in (FloorStub, NormStub, LearnStub, DigitStub):
        monkeypatch.setattr(cls, "simulate", boom)
        monkeypatch.setattr(cls, "decide", boom)
    monkeypatch.setattr(harness, "simulate_cell", boom)
    monkeypatch.setattr(harness, "run", boom)
    import claims

    for claim in claims.discover().values():
        monkeypatch.setattr(type(claim), "simulate", boom)
        monkeypatch.setattr(type(claim), "decide", boom)
    out = tmp_path / "elsewhere"
    again = report.render(run_dir, out)
    assert again.markdown.read_text(encoding="utf-8") == expected
    assert again.html.read_bytes() == first.html.read_bytes()
    assert sorted(p.name for p in again.figures) == sorted(p.name for p in first.figures)
    for path in first.figures:
        assert (out / "figures" / path.name).read_bytes() == path.read_bytes()
    assert not (out / "results.json").exists()


def test_html_is_self_contained(rendered):
    page = rendered[1].html.read_text(encoding="utf-8")
    sources = re.findall(r'\bsrc\s*=\s*"([^"]*)"', page)
    links = re.findall(r'\bhref\s*=\s*"([^"]*)"', page)
    assert len(sources) == 10 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert links and all(h.startswith("#") for h in links)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    for h in links:
        assert f'id="{h[1:]}"' in page


def test_missing_column_skips_the_figure_with_a_note(tmp_path):
    run_dir = _run(tmp_path, [NormStubMissing(), FloorStub()])
    rendered = report.render(run_dir)
    assert [p.name for p in rendered.figures] == ["II.1b-floor-vs-lambda.png", "II.1b-lambda-term-check.png",
                                                  "II.3c-advantage-vs-distance.png"]
    assert len(rendered.notes) == 1 and "g_norm" in rendered.notes[0] and "II.3c" in rendered.notes[0]
    md = rendered.markdown.read_text(encoding="utf-8")
    assert "lacks column(s) g_norm" in md and "## Rendering notes" in md


def test_cells_with_different_settings_get_one_figure_each(tmp_path):
    run_dir = _run(tmp_path, [LearnStubTwoCells()])
    rendered = report.render(run_dir)
    assert [p.name for p in rendered.figures] == ["II.3d-dictionary-error-vs-step-cell0.png",
                                                  "II.3d-dictionary-error-vs-step-cell1.png",
                                                  "II.3d-final-error-vs-lambda-cell0.png",
                                                  "II.3d-final-error-vs-lambda-cell1.png"]
    md = rendered.markdown.read_text(encoding="utf-8")
    assert "Cell 0: T = 25." in md and "Cell 1: T = 50." in md


def test_failing_figure_is_logged_not_raised(tmp_path, monkeypatch):
    run_dir = _run(tmp_path, [FloorStub()])

    def broken(fi):
        raise RuntimeError("deliberately broken figure")

    monkeypatch.setattr(plotting, "figures_of", _only_figure("II.1b", broken))
    rendered = report.render(run_dir)
    assert rendered.figures == []
    assert "RuntimeError: deliberately broken figure" in rendered.markdown.read_text(encoding="utf-8")
    assert results.load_run(run_dir).results["claims"]["II.1b"]["outcome"] in ("PASS", "INCONCLUSIVE", "FAIL")


def test_control_rows_are_not_drawn(tmp_path, monkeypatch):
    run_dir = _run(tmp_path, [FloorStub()])
    seen = {}

    def spy(fi):
        seen["control"] = set(fi.table["control"]) if "control" in fi.table.columns else None
        seen["n_control"] = len(fi.control)
        raise report.FigureSkipped("spy")

    monkeypatch.setattr(plotting, "figures_of", _only_figure("II.1b", spy))
    report.render(run_dir)
    assert seen["control"] == {False} and seen["n_control"] > 0


def test_a_new_claim_with_its_figure_is_one_file(tmp_path, capsys):
    """tests/toy_claims_fig/dice.py alone defines claim T.9 and its figure; the report draws it."""
    run_dir = tmp_path / "dice"
    assert cli.main(["verify", "--claims-package", FIGURE_PACKAGE, "--profile", "quick", "--no-progress",
                     "--no-cache", "--no-report", "--out", str(run_dir)]) == 0
    assert not (run_dir / "figures").exists()
    assert cli.main(["report", str(run_dir)]) == 0
    assert "report note" not in capsys.readouterr().err
    png = run_dir / "figures" / "T.9-mean-per-instance.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "![T.9-mean-per-instance](figures/T.9-mean-per-instance.png)" in md
    assert "Mean face per instance, against the fair die's 3.5 (dashed)." in md
    assert "Every registered figure was drawn." in md


def test_claims_missing_from_the_package_are_noted(stub_run, tmp_path, capsys):
    """`udl report --claims-package` names where figures come from; claims it lacks get a note, not a crash."""
    run_dir = _copy(stub_run, tmp_path)
    assert cli.main(["report", str(run_dir), "--claims-package", FIGURE_PACKAGE]) == 0
    err = capsys.readouterr().err
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert not list((run_dir / "figures").iterdir())
    for cid in ("II.1b", "II.3c", "II.3d", "II.4c"):
        assert f"figures skipped: claim {cid} is not in claims package {FIGURE_PACKAGE!r}" in md
        assert f"report note: {cid}: figures skipped" in err
    assert "No figure is defined" not in md and "### II.1b — stand-in" in md


def test_an_unloadable_package_is_noted(stub_run, tmp_path):
    run_dir = _copy(stub_run, tmp_path)
    rendered = report.render(run_dir, claims_package="no_such_claims_package")
    assert rendered.figures == [] and len(rendered.notes) == 4
    assert all("claims package 'no_such_claims_package' could not be loaded" in n for n in rendered.notes)


def test_runs_that_record_no_package_use_claims(stub_run, tmp_path, rendered):
    """Runs written before ``run.claims_package`` existed (e.g. the reference) draw with ``claims``."""
    run_dir = _copy(stub_run, tmp_path)
    path = run_dir / "results.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["run"].pop("claims_package") == "claims"
    path.write_text(json.dumps(document), encoding="utf-8")
    again = report.render(run_dir)
    assert again.notes == []
    assert sorted(p.name for p in again.figures) == sorted(p.name for p in rendered[1].figures)


def test_the_id_keyed_registry_is_gone_with_a_pointer():
    for name in ("register_figure", "FIGURES"):
        with pytest.raises(AttributeError, match="mark a method of the Claim class with udl.engine.figure"):
            getattr(report, name)


def test_error_claim_and_unknown_claims_render(toy_package, tmp_path):
    run_dir = tmp_path / "toy"
    assert cli.main(["verify", "--claims-package", toy_package, "--profile", "quick", "--no-progress",
                     "--no-cache", "--no-report", "--out", str(run_dir)]) == 1
    assert not (run_dir / "report.md").exists()
    md = report.render(run_dir).markdown.read_text(encoding="utf-8")
    assert "| ERROR |" in md and "deliberate failure in simulate" in md
    assert "INCONCLUSIVE (PASS before Holm)" in md and "PASS ✗ (must FAIL)" in md


# --------------------------------------------------------------------------- the commands
def test_verify_writes_the_report(toy_package, tmp_path, capsys):
    out = tmp_path / "run"
    status = cli.main(["verify", "--claims-package", toy_package, "--claims", "T.1a", "--profile", "quick",
                       "--no-progress", "--no-cache", "--out", str(out)])
    assert status == 0
    assert (out / "report.md").is_file() and (out / "report.html").is_file() and (out / "figures").is_dir()
    assert "report:" in capsys.readouterr().out


def test_verify_keeps_results_when_the_report_fails(toy_package, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(report, "render", broken)
    out = tmp_path / "run"
    status = cli.main(["verify", "--claims-package", toy_package, "--claims", "T.1a", "--profile", "quick",
                       "--no-progress", "--no-cache", "--out", str(out)])
    assert status == 0
    assert "renderer exploded" in capsys.readouterr().err
    assert results.load_run(out).results["claims"]["T.1a"]["outcome"] == "PASS"


def test_udl_report_command(tmp_path, capsys):
    run_dir = _run(tmp_path, [FloorStub()])
    assert cli.main(["report", str(run_dir)]) == 0
    first = (run_dir / "report.md").read_bytes()
    out = tmp_path / "out"
    assert cli.main(["report", str(run_dir), "--out", str(out)]) == 0
    assert (out / "report.md").read_bytes() == first
    capsys.readouterr()


@pytest.mark.parametrize("make", ["missing", "empty", "not-json", "wrong-format"])
def test_udl_report_bad_input_exits_2(tmp_path, capsys, make):
    target = tmp_path / "bad"
    if make != "missing":
        target.mkdir()
    if make == "not-json":
        (target / "results.json").write_text("{nope")
    if make == "wrong-format":
        (target / "results.json").write_text(json.dumps({"format": "other/9", "claims": {}}))
    assert cli.main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad" in err[0]
