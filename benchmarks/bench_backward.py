"""Speed and memory of the lean backward pass through unrolled ISTA (issue 7), in one run.

Prints, against targets:

(a) achieved FLOP/s of the batched forward + backward (g_ae-ls through T layers) as a fraction
    of this machine's float32 matmul rate, measured in the same run (two references: a large
    square GEMM, and a batched GEMM of exactly the layer's shape); plain autograd alongside;
(b) memory: bytes the autograd graph saves (lean function vs plain autograd), and the peak
    memory growth of forward + backward, each in a fresh subprocess (CPU: peak resident set,
    /proc VmHWM; CUDA: torch.cuda.max_memory_allocated);
(c) time of the gradient-vs-T sweep (3 estimators, T = 1…T_max) for one instance (and of the
    all-dense variant, against the matmul rate);
(d) time of one learning step (gradient + column renormalisation) per estimator at the paper's
    sizes (full batch m=50, p=100, n=10 000; and the large regime m=1000, p=1500, minibatch 50).

FLOP counts are those of the dense matmuls: a layer costs 2·p²·n forward and twice that backward
(A·u and the accumulation u·zᵀ), so forward + backward = 3·2·p²·n per layer per instance. On CPU,
layers whose input is sparse (udl.core.unrolled.layers.SPARSE_DENSITY) multiply it as a CSR
matrix and do fewer flops (2·nnz·p); (a) then reports a *dense-equivalent* rate (the dense count /
time: the time against what dense GEMMs at the matmul rate would need), prints the arithmetic
actually done, and times the same pass with sparse layers off.

Usage::

    python benchmarks/bench_backward.py [--quick] [--device cpu|cuda] [--threads N]

``--quick`` runs tiny sizes (a smoke test). Timings are measured, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import udl  # noqa: E402
from udl.core.encoders import Encoder  # noqa: E402
from udl.core.estimators import gradient_sweep  # noqa: E402
from udl.core.unrolled import layers as lean_layers  # noqa: E402  (its tunables are read there)
from udl.core.unrolled import unrolled_ista  # noqa: E402

LAM, STEP = 0.2, 0.2

FULL = dict(m=100, p=150, s=5, n=1000, T=100, batch=16, mem_batch=16,
            sweep=dict(m=100, p=150, s=5, n=1000, T_max=100),
            learn=[dict(name="paper full batch", m=50, p=100, s=5, n=10_000, T=100, minibatch=None,
                        init_scale=0.1),
                   dict(name="large, minibatch 50", m=1000, p=1500, s=10, n=50, T=100, minibatch=50,
                        init_scale=0.005)],
            gemm=2048)
QUICK = dict(m=10, p=15, s=2, n=64, T=10, batch=2, mem_batch=2,
             sweep=dict(m=10, p=15, s=2, n=64, T_max=10),
             learn=[dict(name="paper full batch (quick)", m=10, p=20, s=2, n=200, T=10, minibatch=None,
                         init_scale=0.1),
                    dict(name="large, minibatch (quick)", m=40, p=60, s=3, n=10, T=10, minibatch=10,
                         init_scale=0.005)],
             gemm=256)

TARGETS = dict(fraction=0.5, memory=4.0, sweep_s=10.0)


class PlainISTA(udl.ISTA):
    """The reference ISTA through plain autograd (every layer's activations saved)."""

    def __call__(self, X, D, *, lam, step, T, return_path=False):
        return Encoder.__call__(self, X, D, lam=lam, step=step, T=T, return_path=return_path)


# --------------------------------------------------------------------------------------------
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, reps=1, warmup=0):
    """Best wall time of ``reps`` runs (after ``warmup`` runs)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_rates(cfg, device, dtype):
    """Best GFLOP/s of a square GEMM and of the layer-shaped batched GEMM (B, p, p) @ (B, p, n)."""
    N = cfg["gemm"]
    a = torch.randn(N, N, device=device, dtype=dtype)
    b = torch.randn(N, N, device=device, dtype=dtype)
    sq = 2 * N**3 / _time(lambda: a @ b, device, reps=5, warmup=2) / 1e9
    B, p, n = cfg["batch"], cfg["p"], cfg["n"]
    A = torch.randn(B, p, p, device=device, dtype=dtype)
    Z = torch.randn(B, p, n, device=device, dtype=dtype)
    out = torch.empty(B, p, n, device=device, dtype=dtype)
    lay = 2 * B * p * p * n / _time(lambda: torch.bmm(A, Z, out=out), device, reps=5, warmup=2) / 1e9
    return sq, lay


def instances(m, p, s, n, batch, device, dtype, init_scale=0.02, seed=0):
    inst = udl.make_instances(m, p, s, n, batch=batch, init_scale=init_scale, seed=seed, dtype=dtype,
                              device=device)
    return inst.X, inst.D0


def saved_bytes(fn):
    """Bytes of the distinct storages the autograd graph saves while ``fn()`` builds it."""
    seen = {}

    def pack(t):
        st = t.untyped_storage()
        seen[(st.data_ptr(), t.device)] = st.nbytes()
        return t                               # keep it alive: addresses stay distinct

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def _graph_bytes(variant, X, D, T):
    """Saved bytes of the graph of Z_T (variant: plain, index, bits), D requiring grad."""
    D_ = D.detach().clone().requires_grad_(True)
    if variant == "plain":
        return saved_bytes(lambda: PlainISTA()(X, D_, lam=LAM, step=STEP, T=T))
    return saved_bytes(lambda: unrolled_ista(X, D_, lam=LAM, step=STEP, T=T, storage=variant))


# --------------------------------------------------------------------------------------------
def _peak_child(args):
    """Child process: peak memory growth of one forward + backward (g_ae-ls), printed as JSON."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    cfg = QUICK if args.quick else FULL
    X, D = instances(cfg["m"], cfg["p"], cfg["s"], cfg["n"], cfg["mem_batch"], device, dtype)
    D_ = D.detach().clone().requires_grad_(True)

    def run():
        Z = (PlainISTA()(X, D_, lam=LAM, step=STEP, T=cfg["T"]) if args._peak == "plain"
             else unrolled_ista(X, D_, lam=LAM, step=STEP, T=cfg["T"], storage=args._peak))
        loss = 0.5 * (X - D_ @ Z).square().sum() / X.shape[-1]
        (g,) = torch.autograd.grad(loss, D_)
        return g

    with torch.no_grad():                      # warm up thread pools and kernels at a tiny size
        udl.ista(X[:1, :, :8], D[:1], lam=LAM, step=STEP, T=2)
    if device.type == "cuda":
        run()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        how = "torch.cuda.max_memory_allocated"
    else:
        def status(key):
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
            raise RuntimeError(key)
        # no full warm-up: freed memory would stay in the heap and hide the peak; the parent
        # sets MALLOC_MMAP_THRESHOLD_ so that every large tensor is its own mapping, returned
        # to the system when freed, and the resident set follows the live tensors.
        base = status("VmRSS:")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                       # reset the peak resident set (VmHWM)
        run()
        peak = status("VmHWM:") - base
        how = "peak resident set growth (/proc VmHWM)"
    print(json.dumps({"peak": peak, "how": how}))


def peak_memory(args, variant):
    cmd = [sys.executable, os.path.abspath(__file__), "--_peak", variant, "--device", args.device,
           "--dtype", args.dtype] + (["--quick"] if args.quick else []) + \
          (["--threads", str(args.threads)] if args.threads else [])
    try:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800, env=env)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, OSError) as e:  # pragma: no cover
        return {"peak": float("nan"), "how": f"failed: {e}"}


# --------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--skip-plain", action="store_true", help="skip the plain-autograd timing")
    ap.add_argument("--sections", default="abcd", help="which of the sections a, b, c, d to run")
    ap.add_argument("--_peak", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if args._peak:
        return _peak_child(args)

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    cfg = QUICK if args.quick else FULL
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# bench_backward  {time.strftime('%Y-%m-%d %H:%M')}  device={device} ({dev_name})  "
          f"dtype={args.dtype}  threads={torch.get_num_threads()}  torch={torch.__version__}"
          f"{'  [--quick]' if args.quick else ''}")
    verdicts = {}

    # The matmul rate is measured before and after the timed sections, and the highest value
    # is the reference (on a shared machine it drifts; the highest is the conservative choice).
    rates = [matmul_rates(cfg, device, dtype)]
    rate_a = section_a(args, cfg, device, dtype, rates) if "a" in args.sections else None
    if "b" in args.sections:
        section_b(args, cfg, device, dtype, verdicts)
    if "c" in args.sections:
        section_c(args, cfg, device, dtype, rates, verdicts)
    if "d" in args.sections:
        section_d(cfg, device, dtype)
    sq, lay = (max(r[i] for r in rates) for i in (0, 1))
    print(f"\nmatmul rate over the run: square {cfg['gemm']}² GEMM up to {sq:.1f} GFLOP/s, "
          f"layer-shaped batched GEMM up to {lay:.1f} GFLOP/s ({len(rates)} measurements)")
    if rate_a is not None:
        frac = rate_a / max(sq, lay)
        verdicts = {"(a) ≥ 50% of the matmul rate": (
            frac >= TARGETS["fraction"], f"{frac:.0%} of the highest rate seen in the run "
            f"({rate_a / sq:.0%} of the square GEMM, {rate_a / lay:.0%} of the layer-shaped GEMM)"), **verdicts}
    print("\ntargets:")
    for name, (ok, detail) in verdicts.items():
        print(f"    {'MET   ' if ok else 'MISSED'} {name}: {detail}")


def section_a(args, cfg, device, dtype, rates):
    m, p, s, n, T, B = (cfg[k] for k in ("m", "p", "s", "n", "T", "batch"))
    X, D = instances(m, p, s, n, B, device, dtype)
    flops = 3 * 2 * p * p * n * T * B
    def run():
        return udl.gradients(X, D, lam=LAM, step=STEP, T=T, kinds=("ae-ls",))

    lean = _time(run, device, reps=2, warmup=1)
    rate = flops / lean / 1e9
    rates.append(matmul_rates(cfg, device, dtype))
    sq_rate, lay_rate = (max(r[i] for r in rates) for i in (0, 1))
    print(f"\n(a) forward+backward g_ae-ls, batch {B} × (m={m}, p={p}, n={n}), T={T}: "
          f"{flops / 1e9:.1f} GFLOP as dense matmuls")
    print(f"    matmul rate: square {cfg['gemm']}² GEMM {sq_rate:.1f} GFLOP/s; "
          f"layer-shaped batched GEMM {lay_rate:.1f} GFLOP/s (best of {len(rates)}×5 runs)")
    print(f"    lean:  {lean:8.2f} s  {rate:6.1f} GFLOP/s dense-equivalent = {rate / sq_rate:.0%} of the "
          f"square-GEMM rate, {rate / lay_rate:.0%} of the layer-GEMM rate")
    Bt = X.new_empty(B, n, p)
    if lean_layers.sparse_layers(Bt):
        done, n_sparse = _flops_done(X, D, T)
        print(f"    sparse layers: {n_sparse} of {2 * (T - 1)} products have a sparse input "
              f"(density ≤ {lean_layers.SPARSE_DENSITY}); arithmetic done {done / 1e9:.1f} GFLOP "
              f"({done / flops:.0%} of the dense count) at {done / lean / 1e9:.1f} GFLOP/s")
        saved = lean_layers.SPARSE_DENSITY
        lean_layers.SPARSE_DENSITY = 0.0
        try:
            dense = _time(run, device)
        finally:
            lean_layers.SPARSE_DENSITY = saved
        print(f"    lean, sparse layers off: {dense:8.2f} s  {flops / dense / 1e9:6.1f} GFLOP/s "
              f"(sparse layers: {dense / lean:.2f}× faster)")
    if not args.skip_plain:
        plain = _time(lambda: udl.gradients(X, D, lam=LAM, step=STEP, T=T, kinds=("ae-ls",),
                                            encoder=PlainISTA()), device)
        print(f"    plain: {plain:8.2f} s  {flops / plain / 1e9:6.1f} GFLOP/s  (plain/lean time: {plain / lean:.2f})")
    del X, D
    return rate


def _flops_done(X, D, T):
    """Flops of the lean pass with sparse layers, from the iterates' densities: the forward
    product of layer t+1 and the backward product of layer t read z_t resp. u_t (support of
    z_{t+1}); sparse when the density is ≤ SPARSE_DENSITY (2·nnz·p), else dense (2·p²·n); the
    accumulation of G is always dense (2·p²·n). Returns (flops, number of sparse products)."""
    B, p, n = X.shape[0], D.shape[-1], X.shape[-1]
    dense = 2 * p * p * n * B
    dens = [float((z != 0).float().mean())
            for z in udl.ISTA().iterates(X, D, lam=LAM, step=STEP, T=T)]   # z_1 … z_T
    done, n_sparse = dense * (T - 1), 0                  # the T − 1 G updates (layer 1: v₀ = B)
    for d in dens[:-1]:                                  # z_1 … z_{T−1}: forward layers 2 … T
        sparse = d <= lean_layers.SPARSE_DENSITY
        n_sparse += sparse
        done += 2 * d * p * n * B * p if sparse else dense
    for d in dens[1:]:                                   # u_1 … u_{T−1} ~ z_2 … z_T: backward A·u
        sparse = d <= lean_layers.SPARSE_DENSITY
        n_sparse += sparse
        done += 2 * d * p * n * B * p if sparse else dense
    return done, n_sparse


def section_b(args, cfg, device, dtype, verdicts):
    m, p, s, n, T, B = (cfg[k] for k in ("m", "p", "s", "n", "T", "batch"))
    Bm = cfg["mem_batch"]
    X, D = instances(m, p, s, n, B, device, dtype)
    gb = {v: _graph_bytes(v, X, D, T) for v in ("plain", "index", "bits")}
    with torch.no_grad():
        path = udl.ista(X[:1], D[:1], lam=LAM, step=STEP, T=T, return_path=True)
    density = float((path[1:] != 0).float().mean())
    dense = B * p * n * X.element_size()
    print(f"\n(b) memory at T={T}, batch {B} (mean density of z_1…z_T: {density:.3f}; one dense iterate "
          f"= {dense / 2**20:.1f} MiB)")
    print(f"    graph saves: plain {gb['plain'] / 2**20:9.1f} MiB ({gb['plain'] / dense:.1f} dense iterates)")
    for v in ("index", "bits"):
        print(f"                 lean/{v:5s} {gb[v] / 2**20:7.1f} MiB ({gb[v] / dense:.1f} dense iterates)"
              f"  → {gb['plain'] / gb[v]:.1f}× less")
    del X, D, path
    peaks = {v: peak_memory(args, v) for v in ("plain", "index", "bits")}
    print(f"    peak of forward+backward, batch {Bm} ({peaks['plain']['how']}):")
    for v in ("plain", "index", "bits"):
        ratio = peaks["plain"]["peak"] / peaks[v]["peak"] if peaks[v]["peak"] else float("nan")
        print(f"      {v:5s} {peaks[v]['peak'] / 2**20:9.1f} MiB" + ("" if v == "plain" else f"  → {ratio:.1f}× less"))
    mem_ratio = gb["plain"] / gb["index"]
    peak_ratio = peaks["plain"]["peak"] / peaks["index"]["peak"] if peaks["index"]["peak"] else float("nan")
    verdicts["(b) ≥ 4× less backward memory"] = (
        mem_ratio >= TARGETS["memory"] and peak_ratio >= TARGETS["memory"],
        f"graph {mem_ratio:.1f}×, peak {peak_ratio:.1f}× (index storage)")


def section_c(args, cfg, device, dtype, rates, verdicts):
    sc = cfg["sweep"]
    X, D = instances(sc["m"], sc["p"], 5 if not args.quick else 2, sc["n"], 1, device, dtype)
    X, D = X[0], D[0]
    Tm = sc["T_max"]
    sweep_t = _time(lambda: gradient_sweep(X, D, lam=LAM, step=STEP, T_max=Tm), device)
    dense_t = _time(lambda: gradient_sweep(X, D, lam=LAM, step=STEP, T_max=Tm, compact=False), device)
    rates.append(matmul_rates(cfg, device, dtype))
    mm_rate = max(max(r) for r in rates)
    n_adj = Tm * (Tm + 1) // 2
    sweep_flops = (2 * 2 * sc["p"] ** 2 * sc["n"] * n_adj * 2 + 2 * sc["p"] ** 2 * sc["n"] * Tm)
    print(f"\n(c) gradient-vs-T sweep, 3 estimators, T = 1…{Tm}, one instance (m={sc['m']}, p={sc['p']}, "
          f"n={sc['n']}): {sweep_t:.2f} s")
    print(f"    {n_adj} layer-adjoints per kind × 2 backpropagated kinds = {sweep_flops / 1e9:.0f} GFLOP as "
          f"dense matmuls; at the matmul rate ({mm_rate:.1f} GFLOP/s) that is {sweep_flops / 1e9 / mm_rate:.1f} s")
    print(f"    all-dense sweep (compact=False): {dense_t:.2f} s = {sweep_flops / dense_t / 1e9:.1f} GFLOP/s "
          f"({sweep_flops / dense_t / 1e9 / mm_rate:.0%} of the matmul rate); the default keeps the adjoints "
          f"on the supports in sparse layers: {dense_t / sweep_t:.1f}× faster")
    verdicts["(c) sweep < 10 s per instance"] = (sweep_t < TARGETS["sweep_s"], f"{sweep_t:.1f} s")


def section_d(cfg, device, dtype):
    print("\n(d) one learning step (gradient + update + column renormalisation), one instance:")
    for lc in cfg["learn"]:
        X, D = instances(lc["m"], lc["p"], lc["s"], lc["n"], 1, device, dtype, init_scale=lc["init_scale"])
        if lc["minibatch"]:
            X = X[..., :lc["minibatch"]]

        def step(kind):
            g = udl.gradient(X, D, kind=kind, lam=LAM, step=STEP, T=lc["T"])
            return udl.normalize_columns(D - 1e-3 * g)

        times = {k: _time(lambda: step(k), device, reps=2) for k in udl.KINDS}
        print(f"    {lc['name']:24s} (m={lc['m']}, p={lc['p']}, n={X.shape[-1]}, T={lc['T']}): " +
              "  ".join(f"{k} {t:.2f} s" for k, t in times.items()))
        del X, D


if __name__ == "__main__":
    main()
