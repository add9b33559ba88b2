"""``udl calibrate``: run a profile over many root seeds and measure how often each claim PASSES and
how often its negative control FAILS.

A claim's design promises a false-FAIL rate of at most α and a power of at least 1 − β at its
declared effect; one run (one root seed) shows one draw of that. Calibration runs the same profile
once per root seed (the runner, the executor and the cell cache are the ones of ``udl verify``), and
reports, per claim:

- the **PASS rate** (the final outcome: after the run's Holm adjustment; a claim reported only at
  this profile is INCONCLUSIVE by design, so its *raw* rate — the verdict's own outcome — is given
  too), with its Clopper–Pearson interval;
- the **control FAIL rate**, with its Clopper–Pearson interval;
- the counts of every outcome, and the mean seconds per run;
- **flags**: a PASS rate whose upper bound is below 1 − β (less power than designed), a FAIL rate
  whose lower bound is above α (false fails beyond the design), a control FAIL rate whose upper
  bound is below 1 − β (a control that does not reliably fail), an ERROR in any run.

Seeds: 0 is the reference run's root seed and 1–100 are reserved for calibration, so a seed list
that contains 0 is refused unless ``--allow-reference-seed`` says otherwise (the reference run would
then count as a calibration draw).

Written to ``--out`` (default ``reports/calibration``), atomically (a staging directory swapped into
place; only a directory holding nothing but an earlier calibration is replaced):
``calibration.json`` (settings, per-claim summary, per-seed outcomes and statistics),
``calibration.csv`` (one row per claim) and ``calibration.md``.

Exit status: 0 calibrated (whatever the rates: a measurement, not a check); 1 a claim module is
broken or no claim was found; 2 bad input (seeds, profile, output directory), nothing computed or
written; 130 interrupted (finished cells are cached; nothing written).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from udl.app.options import (DEFAULT_PACKAGE, DTYPES, EXIT_INTERRUPTED, EXIT_NOT_OK, EXIT_OK, PROFILES, UsageError,
                             add_executor_options, check_device, connect, executor_and_cache, load_claims)

__all__ = ["PROG", "HELP", "DEFAULT_OUT", "DEFAULT_PROFILE", "CALIBRATION_ALPHA", "CALIBRATION_FILES", "FORMAT",
           "parse_seeds", "summarize", "to_csv", "to_markdown", "write_calibration", "configure", "main"]

PROG = "udl calibrate"
HELP = "run a profile over many root seeds: each claim's PASS rate and its control's FAIL rate"
DEFAULT_OUT = "reports/calibration"
#: Calibration measures the rates of the reference report's profile by default.
DEFAULT_PROFILE = "ci"
#: Each end of a rate's Clopper–Pearson interval is a one-sided 97.5 % bound (a central 95 % interval).
CALIBRATION_ALPHA = 0.025
#: The root seed of the reference run: not a calibration draw unless explicitly allowed.
REFERENCE_SEED = 0
FORMAT = "udl-calibration/1"
CALIBRATION_JSON, CALIBRATION_CSV, CALIBRATION_MD = "calibration.json", "calibration.csv", "calibration.md"
#: Everything ``udl calibrate`` writes into its output directory (the layout of
#: :func:`udl.engine.files.check_replaceable`): only such a directory is ever replaced.
CALIBRATION_FILES = {CALIBRATION_JSON: None, CALIBRATION_CSV: None, CALIBRATION_MD: None}
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_OUTCOMES = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")


# --------------------------------------------------------------------------- seeds
def parse_seeds(text: str, *, allow_reference: bool = False) -> list[int]:
    """Root seeds from ``1-20`` or ``1,3,5-7`` (ascending ranges, no repeats).

    Parameters
    ----------
    text : str
    allow_reference : bool
        Accept the reference seed 0.

    Returns
    -------
    list of int
        In the order given.

    Raises
    ------
    ValueError
        Malformed text, a descending range, a repeated seed, or 0 without ``allow_reference``;
        the message names the bad part and what is allowed.
    """
    seeds: list[int] = []
    for part in str(text).split(","):
        match = _RANGE.match(part)
        if not match:
            raise ValueError(f"invalid seeds {text!r}: {part.strip()!r} is not a seed or a range "
                             "(allowed: integers >= 1 and ranges such as 1-20, comma-separated)")
        first, last = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if last < first:
            raise ValueError(f"invalid seeds {text!r}: range {part.strip()!r} runs backwards")
        seeds += range(first, last + 1)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"invalid seeds {text!r}: seed {repeated[0]} is given twice")
    if REFERENCE_SEED in seeds and not allow_reference:
        raise ValueError(f"seed {REFERENCE_SEED} is the reference run's root seed, not a calibration draw "
                         "(seeds 1-100 are reserved for calibration); pass --allow-reference-seed to include it")
    return seeds


# --------------------------------------------------------------------------- the summary
def _rate(successes: int, n: int) -> dict:
    from udl.engine.stats import clopper_pearson

    lo, hi = clopper_pearson(successes, n, CALIBRATION_ALPHA)
    return {"successes": successes, "runs": n, "rate": successes / n, "interval": [lo, hi]}


def _seed_record(result) -> dict:
    verdict, control = result.verdict, result.control_verdict
    return {"outcome": result.outcome, "verdict_outcome": None if verdict is None else verdict.outcome,
            "statistic": None if verdict is None else verdict.statistic, "p_raw": result.p_raw,
            "p_adjusted": result.p_adjusted, "error": result.error, "control_outcome": result.control_outcome,
            "control_statistic": None if control is None else control.statistic,
            "control_error": result.control_error, "seconds": result.seconds + result.control_seconds}


def _flags(alpha: float, beta: float, decided: bool, final: dict, fails: dict, control: dict | None,
           errors: int) -> list[str]:
    """What the rates say against the claim's design (a reported-only claim has no power to miss)."""
    flags = []
    if decided and final["interval"][1] < 1 - beta:
        flags.append(f"PASS rate below the designed power 1 − β = {1 - beta:g}")
    if fails["interval"][0] > alpha:
        flags.append(f"FAIL rate above α = {alpha:g}")
    if control is not None and control["interval"][1] < 1 - beta:
        flags.append(f"control FAIL rate below 1 − β = {1 - beta:g}")
    if errors:
        flags.append(f"ERROR in {errors} run(s) (claim or control)")
    return flags


def summarize(runs: dict, *, profile: str, seeds: list[int], wall_seconds: float, settings: dict) -> dict:
    """The calibration document from one :class:`~udl.engine.runner.RunResult` per seed.

    Parameters
    ----------
    runs : dict
        ``{seed: RunResult}``, every run over the same claims at ``profile``.
    profile : str
    seeds : list of int
    wall_seconds : float
        Wall time of the whole calibration.
    settings : dict
        Device, dtype, controls, claims package, executor (recorded as given).

    Returns
    -------
    dict
        ``format``, ``settings``, ``claims`` (per claim: evidence, decided, α, β, ``outcomes`` and
        ``verdict_outcomes`` counts, ``pass`` and ``raw_pass`` and ``fail`` rates, ``control_fail``
        rate or None, ``control_outcomes``, ``mean_seconds``, ``flags``), ``seeds`` (per seed: wall
        seconds and per-claim records) and ``timing``.
    """
    from udl.engine.stats import to_builtin

    first = runs[seeds[0]]
    claims = {}
    for cid, result in first.claims.items():
        per_seed = [runs[s].claims[cid] for s in seeds]
        n = len(per_seed)
        outcomes = {o: sum(r.outcome == o for r in per_seed) for o in _OUTCOMES}
        verdicts = {o: sum((r.verdict.outcome if r.verdict else "ERROR") == o for r in per_seed) for o in _OUTCOMES}
        controls = [r.control_outcome for r in per_seed if r.controls_run]
        control = _rate(sum(c == "FAIL" for c in controls), len(controls)) if controls else None
        final, fails = _rate(outcomes["PASS"], n), _rate(outcomes["FAIL"], n)
        claim = result.claim
        claims[cid] = {
            "title": claim.title, "theorem": claim.theorem, "evidence": result.evidence, "decided": result.decided,
            "alpha": float(claim.alpha), "beta": float(claim.beta), "outcomes": outcomes,
            "verdict_outcomes": verdicts, "pass": final, "raw_pass": _rate(verdicts["PASS"], n), "fail": fails,
            "control_fail": control,
            "control_outcomes": {o: controls.count(o) for o in _OUTCOMES} if controls else None,
            "mean_seconds": sum(r.seconds + r.control_seconds for r in per_seed) / n,
            "flags": _flags(claim.alpha, claim.beta, result.decided, final, fails, control,
                            outcomes["ERROR"] + controls.count("ERROR")),
        }
    return to_builtin({
        "format": FORMAT,
        "settings": {"profile": profile, "seeds": list(seeds), "claims": list(first.claims), **settings,
                     "interval": f"Clopper–Pearson, each end a one-sided {1 - CALIBRATION_ALPHA:.1%} bound"},
        "claims": claims,
        "seeds": {str(s): {"wall_seconds": runs[s].wall_seconds,
                           "claims": {cid: _seed_record(r) for cid, r in runs[s].claims.items()}} for s in seeds},
        "timing": {"wall_seconds": wall_seconds, "runs": len(seeds),
                   "mean_run_seconds": sum(runs[s].wall_seconds for s in seeds) / len(seeds)},
    })


# --------------------------------------------------------------------------- the files
def _pct(rate: dict | None) -> str:
    from udl.engine.formatting import fmt_number

    if rate is None:
        return "–"
    lo, hi = rate["interval"]
    return (f"{rate['successes']}/{rate['runs']} = {fmt_number(rate['rate'], 3)} "
            f"[{fmt_number(lo, 3)}, {fmt_number(hi, 3)}]")


def to_csv(document: dict) -> str:
    """One row per claim: rates with their intervals, outcome counts, seconds, flags."""
    import pandas as pd

    rows = []
    for cid, c in document["claims"].items():
        control = c["control_fail"] or {}
        rows.append({"claim": cid, "evidence": c["evidence"], "decided": c["decided"], "alpha": c["alpha"],
                     "beta": c["beta"], "runs": c["pass"]["runs"],
                     **{o.lower(): c["outcomes"][o] for o in _OUTCOMES},
                     "pass_rate": c["pass"]["rate"], "pass_lower": c["pass"]["interval"][0],
                     "pass_upper": c["pass"]["interval"][1], "raw_pass_rate": c["raw_pass"]["rate"],
                     "control_fail_rate": control.get("rate"),
                     "control_fail_lower": (control.get("interval") or [None, None])[0],
                     "control_fail_upper": (control.get("interval") or [None, None])[1],
                     "mean_seconds": c["mean_seconds"], "flags": "; ".join(c["flags"])})
    return pd.DataFrame(rows).to_csv(index=False, lineterminator="\n")


def to_markdown(document: dict) -> str:
    """The calibration as a Markdown page: settings, the per-claim table, the flags."""
    from udl.engine.formatting import fmt_number

    s, timing = document["settings"], document["timing"]
    seeds = s["seeds"]
    gaps = "" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ", not contiguous"
    settings = (f"Profile {s['profile']}, {len(seeds)} root seeds ({seeds[0]}–{seeds[-1]}{gaps}), device "
                f"{s.get('device')}, dtype {s.get('dtype')}, controls {s.get('controls')}; wall time "
                f"{fmt_number(timing['wall_seconds'], 4)} s ({fmt_number(timing['mean_run_seconds'], 4)} s per run) "
                f"on {s.get('executor')}.")
    method = (f"Rates are final outcomes (after each run's Holm adjustment); intervals: {s['interval']}. "
              "The raw PASS rate is the verdict's own outcome (before Holm; for a claim reported only at this "
              "profile, the outcome it would have had).")
    header = ("| claim | evidence | PASS rate | raw PASS rate | FAIL / INCONCLUSIVE / ERROR | control FAIL rate "
              "| s per run | flags |")
    lines = ["# udl calibration", "", settings, "", method, "", header, "|---|---|---|---|---|---|---|---|"]
    for cid, c in document["claims"].items():
        o = c["outcomes"]
        evidence = c["evidence"] + ("" if c["decided"] else ", reported only")
        lines.append(f"| {cid} | {evidence} | {_pct(c['pass'])} | {_pct(c['raw_pass'])} | {o['FAIL']} / "
                     f"{o['INCONCLUSIVE']} / {o['ERROR']} | {_pct(c['control_fail'])} | "
                     f"{fmt_number(c['mean_seconds'], 3)} | {'; '.join(c['flags']) or '–'} |")
    flagged = [cid for cid, c in document["claims"].items() if c["flags"]]
    lines += ["", f"Flagged: {', '.join(flagged)}." if flagged else "No claim is flagged.", ""]
    return "\n".join(lines)


def check_out(out: str | Path) -> Path:
    """Check that a calibration may be written to ``out`` (before anything is computed)."""
    from udl.engine.files import check_output_directory

    return check_output_directory(out, CALIBRATION_FILES)


def write_calibration(document: dict, out: str | Path) -> Path:
    """Write calibration.json, .csv and .md into ``out`` atomically: a staging directory beside it,
    swapped into place (an earlier calibration there is replaced only once the new one is complete)."""

    from udl.engine.files import write_directory
    from udl.engine.results import dumps

    target = check_out(out)
    return write_directory(target, {CALIBRATION_CSV: to_csv(document), CALIBRATION_MD: to_markdown(document),
                                    CALIBRATION_JSON: dumps(document)}, CALIBRATION_FILES)


# --------------------------------------------------------------------------- command line
def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``udl calibrate``."""
    parser.epilog = ("exit status: 0 calibrated (a measurement: the rates and flags are in the files); 1 a claim "
                     "module is broken or no claim found; 2 bad input (nothing computed or written); 130 "
                     "interrupted (finished cells are cached: rerun to resume)")
    parser.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE,
                        help=f"the profile to calibrate (default {DEFAULT_PROFILE})")
    parser.add_argument("--seeds", metavar="SEEDS", required=True,
                        help="root seeds, one run each: 1-20, or 1,3,5-7 (0 is the reference run's seed: refused "
                             "unless --allow-reference-seed)")
    parser.add_argument("--allow-reference-seed", action="store_true",
                        help="accept seed 0 (the reference run) among the calibration seeds")
    parser.add_argument("--claims", metavar="IDS", default=None,
                        help="comma list of claim ids or theorem ids; default every claim")
    parser.add_argument("--claims-package", metavar="PACKAGE", default=DEFAULT_PACKAGE,
                        help=f"package (dotted name or directory path) to discover claims in (default "
                             f"{DEFAULT_PACKAGE})")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, default="float64", help="simulation dtype (default float64)")
    parser.add_argument("--no-controls", action="store_true", help="skip the negative controls")
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                        help=f"output directory (default {DEFAULT_OUT}); replaced atomically")
    add_executor_options(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``udl calibrate`` from parsed arguments; returns the exit status."""
    import torch

    from udl.engine.anatomy import ClaimDefinitionError, Context
    from udl.engine.files import OutputPathError
    from udl.engine.runner import run

    try:
        seeds = parse_seeds(args.seeds, allow_reference=args.allow_reference_seed)
    except ValueError as exc:
        raise UsageError(f"{PROG}: error: argument --seeds: {exc}") from None
    device = check_device(args.device, PROG)
    try:
        claims, _ = load_claims(args.claims_package, args.claims, PROG)
    except ClaimDefinitionError as exc:
        print(f"{PROG}: claim definition error: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    if not claims:
        print(f"{PROG}: no claims found in package {args.claims_package!r}", file=sys.stderr)
        return EXIT_NOT_OK
    try:
        check_out(args.out)
    except OutputPathError as exc:
        raise UsageError(f"{PROG}: error: argument --out: {exc}") from exc
    executor, cache = executor_and_cache(args, PROG)
    ctx = Context(device=device, dtype=getattr(torch, args.dtype))
    runs = {}
    start = time.perf_counter()
    try:
        with executor:
            connect(executor, PROG)
            for k, seed in enumerate(seeds, 1):
                runs[seed] = run(claims, args.profile, seed, ctx, executor=executor, controls=not args.no_controls,
                                 progress=False, cache=cache, claims_package=args.claims_package)
                counts = ", ".join(f"{n} {o}" for o in _OUTCOMES
                                   if (n := sum(r.outcome == o for r in runs[seed].claims.values())))
                print(f"{PROG}: seed {seed} ({k}/{len(seeds)}): {counts} ({runs[seed].wall_seconds:.1f} s)",
                      file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        resume = "; finished cells are cached: rerun to resume" if cache is not None else ""
        print(f"{PROG}: interrupted after {len(runs)} of {len(seeds)} seeds; nothing written{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    settings = {"device": device, "dtype": args.dtype, "controls": not args.no_controls,
                "claims_package": args.claims_package, "executor": repr(executor)}
    document = summarize(runs, profile=args.profile, seeds=seeds, wall_seconds=time.perf_counter() - start,
                         settings=settings)
    out = write_calibration(document, args.out)
    flagged = [cid for cid, c in document["claims"].items() if c["flags"]]
    print(f"calibrated {len(document['claims'])} claims over {len(seeds)} seeds in "
          f"{document['timing']['wall_seconds']:.1f} s; flagged: {', '.join(flagged) or 'none'}")
    print(f"calibration: {out / CALIBRATION_MD}")
    return EXIT_OK
