"""Collect runs/sweep_*.jsonl (and noise_/seed_ files) into tables: final and best test error over the 20 epochs."""
import json, glob, re, collections
def load(path):
    rows = [json.loads(l) for l in open(path)]
    epochs = [r for r in rows if "epoch" in r]
    final = [r for r in rows if r.get("final")][0]
    best = min(epochs[1:], key=lambda r: r["test_error"])
    return final["test_error"], best["test_error"], best["epoch"], final["train_loss"]
table = collections.defaultdict(dict)
for p in glob.glob("runs/sweep_*.jsonl"):
    m = re.match(r"runs/sweep_(.+?)_(drtp|drtp-centered|readout-only|node-perturbation)_(.+)\.jsonl", p)
    table[(m.group(1), m.group(2))][float(m.group(3))] = load(p)
lrs = sorted({lr for v in table.values() for lr in v})
print("| run | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |")
print("|---|" + "---|" * len(lrs))
for key in sorted(table):
    cells = []
    for lr in lrs:
        if lr in table[key]:
            f, b, e, _ = table[key][lr]; cells.append(f"{f:.1f} ({b:.1f}@{e})")
        else: cells.append("")
    print(f"| `{key[0]} {key[1]}` | " + " | ".join(cells) + " |")
print()
for pat in ("runs/noise_*.jsonl", "runs/seed_*.jsonl", "runs/diag_*.jsonl", "runs/variant_*.jsonl", "runs/npmulti_*.jsonl"):
    for p in sorted(glob.glob(pat)):
        try: f, b, e, L = load(p); print(f"{p}: final {f:.2f}, best {b:.2f} at epoch {e}, final train loss {L:.3f}")
        except Exception as ex: print(p, "incomplete")
