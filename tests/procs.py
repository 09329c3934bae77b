"""Run the project's entry points as a user would: subprocesses with a clean environment, a free port,
a deadline. The one home of these helpers for every test module."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# torchrun's variables: a test's child must not think it is a rank of the pytest process's job
LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")


def env(**extra: str) -> dict[str, str]:
    """This process's environment without torchrun's variables, the repository on PYTHONPATH,
    unbuffered output; ``extra`` on top. The thread count stays this process's, so a
    child's float sums match an in-process run's; pass OMP_NUM_THREADS="1" where ranks share cores."""
    e = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    e.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    e.update(extra)
    return e


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def python_m(module: str, *args: str, timeout: float = 300, extra_env: dict | None = None,
             cwd: Path = REPO) -> subprocess.CompletedProcess:
    """`python -m module args...` with one intra-op thread per process; a run past `timeout` seconds
    fails the test instead of hanging CI."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env(**{"OMP_NUM_THREADS": "1", **(extra_env or {})}), cwd=cwd)


def torchrun(nproc: int, module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return python_m("torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", module,
                    *args, timeout=timeout)


def start_torchrun(nproc: int, module: str, *args: str, log: Path) -> subprocess.Popen:
    """`torchrun` started in the background, its console in `log`; wait on it with `.wait(timeout)`."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                 f"--nproc_per_node={nproc}", "-m", module, *map(str, args)],
                                stdout=out, stderr=subprocess.STDOUT, env=env(), cwd=REPO)
