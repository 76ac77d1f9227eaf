"""``--precision`` (gevb/precision.py): tf32 is fp32 on the CPU, bf16 steps stay near fp32's with fp32
parameters, gradients and optimizer state, and the process-wide settings are restored after training."""

from __future__ import annotations

import pytest
import torch

from conftest import cuda_only, small_widths
from gevb import ARCHITECTURES, build_model
from gevb.precision import precision
from test_step import engine, engine_steps, relative_change_error

# Measured, 3 steps on (1, 8, 8) inputs, the worst tensor's update against fp32's: fc-vec/gevb 0.021, fc/dfa
# 0.033, conv/dfa 0.065, lc/dfa 0.091, lc-vec/gevb 0.17, conv/bp 0.21, lc-vec/node-perturbation 0.28,
# conv-vec/gevb 0.35 (bf16 keeps 8 bits of mantissa, and a VNN gate within rounding of 0 switches a whole
# K-vector). A wrong-sign or missing update gives >= 1; stale bf16 weights gave conv 0.30-0.76.
BF16_CHANGE_ERROR = 0.5
# And from below: a precision flag that changes nothing must fail. The worst tensor's bf16 error in the three
# CPU cases above measured 0.021 (fc-vec/gevb), 0.065 (conv/dfa), 0.28 (lc-vec/node-perturbation) on an AMD
# EPYC at one thread; float32 rounding alone stays below 4e-5 (test_step.py). Hence at least 5e-3.
BF16_MIN_CHANGE_ERROR = 5e-3
# TF32 keeps 10 bits of mantissa (bf16: 8), so its matmuls round about 4x finer: at least 1e-4 where the GPU
# has TF32 (compute capability 8.0 on). Not yet measured on a GPU (benchmarks/gpu_check.sh runs this test).
TF32_MIN_CHANGE_ERROR = 1e-4


def three_steps(arch: str, rule: str, kind: str, device: str = "cpu"):
    trainer = engine(arch, rule, "nonneg", (1, 8, 8), torch.float32, device)
    trainer.config = trainer.config.replace(precision=kind)
    initial, _ = engine_steps(trainer)
    return trainer, initial, {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


@pytest.mark.parametrize(("arch", "rule"), [("fc-vec", "gevb"), ("conv", "dfa"), ("lc-vec", "node-perturbation")])
def test_bf16_steps_stay_near_fp32_with_fp32_state_and_tf32_is_fp32_on_the_cpu(arch, rule):
    _, initial, fp32 = three_steps(arch, rule, "fp32")
    _, _, tf32 = three_steps(arch, rule, "tf32")
    assert all(torch.equal(tf32[name], value) for name, value in fp32.items())  # no TF32 on the CPU
    trainer, _, bf16 = three_steps(arch, rule, "bf16")
    errors = []
    for name, value in bf16.items():
        assert value.dtype == torch.float32 and trainer.model.get_parameter(name).grad.dtype == torch.float32
        errors.append(relative_change_error(value, fp32[name].double(), initial[name]))
        assert errors[-1] <= BF16_CHANGE_ERROR, f"{name}: bf16 update off by {errors[-1]:.3g} of fp32's"
    assert max(errors) >= BF16_MIN_CHANGE_ERROR, f"bf16 changed the updates by {max(errors):.2g} only: not in bf16?"
    for state in trainer.optimizer.state.values():
        assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point() and t.dim())


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_a_bf16_forward_sees_weights_changed_in_place_since_the_last_one(arch, digits):
    """An epoch's steps share one precision block, and the optimizer changes the weights in place between
    them: autocast's cache of bf16 weight copies handed every later forward the old weights (in conv and
    conv-vec, whose convolutions take the weights themselves: they trained on stale weights)."""
    model = build_model(arch, (1, 8, 8), 10, "nonneg", widths=small_widths(arch), seed=0)
    x = digits[0][:16]
    with torch.no_grad(), precision("bf16", torch.device("cpu")):
        model(x)
        for param in model.parameters():
            param.mul_(0.5)  # in place, as Adam's step is
        after = model(x)
    with torch.no_grad(), precision("bf16", torch.device("cpu")):
        fresh = model(x)  # a new block: every cast made from the current weights
    assert torch.equal(after, fresh)


def test_training_in_a_precision_restores_torchs_settings():
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    for kind in ("tf32", "bf16"):
        three_steps("fc-vec", "gevb", kind)
        assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == before
    with pytest.raises(ValueError, match="unknown precision 'fp16'; use one of fp32, tf32, bf16"):
        with precision("fp16", torch.device("cpu")):
            pass


@cuda_only
@pytest.mark.parametrize(("arch", "rule"), [("conv-vec", "gevb"), ("lc", "dfa")])
def test_tf32_and_bf16_on_cuda_stay_near_fp32(arch, rule):
    _, initial, fp32 = three_steps(arch, rule, "fp32", "cuda")
    tf32_hardware = torch.cuda.get_device_capability() >= (8, 0)
    for kind, least in (("tf32", TF32_MIN_CHANGE_ERROR if tf32_hardware else 0.0), ("bf16", BF16_MIN_CHANGE_ERROR)):
        _, _, other = three_steps(arch, rule, kind, "cuda")
        errors = [relative_change_error(value, fp32[name].double(), initial[name]) for name, value in other.items()]
        assert max(errors) <= BF16_CHANGE_ERROR, kind
        assert max(errors) >= least, f"{kind} changed the updates by {max(errors):.2g} only: a no-op flag?"
