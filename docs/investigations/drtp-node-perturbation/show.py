"""Print a diag_train.py JSONL file as a compact per-epoch table."""
import json, sys
for path in sys.argv[1:]:
    print("==", path)
    for l in open(path):
        r = json.loads(l)
        if "diag" not in r: print("  final:", {k: r[k] for k in ("test_error", "train_error", "train_loss")}); continue
        d = r["diag"]
        f = lambda k, dd=None: ",".join(f"{v:.3g}" for v in (dd or d.get(k, {})).values()) or "-"
        print(f"  {r['epoch']:2d} tr {r['train_error']:5.1f} te {r['test_error']:5.1f} L {r['train_loss']:6.2f} | wn {f('wnorm')} | rel {f('dW_rel')} | zero {f('zero')} | gate {f('gate')} | gconst {f('gate_const')} | cm {f('common')} | lg {d['logit_cm']:.3g}/{d['logit_disc']:.3g} top {d['top_class']:.2f} | sig {f(0, d['align']['signal_deg'])} | upd {f(0, d['align']['update_deg'])} | dWbp {f('dW_ang_bp')}")
