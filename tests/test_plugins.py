"""Plugins from other packages (``gevb.plugins``; docs/extending.md): the example plugin of ``examples/plugin``,
installed as a distribution (its files and a ``.dist-info`` with its entry points on ``sys.path``, in a fresh
process), reaches the command line as built-in rules, data sets and architectures do; a broken plugin is one
line naming it and everything else still works; importing gevb loads no plugin."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import one_thread_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"


def install(site: Path, name: str, entry_points: dict[str, dict[str, str]], package: Path | None = None) -> None:
    """A distribution ``name`` in ``site``: its package (copied) and a ``.dist-info`` declaring ``entry_points``."""
    if package is not None:
        shutil.copytree(package, site / package.name)
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    groups = [f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items())
              for group, points in entry_points.items()]  # fmt: skip
    (info / "entry_points.txt").write_text("\n".join(groups))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example plugin, installed from its pyproject.toml's entry points, and a second, broken plugin."""
    folder = tmp_path_factory.mktemp("site")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    install(folder, project["name"], project["entry-points"], EXAMPLE / "gevb_example_plugin")
    install(folder, "broken-plugin", {"gevb.rules": {"broken": "no_such_module_anywhere"}})
    return folder


def gevb(site: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**one_thread_env(), "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")])}
    return subprocess.run([sys.executable, "-m", "gevb", *argv], capture_output=True, text=True, env=env, timeout=300)


# Several gevb commands in one interpreter with the plugins installed (each interpreter start costs seconds):
# each command's exit status, stdout and stderr, as JSON lines
SESSION = """
import contextlib, io, json, sys
from gevb.cli import main
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    print(json.dumps([status, out.getvalue(), err.getvalue()]), file=sys.__stdout__)
"""


def gevb_session(site: Path, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    env = {**one_thread_env(), "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")])}
    done = subprocess.run([sys.executable, "-c", SESSION, json.dumps(commands)], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    ran = [json.loads(line) for line in done.stdout.splitlines()]
    return [subprocess.CompletedProcess(argv, *result) for argv, result in zip(commands, ran, strict=True)]


BROKEN = "gevb: plugin 'broken' (no_such_module_anywhere, entry point group gevb.rules) failed to load"


def test_a_plugin_rule_data_set_and_architecture_train_from_the_command_line(site, tmp_path):
    argv = ["train", "--dataset", "iris", "--model", "deep-fc-vec", "--rule", "ternary-gevb", "--threshold", "0.1",
            "--epochs", "3", "--batch-size", "16", "--track-alignment", "--json",
            "--out", str(tmp_path / "run")]  # fmt: skip
    done, resumed = gevb_session(
        site, argv, [*argv[:-3], "--threshold", "0.2", "--out", str(tmp_path / "run"), "--resume"]
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["config"]["rule"] == "ternary-gevb" and result["config"]["rule_options"] == {"threshold": 0.1}
    assert result["config"]["dataset"] == "iris" and result["config"]["model"] == "deep-fc-vec"
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(last["alignment"]["signal_deg"]) == 4  # the rule's signals to the 4 hidden layers, measured
    assert [line for line in done.stderr.splitlines() if "plugin" in line] == [BROKEN + ", ModuleNotFoundError: "
            "No module named 'no_such_module_anywhere'; fix or uninstall it"]  # fmt: skip
    assert resumed.returncode == 2 and "rule_options" in resumed.stderr  # a changed rule option is another run


def test_a_plugin_rule_joins_the_grid_and_the_analyses(site, tmp_path):
    listed, checked, summary = gevb_session(
        site,
        ["reproduce", "--dataset", "digits", "--rules", "ternary-gevb", "--models", "fc-vec", "--seeds", "1", "--list",
         "--out", str(tmp_path / "grid")],
        ["sign-check", "--rule", "ternary-gevb", "--model", "deep-fc-vec", "--examples", "4", "--json"],
        ["summary", "--model", "deep-fc", "--dataset", "iris"],
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == [
        f"fc-vec-ternary-gevb-{sign}-seed0" for sign in ("nonneg", "mixed")
    ]
    assert checked.returncode == 0, checked.stderr
    assert summary.returncode == 0 and summary.stdout.count("Linear") == 5, summary.stdout


def test_a_broken_plugin_leaves_the_built_in_rules_working(site):
    done = gevb(site, "train", "--epochs", "1", "--rule", "fa", "--model", "fc", "--widths", "32,16", "--quiet")
    assert done.returncode == 0 and "test error" in done.stdout
    assert done.stderr.count(BROKEN) == 1


def test_importing_gevb_loads_no_plugin(site):
    code = "import sys, gevb; gevb.build_model('fc', (1, 8, 8)); print(any('example_plugin' in m for m in sys.modules))"
    env = {**one_thread_env(), "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "True" and done.stderr == ""  # build_model read the registry: loaded now
    lazy = subprocess.run([sys.executable, "-c", code.replace("gevb.build_model('fc', (1, 8, 8)); ", "")],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert lazy.stdout.strip() == "False"


def test_docs_extending_shows_the_example_plugin_files_as_they_are():
    page = (ROOT / "docs" / "extending.md").read_text()
    shown = page.split("<!-- file: ")[1:]
    assert len(shown) == 4
    for part in shown:
        path, _, rest = part.partition(" -->\n")
        body = rest.split("```", 2)[1].split("\n", 1)[1]  # the fenced block, without its language line
        assert body == (ROOT / path).read_text(), path
