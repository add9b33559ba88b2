"""Nothing silent: strict JSON in every file udl writes, progress in a log, ``udl --version``,
provenance (udl's own commit and a dirty flag), and ``udl verify --plan``."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from udl.app import cli, plan
from udl.engine import cost, progress, provenance, results, strict_json

TESTS = Path(__file__).resolve().parent
TOY = str(TESTS / "toy_claims")
AUDIT_TOY = str(TESTS / "audit_claims")
INF, NAN = float("inf"), float("nan")


def _reject(token):
    raise ValueError(f"non-standard JSON token {token}")


def strict_loads(text: str):
    """json.loads that refuses Infinity, -Infinity and NaN (RFC 8259)."""
    return json.loads(text, parse_constant=_reject)


# --------------------------------------------------------------------------- strict JSON
def test_strict_json_round_trips_non_finite_numbers_as_strings():
    document = {"b": [INF, -INF, 1.5], "a": {"x": NAN, "text": "Infinity is a word"}, "n": None}
    text = strict_json.dumps(document)
    assert strict_loads(text)["b"] == ["Infinity", "-Infinity", 1.5]      # strict parsers read it
    back = strict_json.loads(text)
    assert back["b"] == [INF, -INF, 1.5] and math.isnan(back["a"]["x"])
    assert back["a"]["text"] == "Infinity is a word" and back["n"] is None
    assert text.endswith("\n") and list(strict_loads(text)) == ["a", "b", "n"]   # sorted keys


def test_strict_json_reads_the_old_bare_tokens():
    assert strict_json.loads('{"x": Infinity, "y": [NaN, -Infinity]}')["x"] == INF


def _with_non_finite(decide):
    """Wrap a claim's decide so its verdict carries infinities and a NaN (as real claims' do)."""
    def wrapped(self, table):
        verdict = decide(self, table)
        return dataclasses.replace(verdict, interval=(verdict.interval[0], INF),
                                   detail={**verdict.detail, "never_binds": INF, "undefined": NAN, "floor": -INF})
    return wrapped


def test_every_json_file_of_verify_report_and_audit_is_strict(tmp_path, capsys, monkeypatch, toy_claims):
    coin = type(toy_claims["T.1a"])
    monkeypatch.setattr(coin, "decide", _with_non_finite(coin.decide))
    run_dir, audit_dir = tmp_path / "run", tmp_path / "audit"
    assert cli.main(["verify", "--claims-package", TOY, "--claims", "T.1a,T.2", "--profile", "quick",
                     "--executor", "serial", "--no-progress", "--keep-going", "--out", str(run_dir)]) == 0
    assert cli.main(["report", str(run_dir)]) == 0
    status = cli.main(["audit", "--claims-package", AUDIT_TOY, "--encoder", "ista", "--executor", "serial",
                       "--no-progress", "--out", str(audit_dir)])
    assert status in (0, 1)
    capsys.readouterr()
    files = sorted(tmp_path.rglob("*.json"))
    assert {f.name for f in files} >= {"results.json", "audit.json"}
    texts = {f: f.read_text(encoding="utf-8") for f in files}
    for file, text in texts.items():
        strict_loads(text)                                    # raises on Infinity/NaN
    assert '"Infinity"' in texts[run_dir / "results.json"] and '"NaN"' in texts[run_dir / "results.json"]
    detail = results.load_results(run_dir)["claims"]["T.1a"]["detail"]
    assert detail["never_binds"] == INF and detail["floor"] == -INF and math.isnan(detail["undefined"])
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "'Infinity'" not in md                            # the report shows numbers, not strings


def test_compare_json_is_strict(tmp_path, capsys, monkeypatch, toy_claims):
    coin = type(toy_claims["T.1a"])
    monkeypatch.setattr(coin, "decide", _with_non_finite(coin.decide))
    run_dir = tmp_path / "run"
    assert cli.main(["verify", "--claims-package", TOY, "--claims", "T.1a", "--profile", "quick", "--executor",
                     "serial", "--no-progress", "--no-report", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    assert cli.main(["compare", str(run_dir), str(run_dir), "--format", "json"]) == 0
    strict_loads(capsys.readouterr().out)


# --------------------------------------------------------------------------- progress in a log
def _verify_with_progress(tmp_path, capsys, *extra):
    status = cli.main(["verify", "--claims-package", TOY, "--claims", "T.1a,T.3b", "--profile", "quick",
                       "--executor", "serial", "--no-cache", "--out", str(tmp_path / "run"), *extra])
    return status, capsys.readouterr().err


def test_a_log_gets_one_line_per_finished_claim_and_one_before_the_report(tmp_path, capsys):
    _, err = _verify_with_progress(tmp_path, capsys)           # capsys: stderr is not a terminal
    lines = err.splitlines()
    assert lines[0] == "udl: running 2 claims (6 cell tasks)"   # T.1a: 2 cells, T.3b: 1; with controls
    claims = [line for line in lines if line.startswith("udl: [")]
    assert len(claims) == 2
    assert claims[0].startswith("udl: [1/2] T.1a PASS, control FAIL (") and "s;" in claims[0]
    assert claims[1].startswith("udl: [2/2] T.3b PASS, control FAIL (")  # before Holm (INCONCLUSIVE after it)
    assert any(line.startswith("udl verify: rendering the report into ") for line in lines)
    assert lines.index(claims[-1]) < lines.index(next(x for x in lines if "rendering the report" in x))


def test_a_terminal_gets_the_bar_not_the_lines_and_no_progress_silences_both(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "is_terminal", lambda stream=None: True)
    from udl.engine import runner

    monkeypatch.setattr(runner, "is_terminal", lambda stream=None: True)
    _, err = _verify_with_progress(tmp_path, capsys, "--no-report")
    assert "udl: [" not in err and "udl: running" not in err
    monkeypatch.undo()
    _, err = _verify_with_progress(tmp_path / "quiet", capsys, "--no-progress")
    assert "udl: [" not in err and "rendering" not in err


def test_the_log_decides_claims_exactly_as_the_run_records_them(tmp_path, capsys, toy_claims):
    """Deciding a claim as its last cell comes in must not change its record."""
    from udl.engine.runner import run

    quiet = run({c: toy_claims[c] for c in ("T.1a", "T.3")}, "quick", 0, progress=False)
    logged = run({c: toy_claims[c] for c in ("T.1a", "T.3")}, "quick", 0, progress=True)
    assert "udl: [2/2]" in capsys.readouterr().err
    claims = [strict_json.dumps(results.run_document(r)["claims"]) for r in (quiet, logged)]
    assert claims[0] == claims[1]


# --------------------------------------------------------------------------- version and provenance
def test_udl_version(capsys):
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"udl {provenance.udl_version()}") and out.count("\n") == 1


def test_udl_version_loads_no_torch():
    code = ("import sys; from udl.app import cli; status = cli.main(['--version']); "
            "assert status == 0 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("udl ")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True, timeout=60).stdout


def _checkout(root: Path, name: str = "udl", package: str = "udl") -> Path:
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(f'[build-system]\nrequires = []\n\n[project]\nname = "{name}"\n')
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "first")
    return root / package


@pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
                    reason="needs git")
def test_the_commit_and_dirty_flag_of_udls_own_checkout(tmp_path):
    package = _checkout(tmp_path / "repo")
    state = provenance.source_state(package)
    assert state["git_commit"] == _git(tmp_path / "repo", "rev-parse", "HEAD").strip() and state["git_dirty"] is False
    (package / "__init__.py").write_text("x = 1\n")                    # a tracked file changed
    assert provenance.source_state(package)["git_dirty"] is True
    _git(tmp_path / "repo", "checkout", "-q", "--", ".")
    assert provenance.source_state(package)["git_dirty"] is False
    (package / "new_claim.py").write_text("")                          # an untracked file
    assert provenance.source_state(package)["git_dirty"] is True


@pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
                    reason="needs git")
@pytest.mark.parametrize("layout", ["foreign-project", "udl-elsewhere-in-the-repo"])
def test_no_commit_is_recorded_from_someone_elses_repository(tmp_path, layout):
    if layout == "foreign-project":
        package = _checkout(tmp_path / "repo", name="someone-else")
    else:
        package = _checkout(tmp_path / "repo", package="venv/lib/site-packages/udl")
    assert provenance.source_state(package) == {"git_commit": None, "git_dirty": None}
    assert provenance.source_state(tmp_path / "not-a-repo") == {"git_commit": None, "git_dirty": None}


def test_results_record_versions_commit_dirty_flag_device_and_threads(toy_claims):
    from udl.engine.runner import run

    env = results.run_document(run([toy_claims["T.1a"]], "quick", 0, progress=False))["environment"]
    for key in ("udl", "torch", "numpy", "git_commit", "git_dirty", "device", "device_name", "threads"):
        assert key in env
    assert env["device"] == "cpu" and env["threads"]["per_cell"] == 1 and env["threads"]["usable_cores"] >= 1
    assert env["git_dirty"] in (True, False, None) and (env["git_dirty"] is None) == (env["git_commit"] is None)


# --------------------------------------------------------------------------- the plan
class _Stub:
    id, title = "S.1", "a stub"

    def __init__(self, cells, hook=None):
        self._cells = cells
        if hook is not None:
            self.cost = hook

    def n_instances(self, profile):
        return 10

    def cells(self, profile):
        return self._cells


def test_the_cost_model_and_the_claims_own_cost():
    cell = {"m": 50, "p": 100, "n": 20, "T": 30, "n_steps": 5, "lam": 0.1}
    assert cost.cell_work(_Stub([cell]), cell) == 4 * 30 * 20 * 50 * 100 * 5
    assert cost.cell_work(_Stub([cell]), {"T_max": 10, "p": 4}) == 4 * 10 * 1 * 4 * 4    # m = p, n = 1
    assert cost.cell_work(_Stub([cell]), {"flips": 100}) is None                        # no work declared
    assert cost.cell_work(_Stub([cell], hook=lambda c: 7.0), cell) == 7.0
    (row,) = cost.claim_costs(_Stub([cell]), "quick", controls=True)
    assert row.tasks == 2 and row.instances == 10 and row.flops == 2 * 10 * cost.cell_work(_Stub([cell]), cell)


def test_plan_lines_give_each_claim_its_cells_and_a_time():
    cells = [{"T": 10, "p": 10, "n": 10, "m": 10}, {"flips": 3}]
    lines = plan.plan_lines({"S.1": _Stub(cells)}, "quick", True, rate=1e6)
    assert lines[0].startswith("S.1  2 cells x 10 instances, 4 cell tasks, ? GFLOP")
    assert lines[1].startswith('    cell 0 {"T":10,"m":10,"n":10,"p":10}: 10 instances, 0.0008 GFLOP, ~0.8 s')
    assert lines[2].endswith("~?") and "without S.1" in lines[-1]


def test_verify_plan_computes_and_writes_nothing(tmp_path, capsys, monkeypatch, toy_claims):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cost, "matmul_rate", lambda *args, **kwargs: 1e9)          # 1 GFLOP/s
    monkeypatch.setattr(type(toy_claims["T.1a"]), "cost", lambda self, cell: 1e9, raising=False)  # 1 s each
    assert cli.main(["verify", "--claims-package", TOY, "--claims", "T.1a", "--profile", "quick", "--plan"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("T.1a  2 cells x 40 instances, 4 cell tasks, 160 GFLOP, ~2.7 min")
    assert out[2].startswith('    cell 0 {"flips":100}: 40 instances, 80 GFLOP, ~1.3 min')
    assert out[-1].startswith("total: 1 claims, 4 cell tasks, 160 GFLOP, ~2.7 min on one worker")
    assert os.listdir(tmp_path) == []


def test_matmul_rate_is_a_positive_rate():
    assert cost.matmul_rate("cpu", seconds=0.05, size=32) > 0
