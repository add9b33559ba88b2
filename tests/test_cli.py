"""The `udl` command: exit codes, validation before computing, output, entry points."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from udl.app import cli
from udl.engine import results



def _tree(directory) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(root, name), directory): Path(root, name).read_bytes()
            for root, _, files in os.walk(directory) for name in files}


@pytest.fixture
def earlier_run(verify, tmp_path):
    """An existing good run directory and a byte snapshot of it."""
    out = tmp_path / "run"
    status, _, _ = verify("--claims", "T.1a", "--out", str(out))
    assert status == 0
    return out, _tree(out)


def test_exit_0_when_every_claim_passes_and_its_control_fails(verify, tmp_path):
    status, out, err = verify("--claims", "T.1a", "--out", str(tmp_path / "r"))
    assert status == 0, err
    header, row = out.splitlines()[:2]
    assert header.split() == ["claim", "verdict", "evidence", "statistic", "interval", "n", "control", "time",
                              "predictions"]
    assert row.startswith("T.1a") and "PASS" in row and "FAIL" in row and "statistical" in row
    assert results.load_run(tmp_path / "r").results["claims"]["T.1a"]["outcome"] == "PASS"


@pytest.mark.parametrize("claims", ["T.1b", "T.2", "T.3,T.3b", "T.1a,T.2"])
def test_exit_1_when_a_claim_does_not_hold(verify, tmp_path, claims):
    status, out, _ = verify("--claims", claims, "--out", str(tmp_path / "r"))
    assert status == 1
    assert (tmp_path / "r" / "results.json").is_file()  # the run is still recorded


def test_keep_going_exits_0_but_still_reports(verify, tmp_path):
    status, out, _ = verify("--claims", "T.2", "--out", str(tmp_path / "r"), "--keep-going")
    assert status == 0 and "ERROR" in out and "deliberate failure" in out


def test_no_controls(verify, tmp_path):
    status, out, _ = verify("--claims", "T.1b", "--out", str(tmp_path / "r"), "--no-controls")
    assert status == 0
    assert results.load_run(tmp_path / "r").results["claims"]["T.1b"]["control"]["run"] is False


_CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("args, named", [
    (["--profile", "nope"], "'nope'"),
    (["--claims", "XYZ"], "'XYZ'"),
    (["--claims", "T.1a,"], "T.1a,"),
    (["--seed", "-1"], "'-1'"),
    (["--seed", "abc"], "'abc'"),
    (["--dtype", "float16"], "'float16'"),
    (["--device", "tpu"], "'tpu'"),
    pytest.param(["--device", "cuda"], "'cuda'", marks=pytest.mark.skipif(_CUDA, reason="CUDA is available")),
    (["--bogus"], "--bogus"),
])
def test_bad_input_exits_2_with_one_line_and_leaves_the_run_untouched(verify, earlier_run, args, named):
    out, before = earlier_run
    status, stdout, err = verify("--out", str(out), *args)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], err
    assert stdout == ""
    assert _tree(out) == before and sorted(os.listdir(out.parent)) == ["run"]


def test_bad_out_targets_exit_2(verify, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep")
    for target in ("file", "notes"):
        status, _, err = verify("--claims", "T.1a", "--out", str(tmp_path / target))
        assert status == 2 and str(tmp_path / target) in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "notes" / "a.txt").read_text() == "keep"


def test_list_prints_claims_and_writes_nothing(verify, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = verify("--list", "--claims", "T.1")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "kind", "title"]
    assert [line.split()[0] for line in lines[1:]] == ["T.1a", "T.1b"]
    assert os.listdir(tmp_path) == []


def test_default_out_dir_and_identical_reruns(verify, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert verify("--claims", "T.1a", "--seed", "4")[0] == 0
    run_dir = tmp_path / "runs" / "quick-seed4"
    first = json.loads((run_dir / "results.json").read_text())
    assert verify("--claims", "T.1a", "--seed", "4")[0] == 0
    second = json.loads((run_dir / "results.json").read_text())
    assert json.dumps(first["claims"], sort_keys=True) == json.dumps(second["claims"], sort_keys=True)
    assert first["run"]["seed"] == 4 and first["run"]["profile"] == "quick"


def test_broken_claim_package_exits_1(tmp_path, capsys):
    package = tmp_path / "pkg_cli_broken"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("raise RuntimeError('syntax of doom')")
    status = cli.main(["verify", "--claims-package", str(package), "--out", str(tmp_path / "r")])
    assert status == 1 and "syntax of doom" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_no_command_exits_2(capsys):
    assert cli.main([]) == 2
    assert "command" in capsys.readouterr().err


def test_subcommand_registry_is_extensible(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "hello", cli.Command(
        "hello", "say hello", lambda p: p.add_argument("--name", default="world"),
        lambda args: print(f"hello {args.name}") or 0))
    assert cli.main(["hello", "--name", "udl"]) == 0
    assert capsys.readouterr().out == "hello udl\n"


def test_python_dash_m_udl_is_the_same_command(monkeypatch, capsys):
    """`python -m udl` runs udl/__main__.py (in-process here: a subprocess costs seconds)."""
    monkeypatch.setattr(sys, "argv", ["udl", "verify", "--profile", "nope"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("udl", run_name="__main__")
    assert exit_info.value.code == 2 and "'nope'" in capsys.readouterr().err


def test_console_script_entry_point_is_cli_main():
    from importlib import metadata

    (entry,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "udl"]
    assert entry.value == "udl.app.cli:main" and entry.load() is cli.main


@pytest.mark.slow
def test_udl_console_script_runs_end_to_end(toy_package, tmp_path):
    script = Path(sys.executable).parent / "udl"
    if not script.exists():
        pytest.skip("the udl console script is not installed in this environment")
    done = subprocess.run([str(script), "verify", "--claims-package", toy_package, "--claims", "T.1a",
                           "--profile", "quick", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "T.1a" in done.stdout and (tmp_path / "r" / "results.json").is_file()
