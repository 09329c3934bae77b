"""What produced a run: library versions, devices, host, and the code's git commit."""
from __future__ import annotations

import os
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


def _proc_field(path: str, key: str) -> str | None:
    """The value after `key:` in a /proc file (Linux), else None."""
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), None)
    except OSError:
        return None


def gpu_driver() -> str | None:
    """The NVIDIA driver's version as nvidia-smi reports it; None without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


def machine() -> dict:
    """The host beyond torch: CPU model, logical CPUs, memory (GiB), GPU driver."""
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    return {"cpu_name": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or None,
            "cpu_count": os.cpu_count(),
            "memory_gib": round(int(mem_kb.split()[0]) / 2**20, 1) if mem_kb else None,
            "gpu_driver": gpu_driver() if torch.cuda.is_available() else None}


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
        **machine(),
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
