"""gevb: global error-vector broadcasting in vectorized nonnegative networks, beside BP and DFA.

Clark, Abbott & Chung, "Credit Assignment Through Broadcasting a Global Error Vector",
NeurIPS 2021 (arXiv:2106.04089).
"""

import os

# Large CPU tensors on transparent huge pages: a first touch of a fresh 250 MB activation costs
# about 6x less (docs/design.md, "Efficiency"). torch reads this once, at its first allocation, so it
# only takes effect when gevb is imported before torch; an explicit setting always wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from gevb.memory import keep_freed_memory  # noqa: E402

keep_freed_memory()  # before torch is imported, where it pays most (gevb/memory.py)

from gevb.config import TrainConfig  # noqa: E402
from gevb.data import DATASETS, load_dataset  # noqa: E402
from gevb.models import ARCHITECTURES, Network, Trace, build_model  # noqa: E402
from gevb.rules import RULES, make_rule, train_step  # noqa: E402
from gevb.training import Trainer, evaluate_run, train  # noqa: E402

__version__ = "0.2.0"
__all__ = [
    "ARCHITECTURES",
    "DATASETS",
    "RULES",
    "Network",
    "Trace",
    "TrainConfig",
    "Trainer",
    "build_model",
    "evaluate_run",
    "keep_freed_memory",
    "load_dataset",
    "make_rule",
    "train",
    "train_step",
]
