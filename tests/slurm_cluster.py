"""A real single-node SLURM cluster for the tests: munge + slurmctld + slurmd on this machine.

The recipe of ../shared/notes/slurm-local.md (Debian's slurm-wlm and munge; proctrack/linuxproc and
task/none, since cgroups do not work in the sandbox), with everything of its own in a temporary
folder: the configuration (found through $SLURM_CONF, so /etc/slurm is not touched), state, spool,
logs, pid files, and free ports, so it never meets another cluster on the machine. `stop` ends the
daemons it started, by their pids; a munged that was already running is left alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd", "munged")
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])  # daemons live in sbin


def program(name: str) -> str | None:
    """The path of a SLURM or munge program, also where a PATH without sbin would miss it."""
    return shutil.which(name, path=SEARCH)
MUNGE_PID = Path("/run/munge/munged.pid")
START_TIMEOUT_S = 60


def missing() -> str | None:
    """Why a cluster cannot be started here, or None."""
    absent = [d for d in DAEMONS if program(d) is None]
    if absent:
        return f"{', '.join(absent)} not installed (Debian packages slurm-wlm and munge; .ci/run installs them)"
    if os.geteuid() != 0:
        return "starting slurmd and munged needs root"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A running single-node cluster; `env` is the environment its clients (sbatch, squeue) need."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.conf = folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": SEARCH}
        self.pids: list[int] = []

    def start(self) -> "Cluster":
        host = socket.gethostname()
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
        self.conf.write_text("\n".join([
            "ClusterName=emoprobe-test", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}", "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory", f"StateSaveLocation={self.folder / 'state'}",
            f"SlurmdSpoolDir={self.folder / 'spool'}", f"SlurmctldPidFile={self.folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.folder / 'slurmd.pid'}", f"SlurmctldLogFile={self.folder / 'slurmctld.log'}",
            f"SlurmdLogFile={self.folder / 'slurmd.log'}", "ReturnToService=2", "MinJobAge=3600",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            f"NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
        self.start_munge()
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([program(daemon)], env=self.env, check=True, timeout=30)
            self.pids.append(self.wait_for_pid(self.folder / f"{daemon}.pid"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while "idle" not in self.run("sinfo", "-h", "-o", "%T").stdout:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the SLURM node never became idle: see {self.folder}/slurmd.log")
            time.sleep(0.5)
        return self

    def start_munge(self) -> None:
        if subprocess.run([program("munge"), "-n"], capture_output=True).returncode == 0:
            return  # already running (not ours to stop)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run([program("mungekey"), "-c"], check=True)
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", program("munged")], check=True, timeout=30)
        self.pids.append(self.wait_for_pid(MUNGE_PID))

    @staticmethod
    def wait_for_pid(path: Path) -> int:
        deadline = time.monotonic() + 10
        while not (path.exists() and path.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no pid file {path}")
            time.sleep(0.1)
        return int(path.read_text())

    def run(self, *command: str, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=cwd, env={**self.env, **(env or {})}, capture_output=True, text=True,
                              check=check, timeout=60)

    def jobs(self) -> list[str]:
        """Job (and array task) ids still pending or running."""
        return self.run("squeue", "-h", "-o", "%i").stdout.split()

    def state(self, job: str) -> str:
        """A job's state (PENDING, RUNNING, COMPLETED, CANCELLED...), finished ones included (MinJobAge)."""
        out = self.run("scontrol", "show", "job", job, check=False).stdout
        return next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "UNKNOWN")

    def wait(self, timeout_s: float) -> None:
        """Until no job is pending or running."""
        deadline = time.monotonic() + timeout_s
        while self.jobs():
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still queued after {timeout_s} s: {self.run('squeue').stdout}")
            time.sleep(0.5)

    def stop(self) -> None:
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
