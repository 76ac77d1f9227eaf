"""Control for node perturbation: the same rule with each example's loss change dL_b replaced by another
example's (a fixed cyclic shift of the batch), so the hidden credits c^_b = dL_{b+1} xi_b / sigma keep their
size and distribution but have mean zero: pure noise, no information about the gradient. The readout still
learns from e. Monkeypatches torch.nn.functional.cross_entropy inside gevb.rules.node_perturbation only.
usage: python np_shuffled.py MODEL LR [other diag_train.py flags]"""
import sys, runpy, torch
import gevb.rules.node_perturbation as npm
real = npm.F
class Shifted:
    def __getattr__(self, name): return getattr(real, name)
    @staticmethod
    def cross_entropy(logits, target, reduction="mean"):
        out = real.cross_entropy(logits, target, reduction=reduction)
        return out.roll(1, 0) if reduction == "none" else out   # both the clean and the noisy loss: dL is shifted
npm.F = Shifted()
sys.argv.insert(2, "node-perturbation")
runpy.run_path(str(__import__("pathlib").Path(__file__).with_name("diag_train.py")), run_name="__main__")
