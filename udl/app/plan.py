"""``udl verify --plan``: what a run would compute, and roughly how long it would take — without
computing it.

Per claim: its cells (parameters), instances per cell, cell tasks (a cell and its negative
control), the work the cells declare and an estimated time on ``--device``
(:mod:`udl.engine.cost`: a simple model of each cell's arithmetic, or the claim's own
``cost(cell)``, divided by a few seconds' measurement of this machine's matrix-product rate).
The time is for one worker; with ``--executor processes`` or ``dask`` the cells run side by
side, at best ``--workers`` times faster. Cells already in the cache take no time (not
counted here).
"""

from __future__ import annotations

import argparse
import sys

from udl.app.options import EXIT_OK

__all__ = ["format_seconds", "plan_lines", "print_plan"]


def format_seconds(seconds: float | None) -> str:
    """``12 s``, ``3.4 min``, ``2.1 h`` (or ``?`` when unknown)."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _gflop(flops: float | None) -> str:
    return "?" if flops is None else f"{flops / 1e9:.3g}"


def plan_lines(claims: dict, profile: str, controls: bool, rate: float) -> list[str]:
    """The plan as lines of text: one per claim, then one per cell, then the total.

    Parameters
    ----------
    claims : dict
        ``{id: claim}``.
    profile : str
    controls : bool
        Whether the negative controls run (each cell twice).
    rate : float
        Flops per second (:func:`udl.engine.cost.matmul_rate`).
    """
    from udl.engine.cost import claim_costs

    lines = []
    total_flops, total_tasks, unknown = 0.0, 0, []
    for cid, claim in claims.items():
        cells = claim_costs(claim, profile, controls)
        known = [c.flops for c in cells if c.flops is not None]
        flops = sum(known) if len(known) == len(cells) else None
        tasks = sum(c.tasks for c in cells)
        total_tasks += tasks
        total_flops += sum(known)
        if flops is None:
            unknown.append(cid)
        seconds = None if flops is None else flops / rate
        lines.append(f"{cid}  {len(cells)} cell{'s' if len(cells) != 1 else ''} x {claim.n_instances(profile)} "
                     f"instances, {tasks} cell tasks, {_gflop(flops)} GFLOP, ~{format_seconds(seconds)}  "
                     f"{claim.title}")
        for c in cells:
            lines.append(f"    cell {c.index} {c.cell}: {c.instances} instances, {_gflop(c.flops)} GFLOP, "
                         f"~{format_seconds(None if c.flops is None else c.flops / rate)}")
    tail = f" (without {', '.join(unknown)}: no work declared)" if unknown else ""
    lines.append(f"total: {len(claims)} claims, {total_tasks} cell tasks, {_gflop(total_flops)} GFLOP, "
                 f"~{format_seconds(total_flops / rate)} on one worker{tail}")
    return lines


def print_plan(claims: dict, args: argparse.Namespace, device: str) -> int:
    """Print the plan of ``udl verify`` with these arguments; computes nothing, writes nothing."""
    import torch

    from udl.engine.cost import RATE_SECONDS, matmul_rate

    print(f"udl verify --plan: measuring the matrix-product rate on {device} ({args.dtype}, "
          f"~{RATE_SECONDS:.0f} s) …", file=sys.stderr, flush=True)
    rate = matmul_rate(device, getattr(torch, args.dtype))
    print(f"plan: profile {args.profile}, seed {args.seed}, {device}, {args.dtype}, "
          f"controls {'off' if args.no_controls else 'on'}; measured {rate / 1e9:.3g} GFLOP/s per cell "
          "(rough: real cells are slower than the model; cached cells take no time)")
    for line in plan_lines(claims, args.profile, not args.no_controls, rate):
        print(line)
    workers = getattr(args, "workers", None)
    if workers and workers > 1:
        print(f"with --workers {workers}: at best ~{workers}x faster (cells run side by side)")
    return EXIT_OK
