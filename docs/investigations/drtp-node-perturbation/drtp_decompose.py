"""Split DRTP's hidden-layer update in a VNN into the part from the all-ones component of -onehot(y)
(-1/K * ones: the same for every label) and the centered part (-onehot + 1/K, sums to 0 like e), on the
whole training split, at a few epochs of the documented run (Trainer, digits, nonneg, Adam 3e-4, batch 128,
seed 0). The update is linear in the broadcast vector, so U = U_common + U_centered exactly.
usage: python drtp_decompose.py MODEL [--epochs 20]"""
import sys, json, torch
torch.set_num_threads(1)
import gevb.rules.drtp as drtp
from gevb.config import TrainConfig
from gevb.training import Trainer
from gevb.hooks import Hook
from gevb.alignment import angle_deg, layer_names
from gevb.rules import make_rule

model_name = sys.argv[1]
epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 20
orig = drtp.target_vector

def updates(model, rule, x, y, vec):
    drtp.target_vector = vec
    saved = [q.grad for q in model.parameters()]
    with torch.no_grad():
        rule.set_grads(model, model.trace(x), y)
    u = [l.weight.grad.clone() for l in model.weight_layers[:-1]]
    for q, s in zip(model.parameters(), saved): q.grad = s
    drtp.target_vector = orig
    return u

class Decompose(Hook):
    def after_epoch(self, trainer, loss, record):
        if trainer.epoch not in (0, 1, 2, 5, 10, 20): return
        m, tr = trainer.model, trainer.data.train
        full = updates(m, trainer.rule, tr.x, tr.y, orig)
        com = updates(m, trainer.rule, tr.x, tr.y, lambda t, like: torch.full_like(orig(t, like), -1.0 / like.shape[1]))
        cen = updates(m, trainer.rule, tr.x, tr.y, lambda t, like: orig(t, like) + 1.0 / like.shape[1])
        bp = make_rule("bp", m); saved = [q.grad for q in m.parameters()]
        with torch.no_grad(): bp.set_grads(m, m.trace(tr.x), tr.y)
        g = [l.weight.grad.clone() for l in m.weight_layers[:-1]]
        for q, s in zip(m.parameters(), saved): q.grad = s
        names = layer_names(m)[:-1]
        row = {"epoch": trainer.epoch, "test_error": record["test_error"] if record else None}
        for n, u, c, z, gg in zip(names, full, com, cen, g):
            # linear in the vector: U = U_common + U_centered up to float32 rounding of the two large parts
            assert (u - c - z).norm() <= 1e-4 * (c.norm() + z.norm()), (u - c - z).norm() / (c.norm() + z.norm())
            row[n] = {"|common|/|centered|": (c.norm() / z.norm()).item(),
                      "ang_full_bp": angle_deg(u, gg), "ang_common_bp": angle_deg(c, gg), "ang_centered_bp": angle_deg(z, gg),
                      # share of weights where the common part alone decides the sign of the update
                      "sign_from_common": ((c.abs() > z.abs()) & (u != 0)).double().mean().item()}
        print(json.dumps(row), flush=True)

cfg = TrainConfig(dataset="digits", model=model_name, rule="drtp", lr=3e-4, epochs=epochs, seed=0, threads=1)
Trainer(cfg, hooks=[Decompose()]).fit()
