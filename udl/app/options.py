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

__all__ = [
    "EXIT_OK", "EXIT_NOT_OK", "EXIT_USAGE", "EXIT_INTERRUPTED", "CACHE_ENV", "DEFAULT_PACKAGE", "DEFAULT_SEED",
    "VERIFY_PROFILE", "AUDIT_PROFILE", "PROFILES", "DTYPES", "UsageError", "seed_arg", "workers_arg",
    "executor_arg", "expect_fail_arg", "add_claim_options", "add_executor_options", "check_device", "load_claims",
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
#: Environment variable that moves the default cache directory (e.g. in CI or tests).
CACHE_ENV = "UDL_CACHE_DIR"
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
                        help="package (dotted name or directory path) to discover claims in (default claims)")


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--workers``, and ``--no-cache`` or ``--cache-dir``."""
    parser.add_argument("--executor", metavar="SPEC", type=executor_arg, default="serial",
                        help="where cells run: serial (default), processes (local worker processes), "
                             "dask (a local Dask cluster on 127.0.0.1) or tcp://HOST:PORT (an existing "
                             "Dask scheduler); results are identical on every executor")
    parser.add_argument("--workers", metavar="N", type=workers_arg, default=None,
                        help="worker processes for --executor processes or dask (default: the usable cores); "
                             "every cell computes with one thread on every executor, so cells run side by side")
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--no-cache", action="store_true",
                       help="compute every cell, neither reading nor writing the cache")
    cache.add_argument("--cache-dir", metavar="DIR", default=None,
                       help=f"cache of finished cells (default ${CACHE_ENV} or .udl-cache in the working "
                            "directory); an interrupted run resumes from it")


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


def executor_and_cache(args: argparse.Namespace, prog: str):
    """The executor (not started) and the cache of a command with the options of
    :func:`add_executor_options`; bad input raises :class:`UsageError`."""
    from udl.engine.cache import DEFAULT_DIR, CellCache
    from udl.engine.executors import make_executor, parse_spec

    try:
        kind, address = parse_spec(args.executor)
    except ValueError as exc:
        raise UsageError(f"{prog}: error: argument --executor: {exc}") from None
    if args.workers is not None and (kind == "serial" or address is not None):
        raise UsageError(f"{prog}: error: argument --workers: applies to --executor processes or dask, "
                         f"not {args.executor!r}")
    cache = None
    if not args.no_cache:
        cache = CellCache(args.cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_DIR)
        try:
            cache.check()
        except ValueError as exc:
            raise UsageError(f"{prog}: error: argument --cache-dir: {exc}") from exc
    return make_executor(args.executor, workers=args.workers), cache


def connect(executor, prog: str) -> None:
    """Connect to a Dask scheduler before computing: an unreachable one is bad input (exit 2)."""
    from udl.engine.executors import DaskExecutor, ExecutorError

    if isinstance(executor, DaskExecutor) and executor.address is not None:
        try:
            executor.client
        except ExecutorError as exc:
            raise UsageError(f"{prog}: error: argument --executor: {exc}") from exc
