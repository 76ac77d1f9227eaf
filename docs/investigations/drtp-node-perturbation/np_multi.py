"""Node perturbation with its variance cut by averaging the estimates of M independent noise draws per step
(M times the forward passes; M = 1 is the rule as implemented). Monkeypatches NodePerturbation.estimates in
this process only (noise of draw m of step s: the rule's own stream at step s*M + m).
usage: python np_multi.py MODEL LR M [other diag_train.py flags]"""
import sys, runpy, torch
from gevb.rules.node_perturbation import NodePerturbation
M = int(sys.argv.pop(3))
orig = NodePerturbation.estimates
def averaged(self, model, output, error, target):
    step, total = self.steps, None
    for m in range(M):
        self.steps = step * M + m
        direction, credits = orig(self, model, output, error, target)
        total = credits if total is None else [t + c for t, c in zip(total, credits)]
    self.steps = step
    return direction, [t / M for t in total]
NodePerturbation.estimates = averaged
sys.argv.insert(2, "node-perturbation")
runpy.run_path(str(__import__("pathlib").Path(__file__).with_name("diag_train.py")), run_name="__main__")
