"""A six-cell ordering claim whose cells can nap, crash their worker, be interrupted or fail.

Each switch is an instance attribute (default off) naming a directory for marker files, so
that "the first time" is remembered across processes and runs:

- ``nap`` (seconds): every cell sleeps this long (to keep a cell in flight).
- ``crash_dir``: cell ``crash_cell`` kills its own process (``os._exit``) the first time
  (``crash_always``: every time). Never set it under the serial executor.
- ``interrupt_dir``: cell ``interrupt_cell`` raises KeyboardInterrupt the first time.
- ``fail_dir``: cell ``fail_cell`` raises RuntimeError the first time.

The switches act on the claim's cells only (the control's cells always compute).

``CALLS`` records (cell, control) of every simulate() in this process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from udl.engine import stats
from udl.engine.harness import Claim

CALLS: list[tuple[int, bool]] = []
_PROFILE = {"cells": [{"k": k} for k in range(6)], "n_instances": 4}


def _first_time(directory: str, name: str) -> bool:
    marker = Path(directory) / name
    if marker.exists():
        return False
    marker.write_text("done")
    return True


class Sleepy(Claim):
    id = "E.1"
    theorem = "E.1"
    title = "positive draws (executor toy)"
    statement = "Draws from N(3, 1) are positive (sign test); the control draws from N(-3, 1)."
    kind = "ordering"
    effect = "P(x > 0) ≈ 0.999 vs 0.5; 24 instances give power ≈ 1."
    regime = "toy: 6 cells × 4 instances."
    control = "draws from N(-3, 1): must FAIL."
    profiles = {"quick": _PROFILE, "ci": _PROFILE, "paper": _PROFILE}

    nap = 0.0
    crash_dir: str | None = None
    crash_cell = 1
    crash_always = False
    interrupt_dir: str | None = None
    interrupt_cell = 3
    fail_dir: str | None = None
    fail_cell = 2

    def simulate(self, cell, seeds, ctx):
        k = cell["k"]
        CALLS.append((k, bool(ctx.control)))
        if self.nap:
            time.sleep(self.nap)
        if not ctx.control:  # the switches act on the claim's cells, never on the control's
            if self.crash_dir and k == self.crash_cell and (
                    self.crash_always or _first_time(self.crash_dir, f"{self.id}-{k}-crash")):
                os._exit(13)
            if self.interrupt_dir and k == self.interrupt_cell and _first_time(self.interrupt_dir,
                                                                               f"{self.id}-{k}-interrupt"):
                raise KeyboardInterrupt
            if self.fail_dir and k == self.fail_cell and _first_time(self.fail_dir, f"{self.id}-{k}-fail"):
                raise RuntimeError(f"deliberate first-time failure in cell {k}")
        mean = -3.0 if ctx.control else 3.0
        x = [np.random.default_rng(seed).normal(mean, 1.0) for seed in seeds]
        return pd.DataFrame({"instance": np.arange(len(seeds)), "x": x})

    def decide(self, table):
        return stats.sign_test(table["x"], alpha=self.alpha)
