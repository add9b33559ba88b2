"""The benchmark runs (tiny sizes) so that it cannot rot; its figures are not asserted."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gradients.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gradients", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_quick_runs_and_reports(bench, capsys):
    res = bench.main(["--quick"])
    out = capsys.readouterr().out
    for word in ("GFLOP/s", "matmul", "FLOP count", "naive loop", "speed-up", "dec", "ae-lasso", "ae-ls"):
        assert word in out
    assert set(res["kinds"]) == {"dec", "ae-lasso", "ae-ls"}
    for r in res["kinds"].values():
        assert r["time"] > 0 and r["naive_time"] > 0 and r["gflops"] > 0 and r["frac_matmul"] > 0
        # the batched gradients agree with the naive per-instance autograd (float32)
        assert r["max_rel_diff"] < 1e-4
    assert res["peak_flops"] > 0 and res["all"]["time"] > 0


def test_flop_count_convention(bench):
    p, n, T = 150, 1000, 100
    assert bench.flops_per_instance("dec", p, n, T) == 2 * p * p * n * T
    assert bench.flops_per_instance("ae-lasso", p, n, T) == bench.flops_per_instance("ae-ls", p, n, T) == 6 * p * p * n * T


def test_bad_flag_is_rejected(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch", "0"])
