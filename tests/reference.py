"""A reference training step built only from plain torch ops, independent of gevb's kernels.

The forward pass re-implements the network from its parameters with textbook operations: a
vectorized first layer's component k on the input times its own block of the weight (the
expanded input's definition), the scalar op applied to each of the K components, ``F.unfold``
patches for locally connected layers, ``F.avg_pool2d``,
the gate from its definition ``G = 1[t . h >= 0]``. Gradients come from ``torch.autograd``:
the true gradient for BP, for the rules with backward weights (``FEEDBACK``) the true gradient of a network
whose input gradients flow through other weights, and for the broadcast rules (GEVB, DFA, DRTP, node
perturbation) the gradient of each layer given the output gradient the rule prescribes
(docs/method.md, docs/rules.md). The update is ``torch.optim.Adam(fused=False,
foreach=False)`` followed by the nonneg clamp. Nothing here calls a gevb layer's own code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gevb.layers import TGate, VecAvgPool2d, VecConv2d, VecFlatten, VecLinear, VecLocal2d
from rule_tests import rule_test_modules


def local2d(x: torch.Tensor, weight: torch.Tensor, layer: VecLocal2d) -> torch.Tensor:
    """Scalar locally connected layer without bias: x (N, C, H, W), weight (L, out, F) -> (N, out, H', W')."""
    patches = F.unfold(x, layer.kernel_size, padding=layer.padding, stride=layer.stride)  # (N, F, L)
    return torch.einsum("lof,nfl->nol", weight, patches).unflatten(2, layer.output_size)


def scalar_layer(layer, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The scalar layer without bias: x (N, D) or (N, C, H, W) -> (N, out) or (N, out, H', W')."""
    if isinstance(layer, VecLinear):
        return x @ weight.reshape(weight.shape[0], -1).t()
    if isinstance(layer, VecConv2d):
        return F.conv2d(x, weight, stride=layer.stride, padding=layer.padding)
    return local2d(x, weight, layer)


def weight_layer(layer, a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """h of one weight layer: a (B, K, *S) (or the raw batch for an input-expanding layer) -> (B, K, *S').

    An input-expanding layer's component k sees the expanded input ``x_d e_k`` (docs/method.md §2), so only
    its own block of the weight's input axis (k's D, or C channels): the scalar layer per component with that
    block, K times less work than on the materialized expanded input (``expanded``; test_layers.py holds the
    layers to that form).
    """
    k = layer.vector_dim
    if layer.expand_input:
        x = a.flatten(1) if isinstance(layer, VecLinear) else a
        axis = 2 if isinstance(layer, VecLocal2d) else 1  # the weight's input axis: (out, K*D), (L, out, K*F)
        h = torch.stack([scalar_layer(layer, x, block) for block in weight.chunk(k, dim=axis)], dim=1)
    else:
        h = scalar_layer(layer, a.flatten(0, 1), weight).unflatten(0, a.shape[:2])  # each component alike
    if isinstance(layer, VecLinear):
        return h + bias  # bias (K, out)
    if isinstance(layer, VecConv2d):
        return h + bias.view(1, k, -1, 1, 1)
    return h + bias.unsqueeze(0)  # bias (K, out, H', W')


def gate_of(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``G = 1[t . h >= 0]``: h (B, K, N) or (B, K, C, H, W), t (N or C, K) -> (B, *S)."""
    if h.dim() == 3:
        return (torch.einsum("bkn,nk->bn", h, t) >= 0).to(h.dtype)
    return (torch.einsum("bkchw,ck->bchw", h, t) >= 0).to(h.dtype)


def flatten(a: torch.Tensor, vectorized: bool) -> torch.Tensor:
    """(B, K, C, H, W) -> (B, K, F): channel fastest (H, W, C) in a VNN, (C, H, W) in a conventional net."""
    return a.permute(0, 1, 3, 4, 2).flatten(2) if vectorized else a.flatten(2)


def forward(model, params: dict[str, torch.Tensor], x: torch.Tensor, backward=None, perturb=None):
    """Run ``model``'s architecture with the tensors ``params`` (named as in ``model``).

    ``backward[i]``: a tensor that weight layer i's input gradient flows through instead of its weight
    (``FEEDBACK``'s rules): the layer computes ``f(a.detach(), W) + f(a, B) - f(a, B).detach()``,
    whose value is ``f(a, W)``, whose weight gradient is W's own and whose input gradient is B's.
    ``perturb[i]``: added to weight layer i's output h before its gate (node perturbation).
    Returns ``(logits (B, classes), layers)``, ``layers[i] = (a_in, h, G)`` for every weight layer i:
    its input, its output and the gate after it (None for the readout).
    """
    backward, perturb = backward or {}, perturb or {}
    a = x.flatten(1) if isinstance(model.layers[0], VecLinear) else x
    a = a if model.vectorized else a.unsqueeze(1)
    records, pending = {}, None
    for i, layer in enumerate(model.layers):
        if isinstance(layer, TGate):
            gate = gate_of(a, params[f"layers.{i}.t"])
            records[pending] = (*records[pending][:2], gate)
            a = a * gate.unsqueeze(1)
        elif isinstance(layer, VecAvgPool2d):
            a = F.avg_pool2d(a.flatten(0, 1), layer.kernel_size).unflatten(0, a.shape[:2])
        elif isinstance(layer, VecFlatten):
            a = flatten(a, model.vectorized)
        else:
            weight, bias = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            if i in backward:
                through = weight_layer(layer, a, backward[i], torch.zeros_like(bias))
                h = weight_layer(layer, a.detach(), weight, bias) + through - through.detach()
            else:
                h = weight_layer(layer, a, weight, bias)
            if i in perturb:
                h = h + perturb[i]
            records[i], pending, a = (a, h, None), i, h
    logits = a[:, :, 0] if model.vectorized else a[:, 0, :]
    return logits, records


class FixedFeedback:
    """Feedback alignment's reference: each weight layer past the first sends its input gradient through the
    rule's fixed ``feedback_<i>`` as it was before the steps (``rule_state``)."""

    def __init__(self, model, rule, rule_state: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
        self.feedback = {i: rule_state[f"feedback_{i}"].to(dtype) for i in model.weight_indices[1:]}

    def backward(self, params: dict[str, torch.Tensor], step: int) -> dict[int, torch.Tensor]:
        return self.feedback

    def after_update(self, params: dict[str, torch.Tensor], before: dict[str, torch.Tensor], step: int) -> None:
        """After Adam and the clamp: nothing changes fixed feedback."""


# Rule name -> the reference of a rule whose credit travels back through other weights than the forward ones:
# ``factory(model, rule, rule_state, dtype)`` gives an object with ``backward(params, step)`` (each weight layer's
# backward weight at that step) and ``after_update(params, before, step)`` (after Adam and the clamp; may change
# the parameters and its own state). Each rule's own test file registers its reference (``tests/test_rule_*.py``).
FEEDBACK = {"fa": FixedFeedback}


def feedback_reference(name: str):
    """The registered reference factory of rule ``name``, or None; the rules' test files are imported first."""
    if name not in FEEDBACK:
        rule_test_modules()
    return FEEDBACK.get(name)


def gradients(
    model, rule, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, step: int = 0, feedback=None
):
    """The gradient ``rule`` prescribes for every trainable tensor of ``params`` (docs/method.md, docs/rules.md).

    ``bp``, ``bp-autograd``: autograd's gradient of the mean cross-entropy; a rule with ``feedback`` (its
    ``FEEDBACK`` reference): the same through the backward weights it gives for ``step``. ``gevb``: hidden
    layer l gets ``dL/dh_l[b, k, m] = G_l[b, m] e[b, k] / B``; ``dfa``: ``dL/dh_l = G_l (e @ B_l) / B`` with
    ``e @ B_l`` shaped (C, H, W); ``drtp``: those with ``-y`` for ``e``; ``node-perturbation``:
    ``dL/dh_l[b, k, m] = (L~_b - L_b) xi[b, m] u[b, k] / (sigma B)`` from a perturbed forward pass here, with
    the rule's noise of ``step``. The readout always gets its true gradient.
    """
    trainable = {name: value for name, value in params.items() if value.requires_grad}
    if rule.name in ("bp", "bp-autograd") or feedback is not None:
        backward = {} if feedback is None else feedback.backward(params, step)
        logits = forward(model, params, x, backward)[0]
        loss = F.cross_entropy(logits, y)
        return dict(zip(trainable, torch.autograd.grad(loss, list(trainable.values())), strict=True))
    logits, records = forward(model, params, x)
    batch = x.shape[0]
    onehot = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    e = (F.softmax(logits, 1) - onehot).detach()
    *hidden, readout = records
    if rule.name == "node-perturbation":
        sigma = rule.noise_scale
        ones = torch.ones(batch, 1, dtype=e.dtype, device=e.device)
        direction = e / e.norm(dim=1, keepdim=True) if model.vectorized else ones
        xis = dict(zip(hidden, rule.noise(step, [records[i][2] for i in hidden]), strict=True))
        spread = {i: xis[i].dim() - 1 for i in hidden}
        perturb = {i: sigma * xis[i].unsqueeze(1) * direction.view(batch, -1, *[1] * spread[i]) for i in hidden}
        with torch.no_grad():
            noisy = forward(model, params, x, perturb=perturb)[0]
            change = F.cross_entropy(noisy, y, reduction="none") - F.cross_entropy(logits, y, reduction="none")
    grads = {}
    for i in hidden + [readout]:
        a_in, _, gate = records[i]
        weight, bias = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
        h = weight_layer(model.layers[i], a_in.detach(), weight, bias)
        per_unit = [1] * (gate.dim() - 1) if gate is not None else []
        if i == readout:
            logits_alone = h[:, :, 0] if model.vectorized else h[:, 0, :]
            out_grad = torch.autograd.grad(F.cross_entropy(logits_alone, y), h)[0]
        elif rule.name == "gevb" or (rule.name == "drtp" and model.vectorized):
            vector = e if rule.name == "gevb" else -onehot
            out_grad = gate.unsqueeze(1) * vector.view(*vector.shape, *per_unit) / batch
        elif rule.name in ("dfa", "drtp"):
            vector = e if rule.name == "dfa" else -onehot
            signal = (vector @ rule.feedback[:, : gate[0].numel()].to(e.dtype)).view(gate.shape)
            out_grad = (gate * signal).unsqueeze(1) / batch
        elif rule.name == "node-perturbation":
            credit = change.view(batch, *per_unit) * xis[i] / sigma  # (B, *S)
            out_grad = credit.unsqueeze(1) * direction.view(batch, -1, *per_unit) / batch
        else:
            raise ValueError(f"no reference for rule {rule.name!r}")
        grads[f"layers.{i}.weight"], grads[f"layers.{i}.bias"] = torch.autograd.grad(h, [weight, bias], out_grad)
    return grads


def reference_steps(
    model,
    rule,
    initial: dict[str, torch.Tensor],
    batches,
    lr: float,
    dtype=torch.float64,
    parts: int = 1,
    rule_state: dict[str, torch.Tensor] | None = None,
):
    """Train a copy of ``initial`` (a state dict of ``model``) for the given ``(x, y)`` batches.

    ``parts``: split every batch into that many contiguous slices and take the mean of their gradients
    weighted by slice size, as data-parallel processes do (the same gradient for every rule but node
    perturbation, whose processes each draw the step's noise for their own slice).

    Adam (``fused=False, foreach=False``), then the nonneg clamp of every weight past the first
    layer, then the rule's own ``after_update`` reference (``FEEDBACK``). ``rule_state``: the rule's state
    dict before the steps (default: its state now). Returns the final state as a dict of tensors in ``dtype``.
    """
    factory = feedback_reference(rule.name)
    state = rule.state_dict() if rule_state is None else rule_state
    feedback = None if factory is None else factory(model, rule, state, dtype)
    params = {name: value.detach().to(dtype).clone() for name, value in initial.items()}
    trainable = [name for name, _ in model.named_parameters()]
    for name in trainable:
        params[name].requires_grad_(True)
    optimizer = torch.optim.Adam([params[name] for name in trainable], lr=lr, fused=False, foreach=False)
    first = f"layers.{model.weight_indices[0]}.weight"
    for step, (x, y) in enumerate(batches):
        grads = {}
        for xs, ys in zip(x.tensor_split(parts), y.tensor_split(parts), strict=True):
            for name, grad in gradients(model, rule, params, xs.to(dtype), ys, step, feedback).items():
                grads[name] = grads.get(name, 0) + grad * (len(ys) / len(y))
        for name in trainable:
            params[name].grad = grads[name]
        before = {name: params[name].detach().clone() for name in trainable}
        optimizer.step()
        with torch.no_grad():
            if model.sign == "nonneg":
                for name in trainable:
                    if name.endswith(".weight") and name != first:
                        params[name].clamp_(min=0)
            if feedback is not None:
                feedback.after_update(params, before, step)
    return {name: value.detach() for name, value in params.items()}
