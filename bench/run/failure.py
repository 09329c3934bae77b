"""What a rank does when the job fails: record who failed and why in summary.json, then exit.

A rank that fails on its own (an exception, out of memory) is the *primary* witness and always
writes `status: "failed"` with its rank and the error. A rank that only lost contact with a peer
(a collective raised, or the launcher sent SIGTERM because another rank exited) writes only if no
primary account is there yet, naming the peers it finds dead: ranks on this host whose process is
gone. A SIGKILLed rank writes nothing itself; a survivor reports it — so if rank 0 dies, the lowest
surviving rank that gets the error first writes the summary. Writes are atomic (bench.rundir).
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import torch
import torch.distributed as tdist

from bench import rundir


class Terminated(BaseException):
    """SIGTERM or SIGUSR1 arrived before training started (torchrun stops the other ranks this way
    when one fails, and so do schedulers); once training runs they stop it cleanly (bench.run.stepbounds)."""


def _raise_terminated(signum, frame):
    for s in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(s, signal.SIG_IGN)  # one is enough: let the failure record finish
    raise Terminated(f"terminated by signal {signal.Signals(signum).name}")


def install_sigterm_handler() -> None:
    """Turn SIGTERM and SIGUSR1 into an exception so the failure is recorded before the process ends
    (SIGUSR1 would otherwise kill the process without a word)."""
    for s in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(s, _raise_terminated)


def peer_table() -> list[tuple[str, int]]:
    """(hostname, pid) of every rank, index = rank; collective. Used to name a rank that vanished."""
    mine = (socket.gethostname(), os.getpid())
    if not tdist.is_initialized():
        return [mine]
    table: list = [None] * tdist.get_world_size()
    tdist.all_gather_object(table, mine)
    return table


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has died
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True


def dead_ranks(peers: list[tuple[str, int]], wait_s: float = 2.0) -> list[int]:
    """Ranks on this host whose process no longer runs (ranks on other hosts cannot be checked).

    A killed process closes its sockets before it turns into a zombie, so the survivor's error can
    come first: look again for up to `wait_s` before concluding that nobody here died (a hung peer).
    """
    host = socket.gethostname()
    end = time.monotonic() + wait_s
    while True:
        dead = [r for r, (h, pid) in enumerate(peers) if h == host and pid != os.getpid() and not _alive(pid)]
        if dead or time.monotonic() >= end:
            return dead
        time.sleep(0.05)


def is_peer_loss(exc: BaseException) -> bool:
    """True when the error says another rank went away rather than this rank failing."""
    if isinstance(exc, Terminated) or isinstance(exc, getattr(tdist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(s in text for s in (
        "Connection reset by peer", "Connection closed by peer", "Broken pipe", "Timed out",
        "timed out", "gloo", "NCCL", "ProcessGroup"))


def collective_of(exc: BaseException) -> str | None:
    """The torch.distributed call `exc` was raised in (``all_reduce``, ``barrier``, ...), if any."""
    name, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith("distributed_c10d.py"):
            name = tb.tb_frame.f_code.co_name
        tb = tb.tb_next
    return name


def remote_ranks(peers: list[tuple[str, int]]) -> list[str]:
    """'<rank> on <host>' for every rank on another host than this one (their processes cannot be
    checked from here: when contact is lost, they are the suspects)."""
    host = socket.gethostname()
    return [f"{r} on {h}" for r, (h, _) in enumerate(peers) if h and h != host]


def reason(exc: BaseException) -> str:
    """One line: what went wrong."""
    kind = "out of memory" if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) else type(exc).__name__
    text = " ".join(str(exc).split())
    return f"{kind}: {text[:300]}" if text else kind


def record(run_dir: Path, rank: int, exc: BaseException, peers: list[tuple[str, int]]) -> dict | None:
    """Write summary.json with status "failed" for `exc` seen by `rank`; return what was written."""
    if not (run_dir / rundir.CONFIG).is_file():
        return None  # the run directory was never set up: nothing that could look like a run
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish this record; the launcher kills later
    lost_peer = is_peer_loss(exc)
    try:
        before = rundir.read_json(run_dir / rundir.SUMMARY)
    except (OSError, ValueError):
        before = {}
    if lost_peer and before.get("status") == rundir.FAILED:
        return None  # a better-placed witness already wrote
    if before.get("status") in rundir.FINISHED:
        return None
    dead = dead_ranks(peers) if lost_peer else []
    try:
        with open(run_dir / rundir.METRICS) as f:
            epochs_done = max(sum(1 for _ in f) - 1, 0)
    except OSError:
        epochs_done = 0
    failed_rank = rank if not lost_peer else (dead[0] if len(dead) == 1 else None)
    remote = remote_ranks(peers) if lost_peer and failed_rank is None else []
    who = (f"rank {failed_rank}" if not lost_peer else f"rank {failed_rank} died" if failed_rank is not None
           else f"lost contact with rank {', '.join(remote)}" if remote else "a peer rank was lost")
    collective = collective_of(exc)
    where = f", in {collective}" if collective else ""
    summary = {**{k: v for k, v in before.items() if k != "status"}, "status": rundir.FAILED,
               "failed_rank": failed_rank, "dead_ranks": dead, "reported_by_rank": rank, "reason": reason(exc),
               "collective": collective, "failure": f"{who} (reported by rank {rank}{where}): {reason(exc)}",
               "epochs_done": epochs_done, "resumable": (run_dir / rundir.CHECKPOINT).is_file()}
    try:
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
    except OSError:  # the disk may be why we failed; the exit code still tells
        return None
    return summary
