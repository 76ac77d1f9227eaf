"""Markdown table of a diag_train.py run at chosen epochs (the per-epoch diagnostics of the brief)."""
import json, sys
path, epochs = sys.argv[1], [int(e) for e in sys.argv[2].split(",")]
rows = {r["epoch"]: r for r in map(json.loads, open(path)) if "epoch" in r}
j = lambda d, nd=2: ", ".join(f"{v:.{nd}f}" for v in d.values())
j0 = lambda d: ", ".join(f"{v:.0f}" for v in d.values())
print("| epoch | test err % | train loss | weight norm per layer | readout weights at 0 | open gates | gates constant over 256 ex. | energy along 1 (hidden outputs) | logits: class-mean RMS / class-dependent RMS | top class share | update angle to BP | angle of W_t - W_0 to -grad_BP(W_t) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for e in epochs:
    r = rows[e]; d = r["diag"]
    upd = {k: v for k, v in d["align"]["update_deg"].items() if k != "readout"}
    print(f"| {e} | {r['test_error']:.1f} | {r['train_loss']:.2f} | {j(d['wnorm'], 1)} | {list(d['zero'].values())[-1]:.2f} | {j(d['gate'])} | {j(d['gate_const'])} | "
          f"{j(d['common']) if d['common'] else '-'} | {d['logit_cm']:.2f} / {d['logit_disc']:.2f} | {d['top_class']:.2f} | {j0(upd)} | {j0(d['dW_ang_bp']) if 'dW_ang_bp' in d else '-'} |")
