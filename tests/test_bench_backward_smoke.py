"""Smoke test: benchmarks/bench_backward.py runs end to end at tiny sizes (timings are not asserted)."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_backward.py"


@pytest.mark.slow
def test_bench_backward_quick_runs():
    out = subprocess.run([sys.executable, str(BENCH), "--quick", "--threads", "1"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    for section in ("(a) forward+backward", "(b) memory", "(c) gradient-vs-T sweep",
                    "(d) one learning step", "targets:"):
        assert section in out.stdout, out.stdout
    assert "failed" not in out.stdout, out.stdout
