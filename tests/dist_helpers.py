"""Multi-process test helpers: run a function on W gloo ranks; count collectives.

``run_workers`` runs ``fn`` in W processes, with a deadline, and returns what each rank returned:

    def add_rank(rank: int, world_size: int, base: int) -> int:
        t = torch.tensor([rank + base])
        dist.all_reduce(t)
        return int(t)

    run_workers(add_rank, 2, 10)  # -> [21, 21]

``fn`` must be defined at module level (worker processes import it by name). It runs with
the default process group already initialised (gloo, CPU) and one intra-op thread. Its return value
travels through ``torch.save``, so tensors, numbers, lists and dicts of them are all fine.

A rank that raises, a rank that dies, and a collective that never completes all fail the caller
with an exception instead of hanging the test session; every worker is killed on the way out.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from bench.tools.compatmatrix.counting import COLLECTIVES, CountCollectives  # one home: the compat tool's
from tests.procs import free_port

__all__ = ["COLLECTIVES", "CountCollectives", "run_workers"]

# how often the parent looks for dead workers while waiting for results
_POLL_S = 0.2

# imported once by the fork server instead of in every worker; DistributedDataParallel's
# constructor pulls in torch._dynamo, which alone takes seconds to import
_PRELOAD = ["torch", "torch.distributed", "torch._dynamo", "torch.nn.parallel"]

def _worker(  # runs in the worker process
    fn: Callable[..., Any],
    rank: int,
    world_size: int,
    port: int,
    timeout_s: float,
    args: tuple,
    results: mp.Queue,
) -> None:
    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
        )
        value = fn(rank, world_size, *args)
        buffer = io.BytesIO()
        # plain bytes: a tensor sent through the queue would live in shared memory owned by
        # this process, which is about to exit
        torch.save(value, buffer)
        results.put((rank, True, buffer.getvalue()))
    except BaseException:  # noqa: BLE001 - every failure must reach the parent
        # no clean shutdown here: it could wait on ranks that are stuck; the parent kills us
        results.put((rank, False, traceback.format_exc()))
        return
    # after the result is out: tearing down may wait for the other ranks
    dist.destroy_process_group()


def _context() -> mp.context.BaseContext:
    """Forkserver with torch preloaded: each worker is a fork of a process that imported torch
    but never ran an op (fork-safe), so a run costs milliseconds, not a torch import per rank."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _start(ctx, fn, world_size: int, timeout_s: float, args: tuple, results: mp.Queue) -> list:
    """One worker process per rank, meeting on a fresh port."""
    port = free_port()
    # the fork server, started by the first run, reads OMP_NUM_THREADS when it imports torch
    saved_omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    processes = []
    try:
        for rank in range(world_size):
            process = ctx.Process(target=_worker, args=(fn, rank, world_size, port, timeout_s, args, results),
                                  daemon=True)
            process.start()
            processes.append(process)
    finally:
        if saved_omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved_omp
    return processes


def _next_result(name: str, results: mp.Queue, processes: list, payloads: dict, remaining: float):
    """(rank, ok, payload) of the next rank to report, or None to keep waiting; RuntimeError when a
    rank exited without reporting."""
    try:
        return results.get(timeout=min(_POLL_S, remaining))
    except queue.Empty:
        dead = {r: p.exitcode for r, p in enumerate(processes) if r not in payloads and p.exitcode is not None}
        if not dead:
            return None
        # a rank may have queued its result just before exiting: give it a moment
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            raise RuntimeError(f"{name}: ranks exited without a result (exit codes {dead})") from None


def _collect(name: str, world_size: int, timeout_s: float, results: mp.Queue, processes: list) -> dict:
    deadline = time.monotonic() + timeout_s
    payloads: dict[int, bytes] = {}
    while len(payloads) < world_size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = sorted(set(range(world_size)) - payloads.keys())
            raise TimeoutError(f"{name}: ranks {missing} of {world_size} did not finish within {timeout_s} s "
                               f"(a collective that some rank never joined?)")
        got = _next_result(name, results, processes, payloads, remaining)
        if got is None:
            continue
        rank, ok, payload = got
        if not ok:
            raise RuntimeError(f"{name} failed on rank {rank}:\n{payload}")
        payloads[rank] = payload
    return payloads


def run_workers(
    fn: Callable[..., Any], world_size: int, *args: Any, timeout_s: float = 60
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks; return results by rank.

    Raises RuntimeError with the worker's traceback if any rank fails or dies, and TimeoutError
    naming the ranks still out if they have not all finished ``timeout_s`` seconds after the start.
    """
    ctx = _context()
    results: mp.Queue = ctx.Queue()
    processes = _start(ctx, fn, world_size, timeout_s, args, results)
    payloads: dict[int, bytes] = {}
    try:
        payloads = _collect(getattr(fn, "__name__", repr(fn)), world_size, timeout_s, results, processes)
    finally:
        for process in processes:
            if process.is_alive() and len(payloads) < world_size:
                process.kill()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
    return [torch.load(io.BytesIO(payloads[rank]), weights_only=False) for rank in range(world_size)]
