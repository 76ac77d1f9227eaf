"""Every valid (architecture, rule, sign) triple learns scikit-learn's digits (optax-style:
the rule must actually solve a problem, not only run)."""

from __future__ import annotations

import pytest
import torch

from conftest import valid_pairs
from gevb import build_model, make_rule, train_step
from gevb.rules import loss_and_error

WIDTHS = {"fc": (32, 32), "conv": (8, 8, 32), "lc": (8, 8, 32)}
STEPS, BATCH, LR = 300, 64, 3e-3

# GEVB and BP must at least halve the training loss. DFA gets one looser bound for every
# architecture, conv included: it must lower the loss by 15%. The readout always receives its
# true gradient, so even hidden layers that learn nothing useful leave a trainable linear
# classifier on fixed random features; the paper finds DFA weak in convolutional networks, and
# here conv DFA does lower the loss least (to about 0.3-0.7 of its start, against 0.05-0.3 for
# GEVB/BP), so the bound is set once for all DFA runs rather than tuned per architecture.
MAX_LOSS_RATIO = {"gevb": 0.5, "bp": 0.5, "bp-autograd": 0.5, "dfa": 0.85}


def training_loss(model, x, y) -> float:
    with torch.no_grad():
        return loss_and_error(model(x), y)[0].item()


@pytest.mark.parametrize("sign", ["nonneg", "mixed"])
@pytest.mark.parametrize(("arch", "rule_name"), valid_pairs())
def test_rule_lowers_training_loss(arch, rule_name, sign, digits):
    x, y = digits
    model = build_model(arch, (1, 8, 8), 10, sign, widths=WIDTHS[arch.split("-")[0]], seed=0)
    rule = make_rule(rule_name, model, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(0)
    start = training_loss(model, x, y)
    for _ in range(STEPS):
        batch = torch.randint(0, len(x), (BATCH,), generator=generator)
        loss = train_step(model, rule, optimizer, x[batch], y[batch])
        assert torch.isfinite(loss)
    end = training_loss(model, x, y)
    assert end <= MAX_LOSS_RATIO[rule_name] * start, f"loss {start:.3f} -> {end:.3f}"
