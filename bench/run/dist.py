"""All of torch.distributed set-up lives here; nothing else reads torchrun's variables.

torchrun exports RANK, LOCAL_RANK and WORLD_SIZE. Without them this is one process: the single-GPU
fallback, or CPU.
"""
from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

from bench.errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None  # None: one process, no process group
    is_main: bool
    launcher: str  # "torchrun" or "single-process"
    restart_count: int = 0  # torchrun --max-restarts: how many times this job was restarted

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def read_env() -> tuple[int, int, int, bool]:
    """(rank, local_rank, world_size, launched_by_torchrun) from torchrun's variables."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 0, 1, False
    return (int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"])),
            int(os.environ["WORLD_SIZE"]), True)


def local_address() -> str | None:
    """The address this rank's packets to the rendezvous host (torchrun's MASTER_ADDR) leave from: the
    host's address as its peers reach it. None without torchrun, or when no route leads there."""
    master = os.environ.get("MASTER_ADDR")
    if not master:
        return None
    try:  # a connected UDP socket picks the route and source address without sending anything
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((master, int(os.environ.get("MASTER_PORT", "1") or 1)))
            return s.getsockname()[0]
    except OSError:
        return None


def restart_count() -> int:
    """torchrun's TORCHELASTIC_RESTART_COUNT: 0 on the first attempt, k after k restarts."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def make_deterministic(seed: int) -> None:
    """What PyTorch needs for bitwise-repeatable runs; call before the first CUDA kernel.

    cuBLAS reads CUBLAS_WORKSPACE_CONFIG when its handle is created, so it is set here, in the
    set-up path, before any matmul; use_deterministic_algorithms makes an op without a
    deterministic implementation raise instead of silently varying.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.manual_seed(seed)


def resolve_device(requested: str, local_rank: int) -> torch.device:
    if requested not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device {requested!r} is not one of auto, cpu, cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but no CUDA device is visible: use --device cpu (or auto)")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    # More ranks than GPUs happens on purpose when testing with gloo on one GPU: ranks share it.
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def resolve_backend(requested: str, device: torch.device) -> str:
    if requested not in ("auto", "nccl", "gloo"):
        raise UsageError(f"--backend {requested!r} is not one of auto, nccl, gloo")
    if requested == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if requested == "nccl" and device.type != "cuda":
        raise UsageError("--backend nccl needs CUDA devices: use --backend gloo on CPU")
    return requested


def setup(device: str = "auto", backend: str = "auto", timeout_s: float = 300.0,
          deterministic: bool = False, seed: int = 0, group_of_one: bool = False) -> DistInfo:
    """Initialise the process group when launched by torchrun; return who and where we are.

    `timeout_s` bounds every collective: when a peer rank dies, the survivors fail with an error
    after at most this long instead of hanging forever. `group_of_one` initialises a process group
    for a single process too (bench.collectives times a one-rank collective: the per-call floor);
    without torchrun's variables its store is an in-process HashStore.
    """
    rank, local_rank, world_size, torchrun = read_env()
    dev = resolve_device(device, local_rank)
    be = resolve_backend(backend, dev)
    if deterministic:
        make_deterministic(seed)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    grouped = world_size > 1 or group_of_one
    if grouped and not dist.is_initialized():
        kwargs = {"device_id": dev} if be == "nccl" else {}
        timeout = datetime.timedelta(seconds=timeout_s)
        if torchrun:
            # After a torchrun restart the launcher's store can still hold the dead attempt's addresses;
            # a rank reading one connects to a closed port and fails. One key space per attempt.
            store, _, _ = next(dist.rendezvous("env://", rank, world_size, timeout=timeout))
            store = dist.PrefixStore(f"bnbench/attempt{restart_count()}", store)
        else:
            store = dist.HashStore()
        dist.init_process_group(be, store=store, rank=rank, world_size=world_size, timeout=timeout, **kwargs)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev,
                    backend=be if grouped else None, is_main=rank == 0,
                    launcher="torchrun" if torchrun else "single-process", restart_count=restart_count())


def consecutive_groups(group_size: int, info: DistInfo):
    """Process group of this rank's block of `group_size` consecutive ranks (every rank makes all).

    new_group is collective over the whole world, so every rank creates every block.
    """
    if group_size == info.world_size:
        return None  # the default (world) group
    mine = None
    for start in range(0, info.world_size, group_size):
        group = dist.new_group(list(range(start, start + group_size)))
        if start <= info.rank < start + group_size:
            mine = group
    return mine


def end_together(info: DistInfo) -> None:
    """Every rank waits here for the others once its part of the job is done, before it tears down.

    Rank 0 writes the results after the last collective while the others have nothing left to do. Had
    they exited already, a failure there would leave their torchrun agent, whose ranks succeeded,
    waiting up to 300 s in its exit barrier (torchrun's fixed timeout) for the failed node's agent,
    which never comes. Past this barrier only teardown is left; before it, a failing rank makes every
    rank fail at once (a lost peer), so every node ends promptly."""
    if info.distributed:
        dist.barrier()


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
