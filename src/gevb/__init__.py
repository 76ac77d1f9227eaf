"""gevb: global error-vector broadcasting in vectorized nonnegative networks, beside BP and DFA.

Clark, Abbott & Chung, "Credit Assignment Through Broadcasting a Global Error Vector",
NeurIPS 2021 (arXiv:2106.04089).
"""

from gevb.models import ARCHITECTURES, Network, Trace, build_model
from gevb.rules import RULES, make_rule, train_step

__version__ = "0.1.0"
__all__ = ["ARCHITECTURES", "RULES", "Network", "Trace", "build_model", "make_rule", "train_step"]
