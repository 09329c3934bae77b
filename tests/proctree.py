"""Jobs of several process trees (a launcher, torchrun in its own session, its ranks in theirs) waited on
together under one deadline; on the deadline every process of every tree shows its Python stacks and is
killed, and the test fails with the tails of every log.

Python prints every thread's stack on SIGABRT when PYTHONFAULTHANDLER is set (pass `FAULTHANDLER` in the
children's environment), so a hang in CI, where no debugger runs, leaves its stacks in the logs."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

FAULTHANDLER = {"PYTHONFAULTHANDLER": "1"}
STACK_S = 0.3  # time a process gets to print its stacks after SIGABRT, before the next one is signalled
TAIL_LINES = 60


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state, ppid, pgrp, ...), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, at any depth (parents before children)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        fields = _stat(int(d.name)) if d.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(0), []):
            out.append(c)
            todo.append(c)
    return out


def describe(pids: list[int]) -> str:
    """One line per process still there: pid, state (R running, S sleeping, D disk, Z zombie), command."""
    lines = []
    for pid in pids:
        fields = _stat(pid)
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = "?"
        if fields:
            lines.append(f"  {pid} {fields[0]} {cmd[:200]}")
    return "\n".join(lines) or "  (none)"


def _signal(pids: list[int], sig: int, pause_s: float = 0.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue
        time.sleep(pause_s)


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no output file)"
    return "\n".join(text.splitlines()[-lines:])


def tails(logs: list[Path]) -> str:
    return "\n".join(f"---- {log.name} (last {TAIL_LINES} lines) ----\n{tail(log)}" for log in logs)


def stop_trees(procs: list[subprocess.Popen]) -> str:
    """Stacks (SIGABRT, see FAULTHANDLER), then SIGKILL, for every process of every tree; what was
    still running, described."""
    trees = [[p.pid, *descendants(p.pid)] for p in procs]
    everyone = [pid for tree in trees for pid in tree]
    running = "\n".join(f"tree {i}:\n{describe(tree)}" for i, tree in enumerate(trees))
    # one at a time, so that stacks printed into one log do not interleave; parents first, so that no
    # process sees a child die and starts its own error report before it has printed its stacks
    _signal(everyone, signal.SIGABRT, STACK_S)
    _signal(everyone + [pid for p in procs for pid in descendants(p.pid)], signal.SIGKILL)
    for p in procs:
        p.wait()
    return running


def wait_together(procs: list[subprocess.Popen], logs: list[Path], deadline_s: float) -> list[int]:
    """Every process's exit code, all within `deadline_s` together; past it, fail with what was still
    running and the tails of every log (the stacks printed on the way out included)."""
    end = time.monotonic() + deadline_s
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < end:
            time.sleep(0.1)
    except BaseException:  # Ctrl-C, or the test itself failing: leave nothing behind
        stop_trees(procs)
        raise
    if all(p.poll() is not None for p in procs):
        return [p.returncode for p in procs]
    running = stop_trees(procs)
    pytest.fail(f"not finished within {deadline_s:.0f} s together; still running then:\n{running}\n{tails(logs)}",
                pytrace=False)
