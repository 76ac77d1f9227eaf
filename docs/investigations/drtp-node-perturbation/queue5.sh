#!/bin/bash
export OMP_NUM_THREADS=1  # gevb installed (pip install -e .); outputs go to runs/ here
cd "$(dirname "$0")" && mkdir -p runs
while ! grep -q "QUEUE4 DONE" queue4.out 2>/dev/null; do sleep 10; done
for spec in "conv-vec drtp" "conv-vec gevb" "fc-vec drtp" "conv-vec node-perturbation"; do set -- $spec
  python readout_refit.py $1 $2 >> runs/readout_refit.out
done
echo QUEUE5 DONE
