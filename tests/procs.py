"""Run the project's entry points as a user would: subprocesses with a deadline."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    e.update(PYTHONPATH=str(REPO), KINETO_LOG_LEVEL="5", OMP_NUM_THREADS="1", **extra)
    return e


def python_m(module: str, *args: str, timeout: float = 300, extra_env: dict | None = None,
             cwd: Path = REPO) -> subprocess.CompletedProcess:
    """`python -m module args...`; a run past `timeout` seconds fails the test instead of hanging CI."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env(**(extra_env or {})), cwd=cwd)


def torchrun(nproc: int, module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return python_m("torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", module,
                    *args, timeout=timeout)


def start_torchrun(nproc: int, module: str, *args: str, log: Path) -> subprocess.Popen:
    """`torchrun` started in the background, its console in `log`; wait on it with `.wait(timeout)`."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                 f"--nproc_per_node={nproc}", "-m", module, *map(str, args)],
                                stdout=out, stderr=subprocess.STDOUT, env=env(), cwd=REPO)
