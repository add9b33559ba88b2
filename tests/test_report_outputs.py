"""What a report writes besides its text: publishable figure files (PNG at a chosen resolution,
vector copies, all deterministic), an HTML page that reads on a phone, and escaped user text
(an audited encoder's name) in the Markdown of audits.

The run is a stand-in with the table layout of claim II.3c, recorded as a run of the real claims
package, so that the real claim's figure method draws it (as in tests/test_report.py).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from udl.app import cli, report
from udl.app.audit.results import AuditResult, ClaimAudit, md_code, md_text
from udl.engine import figure_files, harness, stats
from udl.engine.harness import Claim

FIGURE = "II.3c-gradient-norm-vs-lambda"
#: An encoder name that is Markdown syntax almost everywhere: emphasis, link brackets, code.
HOSTILE = "my_mod:make[x]*`y`_"


class NormStub(Claim):
    id, theorem = "II.3c", "II.3"
    title = "stand-in"
    statement = "A stand-in with the table layout of II.3c."
    kind = "rate"
    effect = regime = "synthetic"
    control = "irrelevant here"
    profiles = {name: {"cells": [{"m": 10}], "n_instances": 4} for name in ("quick", "ci", "paper")}

    def simulate(self, cell, seeds, ctx):
        rows = [{"instance": i, "lam": lam, "estimator": k, "g_norm": (1 + 0.05 * i) * lam ** slope,
                 "gstar_norm": 0.0}
                for i in range(len(seeds)) for lam in (0.05, 0.1, 0.2)
                for k, slope in (("dec", 1.0), ("ae-lasso", 1.0), ("ae-ls", 2.0))]
        return pd.DataFrame(rows)

    def decide(self, table):
        main = table[~table["control"]]
        return stats.mean_test(np.ones(len(main)) + 0.01 * np.arange(len(main)), threshold=0.5,
                               side="greater", name="synthetic statistic")


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("outputs") / "run"
    harness.run([NormStub()], "quick", 0, out_dir=out, progress=False, claims_package="claims")
    return out


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, read from its IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _figure_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((directory / "figures").iterdir())}


# --------------------------------------------------------------------------- figure files
def test_each_figure_gets_a_pdf_by_default(stub_run, tmp_path):
    rendered = report.render(stub_run, tmp_path / "r")
    assert sorted(_figure_files(tmp_path / "r")) == [f"{FIGURE}.pdf", f"{FIGURE}.png"]
    assert [p.name for p in rendered.figures] == [f"{FIGURE}.png"]
    assert [p.name for p in rendered.vector_figures] == [f"{FIGURE}.pdf"]
    assert rendered.vector_figures[0].read_bytes()[:5] == b"%PDF-"
    md = rendered.markdown.read_text(encoding="utf-8")
    assert f"Vector: [PDF](figures/{FIGURE}.pdf)." in md


def test_svg_and_pdf_are_deterministic(stub_run, tmp_path):
    """Two renders write the same bytes: no date or software tag in any file, fixed SVG ids."""
    first = report.render(stub_run, tmp_path / "a", vector="both")
    report.render(stub_run, tmp_path / "b", vector="both")
    a, b = _figure_files(tmp_path / "a"), _figure_files(tmp_path / "b")
    assert sorted(a) == [f"{FIGURE}.pdf", f"{FIGURE}.png", f"{FIGURE}.svg"]
    assert a == b
    assert first.html.read_bytes() == (tmp_path / "b" / "report.html").read_bytes()
    svg = a[f"{FIGURE}.svg"].decode("utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "<dc:date>" not in svg and "Matplotlib" not in svg
    pdf = a[f"{FIGURE}.pdf"]
    assert b"/CreationDate" not in pdf and b"/Producer" not in pdf and b"/Creator" not in pdf
    assert b"/FontType 3" not in pdf and b"/Subtype /Type3" not in pdf      # TrueType text, editable


def test_vector_none_writes_the_png_only(stub_run, tmp_path):
    rendered = report.render(stub_run, tmp_path / "r", vector="none")
    assert sorted(_figure_files(tmp_path / "r")) == [f"{FIGURE}.png"] and rendered.vector_figures == []
    assert "Vector:" not in rendered.markdown.read_text(encoding="utf-8")


def test_dpi_sets_the_png_resolution(stub_run, tmp_path):
    low = report.render(stub_run, tmp_path / "low", dpi=55, vector="none").figures[0]
    default = report.render(stub_run, tmp_path / "default", vector="none").figures[0]
    w_low, h_low = _png_size(low)
    w, h = _png_size(default)
    assert figure_files.DPI == 110
    assert abs(w - 2 * w_low) <= 2 and abs(h - 2 * h_low) <= 2    # same inches, half the pixels


@pytest.mark.parametrize("kwargs, message", [({"dpi": 10}, "dpi must be an integer from 30 to 600"),
                                             ({"dpi": 110.5}, "dpi must be an integer"),
                                             ({"dpi": True}, "dpi must be an integer"),
                                             ({"vector": "eps"}, "vector must be one of svg, pdf, both, none")])
def test_bad_figure_settings_are_refused_before_writing(stub_run, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        report.render(stub_run, tmp_path / "r", **kwargs)
    assert not (tmp_path / "r").exists()


def test_udl_report_dpi_and_vector_options(stub_run, tmp_path, capsys):
    out = tmp_path / "r"
    assert cli.main(["report", str(stub_run), "--out", str(out), "--dpi", "55", "--vector", "svg"]) == 0
    assert sorted(_figure_files(out)) == [f"{FIGURE}.png", f"{FIGURE}.svg"]
    assert _png_size(out / "figures" / f"{FIGURE}.png")[0] < 500
    assert cli.main(["report", str(stub_run), "--dpi", "5"]) == 2
    assert cli.main(["report", str(stub_run), "--vector", "eps"]) == 2
    err = capsys.readouterr().err
    assert "invalid dpi '5' (allowed: an integer from 30 to 600)" in err and "--vector" in err


def test_udl_verify_takes_the_figure_options(toy_package, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["verify", "--claims-package", toy_package, "--claims", "T.1a", "--profile", "quick",
                     "--no-progress", "--no-cache", "--out", str(out), "--dpi", "60", "--vector", "none"]) == 0
    assert (out / "report.md").is_file()
    assert cli.main(["verify", "--claims-package", toy_package, "--dpi", "0"]) == 2
    capsys.readouterr()


# --------------------------------------------------------------------------- the HTML page
def test_html_has_a_viewport_and_every_table_scrolls(stub_run, tmp_path):
    page = report.render(stub_run, tmp_path / "r").html.read_text(encoding="utf-8")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    tables = page.count("<table>")
    assert tables >= 2     # verdicts and provenance at least
    assert page.count('<div class="table-scroll"><table>') == tables
    assert page.count("</table></div>") == tables
    assert re.search(r"\.table-scroll\{[^}]*overflow-x:auto", page)
    assert all(h.startswith("#") for h in re.findall(r'\bhref\s*=\s*"([^"]*)"', page))   # still self-contained


# --------------------------------------------------------------------------- audits
def _audit(name: str) -> AuditResult:
    claims = {"A.1": ClaimAudit("A.1", "A", "a claim", "NOT APPLICABLE",
                                reason=f"needs gradient, which {name} does not declare (it declares none)")}
    return AuditResult(encoder=name, name=name, capabilities=frozenset(), profile="quick", seed=0,
                       device="cpu", dtype="float64", claims=claims)


def _unescaped(text: str, chars: str = "*_[]`") -> list[str]:
    """Markdown special characters of ``text`` not preceded by a backslash."""
    return re.findall(r"(?<!\\)[" + re.escape(chars) + "]", text)


def test_md_text_escapes_every_markdown_special_character():
    assert md_text("my_mod:make[x]*") == r"my\_mod:make\[x\]\*"
    assert md_text("a|b<c>\n#d") == r"a\|b\<c\> \#d"
    assert md_text(r"back\slash") == r"back\\slash"
    assert md_code("plain") == "`plain`" and md_code("a`b") == "``a`b``" and md_code("`x`") == "`` `x` ``"


def test_audit_md_names_and_escapes_a_hostile_encoder():
    md = _audit(HOSTILE).to_markdown()
    title = md.splitlines()[0]
    assert title == r"# udl audit of encoder my\_mod:make\[x\]\*\`y\`\_"
    assert not _unescaped(title[len("# udl audit of encoder "):])
    summary = next(line for line in md.splitlines() if line.startswith("audit of "))
    assert summary.startswith(r"audit of my\_mod:make\[x\]\*\`y\`\_: 1 claims")
    row = next(line for line in md.splitlines() if line.startswith("| A.1 |"))
    assert r"which my\_mod:make\[x\]\*\`y\`\_ does not declare" in row
    assert "Encoder: ``'my_mod:make[x]*`y`_'``" in md       # the repr, verbatim in a code span
    assert HOSTILE in _audit(HOSTILE).summary()            # the terminal line is not Markdown


def test_the_report_of_an_audit_names_the_encoder(stub_run, tmp_path):
    run_dir = tmp_path / "audit"
    shutil.copytree(stub_run, run_dir)
    (run_dir / "audit.json").write_text(json.dumps({"encoder": {"name": HOSTILE}}), encoding="utf-8")
    rendered = report.render(run_dir)
    md = rendered.markdown.read_text(encoding="utf-8")
    assert md.splitlines()[0] == r"# udl audit of encoder my\_mod:make\[x\]\*\`y\`\_"
    page = rendered.html.read_text(encoding="utf-8")
    assert "<title>udl audit of encoder my_mod:make[x]*`y`_ — quick seed 0</title>" in page
    assert "<h1>udl audit of encoder my_mod:make[x]*`y`_</h1>" in page
    (run_dir / "audit.json").write_text("{not json", encoding="utf-8")
    assert report.render(run_dir).markdown.read_text(encoding="utf-8").startswith("# udl verification report")
