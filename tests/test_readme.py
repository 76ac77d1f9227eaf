"""The README tells the truth: its quick start matches .ci/run and its example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    quick_start = code_blocks("bash")[0].strip().splitlines()
    assert len(quick_start) == 2
    ci_commands = [
        line
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_commands == [quick_start[1]]


def test_python_example_is_the_example_file_and_runs():
    example = ROOT / "examples/quickstart.py"
    assert code_blocks("python")[0] == example.read_text()
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=300, check=True)
    error = float(re.search(r"training error ([\d.]+)%", result.stdout).group(1))
    assert error < 5.0, result.stdout
