"""Learning rules, registered by name: ``gevb``, ``bp``, ``dfa``, ``fa``, ``usf``, ``frsf``, ``brsf``, ``drtp``,
``node-perturbation``, ``kolen-pollack``, ``weight-mirror`` and the reference ``bp-autograd`` (docs/rules.md)."""

import importlib
import pkgutil

# Import order is registration order, which error messages and listings follow.
from gevb.rules.gevb import GEVB  # isort: skip
from gevb.rules.bp import BP, AutogradBP  # isort: skip
from gevb.rules.dfa import DFA  # isort: skip
from gevb.rules.feedback_alignment import FeedbackAlignment  # isort: skip
from gevb.rules.sign_concordant import UniformSignConcordant  # isort: skip
from gevb.rules.drtp import DRTP  # isort: skip
from gevb.rules.node_perturbation import NodePerturbation  # isort: skip
from gevb.rules.base import RULES, HiddenSignals, Rule, loss_and_error, make_rule, register_rule, train_step

# Every other module of this package is a rule too, registered in name order after those above: a new rule
# is one new file here (docs/extending.md).
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

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
    "UniformSignConcordant",
    "loss_and_error",
    "make_rule",
    "register_rule",
    "train_step",
]
