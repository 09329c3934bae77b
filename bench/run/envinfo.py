"""What produced a run: library versions, devices, host, and the code's git commit."""
from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path

import torch
import torch.distributed as tdist

from bench.run import dist


def git_commit() -> str | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("-dirty" if dirty else "")) or None


def collect(device: torch.device) -> dict:
    cuda = torch.cuda.is_available()
    nccl = None
    if cuda:
        try:
            nccl = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception:  # NCCL absent from this build
            nccl = None
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "nccl": nccl,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_model": platform.processor() or platform.machine(),
        "visible_gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "cpu_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
    }


def rank_hosts() -> list[dict]:
    """Every rank's host name and address, index = rank (collective when a process group exists):
    what tells a multi-host run's ranks apart in env.json.

    >>> rank_hosts()[0]["rank"]
    0
    """
    mine = {"hostname": socket.gethostname(), "address": dist.local_address()}
    table = [mine]
    if tdist.is_initialized():
        table = [None] * tdist.get_world_size()
        tdist.all_gather_object(table, mine)
    return [{"rank": r, **t} for r, t in enumerate(table)]
