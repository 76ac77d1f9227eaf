"""One typed training configuration: every default in one place, YAML overrides, validation.

Precedence: the defaults below < a YAML file of overrides (``--config``) < command-line flags.
The resolved configuration is saved as ``config.yaml`` in every run folder.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from gevb.data.registry import DATASETS
from gevb.files import read_yaml
from gevb.init import SIGNS
from gevb.intervals import COUNT, FRACTION, NONNEGATIVE, POSITIVE, Interval
from gevb.models import ARCHITECTURES
from gevb.models.specs import is_spec_file
from gevb.precision import PRECISIONS
from gevb.rules import RULES
from gevb.rules.base import ALIASES, canonical_rule, declared_options, rule_settings, valid_pairs

DEVICES = ("auto", "cpu", "cuda")
DEVICE_INDEX_MAX = 127  # torch's device index is an int8: torch.device("cuda:128") is cuda:-128
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("none", "cosine", "step")
NONFINITE_POLICIES = ("stop", "skip")


# A seed seeds torch.Generator.manual_seed, which takes 0..2**64 - 1 (it would map a negative seed onto a
# large one, so two seeds would give one run: refused); the thread count goes to torch.set_num_threads, a C int.
SEED_MAX = 2**64 - 1
SEED = Interval(0, SEED_MAX)
SEED_COUNT = Interval(1, SEED_MAX + 1)  # seeds 0..N-1 (gevb reproduce --seeds N), each a SEED
RANGES: dict[str, Interval] = {
    "epochs": COUNT, "batch_size": COUNT, "lr": POSITIVE, "momentum": FRACTION,
    "weight_decay": NONNEGATIVE, "lr_step_epochs": COUNT, "seed": SEED, "val_fraction": FRACTION,
    "eval_every": COUNT, "patience": COUNT, "eval_batch_size": COUNT, "threads": Interval(1, 2**31 - 1),
}  # fmt: skip
WIDTH = COUNT  # each hidden width: a tensor size


def value_text(value: Any) -> str:
    """``value`` for an error message: an integer too long to print (str() refuses over 4300 digits) by its
    size, a long list by its first items."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"a {value.bit_length()}-bit integer"
    if isinstance(value, list) and len(value) > 8:
        return f"[{', '.join(map(value_text, value[:8]))}, ...] ({len(value)} items)"
    if isinstance(value, list):
        return f"[{', '.join(map(value_text, value))}]"
    return str(value)


def check_device(name: str) -> str:
    """``name`` if it is auto, cpu, cuda or cuda:N (N a device index torch can hold), else ValueError."""
    kind, colon, index = name.partition(":")
    digits = index.lstrip("0") or "0"  # at most 3 digits, so that int() never meets 4300 of them
    indexed = kind == "cuda" and index.isascii() and index.isdecimal() and len(digits) <= 3
    indexed = indexed and int(digits) <= DEVICE_INDEX_MAX
    if kind not in DEVICES or (colon and not indexed):
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N (N from 0 to {DEVICE_INDEX_MAX})")
    return name


@dataclass
class TrainConfig:
    """A training run. Defaults: the paper's Adam, lr 3e-4, batch 128 (docs/method.md §7)."""

    dataset: str = "digits"  # a built-in name (gevb.data.DATASETS), an .npz path, or the name of a Dataset you pass
    model: str = "fc-vec"  # a registered architecture (gevb.models.ARCHITECTURES) or a .yaml file describing one
    rule: str = "gevb"
    # the rule's own settings, as its ``Rule.options`` declare them (docs/rules.md); ``validate`` fills in
    # every default, so a saved run records all of them
    rule_options: dict[str, float | int | bool] = field(default_factory=dict)
    sign: str = "nonneg"
    widths: list[int] | None = None  # hidden widths (units / channels); None = the paper's
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-4
    optimizer: str = "adam"  # adam (the paper's) | sgd (with momentum)
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # L2 penalty added to every gradient by the optimizer (biases included)
    lr_schedule: str = "none"  # none | cosine (to 0 over the run's epochs) | step (x0.1 every lr_step_epochs)
    lr_step_epochs: int = 30
    seed: int = 0
    val_fraction: float = 0.0  # this share of the training split, drawn from the seed, is held out as validation
    eval_every: int = 1  # full train and test evaluation every N epochs (and after the last)
    stop_at_100: bool = False  # stop at an evaluation with 100% train accuracy
    patience: int | None = None  # stop after this many evaluations without a lower val (else train) loss
    eval_batch_size: int = 256
    threads: int | None = None  # torch CPU threads; None leaves torch's choice
    tensorboard: bool = False  # also log every evaluation to OUT/tensorboard (the tensorboard extra)
    track_alignment: bool = False  # at each evaluation, angles to BP on a fixed batch (gevb.alignment)
    on_nonfinite: str = "stop"  # stop: end the run at a non-finite loss or weight; skip: skip the step, halve lr
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | tf32 (TF32 matmuls and convolutions on CUDA) | bf16 (autocast forward)
    data_dir: str | None = None
    download: bool = False

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the first bad value and its fix; return this config with every option of
        its rule set (``rule_options``: those given, the others at their defaults)."""
        if self.rule in ALIASES:
            return self.replace(rule=canonical_rule(self.rule)).validate()
        if self.model not in ARCHITECTURES and not is_spec_file(self.model):
            raise ValueError(
                f"unknown model {self.model!r}; choose one of {', '.join(ARCHITECTURES)} or a .yaml file describing one"
            )
        choices = {
            "rule": tuple(RULES), "sign": SIGNS,
            "on_nonfinite": NONFINITE_POLICIES, "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES,
            "precision": PRECISIONS,
        }  # fmt: skip
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"unknown {key} {getattr(self, key)!r}; choose one of {', '.join(allowed)}")
        # a model described in a file is checked against its rule when it is built (gevb.rules.make_rule)
        if self.model in ARCHITECTURES and ARCHITECTURES[self.model].vectorized not in RULES[self.rule].vectorized:
            raise ValueError(f"rule {self.rule!r} does not train model {self.model!r}; valid pairs: {valid_pairs()}")
        for key, interval in RANGES.items():
            value = getattr(self, key)
            if value is not None and value not in interval:
                raise ValueError(f"{key} must be {interval}, got {value_text(value)}")
        if self.widths is not None and (not self.widths or not all(width in WIDTH for width in self.widths)):
            raise ValueError(f"widths must be integers, each {WIDTH}, e.g. 1024,512; got {value_text(self.widths)}")
        check_device(self.device)
        options = rule_settings(self.rule, self.rule_options)
        return self if options == self.rule_options else self.replace(rule_options=options)

    def for_rule(self, rule: str) -> TrainConfig:
        """This config for ``rule``, keeping only the rule options that ``rule`` declares (a grid's base
        config holds the options of all its rules)."""
        names = {option.name for option in RULES[rule].options}
        return self.replace(rule=rule, rule_options={k: v for k, v in self.rule_options.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def inapplicable(config: TrainConfig) -> dict[str, str]:
    """Each setting that changes nothing under ``config``'s other settings -> why, in a few words."""
    why = {}
    if config.optimizer != "sgd":
        why["momentum"] = f"it is SGD's (--optimizer sgd), and this run uses {config.optimizer}"
    if config.lr_schedule != "step":
        why["lr_step_epochs"] = f"it is the step schedule's (--lr-schedule step); this run's is {config.lr_schedule}"
    own = {option.name for option in RULES[config.rule].options} if config.rule in RULES else set()
    for option, (_, owners) in declared_options().items():
        if option not in own:
            why[option] = f"it is {' and '.join(owners)}'s, and this run's rule is {config.rule}"
    if not (config.dataset in DATASETS and DATASETS[config.dataset].files):
        if config.dataset in DATASETS:
            package = DATASETS[config.dataset].package
            files = f"{config.dataset} needs no files" + (f" (it ships with {package})" if package else "")
        elif config.dataset.endswith(".npz"):
            files = f"{config.dataset} is the file itself"
        else:
            files = f"data set {config.dataset} is given as arrays, not read from files"
        why["data_dir"] = why["download"] = files
    return why


def check_applies(configs: list[TrainConfig], given: set[str]) -> None:
    """Raise ValueError naming the first setting of ``given`` (those the user set) that changes nothing in every
    one of ``configs`` (one run's, or a grid's) and why."""
    for key in sorted(given):
        reasons = [inapplicable(config).get(key) for config in configs]
        if all(reasons):
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag} does nothing here: {reasons[0]}; drop {flag}")


# Settings of one stretch of a run's training (a segment: its start, or a resume), which may differ between
# its segments because they change how fast it runs or what it logs, not what it computes (the data's
# fingerprint is checked apart, ``gevb.data.fingerprint``). Each segment's are recorded (``segments`` in
# result.json); config.yaml keeps the first's.
SEGMENT_FIELDS = ("threads", "device", "tensorboard", "track_alignment", "data_dir", "download")
# Fields that define what a run computes: every other one but ``epochs``, which a resume may raise (except
# under a cosine schedule, whose rate reaches 0 at the epochs it started with).
IDENTITY_FIELDS = tuple(field.name for field in fields(TrainConfig) if field.name not in (*SEGMENT_FIELDS, "epochs"))


FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _check_type(key: str, value: Any, hint: Any, source: str) -> Any:
    """Return ``value`` if it has the field's type (ints are accepted for floats), else raise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(option for option in options if option is not type(None))
    if typing.get_origin(hint) is dict:
        if isinstance(value, dict) and all(type(k) is str and type(v) in (float, int, bool) for k, v in value.items()):
            return dict(value)
        example = "e.g. {noise_scale: 0.05}"
        raise ValueError(f"{source}: {key} must be a mapping of option: number, {example}; got {value!r}")
    if typing.get_origin(hint) is list:
        if isinstance(value, list) and all(type(item) is int for item in value):
            return list(value)
        raise ValueError(f"{source}: {key} must be a list of integers, got {value!r}")
    if hint is float and type(value) is int:
        return float(value)
    if hint is float and type(value) is str and FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-3 (no dot in the mantissa) as a string
    if type(value) is not hint:
        raise ValueError(f"{source}: {key} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


FIELD_TYPES = typing.get_type_hints(TrainConfig)


def config_from_mapping(mapping: Any, source: str, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (default: the defaults) overridden by ``mapping``; unknown keys and wrong types raise."""
    if not isinstance(mapping, dict):
        raise ValueError(f"{source}: expected a mapping of option: value, got {type(mapping).__name__}")
    if (
        isinstance(mapping.get("rule"), str) and mapping["rule"] in ALIASES
    ):  # a run saved under a rule's old name is a run of that rule
        mapping = {**mapping, "rule": canonical_rule(mapping["rule"], warn=False)}
    mapping = folded_rule_options(mapping)
    known = {field.name for field in fields(TrainConfig)}
    for key in mapping:
        if key not in known:
            raise ValueError(f"{source}: unknown option {key!r}; valid options: {', '.join(sorted(known))}")
    values = {key: _check_type(key, value, FIELD_TYPES[key], source) for key, value in mapping.items()}
    if "rule_options" in values and base is not None:  # a mapping overrides the options it names, no others
        values["rule_options"] = {**base.rule_options, **values["rule_options"]}
    return dataclasses.replace(base or TrainConfig(), **values)


def folded_rule_options(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` with any rule option given at the top level moved under ``rule_options``. A mapping that
    names its rule and whose rule does not declare the option drops it: configs and checkpoints from before
    rules declared their options saved ``noise_scale`` at the top level for every rule."""
    declared = declared_options()
    loose = [key for key in mapping if key in declared]
    if not loose:
        return mapping
    rule = mapping.get("rule")
    own = {option.name for option in RULES[rule].options} if isinstance(rule, str) and rule in RULES else set(declared)
    folded = {key: value for key, value in mapping.items() if key not in declared}
    options = dict(mapping.get("rule_options") or {})
    for key in loose:
        if key in own or "rule" not in mapping:
            options.setdefault(key, mapping[key])
    if options:
        folded["rule_options"] = options
    return folded


def given_names(mapping: dict[str, Any]) -> set[str]:
    """The settings a mapping of overrides sets, for ``check_applies``: its keys, with each rule option under
    ``rule_options`` named itself."""
    options = mapping.get("rule_options")
    return {key for key in mapping if key != "rule_options"} | set(options if isinstance(options, dict) else ())


def load_config(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """Read a YAML file of overrides (keys as in ``TrainConfig``, e.g. ``batch_size: 64``)."""
    return config_from_mapping(read_overrides(path), str(path), base)


def read_overrides(path: str | Path) -> dict[str, Any]:
    """The mapping of a YAML file of overrides, unchecked (``config_from_mapping`` checks it)."""
    mapping = read_yaml(Path(path), "config file", "fix the file or pass options as flags")
    return {} if mapping is None else mapping


def dump_config(config: TrainConfig) -> str:
    """The resolved configuration as YAML text (every field, in declaration order)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
