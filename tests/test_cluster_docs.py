"""docs/cluster.md: every ``gevb`` command it shows runs (as a ``--dry-run``: the batch scripts or the study's
plan, nothing submitted, trained or written); its ``srun`` command is run by tests/test_slurm.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from gevb.cli import main

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cluster.md"


def commands(program: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith(f"{program} ")]


def test_every_gevb_command_of_the_cluster_page_runs_as_a_dry_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tuned = tmp_path / "runs/tune/digits-fc-vec-gevb-nonneg/best.yaml"  # what the page's gevb tune writes
    tuned.parent.mkdir(parents=True)
    tuned.write_text("lr: 0.001\n")
    shown = commands("gevb")
    assert len(shown) >= 5 and {shlex.split(line)[1] for line in shown} == {"reproduce", "tune"}
    for line in shown:
        argv = shlex.split(line)[1:]
        assert main([*argv, "--dry-run"]) == 0, (line, capsys.readouterr().err)
        printed = capsys.readouterr().out
        assert ("#SBATCH --array=" in printed) == ("--executor" in argv), (line, printed)
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == ["best.yaml"]  # nothing written
