"""Node perturbation's single-step update at initialization against the true (BP) gradient, as the number of
perturbed units changes: mean over 20 steps (20 noise draws) of the cosine between the rule's batch update and
BP's, per hidden layer; first 128 digits training examples, float32, sigma 1e-2, nonneg, seed 0.
Theory: E[c^] = c |e| and Var grows with sum_j c_j^2 (every perturbed unit adds noise to the one loss change)
times the layer's unit count, so cos ~ |g| / sqrt(|g|^2 + Var) falls as units are added."""
import math, torch
torch.set_num_threads(1)
from gevb import build_model, make_rule
from gevb.data import load_dataset
data = load_dataset("digits")
x, y = data.train.x[:128], data.train.y[:128]
def grads(rule, model):
    with torch.no_grad():
        rule.set_grads(model, model.trace(x), y)
    return [l.weight.grad.clone() for l in model.weight_layers[:-1]]
cos = lambda a, b: (a.flatten() @ b.flatten() / (a.norm() * b.norm())).item()
for name, widths in [("fc-vec", (64, 32)), ("fc-vec", (256, 128)), ("fc-vec", (1024, 512)), ("fc-vec", (4096, 2048)),
                     ("conv-vec", (4, 2, 64)), ("conv-vec", (16, 8, 256)), ("conv-vec", (64, 32, 1024)),
                     ("conv", (64, 32, 1024)), ("fc", (1024, 512))]:
    model = build_model(name, (1, 8, 8), 10, "nonneg", widths=widths, seed=0)
    units = [math.prod(s) for s in model.hidden_shapes()]
    true = grads(make_rule("bp", model), model)
    rule = make_rule("node-perturbation", model, seed=0, noise_scale=1e-2)
    cs = torch.tensor([[cos(u, g) for u, g in zip(grads(rule, model), true)] for _ in range(20)])
    m, s = cs.mean(0), cs.std(0) / math.sqrt(20)
    print(f"{name:8s} widths {str(widths):16s} units {str(units):22s} total {sum(units):6d}  cos per layer: "
          + ", ".join(f"{a:.3f}+-{b:.3f}" for a, b in zip(m, s)), flush=True)
