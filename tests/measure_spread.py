"""The spread behind every bound of tests/test_learning.py: each triple's measurements (``learning.measured``)
over seeds, torch thread counts and the fast paths on and off, one configuration per process.

    python tests/measure_spread.py run --threads 1 --fast on --seeds 0-4 --out spread/t1-fast.json
    python tests/measure_spread.py run --threads 1 --fast on --seeds 0 --corruption zero --out spread/zero.json
    python tests/measure_spread.py run --what mean_update --rules node-perturbation --seeds 0-4 --out spread/np.json
    python tests/measure_spread.py docs --threads 1 --fast on --out spread/docs-t1-fast.json
    python tests/measure_spread.py doc-table --documented spread/docs-t1-fast.json --runs spread/docs-*.json \
        --elsewhere tests/doc_numbers_elsewhere.json
    python tests/measure_spread.py summary spread/*.json
    python tests/measure_spread.py table --runs spread/t*.json --corrupted spread/zero.json spread/random.json

``summary`` prints, per triple and measurement, the minimum and maximum over every file given; ``table`` the
ratio's range, the range of the median over seeds per configuration and each statistic's range beside the
switched-off rule's. Not a test: it takes about an hour on 2 cores for 5 seeds x 4 configurations.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def seeds(text: str) -> list[int]:
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import gevb.layers.dispatch as dispatch
    import learning
    from conftest import valid_pairs
    from gevb.init import SIGNS

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    fast = dispatch.reference_paths() if args.fast == "off" else _nothing()
    with fast:
        for arch, rule in valid_pairs():
            if args.rules and rule not in args.rules:
                continue
            for sign in SIGNS:
                for seed in args.seeds:
                    key = f"{arch} {rule} {sign} {seed}"
                    if key in results:
                        continue
                    results[key] = getattr(learning, args.what)(arch, rule, sign, seed, args.corruption)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(results, indent=1))
                    print(key, flush=True)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def summary(args: argparse.Namespace) -> None:
    values: dict[tuple[str, str], list] = {}
    for path in args.files:
        for key, record in json.loads(Path(path).read_text()).items():
            triple = " ".join(key.split()[:3])
            for name, value in record.items():
                values.setdefault((triple, name), []).append(value)
    for (triple, name), found in sorted(values.items()):
        if isinstance(found[0], list):
            columns = list(zip(*found, strict=True))
            text = ", ".join(_span([v for v in column if v is not None]) for column in columns)
        else:
            text = _span(found)
        print(f"{triple:32s} {name:12s} {text}")


def table(args: argparse.Namespace) -> None:
    """Per triple, one line: the ratio's range over the runs of ``--runs`` files, the range over those files of
    the median over seeds, and the lowest ratio of ``--corrupted`` files; then each angle statistic's range."""
    runs, medians, corrupted = {}, {}, {}
    for path in args.runs:
        per_file: dict[str, list] = {}
        for key, record in json.loads(Path(path).read_text()).items():
            triple = " ".join(key.split()[:3])
            runs.setdefault(triple, []).append(record)
            per_file.setdefault(triple, []).append(record["ratio"])
        for triple, ratios in per_file.items():
            medians.setdefault(triple, []).append(statistics.median(ratios))
    for path in args.corrupted or []:
        for key, record in json.loads(Path(path).read_text()).items():
            corrupted.setdefault(" ".join(key.split()[:3]), []).append(record)
    for triple, records in runs.items():
        ratios = [r["ratio"] for r in records]
        worst = min((r["ratio"] for r in corrupted.get(triple, [])), default=float("nan"))
        line = f"{triple:32s} ratio {min(ratios):.3f}-{max(ratios):.3f} (n={len(ratios)})"
        line += f" median {min(medians[triple]):.3f}-{max(medians[triple]):.3f}, switched off >= {worst:.3f}"
        print(line)
        for name in ("signal_deg", "update_deg", "moved", "mean_update_deg"):
            if any(name not in r for r in records):
                continue
            columns = list(zip(*(r[name] for r in records), strict=True))
            off = list(zip(*(r[name] for r in corrupted.get(triple, [])), strict=True))
            parts = []
            for j, column in enumerate(columns):
                values = [v for v in column if v is not None]
                bad = [v for v in off[j] if v is not None] if off else []
                span = f"{min(values):.2f}-{max(values):.2f}" if values else "None"
                span += f" [off {min(bad):.2f}-{max(bad):.2f}]" if bad else (" [off None]" if off else "")
                parts.append(span)
            print(f"    {name:16s} " + "; ".join(parts))


def _span(found: list) -> str:
    if not found:
        return "None"
    return f"{min(found):.3f}..{max(found):.3f} (median {statistics.median(found):.3f}, n={len(found)})"


# a ratio near zero moves by factors between kernels (tests/test_learning.py), so a bound on one run is at least
# this far beyond the worst run
NEAR_ZERO = 0.01


def learning_bounds(args: argparse.Namespace) -> None:
    """The learning test's table: per triple, a bound on seed 0's ratio (1.25 x the largest of the runs, or the
    largest plus ``NEAR_ZERO`` where that is more) where that is at most ``--meaningful``, else on the median over
    seeds 0-2 (1.2 x the largest median over every three seeds of a file), else no bound (printed as a comment)."""
    import itertools

    per_file: list[dict[str, dict[int, float]]] = []
    for path in args.runs:
        ratios: dict[str, dict[int, float]] = {}
        for key, record in json.loads(Path(path).read_text()).items():
            *triple, seed = key.split()
            ratios.setdefault(" ".join(triple), {})[int(seed)] = record["ratio"]
        per_file.append(ratios)
    triples = list(per_file[0])
    for triple in triples:
        runs = [r for ratios in per_file for r in ratios.get(triple, {}).values()]
        medians = [
            statistics.median(three)
            for ratios in per_file
            for three in itertools.combinations(ratios.get(triple, {}).values(), 3)
        ]
        name = "(" + ", ".join(f'"{part}"' for part in triple.split()) + ")"
        span = f"{min(runs):.3f}-{max(runs):.3f} (n={len(runs)})"
        if (bound := max(1.25 * max(runs), max(runs) + NEAR_ZERO)) <= args.meaningful:
            print(f"    {name}: ({_up(bound)}, SEED),  # {span}")
        elif medians and 1.2 * max(medians) <= args.meaningful:
            median_span = f"medians {min(medians):.3f}-{max(medians):.3f}"
            print(f"    {name}: ({_up(1.2 * max(medians))}, MEDIAN),  # {span}; {median_span}")
        else:
            print(f"    # {name}: no bound: {span}; medians {min(medians):.3f}-{max(medians):.3f}")


def _up(value: float) -> str:
    """``value`` rounded up to two significant digits."""
    import math

    digits = 1 - math.floor(math.log10(value))
    return f"{math.ceil(value * 10**digits) / 10**digits:.{max(digits, 0)}f}"


def other_outcomes(seed: int, folder: Path) -> dict[str, float]:
    """The training outcomes other test files bound (a test error, a training error, an epoch count), each
    trained as its test does but from ``seed``."""
    import numpy as np
    import torch

    from gevb import TrainConfig, build_model, make_rule, train_step
    from gevb.data import dataset_from_arrays
    from gevb.training import Trainer
    from test_own_data import blobs
    from test_specs import MY_NET
    from test_training import small

    out: dict[str, float] = {}
    x_train, y_train = blobs(3, (5, 7), 90, seed=0)
    x_test, y_test = blobs(3, (5, 7), 30, seed=1)
    np.savez(folder / "my.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for model, rule in (("fc-vec", "gevb"), ("lc-vec", "gevb"), ("conv", "dfa")):  # test_own_data
        config = TrainConfig(dataset=str(folder / "my.npz"), model=model, rule=rule, epochs=15, lr=3e-3,
                             batch_size=32, seed=seed, device="cpu")  # fmt: skip
        out[f"own_data {model} {rule} test_error"] = Trainer(config).fit()["test_error"]
    x_train, y_train = blobs(20, (40,), 400, seed=0)
    x_test, y_test = blobs(20, (40,), 100, seed=1)
    scale = lambda x: x.astype(np.float32) / 127.5 - 1  # noqa: E731
    data = dataset_from_arrays("stripes", scale(x_train), y_train, scale(x_test), y_test, device="cpu")
    config = TrainConfig(dataset="stripes", model="fc-vec", widths=[32, 32], epochs=10, lr=3e-3, seed=seed,
                         device="cpu")  # fmt: skip
    out["own_data twenty classes test_error"] = Trainer(config, data=data).fit()["test_error"]
    from conftest import digits_tensors  # examples/quickstart.py, its seeds replaced

    x, y = digits_tensors()
    torch.manual_seed(seed)
    model = build_model("fc-vec", input_shape=(1, 8, 8), num_classes=10, sign="nonneg", seed=seed)
    rule, optimizer = make_rule("gevb", model), torch.optim.Adam(model.parameters(), lr=1e-3)
    for batch in torch.randint(0, len(x), (50, 128)):
        train_step(model, rule, optimizer, x[batch], y[batch])
    out["readme quickstart training_error"] = 100 * (model(x).argmax(1) != y).float().mean().item()
    config = TrainConfig(model="fc-vec", rule="bp", sign="mixed", epochs=5, seed=seed)
    out["readme engine test_error"] = Trainer(config).fit()["test_error"]
    result = Trainer(small(epochs=60, lr=1e-2, stop_at_100=True, seed=seed)).fit()
    out["training stop_at_100 epochs"] = result["epochs"] if result["stopped_early"] else float("inf")
    result = Trainer(small(epochs=30, lr=0.5, val_fraction=0.2, patience=2, seed=seed)).fit()
    out["training patience epochs"] = result["epochs"] if result["stopped_early"] else float("inf")
    (folder / "my-net.yaml").write_text(MY_NET)
    config = TrainConfig(model=str(folder / "my-net.yaml"), rule="gevb", lr=1e-2, epochs=3, seed=seed, device="cpu")
    out["specs my-net test_error"] = Trainer(config).fit()["test_error"]
    return out


def others(args: argparse.Namespace) -> None:
    import tempfile

    import torch

    import gevb.layers.dispatch as dispatch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    with dispatch.reference_paths() if args.fast == "off" else _nothing(), tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for name, value in other_outcomes(seed, Path(folder)).items():
                results[f"{name} {seed}"] = value
                print(name, seed, value, flush=True)
            out.write_text(json.dumps(results, indent=1))


def docs(args: argparse.Namespace) -> None:
    """The documented runs (``doc_numbers.RUNS``) at ``--threads``, fast paths ``--fast``."""
    import torch

    import doc_numbers
    import gevb.layers.dispatch as dispatch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    with dispatch.reference_paths() if args.fast == "off" else _nothing():
        for model, rule in doc_numbers.RUNS:
            if f"{model} {rule}" not in results:
                results[f"{model} {rule}"] = doc_numbers.measure(model, rule, args.threads)
                out.write_text(json.dumps(results, indent=1))
                print(model, rule, results[f"{model} {rule}"]["test_error"], flush=True)


def doc_table(args: argparse.Namespace) -> None:
    """docs/rules.md's table from ``--documented`` (the configuration the table states) with each run's test error
    range over every configuration (the files of ``--runs``, and each machine of ``--elsewhere``: numbers the same
    command gave on other machines, some statistics only), then ``SPREAD`` for tests/test_doc_numbers.py: per run
    the largest difference from the documented value of the test error, the train error and any angle."""
    import doc_numbers

    documented = json.loads(Path(args.documented).read_text())
    runs = [json.loads(Path(path).read_text()) for path in args.runs]
    if args.elsewhere:
        runs += [machine for machine in json.loads(Path(args.elsewhere).read_text()).values()]
    angles = lambda values: ", ".join(f"{value:.0f}" for value in values)  # noqa: E731
    for model, rule in doc_numbers.RUNS:
        key, row = f"{model} {rule}", documented[f"{model} {rule}"]
        errors = [run[key]["test_error"] for run in runs if key in run]
        cells = [f"{row['test_error']:.2f} ({row['train_error']:.2f})", f"{min(errors):.2f}-{max(errors):.2f}"]
        cells += [angles(row[name]) for name in doc_numbers.ANGLES]
        print(f"| `{key}` | " + " | ".join(cells) + " |")
    print()
    for model, rule in doc_numbers.RUNS:
        key, row = f"{model} {rule}", documented[f"{model} {rule}"]
        found = [run[key] for run in runs if key in run]
        spread = [max(abs(r[name] - row[name]) for r in found if name in r) for name in ("test_error", "train_error")]
        pairs = [
            pair for r in found for name in doc_numbers.ANGLES if name in r
            for pair in zip(r[name], row[name], strict=True)
        ]  # fmt: skip
        spread.append(max(abs(a - b) for a, b in pairs))
        print(f'    ("{model}", "{rule}"): ({spread[0]:.2f}, {spread[1]:.2f}, {spread[2]:.1f}),')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run")
    one.add_argument("--threads", type=int, default=1)
    one.add_argument("--fast", choices=["on", "off"], default="on")
    one.add_argument("--seeds", type=seeds, default=[0])
    one.add_argument("--corruption", choices=["zero", "random"])
    one.add_argument("--out", required=True)
    one.add_argument("--what", choices=["measured", "mean_update"], default="measured")
    one.add_argument("--rules", type=lambda text: text.split(","), help="only these rules (comma-separated)")
    many = commands.add_parser("summary")
    many.add_argument("files", nargs="+")
    bounds = commands.add_parser("table")
    bounds.add_argument("--runs", nargs="+", required=True)
    bounds.add_argument("--corrupted", nargs="*")
    other = commands.add_parser("others", help="the outcomes other test files bound")
    other.add_argument("--threads", type=int, default=1)
    other.add_argument("--fast", choices=["on", "off"], default="on")
    other.add_argument("--seeds", type=seeds, default=[0])
    other.add_argument("--out", required=True)
    documented = commands.add_parser("docs", help="the runs docs/rules.md reports (tests/doc_numbers.py)")
    documented.add_argument("--threads", type=int, default=1)
    documented.add_argument("--fast", choices=["on", "off"], default="on")
    documented.add_argument("--out", required=True)
    documented_table = commands.add_parser("doc-table", help="docs/rules.md's table and test_doc_numbers's SPREAD")
    documented_table.add_argument("--documented", required=True, help="the configuration the table states")
    documented_table.add_argument("--runs", nargs="+", required=True, help="every configuration measured")
    documented_table.add_argument("--elsewhere", help="the same runs on other machines (doc_numbers_elsewhere.json)")
    learn = commands.add_parser("bounds")
    learn.add_argument("--runs", nargs="+", required=True)
    learn.add_argument("--meaningful", type=float, default=0.87, help="largest bound that still means learning")
    args = parser.parse_args()
    chosen = {"run": run, "summary": summary, "table": table, "bounds": learning_bounds, "others": others}
    chosen |= {"docs": docs, "doc-table": doc_table}
    chosen[args.command](args)


if __name__ == "__main__":
    main()
