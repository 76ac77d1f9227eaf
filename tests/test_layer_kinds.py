"""Every registered layer kind (gevb.layers.kinds), whatever file defines it: it round-trips through an
architecture file, builds in vectorized and conventional networks, passes credits back as the exact
transpose of its forward pass (BP through it equals autograd), and names its layers; then the vectorized
max pooling's own definition."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from gevb import build_model
from gevb.layers import LAYER_KINDS, Conv, Flatten, Linear
from gevb.layers.kinds import module_kind
from gevb.layers.max_pool import VecMaxPool2d
from gevb.models import ArchitectureSpec
from gevb.models.specs import parse_layer, spec_yaml
from gevb.models.summary import layer_titles
from test_rules import rule_grads

F64 = {"dtype": torch.float64}


def example(op: str):
    """The kind with its defaults, and 4 for every size it needs (an even width, a kernel that fits 8x8)."""
    kind = LAYER_KINDS[op]
    needed = {f.name: 4 for f in dataclasses.fields(kind) if f.default is dataclasses.MISSING}
    return kind(**needed)


def network_with(op: str, vectorized: bool) -> ArchitectureSpec:
    """A small network holding the kind once: maps before it unless it takes features, a flatten after it
    unless it leaves features."""
    layer = example(op)
    before = () if layer.flat else (Conv(4, 3, 1, 1),)
    after = () if layer.flat or op == "flatten" else (Flatten(),)
    return ArchitectureSpec(f"with-{op}", vectorized, (*before, layer, *after, Linear(6)))


@pytest.mark.parametrize("op", LAYER_KINDS)
def test_every_kind_round_trips_through_an_architecture_file(op):
    spec = network_with(op, True)
    entry = spec.to_dict()["layers"][spec.layers.index(example(op))]
    assert entry["op"] == op and parse_layer(entry, "x") == example(op)
    assert ArchitectureSpec.from_dict(spec.to_dict(), "x") == spec and op in spec_yaml(spec)


@pytest.mark.parametrize("op", LAYER_KINDS)
@pytest.mark.parametrize("vectorized", [True, False])
@pytest.mark.parametrize("sign", ["nonneg", "mixed"])
def test_bp_through_every_kind_equals_autograd(op, vectorized, sign):
    classes = 3
    model = build_model(network_with(op, vectorized), (2, 8, 8), classes, sign, seed=5, **F64)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, 8, 8, generator=generator, **F64)
    y = torch.randint(0, classes, (5,), generator=generator)
    fast_loss, fast = rule_grads("bp", model, x, y)
    ref_loss, ref = rule_grads("bp-autograd", model, x, y)
    assert_close(fast_loss, ref_loss)
    for key in ref:
        assert ref[key].abs().max() > 0, key
        assert_close(fast[key], ref[key], msg=key)


@pytest.mark.parametrize("op", LAYER_KINDS)
def test_every_kind_names_its_layers(op):
    model = build_model(network_with(op, True), (2, 8, 8), 3, "mixed", seed=0)
    titles = layer_titles(model)
    assert len(set(titles)) == len(titles) and titles[-1] == "readout"
    assert all(title.startswith(module_kind(layer)) for title, layer in zip(titles[:-1], model.layers, strict=False))


def test_vectorized_max_pooling_takes_each_windows_vector_of_largest_component_sum():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, 4, 6, 6, generator=generator, **F64)
    pooled = VecMaxPool2d(2)(a)
    assert pooled.shape == (2, 3, 4, 3, 3)
    for b, c, y, x in [(0, 0, 0, 0), (1, 3, 2, 1), (0, 2, 1, 2)]:
        window = a[b, :, c, 2 * y : 2 * y + 2, 2 * x : 2 * x + 2].flatten(1)  # (K, 4)
        assert_close(pooled[b, :, c, y, x], window[:, window.sum(0).argmax()])
    one = a[:, :1]
    assert_close(VecMaxPool2d(3)(one)[:, 0], F.max_pool2d(one[:, 0], 3))  # K = 1: ordinary max pooling
