"""Bug check: DRTP's gradients in a vectorized net against an independent autograd computation of
docs/rules.md's formula  dW_ij = -sum_b G_i a_j[y_b] / B  (hidden layers, first included), readout = true
CE gradient with its input detached.  float64, tiny and paper-width conv-vec (and fc-vec), digits batch."""
import torch, torch.nn.functional as F
torch.set_num_threads(1)
from gevb import build_model, make_rule
from gevb.data import load_dataset

def reference(model, x, y):
    out = model.trace(x)
    grads = {}
    B = x.shape[0]
    *hidden, readout = model.weight_indices
    for i in hidden:
        layer = model.layers[i]
        a_in = out.inputs[i].detach()
        h = layer(a_in)                                   # (B, K, *S): the layer's own forward
        G = out.masks[i + 1]                              # (B, *S)
        hy = h[torch.arange(B), y]                        # (B, *S): component y_b of every unit
        S = -(G * hy).sum() / B                           # surrogate whose gradient is the formula
        gw, gb = torch.autograd.grad(S, [layer.weight, layer.bias])
        grads[f"layers.{i}.weight"], grads[f"layers.{i}.bias"] = gw, gb
    layer = model.layers[readout]
    logits = model._logits(layer(out.inputs[readout].detach()))
    gw, gb = torch.autograd.grad(F.cross_entropy(logits, y), [layer.weight, layer.bias])
    grads[f"layers.{readout}.weight"], grads[f"layers.{readout}.bias"] = gw, gb
    return grads

data = load_dataset("digits")
x, y = data.train.x[:64].double(), data.train.y[:64]
for name, widths in [("conv-vec", (4, 6, 16)), ("conv-vec", None), ("fc-vec", (16, 12)), ("fc-vec", None)]:
    for sign in ("nonneg", "mixed"):
        model = build_model(name, (1, 8, 8), 10, sign, widths=widths, seed=3, dtype=torch.float64)
        rule = make_rule("drtp", model, seed=0)
        with torch.no_grad():
            rule.set_grads(model, model.trace(x), y)
        mine = {n: p.grad.clone() for n, p in model.named_parameters()}
        ref = reference(model, x, y)
        worst = max(((mine[n] - ref[n]).abs().max() / ref[n].abs().max().clamp_min(1e-300)).item() for n in ref)
        print(f"{name:8s} widths={str(widths):12s} {sign:6s}  max rel. diff over {len(ref)} params: {worst:.2e}")
# sign check: a small SGD step with DRTP's grads raises sum_i G_i h_i[y] of every hidden layer
model = build_model("conv-vec", (1, 8, 8), 10, "nonneg", seed=0, dtype=torch.float64)
rule = make_rule("drtp", model, seed=0)
def objective(model):
    out = model.trace(x); vals = []
    for i in model.weight_indices[:-1]:
        h = model.layers[i](out.inputs[i]); vals.append((out.masks[i + 1] * h[torch.arange(len(y)), y]).sum().item() / len(y))
    return vals
with torch.no_grad():
    before = objective(model)
    rule.set_grads(model, model.trace(x), y)
    for p in model.parameters():
        p -= 1e-4 * p.grad
    after = objective(model)
print("sum_i G_i h_i[y] per hidden layer, before/after one SGD step (lr 1e-4) with DRTP's grads:")
for b, a in zip(before, after): print(f"   {b:+.5f} -> {a:+.5f}")
# float32 training path (oneDNN GEMMs etc.) against the float64 reference at paper widths
for name in ("conv-vec", "fc-vec"):
    m32 = build_model(name, (1, 8, 8), 10, "nonneg", seed=0)
    m64 = build_model(name, (1, 8, 8), 10, "nonneg", seed=0, dtype=torch.float64)
    x32, yy = data.train.x[:128], data.train.y[:128]
    rule = make_rule("drtp", m32, seed=0)
    with torch.no_grad():
        rule.set_grads(m32, m32.trace(x32), yy)
    ref = reference(m64, x32.double(), yy)
    worst = max(((p.grad.double() - ref[n]).abs().max() / ref[n].abs().max()).item() for n, p in m32.named_parameters())
    print(f"float32 {name} paper widths vs float64 reference: max rel. diff {worst:.2e}")
