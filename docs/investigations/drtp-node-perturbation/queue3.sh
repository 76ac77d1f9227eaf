#!/bin/bash
# batch 3: fc-vec decomposition, GEVB control diagnostics, linear probes, NP scaling and variance reduction
export OMP_NUM_THREADS=1  # gevb installed (pip install -e .); outputs go to runs/ here
cd "$(dirname "$0")" && mkdir -p runs
python drtp_decompose.py fc-vec > runs/decompose_fc-vec.jsonl
python diag_train.py conv-vec gevb 3e-4 --json-out runs/diag_conv-vec_gevb_3e-4.jsonl 2> runs/diag_conv-vec_gevb_3e-4.log
python probe.py conv-vec drtp 3e-4 > runs/probe_conv-vec_drtp.jsonl
python probe.py fc-vec drtp 3e-4 > runs/probe_fc-vec_drtp.jsonl
python probe.py conv-vec gevb 3e-4 > runs/probe_conv-vec_gevb.jsonl
python np_scaling.py > runs/np_scaling.out
python np_multi.py conv-vec 3e-4 8 --json-out runs/npmulti_conv-vec_M8_3e-4.jsonl 2> runs/npmulti_conv-vec_M8_3e-4.log
echo QUEUE3 DONE
