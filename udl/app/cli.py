"""The ``udl`` command (also ``python -m udl``).

Subcommands live in a small registry (:data:`COMMANDS`); a later subcommand (``report``,
``compare``, ``audit``) is one :func:`register` call with a function that adds its arguments
and a handler returning the exit status.

``udl verify`` runs the claims and writes a run directory (default ``runs/<profile>-seed<seed>``
relative to the working directory). Exit status: 0 when every claim PASSES and every negative
control FAILS, 1 otherwise, 2 on bad input (one line on stderr naming the bad value; nothing
computed, nothing written), 130 when interrupted (Ctrl-C; finished cells stay in the cache, so
the same command resumes). Cells run on ``--executor`` (serial, local processes, Dask) and
finished cells are cached in ``--cache-dir`` (default ``$UDL_CACHE_DIR``, else
``$XDG_CACHE_HOME/udl``, else ``~/.cache/udl``; ``udl cache info|prune|clear``, :mod:`udl.app.cache_cmd`).
The output directory, the cache and the claims package are checked before anything is
computed: ``--out`` must be new, empty, or a complete earlier run holding nothing udl did not
write (:func:`udl.engine.results.inspect_target`; what it replaces is said on stderr).
``udl verify --plan`` lists the work and an estimated time instead (:mod:`udl.app.plan`).

Every error of every subcommand is one line on stderr (:mod:`udl.app.errors`): exit 2 for bad
input, a path udl may not read or write, and any OS error; 3 for an internal error (a bug);
``udl --debug …`` or ``UDL_DEBUG=1`` adds the traceback. ``udl --version`` prints the version
and, from a checkout, the git commit. The exit statuses, defaults and options shared by the
subcommands are :mod:`udl.app.options`.
Building the parser imports nothing heavy (a subcommand's ``configure`` adds arguments only), so
``udl --help`` and argument errors answer at once; a handler imports the engine when it runs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

from udl.app._format import fmt_number
from udl.app.errors import debug_requested, report_error
from udl.app.options import (EXIT_INTERRUPTED, EXIT_NOT_OK, EXIT_OK, VERIFY_PROFILE, UsageError,
                             add_claim_options, add_executor_options, add_figure_options, check_device, connect, executor_and_cache,
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


class _Version(argparse.Action):
    """``udl --version``: the version, and the commit of udl's own checkout when it runs from one."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from udl.engine.provenance import source_state, udl_version

        state = source_state()
        tree = ""
        if state["git_commit"]:
            tree = f" (git {state['git_commit'][:12]}{', uncommitted changes' if state['git_dirty'] else ''})"
        print(f"udl {udl_version()}{tree}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``udl`` parser with every registered subcommand."""
    parser = _Parser(prog="udl", description="Verify the theorems of unrolled dictionary learning.",
                     epilog="exit status: 0 ok; 1 something does not hold; 2 bad input, or a path udl may not "
                            "read or write; 3 a bug (internal error); 130 interrupted. Errors are one line; "
                            "--debug or UDL_DEBUG=1 adds the traceback.")
    parser.add_argument("--version", action=_Version, help="print udl's version (and git commit) and exit")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error (also UDL_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(child)
        child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="print the traceback of an error (also UDL_DEBUG=1)")
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
        0 success, 1 some claim does not hold, 2 bad input (or a path udl may not read or
        write, or any OS error), 3 an internal error, 130 interrupted (:mod:`udl.app.options`,
        :mod:`udl.app.errors`). No traceback reaches the user unless ``--debug`` or
        ``UDL_DEBUG=1`` asks for it.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = "udl"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            raise UsageError("udl: error: a command is required (choose from " + ", ".join(COMMANDS)
                             + "; udl --help says more)")
        prog = f"udl {args.command}"
        return int(args.handler(args))
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except (Exception, KeyboardInterrupt) as exc:  # the one place every error becomes one line
        return report_error(exc, prog, debug_requested(argv))


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
    parser.add_argument("--plan", action="store_true",
                        help="compute nothing: list each claim's cells and instance counts with an estimated time "
                             "on --device (from the work each cell declares and a short measurement of this "
                             "machine's matrix-multiply rate) and exit")
    parser.add_argument("--no-controls", action="store_true", help="skip the negative controls")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--no-report", action="store_true",
                        help="write results.json and tables only, no report.md/report.html/figures "
                             "(render them later with `udl report RUN_DIR`)")
    parser.add_argument("--keep-going", action="store_true",
                        help="exit 0 even when some claim does not hold (the run is still written; "
                             "bad input still exits 2); every claim always runs to the end")
    add_executor_options(parser)
    add_figure_options(parser)


def _fmt(value) -> str:
    return fmt_number(value, plain=True)


def _prediction_text(prediction) -> str:
    """``name: predicted vs estimate [L, U] contained`` (or ``not contained``)."""
    where = "contained" if prediction.contained else "not contained"
    return (f"{prediction.name}: {_fmt(prediction.predicted)} vs {_fmt(prediction.estimate)} "
            f"[{_fmt(prediction.interval[0])}, {_fmt(prediction.interval[1])}] {where}")


def _row(result) -> list[str]:
    verdict = result.verdict
    if verdict is None:
        statistic, interval, n, predictions = "-", "-", "-", "-"
    else:
        statistic = f"{verdict.statistic_name} = {_fmt(verdict.statistic)}"
        interval = (f"[{_fmt(verdict.interval[0])}, {_fmt(verdict.interval[1])}]" if verdict.evidence == "statistical"
                    else f"tolerance {_fmt(verdict.threshold)}")
        n = str(verdict.n)
        predictions = "; ".join(_prediction_text(p) for p in verdict.predictions) or "-"
    control = result.control_outcome or "-"
    if control not in ("FAIL", "-") and getattr(result, "decided", True):
        control += " (!)"
    seconds = result.seconds + result.control_seconds
    outcome = result.outcome if getattr(result, "decided", True) else f"{result.outcome} (reported only)"
    return [result.id, outcome, result.evidence, statistic, interval, n, control, f"{seconds:.1f}s", predictions]


def format_table(run) -> str:
    """The final table of ``udl verify``: claim, verdict (``(reported only)`` at a profile outside the
    claim's ``decides_at``), evidence (statistical or deterministic), statistic, interval (the
    tolerance of a deterministic check), n, control, time, and the predictions (predicted vs
    estimate [interval], contained or not)."""
    header = ["claim", "verdict", "evidence", "statistic", "interval", "n", "control", "time", "predictions"]
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
        if not getattr(result, "decided", True):
            lines.append(f"{result.id}: {result.reason}")
        elif result.controls_run and result.control_outcome not in ("FAIL", "ERROR"):
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
    if args.plan:
        from udl.app.plan import print_plan

        return print_plan(claims, args, device)
    out = args.out if args.out is not None else f"runs/{args.profile}-seed{args.seed}"
    try:
        target = results.inspect_target(out)
    except ValueError as exc:
        raise UsageError(f"udl verify: error: argument --out: {exc}") from exc
    executor, cache = executor_and_cache(args, PROG)
    if target.replaces:
        print(f"udl verify: --out {out}: {target.replaces} will be replaced", file=sys.stderr)
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
    print(_summary(run, out), flush=True)
    if not args.no_report:
        if not args.no_progress:
            print(f"udl verify: rendering the report into {out} …", file=sys.stderr, flush=True)
        _render_report(out, args.claims_package, dpi=args.dpi, vector=args.vector)
    return EXIT_OK if run.ok or args.keep_going else EXIT_NOT_OK


register("verify", "run the claims and write a run directory", _configure_verify, _verify)


# --------------------------------------------------------------------------- report, compare
def _render_report(out, claims_package: str, **figure_files) -> None:
    """Render the report of a freshly written run; a failure never loses the run (stderr note)."""
    try:
        from udl.app import report

        rendered = report.render(out, claims_package=claims_package, **figure_files)
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
    add_figure_options(parser)


def _report(args: argparse.Namespace) -> int:
    from udl.app import report
    from udl.app.options import check_claims_package
    from udl.engine import results

    if args.claims_package is not None:
        for package in args.claims_package.split(","):
            check_claims_package(package.strip(), "udl report")
    try:
        results.load_run(args.run_dir)
    except results.RunDirectoryError as exc:
        raise UsageError(f"udl report: error: argument RUN_DIR: {exc}") from exc
    try:
        results.check_report_target(args.out if args.out is not None else args.run_dir)
    except results.OutputPathError as exc:
        raise UsageError(f"udl report: error: {'argument --out: ' if args.out is not None else ''}{exc}") from exc
    rendered = report.render(args.run_dir, args.out, claims_package=args.claims_package, dpi=args.dpi,
                             vector=args.vector)
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
    for difference in diff["differences"]:
        print(f"udl compare: warning: {difference['message']}", file=sys.stderr)
    text = compare.to_json(diff) if args.format == "json" else compare.to_markdown(diff)
    if args.out is None:
        sys.stdout.write(text)
    else:
        from udl.app.errors import describe_os_error
        from udl.engine.files import atomic_write

        try:
            atomic_write(args.out, text)
        except OSError as exc:
            raise UsageError(f"udl compare: error: argument --out: cannot write {args.out!r}: "
                             f"{describe_os_error(exc)}") from exc
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


# --------------------------------------------------------------------------- mutate
def _configure_mutate(parser: argparse.ArgumentParser) -> None:
    from udl.app.mutate import configure

    configure(parser)


def _mutate(args: argparse.Namespace) -> int:
    from udl.app.mutate import main as mutate_main

    return mutate_main(args)


register("mutate", "run the claims under every mutant (deliberate bugs in udl.core) and write the kill matrix",
         _configure_mutate, _mutate)


# --------------------------------------------------------------------------- calibrate
def _configure_calibrate(parser: argparse.ArgumentParser) -> None:
    from udl.app.calibrate import configure

    configure(parser)


def _calibrate(args: argparse.Namespace) -> int:
    from udl.app.calibrate import main as calibrate_main

    return calibrate_main(args)


register("calibrate", "run a profile over many root seeds: each claim's PASS rate and its control's FAIL rate",
         _configure_calibrate, _calibrate)


# --------------------------------------------------------------------------- cache
def _configure_cache(parser: argparse.ArgumentParser) -> None:
    from udl.app.cache_cmd import configure

    configure(parser)


def _cache(args: argparse.Namespace) -> int:
    from udl.app.cache_cmd import main as cache_main

    return cache_main(args)


register("cache", "the cache of finished cells: info (location, entries, size, stale), prune (stale "
         "entries) or clear (every entry udl wrote)", _configure_cache, _cache)
