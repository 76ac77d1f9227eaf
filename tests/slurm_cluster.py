"""A real one-node Slurm cluster in a temporary folder, for the cluster tests (tests/test_slurm.py).

Debian's packages (``slurmctld slurmd slurm-client munge``; .ci/run installs them) run as root: ``munged`` with a
key of its own, then ``slurmctld`` and ``slurmd`` on this host, every state, spool, log, socket and port private
to the folder, so that the cluster neither needs nor touches /etc and another cluster on the host does not
collide with it. Clients find it through ``SLURM_CONF`` (``LocalSlurm.env``). ``stop`` ends exactly the
processes ``start`` started, by pid, and the jobs their daemons ran.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel")


def missing_programs() -> list[str]:
    """The Slurm and munge programs this host lacks (the cluster needs all of them), and root."""
    missing = [name for name in DAEMONS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]
    if os.geteuid() != 0:
        missing.append("root (the daemons run as root)")
    return missing


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class LocalSlurm:
    """One node (this host, ``cpus`` CPUs), one partition ``debug`` (default); ``env`` for client commands."""

    def __init__(self, folder: Path, cpus: int | None = None) -> None:
        self.folder = folder
        self.cpus = cpus or os.cpu_count() or 1
        self.host = socket.gethostname().split(".")[0]
        self.processes: list[subprocess.Popen] = []
        self.conf = folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def write_files(self) -> None:
        f = self.folder
        for name in ("state", "spool", "log", "munge"):
            (f / name).mkdir(parents=True, exist_ok=True)
        os.chmod(f / "munge", 0o700)
        key = f / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20 // 2
        self.conf.write_text(
            f"""ClusterName=gevbtest
SlurmctldHost={self.host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={f}/munge/socket
CredType=cred/munge
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={f}/state
SlurmdSpoolDir={f}/spool
SlurmctldPidFile={f}/slurmctld.pid
SlurmdPidFile={f}/slurmd.pid
SlurmctldLogFile={f}/log/slurmctld.log
SlurmdLogFile={f}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
KillWait=5
MinJobAge=600
SchedulerParameters=sched_interval=1
NodeName={self.host} CPUs={self.cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
        )

    def start(self, timeout: float = 60.0) -> LocalSlurm:
        self.write_files()
        f = self.folder
        log = open(f / "log" / "daemons.log", "ab")  # noqa: SIM115 (the daemons write it until stop)
        munge = [program("munged"), "-F", "-f", f"--socket={f}/munge/socket", f"--key-file={f}/munge/munge.key",
                 f"--pid-file={f}/munge/munged.pid", f"--log-file={f}/log/munged.log",
                 f"--seed-file={f}/munge/seed"]  # fmt: skip
        self.launch(munge, log)
        self.wait(lambda: (f / "munge" / "socket").exists(), timeout, "munged")
        self.launch([program("slurmctld"), "-D", "-i", "-f", str(self.conf)], log)
        self.launch([program("slurmd"), "-D", "-f", str(self.conf)], log)
        self.wait(self.node_idle, timeout, "the node to come up idle")
        return self

    def launch(self, command: list[str], log) -> None:
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=log, env=self.env, start_new_session=True))

    def node_idle(self) -> bool:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} ended with status {process.returncode}: {self.logs()}")
        shown = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
        return shown.stdout.strip() == "idle"

    def wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the local Slurm cluster did not start: no {what} in {timeout:.0f} s; {self.logs()}"
                )
            time.sleep(0.2)

    def logs(self) -> str:
        return " | ".join(
            f"{path.name}: {path.read_text(errors='replace')[-800:]}"
            for path in sorted((self.folder / "log").glob("*"))
        )

    def stop(self) -> None:
        """End the jobs, then slurmd, slurmctld and munged: the processes ``start`` started (and their groups,
        where a daemon's job steps run), by pid."""
        subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, capture_output=True, timeout=30)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
