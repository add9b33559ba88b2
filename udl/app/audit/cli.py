"""``udl audit``: an encoder's audit (:func:`~udl.app.audit.check.check_encoder`) or the claims ×
encoders matrix (:func:`~udl.app.audit.matrix.encoder_matrix`) from the command line.

:func:`configure_cli` imports nothing heavy (the ``udl`` parser is built at every start);
:func:`main_cli` loads the engine, the claims and the encoders.
"""
from __future__ import annotations

import argparse
import sys

from udl.app.audit.encoders import SHIPPED
from udl.app.options import (AUDIT_PROFILE, EXIT_INTERRUPTED, EXIT_NOT_OK, EXIT_OK, UsageError, add_claim_options,
                             add_executor_options, check_device, executor_and_cache, expect_fail_arg, load_claims)

__all__ = ["configure_cli", "main_cli"]

PROG = "udl audit"


def _usage(message: str) -> UsageError:
    return UsageError(f"{PROG}: error: {message}")


def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``udl audit``."""
    parser.epilog = (
        "exit status: 0 nothing unexpected (every claim that ran PASSES, or does not hold as expected: XFAIL; "
        "NOT APPLICABLE claims do not count); 1 some claim FAILS, is INCONCLUSIVE or ERRORS, or an expected "
        "failure PASSES (XPASS is strict: remove the stale expectation); 2 bad input (encoder spec, claim id, "
        "--expect-fail syntax, output directory; nothing computed); 130 interrupted. "
        "--matrix audits the shipped encoders (or the --with-encoders ones) and exits 0 unless a cell is ERROR "
        "(expected FAILs are its point).")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--encoder", metavar="SPEC", default=None,
                        help="the encoder to audit: package.module:factory, path/to/file.py:factory, or a "
                             f"shipped name ({', '.join(SHIPPED)})")
    target.add_argument("--matrix", action="store_true",
                        help="audit the shipped encoders (ista, fista, hard-threshold, lambda-decay, learned-step, "
                             "and the controls no-threshold, unscaled-threshold declared as ista) and write the "
                             "claims x encoders matrix")
    parser.add_argument("--with-encoders", metavar="SPEC", action="append", default=None, dest="matrix_encoders",
                        help="with --matrix: the columns (repeatable; ista is always the reference)")
    add_claim_options(parser, default_profile=AUDIT_PROFILE,
                      profile_help="claim sizes (default quick: about a minute per encoder on a CPU core)")
    parser.add_argument("--expect-fail", metavar="ID=REASON", type=expect_fail_arg, action="append", default=[],
                        help="a claim (or theorem) expected to fail, with the reason; repeatable")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="write the results there: a run directory plus audit.json/csv/md (audit), or "
                             "matrix.csv, cells.csv, matrix.md (--matrix); replaced atomically")
    parser.add_argument("--controls", action="store_true",
                        help="also run the claims' negative controls (each must FAIL)")
    add_executor_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _load_for_cli(spec: str, device: str, dtype):
    from udl.app.audit.encoders import EncoderInterfaceError, EncoderSpecError, load_encoder, validate_encoder

    try:
        encoder = load_encoder(spec)
        validate_encoder(encoder, device=device, dtype=dtype)
    except (EncoderSpecError, EncoderInterfaceError) as exc:
        raise _usage(f"argument --encoder: {exc}") from None
    return encoder


def _claims_and_expectations(args: argparse.Namespace) -> tuple[dict, dict]:
    """The chosen claims and ``{claim id: reason}`` of ``--expect-fail``; bad input raises UsageError."""
    from udl.app.audit.check import expectations
    from udl.engine.anatomy import ClaimDefinitionError

    try:
        chosen, available = load_claims(args.claims_package, args.claims, PROG)
    except ClaimDefinitionError as exc:
        raise _usage(f"argument --claims-package: {str(exc).splitlines()[0]}") from None
    try:
        expected = expectations(dict(args.expect_fail), available)
    except ValueError as exc:
        raise _usage(f"argument --expect-fail: {exc}") from None
    if not chosen:
        raise _usage(f"argument --claims-package: no claims found in {args.claims_package!r}")
    return chosen, expected


def _check_out(args: argparse.Namespace) -> None:
    from udl.app.audit.matrix import check_matrix_target
    from udl.engine import results

    try:
        if args.matrix:
            check_matrix_target(args.out)
            replaces = None
        else:
            replaces = results.inspect_target(args.out).replaces
    except ValueError as exc:
        raise _usage(f"argument --out: {exc}") from None
    if replaces:
        print(f"{PROG}: --out {args.out}: {replaces} will be replaced", file=sys.stderr)


def _matrix_encoders(args: argparse.Namespace, device: str, dtype) -> dict:
    from udl.app.audit.encoders import encoder_name, shipped_encoders, validate_encoder

    if not args.matrix_encoders:
        encoders = shipped_encoders()
        for encoder in encoders.values():
            validate_encoder(encoder, device=device, dtype=dtype)
        return encoders
    encoders = {}
    for spec in args.matrix_encoders:
        encoder = _load_for_cli(spec, device, dtype)
        encoders[encoder_name(encoder)] = encoder
    return encoders


def _print_matrix(cells, args: argparse.Namespace) -> int:
    from udl.app.audit.matrix import matrix_grid, matrix_notes, short_outcome, write_matrix
    from udl.app.audit.results import AUDIT_OUTCOMES

    grid = matrix_grid(cells)
    print(grid.map(short_outcome).to_string())
    for note in matrix_notes(cells):
        print(note)
    counts = cells["outcome"].value_counts()
    print(f"matrix: {grid.shape[0]} claims x {grid.shape[1]} encoders (profile {args.profile}, seed {args.seed}); "
          + ", ".join(f"{int(counts.get(o, 0))} {o}" for o in AUDIT_OUTCOMES if counts.get(o, 0))
          + f"; {int(cells['differs'].sum())} cells differ from {grid.columns[0]}")
    if args.out is not None:
        note = ("The controls no-threshold and unscaled-threshold are audited declared as ista (their "
                "slip is invisible to a capability declaration)." if not args.matrix_encoders else None)
        write_matrix(cells, args.out, profile=args.profile, seed=args.seed, note=note)
        print(f"matrix: {args.out}")
    return EXIT_NOT_OK if (cells["outcome"] == "ERROR").any() else EXIT_OK


def main_cli(args: argparse.Namespace) -> int:
    """Run ``udl audit``; returns the exit status (bad input raises :class:`udl.app.options.UsageError`)."""
    import torch

    from udl.app.audit.check import check_encoder
    from udl.app.audit.matrix import encoder_matrix
    from udl.app.audit.results import write_audit
    from udl.engine.runner import RunInterrupted

    device = check_device(args.device, PROG)
    dtype = getattr(torch, args.dtype)
    if args.matrix_encoders and not args.matrix:
        raise _usage("argument --with-encoders: only with --matrix")
    chosen, expected = _claims_and_expectations(args)
    if args.out is not None:
        _check_out(args)
    if args.matrix:
        if args.expect_fail:
            raise _usage("argument --expect-fail: not used with --matrix")
        encoders = _matrix_encoders(args, device, dtype)
    else:
        encoder = _load_for_cli(args.encoder, device, dtype)
    executor, cache = executor_and_cache(args, PROG)
    try:
        with executor:
            if args.matrix:
                def report(audit):
                    print(f"{audit.summary()}", file=sys.stderr, flush=True)

                cells = encoder_matrix(encoders, profile=args.profile, claims=list(chosen.values()), seed=args.seed,
                                       device=device, dtype=dtype, executor=executor, cache=cache,
                                       progress=not args.no_progress, on_audit=report)
            else:
                audit = check_encoder(encoder, profile=args.profile, claims=list(chosen.values()), seed=args.seed,
                                      expected_failures=expected, device=device, dtype=dtype, executor=executor,
                                      controls=args.controls, cache=cache, progress=not args.no_progress,
                                      validate=False)
    except KeyboardInterrupt as exc:
        detail = str(exc) if isinstance(exc, RunInterrupted) else "interrupted"
        print(f"{PROG}: {detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.matrix:
        return _print_matrix(cells, args)
    print(audit.format_table())
    print(audit.summary())
    if args.out is not None:
        write_audit(audit, args.out)
        print(f"results: {args.out}")
    return EXIT_OK if audit.ok else EXIT_NOT_OK
