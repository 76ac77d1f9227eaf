"""The whole training step equals a reference step: the engine's own step (the optimizer ``Trainer``
builds, every fast path on, the batches it draws) against ``tests/reference.py`` (plain torch ops,
autograd, ``Adam(fused=False)``, the clamp), for every valid (architecture, rule, sign) triple."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gevb.layers.dispatch as dispatch
import gevb.rules.base as base
from conftest import cuda_only, small_widths, valid_pairs
from gevb import ARCHITECTURES, RULES
from gevb.config import TrainConfig
from gevb.data import Dataset, Split
from gevb.rules import BP
from gevb.rules.base import give_grads_parameter_layout
from gevb.training import Trainer
from reference import reference_steps
from rule_tests import merged

# Options a rule's own test file sets for these steps, to keep them short (weight mirror's warm-up: the steps
# start from whatever B it left, which the reference reads)
TEST_OPTIONS = merged("TEST_OPTIONS")

STEPS, BATCH, LR = 3, 16, 1e-2
# (C, H, W): one- and three-channel (the MNIST and the CIFAR-10 layouts), square and not; (3, 16, 8) leaves
# the conventional networks a 2x1 map to flatten, where the (C, H, W) and (H, W, C) orders differ
SHAPES = [(1, 8, 8), (1, 8, 12), (3, 8, 8), (3, 16, 8)]


def synthetic(
    shape: tuple[int, int, int], dtype: torch.dtype, classes: int = 10, size: int = 2 * BATCH + 5, device="cpu"
) -> Dataset:
    """Random inputs and labels of the given shape (a step-equality test needs no real data).

    Named ``digits`` for the engine's data check; ``size`` leaves a short last batch in the permutation."""
    generator = torch.Generator().manual_seed(sum(shape))
    split = Split(torch.randn(size, *shape, generator=generator, dtype=dtype).to(device),
                  torch.randint(0, classes, (size,), generator=generator).to(device))  # fmt: skip
    return Dataset("digits", split, split, classes, shape, "synthetic")


def engine(arch: str, rule: str, sign: str, shape, dtype: torch.dtype, device: str = "cpu") -> Trainer:
    """A ``Trainer`` for the triple at small widths on synthetic data, its model and rule in ``dtype``."""
    config = TrainConfig(model=arch, rule=rule, sign=sign, widths=list(small_widths(arch, shape[0])),
                         batch_size=BATCH, lr=LR, seed=3, device=device,
                         rule_options=TEST_OPTIONS.get(rule, {}))  # fmt: skip
    trainer = Trainer(config, data=synthetic(shape, dtype, device=device))
    trainer.model.to(dtype)  # in place: the optimizer keeps the same parameters
    trainer.rule.to(dtype)
    return trainer


def engine_steps(trainer: Trainer) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Run ``STEPS`` steps of the engine; return the initial state and the index batches it drew."""
    initial = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    order = torch.Generator()
    order.set_state(trainer.batch_order.get_state())
    batches = list(torch.randperm(len(trainer.data.train), generator=order)[: STEPS * BATCH].split(BATCH))
    trainer.train_epoch(max_steps=STEPS)
    return initial, batches


def reference_for(
    trainer: Trainer, initial, batches, dtype=torch.float64, parts: int = 1, rule_state=None
) -> dict[str, torch.Tensor]:
    """The reference's state after the same steps from ``initial`` on the same batches (split in ``parts``);
    ``rule_state``: the rule's state before the steps (default: its state now)."""
    train = trainer.data.train
    batches = [(train.x[b], train.y[b]) for b in batches]
    return reference_steps(trainer.model, trainer.rule, initial, batches, LR, dtype, parts, rule_state)


def engine_and_reference(trainer: Trainer, dtype=torch.float64):
    """``STEPS`` engine steps and the reference's steps on the batches the engine drew, from the same model and
    rule state (a rule's backward weights may change with the steps: Kolen-Pollack, weight mirror)."""
    rule_state = {name: value.clone() for name, value in trainer.rule.state_dict().items()}
    initial, batches = engine_steps(trainer)
    expected = reference_for(trainer, initial, batches, dtype, rule_state=rule_state)
    return dict(trainer.model.named_parameters()), initial, expected


# Absolute tolerance: Adam divides a gradient far below its eps (1e-8) by eps, not by the gradient's own
# size, so a rounding difference of 2e-18 in a sum that cancels exactly (sign-symmetry's +-1 weights in a
# nonneg conv net) moves that weight by 2e-12 after lr 1e-2. 1e-10 is still 1e-9 of the weights' scale.
ATOL = 1e-10


def triples():
    return [(arch, rule, sign) for arch, rule in valid_pairs() for sign in ("nonneg", "mixed")]


def with_shapes() -> list[tuple[str, str, str, tuple[int, int, int]]]:
    """Every triple with one of ``SHAPES``, taken in turn by the rules: the k-th registered rule gets SHAPES[k % 4]
    in the nonneg network and SHAPES[(k + 2) % 4] in the mixed one, so that every architecture and sign meets
    every shape under some rule, and every rule meets a one- and a three-channel input in every network."""
    order = {name: k for k, name in enumerate(RULES)}
    return [(arch, rule, sign, SHAPES[(order[rule] + 2 * (sign == "mixed")) % 4]) for arch, rule, sign in triples()]


@pytest.mark.parametrize(("arch", "rule", "sign", "shape"), with_shapes(), ids=lambda v: "x".join(map(str, v))
                         if isinstance(v, tuple) else v)  # fmt: skip
def test_engine_steps_equal_reference_steps_in_float64(arch, rule, sign, shape, monkeypatch):
    """float64, relative 1e-9: the same arithmetic up to summation order."""
    if ARCHITECTURES[arch].family == "lc":
        monkeypatch.setattr(dispatch, "ROW_GEMM_MIN_INNER", 1)  # inner LC layers take the row GEMMs at any width
    trainer = engine(arch, rule, sign, shape, torch.float64)
    got, initial, expected = engine_and_reference(trainer)
    for name, value in got.items():
        assert not torch.equal(value.detach(), initial[name]), f"{name} did not move"
        torch.testing.assert_close(value.detach(), expected[name], rtol=1e-9, atol=ATOL, msg=name)


@cuda_only
@pytest.mark.parametrize(("arch", "rule", "sign"), triples())
def test_engine_steps_on_cuda_equal_reference_steps_in_float64(arch, rule, sign):
    """The CUDA engine (fused CUDA Adam, the kernels chosen for CUDA) against the reference run on CUDA."""
    trainer = engine(arch, rule, sign, SHAPES[-1], torch.float64, "cuda")
    got, initial, expected = engine_and_reference(trainer)
    for name, value in got.items():
        assert value.device.type == "cuda" and not torch.equal(value.detach(), initial[name]), name
        torch.testing.assert_close(value.detach(), expected[name], rtol=1e-9, atol=ATOL, msg=name)


@cuda_only
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_cuda_steps_never_wait_for_the_device(arch):
    """No host-device synchronization inside a training step, for every architecture and every registered rule
    defined for it."""
    for rule in [rule for name, rule in valid_pairs() if name == arch]:
        trainer = engine(arch, rule, "nonneg", SHAPES[-1], torch.float32, "cuda")
        train = trainer.data.train
        batches = [torch.arange(i * BATCH, (i + 1) * BATCH, device="cuda") for i in range(STEPS)]
        base.train_step(trainer.model, trainer.rule, trainer.optimizer, train.x[:BATCH], train.y[:BATCH], check=False)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for index in batches:
                base.train_step(trainer.model, trainer.rule, trainer.optimizer, train.x[index], train.y[index],
                                trainer.before_step, False)  # fmt: skip
        finally:
            torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()


def relative_change_error(got: torch.Tensor, expected: torch.Tensor, initial: torch.Tensor) -> float:
    """``|(got - w0) - (expected - w0)| / |expected - w0|``: how far a tensor's update is from the reference's."""
    change = expected - initial.to(expected.dtype)
    return ((got.to(expected.dtype) - expected).norm() / change.norm()).item()


# float32 against the float64 reference from the same float32 weights. Rounding alone moves a tensor's
# 3-step update by at most 4e-5 of its size over these 144 cases (median 3e-7). A gate whose t . h lies
# within rounding of 0 can open in one pass and stay shut in the other, which changes that unit's
# updates: it happened once here, 0.054 of a 160-entry hidden bias's update. A gradient read in the wrong
# layout sends a third of a tensor's entries the wrong way: 1.1 to 2.2. Hence 0.25.
FLOAT32_CHANGE_ERROR = 0.25


FLOAT32_CASES = [(arch, rule, sign, SHAPES[1 if sign == "nonneg" else 3]) for arch, rule, sign in triples()]


@pytest.mark.parametrize(("arch", "rule", "sign", "shape"), FLOAT32_CASES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)  # fmt: skip
def test_engine_steps_in_float32_follow_the_float64_reference(arch, rule, sign, shape):
    """float32 as the engine trains (oneDNN GEMMs, fused float32 Adam), against the float64 reference; the
    non-square shapes, one channel in the nonneg network and three in the mixed one."""
    trainer = engine(arch, rule, sign, shape, torch.float32)
    got, initial, expected = engine_and_reference(trainer, torch.float64)
    for name, value in got.items():
        assert value.dtype == torch.float32
        error = relative_change_error(value.detach(), expected[name], initial[name])
        assert error <= FLOAT32_CHANGE_ERROR, f"{name}: update off by {error:.3g} of its size"


@pytest.mark.parametrize(("arch", "rule"), [pair for pair in valid_pairs() if pair[1] != "bp-autograd"])
@pytest.mark.parametrize("channels", [1, 3])
def test_built_in_rules_set_gradients_in_the_parameters_layout(arch, rule, channels):
    """Every gevb rule hands the optimizer gradients it can read as they are: nothing for the engine to copy."""
    trainer = engine(arch, rule, "nonneg", (channels, 8, 8), torch.float64)
    x, y = trainer.data.train.x[:BATCH], trainer.data.train.y[:BATCH]
    trainer.rule.set_grads(trainer.model, trainer.model.trace(x), y)
    assert all(param.grad is not None for param in trainer.model.parameters())
    assert give_grads_parameter_layout(trainer.model) == 0


class PermutedBP(BP):
    """A user's rule: exact BP, but every gradient handed over as a transposed (non-contiguous) copy."""

    name = "bp"  # what the reference computes for it

    def deliver(self, model, output, error, target) -> None:
        super().deliver(model, output, error, target)
        for param in model.parameters():
            if param.dim() >= 2:
                param.grad = param.grad.transpose(0, 1).contiguous().transpose(0, 1)


def test_the_engine_steps_correctly_on_a_users_permuted_gradients(monkeypatch):
    """``train_step`` gives gradients the parameter's layout before the fused optimizer reads them."""
    trainer = engine("fc-vec", "bp", "mixed", (1, 8, 8), torch.float64)
    trainer.rule = PermutedBP(trainer.model)
    got, initial, expected = engine_and_reference(trainer)
    for name, value in got.items():
        torch.testing.assert_close(value.detach(), expected[name], rtol=1e-9, atol=ATOL, msg=name)
    monkeypatch.setattr(base, "give_grads_parameter_layout", lambda model: 0)  # without the copy: wrong steps
    trainer = engine("fc-vec", "bp", "mixed", (1, 8, 8), torch.float64)
    trainer.rule = PermutedBP(trainer.model)
    got, initial, expected = engine_and_reference(trainer)
    assert (
        relative_change_error(got["layers.0.weight"].detach(), expected["layers.0.weight"], initial["layers.0.weight"])
        > 0.5
    )


PARALLEL_CASES = [("lc-vec", "gevb", "nonneg", (1, 8, 8)), ("conv-vec", "bp", "mixed", (1, 8, 12)),
                  ("lc", "dfa", "nonneg", (3, 16, 8)), ("fc", "bp-autograd", "nonneg", (3, 8, 8)),
                  ("conv", "fa", "mixed", (1, 8, 12)), ("lc-vec", "usf", "nonneg", (1, 8, 8)),
                  ("fc-vec", "drtp", "mixed", (3, 8, 8)), ("conv-vec", "node-perturbation", "nonneg", (1, 8, 8)),
                  ("fc", "node-perturbation", "mixed", (3, 16, 8)), ("conv", "kolen-pollack", "nonneg", (1, 8, 12)),
                  ("fc-vec", "weight-mirror", "mixed", (1, 8, 8))]  # fmt: skip


def test_two_gloo_processes_step_like_the_single_process_reference(tmp_path):
    """Data parallel (each process half of every batch, gradients averaged in one all-reduce) in float64
    against the one-process reference of the same halves, to 1e-9 relative."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(Path(__file__).with_name("parallel_steps.py")), str(tmp_path)]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for index, (arch, rule, sign, shape) in enumerate(PARALLEL_CASES):
        saved = torch.load(tmp_path / f"case{index}.pt", weights_only=True)
        assert saved["processes"] == 2
        trainer = engine(arch, rule, sign, shape, torch.float64)  # the same model, rule and data, one process
        expected = reference_for(trainer, saved["initial"], saved["batches"], parts=2)
        for name, value in saved["final"].items():
            assert not torch.equal(value, saved["initial"][name]), f"{arch} {rule}: {name} did not move"
            torch.testing.assert_close(value, expected[name], rtol=1e-9, atol=ATOL, msg=f"{arch} {rule} {sign}: {name}")
