"""Every vectorized layer against a loop over K of the plain scalar op (float64), the implicit
first layer against the materialized expanded input, the rules' layer protocol
(``input_credit``, ``set_grads``) against autograd, and the float32 fast paths against the references."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import gevb.layers.base as base
import gevb.layers.dispatch as dispatch
from conftest import DEVICES, small_widths
from gevb import build_model, make_rule
from gevb.layers import (
    TGate,
    VecAvgPool2d,
    VecConv2d,
    VecFlatten,
    VecLinear,
    VecLocal2d,
    contract,
    expand_input,
)
from gevb.layers.base import same_layout
from gevb.rules import loss_and_error

F64 = {"dtype": torch.float64}
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)  # the same shapes on every run


def randomize(layer: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return layer


def naive_local2d(x, weight, bias, kernel, stride, padding):
    """Scalar locally connected layer by explicit loops over output positions.

    x (B, C, H, W), weight (L, out, C*kh*kw), bias (out, H', W') -> (B, out, H', W').
    """
    xp = F.pad(x, (padding, padding, padding, padding))
    rows = (xp.shape[2] - kernel) // stride + 1
    cols = (xp.shape[3] - kernel) // stride + 1
    out = torch.empty(x.shape[0], weight.shape[1], rows, cols, dtype=x.dtype)
    for i in range(rows):
        for j in range(cols):
            patch = xp[:, :, i * stride : i * stride + kernel, j * stride : j * stride + kernel].flatten(1)
            out[:, :, i, j] = patch @ weight[i * cols + j].t() + bias[:, i, j]
    return out


dense = st.fixed_dictionaries(
    {
        "k": st.integers(1, 4),
        "batch": st.integers(1, 4),
        "n_in": st.integers(1, 7),
        "n_out": st.integers(1, 6),
        "seed": st.integers(0, 99),
    }
)
spatial = st.fixed_dictionaries(
    {
        "k": st.integers(1, 3),
        "batch": st.integers(1, 3),
        "c_in": st.integers(1, 3),
        "c_out": st.integers(1, 4),
        "kernel": st.integers(1, 3),
        "stride": st.integers(1, 2),
        "padding": st.integers(0, 1),
        "size": st.integers(3, 6),
        "seed": st.integers(0, 2**16),
    }
)


def make_spatial(kind: str, p: dict, expand: bool):
    args = (p["c_in"], p["c_out"], p["kernel"])
    if kind == "conv":
        layer = VecConv2d(*args, p["k"], p["stride"], p["padding"], expand, **F64)
    else:
        layer = VecLocal2d(*args, p["size"], p["k"], p["stride"], p["padding"], expand, **F64)
    return randomize(layer, p["seed"])


@SETTINGS
@given(p=dense)
def test_linear_is_linear_per_component(p):
    k, batch, n_in, n_out, seed = p["k"], p["batch"], p["n_in"], p["n_out"], p["seed"]
    layer = randomize(VecLinear(n_in, n_out, k, **F64), seed)
    a = torch.randn(batch, k, n_in, **F64)
    expected = torch.stack([F.linear(a[:, i], layer.weight, layer.bias[i]) for i in range(k)], 1)
    assert_close(layer(a), expected)


@SETTINGS
@given(p=dense)
def test_first_linear_equals_expanded_input(p):
    k, batch, n_in, n_out, seed = p["k"], p["batch"], p["n_in"], p["n_out"], p["seed"]
    first = randomize(VecLinear(n_in, n_out, k, expand_input=True, **F64), seed)
    plain = VecLinear(k * n_in, n_out, k, **F64)
    with torch.no_grad():
        plain.weight.copy_(first.weight.reshape(n_out, k * n_in))
        plain.bias.copy_(first.bias)
    x = torch.randn(batch, n_in, **F64)
    assert_close(first(x), plain(expand_input(x, k)))
    per_component = torch.stack([F.linear(x, first.weight[:, i], first.bias[i]) for i in range(k)], 1)
    assert_close(first(x), per_component)


@SETTINGS
@given(p=spatial)
def test_conv_is_conv_per_component(p):
    layer = make_spatial("conv", p, expand=False)
    a = torch.randn(p["batch"], p["k"], p["c_in"], p["size"], p["size"], **F64)
    expected = [F.conv2d(a[:, i], layer.weight, layer.bias[i], p["stride"], p["padding"]) for i in range(p["k"])]
    assert_close(layer(a), torch.stack(expected, 1))


@SETTINGS
@given(p=spatial)
def test_local_is_naive_local_per_component(p):
    layer = make_spatial("local", p, expand=False)
    a = torch.randn(p["batch"], p["k"], p["c_in"], p["size"], p["size"], **F64)
    args = (p["kernel"], p["stride"], p["padding"])
    expected = [naive_local2d(a[:, i], layer.weight, layer.bias[i], *args) for i in range(p["k"])]
    assert_close(layer(a), torch.stack(expected, 1))


@SETTINGS
@given(p=spatial, kind=st.sampled_from(["conv", "local"]))
def test_first_spatial_layer_equals_expanded_input(p, kind):
    first = make_spatial(kind, p, expand=True)
    plain = make_spatial(kind, {**p, "c_in": p["k"] * p["c_in"]}, expand=False)
    with torch.no_grad():
        plain.weight.copy_(first.weight)
        plain.bias.copy_(first.bias)
    x = torch.randn(p["batch"], p["c_in"], p["size"], p["size"], **F64)
    assert_close(first(x), plain(expand_input(x, p["k"])))


@SETTINGS
@given(p=spatial, kind=st.sampled_from(["conv", "local"]))
def test_first_spatial_layer_projection_equals_gate_projection_of_its_output(p, kind):
    """``forward_projected`` (projected filters, bias through the GEMM) against ``t . h`` of ``forward``."""
    first = make_spatial(kind, p, expand=True)
    t = torch.randint(0, 2, (p["c_out"], p["k"]), generator=torch.Generator().manual_seed(p["seed"])) * 2.0 - 1
    x = torch.randn(p["batch"], p["c_in"], p["size"], p["size"], **F64)
    h, projection = first.forward_projected(x, t.double())
    reference = first(x)
    assert_close(h, reference)
    if p["k"] == 1:
        assert projection is None
    else:
        assert_close(projection, torch.einsum("bkchw,ck->bchw", reference, t.double()))


@pytest.mark.parametrize("name", ["conv-vec", "lc-vec"])
def test_network_gates_from_projected_filters_equal_gates_from_h(digits, name):
    """float32: the first gate's mask from the projected filters equals ``1[t . h >= 0]`` of h,
    up to units whose projection is within rounding of 0 (summed in another order)."""
    model = build_model(name, (1, 8, 8), 10, "nonneg", widths=small_widths(name), seed=3)
    x = digits[0][:64]
    with torch.no_grad():
        masks = model.trace(x).masks[1]
        projection = torch.einsum("bkchw,ck->bchw", model.layers[0](x), model.layers[1].t)
    clear = projection.abs() > 1e-4
    assert clear.float().mean() > 0.99
    assert torch.equal(masks[clear], (projection[clear] >= 0).float())


def test_first_conv_component_uses_its_own_filters():
    k, c_in = 3, 2
    layer = randomize(VecConv2d(c_in, 4, 3, k, padding=1, expand_input=True, **F64), 0)
    x = torch.randn(2, c_in, 5, 5, **F64)
    for i in range(k):
        filters = layer.weight[:, i * c_in : (i + 1) * c_in]
        assert_close(layer(x)[:, i], F.conv2d(x, filters, layer.bias[i], padding=1))


def test_gate_matches_per_unit_definition():
    gate = TGate(6, 4, **F64)
    gate.reset_parameters(torch.Generator().manual_seed(0))
    assert_close(gate.t[1::2], -gate.t[0::2])
    position_major = torch.randn(2, 2, 3, 4, 6, **F64).permute(2, 3, 4, 0, 1)  # an LC layer's output layout
    for h in (torch.randn(3, 4, 6, **F64), torch.randn(3, 4, 6, 2, 2, **F64), position_major):
        out = gate(h)
        for unit in range(6):
            on = (torch.einsum("bk...,k->b...", h[:, :, unit], gate.t[unit]) >= 0).to(h.dtype)
            assert_close(out[:, :, unit], h[:, :, unit] * on.unsqueeze(1))


def test_conventional_gate_alternates_signs():
    gate = TGate(5, 1, **F64)
    gate.reset_parameters(torch.Generator().manual_seed(0))
    assert gate.t.flatten().tolist() == [-1, 1, -1, 1, -1]
    z = torch.tensor([[[-2.0, -2.0, 3.0, 3.0, 0.0]]], **F64)
    assert gate(z).flatten().tolist() == [-2.0, 0.0, 0.0, 3.0, 0.0]


def test_pool_and_flatten():
    a = torch.randn(2, 3, 4, 5, 7, **F64)  # (B, K, C, H, W); odd width drops the last column
    pooled = VecAvgPool2d(2)(a)
    assert_close(pooled, torch.stack([F.avg_pool2d(a[:, i], 2) for i in range(3)], 1))
    flat = VecFlatten()(a)
    channels, width = 4, 7
    for y, x, c in [(0, 0, 1), (4, 6, 3), (2, 3, 0)]:
        assert_close(flat[:, :, (y * width + x) * channels + c], a[:, :, c, y, x])


# --- the rule protocol against autograd ---------------------------------------------------


def protocol_cases():
    """(layer, a_in) pairs covering every layer kind, plain and input-expanding."""
    k, batch = 3, 4
    p = {"k": k, "batch": batch, "c_in": 2, "c_out": 4, "kernel": 3, "stride": 2, "padding": 1, "size": 6, "seed": 1}
    spatial_in = torch.randn(batch, k, 2, 6, 6, **F64)
    raw_in = torch.randn(batch, 2, 6, 6, **F64)
    return [
        (randomize(VecLinear(5, 4, k, **F64), 1), torch.randn(batch, k, 5, **F64)),
        (randomize(VecLinear(5, 4, k, expand_input=True, **F64), 2), torch.randn(batch, 5, **F64)),
        (make_spatial("conv", p, False), spatial_in),
        (make_spatial("conv", p, True), raw_in),
        (make_spatial("local", p, False), spatial_in),
        (make_spatial("local", p, True), raw_in),
        (VecAvgPool2d(2), torch.randn(batch, k, 2, 5, 6, **F64)),
        (VecFlatten(), spatial_in),
    ]


def test_set_grads_is_scalar_layer_gradient_of_contracted_input():
    """``set_grads(a, err, g)`` = autograd gradient with dL/dh[b, k, m] = err[b, k] g[b, m] (docs/method.md §5)."""
    for layer, a_in in protocol_cases():
        if not hasattr(layer, "set_grads"):
            continue
        h = layer(a_in)
        err = torch.randn(h.shape[:2], **F64)
        g = torch.randn(h.shape[:1] + h.shape[2:], **F64)
        out_grad = err.view(*err.shape, *[1] * (h.dim() - 2)) * g.unsqueeze(1)
        expected = torch.autograd.grad(h, [layer.weight, layer.bias], out_grad)
        layer.set_grads(a_in, err, g)
        assert_close(layer.weight.grad, expected[0])
        assert_close(layer.bias.grad, expected[1])


def test_input_credit_is_transpose_of_scalar_layer():
    for layer, a_in in protocol_cases():
        if getattr(layer, "expand_input", False):
            continue
        a = a_in.clone().requires_grad_(True)
        h = layer(a)
        c = torch.randn(h.shape[:1] + h.shape[2:], **F64)
        out_grad = torch.zeros_like(h)
        out_grad[:, 0] = c  # credit on component 0 only: the scalar layer's input gradient
        (expected,) = torch.autograd.grad(h, a, out_grad)
        assert_close(layer.input_credit(c, a_in), expected[:, 0])
        assert expected[:, 1:].abs().max() == 0


def test_gate_credit_is_masked():
    gate = TGate(6, 3, **F64)
    gate.reset_parameters(torch.Generator().manual_seed(3))
    h, c = torch.randn(4, 3, 6, **F64), torch.randn(4, 6, **F64)
    mask = gate.mask(h)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(mask, ((h * gate.t.t()).sum(1) >= 0).double())  # t . h per unit
    assert_close(gate.input_credit(c, mask), c * mask)
    expected = gate(h)
    gated, saved = gate.gate_(h)
    assert gated is h and torch.equal(gated, expected) and torch.equal(saved, mask)


def test_contract():
    err, a = torch.randn(4, 3, **F64), torch.randn(4, 3, 2, 5, **F64)
    assert_close(contract(err, a), torch.einsum("bk,bkcx->bcx", err, a))
    position_major = torch.randn(5, 4, 3, 2, **F64).permute(1, 2, 3, 0)  # (B, K, C, X) not viewable as (B, K, -1)
    assert_close(contract(err, position_major), torch.einsum("bk,bkcx->bcx", err, position_major))


@SETTINGS
@given(p=spatial)
def test_local_row_gemms_equal_the_autograd_reference_path(p):
    """Inner LC layers: strided-window GEMMs (no grad) against patches + bmm (the path autograd takes)."""
    layer = make_spatial("local", p, expand=False)
    a = torch.randn(p["size"], p["size"], p["batch"], p["k"], p["c_in"], **F64).permute(2, 3, 4, 0, 1)
    with torch.no_grad():
        fast = layer._row_gemms(a)  # forward takes it only at kw*C >= 32; the math holds at any size
    reference = layer(a.requires_grad_())
    assert reference.grad_fn is not None
    assert_close(fast, reference.detach())


def test_the_onednn_probe_leaves_the_global_rng_alone():
    dispatch.onednn_matmul.cache_clear()
    state = torch.get_rng_state()
    try:
        dispatch.onednn_matmul()
        assert torch.equal(torch.get_rng_state(), state)
    finally:
        dispatch.onednn_matmul.cache_clear()


@pytest.mark.parametrize("rule", ["gevb", "bp"])
def test_onednn_matmul_fast_path_equals_the_reference(digits, rule):
    """float32 on the CPU takes oneDNN's GEMM (``matmul_nt``); the float64 tests above take ``a @ w.t()``."""
    if not dispatch.onednn_matmul():
        pytest.skip("this torch has no oneDNN fp32 GEMM; only the reference path exists")
    x, y = digits[0][:64], digits[1][:64]
    grads, taken = {}, {}
    for fast in (True, False):
        model = build_model("fc-vec", (1, 8, 8), 10, "nonneg", widths=(32, 16), seed=2)
        with dispatch.choices() as counts, contextlib.nullcontext() if fast else dispatch.reference_paths():
            with torch.no_grad():
                output = model.trace(x)
                make_rule(rule, model).deliver(model, output, loss_and_error(output.logits, y)[1], y)
        grads[fast], taken[fast] = (output.logits, {name: p.grad for name, p in model.named_parameters()}), counts
    assert taken[True]["onednn_gemm", True] > 0 and taken[True]["onednn_gemm", False] == 0  # two paths ran
    assert taken[False]["onednn_gemm", True] == 0 and taken[False]["onednn_gemm", False] > 0
    assert_close(grads[True][0], grads[False][0], rtol=1e-4, atol=1e-5)
    for name, grad in grads[False][1].items():
        assert grad.abs().max() > 0
        assert_close(grads[True][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def layout_cases():
    """Every weight-layer kind as a network uses it: vectorized first (input-expanding) and inner layers,
    conventional (K = 1) first and inner layers, on one- and three-channel inputs."""
    batch, cases = 3, []
    for k, expand in ((4, True), (4, False), (1, False)):
        for channels in (1, 3):
            p = {"k": k, "batch": batch, "c_in": channels, "c_out": 4, "kernel": 3, "stride": 1, "padding": 1,
                 "size": 5, "seed": channels}  # fmt: skip
            spatial_in = torch.randn(batch, *([] if expand else [k]), channels, 5, 5, **F64)
            flat_in = spatial_in.flatten(-3)
            linear = VecLinear(flat_in.shape[-1], 4, k, expand_input=expand, **F64)
            for layer, a_in in ((linear, flat_in), (make_spatial("conv", p, expand), spatial_in),
                                (make_spatial("local", p, expand), spatial_in)):  # fmt: skip
                cases.append(
                    pytest.param(
                        layer, a_in, id=f"{type(layer).__name__}-K{k}-{'first' if expand else 'inner'}-C{channels}"
                    )
                )
    return cases


@pytest.mark.parametrize(("layer", "a_in"), layout_cases())
def test_set_grads_hands_back_gradients_in_the_parameters_layout(layer, a_in):
    """The layer protocol's contract: ``.grad`` has its parameter's strides (fused Adam reads it so)."""
    h = layer(a_in)
    layer.set_grads(a_in, torch.randn(h.shape[:2], **F64), torch.randn(h.shape[:1] + h.shape[2:], **F64))
    for name, param in layer.named_parameters():
        assert param.grad.shape == param.shape and same_layout(param.grad, param), (
            f"{name}: grad strides {param.grad.stride()}, parameter {param.stride()}"
        )


def dispatched_ops(device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every op ``gevb.layers.dispatch`` chooses a path for, on fixed inputs: pooling, ``a @ w.T``, an inner
    locally connected layer wide enough for the row GEMMs (kw * C = 36 >= 32) and its input credit, K-pass
    contraction, and a first convolution with thin filters (one GEMM over unfolded patches)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(3, 2, 4, 6, 7, generator=generator, dtype=dtype).to(device)  # (B, K, C, H, W)
    x, w = torch.randn(5, 8, generator=generator, dtype=dtype), torch.randn(4, 8, generator=generator, dtype=dtype)
    layer = VecLocal2d(12, 4, 3, (6, 6), 2, padding=1, dtype=dtype)
    layer.weight.data.copy_(torch.randn(layer.weight.shape, generator=generator, dtype=dtype))
    layer.to(device)
    inputs = torch.randn(3, 2, 12, 6, 6, generator=generator, dtype=dtype).to(device)
    err = torch.randn(3, 2, generator=generator, dtype=dtype).to(device)
    credit = torch.randn(3, 4, 6, 6, generator=generator, dtype=dtype).to(device)  # at the LC layer's output
    first = VecConv2d(1, 4, 3, 2, padding=1, expand_input=True, dtype=dtype)  # thin filters: 9 values
    for param in first.parameters():
        param.data.copy_(torch.randn(param.shape, generator=generator, dtype=dtype))
    first.to(device)
    signs = torch.tensor([[1.0, -1.0]] * 4, dtype=dtype, device=device)
    with torch.no_grad():
        h, projection = first.forward_projected(a[:, 0, :1], signs)
        return {
            "first_conv": h,
            "first_conv_projection": projection,
            "pool": VecAvgPool2d(2)(a),
            "pool_position_major": VecAvgPool2d(3)(a.permute(3, 4, 0, 1, 2).contiguous().permute(2, 3, 4, 0, 1)),
            "matmul_nt": base.matmul_nt(x.to(device), w.to(device)),
            "local": layer(inputs),
            "local_credit": layer.input_credit(credit, inputs),
            "contract": contract(err, a.permute(0, 1, 2, 4, 3)),
        }


def fast_paths(device: str, dtype: torch.dtype) -> set[str]:
    """The fast paths a device takes for ``dispatched_ops``: on the CPU every one (oneDNN's GEMM in float32 where
    this torch has it); on CUDA none yet (cuBLAS / cuDNN until a GPU measurement says otherwise)."""
    if device != "cpu":
        return set()
    return {"strided_sum_pooling", "row_gemms", "conv_gemm", "tap_sums"} | (
        {"onednn_gemm"} if dtype == torch.float32 and dispatch.onednn_matmul() else set()
    )


def fast_taken(counts) -> set[str]:
    return {path for (path, fast), calls in counts.items() if fast and calls}


@pytest.mark.parametrize("device", DEVICES)
def test_each_devices_paths_equal_the_references(device):
    """What ``gevb.layers.dispatch`` takes on this device against other code: on the CPU, the fast paths
    against the reference paths that ``reference_paths()`` forces; on CUDA, which takes no fast path, the
    CUDA result against the CPU's fast paths. The dispatch's counts say which paths ran on each side."""
    for dtype, tolerance in ((torch.float64, {}), (torch.float32, {"rtol": 1e-4, "atol": 1e-5})):
        with dispatch.choices() as taken:
            got = dispatched_ops(device, dtype)
        with dispatch.choices() as other, dispatch.reference_paths() if device == "cpu" else contextlib.nullcontext():
            expected = dispatched_ops("cpu", dtype)
        assert fast_taken(taken) == fast_paths(device, dtype), f"{device} {dtype}"
        assert fast_taken(other) == (set() if device == "cpu" else fast_paths("cpu", dtype))
        assert fast_taken(taken) != fast_taken(other)  # two different code paths were compared
        for name, value in got.items():
            assert_close(value.cpu(), expected[name], **tolerance, msg=f"{name} {dtype}")
