"""How rules follow the gradient: angles, alignment tracking, width scaling, sign checks, cluster quality, plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import small_widths, valid_pairs
from gevb import TrainConfig, Trainer, build_model, load_dataset, make_rule
from gevb.alignment import (
    angle_deg,
    angles_deg,
    grads_kept,
    layer_names,
    measure_alignment,
    product_angles_deg,
    weight_updates,
)
from gevb.analysis.clusters import block_features, cluster_ratio, embed
from gevb.analysis.sign import sign_check
from gevb.analysis.width import width_scaling
from gevb.build import load_run
from gevb.cli import main
from gevb.rules import loss_and_error
from gevb.training import train

plots = pytest.importorskip("gevb.analysis.plots", reason="needs matplotlib: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def batch(digits):
    x, y = digits
    return x[:128], y[:128]


def test_angles():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 3.0], [1.0, 1.0], [-1.0, 0.0], [1.0, 0.0]])
    angles = angles_deg(a, b)
    torch.testing.assert_close(angles[:3], torch.tensor([90.0, 0.0, 180.0], dtype=torch.float64), atol=1e-5, rtol=0)
    assert math.isnan(angles[3])
    assert angle_deg(torch.ones(2, 3), torch.ones(2, 3)) == pytest.approx(0.0, abs=1e-5)


def test_alignment_of_bp_is_zero_and_gevb_follows_the_theory(batch):
    x, y = batch
    model = build_model("fc-vec", (1, 8, 8), 10, "nonneg", seed=0)
    exact = measure_alignment(model, make_rule("bp", model), x, y)
    assert all(a == pytest.approx(0.0, abs=1e-3) for kind in exact.values() for a in kind.values())
    gevb = measure_alignment(model, make_rule("gevb", model), x, y)
    assert list(gevb["signal_deg"]) == ["fc1", "fc2"]
    assert list(gevb["update_deg"]) == ["fc1", "fc2", "readout"]
    assert gevb["update_deg"]["readout"] == pytest.approx(0.0, abs=1e-3)  # the readout gets its true gradient
    assert gevb["update_deg"]["fc1"] < 20 and 53 < gevb["update_deg"]["fc2"] < 58
    mixed = build_model("fc-vec", (1, 8, 8), 10, "mixed", seed=0)
    assert min(measure_alignment(mixed, make_rule("gevb", mixed), x, y)["signal_deg"].values()) > 75
    conv = build_model("conv", (1, 8, 8), 10, "mixed", small_widths("conv"), seed=0)
    assert min(measure_alignment(conv, make_rule("dfa", conv), x, y)["signal_deg"].values()) > 70


def alignment_three_passes(model, rule, x, y) -> dict:
    """``measure_alignment``'s reference: a forward pass of its own for the signals, for the rule's updates and
    for BP's gradients (the measurement shares one where neither rule records a graph)."""
    reference = make_rule("bp", model)
    with grads_kept(model, rule):
        with torch.no_grad():
            output = model.trace(x)
            error = loss_and_error(output.logits, y)[1]
            signals = [r.signals(model, output, error, y) for r in (rule, reference)] if rule.per_unit_signals else []
        updates, gradients = weight_updates(model, rule, x, y), weight_updates(model, reference, x, y)
    names = layer_names(model)
    signal = dict.fromkeys(names[:-1])
    if signals:
        vectors = signals[0].vector, signals[1].vector
        for name, d, t in zip(names[:-1], signals[0].scalars, signals[1].scalars, strict=True):
            signal[name] = product_angles_deg(d, t, *vectors).nanmean().item()
    update = {name: angle_deg(u, g) for name, u, g in zip(names, updates, gradients, strict=True)}
    return {"signal_deg": signal, "update_deg": update}


@pytest.mark.parametrize(("arch", "rule_name"), valid_pairs())
def test_alignment_from_one_forward_pass_equals_three_passes(batch, arch, rule_name):
    x, y = batch[0][:32], batch[1][:32]
    sign = "mixed" if len(arch) % 2 else "nonneg"  # both signs over the architectures
    model = build_model(arch, (1, 8, 8), 10, sign, small_widths(arch), seed=2)
    fast = measure_alignment(model, make_rule(rule_name, model, seed=3), x, y)
    reference = alignment_three_passes(model, make_rule(rule_name, model, seed=3), x, y)
    nan_as_none = {
        kind: {k: None if v is None or math.isnan(v) else v for k, v in d.items()} for kind, d in reference.items()
    }
    assert fast == nan_as_none


def test_measuring_leaves_parameters_and_grads_as_they_were(batch):
    x, y = batch
    model = build_model("conv-vec", (1, 8, 8), 10, "nonneg", small_widths("conv-vec"), seed=1)
    for param in model.parameters():
        param.grad = torch.randn_like(param)
    before = [(param.detach().clone(), param.grad.clone()) for param in model.parameters()]
    measure_alignment(model, make_rule("gevb", model), x, y)
    sign_check(model, make_rule("gevb", model), x[:4], y[:4])
    for param, (value, grad) in zip(model.parameters(), before, strict=True):
        assert torch.equal(param, value) and torch.equal(param.grad, grad)


@pytest.mark.parametrize(("model", "rule"), [("conv", "dfa"), ("fc-vec", "node-perturbation")])
def test_tracking_alignment_records_angles_and_does_not_change_training(tmp_path, model, rule):
    """Also for a rule with state that measuring uses (node perturbation's noise stream)."""
    config = TrainConfig(model=model, rule=rule, widths=list(small_widths(model)), epochs=2, device="cpu")
    plain = Trainer(config)
    plain.fit()
    tracked = Trainer(config.replace(track_alignment=True), out=tmp_path / "run")
    tracked.fit()
    for a, b in zip(plain.model.parameters(), tracked.model.parameters(), strict=True):
        assert torch.equal(a, b)
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records] == [0, 1, 2]
    for record in records:
        signal, update = record["alignment"]["signal_deg"], record["alignment"]["update_deg"]
        expected = ["conv1", "conv2", "fc1"] if model == "conv" else ["fc1", "fc2"]
        assert list(signal) == expected and list(update) == [*expected, "readout"]
        assert all(0 <= angle <= 180 for angle in [*signal.values(), *update.values()])


def test_width_scaling_follows_the_theory_on_small_widths():
    """method.md §6 on digits, widths 64..512, two seeds: first layer ~ width^-1/2, last ~55.65 deg, mixed/DFA ~90."""
    result = width_scaling("fc-vec", (64, 128, 256, 512), seeds=2, device="cpu")
    summary = result["summary"]
    assert -0.65 <= summary["first_hidden_slope"] <= -0.35
    assert 53 <= summary["last_hidden_deg_min"] <= summary["last_hidden_deg_max"] <= 58
    assert summary["mixed_min_deg"] > 80 and summary["dfa_min_deg"] > 80
    first = [row[0] for row in result["networks"]["gevb-nonneg"]["mean_deg"]]
    assert first == sorted(first, reverse=True)


def test_width_scaling_command_json_summary(capsys, tmp_path):
    figure = tmp_path / "w.png"
    argv = ["width-scaling", "--widths", "64,128", "--seeds", "1", "--device", "cpu", "--json", "--plot", str(figure)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["summary"]) == {
        "first_hidden_slope", "last_hidden_deg_min", "last_hidden_deg_max", "mixed_min_deg", "dfa_min_deg"
    }  # fmt: skip
    assert set(result["networks"]) == {"gevb-nonneg", "gevb-mixed", "dfa-nonneg", "dfa-mixed"}
    assert figure.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit, match="2"):
        main(["width-scaling", "--model", "fc", "--device", "cpu"])  # argparse: not a vectorized choice
    assert main(["width-scaling", "--widths", "64,65", "--device", "cpu", "--plot", "-"]) == 2
    assert "two even --widths" in capsys.readouterr().err


def random_examples(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 1, 8, 8, generator=generator) * 2 - 1, torch.randint(0, 10, (count,), generator=generator)


@pytest.mark.parametrize("model_name", ["fc-vec", "lc-vec"])
def test_no_weight_ever_opposes_the_gradient_in_a_nonneg_vnn_without_weight_sharing(digits, model_name):
    x, y = random_examples(40, seed=3)
    for seed in range(3):
        model = build_model(model_name, (1, 8, 8), 10, "nonneg", small_widths(model_name), seed=seed)
        result = sign_check(model, make_rule("gevb", model), x, y)
        assert all(row["max_fraction"] == 0.0 for row in result.values()), result
    model = build_model(model_name, (1, 8, 8), 10, "nonneg", small_widths(model_name), seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rule = make_rule("gevb", model)
    for step in range(20):  # weights far from initialization, still >= 0 past the first layer
        xs, ys = digits[0][step * 32 : step * 32 + 32], digits[1][step * 32 : step * 32 + 32]
        rule.set_grads(model, model.trace(xs), ys)
        optimizer.step()
        model.apply_constraint()
    result = sign_check(model, rule, digits[0][:60], digits[1][:60])
    assert all(row["max_fraction"] == 0.0 for row in result.values()), result


def test_mixed_signs_and_weight_sharing_break_sign_matching():
    x, y = random_examples(20, seed=4)
    mixed = build_model("fc-vec", (1, 8, 8), 10, "mixed", small_widths("fc-vec"), seed=0)
    result = sign_check(mixed, make_rule("gevb", mixed), x, y)
    assert result["fc1"]["mean_fraction"] > 0.05 and result["fc2"]["mean_fraction"] > 0.05
    assert result["readout"]["max_fraction"] == 0.0  # the readout's update is the gradient
    conv = build_model("conv-vec", (1, 8, 8), 10, "nonneg", (8, 8, 16), seed=0)
    result = sign_check(conv, make_rule("gevb", conv), x, y)
    assert max(result["conv1"]["mean_fraction"], result["conv2"]["mean_fraction"]) > 0


def test_sign_check_command(capsys, tmp_path):
    assert main(["sign-check", "--examples", "8", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 8 and all(row["max_fraction"] == 0 for row in result["layers"].values())
    assert main(["sign-check", "--sign", "mixed", "--examples", "4", "--device", "cpu"]) == 0
    assert "opposite signs" in capsys.readouterr().out


def test_cluster_ratio_is_small_for_tight_classes_and_near_one_for_noise():
    generator = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    tight = np.eye(5)[labels] * 10 + generator.normal(size=(200, 5)) * 0.1
    assert cluster_ratio(tight, labels) < 0.05
    assert 0.9 < cluster_ratio(generator.normal(size=(200, 5)), labels) < 1.1


def test_cluster_quality_and_plot_commands_on_a_digits_run(capsys, tmp_path):
    """GEVB training separates the classes in the last conv block's features: measured on this run, the
    ratio falls from 0.666 at initialization to 0.510 (DFA in conv: 0.851 to 0.644; BP 0.56 and 0.73)."""
    run = tmp_path / "run"
    argv = ["train", "--model", "conv-vec", "--widths", "8,8,32", "--epochs", "15", "--lr", "3e-3", "--track-alignment"]
    assert main([*argv, "--device", "cpu", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["cluster-quality", str(run), "--examples", "120", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["examples"] == 120
    assert result["improvement"] == pytest.approx(result["initial_ratio"] - result["trained_ratio"])
    assert result["improvement"] > 0.05
    x, y = load_dataset("digits", device="cpu").test.x[:120], load_dataset("digits", device="cpu").test.y[:120]
    trained = load_run(run, device="cpu").model
    initial = build_model("conv-vec", (1, 8, 8), 10, "nonneg", widths=(8, 8, 32), seed=0)
    for model, ratio in ((initial, result["initial_ratio"]), (trained, result["trained_ratio"])):
        assert ratio == pytest.approx(cluster_ratio(embed(block_features(model, x)), y.numpy()), rel=1e-9)
    assert (run / "cluster-quality.png").read_bytes().startswith(b"\x89PNG")
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").read_bytes().startswith(b"\x89PNG")
    fc_run = tmp_path / "fc"
    assert main(["train", "--epochs", "1", "--device", "cpu", "--out", str(fc_run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["cluster-quality", str(fc_run), "--device", "cpu"]) == 2
    assert "needs a conv or lc model" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 2


def test_run_figure_has_error_and_alignment_panels(tmp_path):
    config = TrainConfig(model="fc-vec", widths=[16, 12], epochs=2, track_alignment=True, device="cpu")
    train(config, out=tmp_path / "run")
    from gevb.runs import collect_runs

    figure = plots.run_figure(collect_runs(tmp_path)[0])
    titles = [ax.get_title() for ax in figure.get_axes()]
    assert titles == ["error", "loss", "signal angle to BP (hidden layers)", "update angle to BP gradient"]
    assert [len(ax.get_lines()) for ax in figure.get_axes()] == [2, 2, 3, 4]  # test, train; layers + the 90 deg line
