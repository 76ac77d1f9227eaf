"""Learning rules, registered by name: ``gevb``, ``bp``, ``dfa`` and the reference ``bp-autograd``."""

from gevb.rules.base import RULES, Rule, loss_and_error, make_rule, register_rule, train_step
from gevb.rules.bp import BP, AutogradBP
from gevb.rules.dfa import DFA
from gevb.rules.gevb import GEVB

__all__ = [
    "BP",
    "DFA",
    "GEVB",
    "RULES",
    "AutogradBP",
    "Rule",
    "loss_and_error",
    "make_rule",
    "register_rule",
    "train_step",
]
