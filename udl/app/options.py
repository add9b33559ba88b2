"""What the ``udl`` subcommands share: exit statuses, defaults, argument types, and the set-up of
devices, claims, executors and caches from parsed arguments.

Importing this module is cheap (argparse and the standard library): the ``udl`` parser is built
from it, so that ``udl --help`` and argument errors answer without loading torch. The engine is
imported inside the functions that need it, after parsing.
"""

from __future__ import annotations

import argparse
import os

from udl.engine import DEFAULT_PACKAGE, PROFILES
from udl.engine.cache_files import CACHE_ENV, DEFAULT_LOCATION
from udl.engine.figure_files import DPI, DPI_RANGE, VECTOR_CHOICES, VECTOR_DEFAULT, check_dpi

__all__ = [
    "EXIT_OK", "EXIT_NOT_OK", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_INTERNAL", "DEBUG_ENV", "CACHE_ENV",
    "EXECUTOR_ENV", "DEFAULT_EXECUTOR", "DEFAULT_PACKAGE", "DEFAULT_SEED",
    "VERIFY_PROFILE", "AUDIT_PROFILE", "PROFILES", "DTYPES", "UsageError", "seed_arg", "workers_arg",
    "executor_arg", "expect_fail_arg", "dpi_arg", "add_claim_options", "add_executor_options", "add_figure_options",
    "check_device", "check_claims_package", "load_claims",
    "executor_and_cache", "connect",
]

#: Exit status: everything asked for held (every claim PASSES, no regression, ...).
EXIT_OK = 0
#: Exit status: something does not hold (a claim FAILS, a regression, a broken claim module).
EXIT_NOT_OK = 1
#: Exit status: bad input; one line on stderr names the bad value; nothing computed or written.
EXIT_USAGE = 2
#: Exit status: interrupted (128 + SIGINT, the shell's convention for Ctrl-C).
EXIT_INTERRUPTED = 130
#: Exit status: an unexpected error inside udl (a bug: one line on stderr; ``UDL_DEBUG=1`` or
#: ``udl --debug`` shows the traceback).
EXIT_INTERNAL = 3
#: Environment variable that, set to 1, makes every error print its traceback (like ``--debug``).
DEBUG_ENV = "UDL_DEBUG"
#: Environment variable that sets the default ``--executor`` (e.g. ``serial`` in a test suite or a
#: CI job that must not start worker processes); unset, the default is :data:`DEFAULT_EXECUTOR`.
EXECUTOR_ENV = "UDL_EXECUTOR"
#: Default ``--executor``: every usable core (local worker processes; serial on one core, and on a
#: CUDA ``--device``, where the GPU does the parallel work).
DEFAULT_EXECUTOR = "auto"
DEFAULT_SEED = 0
#: Default profile of ``udl verify``: the reference report's sizes.
VERIFY_PROFILE = "ci"
#: Default profile of an audit (``udl audit``, ``udl.check_encoder``): every claim at the test
#: suite's sizes, about a minute per encoder on a CPU core.
AUDIT_PROFILE = "quick"
DTYPES = ("float32", "float64")


class UsageError(Exception):
    """Bad command-line input; reported as one line on stderr with exit status 2."""


# --------------------------------------------------------------------------- argument types
def seed_arg(text: str) -> int:
    """``--seed``: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r} (allowed: an integer >= 0)")
    return value


def workers_arg(text: str) -> int:
    """``--workers``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid worker count {text!r} (allowed: an integer >= 1)")
    return value


def executor_arg(text: str) -> str:
    """``--executor``: a spec of :func:`udl.engine.executors.parse_spec`."""
    from udl.engine.executors import parse_spec

    try:
        parse_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text.strip()


def expect_fail_arg(text: str) -> tuple[str, str]:
    """``--expect-fail``: ``ID=reason`` (a claim or theorem id and a non-empty reason)."""
    cid, sep, reason = text.partition("=")
    if not sep or not cid.strip() or not reason.strip():
        raise argparse.ArgumentTypeError(f"invalid expected failure {text!r} (expected ID=REASON: a claim or "
                                         "theorem id and why it is expected to fail)")
    return cid.strip(), reason.strip()


def dpi_arg(text: str) -> int:
    """``--dpi``: an integer in :data:`udl.engine.figure_files.DPI_RANGE`."""
    try:
        return check_dpi(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid dpi {text!r} (allowed: an integer from {DPI_RANGE[0]} "
                                         f"to {DPI_RANGE[1]})") from None


# --------------------------------------------------------------------------- shared options
def add_claim_options(parser: argparse.ArgumentParser, *, default_profile: str, profile_help: str) -> None:
    """``--profile``, ``--claims``, ``--seed``, ``--device``, ``--dtype`` and ``--claims-package``."""
    parser.add_argument("--profile", choices=PROFILES, default=default_profile, help=profile_help)
    parser.add_argument("--claims", metavar="IDS", default=None,
                        help="comma list of claim ids or theorem ids (a theorem id selects its claims); "
                             "default every claim")
    parser.add_argument("--seed", type=seed_arg, default=DEFAULT_SEED, help="root seed, integer >= 0 (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, default="float64", help="simulation dtype (default float64)")
    parser.add_argument("--claims-package", metavar="PACKAGE", default=DEFAULT_PACKAGE,
                        help=f"package (dotted name or directory path) to discover claims in (default "
                             f"{DEFAULT_PACKAGE}: udl's claims, also called claims in a checkout)")


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--workers``, and ``--no-cache`` or ``--cache-dir``."""
    parser.add_argument("--executor", metavar="SPEC", type=executor_arg, default=None,
                        help=f"where cells run: auto (default, or ${EXECUTOR_ENV}: worker processes on every "
                             "usable core, serial on one core or a CUDA device), serial, processes (local worker "
                             "processes), dask (a local Dask cluster on 127.0.0.1) or tcp://HOST:PORT (an existing "
                             "Dask scheduler); results are identical on every executor")
    parser.add_argument("--workers", metavar="N", type=workers_arg, default=None,
                        help="worker processes for --executor auto, processes or dask (default: the usable cores; "
                             "1 computes serially); every cell computes with one thread on every executor, so "
                             "cells run side by side")
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--no-cache", action="store_true",
                       help="compute every cell, neither reading nor writing the cache")
    cache.add_argument("--cache-dir", metavar="DIR", default=None,
                       help=f"cache of finished cells (default {DEFAULT_LOCATION}); an interrupted run "
                            "resumes from it; `udl cache info|prune|clear` inspects or empties it")


def add_figure_options(parser: argparse.ArgumentParser) -> None:
    """``--dpi`` and ``--vector``: the files each report figure is written to."""
    parser.add_argument("--dpi", type=dpi_arg, default=DPI,
                        help=f"resolution of the PNG figures that report.html embeds, pixels per inch "
                             f"(default {DPI})")
    parser.add_argument("--vector", choices=VECTOR_CHOICES, default=VECTOR_DEFAULT,
                        help=f"vector copies of each figure written next to its PNG (default {VECTOR_DEFAULT}; "
                             "svg, both, or none)")


# --------------------------------------------------------------------------- set-up from parsed arguments
def check_device(device: str, prog: str) -> str:
    """``--device`` checked against this machine (:func:`udl.engine.check_device`);
    a bad or absent device raises :class:`UsageError`."""
    from udl.engine import check_device as engine_check_device

    try:
        return engine_check_device(device)
    except ValueError as exc:
        raise UsageError(f"{prog}: error: argument --device: {exc}") from None


def load_claims(package: str, ids: str | None, prog: str) -> tuple[dict, dict]:
    """The claims chosen by ``--claims`` among those of ``--claims-package``.

    Returns
    -------
    (dict, dict)
        ``{id: claim}`` chosen, and every claim of the package (for ``--expect-fail``).

    Raises
    ------
    udl.engine.anatomy.ClaimDefinitionError
        A claim module of the package is broken (the caller decides what that means).
    UsageError
        An empty or unknown id in ``ids``.
    """
    from udl.engine.discovery import discover, select_claims

    check_claims_package(package, prog)
    available = discover(package)
    if ids is None:
        return available, available
    tokens = ids.split(",")
    if any(not t.strip() for t in tokens):
        raise UsageError(f"{prog}: error: argument --claims: empty id in {ids!r}")
    try:
        return select_claims(available, tokens), available
    except ValueError as exc:
        raise UsageError(f"{prog}: error: argument --claims: {exc}") from None


def check_claims_package(package: str, prog: str) -> None:
    """A ``--claims-package`` that names nothing is bad input (:class:`UsageError`, exit 2).

    A directory path must be a package directory (``__init__.py``); a dotted name must be
    importable. A package that exists but whose modules fail to import is not checked here:
    :func:`~udl.engine.discovery.discover` reports it as a broken claims package (exit 1).
    """
    import importlib.util
    from pathlib import Path

    def bad(why: str) -> UsageError:
        return UsageError(f"{prog}: error: argument --claims-package: {package!r} {why}")

    if "/" in package or "\\" in package:
        if not Path(package).is_dir():
            raise bad("is not a directory")
        if not (Path(package) / "__init__.py").is_file():
            raise bad("is not a package directory (no __init__.py)")
        return
    from udl.engine.discovery import resolve_package_name

    try:
        spec = importlib.util.find_spec(resolve_package_name(package))
    except (ModuleNotFoundError, ValueError):
        spec = None
    except Exception:  # a parent package that fails to import: discover() reports it (exit 1)
        return
    if spec is None:
        raise bad("is not an importable package (give a dotted name on the Python path, or a directory path "
                  "containing a '/')")


def executor_and_cache(args: argparse.Namespace, prog: str):
    """The executor (not started) and the cache of a command with the options of
    :func:`add_executor_options`; bad input raises :class:`UsageError`."""
    from udl.engine.cache import CellCache
    from udl.engine.executors import make_executor, parse_spec

    spec = args.executor or os.environ.get(EXECUTOR_ENV) or DEFAULT_EXECUTOR
    try:
        kind, address = parse_spec(spec)
    except ValueError as exc:
        where = "argument --executor" if args.executor else f"${EXECUTOR_ENV}"
        raise UsageError(f"{prog}: error: {where}: {exc}") from None
    if args.workers is not None and (kind == "serial" or address is not None):
        raise UsageError(f"{prog}: error: argument --workers: applies to --executor auto, processes or dask, "
                         f"not {spec!r}")
    cache = None
    if not args.no_cache:
        cache = CellCache(args.cache_dir or None)  # None: the default directory (udl.engine.cache_files)
        try:
            cache.check()
        except ValueError as exc:
            raise UsageError(f"{prog}: error: argument --cache-dir: {exc}") from exc
    workers = args.workers
    if kind == "auto" and workers is None and str(getattr(args, "device", "cpu")).startswith("cuda"):
        workers = 1  # on a GPU the device does the parallel work: one process, as before
    return make_executor(spec, workers=workers), cache


def connect(executor, prog: str) -> None:
    """Connect to a Dask scheduler before computing: an unreachable one is bad input (exit 2)."""
    from udl.engine.executors import DaskExecutor, ExecutorError

    if isinstance(executor, DaskExecutor) and executor.address is not None:
        try:
            executor.client
        except ExecutorError as exc:
            raise UsageError(f"{prog}: error: argument --executor: {exc}") from exc
