"""gevb: global error-vector broadcasting in vectorized nonnegative networks, beside BP and DFA.

Clark, Abbott & Chung, "Credit Assignment Through Broadcasting a Global Error Vector",
NeurIPS 2021 (arXiv:2106.04089).
"""

from gevb.build import build_run, load_run
from gevb.config import TrainConfig
from gevb.data import DATASETS, load_dataset
from gevb.evaluation import evaluate_run
from gevb.memory import keep_freed_memory
from gevb.models import ARCHITECTURES, Network, Trace, build_model
from gevb.rules import RULES, make_rule, train_step
from gevb.training import Trainer, train

__version__ = "0.3.0"
__all__ = [
    "ARCHITECTURES",
    "DATASETS",
    "RULES",
    "Network",
    "Trace",
    "TrainConfig",
    "Trainer",
    "build_model",
    "build_run",
    "evaluate_run",
    "load_dataset",
    "load_run",
    "make_rule",
    "train",
    "train_step",
    "keep_freed_memory",
]
