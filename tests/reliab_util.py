"""Helpers shared by the reliability tests: runs in-process and as processes (data_dir is in conftest)."""
from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

from tests.procs import free_port
from tests.proctree import descendants

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
TINY = ["--limit-train", "512", "--limit-test", "200", "--batch-size", "64", "--no-profile"]
OUTCOME_COLUMNS = ("epoch", "train_loss", "train_acc", "test_acc")  # not the timing columns


def train_cmd(*args: str) -> list[str]:
    return [PY, "-m", "bench.train", *args]


def torchrun_cmd(*args: str, nproc: int = 2, max_restarts: int = 0, module: str = "bench.train") -> list[str]:
    return [TORCHRUN, f"--nproc_per_node={nproc}", f"--max-restarts={max_restarts}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--monitor-interval=0.5", "-m", module, *args]


def launch_run_cmd(*train_args: str, nproc: int = 2) -> list[str]:
    """`python -m launch.run --nproc N -- <bench.train flags>`."""
    return [PY, "-m", "launch.run", "--nproc", str(nproc), "--", *train_args]


def read_rows(path: Path, columns=OUTCOME_COLUMNS) -> list[tuple[str, ...]]:
    with open(path) as f:
        return [tuple(row[c] for c in columns) for row in csv.DictReader(f)]


def wait_for(predicate, timeout_s: float, proc: subprocess.Popen | None = None, poll_s: float = 0.05):
    """Poll until predicate() is true; fail on timeout or when `proc` ends first."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before the condition held")
        time.sleep(poll_s)
    raise AssertionError(f"condition not met within {timeout_s} s")


def worker_pid(launcher_pid: int, rank: int) -> int | None:
    """PID of the torchrun worker with RANK=rank among the descendants of `launcher_pid`."""
    for pid in descendants(launcher_pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"TORCHELASTIC_RUN_ID" in b"\n".join(environ):
            return pid
    return None
