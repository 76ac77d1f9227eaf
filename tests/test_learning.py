"""Every valid (architecture, rule, sign) triple learns scikit-learn's digits better than training the
readout alone (optax-style: the rule must solve a problem, not only run), except the known failures
(``KNOWN_FAILURES``), each stated as what it is: DFA's and FA's convolutional layers miss the gradient,
sign-symmetry's backward pass has no signs in a conventional nonneg network, DRTP's updates ignore
the gradient, node perturbation's estimates are noise at these widths (docs/rules.md)."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from conftest import digits_tensors as digits
from conftest import valid_pairs
from gevb import ARCHITECTURES, build_model, make_rule, train_step
from gevb.alignment import measure_alignment
from gevb.init import SIGNS
from gevb.rules import loss_and_error

WIDTHS = {"fc": (32, 32), "conv": (8, 8, 32), "lc": (8, 8, 32)}
STEPS, BATCH, LR = 300, 64, 3e-3

# The baseline trains only the readout (same seed, batches and steps), on the hidden layers' fixed
# random features; every rule gives the readout its true gradient, so a rule whose hidden layers
# learn nothing ends there. Measured final-loss ratios rule / readout-only: at most 0.254 (conv-vec
# GEVB; BP 0.001-0.18, DFA in fc and lc 0.12-0.20), except DFA in conv networks at 0.63-0.64, which
# gains only through its fully connected layer (its conv layers' failure is the angle test below).
# The readout alone lowers the loss to 0.41-0.97 of its start. Bounds: 0.4, and 0.8 for DFA in conv.
MAX_RATIO_TO_READOUT_ONLY = 0.4
MAX_RATIO_DFA_CONV = 0.8

# Triples of the other rules (docs/rules.md) that do not reach 0.4 here, with the measured ratio; each
# failure's own signature is asserted below, and the triple must stay above 0.4 (if a change makes one
# learn, this table and docs/rules.md are out of date). The other triples of these rules measure
# 0.001-0.33 and are held to 0.4 like the paper's rules.
KNOWN_FAILURES = {
    ("conv", "fa", "mixed"): 0.42,  # FA's conv layers (test_fa_conv_layers_miss_the_gradient_in_conventional_nets)
    ("conv", "sign-symmetry", "nonneg"): 0.93,  # sign(W) is 0 or 1: no signs travel back
    ("lc", "sign-symmetry", "nonneg"): 0.48,
    **{(arch, "drtp", sign): None for arch in ("fc", "conv", "lc", "conv-vec", "lc-vec") for sign in SIGNS},
    ("fc-vec", "drtp", "mixed"): 0.46,  # DRTP learns only in the nonneg fc-vec (0.15); 1.0-36 in the others
    **{(arch, "node-perturbation", sign): None for arch in ("conv", "conv-vec", "lc", "lc-vec") for sign in SIGNS},
}  # node perturbation: 0.45-1.00 where it fails, 0.17-0.33 in fc and fc-vec


def training_loss(model) -> float:
    x, y = digits()
    with torch.no_grad():
        return loss_and_error(model(x), y)[0].item()


@functools.cache
def trained(arch: str, rule_name: str, sign: str, readout_only: bool = False):
    """(model, rule, start loss, end loss) after ``STEPS`` steps; ``readout_only``: Adam gets the readout alone."""
    x, y = digits()
    model = build_model(arch, (1, 8, 8), 10, sign, widths=WIDTHS[ARCHITECTURES[arch].family], seed=0)
    rule = make_rule(rule_name, model, seed=0)
    optimizer = torch.optim.Adam((model.layers[-1] if readout_only else model).parameters(), lr=LR)
    generator = torch.Generator().manual_seed(0)
    start = training_loss(model)
    for _ in range(STEPS):
        batch = torch.randint(0, len(x), (BATCH,), generator=generator)
        loss = train_step(model, rule, optimizer, x[batch], y[batch])
        assert torch.isfinite(loss)
    return model, rule, start, training_loss(model)


@pytest.mark.parametrize("sign", ["nonneg", "mixed"])
@pytest.mark.parametrize(("arch", "rule_name"), valid_pairs())
def test_rule_beats_training_the_readout_alone(arch, rule_name, sign):
    _, _, start, end = trained(arch, rule_name, sign)
    # the readout's gradient is the same under every rule, so one baseline serves all of them
    _, _, base_start, base_end = trained(arch, "bp", sign, readout_only=True)
    assert start == base_start and base_end < start  # the same network, and the readout alone learns too
    measured = f"loss {start:.3f} -> {end:.3f}, readout alone -> {base_end:.3f}"
    if (arch, rule_name, sign) in KNOWN_FAILURES:
        assert math.isfinite(end) and end > MAX_RATIO_TO_READOUT_ONLY * base_end, f"now learns: {measured}"
        return
    bound = MAX_RATIO_DFA_CONV if (arch, rule_name) == ("conv", "dfa") else MAX_RATIO_TO_READOUT_ONLY
    assert end <= bound * base_end, measured


def angles_after_training(arch: str, rule_name: str, sign: str) -> dict[str, dict[str, float]]:
    """Signal and update angles (degrees) to BP after training, on the first 128 digits."""
    model, rule, _, _ = trained(arch, rule_name, sign)
    x, y = digits()
    return measure_alignment(model, rule, x[:128], y[:128])


def conv_signal_angles(arch: str, rule_name: str, sign: str) -> list[float]:
    """Signal angles (degrees) to BP of the two conv (or LC) layers after training."""
    return list(angles_after_training(arch, rule_name, sign)["signal_deg"].values())[:2]


# Measured after training: DFA's conv layers 81-89 degrees (either sign), GEVB's in the nonneg VNN 28
# and 30 degrees, in the mixed VNN 46 and 33.
@pytest.mark.parametrize("sign", ["nonneg", "mixed"])
def test_dfa_signals_miss_conv_layers_while_gevb_reaches_them(sign):
    """The paper's finding: DFA's feedback does not align convolutional layers; GEVB's broadcast does."""
    assert min(conv_signal_angles("conv", "dfa", sign)) > 75
    assert max(conv_signal_angles("conv-vec", "gevb", sign)) < (45 if sign == "nonneg" else 60)


# Measured after training: FA's conv layers 57 and 69 degrees (nonneg), 87 and 76 (mixed) in the conventional
# network; in the nonneg VNN, whose credits are all >= 0 like GEVB's, 26 and 34.
@pytest.mark.parametrize("sign", SIGNS)
def test_fa_conv_layers_miss_the_gradient_in_conventional_nets(sign):
    assert min(conv_signal_angles("conv", "fa", sign)) > 50
    if sign == "nonneg":
        assert max(conv_signal_angles("conv-vec", "fa", sign)) < 45


# Measured: 61 and 73 degrees (conv), 70 and 76 (lc); in the mixed networks, where signs travel, 36-39.
@pytest.mark.parametrize("arch", ["conv", "lc"])
def test_sign_symmetry_without_signs_misses_the_gradient_in_nonneg_spatial_layers(arch):
    assert min(conv_signal_angles(arch, "sign-symmetry", "nonneg")) > 55
    assert max(conv_signal_angles(arch, "sign-symmetry", "mixed")) < 50


DRTP_TRIPLES = [(arch, rule, sign) for arch, rule in valid_pairs() if rule == "drtp" for sign in SIGNS]
NP_TRIPLES = [(arch, rule, sign) for arch, rule in valid_pairs() if rule == "node-perturbation" for sign in SIGNS]


# Measured: 86-132 degrees in every triple, also in the nonneg fc-vec, where DRTP learns.
@pytest.mark.parametrize(("arch", "rule_name", "sign"), DRTP_TRIPLES)
def test_drtp_first_layer_updates_ignore_the_gradient(arch, rule_name, sign):
    """DRTP's first hidden layer learns from the target alone: its update stays near 90 degrees from the gradient."""
    assert next(iter(angles_after_training(arch, rule_name, sign)["update_deg"].values())) > 80


# Measured: 83-90 degrees in every hidden layer of every triple (N noise values per example, one loss change).
@pytest.mark.parametrize(("arch", "rule_name", "sign"), NP_TRIPLES)
def test_node_perturbation_signals_are_noise_at_these_widths(arch, rule_name, sign):
    assert min(angles_after_training(arch, rule_name, sign)["signal_deg"].values()) > 80
