"""Architectures (docs/method.md §7 sizes), initialization (docs/method.md §4) and the ON/OFF equivalence."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from conftest import small_widths
from gevb import ARCHITECTURES, build_model
from gevb.layers import TGate, VecFlatten, WeightLayer
from gevb.models import architecture_names

F64 = {"dtype": torch.float64}

# Hidden weight-layer output shapes and readout fan-in, straight from docs/method.md §7.
PAPER_SHAPES = {
    ("fc", 1): [(1024,), (512,)],
    ("fc", 3): [(1024,), (512,), (512,)],
    ("conv", 1): [(64, 28, 28), (32, 14, 14), (1024,)],
    ("conv", 3): [(128, 32, 32), (64, 16, 16), (64, 4, 4), (1024,)],
    ("lc", 1): [(32, 28, 28), (32, 14, 14), (1024,)],
    ("lc", 3): [(64, 32, 32), (32, 16, 16), (32, 4, 4), (256,)],
}
PAPER_KERNELS = {("conv", 1): [3, 3], ("conv", 3): [5, 5, 2], ("lc", 1): [3, 3], ("lc", 3): [5, 5, 2]}
PAPER_FLATTEN = {("conv", 1): 1568, ("conv", 3): 1024, ("lc", 1): 1568, ("lc", 3): 512}


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32)])
def test_paper_layer_sizes(name, input_shape):
    model = build_model(name, input_shape, 10, "mixed")
    family, vectorized = ARCHITECTURES[name].family, ARCHITECTURES[name].vectorized
    key = (family, input_shape[0])
    expected = list(PAPER_SHAPES[key])
    if key == ("lc", 3) and not vectorized:
        expected[-1] = (512,)  # the conventional CIFAR LC net has 512 hidden units (docs/method.md §7)
    assert model.hidden_shapes() == expected
    layers = model.weight_layers
    k = 10 if vectorized else 1
    assert all(layer.vector_dim == k for layer in layers)
    assert layers[0].expand_input == vectorized and not any(layer.expand_input for layer in layers[1:])
    assert layers[-1].out_features == (1 if vectorized else 10)
    assert layers[-1].in_features == math.prod(expected[-1])
    if family != "fc":
        assert [layer.kernel_size[0] for layer in layers[:-2]] == PAPER_KERNELS[key]
        assert layers[-2].in_features == PAPER_FLATTEN[key]
    else:
        assert layers[0].in_features == math.prod(input_shape)
    if vectorized and family == "fc":
        assert layers[0].weight.shape == (1024, 10, math.prod(input_shape))


@pytest.mark.parametrize("name", ["fc-vec", "conv", "lc-vec"])
def test_same_seed_same_model(name):
    a, b, c = (build_model(name, (1, 8, 8), widths=small_widths(name), seed=s) for s in (3, 3, 4))
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), key
    assert any(not torch.equal(va, vc) for va, vc in zip(a.state_dict().values(), c.state_dict().values(), strict=True))


def test_he_initialization_statistics():
    model = build_model("fc-vec", (1, 28, 28), 10, "mixed", widths=(1024, 512), **F64)
    first, hidden, readout = model.weight_layers
    assert_close(first.weight.std().item(), 1 / math.sqrt(784), rtol=0.02, atol=0)
    assert_close(hidden.weight.std().item(), math.sqrt(2 / 1024), rtol=0.02, atol=0)
    assert abs(first.weight.mean().item()) < 1e-3
    assert all(layer.bias.abs().max() == 0 for layer in model.weight_layers)
    assert readout.weight.shape == (1, 512)


def test_on_off_initialization_structure():
    model = build_model("fc-vec", (1, 28, 28), 10, "nonneg", widths=(1024, 512), **F64)
    first, hidden, readout = model.weight_layers
    assert torch.equal(first.weight[1::2], -first.weight[0::2])
    assert_close(first.weight.std().item(), 1 / math.sqrt(784), rtol=0.02, atol=0)
    w = hidden.weight
    assert w.min() >= 0 and readout.weight.min() >= 0
    assert torch.equal(w[0::2, 0::2], w[1::2, 1::2]) and torch.equal(w[0::2, 1::2], w[1::2, 0::2])
    assert (w[0::2, 0::2] * w[0::2, 1::2]).abs().max() == 0  # relu(M) and relu(-M) never both > 0
    m = w[0::2, 0::2] - w[0::2, 1::2]
    assert_close(m.std().item(), 2 / math.sqrt(1024), rtol=0.02, atol=0)
    r = readout.weight[0]
    assert (r[0::2] * r[1::2]).abs().max() == 0 and r.abs().sum() > 0


def halve(nonneg, mixed) -> None:
    """Load into the width-N ``mixed`` network the function of the width-2N ``nonneg`` one.

    First layer: V = W[2m]; later layers: M = W[2m, 2n] - W[2m, 2n+1]; gates: t[2m].
    """
    with torch.no_grad():
        roles = {nonneg.weight_indices[0]: "first", nonneg.weight_indices[-1]: "readout"}
        for i, (big, small) in enumerate(zip(nonneg.layers, mixed.layers, strict=True)):
            if isinstance(big, TGate):
                small.t.copy_(big.t[0::2])
            elif isinstance(big, WeightLayer):
                w = big.weight.view(big.block_shape)  # (P, out, in, R)
                role = roles.get(i, "hidden")
                if role == "first":
                    w = w[:, 0::2]
                else:
                    w = w if role == "readout" else w[:, 0::2]
                    w = w[:, :, 0::2] - w[:, :, 1::2]
                small.weight.copy_(w.reshape(small.weight.shape))


@pytest.mark.parametrize("name", ["fc-vec", "conv-vec", "lc-vec"])
def test_on_off_network_equals_half_width_mixed_network(name, digits):
    widths = small_widths(name)
    nonneg = build_model(name, (1, 8, 8), 10, "nonneg", widths=widths, seed=5, **F64)
    mixed = build_model(name, (1, 8, 8), 10, "mixed", widths=[w // 2 for w in widths], seed=6, **F64)
    x = digits[0][:64].double()
    assert not torch.allclose(nonneg(x), mixed(x))
    halve(nonneg, mixed)
    assert_close(nonneg(x), mixed(x))
    output = nonneg.trace(x)
    for i, layer in enumerate(nonneg.layers):
        if isinstance(layer, TGate):
            h, gates = nonneg.layers[i - 1](output.inputs[i - 1]), output.masks[i]
            assert output.inputs[i] is None and torch.equal(gates, layer.mask(h))
            assert_close(h[:, :, 1::2], -h[:, :, 0::2])
            assert torch.equal(gates[:, 1::2], gates[:, 0::2])
            assert 0 < gates.mean() < 1


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_odd_width_under_nonneg_names_the_layer(name):
    widths = list(small_widths(name))
    widths[1] += 1
    spec = build_model(name, (1, 8, 8), widths=widths, sign="mixed").spec  # fine unpaired
    second = [i for i, layer in enumerate(spec.layers) if hasattr(layer, "width")][1]
    where = rf"{name} layers\[{second}\] \({spec.layers[second].op}\)"
    with pytest.raises(ValueError, match=rf"{where}: width {widths[1]} is odd.*even width or sign='mixed'"):
        build_model(name, (1, 8, 8), widths=widths, sign="nonneg")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "resnet"}, r"unknown architecture 'resnet'; choose one of fc-vec, fc, conv-vec"),
        ({"name": "fc-vec", "widths": (8,)}, r"fc-vec has 2 hidden layers, so widths needs 2"),
        ({"name": "fc-vec", "sign": "positive"}, r"unknown sign regime 'positive'; use one of nonneg, mixed"),
        ({"name": "conv", "input_shape": (1, 28)}, r"input_shape must be \(C, H, W\)"),
        (
            {"name": "conv-vec", "input_shape": (3, 4, 4)},
            r"conv-vec layers\[4\] \(conv\): kernel 2 is larger than its 1x1",
        ),
        ({"name": "fc", "num_classes": 1}, r"num_classes must be at least 2"),
    ],
)
def test_bad_model_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(**{"input_shape": (1, 8, 8), **kwargs})


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_wrong_input_shape_is_a_clear_error(name):
    model = build_model(name, (1, 8, 8), widths=small_widths(name))
    model(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 1, 8, 8\).*got \(2, 1, 7, 8\)"):
        model(torch.zeros(2, 1, 7, 8))
    with pytest.raises(ValueError, match=r"expects input of shape"):
        model(torch.zeros(8))
    with pytest.raises(ValueError, match=r"convert with x.to\(torch.float32\)"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.float64))
    if name.startswith("fc"):
        assert_close(model(torch.ones(2, 64)), model(torch.ones(2, 1, 8, 8)))


def test_constraint_only_touches_weights_past_the_first_layer():
    for sign in ("nonneg", "mixed"):
        model = build_model("conv-vec", (1, 8, 8), sign=sign, widths=small_widths("conv-vec"))
        with torch.no_grad():
            for layer in model.weight_layers:
                layer.weight.fill_(-1.0)
        model.apply_constraint()
        first, *later = model.weight_layers
        assert first.weight.max() == -1
        assert all(layer.weight.min() == (0 if sign == "nonneg" else -1) for layer in later)


def paired_blocks(w: torch.Tensor) -> None:
    """Assert the ON/OFF pattern of docs/method.md §4 on rows and columns (2m, 2m+1) of a (out, in) weight."""
    assert w.min() >= 0
    assert torch.equal(w[0::2, 0::2], w[1::2, 1::2]) and torch.equal(w[0::2, 1::2], w[1::2, 0::2])
    assert (w[0::2, 0::2] * w[0::2, 1::2]).abs().max() == 0 and w.abs().sum() > 0


@pytest.mark.parametrize("name", architecture_names(vectorized=False))
def test_conventional_nonneg_readout_pairs_its_class_rows_as_published(name):
    """docs/method.md §3 (a): the num_classes-row readout is ON/OFF-initialized like a hidden layer."""
    model = build_model(name, (1, 8, 8), 10, "nonneg", widths=small_widths(name), seed=2, **F64)
    paired_blocks(model.weight_layers[-1].weight)
    odd = build_model(name, (1, 8, 8), 5, "nonneg", widths=small_widths(name), seed=2, **F64).weight_layers[-1]
    paired_blocks(odd.weight[:4])
    last = odd.weight[4]  # an odd last class row: drawn as an unpaired readout row
    assert (last[0::2] * last[1::2]).abs().max() == 0 and last.abs().sum() > 0
    vnn = build_model(f"{name}-vec", (1, 8, 8), 10, "nonneg", widths=small_widths(name), seed=2, **F64)
    assert vnn.weight_layers[-1].weight.shape == (1, vnn.weight_layers[-1].in_features)  # one unpaired unit


def test_conventional_nonneg_fc_logits_come_in_opposite_pairs_at_initialization(digits):
    """With paired hidden units (+h, -h) and paired class rows, logit 2m+1 = -logit 2m at initialization."""
    model = build_model("fc", (1, 8, 8), 10, "nonneg", widths=(16, 12), seed=4, **F64)
    logits = model(digits[0][:32].double())
    assert (logits != 0).float().mean() > 0.5
    assert_close(logits[:, 1::2], -logits[:, 0::2])


@pytest.mark.parametrize("name", ["conv", "lc", "conv-vec", "lc-vec"])
@pytest.mark.parametrize("channels", [1, 3])
def test_flatten_order_conventional_chw_vectorized_hwc(name, channels):
    """docs/method.md §3 (b): conventional networks flatten in (C, H, W) order, so the first FC layer's ON/OFF
    column pair (2n, 2n+1) is two neighbouring positions of one channel; VNNs put the channel fastest."""
    model = build_model(name, (channels, 16, 20), 10, "nonneg", widths=small_widths(name, channels), seed=1, **F64)
    index = next(i for i, layer in enumerate(model.layers) if isinstance(layer, VecFlatten))
    x = torch.randn(3, channels, 16, 20, **F64)
    before, after = model.activation_before(x, index), model.activation_before(x, index + 1)
    _, _, c, h, w = before.shape
    assert min(c, h, w) > 1  # the orders differ
    for channel, y, column in [(0, 0, 0), (c - 1, h - 1, w - 1), (1, h // 2, w // 2)]:
        feature = (channel * h + y) * w + column if not model.vectorized else (y * w + column) * c + channel
        assert_close(after[:, :, feature], before[:, :, channel, y, column])
    layer = model.layers[index]
    c_out = torch.randn(3, after.shape[2], **F64)  # the transpose follows the same order
    a = before.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(layer(a)[:, 0], a, c_out)
    assert_close(layer.input_credit(c_out, before), expected[:, 0])
