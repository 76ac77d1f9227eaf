"""The learning rules against autograd and hand computations (docs/method.md §5) and the sign-matching
theorem (docs/method.md §6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from conftest import DEVICES, small_widths
from gevb import ARCHITECTURES, build_model, make_rule, train_step
from gevb.paper import broadcast_rule
from gevb.rules import loss_and_error

F64 = {"dtype": torch.float64}


def grads_of(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def rule_grads(rule_name, model, x, y, seed=0):
    rule = make_rule(rule_name, model, seed=seed)
    with torch.set_grad_enabled(rule.needs_graph):
        output = model.trace(x)
    loss = rule.set_grads(model, output, y)
    return loss, grads_of(model)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("sign", ["nonneg", "mixed"])
@pytest.mark.parametrize("channels", [1, 3])
def test_fast_bp_equals_autograd_for_every_parameter(name, sign, channels, device):
    classes = 10 if channels == 1 else 3  # K = classes in vectorized networks: vary it too
    model = build_model(
        name, (channels, 8, 8), classes, sign, widths=small_widths(name, channels), seed=2, device=device, **F64
    )
    generator = torch.Generator().manual_seed(channels)
    x = torch.randn(6, channels, 8, 8, generator=generator, **F64).to(device)
    y = torch.randint(0, classes, (6,), generator=generator).to(device)
    fast_loss, fast = rule_grads("bp", model, x, y)
    ref_loss, ref = rule_grads("bp-autograd", model, x, y)
    assert_close(fast_loss, ref_loss)
    assert fast.keys() == ref.keys() and len(fast) == 2 * len(model.weight_layers)
    for key in ref:
        assert ref[key].abs().max() > 0, key
        assert_close(fast[key], ref[key], msg=key)


def surrogate_grads(model, x, y, hidden_credit):
    """Autograd gradient of each weight layer alone, given dL/dh per layer (docs/method.md §5's definition)."""
    output = model.trace(x)
    _, error = loss_and_error(output.logits.detach(), y)
    batch = x.shape[0]
    expected = {}
    *hidden, readout = model.weight_indices
    for j, i in enumerate(hidden + [readout]):
        layer = model.layers[i]
        h = layer(output.inputs[i].detach())
        if i == readout:
            out_grad = torch.autograd.grad(F.cross_entropy(model._logits(h), y), h)[0]
        else:
            out_grad = hidden_credit(j, model.layers[i + 1].mask(h), error) / batch
        w, b = torch.autograd.grad(h, [layer.weight, layer.bias], out_grad)
        expected[f"layers.{i}.weight"], expected[f"layers.{i}.bias"] = w, b
    return expected


@pytest.mark.parametrize("name", ["fc-vec", "conv-vec", "lc-vec"])
def test_gevb_is_gate_times_broadcast_error(name, digits):
    """GEVB: every hidden layer's dL/dh[b, k, i] is replaced by G[b, i] e[b, k] / B."""
    model = build_model(name, (1, 8, 8), 10, "nonneg", widths=small_widths(name), seed=1, **F64)
    x, y = digits[0][:32].double(), digits[1][:32]

    def gate_times_error(j, gate, error):
        return gate.unsqueeze(1) * error.view(*error.shape, *[1] * (gate.dim() - 1))

    _, got = rule_grads("gevb", model, x, y)
    expected = surrogate_grads(model, x, y, gate_times_error)
    for key in expected:
        assert_close(got[key], expected[key], msg=key)


def test_gevb_first_layer_formula(digits):
    """``dW1[i, k, d] = sum_b G_i e_k x_d / B`` (docs/method.md §5)."""
    model = build_model("fc-vec", (1, 8, 8), 10, "nonneg", widths=(16, 12), seed=4, **F64)
    x, y = digits[0][:20].double().flatten(1), digits[1][:20]
    _, got = rule_grads("gevb", model, x, y)
    gate = model.layers[1].mask(model.layers[0](x))
    e = F.softmax(model(x), 1) - F.one_hot(y, 10)
    assert_close(got["layers.0.weight"], torch.einsum("bi,bk,bd->ikd", gate, e, x) / 20)


def test_dfa_equals_hand_computation(digits):
    """Conventional FC net, forward and updates written out with plain tensor ops."""
    model = build_model("fc", (1, 8, 8), 10, "mixed", widths=(16, 12), seed=3, **F64)
    rule = make_rule("dfa", model, seed=9)
    x, y = digits[0][:25].double().flatten(1), digits[1][:25]
    (w1, b1), (w2, b2), (w3, b3) = [(layer.weight, layer.bias[0]) for layer in model.weight_layers]
    s1, s2 = model.layers[1].t[:, 0], model.layers[3].t[:, 0]
    h1 = x @ w1.t() + b1
    a1 = h1 * (s1 * h1 >= 0)
    h2 = a1 @ w2.t() + b2
    a2 = h2 * (s2 * h2 >= 0)
    logits = a2 @ w3.t() + b3
    e = F.softmax(logits, 1) - F.one_hot(y, 10)
    d1 = (s1 * h1 >= 0) * (e @ rule.feedback[:, :16])
    d2 = (s2 * h2 >= 0) * (e @ rule.feedback[:, :12])
    expected = [d1.t() @ x, d1.sum(0), d2.t() @ a1, d2.sum(0), e.t() @ a2, e.sum(0)]
    with torch.no_grad():
        loss = rule.set_grads(model, model.trace(x), y)
    assert_close(loss, F.cross_entropy(logits, y))
    for param, want in zip(model.parameters(), expected, strict=True):
        assert_close(param.grad.reshape(want.shape), (want / 25).detach())


@pytest.mark.parametrize("name", ["conv", "lc"])
def test_dfa_in_spatial_layers(name, digits):
    """Hidden layer l gets dL/dh_l = G_l * (e @ B_l) reshaped to (C, H, W), divided by B."""
    model = build_model(name, (1, 8, 8), 10, "nonneg", widths=small_widths(name), seed=1, **F64)
    rule = make_rule("dfa", model, seed=2)
    x, y = digits[0][:16].double(), digits[1][:16]

    def gate_times_feedback(j, gate, error):
        return (gate * (error @ rule.feedback[:, : gate[0].numel()]).view(gate.shape)).unsqueeze(1)

    with torch.no_grad():
        rule.set_grads(model, model.trace(x), y)
    expected = surrogate_grads(model, x, y, gate_times_feedback)
    for key, value in expected.items():
        assert_close(model.get_parameter(key).grad, value, msg=key)


def test_dfa_feedback_is_fixed_and_round_trips(digits):
    model = build_model("conv", (1, 8, 8), 10, "mixed", widths=small_widths("conv"), seed=0)
    rule = make_rule("dfa", model, seed=11)
    before = rule.feedback.clone()
    assert before.shape == (10, 4 * 8 * 8)  # widest hidden layer: 4 channels x 8 x 8
    assert before.min() < 0 < before.max() and before.abs().max() <= 1
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(5):
        train_step(
            model, rule, optimizer, digits[0][step * 32 : (step + 1) * 32], digits[1][step * 32 : (step + 1) * 32]
        )
    assert torch.equal(rule.feedback, before)
    fresh = make_rule("dfa", build_model("conv", (1, 8, 8), widths=small_widths("conv"), sign="mixed", seed=1), seed=12)
    assert not torch.equal(fresh.feedback, before)
    fresh.load_state_dict(rule.state_dict())
    assert torch.equal(fresh.feedback, before)
    nonneg = make_rule("dfa", build_model("fc", (1, 8, 8), widths=(16, 12)), seed=0)
    assert nonneg.feedback.min() >= 0 and nonneg.feedback.max() <= 1


def row_multiples(bp: torch.Tensor, gevb: torch.Tensor) -> torch.Tensor:
    """Per row: the c with bp_row = c * gevb_row (least squares; 0 where the GEVB row is 0)."""
    norm = (gevb * gevb).sum(1)
    return torch.where(norm > 0, (bp * gevb).sum(1) / norm.clamp(min=1e-300), torch.zeros_like(norm))


def unit_rows(grads: dict[str, torch.Tensor], i: int) -> torch.Tensor:
    """Row m of layer i: the gradient of the weights into unit m and of its K-vector bias."""
    return torch.cat([grads[f"layers.{i}.weight"].flatten(1), grads[f"layers.{i}.bias"].t()], 1)


def sign_match_violations(model, x, y) -> int:
    """Check docs/method.md §6 per example and count rows where BP is not a non-negative multiple of GEVB."""
    violations = 0
    for b in range(x.shape[0]):
        _, bp = rule_grads("bp", model, x[b : b + 1], y[b : b + 1])
        _, gevb = rule_grads("gevb", model, x[b : b + 1], y[b : b + 1])
        for i in model.weight_indices:
            grad_rows, gevb_rows = unit_rows(bp, i), unit_rows(gevb, i)
            c = row_multiples(grad_rows, gevb_rows)
            parallel = torch.isclose(grad_rows, c[:, None] * gevb_rows, atol=1e-12, rtol=1e-9).all(1)
            opposite = (grad_rows * gevb_rows < -1e-24).any(1)
            violations += int((~parallel | (c < -1e-12) | opposite).sum())
    return violations


def test_sign_matching_holds_in_fc_vnn_and_fails_in_mixed(digits):
    x, y = digits[0][:40].double(), digits[1][:40]
    vnn = build_model("fc-vec", (1, 8, 8), 10, "nonneg", widths=(32, 16), seed=7, **F64)
    assert sign_match_violations(vnn, x, y) == 0
    mixed = build_model("fc-vec", (1, 8, 8), 10, "mixed", widths=(32, 16), seed=7, **F64)
    assert sign_match_violations(mixed, x, y) > 0


def test_sign_matching_survives_training(digits):
    """The theorem holds for any nonneg weights, not only at initialization."""
    x, y = digits
    model = build_model("fc-vec", (1, 8, 8), 10, "nonneg", widths=(32, 16), seed=8, **F64)
    rule, optimizer = make_rule("gevb", model), torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(40):
        train_step(model, rule, optimizer, x[step * 40 : (step + 1) * 40].double(), y[step * 40 : (step + 1) * 40])
    assert sign_match_violations(model, x[-30:].double(), y[-30:]) == 0


@pytest.mark.parametrize("name", ["fc-vec", "conv-vec", "lc-vec", "fc", "conv"])
def test_nonneg_constraint_holds_through_training(name, digits):
    x, y = digits
    rule_name = broadcast_rule(name)

    def train(constrained: bool):
        model = build_model(name, (1, 8, 8), 10, "nonneg", widths=small_widths(name), seed=0)
        rule, optimizer = make_rule(rule_name, model), torch.optim.Adam(model.parameters(), lr=2e-2)
        for step in range(60):
            batch = slice((step * 64) % 1700, (step * 64) % 1700 + 64)
            if constrained:
                train_step(model, rule, optimizer, x[batch], y[batch])
            else:
                rule.set_grads(model, model.trace(x[batch]), y[batch])
                optimizer.step()
        return model.weight_layers

    first, *later = train(constrained=True)
    assert all(layer.weight.min() >= 0 for layer in later)
    assert first.weight.min() < 0 < first.weight.max()
    # Control: the same steps without the clamp do drive weights negative.
    assert any(layer.weight.min() < 0 for layer in train(constrained=False)[1:])


@pytest.mark.parametrize(
    ("rule", "model", "message"),
    [
        ("gevb", "fc", r"rule 'gevb' is not defined for the conventional model 'fc'; valid pairs: gevb/bp/bp-autograd"),
        ("dfa", "conv-vec", r"rule 'dfa' is not defined for the vectorized model 'conv-vec'.*dfa.*conventional"),
        ("hebb", "fc-vec", r"unknown learning rule 'hebb'; choose one of gevb, bp"),
    ],
)
def test_invalid_rules_are_clear_errors(rule, model, message):
    with pytest.raises(ValueError, match=message):
        make_rule(rule, build_model(model, (1, 8, 8), widths=small_widths(model)))


def test_bad_targets_are_clear_errors():
    model = build_model("fc-vec", (1, 8, 8), widths=(8, 8))
    rule, x = make_rule("gevb", model), torch.zeros(3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"target must be a \(3,\) tensor of integer class labels"):
        rule.set_grads(model, model.trace(x), torch.zeros(3, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        train_step(model, rule, optimizer, x, torch.tensor([0, 10, 2]))
    with torch.no_grad():
        output = model.trace(x)
    with pytest.raises(ValueError, match="bp-autograd needs a forward pass recorded by autograd"):
        make_rule("bp-autograd", model).set_grads(model, output, torch.tensor([0, 1, 2]))
