"""A catalogue of bad and unusual inputs to every ``udl`` subcommand.

Every case runs the command in-process and checks: the exit status (2 for bad input), exactly
one line on stderr naming the bad value, no traceback, nothing on stdout, and that the
workspace — earlier runs, the user's notes, a kill matrix, … — is byte for byte unchanged
(nothing computed, written or deleted). No claim is computed: the workspace's one run is made
once from the toy claims (milliseconds), and every case fails before computing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from udl.app import cli
from udl.engine import executors, results

TESTS = Path(__file__).resolve().parent
TOY = str(TESTS / "toy_claims")
AUDIT_TOY = str(TESTS / "audit_claims")
PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not (PROC / "self").is_dir(), reason="needs a Linux /proc")


# --------------------------------------------------------------------------- the workspace
def _edit(run: Path, target: Path, edit) -> None:
    shutil.copytree(run, target)
    record = json.loads((target / "results.json").read_text(encoding="utf-8"))
    edit(record)
    (target / "results.json").write_text(results.dumps(record), encoding="utf-8")


def _set(path: tuple, value):
    def edit(record):
        node = record
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _drop(path: tuple):
    def edit(record):
        node = record
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


#: Malformed copies of the good run: name -> edit of its results.json.
MALFORMED = {
    "maybe": _set(("claims", "T.1a", "outcome"), "MAYBE"),
    "lower": _set(("claims", "T.1a", "outcome"), "fail"),
    "ctrl-maybe": _set(("claims", "T.1a", "control", "outcome"), "MAYBE"),
    "verdict-lower": _set(("claims", "T.1a", "verdict_outcome"), "pass"),
    "id-mismatch": _set(("claims", "T.1a", "id"), "T.9"),
    "table-escape": _set(("claims", "T.1a", "table"), "../../../etc/passwd"),
    "seed-negative": _set(("run", "seed"), -1),
    "no-run": _drop(("run",)),
    "no-summary": _drop(("summary",)),
    "ok-text": _set(("claims", "T.1a", "ok"), "yes"),
    "interval-short": _set(("claims", "T.1a", "interval"), [0.5]),
    "statistic-text": _set(("claims", "T.1a", "statistic"), "high"),
    "claims-list": _set(("claims",), []),
    "no-control": _drop(("claims", "T.1a", "control")),
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The protected workspace: a good run (with its report), user folders, malformed runs."""
    root = tmp_path_factory.mktemp("bad-input")
    status = cli.main(["verify", "--claims-package", TOY, "--claims", "T.1a", "--profile", "quick", "--no-progress",
                       "--no-cache", "--executor", "serial", "--out", str(root / "good")])
    assert status == 0
    good = root / "good"
    (root / "afile").write_text("a user's file\n")
    (root / "notes").mkdir()
    (root / "notes" / "NOTES.md").write_text("my notes\n")
    (root / "notes" / "results.json").write_text("{}\n")
    (root / "user-dir").mkdir()
    (root / "user-dir" / "a.txt").write_text("keep\n")
    (root / "empty").mkdir()
    for name, extra in (("run-plus-notes", "NOTES.md"), ("run-plus-table-file", "tables/mine.txt"),
                        ("run-plus-figure-file", "figures/notes.txt")):
        shutil.copytree(good, root / name)
        (root / name / extra).write_text("the user's\n")
    (root / "user-figures" / "figures").mkdir(parents=True)
    (root / "user-figures" / "figures" / "sketch.txt").write_text("mine\n")
    for name, edit in MALFORMED.items():
        _edit(good, root / name, edit)
    (root / "bad-json").mkdir()
    (root / "bad-json" / "results.json").write_text("{")
    (root / "wrong-format").mkdir()
    (root / "wrong-format" / "results.json").write_text(json.dumps({"format": "other/1", "claims": {}}))
    (root / "results-is-dir" / "results.json").mkdir(parents=True)
    shutil.copytree(good, root / "no-tables")
    shutil.rmtree(root / "no-tables" / "tables")
    shutil.copytree(good, root / "corrupt-table")
    (root / "corrupt-table" / "tables" / "T.1a.csv.gz").write_bytes(b"not gzip at all")
    (root / "matrix-plus-notes").mkdir()
    (root / "matrix-plus-notes" / "matrix.csv").write_text("claim\n")
    (root / "matrix-plus-notes" / "NOTES.md").write_text("mine\n")
    (root / "kill-plus-notes").mkdir()
    (root / "kill-plus-notes" / "kill-matrix.csv").write_text("claim\n")
    (root / "kill-plus-notes" / "NOTES.md").write_text("mine\n")
    (root / "calibration-plus-notes").mkdir()
    (root / "calibration-plus-notes" / "calibration.json").write_text("{}\n")
    (root / "calibration-plus-notes" / "NOTES.md").write_text("mine\n")
    (root / "not-a-package").mkdir()
    (root / "not-a-package" / "x.py").write_text("")
    os.symlink(good, root / "link")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: file hashes, directories, link targets."""
    entries = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                entries[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                entries[rel] = "dir"
            else:
                entries[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


@pytest.fixture(scope="module")
def protected(ws) -> dict[str, str]:
    return snapshot(ws)


# --------------------------------------------------------------------------- the catalogue
@dataclass(frozen=True)
class Case:
    """``argv`` with ``{ws}``, ``{toy}``, ``{audit}`` placeholders; the exit status; a text the one
    line on stderr must contain (the bad value or what is wrong)."""

    argv: tuple[str, ...]
    named: str
    status: int = 2


def V(*args, named):   # udl verify on the toy claims
    return Case(("verify", "--claims-package", "{toy}", "--claims", "T.1a", "--profile", "quick", "--no-progress",
                 *args), named)


def A(*args, named):   # udl audit on the audit toy claims
    return Case(("audit", "--claims-package", "{audit}", "--no-progress", *args), named)


def M(*args, named):   # udl mutate on the toy claims
    return Case(("mutate", "--claims-package", "{toy}", "--claims", "T.1a", *args), named)


def C(*args, named):   # udl calibrate on the toy claims
    return Case(("calibrate", "--claims-package", "{toy}", "--claims", "T.1a", "--profile", "quick", *args), named)


CASES = {
    # ---- verify: output directories
    "verify-out-invalid-results-and-notes": V("--out", "{ws}/notes", named="not a valid udl run"),
    "verify-out-user-dir": V("--out", "{ws}/user-dir", named="not a udl run"),
    "verify-out-run-plus-user-file": V("--out", "{ws}/run-plus-notes", named="NOTES.md"),
    "verify-out-run-plus-file-in-tables": V("--out", "{ws}/run-plus-table-file", named="tables/mine.txt"),
    "verify-out-run-plus-file-in-figures": V("--out", "{ws}/run-plus-figure-file", named="figures/notes.txt"),
    "verify-out-malformed-run": V("--out", "{ws}/maybe", named="MAYBE"),
    "verify-out-results-json-is-a-dir": V("--out", "{ws}/results-is-dir", named="results-is-dir"),
    "verify-out-is-a-file": V("--out", "{ws}/afile", named="not a directory"),
    "verify-out-is-a-link": V("--out", "{ws}/link", named="symbolic link"),
    "verify-out-under-a-file": V("--out", "{ws}/afile/run", named="afile"),
    "verify-out-proc": V("--out", "/proc/udl-run", named="/proc/udl-run"),
    "verify-out-deep-proc": V("--out", "/proc/a/b/c", named="/proc/a/b/c"),
    # ---- verify: cache
    "verify-cache-proc": V("--cache-dir", "/proc/udl-cache", "--out", "{ws}/new", named="/proc/udl-cache"),
    "verify-cache-is-a-file": V("--cache-dir", "{ws}/afile", "--out", "{ws}/new", named="afile"),
    "verify-cache-and-no-cache": V("--cache-dir", "{ws}/c", "--no-cache", named="--no-cache"),
    # ---- verify: claims package and selection
    "verify-package-missing-dotted": V("--claims-package", "no_such_pkg_udl", named="no_such_pkg_udl"),
    "verify-package-missing-dir": V("--claims-package", "{ws}/nowhere/", named="nowhere"),
    "verify-package-dir-without-init": V("--claims-package", "{ws}/not-a-package", named="__init__.py"),
    "verify-package-empty-name": V("--claims-package", "", named="--claims-package"),
    "verify-claims-unknown": V("--claims", "XYZ", named="'XYZ'"),
    "verify-claims-empty-token": V("--claims", "T.1a,", named="T.1a,"),
    # ---- verify: settings
    "verify-profile": V("--profile", "nope", named="'nope'"),
    "verify-seed-negative": V("--seed", "-1", named="'-1'"),
    "verify-seed-text": V("--seed", "abc", named="'abc'"),
    "verify-dtype": V("--dtype", "float16", named="'float16'"),
    "verify-device-unknown": V("--device", "tpu", named="'tpu'"),
    "verify-device-index": V("--device", "cuda:99", named="cuda:99"),
    "verify-executor-spec": V("--executor", "bogus", named="bogus"),
    "verify-executor-unreachable": V("--executor", "tcp://127.0.0.1:1", "--out", "{ws}/new",
                                     named="tcp://127.0.0.1:1"),
    "verify-workers-zero": V("--workers", "0", named="'0'"),
    "verify-workers-serial": V("--executor", "serial", "--workers", "2", named="--workers"),
    "verify-unknown-option": V("--bogus", named="--bogus"),
    # ---- the udl command itself
    "udl-no-command": Case((), "command"),
    "udl-unknown-command": Case(("frobnicate",), "frobnicate"),
    "udl-unknown-option": Case(("--bogus",), "--bogus"),
    # ---- report: the run read
    "report-missing": Case(("report", "{ws}/missing"), "missing"),
    "report-a-file": Case(("report", "{ws}/afile"), "afile"),
    "report-empty-dir": Case(("report", "{ws}/empty"), "empty"),
    "report-user-dir": Case(("report", "{ws}/user-dir"), "user-dir"),
    "report-bad-json": Case(("report", "{ws}/bad-json"), "bad-json"),
    "report-wrong-format": Case(("report", "{ws}/wrong-format"), "other/1"),
    "report-no-tables": Case(("report", "{ws}/no-tables"), "missing"),
    "report-corrupt-table": Case(("report", "{ws}/corrupt-table"), "T.1a.csv.gz"),
    **{f"report-malformed-{name}": Case(("report", f"{{ws}}/{name}"), name) for name in MALFORMED},
    # ---- report: where it writes
    "report-out-proc": Case(("report", "{ws}/good", "--out", "/proc/udl-report"), "/proc/udl-report"),
    "report-out-a-file": Case(("report", "{ws}/good", "--out", "{ws}/afile"), "afile"),
    "report-out-a-link": Case(("report", "{ws}/good", "--out", "{ws}/link"), "symbolic link"),
    "report-out-user-figures": Case(("report", "{ws}/good", "--out", "{ws}/user-figures"), "figures/sketch.txt"),
    "report-in-place-user-figure": Case(("report", "{ws}/run-plus-figure-file"), "figures/notes.txt"),
    "report-package-missing": Case(("report", "{ws}/good", "--claims-package", "no_such_pkg_udl"), "no_such_pkg_udl"),
    "report-dpi": Case(("report", "{ws}/good", "--dpi", "0"), "'0'"),
    # ---- compare
    "compare-new-maybe": Case(("compare", "{ws}/good", "{ws}/maybe"), "MAYBE"),
    "compare-old-lowercase-fail": Case(("compare", "{ws}/lower", "{ws}/good"), "'fail'"),
    "compare-control-maybe": Case(("compare", "{ws}/good", "{ws}/ctrl-maybe"), "control"),
    "compare-missing": Case(("compare", "{ws}/good", "{ws}/missing"), "missing"),
    "compare-a-file": Case(("compare", "{ws}/afile", "{ws}/good"), "afile"),
    "compare-claims-list": Case(("compare", "{ws}/good", "{ws}/claims-list"), "claims"),
    "compare-format": Case(("compare", "{ws}/good", "{ws}/good", "--format", "xml"), "'xml'"),
    "compare-out-proc": Case(("compare", "{ws}/good", "{ws}/good", "--out", "/proc/udl-compare/x.md"),
                             "/proc/udl-compare/x.md"),
    "compare-out-a-dir": Case(("compare", "{ws}/good", "{ws}/good", "--out", "{ws}/empty"), "empty"),
    # ---- audit
    "audit-no-target": Case(("audit",), "--encoder"),
    "audit-encoder-unknown": A("--encoder", "no_such_module_udl:factory", named="no_such_module_udl"),
    "audit-out-user-notes": A("--encoder", "ista", "--out", "{ws}/notes", named="not a valid udl run"),
    "audit-out-run-plus-notes": A("--encoder", "ista", "--out", "{ws}/run-plus-notes", named="NOTES.md"),
    "audit-out-proc": A("--encoder", "ista", "--out", "/proc/udl-audit", named="/proc/udl-audit"),
    "audit-matrix-out-plus-notes": A("--matrix", "--out", "{ws}/matrix-plus-notes", named="NOTES.md"),
    "audit-cache-proc": A("--encoder", "ista", "--cache-dir", "/proc/udl-cache", named="/proc/udl-cache"),
    "audit-expect-fail-syntax": A("--encoder", "ista", "--expect-fail", "A.1", named="A.1"),
    "audit-package-missing": A("--encoder", "ista", "--claims-package", "no_such_pkg_udl", named="no_such_pkg_udl"),
    "audit-with-encoders-alone": A("--encoder", "ista", "--with-encoders", "fista", named="--with-encoders"),
    # ---- mutate
    "mutate-out-plus-notes": M("--out", "{ws}/kill-plus-notes", named="NOTES.md"),
    "mutate-out-proc": M("--out", "/proc/udl-mutate", named="/proc/udl-mutate"),
    "mutate-out-a-file": M("--out", "{ws}/afile", named="afile"),
    "mutate-unknown-mutant": M("--mutants", "no-such-bug", named="no-such-bug"),
    "mutate-package-missing": M("--claims-package", "no_such_pkg_udl", named="no_such_pkg_udl"),
    # ---- calibrate
    "calibrate-out-plus-notes": C("--seeds", "1-2", "--out", "{ws}/calibration-plus-notes", named="NOTES.md"),
    "calibrate-out-a-run": C("--seeds", "1-2", "--out", "{ws}/good", named="results.json"),
    "calibrate-out-proc": C("--seeds", "1-2", "--out", "/proc/udl-calibration", named="/proc/udl-calibration"),
    "calibrate-reference-seed": C("--seeds", "0-3", "--out", "{ws}/new", named="--seeds"),
    "calibrate-seeds-backwards": C("--seeds", "5-2", "--out", "{ws}/new", named="5-2"),
    "calibrate-package-missing": C("--seeds", "1", "--claims-package", "no_such_pkg_udl", "--out", "{ws}/new",
                                   named="no_such_pkg_udl"),
}
_PROC_CASES = {name for name, case in CASES.items() if any("/proc/" in a for a in case.argv)}


def _argv(case: Case, ws: Path) -> list[str]:
    return [a.format(ws=ws, toy=TOY, audit=AUDIT_TOY) for a in case.argv]


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 60
    assert {name.split("-")[0] for name in CASES} >= {"verify", "report", "compare", "audit", "mutate", "calibrate",
                                                      "udl"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, ws, protected, capsys, monkeypatch, tmp_path):
    if name in _PROC_CASES and not (PROC / "self").is_dir():
        pytest.skip("needs a Linux /proc")
    monkeypatch.chdir(tmp_path)                          # a default --out would land here, not in the repo
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 0.5)   # an unreachable scheduler answers fast
    case = CASES[name]
    status = cli.main(_argv(case, ws))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == case.status, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error" in lines[0]
    assert case.named in lines[0], lines[0]
    assert out == ""
    assert snapshot(ws) == protected                     # nothing written, nothing deleted
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- beyond one line and exit 2
def test_replacing_a_complete_run_says_so_and_keeps_nothing_stale(ws, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(ws / "good", run)
    status = cli.main(["verify", "--claims-package", TOY, "--claims", "T.1a", "--profile", "quick", "--no-progress",
                       "--no-cache", "--executor", "serial", "--no-report", "--out", str(run)])
    err = capsys.readouterr().err
    assert status == 0
    assert f"--out {run}: the earlier run there (profile quick, seed 0, 1 claim" in err and "will be replaced" in err
    assert sorted(os.listdir(run)) == ["results.json", "tables"]          # the old report went with the old run
    assert sorted(os.listdir(tmp_path)) == ["run"]                        # no staging or set-aside left


def test_an_os_error_while_writing_is_one_line_exit_2(ws, tmp_path, capsys, monkeypatch):
    import errno

    from udl.app.report import writer

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(writer, "atomic_write", full)
    run = tmp_path / "run"
    shutil.copytree(ws / "good", run)
    assert cli.main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "report.md" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("debug", ["env", "flag", "off"])
def test_an_internal_error_is_one_line_exit_3_and_the_traceback_on_request(debug, capsys, monkeypatch):
    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "boom", cli.Command("boom", "raise", lambda parser: None, boom))
    monkeypatch.delenv("UDL_DEBUG", raising=False)
    argv = ["boom"]
    if debug == "env":
        monkeypatch.setenv("UDL_DEBUG", "1")
    elif debug == "flag":
        argv = ["--debug", "boom"]
    assert cli.main(argv) == 3
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("udl boom: internal error: RuntimeError: a bug")
    assert ("Traceback" in err) == (debug != "off")
    if debug == "off":
        assert err.count("\n") == 1 and "UDL_DEBUG=1" in last


def test_debug_flag_after_the_subcommand_shows_the_traceback_of_bad_input(ws, capsys):
    assert cli.main(["report", str(ws / "maybe"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "MAYBE" in err.strip().splitlines()[-1]


def test_a_missing_claims_package_is_bad_input_but_a_broken_one_is_not(tmp_path, capsys):
    package = tmp_path / "pkg_bad_input_broken"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("raise RuntimeError('broken on purpose')")
    assert cli.main(["verify", "--claims-package", str(package), "--out", str(tmp_path / "r")]) == 1
    assert "broken on purpose" in capsys.readouterr().err
    assert cli.main(["verify", "--claims-package", str(tmp_path / "absent"), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_compare_warns_when_the_runs_differ_in_their_settings(ws, tmp_path, capsys):
    other = tmp_path / "other"

    def edit(record):
        record["run"]["seed"] = 7
        record["run"]["profile"] = "ci"
        record["environment"]["udl"] = "0.0.1"

    _edit(ws / "good", other, edit)
    status = cli.main(["compare", str(ws / "good"), str(other), "--format", "json"])
    out, err = capsys.readouterr()
    assert status == 0
    warnings = [line for line in err.splitlines() if line.startswith("udl compare: warning: ")]
    assert len(warnings) == 3 and any("seed: 0 (old) vs 7 (new)" in w for w in warnings)
    assert any("udl version: " in w for w in warnings) and any("profile" in w for w in warnings)
    diff = json.loads(out)
    assert sorted(d["setting"] for d in diff["differences"]) == ["profile", "seed", "udl"]


def test_an_earlier_run_with_bare_infinity_tokens_is_still_read(ws, tmp_path):
    legacy = tmp_path / "legacy"
    shutil.copytree(ws / "good", legacy)
    record = json.loads((legacy / "results.json").read_text())
    record["claims"]["T.1a"]["detail"]["bound"] = float("inf")
    (legacy / "results.json").write_text(json.dumps(record, allow_nan=True))   # the old writer's spelling
    assert "Infinity" in (legacy / "results.json").read_text()
    assert results.load_results(legacy)["claims"]["T.1a"]["detail"]["bound"] == float("inf")
