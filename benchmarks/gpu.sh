#!/usr/bin/env bash
# GPU measurements in one prepared call (issue 7): run on a machine with CUDA, from the repo
# root, with udl installed (make venv). Writes everything under ${OUT:-gpu-out}/.
# Not yet run: no GPU was lent to the session that wrote it.
set -euo pipefail
out="${OUT:-gpu-out}"; mkdir -p "$out"
PY="${PY:-.venv/bin/python}"; UDL="${UDL:-.venv/bin/udl}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
# (a)-(d): FLOP/s vs the float32 matmul rate, memory vs autograd, sweep, learning step
"$PY" benchmarks/bench_backward.py --device cuda 2>&1 | tee "$out/bench_backward.txt"
"$PY" benchmarks/bench_gradients.py --device cuda 2>&1 | tee "$out/bench_gradients.txt"
# the paper profile of every claim, timed
/usr/bin/time -v "$UDL" verify --profile paper --device cuda --no-cache --keep-going --no-progress \
    --out "$out/paper-run" 2>&1 | tee "$out/paper_verify.txt"
