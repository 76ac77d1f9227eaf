"""One contract for every registered rule (gevb/rules/base.py): the signals a rule reports are the ones its
gradients are made from, no default stands in for a rule's own answer, and the registry refuses what it
cannot hold (a name taken twice, an option the rule does not declare)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from conftest import small_widths, valid_pairs
from gevb import RULES, build_model, make_rule
from gevb.alignment import measure_alignment
from gevb.init import SIGNS
from gevb.rules import Rule, loss_and_error, register_rule

F64 = {"dtype": torch.float64}


def expected_gradients(model, output, target, signals) -> dict[str, torch.Tensor]:
    """Autograd's gradient of each weight layer alone, given the output gradient the signals define
    (``vector[b, k] * (G * scalar)[b, ...] / B`` for hidden layers; the true one for the readout)."""
    batch, expected = target.shape[0], {}
    *hidden, readout = model.weight_indices
    for j, i in enumerate([*hidden, readout]):
        layer = model.layers[i]
        with torch.enable_grad():
            h = layer(output.inputs[i].detach())  # (B, K, *S)
            if i == readout:
                out_grad = torch.autograd.grad(F.cross_entropy(model._logits(h), target), h)[0]
            else:
                scalar = signals.scalars[j] * output.masks[i + 1] if signals.gated else signals.scalars[j]
                vector = signals.vector.view(*signals.vector.shape, *[1] * (scalar.dim() - 1))
                out_grad = scalar.unsqueeze(1) * vector / batch
            weight, bias = torch.autograd.grad(h, [layer.weight, layer.bias], out_grad)
        expected[f"layers.{i}.weight"], expected[f"layers.{i}.bias"] = weight, bias
    return expected


@pytest.mark.parametrize("sign", SIGNS)
@pytest.mark.parametrize(("arch", "rule_name"), [pair for pair in valid_pairs() if RULES[pair[1]].per_unit_signals])
def test_the_signals_a_rule_reports_give_the_gradients_it_delivers(arch, rule_name, sign):
    """float64: ``Rule.signals`` (what the alignment analysis measures) through the layers' own autograd
    equals what ``Rule.set_grads`` sets, for every registered rule and every network it trains."""
    model = build_model(arch, (1, 8, 8), 10, sign, widths=small_widths(arch), seed=1, **F64)
    rule = make_rule(rule_name, model, seed=2).to(torch.float64)
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, 1, 8, 8, generator=generator, **F64), torch.randint(0, 10, (6,), generator=generator)
    with torch.no_grad():
        output = model.trace(x)
        error = loss_and_error(output.logits, y)[1]
        signals = rule.signals(model, output, error, y)
    expected = expected_gradients(model, output, y, signals)
    rule.set_grads(model, output, y)
    assert len(signals.scalars) == len(model.weight_indices) - 1
    for name, param in model.named_parameters():
        if name in expected:
            assert_close(param.grad, expected[name], rtol=1e-10, atol=1e-14, msg=name)
    hidden = [f"layers.{i}.weight" for i in model.weight_indices[:-1]]
    assert any(expected[name].abs().max() > 0 for name in hidden)  # a check of something, not of zeros


def test_every_registered_rule_states_its_signals_or_that_it_has_none():
    """No default answers for a rule: a per-unit rule defines ``signals``; one without (autograd's BP)
    says so and sets its gradients itself."""
    for name, rule in RULES.items():
        if rule.per_unit_signals:
            assert rule.signals is not Rule.signals, name
        else:
            assert rule.set_grads is not Rule.set_grads, name


class Forgetful(Rule):
    """A user's rule that forgot its signals."""

    name = "forgetful"


def test_a_rule_without_signals_fails_loudly_instead_of_reporting_bp():
    model = build_model("fc-vec", (1, 8, 8), widths=(8, 8))
    x, y = torch.zeros(2, 1, 8, 8), torch.tensor([0, 1])
    with pytest.raises(NotImplementedError, match="Forgetful must define signals"):
        Forgetful(model).set_grads(model, model.trace(x), y)
    with pytest.raises(NotImplementedError, match="Forgetful must define signals"):
        measure_alignment(model, Forgetful(model), x, y)


def test_a_rule_without_per_unit_signals_reports_its_updates_only(digits):
    model = build_model("conv", (1, 8, 8), widths=small_widths("conv"), seed=0)
    x, y = digits[0][:16], digits[1][:16]
    angles = measure_alignment(model, make_rule("bp-autograd", model), x, y)
    assert set(angles["signal_deg"].values()) == {None}
    assert max(angles["update_deg"].values()) < 1e-2  # autograd's BP is BP


def test_the_registry_refuses_a_name_taken_and_options_a_rule_does_not_declare():
    with pytest.raises(ValueError, match="a learning rule named 'gevb' is registered already .GEVB."):
        register_rule("gevb")(Forgetful)
    assert RULES["gevb"].__name__ == "GEVB"
    model = build_model("fc", (1, 8, 8), widths=(8, 8))
    with pytest.raises(ValueError, match="rule 'fa' has no option 'noise_scal'; it takes none"):
        make_rule("fa", model, noise_scal=0.5)
    with pytest.raises(ValueError, match="rule 'node-perturbation' has no option 'noise_scal'; it takes noise_scale"):
        make_rule("node-perturbation", model, noise_scal=0.5)  # a misspelled option: never the default
