"""Are the hidden features of a DRTP-trained conv-vec unreadable, or is the readout just behind? Train the
network (Trainer: digits, paper widths, nonneg, Adam 3e-4, batch 128, seed 0, 20 epochs) with RULE, freeze
it, and fit a fresh VNN readout on its last hidden layer (y = sum_j w_j a_j + b, one weight per unit) with
full-batch Adam lr 3e-3 for 3000 steps, (a) nonneg (clamped, as in the VNN; init: the model's own initial
readout) and (b) signed. Same for the untrained network. Reports test error %.
usage: python readout_refit.py MODEL RULE"""
import sys, copy, torch, torch.nn.functional as F
torch.set_num_threads(1)
from gevb.config import TrainConfig
from gevb.training import Trainer

model_name, rule = sys.argv[1], sys.argv[2]
t = Trainer(TrainConfig(dataset="digits", model=model_name, rule=rule, lr=3e-4, epochs=20, seed=0, threads=1))
init_model = copy.deepcopy(t.model)
t.fit()
tr, te = t.data.train, t.data.test

def refit(model, nonneg):
    ro = model.layers[-1]
    idx = model.weight_indices[-1]
    with torch.no_grad():
        a_tr, a_te = model.activation_before(tr.x, idx), model.activation_before(te.x, idx)  # (B, K, N)
    w = init_model.layers[-1].weight.detach().clone().requires_grad_()   # (1, N)
    b = torch.zeros(model.num_classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=3e-3)
    logits = lambda a: torch.einsum("bkn,n->bk", a, w[0]) + b
    for step in range(3000):
        opt.zero_grad(); F.cross_entropy(logits(a_tr), tr.y).backward(); opt.step()
        if nonneg:
            with torch.no_grad(): w.clamp_(min=0)
    with torch.no_grad():
        return [100 * (logits(a).argmax(1) != y).double().mean().item() for a, y in ((a_tr, tr.y), (a_te, te.y))]

for label, m in (("untrained", init_model), (f"after 20 epochs of {rule}", t.model)):
    own = 100 * (m(te.x).argmax(1) != te.y).double().mean().item()
    nn_tr, nn_te = refit(m, True); s_tr, s_te = refit(m, False)
    print(f"{model_name} {label:28s} own readout test {own:5.1f} | refit nonneg readout train {nn_tr:5.1f} test {nn_te:5.1f}"
          f" | refit signed readout train {s_tr:5.1f} test {s_te:5.1f}", flush=True)
