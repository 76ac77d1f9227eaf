"""Architectures as typed specs (docs/architectures.md): the registry, YAML files, their checks, and a
network from a file trained, evaluated and resumed through the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from conftest import small_widths
from gevb import ARCHITECTURES, build_model
from gevb.cli import main
from gevb.models import Architecture, ArchitectureSpec, register_architecture
from gevb.models.architectures import ARCHITECTURES as REGISTRY
from gevb.models.specs import Conv, Flatten, Linear, Pool, read_spec, spec_yaml

ROOT = Path(__file__).resolve().parents[1]
MY_NET = (ROOT / "examples/my-net.yaml").read_text()


def test_the_documented_example_is_the_example_file():
    docs = (ROOT / "docs/architectures.md").read_text()
    assert re.findall(r"```yaml\n(.*?)```", docs, flags=re.S)[0] == MY_NET


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_registered_spec_round_trips_through_yaml_and_builds_the_same_network(name, channels, tmp_path):
    arch = ARCHITECTURES[name]
    assert isinstance(arch, Architecture) and arch.name == name and arch.title
    spec = arch.spec(channels).with_widths(small_widths(name, channels))
    path = tmp_path / f"{name}.yaml"
    path.write_text(spec_yaml(spec))
    assert read_spec(path) == spec
    registered = build_model(name, (channels, 8, 8), 10, widths=small_widths(name, channels), seed=4)
    from_file = build_model(str(path), (channels, 8, 8), 10, seed=4)
    assert registered.vectorized == arch.vectorized == from_file.vectorized and registered.spec == spec
    assert from_file.state_dict().keys() == registered.state_dict().keys()
    for key, value in registered.state_dict().items():
        assert torch.equal(from_file.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MY_NET.replace("op: pool", "op: dropout"), r"layers\[1\]: unknown op 'dropout'; use one of linear, conv"),
        (MY_NET.replace("kernel: 3, ", ""), r"layers\[0\] \(conv\): needs width, kernel"),
        (MY_NET.replace("padding: 1", "dilation: 2"), r"layers\[0\] \(conv\): unknown key 'dilation'"),
        (MY_NET.replace("width: 64", "width: -4"), r"layers\[3\] \(linear\): width must be a positive integer"),
        (MY_NET.replace("vectorized: true", "vectorized: maybe"), r"vectorized must be true"),
        (MY_NET.replace("layers:", "blocks:"), r"unknown key 'blocks'"),
        ("name: x\nvectorized: true\nlayers: []\n", r"layers must be a non-empty list"),
        ("name: x\nvectorized: true\nlayers: [{op: pool}, {op: flatten}]\n", r"at least one weight layer \(linear"),
        ("layers: [", r"is not valid YAML"),
    ],
)
def test_a_bad_file_names_the_bad_entry(text, message, tmp_path):
    path = tmp_path / "my-net.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        build_model(str(path), (1, 8, 8))


@pytest.mark.parametrize(
    ("layers", "sign", "message"),
    [
        ((Conv(7, 3, 1, 1), Flatten(), Linear(8)), "nonneg", r"layers\[0\] \(conv\): width 7 is odd.*sign='mixed'"),
        (
            (Conv(8, 3), Pool(), Conv(8, 5), Flatten()),
            "mixed",
            r"layers\[2\] \(conv\): kernel 5 is larger than its 3x3",
        ),
        ((Conv(8, 3), Linear(8)), "mixed", r"layers\[1\] \(linear\): its input is a 8x6x6 map; put a flatten before"),
        ((Linear(8), Conv(8, 3)), "mixed", r"layers\[1\] \(conv\): its input is flat \(8 features\)"),
        ((Conv(8, 3),), "mixed", r"the last layer leaves a 8x6x6 map; end with a flatten"),
    ],
)
def test_sizes_are_checked_against_the_input(layers, sign, message):
    with pytest.raises(ValueError, match=message):
        build_model(ArchitectureSpec("my-net", True, layers), (1, 8, 8), sign=sign)
    build_model(ArchitectureSpec("my-net", True, layers), (1, 8, 8), sign="mixed") if sign == "nonneg" else None


def test_a_registered_architecture_is_buildable_by_name(monkeypatch):
    monkeypatch.setattr("gevb.models.architectures.ARCHITECTURES", REGISTRY.copy())

    @register_architecture("tiny-vec", "tiny", True, "Tiny-Vec", ((6,), (6,)))
    def tiny(channels):
        return (Linear(6),)

    model = build_model("tiny-vec", (1, 8, 8), 10)
    assert model.name == "tiny-vec" and model.spec.widths == (6,) and model.vectorized
    with pytest.raises(ValueError, match="registered twice"):
        register_architecture("tiny-vec", "tiny", True, "Tiny-Vec", ((6,), (6,)))(tiny)


def run_json(argv, capsys) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_network_from_a_file_trains_evaluates_and_resumes_after_the_file_is_gone(tmp_path, capsys):
    path = tmp_path / "my-net.yaml"
    path.write_text(MY_NET)
    out = tmp_path / "run"
    argv = [
        "train",
        "--model",
        str(path),
        "--rule",
        "gevb",
        "--lr",
        "1e-2",
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--quiet",
    ]
    result = run_json([*argv, "--out", str(out)], capsys)
    assert result["test_error"] < 60  # measured 11.7-15.8 (seeds 0-4, threads 1 and 2, fast paths on and off)
    assert read_spec(out / "architecture.yaml").layers == read_spec(path).layers
    path.unlink()  # eval and resume rebuild the network from the checkpoint
    evaluated = run_json(["eval", str(out), "--device", "cpu"], capsys)
    assert evaluated["test_error"] == pytest.approx(result["test_error"], abs=1e-9)
    resumed = run_json([*argv, "--epochs", "4", "--out", str(out), "--resume"], capsys)
    assert resumed["epochs"] == 4
    assert main(["train", "--model", str(path), "--epochs", "1", "--quiet"]) == 2
    assert "cannot read architecture file" in capsys.readouterr().err


def test_a_rule_that_does_not_fit_a_files_network_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "my-net.yaml"
    path.write_text(MY_NET)
    assert main(["train", "--model", str(path), "--rule", "dfa", "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rule 'dfa' is not defined for the vectorized model 'my-net'" in err
