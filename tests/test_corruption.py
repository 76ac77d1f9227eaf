"""Every learning check fails when the rule it checks is switched off (``corruption.Corrupted``: its hidden
layers' gradients and signals zeros, or random of the same norm), for every valid (architecture, rule, sign)
triple: the learning tests, the angle tests and the known failures of ``tests/test_learning.py`` prove
something only if they do. Its own stage of ``.ci/run`` (``python -m pytest -m corruption``)."""

from __future__ import annotations

import itertools

import pytest

import test_learning
from corruption import CORRUPTIONS
from learning import learning_triples, switched_off, triples_used
from rule_tests import rule_test_modules

pytestmark = pytest.mark.corruption


def parameter_sets(test) -> list[dict]:
    """Every combination of ``test``'s ``pytest.mark.parametrize`` marks, as keyword arguments."""
    axes = []
    for mark in getattr(test, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names, values = mark.args[:2]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        rows = [value.values if hasattr(value, "values") else value for value in values]
        axes.append([dict(zip(names, row if len(names) > 1 else (row,), strict=True)) for row in rows])
    return [dict(item for part in combination for item in part.items()) for combination in itertools.product(*axes)]


def learning_checks() -> list[tuple[str, object, dict]]:
    """(id, test, parameters) for every parametrized test of test_learning.py (a learning check; the others
    check its tables) and every ``@learning.uses`` test of the rules' own test files, and each of its
    parameter sets."""
    tests = [getattr(test_learning, name) for name in dir(test_learning) if name.startswith("test_")]
    tests = [test for test in tests if parameter_sets(test) != [{}]]
    for module in rule_test_modules():
        tests += [getattr(module, name) for name in dir(module) if hasattr(getattr(module, name), "triples")]
    return [
        (f"{test.__name__}[{'-'.join(map(str, params.values()))}]", test, params)
        for test in tests
        for params in parameter_sets(test)
    ]


CHECKS = learning_checks()
TRIPLES = learning_triples()


def test_every_learning_test_declares_the_triples_it_checks():
    for name, test, params in CHECKS:
        assert hasattr(test, "triples"), f"{name}: declare its triples with @learning.uses"
        assert test.triples(**params), name
    checked = {triple for _, test, params in CHECKS for triple in test.triples(**params)}
    assert checked == set(TRIPLES), f"triples no learning test checks: {sorted(set(TRIPLES) - checked)}"


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("triple", TRIPLES, ids=lambda triple: "-".join(triple))
def test_every_check_of_a_triple_fails_with_its_rule_switched_off(triple, corruption):
    checks = [(name, test, params) for name, test, params in CHECKS if triple in test.triples(**params)]
    for name, test, params in checks:
        with switched_off(triple, corruption), triples_used() as used:
            with pytest.raises(AssertionError):
                test(**params)
        assert triple in used, f"{name} does not measure {triple}, which it declares"
