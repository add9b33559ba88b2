"""``udl mutate``: run the claims under every mutant of :mod:`udl.engine.mutants` and write the kill
matrix — which claim catches which deliberate bug.

Every selected claim is decided (no negative controls) once unmutated (the *baseline*) and once
under each selected mutant, with the same root seed, so the instances are the same and a claim
whose computation the bug does not reach produces the same table. A cell (claim × mutant) is

- **reached** when the claim's table differs from its baseline table (the bug touches what it
  computes);
- **expected** to FAIL when reached (or ERROR, for a claim that declares ``detects_errors``), and
  to repeat its baseline outcome when not; a claim that does not PASS unmutated cannot kill;
- a **kill** when the claim does not FAIL unmutated and FAILS under the mutant — or ends in ERROR,
  when the claim declares that an error of its simulation is the failure it detects
  (``Claim.detects_errors``) or when the error is the engine's refusal to decide on a degenerate
  sample (:data:`GUARD_ERRORS`: instances that are copies of each other, or a statistic with zero
  spread).

A mutant is killed when at least one claim kills it. Written to ``--out`` (default
``runs/mutate-<profile>-seed<seed>``), atomically (a temporary directory swapped into place, so a
crash never leaves a half-written matrix over a good one):

- ``kill-matrix.csv`` — one row per claim: its baseline outcome, then its outcome under each mutant;
- ``cells.csv`` — one row per cell: outcomes, reached, expected, killed, statistic, p-value, error and
  a sentence where the outcome is not the expected one;
- ``kill-matrix.md`` — the matrix, the summary per mutant, the sentences and the mutant catalogue.

Exit status: 0 every selected mutant is killed; 1 some mutant survives (or a claim module is broken,
or no claim was found); 2 bad input (unknown mutant, claim or profile; an output directory that is
not a kill matrix), with nothing computed or written; 130 interrupted (nothing written).
Progress: one line per mutant on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from udl.app.options import (EXIT_INTERRUPTED, EXIT_NOT_OK, EXIT_OK, UsageError, add_claim_options,
                             add_executor_options, check_device, connect, executor_and_cache, load_claims)

__all__ = ["PROG", "HELP", "DEFAULT_PROFILE", "MATRIX_FILES", "configure", "main", "select_mutants", "Cell",
           "KillMatrix", "kill_matrix", "is_kill", "expected_outcome", "write_matrix", "to_markdown"]

PROG = "udl mutate"
HELP = "run the claims under every mutant (deliberate bugs) and write the kill matrix"
#: Default profile: the test suite's sizes (every claim × every mutant is ~20 runs).
DEFAULT_PROFILE = "quick"
MATRIX_CSV, CELLS_CSV, MATRIX_MD = "kill-matrix.csv", "cells.csv", "kill-matrix.md"
#: Everything ``udl mutate`` writes into its output directory (the layout of
#: :func:`udl.engine.files.check_replaceable`): only such a directory is ever replaced.
MATRIX_FILES = {MATRIX_CSV: None, CELLS_CSV: None, MATRIX_MD: None}
#: Outcomes under which a claim cannot kill anything: it does not PASS unmutated.
_BROKEN = ("FAIL", "ERROR")


# --------------------------------------------------------------------------- the matrix
@dataclass(frozen=True)
class Cell:
    """One claim under one mutant."""

    mutant: str
    area: str
    claim: str
    baseline: str
    outcome: str
    reached: bool
    expected: str
    killed: bool
    statistic: float
    p_value: float
    seconds: float
    error: str
    sentence: str


@dataclass
class KillMatrix:
    """The result of :func:`kill_matrix`: settings, the baseline outcome per claim, and the cells."""

    profile: str
    seed: int
    device: str
    dtype: str
    claims: list[str]
    mutants: list[str]
    baseline: dict[str, str]
    cells: list[Cell] = field(default_factory=list)

    def killers(self, mutant: str) -> list[str]:
        """The claims that kill ``mutant``."""
        return [c.claim for c in self.cells if c.mutant == mutant and c.killed]

    @property
    def survivors(self) -> list[str]:
        return [m for m in self.mutants if not self.killers(m)]

    @property
    def ok(self) -> bool:
        """True when every mutant is killed by at least one claim."""
        return bool(self.mutants) and not self.survivors


#: Errors of the engine's own guards that refuse to decide on a degenerate sample
#: (:class:`udl.engine.stats.DegenerateSampleError`: instances that are copies of each other — the
#: independence check of :mod:`udl.engine.independence` — or a decision statistic with zero spread
#: over the instances, e.g. two estimators that coincide exactly); under a mutant such an ERROR is
#: a kill for every claim, whatever it declares.
GUARD_ERRORS = ("DegenerateSampleError",)


def _guard_error(error: str) -> bool:
    """Whether ``error`` (a claim's error line: ``Name: …``, or ``decide: Name: …`` when decide
    raised) comes from one of :data:`GUARD_ERRORS`."""
    text = error.removeprefix("decide: ")
    return any(text.startswith(f"{name}:") for name in GUARD_ERRORS)


def is_kill(baseline: str, outcome: str, detects_errors: bool, error: str = "") -> bool:
    """Whether a claim kills a mutant: it does not FAIL (or raise) unmutated, and FAILS under the
    mutant — or raises, when it declares errors as the failure it detects, or when the error is one
    of the engine's guards (:data:`GUARD_ERRORS`)."""
    if baseline in _BROKEN:
        return False
    return outcome == "FAIL" or (outcome == "ERROR" and (detects_errors or _guard_error(error)))


def expected_outcome(baseline: str, reached: bool, detects_errors: bool) -> str:
    """What a claim with teeth gives under a mutant: FAIL (or ERROR, for a claim that detects
    errors) when the bug reaches its table, its baseline outcome when it does not."""
    if baseline in _BROKEN or not reached:
        return baseline
    return "FAIL" if not detects_errors else "FAIL or ERROR"


def _sentence(cid: str, mutant: str, baseline: str, outcome: str, reached: bool, expected: str,
              statistic: float, error: str, detects_errors: bool) -> str:
    """One sentence for a cell whose outcome is not the expected one (empty otherwise)."""
    if outcome == expected or (expected == "FAIL or ERROR" and outcome in ("FAIL", "ERROR")):
        return ""
    if baseline in _BROKEN:
        return (f"{cid} does not PASS unmutated ({baseline}), so its {outcome} under {mutant} says nothing "
                "about the bug.")
    if not reached:
        return (f"{cid} gives {outcome} under {mutant} with an unchanged table (baseline {baseline}): the Holm "
                "adjustment across the run, not the bug, moved it.")
    stat = "" if statistic != statistic else f" (statistic {statistic:.3g})"
    if outcome == "PASS":
        return (f"{cid} still PASSES under {mutant}{stat}: the bug changes its table but not its decision, so "
                "the claim is blind to it at this profile.")
    if outcome == "INCONCLUSIVE":
        return (f"{cid} is INCONCLUSIVE under {mutant}{stat}: the bug weakens its evidence but does not refute "
                "it.")
    if outcome == "ERROR" and _guard_error(error):
        return (f"{cid} ends in ERROR under {mutant}: the engine refuses to decide on a degenerate sample "
                f"({error}) — a kill by the engine's guard, not by the claim's decision rule.")
    if outcome == "ERROR" and not detects_errors:
        return (f"{cid} raised under {mutant} ({error}); not a kill: the claim does not declare an error as "
                "the failure it detects.")
    return f"{cid} gives {outcome} under {mutant}, expected {expected}."


#: Longest error text kept per cell (the first line of the error, cut here): the full traceback
#: is one `udl verify --claims ID` away, and the matrix stays readable.
ERROR_CHARS = 200


def _shorten(text: str) -> str:
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS - 1] + "…"


def _reached(table, baseline_table) -> bool:
    """Whether the mutant changed what the claim computed (tables compared exactly)."""
    if len(table) == 0 or len(baseline_table) == 0:
        return len(table) != len(baseline_table)
    return not table.reset_index(drop=True).equals(baseline_table.reset_index(drop=True))


def _number(verdict, name: str) -> float:
    value = getattr(verdict, name, None) if verdict is not None else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def kill_matrix(claims: dict, mutants: list[str], profile: str, seed: int, ctx, *, executor=None, cache=None,
                log=None) -> KillMatrix:
    """Decide every claim unmutated and under every mutant (no controls).

    Parameters
    ----------
    claims : dict
        ``{id: claim}`` (e.g. :func:`udl.engine.discovery.discover`).
    mutants : list of str
        Names of :data:`udl.engine.mutants.MUTANTS`.
    profile, seed, ctx, executor, cache
        As for :func:`udl.engine.runner.run` (``ctx.mutant`` is set per mutant; mutated cells
        bypass the cache).
    log : callable, optional
        Called with one line of progress per run (the baseline, then each mutant).

    Returns
    -------
    KillMatrix
    """
    from udl.engine.mutants import get as get_mutant
    from udl.engine.runner import run

    log = log or (lambda line: None)
    chosen = [get_mutant(name) for name in mutants]
    start = time.perf_counter()
    base = run(claims, profile, seed, replace(ctx, mutant=None), executor=executor, controls=False,
               progress=False, cache=cache)
    baseline = {cid: r.outcome for cid, r in base.claims.items()}
    log(f"baseline: {', '.join(f'{cid} {o}' for cid, o in baseline.items())} ({time.perf_counter() - start:.0f}s)")
    matrix = KillMatrix(profile, int(seed), str(ctx.device), str(ctx.dtype).removeprefix("torch."),
                        list(base.claims), [m.name for m in chosen], baseline)
    for i, mutant in enumerate(chosen, 1):
        start = time.perf_counter()
        result = run(claims, profile, seed, replace(ctx, mutant=mutant.name), executor=executor, controls=False,
                     progress=False, cache=cache)
        for cid, r in result.claims.items():
            detects = bool(getattr(r.claim, "detects_errors", False))
            reached = _reached(r.table, base.claims[cid].table)
            expected = expected_outcome(baseline[cid], reached, detects)
            statistic = _number(r.verdict, "statistic")
            error = _shorten((r.error or "").splitlines()[0]) if r.error else ""
            matrix.cells.append(Cell(
                mutant=mutant.name, area=mutant.area, claim=cid, baseline=baseline[cid], outcome=r.outcome,
                reached=reached, expected=expected, killed=is_kill(baseline[cid], r.outcome, detects, error),
                statistic=statistic, p_value=_number(r.verdict, "p_value"), seconds=r.seconds, error=error,
                sentence=_sentence(cid, mutant.name, baseline[cid], r.outcome, reached, expected, statistic, error,
                                   detects)))
        killers = matrix.killers(mutant.name)
        verdict = f"killed by {', '.join(killers)}" if killers else "SURVIVED"
        log(f"[{i}/{len(chosen)}] {mutant.name} ({mutant.area}): {verdict} ({time.perf_counter() - start:.0f}s)")
    return matrix


# --------------------------------------------------------------------------- files
def _matrix_frame(matrix: KillMatrix):
    import pandas as pd

    rows = []
    for cid in matrix.claims:
        row = {"claim": cid, "baseline": matrix.baseline[cid]}
        row.update({c.mutant: c.outcome for c in matrix.cells if c.claim == cid})
        rows.append(row)
    return pd.DataFrame(rows, columns=["claim", "baseline", *matrix.mutants])


def _cells_frame(matrix: KillMatrix):
    import pandas as pd

    columns = list(Cell.__dataclass_fields__)
    return pd.DataFrame([[getattr(c, k) for k in columns] for c in matrix.cells], columns=columns)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(matrix: KillMatrix) -> str:
    """``kill-matrix.md``: the matrix, the summary per mutant, the sentences and the catalogue."""
    from udl.engine.mutants import get as get_mutant

    killed = len(matrix.mutants) - len(matrix.survivors)
    lines = [
        "# Kill matrix", "",
        f"Profile {matrix.profile}, seed {matrix.seed}, {matrix.device}, {matrix.dtype}: "
        f"{len(matrix.claims)} claims × {len(matrix.mutants)} mutants. **{killed} of {len(matrix.mutants)} "
        "mutants killed.**", "",
        "A cell is the claim's outcome under the mutant; a bold outcome is a kill (**FAIL**, or **ERROR** from "
        "a claim that detects errors or from the engine's degenerate-sample guard); `·` marks a cell whose "
        "table equals the unmutated one (the bug does not reach the claim).", "",
    ]
    index = {(c.claim, c.mutant): c for c in matrix.cells}
    lines.append("| claim | baseline | " + " | ".join(matrix.mutants) + " |")
    lines.append("|---|---|" + "---|" * len(matrix.mutants))
    for cid in matrix.claims:
        cells = []
        for name in matrix.mutants:
            c = index[(cid, name)]
            text = f"**{c.outcome}**" if c.killed else c.outcome
            cells.append(text + ("" if c.reached else " ·"))
        lines.append(f"| {cid} | {matrix.baseline[cid]} | " + " | ".join(cells) + " |")
    lines += ["", "## Summary", ""]
    for name in matrix.mutants:
        killers = matrix.killers(name)
        reached = [c.claim for c in matrix.cells if c.mutant == name and c.reached]
        if killers:
            lines.append(f"- `{name}`: killed by {', '.join(killers)}.")
        else:
            where = f"reaches {', '.join(reached)}" if reached else "reaches no claim"
            lines.append(f"- `{name}`: **survives** ({where}).")
    notes = [c.sentence for c in matrix.cells if c.sentence]
    if notes:
        lines += ["", "## Cells whose outcome is not the expected one", ""]
        lines += [f"- {_md_escape(s)}" for s in notes]
    lines += ["", "## Mutants", "", "| mutant | area | bug | code |", "|---|---|---|---|"]
    for name in matrix.mutants:
        m = get_mutant(name)
        lines.append(f"| `{m.name}` | {m.area} | {_md_escape(m.bug)} | `{_md_escape(m.code)}` |")
    return "\n".join(lines) + "\n"


def check_out(out: str | Path) -> Path:
    """Check that the kill matrix may be written to ``out`` (new, empty, or an earlier kill matrix).

    Raises
    ------
    udl.engine.files.OutputPathError
        A file or link; a directory holding anything ``udl mutate`` did not write; not writable.
    """
    from udl.engine.files import check_output_directory

    return check_output_directory(out, MATRIX_FILES)


def write_matrix(matrix: KillMatrix, out: str | Path) -> Path:
    """Write the three files into ``out`` atomically: a staging directory beside it, swapped into place
    (an earlier kill matrix there is replaced only once the new one is complete)."""

    from udl.engine.files import write_directory

    target = check_out(out)
    return write_directory(target, {MATRIX_CSV: _matrix_frame(matrix).to_csv(index=False, lineterminator="\n"),
                                    CELLS_CSV: _cells_frame(matrix).to_csv(index=False, lineterminator="\n"),
                                    MATRIX_MD: to_markdown(matrix)}, MATRIX_FILES)


# --------------------------------------------------------------------------- command line
def select_mutants(spec: str | None) -> list[str]:
    """The mutants named by ``--mutants`` (a comma list), or every mutant in catalogue order
    (by area, then name). Raises :class:`UsageError` for an empty or unknown name."""
    from udl.engine.mutants import AREAS, MUTANTS

    if spec is None:
        return sorted(MUTANTS, key=lambda n: (AREAS.index(MUTANTS[n].area), n))
    names = [t.strip() for t in spec.split(",")]
    if any(not n for n in names):
        raise UsageError(f"{PROG}: error: argument --mutants: empty name in {spec!r}")
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        raise UsageError(f"{PROG}: error: argument --mutants: unknown mutant {unknown[0]!r} "
                         f"(known: {', '.join(sorted(MUTANTS))})")
    return list(dict.fromkeys(names))


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``udl mutate``."""
    parser.epilog = ("exit status: 0 every mutant is killed by at least one claim; 1 some mutant survives; 2 bad "
                     "input (nothing computed or written); 130 interrupted (nothing written)")
    add_claim_options(parser, default_profile=DEFAULT_PROFILE,
                      profile_help="instance counts and cells: quick (default), ci, paper")
    parser.add_argument("--mutants", metavar="NAMES", default=None,
                        help="comma list of mutant names (default every mutant of udl.engine.mutants)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output directory (default runs/mutate-<profile>-seed<seed>); replaced atomically")
    add_executor_options(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``udl mutate`` from parsed arguments; returns the exit status."""
    import torch

    from udl.engine.anatomy import ClaimDefinitionError, Context
    from udl.engine.files import OutputPathError

    device = check_device(args.device, PROG)
    mutants = select_mutants(args.mutants)
    try:
        claims, _ = load_claims(args.claims_package, args.claims, PROG)
    except ClaimDefinitionError as exc:
        print(f"{PROG}: claim definition error: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    if not claims:
        print(f"{PROG}: no claims found in package {args.claims_package!r}", file=sys.stderr)
        return EXIT_NOT_OK
    out = args.out if args.out is not None else f"runs/mutate-{args.profile}-seed{args.seed}"
    try:
        check_out(out)
    except OutputPathError as exc:
        raise UsageError(f"{PROG}: error: argument --out: {exc}") from exc
    executor, cache = executor_and_cache(args, PROG)
    ctx = Context(device=device, dtype=getattr(torch, args.dtype))

    def log(line: str) -> None:
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)

    try:
        with executor:
            connect(executor, PROG)
            matrix = kill_matrix(claims, mutants, args.profile, args.seed, ctx, executor=executor, cache=cache,
                                 log=log)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    write_matrix(matrix, out)
    killed = len(matrix.mutants) - len(matrix.survivors)
    print(f"{killed} of {len(matrix.mutants)} mutants killed"
          + (f"; surviving: {', '.join(matrix.survivors)}" if matrix.survivors else ""))
    print(f"kill matrix: {Path(out) / MATRIX_MD}")
    return EXIT_OK if matrix.ok else EXIT_NOT_OK
