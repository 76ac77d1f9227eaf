"""gevb: global error-vector broadcasting in vectorized nonnegative networks, beside BP and DFA.

Clark, Abbott & Chung, "Credit Assignment Through Broadcasting a Global Error Vector",
NeurIPS 2021 (arXiv:2106.04089).
"""

from gevb.config import TrainConfig
from gevb.data import DATASETS, load_dataset
from gevb.models import ARCHITECTURES, Network, Trace, build_model
from gevb.rules import RULES, make_rule, train_step
from gevb.training import Trainer, evaluate_run, train

__version__ = "0.1.0"
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
    "load_dataset",
    "make_rule",
    "train",
    "train_step",
]
