"""Speed of the three gradient estimators, batched, against a naive per-instance autograd loop.

    python benchmarks/bench_gradients.py                 # m=100, p=150, n=1000, T=100, batch 64, float32
    python benchmarks/bench_gradients.py --quick         # tiny sizes, a smoke test (seconds)

For each kind (dec, ae-lasso, ae-ls) it prints the time of one batched ``udl.gradient`` call, the
achieved GFLOP/s, the ratio to this machine's float32 matmul rate measured in the same run (one
large square matmul, same thread count), and the speed-up over a naive loop.

FLOP count (stated in the output too): one ISTA layer is the matmul A z_t with A = I − αDᵀD
(p×p) and z_t (p×n): 2·p²·n; a backward pass through a layer costs two more such products, so
per instance  dec = 2·p²·n·T  (forward only; the closed form is negligible) and
ae-lasso = ae-ls = 3·2·p²·n·T.  Precomputing DᵀD, DᵀX and the soft thresholds are not counted.

The naive baseline is what one writes first: a Python loop over instances, each running a plain
ISTA z ← P_{αλ}(z − α Dᵀ(Dz − x)) and calling autograd (for dec: autograd on the loss with the
code detached). To keep the run short it runs on a subset of the instances (``--naive``, default
8) and its time is scaled to the whole batch; the output says so.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

try:
    import udl
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import udl

KINDS = ("dec", "ae-lasso", "ae-ls")
QUICK = dict(m=8, p=12, n=20, T=5, batch=4, naive=2, repeat=1, matmul=256)


# ------------------------------------------------------------------------------------------
# the naive baseline: small and obvious on purpose
# ------------------------------------------------------------------------------------------

def naive_gradient(x, D, *, kind, lam, step, T):
    """Gradient of one instance by autograd through a straightforward ISTA."""
    D = D.detach().clone().requires_grad_(True)
    n = x.shape[1]
    with torch.set_grad_enabled(kind != "dec"):
        z = torch.zeros(D.shape[1], n, dtype=x.dtype, device=x.device)
        for _ in range(T):
            z = torch.nn.functional.softshrink(z - step * D.T @ (D @ z - x), step * lam)
    if kind == "dec":
        z = z.detach()
    loss = 0.5 * (x - D @ z).square().sum() / n
    if kind == "ae-lasso":
        loss = loss + lam * z.abs().sum() / n
    loss.backward()
    return D.grad


# ------------------------------------------------------------------------------------------
# timing helpers
# ------------------------------------------------------------------------------------------

def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _best_time(fn, repeat, device, keep=None):
    """Best wall time of ``repeat`` calls of ``fn``; the last result is appended to ``keep``."""
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    if keep is not None:
        keep.append(out)
    return best


def matmul_rate(N, device, dtype=torch.float32, repeat=3):
    """Best FLOP/s of an N×N by N×N matmul (2N³ FLOP) on this device and thread count."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(N, N, generator=g, dtype=dtype).to(device)
    b = torch.randn(N, N, generator=g, dtype=dtype).to(device)
    a @ b                                                   # warm-up
    return 2 * N ** 3 / _best_time(lambda: a @ b, repeat, device)


def flops_per_instance(kind, p, n, T):
    forward = 2 * p * p * n * T
    return forward if kind == "dec" else 3 * forward


# ------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64, help="instances per batched call (default 64)")
    ap.add_argument("--T", type=int, default=100, help="unrolled layers (default 100)")
    ap.add_argument("--n", type=int, default=1000, help="examples per instance (default 1000)")
    ap.add_argument("--m", type=int, default=100, help="signal dimension (default 100)")
    ap.add_argument("--p", type=int, default=150, help="atoms (default 150)")
    ap.add_argument("--repeat", type=int, default=1, help="timed repeats; the best is kept (default 1)")
    ap.add_argument("--naive", type=int, default=8, help="instances run by the naive loop (default 8)")
    ap.add_argument("--matmul", type=int, default=2048, help="size N of the N×N reference matmul")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads for this run (default: torch's own choice)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    for k in ("batch", "T", "n", "m", "p", "repeat", "naive", "matmul"):
        if getattr(args, k) < 1:
            ap.error(f"--{k} must be >= 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    args.naive = min(args.naive, args.batch)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, dtype = args.device, torch.float32
    m, p, n, T, B = args.m, args.p, args.n, args.T, args.batch
    lam, step = 0.2, 0.2
    if args.threads is not None:          # a benchmark script, not the library: its own process
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    inst = udl.make_instances(m, p, 5 if p >= 5 else 1, n, batch=B, init_scale=0.02, seed=0,
                              dtype=dtype, device=device)
    X, D = inst.X, inst.D0
    peak = matmul_rate(args.matmul, device)

    print(f"udl gradient benchmark: m={m} p={p} n={n} T={T} batch={B} float32 device={device} "
          f"threads={threads} (torch {torch.__version__}, {platform.processor() or platform.machine()})")
    print(f"reference: float32 {args.matmul}x{args.matmul} matmul = {peak / 1e9:.1f} GFLOP/s")
    print(f"FLOP count per instance: one layer 2*p^2*n (forward), x3 with backward: "
          f"dec = 2*p^2*n*T = {flops_per_instance('dec', p, n, T) / 1e9:.3g} GFLOP, "
          f"ae-lasso = ae-ls = 3*2*p^2*n*T = {flops_per_instance('ae-ls', p, n, T) / 1e9:.3g} GFLOP")
    print(f"naive loop: per-instance autograd through plain ISTA, run on {args.naive} of {B} instances "
          f"and scaled to {B} (per-instance time x {B})")
    header = f"{'kind':<9} {'udl time':>10} {'GFLOP/s':>9} {'% matmul':>9} {'naive time':>11} {'speed-up':>9} {'max rel diff':>13}"
    print(header)
    print("-" * len(header))

    results = {"peak_flops": peak, "threads": threads, "kinds": {}}
    for kind in KINDS:
        run = lambda: udl.gradient(X, D, kind=kind, lam=lam, step=step, T=T)  # noqa: E731
        udl.gradient(X, D, kind=kind, lam=lam, step=step, T=min(T, 2))           # warm-up, same shapes
        kept = []
        t_udl = _best_time(run, args.repeat, device, keep=kept)
        g = kept[0]

        sub = range(args.naive)
        naive_out = []

        def run_naive():
            naive_out.clear()
            for b in sub:
                naive_out.append(naive_gradient(X[b], D[b], kind=kind, lam=lam, step=step, T=T))

        naive_gradient(X[0], D[0], kind=kind, lam=lam, step=step, T=min(T, 2))  # warm-up
        t_naive = _best_time(run_naive, args.repeat, device) / args.naive * B
        diff = max(float(torch.linalg.norm(g[b] - naive_out[b]) / torch.linalg.norm(naive_out[b]).clamp_min(1e-30))
                   for b in sub)
        flops = flops_per_instance(kind, p, n, T) * B
        rate = flops / t_udl
        results["kinds"][kind] = dict(time=t_udl, gflops=rate / 1e9, frac_matmul=rate / peak,
                                      naive_time=t_naive, speedup=t_naive / t_udl, max_rel_diff=diff)
        print(f"{kind:<9} {t_udl:>9.4g}s {rate / 1e9:>9.1f} {100 * rate / peak:>8.1f}% {t_naive:>10.4g}s "
              f"{t_naive / t_udl:>8.1f}x {diff:>13.1e}", flush=True)

    # all three from one forward pass (what the claims call)
    udl.gradients(X, D, lam=lam, step=step, T=min(T, 2))
    t_all = _best_time(lambda: udl.gradients(X, D, lam=lam, step=step, T=T), args.repeat, device)
    naive_all = sum(r["naive_time"] for r in results["kinds"].values())
    results["all"] = dict(time=t_all, speedup=naive_all / t_all)
    print(f"{'all three':<9} {t_all:>9.4g}s {'':>9} {'':>9} {naive_all:>10.4g}s {naive_all / t_all:>8.1f}x"
          f"   (udl.gradients: one forward pass for the three kinds)")
    return results


if __name__ == "__main__":
    main()
