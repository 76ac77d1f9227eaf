"""One gevb training run (Trainer, digits, paper widths, nonneg, Adam, batch 128, seed 0 unless given)
with a diagnostics hook at every evaluation. Writes one JSON line per epoch to --json-out.

usage: python diag_train.py MODEL RULE LR [--epochs 20] [--noise-scale 0.01] [--readout-only]
                            [--no-diag] [--json-out FILE] [--sign nonneg]
Diagnostics on a fixed batch (first 256 training examples) at each evaluation:
  wnorm[l]     Frobenius norm of layer l's weight          zero[l]  share of weights exactly 0 (clamped)
  dW_ang_bp0[l]  angle between the accumulated change W_t - W_0 and -grad_BP(W_0) (full train split)
  dW_ang_bp[l]   angle between W_t - W_0 and -grad_BP(W_t) (full train split)
  gate[l]      share of open gates; gate_const[l]: share of units whose gate is the same for all 256 examples
  common[l]    share of the activation energy a (B,K,...) along the all-ones vector of R^K
  logit_cm     RMS of the logits' class-mean;  logit_disc: RMS of the logits minus their class-mean
  top_class    share of test predictions that go to the most-predicted class
  align        gevb.alignment.measure_alignment (signal and update angles, first 128 train examples)
"""
import argparse, json, math, sys, time
import torch
torch.set_num_threads(1)
from gevb.config import TrainConfig
from gevb.training import Trainer
from gevb.hooks import Hook
from gevb.alignment import measure_alignment, angle_deg, layer_names
from gevb.rules import make_rule

p = argparse.ArgumentParser()
p.add_argument("model"); p.add_argument("rule"); p.add_argument("lr", type=float)
p.add_argument("--epochs", type=int, default=20); p.add_argument("--noise-scale", type=float, default=1e-2)
p.add_argument("--sign", default="nonneg"); p.add_argument("--seed", type=int, default=0)
p.add_argument("--readout-only", action="store_true"); p.add_argument("--no-diag", action="store_true")
p.add_argument("--json-out", default=None)
args = p.parse_args()


def bp_grads(model, x, y):
    bp = make_rule("bp", model)
    saved = [q.grad for q in model.parameters()]
    with torch.no_grad():
        bp.set_grads(model, model.trace(x), y)
    g = [l.weight.grad.clone() for l in model.weight_layers]
    for q, s in zip(model.parameters(), saved):
        q.grad = s
    return g


class Diag(Hook):
    def start(self, trainer):
        m = trainer.model
        self.w0 = [l.weight.detach().clone() for l in m.weight_layers]
        tr = trainer.data.train
        self.g0 = bp_grads(m, tr.x, tr.y)

    def measure(self, trainer, limit=None):
        m, tr, te = trainer.model, trainer.data.train, trainer.data.test
        names = layer_names(m)
        rec = {}
        W = [l.weight.detach() for l in m.weight_layers]
        rec["wnorm"] = {n: w.norm().item() for n, w in zip(names, W)}
        rec["wmax"] = {n: w.abs().max().item() for n, w in zip(names, W)}
        rec["zero"] = {n: (w == 0).double().mean().item() for n, w in zip(names, W)}
        rec["bnorm"] = {n: l.bias.detach().norm().item() for n, l in zip(names, m.weight_layers)}
        if trainer.epoch > 0:
            g = bp_grads(m, tr.x, tr.y)
            rec["dW_ang_bp0"] = {n: angle_deg(w - w0, -g0) for n, w, w0, g0 in zip(names, W, self.w0, self.g0)}
            rec["dW_ang_bp"] = {n: angle_deg(w - w0, -gg) for n, w, w0, gg in zip(names, W, self.w0, g)}
            rec["dW_rel"] = {n: ((w - w0).norm() / w0.norm()).item() for n, w, w0 in zip(names, W, self.w0)}
        with torch.no_grad():
            out = m.trace(tr.x[:256])
            rec["gate"], rec["gate_const"], rec["common"] = {}, {}, {}
            for n, gi in zip(names[:-1], m.gate_indices):
                G = out.masks[gi].flatten(1)
                rec["gate"][n] = G.mean().item()
                per_unit = G.mean(0)
                rec["gate_const"][n] = ((per_unit == 0) | (per_unit == 1)).double().mean().item()
            if m.vectorized:
                for n, i in zip(names, m.weight_indices):
                    if i == 0: continue
                    a = out.inputs[i].double()      # (B, K, ...) input of layer i = gated output of the previous block
                    cm = a.mean(1, keepdim=True)
                    rec["common"][names[names.index(n) - 1]] = ((cm ** 2).sum() * a.shape[1] / (a ** 2).sum()).item()
            logits = m(te.x).double()
            cm = logits.mean(1, keepdim=True)
            rec["logit_cm"] = cm.pow(2).mean().sqrt().item()
            rec["logit_disc"] = (logits - cm).pow(2).mean().sqrt().item()
            pred = logits.argmax(1)
            rec["top_class"] = torch.bincount(pred, minlength=m.num_classes).max().item() / len(pred)
            rec["pred_classes"] = int((torch.bincount(pred, minlength=m.num_classes) > 0).sum())
        rec["align"] = measure_alignment(m, trainer.rule, tr.x[:128], tr.y[:128])
        return {"diag": rec}


class Printer(Hook):
    def __init__(self, fh): self.fh = fh
    def after_epoch(self, trainer, loss, record):
        if record is None: return
        r = {k: v for k, v in record.items()}
        print(json.dumps(r), file=self.fh, flush=True)
        d = r.get("diag")
        line = f"ep {r['epoch']:3d} train {r['train_error']:6.2f} test {r['test_error']:6.2f} loss {r['train_loss']:.3f}"
        if d:
            fmt = lambda dd: ",".join(f"{v:.3g}" for v in dd.values())
            line += f" | wnorm {fmt(d['wnorm'])} | gate {fmt(d['gate'])} | top {d['top_class']:.2f}"
            line += f" | upd {fmt(d['align']['update_deg'])}"
        print(line, file=sys.stderr, flush=True)


cfg = TrainConfig(dataset="digits", model=args.model, rule=args.rule, lr=args.lr, epochs=args.epochs,
                  noise_scale=args.noise_scale, sign=args.sign, seed=args.seed, threads=1)
fh = open(args.json_out, "w") if args.json_out else open("/dev/null", "w")
hooks = [Printer(fh)] if args.no_diag else [Diag(), Printer(fh)]
t = Trainer(cfg, hooks=hooks)
if args.readout_only:
    t.optimizer = torch.optim.Adam(t.model.layers[-1].parameters(), lr=args.lr)
t0 = time.time()
res = t.fit()
print(json.dumps({"final": True, "model": args.model, "rule": args.rule, "lr": args.lr, "epochs": args.epochs,
                  "noise_scale": args.noise_scale, "readout_only": args.readout_only, "sign": args.sign,
                  "test_error": res["test_error"], "train_error": res["train_error"], "train_loss": res["train_loss"],
                  "wall_s": time.time() - t0}), file=fh, flush=True)
print(f"FINAL {args.model} {args.rule} lr={args.lr} ns={args.noise_scale} ro={args.readout_only}: "
      f"test {res['test_error']:.2f} train {res['train_error']:.2f} ({time.time()-t0:.0f}s)", flush=True)
