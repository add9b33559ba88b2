"""Shared pytest options and fixtures.

Options
-------
--claims-profile   profile at which tests/test_claims.py runs the real claims (default quick)
--claims-out       write the run directory of tests/test_claims.py there (as `udl verify` does)
--claims-seed      root seed of that run (default 0)
"""

from __future__ import annotations

from pathlib import Path

import pytest

TOY_PACKAGE = str(Path(__file__).resolve().parent / "toy_claims")
PROFILE_CHOICES = ("quick", "ci", "paper")


def pytest_addoption(parser):
    group = parser.getgroup("udl claims")
    group.addoption("--claims-profile", default="quick", choices=PROFILE_CHOICES,
                    help="profile at which test_claims.py runs the claims (default quick)")
    group.addoption("--claims-out", default=None, metavar="DIR",
                    help="also write the run directory of test_claims.py to DIR (as `udl verify --out DIR`)")
    group.addoption("--claims-seed", default=0, type=int, metavar="N",
                    help="root seed of the claims run (default 0)")


@pytest.fixture(scope="session")
def toy_package() -> str:
    """Directory path of the toy claims package (for discover() and --claims-package)."""
    return TOY_PACKAGE


@pytest.fixture(scope="session")
def toy_claims(toy_package):
    """The toy claims, ``{id: instance}``."""
    from udl.engine.harness import discover

    return discover(toy_package)


@pytest.fixture(autouse=True)
def _isolated_cell_cache(tmp_path_factory, monkeypatch):
    """Keep `udl verify` calls in tests from reading or filling the user's cache (~/.cache/udl), and compute
    them in the test process (`UDL_EXECUTOR=serial`) unless a test names an executor: the default
    (worker processes on every core) gives identical results but starts processes per call."""
    monkeypatch.setenv("UDL_CACHE_DIR", str(tmp_path_factory.mktemp("udl-cache")))
    monkeypatch.setenv("UDL_EXECUTOR", "serial")


@pytest.fixture
def verify(toy_package, capsys):
    """Call ``udl verify`` in-process on the toy claims; returns (status, stdout, stderr)."""
    from udl.app import cli

    def call(*args):
        status = cli.main(["verify", "--claims-package", toy_package, "--profile", "quick", "--no-progress", *args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return call

