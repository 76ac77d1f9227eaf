#!/bin/bash
# batch 1: diagnostics at the documented setting (lr 3e-4, 20 epochs) and readout-only baselines
export OMP_NUM_THREADS=1  # gevb installed (pip install -e .); outputs go to runs/ here
cd "$(dirname "$0")" && mkdir -p runs
for spec in "fc-vec drtp" "conv drtp" "fc drtp" "conv-vec node-perturbation" "fc-vec node-perturbation" "conv node-perturbation"; do
  set -- $spec
  python diag_train.py $1 $2 3e-4 --json-out runs/diag_$1_$2_3e-4.jsonl 2> runs/diag_$1_$2_3e-4.log
done
for m in conv-vec fc-vec conv fc; do
  python diag_train.py $m bp 3e-4 --readout-only --json-out runs/diag_${m}_readout-only_3e-4.jsonl 2> runs/diag_${m}_readout-only_3e-4.log
done
