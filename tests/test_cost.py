"""What a network costs (``gevb.cost``, ``gevb summary``): FLOPs that follow the weights' shapes, the same
whichever kernels the engine picks, and a summary that reports them with measured times."""

from __future__ import annotations

import json

import pytest
import torch

import gevb.layers.dispatch as dispatch
from conftest import load_benchmark, small_widths
from gevb import ARCHITECTURES, build_model
from gevb.cli import main
from gevb.cost import step_flops, step_ms, training_step


def test_forward_flops_are_two_per_weight_per_example():
    """A conventional fc net (D -> W1 -> W2 -> C): 2 B (D W1 + W1 W2 + W2 C), a multiply and an add per weight
    and example."""
    model = build_model("fc", (1, 8, 8), 10, "mixed", widths=(32, 24), seed=0)
    assert step_flops(model, "bp", 16)["forward"] == 2 * 16 * (64 * 32 + 32 * 24 + 24 * 10)
    # the VNN: every layer's GEMM for each of the K = 10 components (the first one's weight holds K filters per
    # unit, the others are shared by the components), the readout one unit per class
    vectorized = build_model("fc-vec", (1, 8, 8), 10, "nonneg", widths=(32, 24), seed=0)
    flops = step_flops(vectorized, "gevb", 16)
    assert flops["forward"] == 2 * 16 * 10 * (64 * 32 + 32 * 24 + 24 * 1)
    assert flops["forward"] < flops["step"] < 3 * flops["forward"]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_flops_are_the_same_with_the_fast_paths_and_the_reference_paths(arch):
    """The counter's formulas for the engine's own kernels (oneDNN's GEMM, the LC row GEMMs) give what the
    reference paths' plain aten ops give. The LC step's GEMMs carry the bias gradient as an extra column,
    which the reference sums apart: within 1%. A first convolution with thin filters runs as one GEMM whose
    ones row carries the bias (``dispatch.use_conv_gemm``): one multiply-add more per output value."""
    batch = 8
    model = build_model(arch, (1, 8, 8), 10, "nonneg", small_widths(arch), seed=0)
    rule = "gevb" if ARCHITECTURES[arch].vectorized else "dfa"
    fast = step_flops(model, rule, batch)
    with dispatch.reference_paths():
        reference = step_flops(model, rule, batch)
    if arch == "conv-vec":  # (K + 1) * out maps of 8 x 8 (3 x 3 filters, padding 1): the components and t . h
        first = model.layers[0]
        bias_row = 2 * batch * (first.vector_dim + 1) * first.out_channels * 8 * 8
        reference = {part: flops + bias_row for part, flops in reference.items()}
    assert fast["forward"] == reference["forward"] > 0
    if ARCHITECTURES[arch].family == "lc":
        assert fast["step"] == pytest.approx(reference["step"], rel=0.01)
    else:
        assert fast["step"] == reference["step"]


def test_costing_leaves_the_model_as_it_was():
    model = build_model("conv-vec", (1, 8, 8), 10, "nonneg", small_widths("conv-vec"), seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    step_flops(model, "gevb", 4)
    times = step_ms(model, "gevb", 4, calls=1)
    assert times["step"] > 0 and times["forward"] > 0
    assert all(map(torch.equal, before, model.parameters())) and all(p.grad is None for p in model.parameters())


def test_summary_reports_flops_per_step_and_with_time_the_measured_times(capsys):
    argv = ["summary", "--model", "lc-vec", "--widths", "8,8,32", "--device", "cpu"]
    assert main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = build_model("lc-vec", (1, 8, 8), 10, "nonneg", widths=(8, 8, 32), seed=0)
    assert printed["cost"]["rule"] == "gevb" and printed["cost"]["batch_size"] == 128
    assert printed["cost"]["gflop"] == {k: v / 1e9 for k, v in step_flops(model, "gevb", 128).items()}
    assert "ms" not in printed["cost"]
    assert main([*argv, "--rule", "bp", "--time", "2", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    gflop = step_flops(model, "bp", 128)
    assert lines[-2] == f"per batch of 128: forward {gflop['forward'] / 1e9:.3g} GFLOP, bp training step " + (
        f"{gflop['step'] / 1e9:.3g} GFLOP"
    )
    assert lines[-1].startswith("measured here (cpu, 1 thread, median of 2): forward ")


@pytest.mark.parametrize("arch", ["conv-vec", "lc-vec"])
def test_the_gemm_floor_replays_every_gemm_of_a_step(arch, monkeypatch):
    """``benchmarks/gemm_floor.py`` records a step's GEMMs and replays each alone: the replayed calls' FLOPs add
    up to the step's count, so no GEMM of the step is left out of its floor."""
    floor = load_benchmark("gemm_floor.py", monkeypatch)
    model = build_model(arch, (1, 8, 8), 10, "nonneg", small_widths(arch), seed=0)
    step = training_step(model, "gevb", 8)
    step()
    recorder = floor.GemmRecorder()
    with recorder:
        step()
    rows = floor.replay(recorder.calls, repeats=1)
    assert sum(calls * flops for _, _, calls, _, flops in rows) == step_flops(model, "gevb", 8)["step"] > 0
    assert all(ms > 0 for _, _, _, ms, _ in rows)
