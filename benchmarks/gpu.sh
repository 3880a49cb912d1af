#!/usr/bin/env bash
# The project's GPU checks in one run, for a machine with an NVIDIA GPU (sized for one H200):
#   1. nvidia-smi's view of the GPU (name, driver, memory)        -> nvidia-smi.txt
#   2. the device tests, pytest -m device on $DEVICE               -> tests.txt
#   3. benchmarks/throughput.py, bn-lstm and asrnn next to cuDNN's nn.LSTM and nn.RNN,
#      and benchmarks/gradient_cost.py, lstm and srn under every estimator, per batch size
#                                                                  -> throughput-b<B>.json, gradient_cost-b<B>.json
# with the environment, the stage times and the benchmarks' tables in log.txt; all in $OUT
# (default longdeps-results/benchmarks/gpu), at most 8 files. On one H200 it should take a few
# minutes, under 8: about 2 for the benchmarks, by a count of the operations their steps launch
# (not yet timed there), plus the device tests. It needs no network where python3's torch reaches
# the GPU; where it does not, it tries `pip install torch` first.
#
# Run from the repository root:
#     bash benchmarks/gpu.sh
# Dry run on a CPU, tiny sizes (the pip install of longdeps goes into $PYTHON's environment):
#     DEVICE=cpu LENGTHS="20 40" HIDDEN=8 BATCHES=4 REPEATS=1 PYTEST_ARGS="-k scan" OUT=/tmp/gpu bash benchmarks/gpu.sh
# The exit status is pytest's when the device tests fail (after the benchmarks have run), else 0.
set -euo pipefail

DEVICE=${DEVICE:-cuda}                 # a torch device
LENGTHS=${LENGTHS:-1000 4000}          # sequence lengths T of both benchmarks
HIDDEN=${HIDDEN:-256}                  # hidden size of both benchmarks
BATCHES=${BATCHES:-32 128}             # one throughput and one gradient_cost file per batch size
REPEATS=${REPEATS:-5}                  # throughput.py's repeats per variant
GRADIENT_REPEATS=${GRADIENT_REPEATS:-} # gradient_cost.py's repeats; empty: its default
PYTEST_ARGS=${PYTEST_ARGS:-}           # appended to the pytest call, split on spaces (e.g. "-k scan")
PY=${PYTHON:-python3}
OUT=${OUT:-longdeps-results/benchmarks/gpu}

fail() {
    echo "gpu.sh: $*" >&2
    exit 1
}

stage() {
    echo "== $* (at ${SECONDS}s)" | tee -a "$OUT/log.txt"
}

cd "$(dirname "$0")/.."  # the repository root
read -r -a lengths <<< "$LENGTHS"
read -r -a batches <<< "$BATCHES"
read -r -a pytest_args <<< "$PYTEST_ARGS"
# nvidia-smi.txt, tests.txt, log.txt and two files per batch size: the GPU tool returns only 8
(( 3 + 2 * ${#batches[@]} <= 8 )) || fail "BATCHES=\"$BATCHES\" would write more than 8 files; name at most 2 batch sizes"
mkdir -p "$OUT"
: > "$OUT/log.txt"

if command -v nvidia-smi > /dev/null; then
    { nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv && nvidia-smi; } \
        > "$OUT/nvidia-smi.txt" || fail "nvidia-smi failed: see $OUT/nvidia-smi.txt"
    head -n 2 "$OUT/nvidia-smi.txt"
elif [[ $DEVICE == cuda* ]]; then
    fail "nvidia-smi not found: this machine shows no NVIDIA GPU for DEVICE=$DEVICE"
else
    echo "nvidia-smi not found (DEVICE=$DEVICE does not need it)" | tee "$OUT/nvidia-smi.txt"
fi

cuda_ready() {
    "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2> /dev/null
}
if [[ $DEVICE == cuda* ]] && ! cuda_ready; then
    echo "$PY's torch cannot reach the GPU: installing torch from PyPI (its Linux wheel bundles CUDA)"
    "$PY" -m pip install torch || true
    cuda_ready || fail "$PY's torch still cannot reach the GPU (torch.cuda.is_available() is false)"
fi
if ! "$PY" -m pip install --quiet --no-deps --no-build-isolation -e .; then
    echo "pip could not install longdeps: importing it from src/ instead"
    export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" - "$DEVICE" <<'EOF' | tee -a "$OUT/log.txt"
import sys

import torch

import longdeps

device = torch.device(sys.argv[1])
gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), GPU {gpu}, "
      f"longdeps from {longdeps.__file__}")
EOF

stage "device tests on $DEVICE"
tests_status=0
LONGDEPS_TEST_DEVICE=$DEVICE "$PY" -m pytest -m device -q -p no:cacheprovider "${pytest_args[@]}" 2>&1 \
    | tee "$OUT/tests.txt" || tests_status=${PIPESTATUS[0]}

for batch in "${batches[@]}"; do
    stage "throughput, batch $batch"
    "$PY" benchmarks/throughput.py --device "$DEVICE" --lengths "${lengths[@]}" --batch "$batch" --hidden "$HIDDEN" \
        --variants bn-lstm asrnn --repeats "$REPEATS" --out "$OUT/throughput-b$batch.json" | tee -a "$OUT/log.txt"
done
for batch in "${batches[@]}"; do
    stage "gradient cost, batch $batch"
    "$PY" benchmarks/gradient_cost.py --device "$DEVICE" --cells lstm srn --lengths "${lengths[@]}" \
        --hidden "$HIDDEN" --batch "$batch" ${GRADIENT_REPEATS:+--repeats "$GRADIENT_REPEATS"} \
        --out "$OUT/gradient_cost-b$batch.json" | tee -a "$OUT/log.txt"
done

stage "done"
if (( tests_status != 0 )); then
    echo "gpu.sh: the device tests failed (pytest exit status $tests_status): see $OUT/tests.txt" | tee -a "$OUT/log.txt"
fi
exit "$tests_status"
