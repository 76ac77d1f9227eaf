"""Learning rules, registered by name: ``gevb``, ``bp``, ``dfa``, ``fa``, ``sign-symmetry``, ``drtp``,
``node-perturbation`` and the reference ``bp-autograd`` (docs/rules.md)."""

# Import order is registration order, which error messages and listings follow.
from gevb.rules.gevb import GEVB  # isort: skip
from gevb.rules.bp import BP, AutogradBP  # isort: skip
from gevb.rules.dfa import DFA  # isort: skip
from gevb.rules.feedback_alignment import FeedbackAlignment  # isort: skip
from gevb.rules.sign_symmetry import SignSymmetry  # isort: skip
from gevb.rules.drtp import DRTP  # isort: skip
from gevb.rules.node_perturbation import NodePerturbation  # isort: skip
from gevb.rules.base import RULES, HiddenSignals, Rule, loss_and_error, make_rule, register_rule, train_step

__all__ = [
    "BP",
    "DFA",
    "DRTP",
    "GEVB",
    "HiddenSignals",
    "RULES",
    "AutogradBP",
    "FeedbackAlignment",
    "NodePerturbation",
    "Rule",
    "SignSymmetry",
    "loss_and_error",
    "make_rule",
    "register_rule",
    "train_step",
]
