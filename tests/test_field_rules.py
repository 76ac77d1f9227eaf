"""The field's other rules (docs/rules.md) against the properties that define them: feedback alignment
and uSF are BP when their backward weights are the forward ones, DRTP's hidden updates do not
depend on the output, node perturbation's estimate is unbiased. Their whole steps are in test_step.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.testing import assert_close

from conftest import small_widths
from gevb import ARCHITECTURES, build_model, make_rule, train_step
from gevb.alignment import angle_deg, measure_alignment
from gevb.init import SIGNS

F64 = {"dtype": torch.float64}


def batch(channels: int = 1, size: int = 6, classes: int = 10):
    generator = torch.Generator().manual_seed(channels)
    x = torch.randn(size, channels, 8, 8, generator=generator, **F64)
    return x, torch.randint(0, classes, (size,), generator=generator)


def gradients(rule, model, x, y) -> dict[str, torch.Tensor]:
    rule.set_grads(model, model.trace(x), y)
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("sign", SIGNS)
def test_fa_with_the_forward_weights_as_feedback_is_bp(name, sign):
    """The credit interface carries what the rule gives it: FA's recursion through B = W is exact BP."""
    model = build_model(name, (1, 8, 8), 10, sign, widths=small_widths(name), seed=2, **F64)
    x, y = batch()
    rule = make_rule("fa", model, seed=5)
    second = model.weight_indices[1]
    assert not torch.equal(getattr(rule, f"feedback_{second}"), model.layers[second].weight)  # random by default
    fa = gradients(rule, model, x, y)
    for i in model.weight_indices[1:]:
        getattr(rule, f"feedback_{i}").copy_(model.layers[i].weight)
    expected = gradients(make_rule("bp", model), model, x, y)
    for key, value in gradients(rule, model, x, y).items():
        assert_close(value, expected[key], msg=key)
    assert any(not torch.allclose(fa[key], expected[key]) for key in expected if "layers.0" in key)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_usf_with_weights_of_its_magnitude_is_bp(name):
    """``c_l sign(W_l)`` is W_l itself when every weight of layer l past the first has magnitude c_l."""
    model = build_model(name, (1, 8, 8), 10, "mixed", widths=small_widths(name), seed=3, **F64)
    rule = make_rule("usf", model)
    with torch.no_grad():
        for i in model.weight_indices[1:]:
            model.layers[i].weight.copy_(rule.scales[i] * torch.sign(model.layers[i].weight))
    x, y = batch()
    expected = gradients(make_rule("bp", model), model, x, y)
    for key, value in gradients(rule, model, x, y).items():
        assert_close(value, expected[key], msg=key)
    with torch.no_grad():  # magnitudes that differ: no longer BP
        model.weight_layers[-1].weight.mul_(torch.linspace(0.5, 2, model.weight_layers[-1].weight.shape[-1]))
    expected = gradients(make_rule("bp", model), model, x, y)
    assert not torch.allclose(gradients(rule, model, x, y)["layers.0.weight"], expected["layers.0.weight"])


@pytest.mark.parametrize("sign", SIGNS)
def test_fa_feedback_is_drawn_like_the_weights_fixed_and_saved(sign, digits):
    model = build_model("conv", (1, 8, 8), 10, sign, widths=small_widths("conv"), seed=0)
    rule = make_rule("fa", model, seed=11)
    feedback = {i: getattr(rule, f"feedback_{i}").clone() for i in model.weight_indices[1:]}
    assert sorted(key.removeprefix("feedback_") for key in rule.state_dict()) == sorted(map(str, feedback))
    for i, value in feedback.items():
        assert value.shape == model.layers[i].weight.shape and value.abs().max() > 0
        assert (value.min() >= 0) == (sign == "nonneg")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3):
        train_step(
            model, rule, optimizer, digits[0][step * 32 : (step + 1) * 32], digits[1][step * 32 : (step + 1) * 32]
        )
    assert all(torch.equal(getattr(rule, f"feedback_{i}"), value) for i, value in feedback.items())
    other = make_rule("fa", build_model("conv", (1, 8, 8), 10, sign, widths=small_widths("conv"), seed=0), seed=12)
    assert not torch.equal(other.feedback_3, feedback[3])
    other.load_state_dict(rule.state_dict())
    assert torch.equal(other.feedback_3, feedback[3])


@pytest.mark.parametrize("name", ["fc-vec", "fc", "conv-vec", "lc"])
def test_drtp_hidden_updates_do_not_depend_on_the_output(name):
    """DRTP's hidden layers learn from the target alone: changing the readout changes only the readout's update."""
    model = build_model(name, (1, 8, 8), 10, "nonneg", widths=small_widths(name), seed=4, **F64)
    x, y = batch()
    rule = make_rule("drtp", model, seed=1)
    before = gradients(rule, model, x, y)
    with torch.no_grad():
        model.weight_layers[-1].weight.mul_(3.0)
    after = gradients(rule, model, x, y)
    readout = model.weight_indices[-1]
    for key in before:
        if key.startswith(f"layers.{readout}."):
            assert not torch.allclose(after[key], before[key]), key
        else:
            assert_close(after[key], before[key], msg=key)
    if not model.vectorized:  # signed feedback in a nonneg network (docs/rules.md)
        assert rule.feedback.min() < 0 < rule.feedback.max()


@pytest.mark.parametrize("name", ["fc-vec", "fc"])
@pytest.mark.parametrize("sign", SIGNS)
def test_node_perturbation_averages_to_the_gradient(name, sign):
    """One estimate is mostly noise; the mean of 2,000 (sigma 1e-5, float64) is within 15 degrees of the
    true gradient in every hidden layer (measured 4-8 degrees), so the estimate is unbiased."""
    model = build_model(name, (1, 4, 4), 3, sign, widths=(8, 8), seed=1, **F64)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 4, 4, generator=generator, **F64), torch.randint(0, 3, (8,), generator=generator)
    with torch.no_grad():
        output = model.trace(x)  # plain: every draw's clean pass (each adds its noisy one)
    true = [g for key, g in gradients(make_rule("bp", model), model, x, y).items() if key.endswith("weight")]
    rule = make_rule("node-perturbation", model, seed=0, noise_scale=1e-5)
    total = [torch.zeros_like(g) for g in true]
    for step in range(2000):
        rule.set_grads(model, output, y)
        if step == 0:
            single = [layer.weight.grad.clone() for layer in model.weight_layers]
        for acc, layer in zip(total, model.weight_layers, strict=True):
            acc += layer.weight.grad
    assert rule.steps == 2000
    hidden = range(len(true) - 1)
    assert max(angle_deg(total[j], true[j]) for j in hidden) < 15
    assert min(angle_deg(single[j], true[j]) for j in hidden) > 30
    assert_close(total[-1] / 2000, true[-1])  # the readout's own gradient is exact


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("sign", SIGNS)
def test_a_plain_trace_gives_node_perturbation_the_clean_pass_it_would_run(name, sign, digits):
    """The clean loss's fast path: where no gate took ``t . h`` from the layer before (every conventional
    network), the trace is plain and its logits are bitwise a noiseless perturbed pass's, so node perturbation's
    update from it equals the one from its own clean pass (its reference), which it runs for any other trace."""
    model = build_model(name, (1, 8, 8), 10, sign, widths=small_widths(name), seed=3)
    x, y = digits[0][:32], digits[1][:32]
    with torch.no_grad():  # as train_step runs a rule's trace
        output = model.trace(x)
        quiet = {
            g - 1: torch.zeros(32, model.layers[g - 1].vector_dim, *output.masks[g].shape[1:])
            for g in model.gate_indices
        }  # zeros on the output h (B, K, *S) of the layer before each gate
        clean = model.perturbed_logits(output.inputs[0], quiet)
    assert output.plain or model.vectorized
    assert not output.plain or torch.equal(output.logits, clean)
    fast, reference = (make_rule("node-perturbation", model, seed=4) for _ in range(2))
    fast.set_grads(model, output, y)
    expected = {key: p.grad.clone() for key, p in model.named_parameters()}
    reference.set_grads(model, dataclasses.replace(output, plain=False), y)  # runs its own clean pass
    assert all(torch.equal(p.grad, expected[key]) for key, p in model.named_parameters())


def test_measuring_alignment_leaves_the_noise_stream_where_it_was(digits):
    model = build_model("fc-vec", (1, 8, 8), 10, "nonneg", widths=(16, 12), seed=0)
    rule = make_rule("node-perturbation", model, seed=0)
    x, y = digits[0][:32], digits[1][:32]
    rule.set_grads(model, model.trace(x), y)
    measure_alignment(model, rule, x, y)
    assert rule.steps == 1
    assert rule.state_dict()["_extra_state"] == 1


def test_node_perturbation_needs_a_positive_noise_scale():
    model = build_model("fc", (1, 8, 8), widths=(8, 8))
    with pytest.raises(ValueError, match="noise_scale must be a positive finite number, got 0"):
        make_rule("node-perturbation", model, noise_scale=0.0)
