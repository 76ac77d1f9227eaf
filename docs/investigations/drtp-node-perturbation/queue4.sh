#!/bin/bash
# batch 4: node perturbation against pure noise of the same size
export OMP_NUM_THREADS=1  # gevb installed (pip install -e .); outputs go to runs/ here
cd "$(dirname "$0")" && mkdir -p runs
while ! grep -q "QUEUE3 DONE" queue3.out; do sleep 10; done
python np_shuffled.py conv-vec 3e-4 --no-diag --json-out runs/npshuffled_conv-vec_3e-4.jsonl 2>/dev/null
python np_shuffled.py fc-vec 3e-4 --no-diag --json-out runs/npshuffled_fc-vec_3e-4.jsonl 2>/dev/null
python np_shuffled.py conv 3e-4 --no-diag --json-out runs/npshuffled_conv_3e-4.jsonl 2>/dev/null
echo QUEUE4 DONE
