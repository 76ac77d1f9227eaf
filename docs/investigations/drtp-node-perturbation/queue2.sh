#!/bin/bash
# batch 2: DRTP update decomposition; DRTP variants; learning-rate sweeps; node perturbation noise scale and seeds
export OMP_NUM_THREADS=1  # gevb installed (pip install -e .); outputs go to runs/ here
cd "$(dirname "$0")" && mkdir -p runs
python drtp_decompose.py conv-vec > runs/decompose_conv-vec.jsonl
python drtp_decompose.py fc-vec > runs/decompose_fc-vec.jsonl
for v in centered common; do for m in conv-vec fc-vec; do
  python drtp_variants.py $m $v 3e-4 --json-out runs/variant_${m}_${v}_3e-4.jsonl 2> runs/variant_${m}_${v}_3e-4.log
done; done
for lr in 1e-5 3e-5 1e-4 3e-4 1e-3 3e-3; do
  python diag_train.py conv-vec drtp $lr --no-diag --json-out runs/sweep_conv-vec_drtp_$lr.jsonl 2>/dev/null
  python diag_train.py fc-vec drtp $lr --no-diag --json-out runs/sweep_fc-vec_drtp_$lr.jsonl 2>/dev/null
  python diag_train.py conv drtp $lr --no-diag --json-out runs/sweep_conv_drtp_$lr.jsonl 2>/dev/null
  python drtp_variants.py conv-vec centered $lr --no-diag --json-out runs/sweep_conv-vec_drtp-centered_$lr.jsonl 2>/dev/null
  python diag_train.py conv-vec bp $lr --readout-only --no-diag --json-out runs/sweep_conv-vec_readout-only_$lr.jsonl 2>/dev/null
  python diag_train.py conv-vec node-perturbation $lr --no-diag --json-out runs/sweep_conv-vec_node-perturbation_$lr.jsonl 2>/dev/null
done
for ns in 1e-3 3e-2 1e-1 3e-1 1; do
  python diag_train.py conv-vec node-perturbation 3e-4 --noise-scale $ns --no-diag --json-out runs/noise_conv-vec_np_3e-4_ns$ns.jsonl 2>/dev/null
done
for s in 1 2; do
  python diag_train.py conv-vec node-perturbation 3e-4 --seed $s --no-diag --json-out runs/seed_conv-vec_np_3e-4_s$s.jsonl 2>/dev/null
  python diag_train.py conv-vec drtp 3e-4 --seed $s --no-diag --json-out runs/seed_conv-vec_drtp_3e-4_s$s.jsonl 2>/dev/null
done
echo QUEUE2 DONE
