"""How closely a rule follows the gradient (docs/method.md §6): angles between its signals and updates and BP's.

- *signal angle* of hidden layer l: per example, the angle between the signal the rule delivers to
  the layer's output before the gate (all ones for GEVB, ``e @ B_l`` for DFA; ``Rule.signals``, the
  signals its gradients are made from) and exact BP's signal there, then the mean over the batch
  (examples where either is zero are left out). A signal is a scalar per unit times a K-vector per
  example (``HiddenSignals.vector``: ``e``, DRTP's ``-y``; ones in a conventional network), so its angle
  to BP's ``c e`` has cosine ``cos(c_rule, c) * cos(v_rule, e)`` (the cosine of two outer products is the
  product of the cosines). A rule without per-unit signals (``Rule.per_unit_signals``, e.g. autograd's
  BP) has None here.
- *update angle* of weight layer l: the angle between the rule's batch-mean weight update and
  the true gradient (both as set on ``.grad`` before the optimizer), flattened.

The model's parameters, their ``.grad`` and the rule's state (node perturbation's step count) are left
as they were.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from gevb.models import Network, Trace
from gevb.models.summary import layer_titles
from gevb.rules import HiddenSignals, Rule, loss_and_error, make_rule
from gevb.rules.base import deliver_signals


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row cosine (float64) between ``a`` and ``b`` (B, ...) flattened to (B, D); NaN where a row is zero."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def degrees(cosine: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.arccos(cosine.clamp(-1.0, 1.0)))


def angles_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row angle in degrees between ``a`` and ``b`` (B, ...) flattened to (B, D); NaN where a row is zero."""
    return degrees(cosines(a, b))


def product_angles_deg(a: torch.Tensor, b: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-row angle in degrees between the outer products ``a_i u_i^T`` and ``b_i v_i^T``: a, b (B, ...),
    u, v (B, K); NaN where a row is zero."""
    return degrees(cosines(a, b) * cosines(u, v))


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle in degrees between two tensors of any (equal) shape, flattened; NaN if either is zero."""
    return angles_deg(a.reshape(1, -1), b.reshape(1, -1)).item()


def layer_names(model: Network) -> list[str]:
    """Every weight layer's name by kind (``conv1``, ``lc2``, ``fc1``, ..., ``readout`` last;
    ``gevb.models.summary``, which also gives each name's ``layers.<i>`` index)."""
    titles = layer_titles(model)
    return [titles[i] for i in model.weight_indices]


@contextmanager
def grads_kept(model: Network, rule: Rule) -> Iterator[None]:
    """Restore every parameter's ``.grad`` and the rule's state on exit, so a measurement leaves training
    state as it was."""
    saved = [param.grad for param in model.parameters()]
    state = {key: value.clone() for key, value in rule.state_dict().items()}
    try:
        yield
    finally:
        for param, grad in zip(model.parameters(), saved, strict=True):
            param.grad = grad
        rule.load_state_dict(state)


def weight_updates(model: Network, rule: Rule, x: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
    """The weight gradients ``rule`` sets on ``x``, one per weight layer (copies; ``.grad`` is overwritten)."""
    with torch.set_grad_enabled(rule.needs_graph):
        output = model.trace(x)
    return updates_from(model, rule, output, target)


def updates_from(
    model: Network, rule: Rule, output: Trace, target: torch.Tensor, signals: HiddenSignals | None = None
) -> list[torch.Tensor]:
    """``weight_updates`` from a forward pass already made (``model.trace``, recorded by autograd if the rule
    needs it). ``signals``: the rule's signals on that pass, already computed; where the rule delivers its
    signals as they are (``Rule.deliver``), they are delivered rather than computed again."""
    if signals is not None and _delivers_its_signals(rule):
        with torch.no_grad():
            deliver_signals(model, output, loss_and_error(output.logits, target)[1], signals)
    else:
        rule.set_grads(model, output, target)
    return [layer.weight.grad.detach().clone() for layer in model.weight_layers]


def _delivers_its_signals(rule: Rule) -> bool:
    return type(rule).set_grads is Rule.set_grads and type(rule).deliver is Rule.deliver


def measure_alignment(
    model: Network, rule: Rule, x: torch.Tensor, target: torch.Tensor, reference: Rule | None = None
) -> dict[str, dict[str, float | None]]:
    """Signal angles (hidden layers) and update angles (every weight layer) of ``rule`` against exact BP.

    x: (B, *input_shape); target: (B,). Returns ``{"signal_deg": {name: deg}, "update_deg": {name: deg}}``
    keyed by ``layer_names``; None where undefined (all signals zero, or no per-unit signals).
    ``reference``: a ``bp`` rule for ``model`` (built when None). Where neither rule records an autograd
    graph, one forward pass serves the signals and both rules' updates (``tests/test_analysis.py`` holds the
    result equal to a pass of its own for each).
    """
    reference = reference or make_rule("bp", model)
    with grads_kept(model, rule):
        shared = not (rule.needs_graph or reference.needs_graph)  # one forward pass serves all three uses
        signals = (None, None)  # the rule's and BP's, where the rule has per-unit signals
        if rule.per_unit_signals or shared:
            with torch.no_grad():
                output = model.trace(x)
                if rule.per_unit_signals:
                    error = loss_and_error(output.logits, target)[1]
                    signals = tuple(r.signals(model, output, error, target) for r in (rule, reference))
        if shared:
            pairs = zip((rule, reference), signals, strict=True)
            updates, gradients = (updates_from(model, r, output, target, given) for r, given in pairs)
        else:
            updates, gradients = (weight_updates(model, r, x, target) for r in (rule, reference))
    names = layer_names(model)
    if rule.per_unit_signals:
        delivered, true = signals
        hidden = zip(names[:-1], delivered.scalars, true.scalars, strict=True)
        vectors = delivered.vector, true.vector
        signal = {name: _finite(product_angles_deg(d, t, *vectors).nanmean().item()) for name, d, t in hidden}
    else:  # updates only (e.g. autograd's BP): no per-unit signal to measure
        signal = dict.fromkeys(names[:-1])
    update = {name: _finite(angle_deg(u, g)) for name, u, g in zip(names, updates, gradients, strict=True)}
    return {"signal_deg": signal, "update_deg": update}


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value
