#!/usr/bin/env bash
# One prepared check of gevb on a CUDA GPU, at most 8 minutes on an H100/H200-class device, no network:
# the environment, the CUDA tests (the engine's steps against the reference, no host-device
# synchronization in a step, fast paths against references, BP against autograd), step times of all
# six vectorized configurations and their conventional networks, a short digits training and, when
# Debian's Fashion-MNIST files lie in $GEVB_FASHION_MNIST (default data/fashion-mnist, git-ignored;
# copy the four *-ubyte.gz files there and carry the folder), one Fashion-MNIST epoch of conv-vec/GEVB
# and conv/DFA. Logs and JSON go under the folder given as the argument.
#
# Usage: bash benchmarks/gpu_check.sh OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}"
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA device visible to torch here; run this on a machine with a GPU" >&2
  exit 1
fi
mkdir -p "$out"
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.log, remember failures
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  if ! timeout "$limit" "$@" > "$out/$name.log" 2>&1; then
    echo "   FAILED (see $out/$name.log)"
    status=1
  fi
  tail -n 3 "$out/$name.log" | sed 's/^/   /'
}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name())"
  git rev-parse --short HEAD 2>/dev/null || true
} | tee "$out/environment.txt"
step cuda-tests 180 python -m pytest -q -n0 -p no:cacheprovider -k "cuda or devices" \
  tests/test_step.py tests/test_layers.py tests/test_rules.py tests/test_training.py tests/test_precision.py
step step-time 120 python benchmarks/step_time.py --device cuda --repeats 10 --json
tail -n 1 "$out/step-time.log" > "$out/step-time.json" 2>/dev/null || true
step digits 45 python -m gevb train --dataset digits --model conv-vec --rule gevb --epochs 5 --device cuda --json
fashion="${GEVB_FASHION_MNIST:-data/fashion-mnist}"
if [ -f "$fashion/train-images-idx3-ubyte.gz" ]; then
  step fashion-conv-vec-gevb 90 python -m gevb train --dataset fashion-mnist --data-dir "$fashion" \
    --model conv-vec --rule gevb --epochs 1 --device cuda --json
  step fashion-conv-dfa 45 python -m gevb train --dataset fashion-mnist --data-dir "$fashion" \
    --model conv --rule dfa --epochs 1 --device cuda --json
else
  echo "== fashion-mnist: skipped, no files in $fashion"
fi
exit $status
