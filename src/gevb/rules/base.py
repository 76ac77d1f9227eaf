"""What every learning rule shares: the registry, the loss and its error vector, one training step.

A rule's one job is to set ``.grad`` on the model's parameters from ``(model, output, target)``
(docs/method.md §5); any ``torch.optim`` optimizer then steps and the model applies its constraint.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gevb.layers.base import WeightLayer, same_layout
from gevb.models.architectures import architecture_names
from gevb.models.network import Network, Trace
from gevb.plugins import Registry
from gevb.precision import fp32_trace
from gevb.rules.options import RuleOption, settings

# the built-in rules (the modules of gevb.rules), then those of plugins (``gevb.plugins``), loaded on first read
RULES: dict[str, type[Rule]] = Registry("gevb.rules", builtins="gevb.rules")
ALIASES: dict[str, tuple[str, str]] = {}  # an old rule name -> (its rule's name, a note saying what changed)


def register_rule(name: str, title: str | None = None):
    """Class decorator: make a rule buildable as ``make_rule(name, model)``; ``title`` names it in tables
    and figures (default: the name in capitals)."""

    if RULES.has(name):
        taken = dict.__getitem__(RULES, name).__qualname__
        raise ValueError(f"a learning rule named {name!r} is registered already ({taken}); choose another name")

    def register(cls: type[Rule]) -> type[Rule]:
        for option in cls.options:
            shared = declared_options(RULES.registered()).get(option.name)
            if shared is not None and shared[0].kind is not option.kind:
                raise ValueError(
                    f"rule {name!r} declares option {option.name!r} as {option.kind.__name__}, but {shared[1][0]!r} "
                    f"declares it as {shared[0].kind.__name__} (one flag parses both); rename it"
                )
        cls.name, cls.title = name, title or name.upper()
        RULES[name] = cls
        return cls

    return register


def register_alias(old: str, name: str, note: str) -> None:
    """Keep accepting the old name ``old`` of rule ``name``: it builds that rule after a FutureWarning with
    ``note``, and saved runs that name it read as ``name`` (``canonical_rule``)."""
    if RULES.has(old) or old in ALIASES or not RULES.has(name):
        raise ValueError(f"cannot make {old!r} an alias of {name!r}: the name is taken or the rule is unknown")
    ALIASES[old] = (name, note)


def canonical_rule(name: str, warn: bool = True) -> str:
    """The registered name of rule ``name``: itself, or the rule an old name (``ALIASES``) stands for, with a
    FutureWarning saying so when ``warn``."""
    if name not in ALIASES:
        return name
    new, note = ALIASES[name]
    if warn:
        warnings.warn(f"rule {name!r} is deprecated: {note}; use {new!r}", FutureWarning, stacklevel=3)
    return new


def declared_options(rules: Iterable[type[Rule]] | None = None) -> dict[str, tuple[RuleOption, list[str]]]:
    """Every option name the rules (default: the registered ones) declare -> (the first declaration, the rules
    declaring it)."""
    found: dict[str, tuple[RuleOption, list[str]]] = {}
    for rule in RULES.values() if rules is None else rules:
        for option in rule.options:
            found.setdefault(option.name, (option, []))[1].append(rule.name)
    return found


def rule_class(name: str, warn: bool = True) -> type[Rule]:
    """The registered rule ``name`` (or the one an old name stands for, ``canonical_rule``); ValueError naming the
    registered ones if there is none."""
    name = canonical_rule(name, warn)
    if name not in RULES:
        raise ValueError(f"unknown learning rule {name!r}; choose one of {', '.join(RULES)}")
    return RULES[name]


def rule_settings(name: str, given: dict[str, object]) -> dict[str, object]:
    """The settings of rule ``name``: every option it declares, ``given`` or its default, checked
    (``gevb.rules.options.settings``)."""
    rule = rule_class(name, warn=False)
    return settings(rule.name, rule.options, given)


def valid_pairs() -> str:
    """One line naming which rules go with which networks, for error messages."""
    parts = []
    for vectorized, kind in ((True, "vectorized"), (False, "conventional")):
        rules = "/".join(name for name, rule in RULES.items() if vectorized in rule.vectorized)
        models = ", ".join(architecture_names(vectorized))
        parts.append(f"{rules} with {kind} models ({models})")
    return "; ".join(parts)


def make_rule(name: str, model: Network, seed: int = 0, **options) -> Rule:
    """Build the rule registered as ``name`` for ``model``; ``seed`` draws any fixed random state.

    ``options``: the rule's own settings, those its ``Rule.options`` declare (e.g. node perturbation's
    ``noise_scale``), each checked against its declaration; an option not given takes its default, any
    other is an error naming the valid ones.
    """
    return rule_class(name)(model, seed=seed, **options)


def check_labels(target: torch.Tensor, classes: int) -> None:
    """Raise ValueError unless every label lies in [0, classes). Reads the labels back to the host (one
    synchronization on a GPU), so the engine checks a data set once when it is loaded instead."""
    if len(target) and (int(target.min()) < 0 or int(target.max()) >= classes):
        raise ValueError(f"labels must lie in [0, {classes}); build the model with num_classes = the label count")


def loss_and_error(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean softmax cross-entropy and the per-example output error ``e = softmax(y) - onehot``.

    logits: (B, C) float; target: (B,) integer labels in [0, C) (their range is ``check_labels``'s job;
    the shape and dtype are checked here, without reading the values). Returns (scalar, (B, C)).
    """
    batch, classes = logits.shape
    if target.shape != (batch,) or target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(
            f"target must be a ({batch},) tensor of integer class labels, got {tuple(target.shape)} {target.dtype}"
        )
    log_probs = F.log_softmax(logits, dim=1)
    loss = F.nll_loss(log_probs, target)
    error = log_probs.exp()
    error[torch.arange(batch, device=target.device), target] -= 1
    return loss, error


@dataclass(frozen=True)
class HiddenSignals:
    """What a rule delivers to its hidden layers (docs/rules.md): hidden weight layer j's output gradient is
    ``dL/dh_j[b, k, ...] = vector[b, k] g_j[b, ...] / B`` with ``g_j = G_j * scalars[j]`` (``gated``, G_j
    the gate after the layer) or ``g_j = scalars[j]``.

    scalars: [(B, *S_j)], the signal at each hidden layer's output before its gate (BP: its credit c;
    DFA: ``e @ B_l``; GEVB: 1); vector: (B, K), the K-vector every unit's scalar multiplies (``e`` for
    BP and GEVB, ``-onehot`` for DRTP, ``e / |e|`` for node perturbation), ones (B, 1) in a conventional
    network. The alignment analysis measures exactly these (docs/method.md §6).
    """

    scalars: list[torch.Tensor]
    vector: torch.Tensor
    gated: bool = True


def error_vector(model: Network, error: torch.Tensor) -> torch.Tensor:
    """The vector exact BP's hidden credits multiply: ``e`` (B, K) in a vectorized network, ones (B, 1) in a
    conventional one (docs/method.md §5: ``dL/dh_i = c_i e``, or ``delta_i`` with K = 1)."""
    return error if model.vectorized else error.new_ones(error.shape[0], 1)


class Rule(nn.Module):
    """Base learning rule: a rule computes its ``signals`` under ``no_grad`` and ``deliver`` turns them into
    gradients through the layers' own ``set_grads`` (``deliver_signals``), so what the alignment analysis
    measures is what the rule trains with.

    Class attributes: ``name`` (set by ``register_rule``), ``vectorized`` (which network kinds it
    is defined for), ``needs_graph`` (whether the forward pass must be recorded by autograd),
    ``options`` (the ``RuleOption``s it declares: ``Rule.__init__`` checks them and sets each as
    ``self.<name>``, so the declaration is the one place an option is named), ``lr_search`` (the
    learning rates ``gevb tune`` searches), ``per_unit_signals`` (False for a rule whose updates do not go
    through per-unit signals, such as autograd's BP: it overrides ``set_grads``, and the alignment analysis
    reports its updates only).
    Rules are modules so that fixed random state (DFA feedback) lives in buffers.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    vectorized: ClassVar[tuple[bool, ...]] = (True, False)
    needs_graph: ClassVar[bool] = False
    options: ClassVar[tuple[RuleOption, ...]] = ()
    lr_search: ClassVar[tuple[float, float]] = (1e-5, 1e-2)  # the learning rates gevb tune searches, log-uniform
    per_unit_signals: ClassVar[bool] = True

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__()
        checked = settings(self.name, self.options, options)
        if model.vectorized not in self.vectorized:
            kind = "vectorized" if model.vectorized else "conventional"
            raise ValueError(
                f"rule {self.name!r} is not defined for the {kind} model {model.name!r}; valid pairs: {valid_pairs()}"
            )
        for key, value in checked.items():
            setattr(self, key, value)

    def set_grads(self, model: Network, output: Trace, target: torch.Tensor) -> torch.Tensor:
        """Set ``.grad`` of every parameter of ``model``; return the batch's mean loss (detached)."""
        with torch.no_grad():
            loss, error = loss_and_error(output.logits, target)
            self.deliver(model, output, error, target)
        return loss

    def signals(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> HiddenSignals:
        """This step's signals to the hidden layers from the output error ``error`` (B, num_classes) and the
        labels ``target`` (B,). Changes no state of the rule (``deliver`` advances it)."""
        raise NotImplementedError(
            f"rule {type(self).__name__} must define signals(), or set per_unit_signals = False and override set_grads"
        )

    def deliver(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> None:
        """Set the gradients: the hidden layers' from ``signals``, the readout's true one."""
        deliver_signals(model, output, error, self.signals(model, output, error, target))

    def after_update(self, model: Network) -> None:
        """After the optimizer's step and the model's constraint (not after a skipped step): a rule whose own
        state follows the weights (Kolen-Pollack, weight mirror) updates it here."""


BackwardWeight = Callable[[int, WeightLayer], torch.Tensor]


def backward_credits(
    model: Network, output: Trace, error: torch.Tensor, backward_weight: BackwardWeight | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """A scalar credit at the output of every layer, from the readout down: (i, c_i).

    ``c = 1`` (vectorized) or ``e`` (conventional) at the readout, then ``c_pre = layer^T(c)``
    through each layer (weight transposes, gates, pooling and flatten transposes; docs/method.md §5).
    ``backward_weight(i, layer)`` is the weight weight layer i transposes (default: its own, which
    makes these exact BP's credits). Each credit is computed when the consumer asks for the next
    one, so a consumer may use it first.
    """
    credit = model.split_error(error)[1]
    for i in reversed(range(len(model.layers))):
        yield i, credit
        if i > 0:
            layer = model.layers[i]
            if isinstance(layer, WeightLayer) and backward_weight is not None:
                credit = layer.input_credit(credit, output.saved(i), backward_weight(i, layer))
            else:
                credit = layer.input_credit(credit, output.saved(i))


def unit_signals(model: Network, output: Trace) -> list[torch.Tensor]:
    """All ones per hidden layer, [(B, *S_j)]: every unit receives the broadcast vector itself (GEVB, DRTP)."""
    return [torch.ones_like(output.masks[i]) for i in model.gate_indices]


def deliver_signals(model: Network, output: Trace, error: torch.Tensor, signals: HiddenSignals) -> None:
    """Set every weight layer's gradients (docs/method.md §5): hidden layer j through ``set_grads`` with
    ``err = signals.vector / B`` and ``g = G_j * signals.scalars[j]`` (or the scalars alone, ungated); the
    readout its true gradient from ``error`` (B, num_classes)."""
    err, readout_credit = model.split_error(error)
    hidden_err = signals.vector / error.shape[0]
    *hidden, readout = model.weight_indices
    for i, scalar in zip(hidden, signals.scalars, strict=True):
        g = output.masks[i + 1] * scalar if signals.gated else scalar
        model.layers[i].set_grads(output.inputs[i], hidden_err, g)
    model.layers[readout].set_grads(output.inputs[readout], err, readout_credit)


def give_grads_parameter_layout(model: nn.Module) -> int:
    """Copy every ``.grad`` whose memory layout differs from its parameter's into the parameter's layout.

    The built-in layers already hand back such gradients (tests hold them to it); autograd and a
    user's rule may not, and torch's fused Adam would read a permuted gradient in the wrong order.
    Returns how many gradients were copied.
    """
    copied = 0
    for param in model.parameters():
        if param.grad is not None and not same_layout(param.grad, param):
            param.grad = torch.empty_like(param).copy_(param.grad)
            copied += 1
    return copied


def train_step(
    model: Network,
    rule: Rule,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    target: torch.Tensor,
    before_step: Callable[[torch.Tensor], bool] | None = None,
    check: bool = True,
) -> torch.Tensor:
    """One update: forward, ``rule.set_grads``, ``optimizer.step()``, ``model.apply_constraint()``,
    ``rule.after_update(model)``.

    Gradients reach the optimizer in their parameters' layout (``give_grads_parameter_layout``).

    x: (B, *input_shape); target: (B,). ``before_step(loss)``, if given, runs once the gradients are
    set; it may change them (e.g. average them across processes) and returns False to skip the
    update. ``check``: check the labels' range first (``check_labels``); the engine passes False,
    its data sets having been checked when loaded, so that a step never waits for the device.
    Returns the batch's mean loss before the step (a device tensor).
    """
    if check:
        check_labels(target, model.num_classes)
    with torch.set_grad_enabled(rule.needs_graph):
        output = model.trace(x)
    if torch.is_autocast_enabled(x.device.type) and not rule.needs_graph:  # a bf16 forward (gevb.precision)
        output = fp32_trace(output, model.layers[0].weight.dtype)
        with torch.autocast(x.device.type, enabled=False):
            loss = rule.set_grads(model, output, target)
    else:
        loss = rule.set_grads(model, output, target)
    give_grads_parameter_layout(model)
    if before_step is None or before_step(loss):
        take_step(model, rule, optimizer)
    return loss


def take_step(model: Network, rule: Rule, optimizer: torch.optim.Optimizer) -> None:
    """The update once gradients are set and the step is taken: the optimizer's step, the model's constraint
    (``apply_constraint``), then the rule's ``after_update``."""
    optimizer.step()
    model.apply_constraint()
    rule.after_update(model)
