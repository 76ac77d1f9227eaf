"""The training engine on digits: seeding, evaluation schedule, run folders, bit-identical resume."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from conftest import cuda_only, small_widths
from gevb.checkpoint import load_checkpoint, save_checkpoint
from gevb.cli import main
from gevb.config import TrainConfig, config_from_mapping, load_config
from gevb.evaluation import evaluate_run
from gevb.hooks import Hook
from gevb.training import Trainer, train

TIMING = ("seconds", "samples_per_s")


def small(model: str = "fc-vec", rule: str = "gevb", **changes) -> TrainConfig:
    return TrainConfig(model=model, rule=rule, widths=list(small_widths(model)), **{"device": "cpu", **changes})


def metrics_without_timing(path) -> list[dict]:
    lines = (path / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    ("model", "rule"),
    [("fc-vec", "gevb"), ("conv", "dfa"), ("lc-vec", "bp"), ("conv-vec", "fa"), ("fc", "node-perturbation")],
)
def test_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path, model, rule):
    straight, split = tmp_path / "straight", tmp_path / "split"
    config = small(model, rule, epochs=4, lr=3e-3)
    train(config, straight)
    train(config.replace(epochs=2), split)
    assert load_checkpoint(split / "checkpoint.pt")["epoch"] == 2
    result = train(config, split, resume=True)
    assert result["epochs"] == 4
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert_same_state(a["model"], b["model"])
    assert_same_state(a["rule"], b["rule"])
    for key in ("exp_avg", "exp_avg_sq"):
        for p in a["optimizer"]["state"]:
            assert torch.equal(a["optimizer"]["state"][p][key], b["optimizer"]["state"][p][key])
    assert metrics_without_timing(straight) == metrics_without_timing(split)
    assert [m["epoch"] for m in metrics_without_timing(split)] == [0, 1, 2, 3, 4]  # 0: at initialization


@cuda_only
@pytest.mark.parametrize(("model", "rule"), [("conv-vec", "gevb"), ("lc", "node-perturbation")])
def test_resume_on_cuda_ends_bit_identical_to_an_uninterrupted_run(tmp_path, model, rule):
    straight, split = tmp_path / "straight", tmp_path / "split"
    config = small(model, rule, epochs=3, lr=3e-3, device="cuda")
    train(config, straight)
    train(config.replace(epochs=1), split)
    assert train(config, split, resume=True)["epochs"] == 3
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert_same_state(a["model"], b["model"])
    assert metrics_without_timing(straight) == metrics_without_timing(split)


def test_same_seed_same_run_and_another_seed_another():
    runs = [Trainer(small(epochs=2, seed=seed)).fit() for seed in (3, 3, 4)]
    assert runs[0]["test_loss"] == runs[1]["test_loss"]
    assert runs[0]["test_loss"] != runs[2]["test_loss"]


def test_evaluation_schedule_and_metrics_file(tmp_path):
    result = train(small(epochs=5, eval_every=2), tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 2, 4, 5]  # at initialization, every 2 epochs and after the last
    keys = {"epoch", "train_loss", "train_error", "test_loss", "test_error", "seconds", "samples_per_s"}
    assert all(r.keys() == keys for r in records)
    assert records[0]["seconds"] < records[1]["seconds"] < records[2]["seconds"]
    assert result["test_error"] == records[-1]["test_error"] and result["epochs"] == 5
    saved = load_config(tmp_path / "run/config.yaml")
    assert saved == small(epochs=5, eval_every=2)


def test_evaluation_matches_a_direct_count():
    trainer = Trainer(small(epochs=1))
    trainer.fit()
    with torch.no_grad():
        logits = trainer.model(trainer.data.test.x)
    wrong = (logits.argmax(1) != trainer.data.test.y).float().mean().item()
    loss = torch.nn.functional.cross_entropy(logits, trainer.data.test.y).item()
    metrics = trainer.evaluate()
    assert metrics["test_error"] == pytest.approx(100 * wrong)
    assert metrics["test_loss"] == pytest.approx(loss, rel=1e-5)


def test_stop_at_100_stops_at_the_first_perfect_evaluation(tmp_path):
    result = train(small(epochs=60, lr=1e-2, stop_at_100=True), tmp_path / "run")
    # stopped at epoch 13-22 (seeds 0-4, torch threads 1 and 2, fast paths on and off: tests/measure_spread.py)
    assert result["stopped_early"] and result["train_error"] == 0.0 and result["epochs"] < 60
    records = metrics_without_timing(tmp_path / "run")
    assert [r["train_error"] == 0.0 for r in records] == [False] * (len(records) - 1) + [True]
    again = train(small(epochs=60, lr=1e-2, stop_at_100=True), tmp_path / "run", resume=True)
    assert again["epochs"] == result["epochs"]  # a finished run does not train again
    assert len(metrics_without_timing(tmp_path / "run")) == len(records)


def test_run_folder_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    train(small(epochs=1), run)
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train(small(epochs=1), run)
    with pytest.raises(ValueError, match="holds a run with lr=0.0003, not 0.001"):
        train(small(epochs=2, lr=1e-3), run, resume=True)
    assert (run / "metrics.jsonl").read_text() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other/notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no gevb run"):
        train(small(epochs=1), tmp_path / "other")
    assert (tmp_path / "other/notes.txt").read_text() == "mine"


def test_a_write_killed_before_the_first_config_leaves_a_folder_that_runs(tmp_path):
    """SIGKILL inside ``atomic_file`` leaves only its hidden ``.part`` file: the folder counts as empty."""
    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.yaml.x1y2.part").write_text("half a confi")
    train(small(epochs=1), run)
    assert (run / "config.yaml").is_file() and not list(run.glob(".*.part"))


def test_resume_drops_evaluations_newer_than_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(small(epochs=2), run)
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    train(small(epochs=3), run, resume=True)
    save_checkpoint(run / "checkpoint.pt", {k: v for k, v in checkpoint.items() if k not in ("format", "version")})
    train(small(epochs=3), run, resume=True)  # as if killed after writing epoch 3's metrics line
    assert [r["epoch"] for r in metrics_without_timing(run)] == [0, 1, 2, 3]


def test_eval_reports_the_saved_model(tmp_path):
    result = train(small(epochs=2), tmp_path / "run")
    for path in (tmp_path / "run", tmp_path / "run/checkpoint.pt"):
        evaluated = evaluate_run(path, device="cpu")
        assert evaluated["test_error"] == result["test_error"]
        assert evaluated["train_loss"] == pytest.approx(result["train_loss"])
        assert evaluated["epoch"] == 2


def test_checkpoint_from_another_model_names_the_mismatch(tmp_path):
    train(small(epochs=1), tmp_path / "run")
    checkpoint = load_checkpoint(tmp_path / "run/checkpoint.pt")
    checkpoint["config"]["widths"] = [8, 6]
    save_checkpoint(tmp_path / "bad.pt", {k: v for k, v in checkpoint.items() if k not in ("format", "version")})
    message = r"does not fit this model 'fc-vec': layers.0.weight is \(16, 10, 64\) in the checkpoint, \(8, 10, 64\)"
    with pytest.raises(ValueError, match=message):
        evaluate_run(tmp_path / "bad.pt", device="cpu")


def test_config_layers_and_validation(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("rule: bp\nlr: 1\nwidths: [8, 4]\n")
    config = load_config(yaml_file)
    assert (config.rule, config.lr, config.widths, config.model) == ("bp", 1.0, [8, 4], "fc-vec")
    assert config_from_mapping({"lr": 0.5}, "flags", config).lr == 0.5
    bad = [
        ({"learning_rate": 1}, "unknown option 'learning_rate'"),
        ({"epochs": "3"}, "epochs must be int, got str"),
        ({"epochs": True}, "epochs must be int, got bool"),
        ({"widths": [1.5]}, "widths must be a list of integers"),
    ]
    for mapping, message in bad:
        with pytest.raises(ValueError, match=message):
            config_from_mapping(mapping, "test")
    invalid = [
        ({"rule": "dfa"}, "rule 'dfa' does not train model 'fc-vec'"),
        ({"model": "mlp"}, "unknown model 'mlp'"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"lr": -1.0}, "lr must be a positive finite number"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
    ]
    for mapping, message in invalid:
        with pytest.raises(ValueError, match=message):
            config_from_mapping(mapping, "test").validate()
    yaml_file.write_text("rule: [unclosed\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_config(yaml_file)


def test_a_version_1_checkpoint_is_refused_with_the_reason(tmp_path, capsys):
    """gevb 0.1's conventional conv/LC weights mean another function now; its runs must be trained again."""
    train(small("conv", "dfa", epochs=1), tmp_path / "run")
    checkpoint = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)
    torch.save({**checkpoint, "version": 1}, tmp_path / "run/checkpoint.pt")
    assert main(["eval", str(tmp_path / "run"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was written by gevb 0.1" in err[0] and "train the run again" in err[0]


def test_building_a_run_is_pure_and_a_trainer_writes_only_when_it_fits(tmp_path):
    """``build_run`` touches no global random state and no file; a ``Trainer`` claims its folder when built (its
    lock, ``gevb.locks``) and begins it in ``fit``; a trainer given back unfitted leaves nothing."""
    from gevb.build import build_run

    config = small(epochs=1)
    global_state = torch.get_rng_state()
    parts = build_run(config)
    assert torch.equal(torch.get_rng_state(), global_state)
    again = build_run(config)
    for a, b in zip(parts.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert parts.epoch == 0 and parts.optimizer.param_groups[0]["params"][0] is next(parts.model.parameters())
    unfitted = Trainer(config, out=tmp_path / "run")
    assert [path.name for path in (tmp_path / "run").iterdir()] == [".gevb.lock"]
    unfitted.release()
    assert not (tmp_path / "run").exists()
    trainer = Trainer(config, out=tmp_path / "run")
    trainer.fit()
    assert {path.name for path in (tmp_path / "run").iterdir()} == {
        "config.yaml", "architecture.yaml", "metrics.jsonl", "metrics.csv", "checkpoint.pt", "result.json", ".gevb.lock"
    }  # fmt: skip


class Recorder:
    """A user hook: records the calls it gets and adds one metric to every evaluation."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self, trainer) -> None:
        self.calls.append("start")

    def after_step(self, trainer) -> None:
        self.calls.append("step")

    def measure(self, trainer, limit=None) -> dict:
        self.calls.append("measure")
        return {"weight_norm": float(torch.linalg.vector_norm(trainer.model.layers[0].weight.detach()))}

    def after_epoch(self, trainer, loss, record) -> None:
        self.calls.append("epoch" if record is None else f"epoch+{record['weight_norm'] > 0}")

    def end(self, trainer, result) -> None:
        self.calls.append("end")


def test_a_user_hook_is_called_at_every_point_and_its_metrics_are_recorded(tmp_path):
    recorder = Recorder()
    trainer = Trainer(small(epochs=3, eval_every=2), out=tmp_path / "run", hooks=[recorder])
    trainer.fit()
    steps, evaluation = ["step"] * trainer.steps_per_epoch, ["measure", "epoch+True"]
    assert recorder.calls == ["start", *evaluation, *steps, "epoch", *steps, *evaluation, *steps, *evaluation, "end"]
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records] == [0, 2, 3]
    assert all(record["weight_norm"] > 0 and "test_error" in record for record in records)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_an_atomic_write_gets_the_usual_permissions_and_replaces_only_when_done(tmp_path, umask):
    from gevb.files import atomic_file, is_partial

    target = tmp_path / "result.json"
    target.write_text("old")
    previous = os.umask(umask)
    try:
        with pytest.raises(RuntimeError), atomic_file(target) as file:
            file.write(b"half")
            raise RuntimeError("killed")
        assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
        with atomic_file(target) as file:
            file.write(b"new")
            (partial,) = [p for p in tmp_path.iterdir() if p != target]
            assert is_partial(partial)
    finally:
        os.umask(previous)
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


class InterruptAfter:
    """A hook that stops ``fit`` like Ctrl-C once ``epochs`` epochs are checkpointed."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def start(self, trainer) -> None: ...

    def after_step(self, trainer) -> None: ...

    def measure(self, trainer, limit=None) -> dict:
        return {}

    def after_epoch(self, trainer, loss, record) -> None:
        if trainer.epoch == self.epochs:
            raise KeyboardInterrupt

    def end(self, trainer, result) -> None: ...


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "sgd", "momentum": 0.8, "lr": 3e-2, "lr_schedule": "step", "lr_step_epochs": 2},
        {"weight_decay": 1e-3, "lr_schedule": "cosine"},
    ],
)
def test_optimizer_settings_take_effect_and_resume_bit_identical(tmp_path, changes):
    straight, split = tmp_path / "straight", tmp_path / "split"
    config = small(epochs=4, **changes)
    trainer = Trainer(config, straight)
    trainer.fit()
    group = trainer.optimizer.param_groups[0]
    if changes.get("optimizer") == "sgd":
        assert isinstance(trainer.optimizer, torch.optim.SGD) and group["momentum"] == 0.8
        assert group["lr"] == pytest.approx(3e-2 * 0.1**2)  # x0.1 after epochs 2 and 4
    else:
        assert isinstance(trainer.optimizer, torch.optim.Adam) and group["weight_decay"] == 1e-3
        assert group["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine reaches 0 at the last epoch
    with pytest.raises(KeyboardInterrupt):  # interrupted after epoch 2, as by Ctrl-C
        Trainer(config, split, hooks=[InterruptAfter(2)]).fit()
    train(config, split, resume=True)
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert_same_state(a["model"], b["model"])
    assert a["schedule"] == b["schedule"] and a["schedule"]["last_epoch"] == 4


class ThreadsSeen(Hook):
    """Records torch's thread count at every step."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def after_step(self, trainer) -> None:
        self.seen.add(torch.get_num_threads())


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_setting_holds_while_training_and_gives_the_callers_count_back(threads):
    """torch's thread pool is process-wide: a Trainer sets ``threads`` for its own work only, so nothing run
    after it (a notebook's next cell, the next test in a worker) inherits another count."""
    before = torch.get_num_threads()
    other = 3 - threads  # the count the caller holds: not the run's
    torch.set_num_threads(other)
    try:
        seen = ThreadsSeen()
        trainer = Trainer(small(epochs=1, threads=threads), hooks=[seen])
        assert torch.get_num_threads() == other  # constructing changes nothing
        trainer.fit()
        assert seen.seen == {threads} and torch.get_num_threads() == other
        trainer.dry_run()
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        small(threads=0).validate()
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        small(optimizer="rmsprop").validate()


def test_a_validation_split_is_held_out_by_seed_and_reported_beside_train_and_test(tmp_path):
    from gevb.data import load_dataset

    full = load_dataset("digits", device="cpu").train
    config = small(epochs=2, val_fraction=0.2, seed=5)
    trainer = Trainer(config, out=tmp_path / "run")
    train_split, val = trainer.data.train, trainer.data.val
    assert len(val) == round(0.2 * len(full)) and len(train_split) + len(val) == len(full)
    rows = lambda x: sorted(map(tuple, x.flatten(1).tolist()))  # noqa: E731
    assert rows(torch.cat([train_split.x, val.x])) == rows(full.x)  # a partition of the training split
    assert torch.equal(Trainer(config).data.val.x, val.x)  # the same examples for the same seed
    assert not torch.equal(Trainer(config.replace(seed=6)).data.val.x, val.x)
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert all({"val_loss", "val_error", "train_error", "test_error"} <= record.keys() for record in records)
    assert evaluate_run(tmp_path / "run", device="cpu")["val_error"] == pytest.approx(records[-1]["val_error"])
    with pytest.raises(ValueError, match="val_fraction must be in"):
        small(val_fraction=1.0).validate()


def test_every_run_starts_with_an_evaluation_of_its_initialization(tmp_path):
    from gevb.build import build_run
    from gevb.evaluation import evaluate_splits

    config = small(epochs=1, track_alignment=True)
    train(config, tmp_path / "run")
    first = json.loads((tmp_path / "run/metrics.jsonl").read_text().splitlines()[0])
    assert first["epoch"] == 0 and first["samples_per_s"] is None and "alignment" in first
    fresh = build_run(config)
    for key, value in evaluate_splits(fresh.model, fresh.data, config.eval_batch_size).items():
        assert first[key] == pytest.approx(value, rel=1e-6), key
    assert load_checkpoint(tmp_path / "run/checkpoint.pt")["epoch"] == 1  # the initialization is not checkpointed


def test_metrics_csv_holds_the_jsonl_records_flat_and_follows_a_resume(tmp_path):
    import csv

    run = tmp_path / "run"
    config = small(epochs=3, track_alignment=True, val_fraction=0.1)
    train(config.replace(epochs=2), run)
    train(config, run, resume=True)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [record["epoch"] for record in records] == [0, 1, 2, 3]
    for row, record in zip(rows, records, strict=True):
        assert float(row["test_error"]) == record["test_error"] and float(row["val_loss"]) == record["val_loss"]
        assert float(row["signal_deg.fc1"]) == pytest.approx(record["alignment"]["signal_deg"]["fc1"])
    assert rows[0]["samples_per_s"] == "" and float(rows[1]["samples_per_s"]) > 0


def test_patience_stops_on_validation_loss_and_never_looks_at_test(tmp_path):
    config = small(epochs=30, lr=0.5, val_fraction=0.2, patience=2)  # a rate too high to keep improving
    result = Trainer(config, out=tmp_path / "run").fit()
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    val = [record["val_loss"] for record in records]
    best = val.index(min(val))
    assert result["stopped_early"] and result["epochs"] < 30  # stopped at 2-3 (seeds 0-4, threads 1, 2, fast on, off)
    assert len(val) == best + 3  # the best evaluation, then 2 without improvement
    assert all(later >= val[best] for later in val[best + 1 :])
    from gevb.data import Split, load_dataset

    data = load_dataset("digits", device="cpu")
    scrambled = Split(data.test.x, data.test.y.roll(1))  # another test split: the stop must not move
    other = Trainer(config, data=dataclasses.replace(data, test=scrambled)).fit()
    assert other["epochs"] == result["epochs"] and other["test_error"] != result["test_error"]


def test_a_cpu_run_never_touches_cuda_random_state(tmp_path, monkeypatch):
    """Checkpoints hold the RNG of the run's own device only: a CPU run on a GPU node creates no CUDA context."""

    def no_cuda(*args, **kwargs):
        raise AssertionError("a CPU run touched CUDA's random state")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name in ("get_rng_state", "get_rng_state_all", "set_rng_state", "set_rng_state_all"):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    train(small(epochs=1), tmp_path / "run")
    assert "cuda" not in load_checkpoint(tmp_path / "run/checkpoint.pt")["rng"]
    assert train(small(epochs=2), tmp_path / "run", resume=True)["epochs"] == 2
