"""``gevb train`` and ``gevb eval``: one run, through ``gevb.training``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Any

from gevb.cli.common import (
    DATASET_METAVAR,
    MODEL_METAVAR,
    InputPath,
    IntList,
    Number,
    add_data_flags,
    device_name,
    emitters,
    path_text,
)
from gevb.config import (
    LR_SCHEDULES,
    NONFINITE_POLICIES,
    OPTIMIZERS,
    RANGES,
    WIDTH,
    TrainConfig,
    check_applies,
    config_from_mapping,
    given_names,
    read_overrides,
)
from gevb.distributed import is_main_process
from gevb.evaluation import evaluate_run
from gevb.files import json_text
from gevb.hooks import split_errors
from gevb.init import SIGNS
from gevb.models import ARCHITECTURES
from gevb.paper import broadcast_rule
from gevb.precision import PRECISIONS
from gevb.rules import RULES
from gevb.rules.base import ALIASES, declared_options
from gevb.runs import RunFolder, check_out
from gevb.text import counted
from gevb.training import Trainer

DEFAULTS = TrainConfig()


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field; a flag not given leaves the YAML / default value."""
    flags: dict[str, dict[str, Any]] = {
        "dataset": {"type": InputPath(".npz"), "metavar": DATASET_METAVAR},
        "model": {
            "type": InputPath(".yaml"),
            "metavar": MODEL_METAVAR,
            "help": f"{', '.join(ARCHITECTURES)}, or a YAML file describing a network (docs/architectures.md)",
        },
        "rule": {
            "choices": (*RULES, *ALIASES),
            "metavar": "{" + ",".join(RULES) + "}",
            "help": "learning rule (docs/rules.md; bp-autograd is the reference BP)",
        },
        "sign": {"choices": SIGNS, "help": "nonneg: the VNN (ON/OFF init, clamp); mixed: He init, no constraint"},
        "widths": {"type": IntList(WIDTH), "metavar": "N,N,...", "help": "hidden widths (units or channels)"},
        "epochs": {"type": int},
        "batch_size": {"type": int},
        "lr": {"type": float, "help": "learning rate"},
        "optimizer": {"choices": OPTIMIZERS, "help": "adam (the paper's) or sgd with --momentum"},
        "momentum": {"type": float, "help": "SGD momentum"},
        "weight_decay": {"type": float, "help": "L2 penalty the optimizer adds to every gradient"},
        "lr_schedule": {
            "choices": LR_SCHEDULES,
            "help": "per epoch: cosine to 0 over --epochs, or x0.1 every --lr-step-epochs",
        },
        "lr_step_epochs": {"type": int, "help": "epochs between x0.1 steps of --lr-schedule step"},
        "val_fraction": {"type": float, "help": "share of the training split held out as validation, by seed"},
        "threads": {"type": int, "help": "torch CPU threads (fewer when other jobs share the cores)"},
        "seed": {"type": int, "help": "seeds the weights, t vectors, DFA feedback and batch order"},
        "eval_every": {"type": int, "help": "evaluate on the full train and test splits every N epochs and at the end"},
        "stop_at_100": {"action": "store_true", "help": "stop at an evaluation with 100%% train accuracy"},
        "eval_batch_size": {"type": int},
        "patience": {
            "type": int,
            "metavar": "N",
            "help": "stop after N evaluations without a lower validation loss (training loss without --val-fraction)",
        },
        "tensorboard": {"action": "store_true", "help": "also log evaluations to OUT/tensorboard (needs the extra)"},
        "track_alignment": {
            "action": "store_true",
            "help": "at every evaluation, record each layer's angle to BP on a fixed batch of 128 training examples",
        },
        "on_nonfinite": {
            "choices": NONFINITE_POLICIES,
            "help": "at a non-finite loss or weight: stop (exit 3, last good checkpoint kept) or skip the step "
            "and halve the learning rate",
        },
        "device": {"type": device_name, "help": "auto, cpu, cuda or cuda:N"},
        "precision": {
            "choices": PRECISIONS,
            "help": "training steps in fp32, tf32 (TF32 tensor cores on CUDA) or bf16 (autocast forward, fp32 "
            "parameters, gradients and Adam; evaluation stays fp32)",
        },
        "data_dir": {"type": path_text, "metavar": "DIR", "help": "folder holding the data set's files"},
        "download": {"action": "store_true", "help": "fetch mnist/fashion-mnist/cifar10 and verify checksums"},
    }
    unset = {
        "rule": "gevb for a -vec model, dfa for a conventional one",
        "patience": "off",
        "widths": "the paper's",
        "data_dir": "$GEVB_DATA_DIR/NAME or ~/.cache/gevb/NAME, then system folders",
    }
    for field in fields(TrainConfig):
        if field.name == "rule_options":
            continue
        options = flags[field.name]
        if field.name in RANGES:  # the range TrainConfig.validate checks, here with the flag's name
            options["type"] = Number(RANGES[field.name], options["type"])
        default = getattr(DEFAULTS, field.name)
        shown = unset[field.name] if field.name in unset else "off" if default is False else default
        options["help"] = f"{options.get('help', field.name.replace('_', ' '))} (default: {shown})"
        parser.add_argument(f"--{field.name.replace('_', '-')}", default=argparse.SUPPRESS, **options)
    add_rule_option_flags(parser)


RULE_OPTION = "rule_option:"  # the argparse ``dest`` prefix of a rule option's flag


def add_rule_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per option the registered rules declare (``gevb.rules.options.RuleOption``), e.g.
    ``--noise-scale``; its value goes to ``rule_options``."""
    for name, (option, owners) in declared_options().items():
        kind = option.kind
        values = (
            {"action": "store_true"} if kind is bool else {"type": Number(option.valid, kind) if option.valid else kind}
        )
        help_text = f"{', '.join(owners)}: {option.help} (default: {option.default})"
        parser.add_argument(option.flag, dest=RULE_OPTION + name, default=argparse.SUPPRESS, help=help_text, **values)


def rule_options_given(args: argparse.Namespace) -> dict[str, object]:
    """The rule options given as flags (``add_rule_option_flags``)."""
    return {key.removeprefix(RULE_OPTION): value for key, value in vars(args).items() if key.startswith(RULE_OPTION)}


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the YAML file of ``--config``, then the flags given. A rule given nowhere follows
    the model, as in ``sign-check``: GEVB for a vectorized model, DFA for a conventional one."""
    overrides = read_overrides(args.config) if args.config else {}
    named = getattr(args, "rule", overrides.get("rule"))
    if named in ALIASES:
        print(f"note: --rule {named} is deprecated: {ALIASES[named][1]}; use {ALIASES[named][0]}", file=sys.stderr)
    base = config_from_mapping(overrides, args.config or "", TrainConfig())
    given = {field.name: getattr(args, field.name) for field in fields(TrainConfig) if hasattr(args, field.name)}
    if options := rule_options_given(args):
        given["rule_options"] = options
    config = config_from_mapping(given, "command line", base)
    if "rule" not in given and "rule" not in overrides:
        config = config.replace(rule=broadcast_rule(config.model))
    given = given_names(given) | given_names(overrides)
    check_applies([config], given & set(declared_options()))  # another rule's option: before validate refuses it
    config = config.validate()
    check_applies([config], given)
    return config


def command_train(args: argparse.Namespace) -> int:
    if args.resume and not args.out:
        raise ValueError("--resume needs the run folder: add --out DIR")
    config = resolve_config(args)
    log, emit = emitters(args.json, args.quiet)
    progress = not args.quiet and sys.stderr.isatty()
    if not is_main_process():  # a torchrun worker of rank > 0: rank 0 speaks for all
        log, emit = (lambda line: None), (lambda *a, **k: None)
    if args.dry_run:
        if args.out:  # what the run would find there, checked; a dry run writes nothing
            folder = RunFolder(args.out)
            check_out(folder.path)
            folder.lock_file.check_free()
            folder.check(config, args.resume)
        trainer = Trainer(config, log=log)
        result = trainer.dry_run()
    else:
        trainer = Trainer(config, args.out, args.resume, log=log, progress=progress)
        result = trainer.fit()
    if args.json:
        emit(json_text(result))
    elif result["test_error"] is None:
        emit(f"nothing to do: {args.out} holds a finished run with no evaluation")
    else:
        where = f", run saved in {result['out']}" if result.get("out") else ""
        done = f"nothing to train: {args.out} holds this run, finished; " if trainer.already_finished else ""
        val = f", val {result['val_error']:.2f}% (loss {result['val_loss']:.4f})" if "val_error" in result else ""
        emit(
            f"{done}test error {result['test_error']:.2f}% (train {result['train_error']:.2f}%{val}) "
            f"after {counted(result['epochs'], 'epoch')}, {result['seconds']:.1f} s{where}"
        )
    return 0


def command_eval(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run, device=args.device, data_dir=args.data_dir, download=args.download)
    if args.json:
        print(json_text(result))
    else:
        run, errors = result["config"], split_errors(result, "{split} error {error:.2f}% (loss {loss:.4f})")
        print(f"{run['model']} / {run['rule']} / {run['sign']} on {run['dataset']}, epoch {result['epoch']}: {errors}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    train_parser = commands.add_parser(
        "train", help="train a model", description="Train a model (no flags: fc-vec with GEVB on digits)."
    )
    add_config_flags(train_parser)
    train_parser.add_argument(
        "--config", type=InputPath(".yaml"), metavar="FILE", help="YAML file of overrides; flags win (default: none)"
    )
    train_parser.add_argument(
        "--out", type=path_text, metavar="DIR", help="run folder to write (default: none, nothing written)"
    )
    train_parser.add_argument("--resume", action="store_true", help="continue the run in --out (default: off)")
    train_parser.add_argument(
        "--dry-run",
        action="store_true",
        help="two batches and one eval batch, nothing written; --out is checked as the run would (default: off)",
    )
    train_parser.add_argument("--json", action="store_true", help="print the result as one JSON line (default: off)")
    train_parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines (default: off)")
    train_parser.set_defaults(handler=command_train)

    eval_parser = commands.add_parser("eval", help="evaluate a saved run", description="Train/test error of a run.")
    eval_parser.add_argument("run", type=InputPath(".pt"), metavar="RUN_DIR_OR_CHECKPOINT")
    add_data_flags(eval_parser, "as trained")
    eval_parser.add_argument("--json", action="store_true", help="print the result as one JSON line (default: off)")
    eval_parser.set_defaults(handler=command_eval)
