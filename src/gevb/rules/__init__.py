"""Learning rules, registered by name: ``gevb``, ``bp``, ``dfa`` and the reference ``bp-autograd``."""

# Import order is registration order, which error messages and listings follow.
from gevb.rules.gevb import GEVB  # isort: skip
from gevb.rules.bp import BP, AutogradBP  # isort: skip
from gevb.rules.dfa import DFA  # isort: skip
from gevb.rules.base import RULES, Rule, loss_and_error, make_rule, register_rule, train_step

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
