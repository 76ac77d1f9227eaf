"""The learning harness of ``tests/test_learning.py``: one (architecture, rule, sign) triple trained on the
digits for ``STEPS`` steps of the engine's own Adam (``gevb.build.make_optimizer``, whose whole step
``tests/test_step.py`` holds to the reference), and what is measured on it afterwards.

Shared by the learning tests, their corruption meta-test (``tests/test_corruption.py``) and the spread
measurement behind every bound (``python tests/measure_spread.py``). ``trained`` and ``measured`` cache per
process; the thread count and the fast paths are the caller's (the tests run at one thread, fast paths on).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from conftest import digits_tensors as digits
from conftest import valid_pairs
from corruption import Corrupted
from gevb import ARCHITECTURES, build_model, make_rule, train_step
from gevb.alignment import angle_deg, grads_kept, measure_alignment, weight_updates
from gevb.build import make_optimizer
from gevb.init import SIGNS
from gevb.models import Network
from gevb.rules import Rule, loss_and_error
from gevb.rules.feedback import feedback_generator, initial_draw

WIDTHS = {"fc": (32, 32), "conv": (8, 8, 32), "lc": (8, 8, 32)}
STEPS, BATCH, LR = 300, 64, 3e-3
PROBE = 128  # angles are measured on the first PROBE digits
# what a learning bound holds: seed 0's ratio, or the median over MEDIAN_SEEDS (tests/test_learning.py)
SEED, MEDIAN = "seed 0", "median"
MEDIAN_SEEDS = (0, 1, 2)
# bp-autograd is bp's reference: tests/test_rules.py and tests/test_step.py hold its gradients and whole steps
# equal to bp's on every parameter of every network, so it is trained here only as bp
REFERENCE_RULES = ("bp-autograd",)


@dataclass
class Trained:
    """A triple after ``STEPS`` steps: the model and rule, the training loss before and after, and the
    hidden weight layers' initial weights."""

    model: Network
    rule: Rule
    start: float
    end: float
    initial: list[torch.Tensor]


def training_loss(model: Network) -> float:
    x, y = digits()
    with torch.no_grad():
        return loss_and_error(model(x), y)[0].item()


def network(arch: str, sign: str, seed: int) -> Network:
    """The triple's network as built from ``seed``, before any step: every rule's run and the baseline start here."""
    return build_model(arch, (1, 8, 8), 10, sign, widths=WIDTHS[ARCHITECTURES[arch].family], seed=seed)


@functools.cache
def initial_loss(arch: str, sign: str, seed: int) -> float:
    """The training loss of ``network(arch, sign, seed)``, computed once for all the rules that start from it."""
    return training_loss(network(arch, sign, seed))


def learning_triples() -> list[tuple[str, str, str]]:
    """Every valid (architecture, rule, sign) but those of ``REFERENCE_RULES``: what the learning tests cover."""
    return [(arch, rule, sign) for arch, rule in valid_pairs() for sign in SIGNS if rule not in REFERENCE_RULES]


def train(
    arch: str, rule_name: str, sign: str, seed: int = 0, readout_only: bool = False, corruption: str | None = None
) -> Trained:
    """Train the triple from ``seed`` (the model, the rule's random state and the batch order); ``readout_only``:
    Adam gets the readout alone; ``corruption``: the rule switched off (``corruption.Corrupted``)."""
    x, y = digits()
    model = network(arch, sign, seed)
    rule = make_rule(rule_name, model, seed=seed)
    if corruption is not None:
        rule = Corrupted(rule, corruption, seed)
    optimizer = make_optimizer(model.layers[-1] if readout_only else model, LR)
    generator = torch.Generator().manual_seed(seed)
    start = initial_loss(arch, sign, seed)
    initial = [layer.weight.detach().clone() for layer in model.weight_layers[:-1]]
    for _ in range(STEPS):
        batch = torch.randint(0, len(x), (BATCH,), generator=generator)
        loss = train_step(model, rule, optimizer, x[batch], y[batch])
        assert torch.isfinite(loss)
    return Trained(model, rule, start, training_loss(model), initial)


trained = functools.cache(train)


def train_readout(arch: str, sign: str, seed: int = 0) -> Trained:
    """``train(arch, "bp", sign, seed, readout_only=True)`` (its reference), faster: the hidden layers never
    change, so the readout's input for every digit is computed once, and each of the same steps runs the readout
    alone (autograd's gradient, Adam, the constraint). Equal up to rounding (``tests/test_learning.py``)."""
    x, y = digits()
    model = network(arch, sign, seed)
    readout = model.layers[-1]
    optimizer = make_optimizer(readout, LR)
    generator = torch.Generator().manual_seed(seed)
    start = initial_loss(arch, sign, seed)
    initial = [layer.weight.detach().clone() for layer in model.weight_layers[:-1]]
    with torch.no_grad():
        features = model.activation_before(x, len(model.layers) - 1)
    for _ in range(STEPS):
        batch = torch.randint(0, len(x), (BATCH,), generator=generator)
        optimizer.zero_grad()
        loss = loss_and_error(model._logits(readout(features[batch])), y[batch])[0]
        loss.backward()
        optimizer.step()
        model.apply_constraint()
    return Trained(model, make_rule("bp", model, seed=seed), start, training_loss(model), initial)


@functools.cache
def readout_alone(arch: str, sign: str, seed: int = 0) -> Trained:
    """The baseline: the same network, seed and batches with only the readout trained (every rule gives the
    readout its true gradient, so one baseline serves all rules)."""
    return train_readout(arch, sign, seed)


def feedback_angles(arch: str, rule_name: str, sign: str, seed: int = 0, corruption: str | None = None) -> dict:
    """For a rule with backward weights (``gevb.rules.feedback.Feedback``): each one's angle to its forward weight
    at its first draw (before any warm-up) and after the harness's steps; a measurement for ``of``."""
    model = network(arch, sign, seed)
    run = trained(arch, rule_name, sign, seed, corruption=corruption)
    inner = getattr(run.rule, "inner", run.rule)  # a switched-off rule wraps the rule
    generator, layers = feedback_generator(seed), model.weight_indices[1:]
    drawn = {i: initial_draw(model, i, generator) for i in layers}
    return {
        "start": [angle_deg(drawn[i], model.layers[i].weight) for i in layers],
        "end": [angle_deg(inner.feedback(i), run.model.layers[i].weight) for i in layers],
    }


@functools.cache
def measured(arch: str, rule_name: str, sign: str, seed: int = 0, corruption: str | None = None) -> dict:
    """What the learning tests assert on, for the triple trained from ``seed``:

    - ``ratio``: final training loss / the readout-alone baseline's;
    - ``signal_deg``, ``update_deg``: angles to BP after training (``gevb.alignment``) on the first PROBE digits,
      hidden layers only, in order (None where undefined);
    - ``moved``: per hidden weight layer, ``|W - W_0| / |W_0|``, how far training took it.
    """
    run = trained(arch, rule_name, sign, seed, corruption=corruption)
    base = readout_alone(arch, sign, seed)
    same_start = all(map(torch.equal, run.initial, base.initial))
    assert same_start, "the rule and the baseline start from different networks"
    x, y = digits()
    angles = measure_alignment(run.model, run.rule, x[:PROBE], y[:PROBE])
    moves = [layer.weight.detach() - w0 for layer, w0 in zip(run.model.weight_layers[:-1], run.initial, strict=True)]
    return recorded(
        (arch, rule_name, sign, seed, corruption),
        {
            "ratio": run.end / base.end,
            "start": run.start,
            "end": run.end,
            "readout_alone": base.end,
            "signal_deg": list(angles["signal_deg"].values()),
            "update_deg": list(angles["update_deg"].values())[:-1],
            "moved": [(move.norm() / w0.norm()).item() for move, w0 in zip(moves, run.initial, strict=True)],
        },
    )


DRAWS = 128  # noise draws averaged by ``mean_update``


@functools.cache
def mean_update(arch: str, rule_name: str, sign: str, seed: int = 0, corruption: str | None = None) -> dict:
    """For a rule with noise (node perturbation), after training, on the first PROBE digits, per hidden weight
    layer: ``mean_update_deg``, the angle (degrees) between the mean of ``DRAWS`` of its updates (new noise each)
    and BP's gradient; ``mean_update_z``, that alignment as ``cos * sqrt(weights)``, which is standard normal for
    a mean of random directions (so it says how far from chance it is, whatever the layer's size)."""
    run = trained(arch, rule_name, sign, seed, corruption=corruption)
    model, rule = run.model, run.rule
    x, y = digits()
    with grads_kept(model, rule):
        total = [torch.zeros_like(w) for w in run.initial]
        with torch.no_grad():
            output = model.trace(x[:PROBE])  # one forward pass serves every draw (the rule adds its own)
        for _ in range(DRAWS):
            rule.set_grads(model, output, y[:PROBE])
            for acc, layer in zip(total, model.weight_layers, strict=False):
                acc += layer.weight.grad
        gradients = weight_updates(model, make_rule("bp", model), x[:PROBE], y[:PROBE])
    angles = [angle_deg(mean, gradient) for mean, gradient in zip(total, gradients, strict=False)]
    z = [math.cos(math.radians(a)) * math.sqrt(mean.numel()) for a, mean in zip(angles, total, strict=True)]
    return recorded(
        (arch, rule_name, sign, seed, corruption),
        {
            "mean_update_deg": [None if math.isnan(a) else a for a in angles],
            "mean_update_z": [None if math.isnan(value) else value for value in z],
        },
    )


def recorded(key: tuple, values: dict) -> dict:
    """``values``, also appended to the file GEVB_LEARNING_RECORD names (to compare runs: the suite twice, a file
    alone, a test alone)."""
    record = os.environ.get("GEVB_LEARNING_RECORD")
    if record:
        with open(record, "a") as file:
            file.write(json.dumps({"triple": list(key), **values}) + "\n")
    return values


Triple = tuple[str, str, str]  # (architecture, rule, sign)
_switched_off: dict[Triple, str] = {}  # triple -> corruption, inside ``switched_off``
_recorders: list[set[Triple]] = []  # open ``triples_used`` blocks


def of(arch: str, rule_name: str, sign: str, seed: int = 0, what: Callable[..., dict] = measured) -> dict:
    """What a learning test asserts on: ``what`` (``measured``, ``mean_update``) for the triple, with the rule
    switched off where an enclosing ``switched_off`` says so; every call is noted by open ``triples_used``."""
    triple = (arch, rule_name, sign)
    for used in _recorders:
        used.add(triple)
    return what(arch, rule_name, sign, seed, _switched_off.get(triple))


@contextmanager
def switched_off(triple: Triple, corruption: str) -> Iterator[None]:
    """Inside the block, ``of(*triple)`` measures the triple trained with its rule corrupted."""
    _switched_off[triple] = corruption
    try:
        yield
    finally:
        del _switched_off[triple]


def uses(triples: Callable[..., list[Triple]]) -> Callable:
    """Decorator of a learning test: ``triples(**params)`` are the triples it asks ``of`` for, each of which
    must make it fail when switched off (``tests/test_corruption.py`` holds the declaration to the calls)."""

    def declare(test: Callable) -> Callable:
        test.triples = triples
        return test

    return declare


@contextmanager
def triples_used() -> Iterator[set[Triple]]:
    """The triples ``of`` is asked for inside the block."""
    used: set[Triple] = set()
    _recorders.append(used)
    try:
        yield used
    finally:
        _recorders.remove(used)
