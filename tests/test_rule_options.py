"""A rule's options come from its declaration alone (``Rule.options``, docs/rules.md "Options"): ``make_rule``'s
checks, the ``gevb train`` flags, the ``rule_options`` of a config file, the run's record and identity."""

from __future__ import annotations

import json

import pytest
import yaml

from gevb import RULES, build_model, make_rule
from gevb.cli import build_parser, main
from gevb.config import TrainConfig, config_from_mapping
from gevb.rules.base import declared_options

OPTIONS = [(rule.name, option) for rule in RULES.values() for option in rule.options]


def test_every_registered_rule_option_has_a_flag_with_its_default_and_range_checked():
    parser = build_parser()
    train = next(action for action in parser._subparsers._actions if action.choices)._name_parser_map["train"]
    text = " ".join(train.format_help().split())
    assert OPTIONS  # the built-in rules declare some
    for _, option in OPTIONS:
        assert option.flag in text, option.flag
        assert f"default: {option.default}" in text


@pytest.mark.parametrize(("rule", "option"), OPTIONS, ids=[f"{rule}-{option.name}" for rule, option in OPTIONS])
def test_make_rule_takes_each_option_and_refuses_an_unknown_or_out_of_range_one(rule, option):
    model = build_model("fc-vec" if True in RULES[rule].vectorized else "fc", (1, 8, 8), 10, widths=(8, 8))
    built = make_rule(rule, model, **{option.name: option.default})
    assert getattr(built, option.name) == option.default
    with pytest.raises(ValueError, match=f"rule '{rule}' has no option 'no_such'; it takes .*{option.name}"):
        make_rule(rule, model, no_such=1)
    if option.valid is not None and option.kind is not bool:
        outside = option.valid.low - 1
        with pytest.raises(ValueError, match=f"{option.name} must be"):
            make_rule(rule, model, **{option.name: option.kind(outside)})


def test_a_config_records_every_option_of_its_rule_and_only_those():
    config = TrainConfig(model="fc", rule="kolen-pollack").validate()
    assert config.rule_options == {"decay": 3e-3}
    assert (
        TrainConfig(model="fc", rule="weight-mirror", rule_options={"mirror_lr": 0.5})
        .validate()
        .rule_options["mirror_lr"]
        == 0.5
    )
    with pytest.raises(ValueError, match="rule 'gevb' has no option 'decay'; it takes none"):
        TrainConfig(rule="gevb", rule_options={"decay": 0.1}).validate()
    grid_base = TrainConfig(rule_options={"decay": 0.1, "noise_scale": 0.2})
    assert grid_base.for_rule("kolen-pollack").rule_options == {"decay": 0.1}


def test_a_config_saved_with_a_top_level_noise_scale_still_reads():
    old = {"rule": "node-perturbation", "model": "fc", "noise_scale": 0.05}
    assert config_from_mapping(old, "config.yaml").rule_options == {"noise_scale": 0.05}
    assert config_from_mapping({**old, "rule": "gevb", "model": "fc-vec"}, "config.yaml").rule_options == {}


def test_options_from_flags_and_yaml_reach_the_run_and_a_changed_one_is_refused_on_resume(tmp_path, capsys):
    config = tmp_path / "kp.yaml"
    config.write_text(yaml.safe_dump({"rule": "kolen-pollack", "model": "fc", "rule_options": {"decay": 0.01}}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--epochs", "1", "--quiet", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["rule_options"] == {"decay": 0.01}
    assert yaml.safe_load((out / "config.yaml").read_text())["rule_options"] == {"decay": 0.01}
    argv = ["train", "--config", str(config), "--epochs", "2", "--quiet", "--out", str(out), "--resume"]
    assert main([*argv, "--decay", "0.02"]) == 2
    assert "rule_options" in capsys.readouterr().err
    assert main([*argv, "--decay", "0.01"]) == 0  # the flag wins over the file, and says the same


def test_an_option_of_another_rule_is_refused_naming_its_rule(capsys):
    assert main(["train", "--decay", "0.1", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--decay does nothing here: it is kolen-pollack's, and this run's rule is gevb" in err


def test_rules_may_share_an_option_name_only_with_one_type():
    assert all(len({option.kind for _, option in OPTIONS if option.name == name}) == 1 for name in declared_options())
