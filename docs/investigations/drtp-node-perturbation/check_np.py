"""Node perturbation: (1) unbiased in conv-vec too (mean of many estimates -> true gradient), tiny nets,
float64, sigma 1e-5 (as tests/test_field_rules.py does for fc/fc-vec); (2) how the single-step estimate's
angle to the true (BP) weight gradient scales with the number of perturbed units, paper widths, on the
first 128 digits training examples at initialization (float32, sigma 1e-2, the training setting); the
angle of the mean of M estimates for M = 1, 4, 16, 64, 256."""
import math, sys, time, torch
torch.set_num_threads(1)
from gevb import build_model, make_rule
from gevb.alignment import angle_deg
from gevb.data import load_dataset

data = load_dataset("digits")
def grads(rule, model, x, y):
    with torch.no_grad():
        rule.set_grads(model, model.trace(x), y)
    return [l.weight.grad.clone() for l in model.weight_layers]

print("(1) tiny nets, float64, sigma 1e-5, 8 digits examples; angle of the mean of M estimates to the true gradient, M = 1, 500, 2000, 8000")
x, y = data.train.x[:8].double(), data.train.y[:8]
for name, widths in [("fc-vec", (8, 8)), ("conv-vec", (4, 6, 16)), ("conv", (4, 6, 16))]:
    for sign in ("nonneg", "mixed"):
        model = build_model(name, (1, 8, 8), 10, sign, widths=widths, seed=1, dtype=torch.float64)
        true = grads(make_rule("bp", model), model, x, y)
        rule = make_rule("node-perturbation", model, seed=0, noise_scale=1e-5)
        total = [torch.zeros_like(g) for g in true]
        ang = lambda gs: ", ".join(f"{angle_deg(a, b):5.1f}" for a, b in zip(gs[:-1], true[:-1]))
        line = f"  {name:8s} {sign:6s}"
        for step in range(1, 8001):
            g = grads(rule, model, x, y)
            for a, b in zip(total, g): a += b
            if step in (1, 500, 2000, 8000): line += f" | M={step}: {ang(total)}"
        ratio = ", ".join(f"{(a/8000).norm()/b.norm():.2f}" for a, b in zip(total[:-1], true[:-1]))
        print(line + f" | |mean_8000|/|true|: {ratio}"); sys.stdout.flush()

print("(2) paper widths, float32, sigma 1e-2, first 128 training examples, at initialization")
x, y = data.train.x[:128], data.train.y[:128]
for name in ("fc-vec", "fc", "conv-vec", "conv"):
    model = build_model(name, (1, 8, 8), 10, "nonneg", seed=0)
    units = [math.prod(s) for s in model.hidden_shapes()]
    true = grads(make_rule("bp", model), model, x, y)
    # per-layer share of the credit norm |c_l| / |c_all| (BP's scalar credits, per example, mean)
    bp = make_rule("bp", model)
    with torch.no_grad():
        out = model.trace(x)
        from gevb.rules import loss_and_error
        err = loss_and_error(out.logits, y)[1]
        cs = [c.flatten(1) for c in bp.signals(model, out, err, y).scalars]
        cs = [c * out.masks[i].flatten(1) for c, i in zip(cs, model.gate_indices)]
        tot = torch.sqrt(sum((c**2).sum(1) for c in cs))
        share = [((c**2).sum(1).sqrt() / tot).mean().item() for c in cs]
    rule = make_rule("node-perturbation", model, seed=0, noise_scale=1e-2)
    total = [torch.zeros_like(g) for g in true]
    res = {}
    t0 = time.time()
    for m in range(1, 257):
        g = grads(rule, model, x, y)
        for a, b in zip(total, g): a += b
        if m in (1, 4, 16, 64, 256):
            res[m] = [angle_deg(a, b) for a, b in zip(total[:-1], true[:-1])]
    print(f"  {name:8s} units per hidden layer {units} (total {sum(units)}), |c_l|/|c| {[round(s,2) for s in share]}  ({time.time()-t0:.0f}s)")
    for m, a in res.items():
        print(f"      mean of {m:3d} estimates: update angles " + ", ".join(f"{v:.1f}" for v in a))
    sys.stdout.flush()
