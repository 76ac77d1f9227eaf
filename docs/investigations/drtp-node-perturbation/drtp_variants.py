"""DRTP in a VNN with the broadcast vector changed (a diagnosis, not a proposal for the repository):
  plain     -onehot(y)                       (the rule as implemented)
  centered  -onehot(y) + 1/K                 (the all-ones component removed; sums to 0 over classes like e)
  common    -1/K * ones                      (only the all-ones component: carries no label at all)
Monkeypatches gevb.rules.drtp.target_vector in this process only.
usage: python drtp_variants.py MODEL VARIANT LR [--epochs 20] [other diag_train.py flags]"""
import sys, runpy
import torch
import gevb.rules.drtp as drtp
variant = sys.argv.pop(2 + 0 if False else 2)  # argv: script MODEL VARIANT LR ...
orig = drtp.target_vector
def centered(target, like):
    v = orig(target, like); return v + 1.0 / v.shape[1]
def common(target, like):
    v = orig(target, like); return torch.full_like(v, -1.0 / v.shape[1])
drtp.target_vector = {"plain": orig, "centered": centered, "common": common}[variant]
sys.argv.insert(2, "drtp")
runpy.run_path(str(__import__("pathlib").Path(__file__).with_name("diag_train.py")), run_name="__main__")
