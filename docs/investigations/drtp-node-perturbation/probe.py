"""How much class information each hidden layer's output holds during a DRTP (or other) run: test error
of a linear ridge probe (dual form, linear kernel, features = the gated activation flattened over K and
units, standardized; lambda chosen on a held-out part of train) and the 'vote' error argmax_k sum_units a[k]
(what a readout with all weights equal would predict). Trainer, digits, paper widths, nonneg, seed 0.
usage: python probe.py MODEL RULE LR [--epochs 20] [--variant plain|centered]"""
import sys, json, torch
torch.set_num_threads(1)
import gevb.rules.drtp as drtp
from gevb.config import TrainConfig
from gevb.training import Trainer
from gevb.hooks import Hook
from gevb.alignment import layer_names

model_name, rule, lr = sys.argv[1], sys.argv[2], float(sys.argv[3])
epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 20
variant = sys.argv[sys.argv.index("--variant") + 1] if "--variant" in sys.argv else "plain"
if variant == "centered":
    orig = drtp.target_vector
    drtp.target_vector = lambda t, like: orig(t, like) + 1.0 / like.shape[1]

def features(model, x):
    with torch.no_grad():
        out = model.trace(x)
    return [out.inputs[i + 1 if False else j] for j in [k for k in model.weight_indices[1:]]]

def ridge_error(ftr, ytr, fte, yte, classes):
    mu, sd = ftr.mean(0), ftr.std(0).clamp_min(1e-6)
    ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
    n = len(ftr); cut = int(0.8 * n)
    Y = torch.nn.functional.one_hot(ytr, classes).double()
    best = None
    for lam in (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4):
        K = ftr[:cut] @ ftr[:cut].T
        a = torch.linalg.solve(K + lam * torch.eye(cut, dtype=K.dtype), Y[:cut])
        err = ((ftr[cut:] @ ftr[:cut].T @ a).argmax(1) != ytr[cut:]).double().mean().item()
        if best is None or err < best[0]: best = (err, lam)
    K = ftr @ ftr.T
    a = torch.linalg.solve(K + best[1] * torch.eye(n, dtype=K.dtype), Y)
    return 100 * ((fte @ ftr.T @ a).argmax(1) != yte).double().mean().item()

class Probe(Hook):
    def after_epoch(self, trainer, loss, record):
        if trainer.epoch not in (0, 1, 5, 20) and trainer.epoch != epochs: return
        m, tr, te = trainer.model, trainer.data.train, trainer.data.test
        names = layer_names(m)
        row = {"epoch": trainer.epoch, "test_error": record["test_error"]}
        with torch.no_grad():
            otr, ote = m.trace(tr.x), m.trace(te.x)
        for n, i in zip(names[:-1], m.weight_indices[1:]):
            a_tr, a_te = otr.inputs[i].double(), ote.inputs[i].double()   # gated output of layer n (after pooling/flatten)
            row[n] = {"probe": ridge_error(a_tr.flatten(1), tr.y, a_te.flatten(1), te.y, m.num_classes)}
            if m.vectorized:
                vote = a_te.flatten(2).sum(2).argmax(1)
                row[n]["vote"] = 100 * (vote != te.y).double().mean().item()
        print(json.dumps(row), flush=True)

cfg = TrainConfig(dataset="digits", model=model_name, rule=rule, lr=lr, epochs=epochs, seed=0, threads=1)
Trainer(cfg, hooks=[Probe()]).fit()
