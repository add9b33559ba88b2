"""The ``udl`` command (also ``python -m udl``).

Subcommands live in a small registry (:data:`COMMANDS`); a later subcommand (``report``,
``compare``, ``audit``) is one :func:`register` call with a function that adds its arguments
and a handler returning the exit status.

``udl verify`` runs the claims and writes a run directory (default ``runs/<profile>-seed<seed>``
relative to the working directory). Exit status: 0 when every claim PASSES and every negative
control FAILS, 1 otherwise, 2 on bad input (one line on stderr naming the bad value; nothing
computed, nothing written), 130 when interrupted (Ctrl-C; finished cells stay in the cache, so
the same command resumes). Cells run on ``--executor`` (serial, local processes, Dask) and
finished cells are cached in ``--cache-dir`` (default ``.udl-cache``, or ``$UDL_CACHE_DIR``).

The exit statuses, defaults and options shared by the subcommands are :mod:`udl.app.options`.
Building the parser imports nothing heavy (a subcommand's ``configure`` adds arguments only), so
``udl --help`` and argument errors answer at once; a handler imports the engine when it runs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

from udl.app._format import fmt_number
from udl.app.options import (EXIT_INTERRUPTED, EXIT_NOT_OK, EXIT_OK, EXIT_USAGE, VERIFY_PROFILE, UsageError,
                             add_claim_options, add_executor_options, check_device, connect, executor_and_cache,
                             load_claims)

__all__ = ["COMMANDS", "Command", "UsageError", "register", "build_parser", "main", "format_table"]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage dump) and never exit directly."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


@dataclass(frozen=True)
class Command:
    """A subcommand: its help line, a function adding its arguments, and its handler."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def register(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None],
             handler: Callable[[argparse.Namespace], int]) -> Command:
    """Add a subcommand to the ``udl`` command.

    Parameters
    ----------
    name : str
        Subcommand name.
    help : str
        One-line description.
    configure : callable
        Adds the subcommand's arguments to its parser.
    handler : callable
        Runs the subcommand from the parsed namespace; returns the exit status. It may
        raise :class:`UsageError` for bad input (exit 2).

    Returns
    -------
    Command
    """
    command = Command(name, help, configure, handler)
    COMMANDS[name] = command
    return command


def build_parser() -> argparse.ArgumentParser:
    """The ``udl`` parser with every registered subcommand."""
    parser = _Parser(prog="udl", description="Verify the theorems of unrolled dictionary learning.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(child)
        child.set_defaults(handler=command.handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``udl``; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 success, 1 some claim does not hold, 2 bad input, 130 interrupted
        (:mod:`udl.app.options`).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_usage(sys.stderr)
            raise UsageError("udl: error: a command is required (choose from " + ", ".join(COMMANDS) + ")")
        return int(args.handler(args))
    except UsageError as exc:
        print(str(exc).splitlines()[0] if str(exc) else "udl: error", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK


# --------------------------------------------------------------------------- verify
PROG = "udl verify"


def _configure_verify(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("exit status: 0 every claim PASSES and every negative control FAILS; 1 otherwise "
                     "(FAIL, INCONCLUSIVE, ERROR, or a control that does not FAIL); 2 bad input "
                     "(nothing computed or written); 130 interrupted (finished cells are cached: "
                     "rerun the same command to resume)")
    add_claim_options(parser, default_profile=VERIFY_PROFILE,
                      profile_help="instance counts and cells: quick (seconds), ci (default), paper (GPU)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="run directory (default runs/<profile>-seed<seed>); replaced atomically")
    parser.add_argument("--list", action="store_true", help="list the claims (id, kind, title) and exit")
    parser.add_argument("--no-controls", action="store_true", help="skip the negative controls")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--no-report", action="store_true",
                        help="write results.json and tables only, no report.md/report.html/figures "
                             "(render them later with `udl report RUN_DIR`)")
    parser.add_argument("--keep-going", action="store_true",
                        help="exit 0 even when some claim does not hold (the run is still written; "
                             "bad input still exits 2); every claim always runs to the end")
    add_executor_options(parser)


def _fmt(value) -> str:
    return fmt_number(value, plain=True)


def _row(result) -> list[str]:
    verdict = result.verdict
    if verdict is None:
        statistic, interval, n = "-", "-", "-"
    else:
        statistic = f"{verdict.statistic_name} = {_fmt(verdict.statistic)}"
        interval = f"[{_fmt(verdict.interval[0])}, {_fmt(verdict.interval[1])}]"
        n = str(verdict.n)
    control = result.control_outcome or "-"
    if control not in ("FAIL", "-"):
        control += " (!)"
    seconds = result.seconds + result.control_seconds
    return [result.id, result.outcome, statistic, interval, n, control, f"{seconds:.1f}s"]


def format_table(run) -> str:
    """The final table of ``udl verify``: claim, verdict, statistic, interval, n, control, time."""
    header = ["claim", "verdict", "statistic", "interval", "n", "control", "time"]
    rows = [header] + [_row(r) for r in run.claims.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _summary(run, out) -> str:
    outcomes = [r.outcome for r in run.claims.values()]
    counts = ", ".join(f"{outcomes.count(o)} {o}" for o in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")
                       if outcomes.count(o))
    lines = []
    for result in run.claims.values():
        if result.error:
            lines.append(f"{result.id}: ERROR {result.error}")
        if result.control_error:
            lines.append(f"{result.id} control: ERROR {result.control_error}")
        if result.controls_run and result.control_outcome not in ("FAIL", "ERROR"):
            lines.append(f"{result.id}: negative control gave {result.control_outcome}; it must FAIL")
    lines.append(f"{len(outcomes)} claims: {counts} (Holm-adjusted across the run; "
                 f"profile {run.profile}, seed {run.seed}, {run.device}, {run.dtype})")
    cells = getattr(run, "cells", None) or {}
    if cells:
        cache = f"cache {cells['cache']}" if cells.get("cache") else "no cache"
        lines.append(f"cells: {cells['total']} ({cells['cached']} from the cache, {cells['computed']} computed, "
                     f"{cells['errors']} errors) on {cells['executor']}; {cache}")
    lines.append(f"results: {out}")
    return "\n".join(lines)


def _list_claims(claims: dict) -> int:
    rows = [["id", "kind", "title"]] + [[c.id, c.kind, c.title] for c in claims.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for row in rows:
        print(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    import torch

    from udl.engine import results
    from udl.engine.anatomy import ClaimDefinitionError, Context
    from udl.engine.runner import RunInterrupted, run as run_claims

    device = check_device(args.device, PROG)
    try:
        claims, _ = load_claims(args.claims_package, args.claims, PROG)
    except ClaimDefinitionError as exc:
        print(f"udl verify: claim definition error: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    if args.list:
        return _list_claims(claims)
    if not claims:
        print(f"udl verify: no claims found in package {args.claims_package!r}", file=sys.stderr)
        return EXIT_NOT_OK
    out = args.out if args.out is not None else f"runs/{args.profile}-seed{args.seed}"
    try:
        results.check_target(out)
    except ValueError as exc:
        raise UsageError(f"udl verify: error: argument --out: {exc}") from exc
    executor, cache = executor_and_cache(args, PROG)
    ctx = Context(device=device, dtype=getattr(torch, args.dtype))
    try:
        with executor:
            connect(executor, PROG)
            run = run_claims(claims, args.profile, args.seed, ctx, executor=executor, out_dir=out,
                             controls=not args.no_controls, progress=not args.no_progress, cache=cache,
                             claims_package=args.claims_package)
    except KeyboardInterrupt as exc:
        detail = str(exc) if isinstance(exc, RunInterrupted) else "interrupted"
        resume = "; rerun the same command to resume" if cache is not None else ""
        print(f"udl verify: {detail}{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(format_table(run))
    print(_summary(run, out))
    if not args.no_report:
        _render_report(out, args.claims_package)
    return EXIT_OK if run.ok or args.keep_going else EXIT_NOT_OK


register("verify", "run the claims and write a run directory", _configure_verify, _verify)


# --------------------------------------------------------------------------- report, compare
def _render_report(out, claims_package: str) -> None:
    """Render the report of a freshly written run; a failure never loses the run (stderr note)."""
    try:
        from udl.app import report

        rendered = report.render(out, claims_package=claims_package)
    except Exception as exc:  # the results are on disk already: report and carry on
        print(f"udl verify: the report could not be rendered ({type(exc).__name__}: {exc}); "
              f"the results are intact: rerun `udl report {out}`", file=sys.stderr)
        return
    for note in rendered.notes:
        print(f"report note: {note}", file=sys.stderr)
    print(f"report: {rendered.markdown} ({len(rendered.figures)} figures)")


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "exit status: 0 rendered; 2 RUN_DIR is not a run directory"
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by udl verify")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="write report.md, report.html and figures/ there (default: RUN_DIR)")
    parser.add_argument("--claims-package", metavar="PACKAGE", default=None,
                        help="package (dotted name or directory path) whose claims draw the figures "
                             "(default: the run's recorded claims package, else claims)")


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from udl.app import report

    try:
        from udl.app.compare import load_record

        load_record(args.run_dir)
    except ValueError as exc:
        raise UsageError(f"udl report: error: argument RUN_DIR: {exc}") from exc
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"udl report: error: argument --out: {args.out!r} exists and is not a directory")
    rendered = report.render(args.run_dir, args.out, claims_package=args.claims_package)
    for note in rendered.notes:
        print(f"report note: {note}", file=sys.stderr)
    print(f"report: {rendered.markdown}, {rendered.html} ({len(rendered.figures)} figures)")
    return EXIT_OK


def _configure_compare(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("exit status: 0 no regression; 1 a claim that PASSED in OLD_RUN is FAIL, INCONCLUSIVE "
                     "or ERROR in NEW_RUN, a claim disappeared, or a negative control stopped failing; "
                     "2 bad input")
    parser.add_argument("old_run", metavar="OLD_RUN", help="the reference run directory")
    parser.add_argument("new_run", metavar="NEW_RUN", help="the run directory to check")
    parser.add_argument("--format", choices=("md", "json"), default="md", help="summary format (default md)")
    parser.add_argument("--out", metavar="FILE", default=None, help="write the summary to FILE instead of stdout")


def _compare(args: argparse.Namespace) -> int:
    from udl.app import compare

    records = []
    for name, path in (("OLD_RUN", args.old_run), ("NEW_RUN", args.new_run)):
        try:
            records.append(compare.load_record(path))
        except compare.CompareError as exc:
            raise UsageError(f"udl compare: error: argument {name}: {exc}") from exc
    diff = compare.compare(*records, old_label=args.old_run, new_label=args.new_run)
    text = compare.to_json(diff) if args.format == "json" else compare.to_markdown(diff)
    if args.out is None:
        sys.stdout.write(text)
    else:
        try:
            with open(args.out, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
        except OSError as exc:
            raise UsageError(f"udl compare: error: argument --out: cannot write {args.out!r}: {exc}") from exc
        print(f"{'regression' if diff['regressed'] else 'no regression'}: {len(diff['regressions'])} "
              f"regression(s); summary written to {args.out}")
    return compare.exit_status(diff)


register("report", "re-render the figures, report.md and report.html of a stored run (no recomputation)",
         _configure_report, _report)
register("compare", "compare two runs: verdict changes, statistics beyond their intervals, regressions",
         _configure_compare, _compare)


# --------------------------------------------------------------------------- audit
def _configure_audit(parser: argparse.ArgumentParser) -> None:
    from udl.app.audit.cli import configure_cli

    configure_cli(parser)


def _audit(args: argparse.Namespace) -> int:
    from udl.app.audit.cli import main_cli

    return main_cli(args)


register("audit", "run every applicable claim against an encoder (udl.check_encoder), or the claims x "
         "encoders matrix", _configure_audit, _audit)
