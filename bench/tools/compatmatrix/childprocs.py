"""One cell of the compatibility matrix, run in child processes with a deadline.

Each rank of a cell is a child process forked from a fork server that has imported torch once
(so a cell starts in milliseconds, not a torch import per rank) and never ran an op (so forking is
safe). A cell of more than one rank initialises a process group among its children; a cell of one
rank has none. The parent waits for the ranks whose results decide the cell, and then, or when
the cell's time limit passes, kills whatever is left: a hang costs its own time limit and nothing
more. A child's console output goes to a log file, whose last line becomes the detail when a rank
dies without a result.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from bench.tools.compatmatrix.harness import CaseFailed, Ctx, NotApplicable, VariantSpec
from bench.tools.compatmatrix.cases_ranks import first_line
from bench.tools.compatmatrix.counting import Speed

# imported once by the fork server; torch._dynamo alone takes seconds
PRELOAD = ["torch", "torch.distributed", "torch._dynamo", "bench.tools.compatmatrix.cases_numeric",
           "bench.tools.compatmatrix.cases_ranks"]
POLL_S = 0.2
FAILED_GRACE_S = 2.0  # after one rank fails, how long the others get to report theirs


@dataclass(frozen=True)
class Cell:
    """One (variant, case) with everything its ranks need; picklable."""

    spec: VariantSpec
    fn: Callable[[Ctx], tuple[str, Speed | None]]
    ranks: int  # 1: no process group
    device: str  # "cpu" or "cuda"
    backend: str  # process-group backend when ranks > 1
    pg_timeout_s: float
    limit_s: float
    reps: int
    shape: tuple[int, int, int, int]  # each rank's (N, C, H, W)
    deciding: tuple[int, ...] | None = None  # ranks whose results decide the cell; None: all
    # a deciding rank dying within this many seconds is a clean end (an NCCL watchdog's abort)
    clean_death_s: float | None = None


@dataclass(frozen=True)
class Outcome:
    status: str  # one of bench.rundir.COMPAT_STATUSES
    detail: str
    speed: Speed | None
    case_s: float


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _device(cell: Cell, rank: int) -> torch.device:
    if cell.device == "cuda":  # ranks share GPUs round-robin when there are fewer GPUs than ranks
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")


def _worker(cell: Cell, rank: int, port: int, results: mp.Queue, log: str) -> None:  # in the child
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    torch.set_num_threads(1)
    try:
        device = _device(cell, rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if cell.ranks > 1:
            kwargs = {"device_id": device} if cell.backend == "nccl" else {}
            dist.init_process_group(cell.backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                    world_size=cell.ranks, timeout=timedelta(seconds=cell.pg_timeout_s),
                                    **kwargs)
        detail, speed = cell.fn(Ctx(cell.spec, rank, cell.ranks, device, cell.reps, cell.shape))
        results.put((rank, "pass", detail, speed))
    except CaseFailed as e:
        results.put((rank, "fail", str(e), None))
    except NotApplicable as e:
        results.put((rank, "n/a", str(e), None))
    except BaseException as e:  # noqa: BLE001 - the layer failing is a result, whatever it raised
        results.put((rank, "fail", first_line(e), None))
    # Stay up, without tearing down (that could wait on a stuck rank): rank 0 holds the group's
    # store, and a peer still starting or finishing must not lose it. The parent ends every child.
    time.sleep(cell.limit_s)


def _start(cell: Cell, results: mp.Queue, logs: list[Path]) -> list:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    # read by the fork server's torch import when this is the call that starts it
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TORCHINDUCTOR_COMPILE_THREADS")}
    os.environ.update(OMP_NUM_THREADS="1", TORCHINDUCTOR_COMPILE_THREADS="1")
    port, procs = _free_port(), []
    try:
        for rank in range(cell.ranks):
            args = (cell, rank, port, results, str(logs[rank]))
            p = ctx.Process(target=_worker, args=args, daemon=True)
            p.start()
            procs.append(p)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return procs


def _last_line(log: Path) -> str:
    if not log.is_file():  # the child died before its worker started: its error went to our stderr
        return "it died before the case started (see the console)"
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def _note_dead(procs: list, results: mp.Queue, logs: list[Path], got: dict) -> None:
    """Record a rank that exited without a result as ("died", exit code, last log line)."""
    for r, p in enumerate(procs):
        if r in got or p.exitcode is None:
            continue
        try:  # a rank may have queued its result just before exiting
            rank, *result = results.get(timeout=1.0)
            got[rank] = tuple(result)
        except queue.Empty:
            pass
        if r not in got:
            got[r] = ("died", p.exitcode, _last_line(logs[r]))


def _collect(cell: Cell, procs: list, results: mp.Queue, logs: list[Path],
             deadline: float) -> dict | None:
    """rank -> (status, detail, speed) for the deciding ranks (fewer when one failed early);
    ("died", exit code, last log line) for a rank that exited without one; None past the deadline."""
    deciding = set(cell.deciding if cell.deciding is not None else range(cell.ranks))
    got: dict[int, tuple] = {}
    failed_at = None
    while not deciding <= got.keys():
        if failed_at is None and any(v[0] != "pass" for v in got.values()):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() > failed_at + FAILED_GRACE_S:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            rank, *result = results.get(timeout=min(POLL_S, remaining))
            got[rank] = tuple(result)
        except queue.Empty:
            _note_dead(procs, results, logs, got)
    return got


def _judge(cell: Cell, got: dict | None, took_s: float) -> Outcome:
    if got is None:
        return Outcome("timeout", f"no result within {cell.limit_s:.0f} s", None, took_s)
    # Every rank decides n/a the same way before any collective; a peer of a rank that left may
    # fail meanwhile (its process group lost), and that is no verdict on the layer.
    for status, detail, *_ in got.values():
        if status == "n/a":
            return Outcome("n/a", detail, None, took_s)
    prefix = (lambda r: f"rank {r}: ") if cell.ranks > 1 else (lambda r: "")
    for rank, (status, *rest) in sorted(got.items()):
        if status == "died":
            deciding = cell.deciding is None or rank in cell.deciding
            if cell.clean_death_s is not None and deciding and took_s <= cell.clean_death_s:
                return Outcome("pass", f"{prefix(rank)}ended after {took_s:.1f} s (exit code {rest[0]}): "
                               f"{rest[1]}", None, took_s)
            return Outcome("fail", f"{prefix(rank)}exited with code {rest[0]} without a result: {rest[1]}",
                           None, took_s)
        if status == "fail":
            return Outcome("fail", prefix(rank) + rest[0], None, took_s)
    first = got[min(got)]
    return Outcome("pass", first[1], first[2], took_s)


def run_cell(cell: Cell) -> Outcome:
    """Run the cell's ranks; pass, fail, n/a or timeout, with the detail and the time it took."""
    ctx = mp.get_context("forkserver")
    results: mp.Queue = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="bnbench-compat-") as tmp:
        logs = [Path(tmp) / f"rank{r}.log" for r in range(cell.ranks)]
        start = time.monotonic()
        procs = _start(cell, results, logs)
        try:
            got = _collect(cell, procs, results, logs, start + cell.limit_s)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
            for p in procs:
                p.join(timeout=10)
        return _judge(cell, got, time.monotonic() - start)
