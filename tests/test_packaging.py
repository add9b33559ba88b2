"""Packaging: the claims are installed as ``udl.claims`` (never as a top-level ``claims``), every
package of udl is listed, the licence is an SPDX string with its file in the wheel, and the claims
are found by default from an installed wheel and under both of their names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _packages_on_disk() -> set[str]:
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "udl").rglob("__init__.py")}
    return found | {"udl.claims"}


def test_every_package_is_listed_and_the_claims_are_udl_claims():
    tool = PYPROJECT["tool"]["setuptools"]
    assert set(tool["packages"]) == _packages_on_disk(), (
        "[tool.setuptools] packages in pyproject.toml must name every package under udl/ (and udl.claims)")
    assert tool["package-dir"] == {"udl.claims": "claims"} and (ROOT / "claims" / "__init__.py").is_file()
    assert not any(p == "claims" or p.startswith("claims.") for p in tool["packages"])


def test_license_is_an_spdx_string_with_its_file():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639: the string only
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in PYPROJECT["build-system"]["requires"])


def _python(code: str, cwd: Path, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**clean, **env}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


FIND = ("import importlib.util, udl.claims\n"
        "from udl.engine.discovery import discover, resolve_package_name\n"
        "print(importlib.util.find_spec('claims') is not None, resolve_package_name('claims'),\n"
        "      udl.claims.__file__, len(discover()), len(discover('claims')))")


def test_the_claims_are_found_outside_the_repository_under_both_names(tmp_path):
    """From another directory no top-level ``claims`` exists; ``claims`` stands for ``udl.claims``."""
    importable, resolved, where, n_default, n_legacy = _python(FIND, tmp_path).split()
    assert (importable, resolved) == ("False", "udl.claims")
    assert Path(where).resolve() == (ROOT / "claims" / "__init__.py").resolve()
    assert int(n_default) >= 14 and n_default == n_legacy


@pytest.mark.slow
def test_the_wheel_holds_udl_claims_and_the_licence_and_finds_the_claims(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info/ into the tree
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    for name in ("udl", "claims"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                           "-v", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    log = done.stdout + done.stderr  # -v shows what setuptools says (a TOML licence table warned here)
    assert "Building wheel for udl" in log and "BuildBackendWarning" not in log and "DeprecationWarning" not in log
    wheel, = (tmp_path / "dist").glob("udl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    tops = {name.split("/")[0] for name in names}
    assert tops == {"udl", next(t for t in tops if t.endswith(".dist-info"))}  # no top-level claims/
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert {f"udl/claims/{p.name}" for p in (ROOT / "claims").glob("*.py")} <= set(names)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    importable, resolved, where, n_default, n_legacy = _python(FIND, elsewhere,
                                                               PYTHONPATH=str(tmp_path / "site")).split()
    assert (importable, resolved) == ("False", "udl.claims")
    assert Path(where).resolve() == (tmp_path / "site" / "udl" / "claims" / "__init__.py").resolve()
    assert int(n_default) >= 14 and n_default == n_legacy
