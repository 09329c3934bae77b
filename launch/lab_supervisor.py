"""The host lab's running hosts: their consoles copied out, the faults injected on time, their exit
codes gathered into the lab's (launch.lab_runner starts them; launch.netns makes the faults)."""
from __future__ import annotations

import subprocess
import threading
import time
from typing import Callable

from launch import netns

EXIT_TIMEOUT = 124


class Clock:
    """Seconds since the lab started (`elapsed`), and on the fault clock (`now`), which starts at once
    or at the first console line holding `text`."""

    def __init__(self, text: str | None):
        self.text = text
        self.start = time.monotonic()
        self.zero = None if text else self.start

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def saw(self, line: str) -> None:
        if self.zero is None and self.text in line:
            self.zero = time.monotonic()

    def now(self) -> float | None:
        return None if self.zero is None else time.monotonic() - self.zero


def pump(proc: subprocess.Popen, host: netns.Host, log, clock: Clock) -> threading.Thread:
    """Copy a host's console to its log (a path) and, prefixed with the host, to this console."""
    def copy():
        with open(log, "w") as f:
            for line in proc.stdout:
                clock.saw(line)
                f.write(line)
                f.flush()
                print(f"host{host.index} {clock.elapsed():6.1f}s| {line}", end="", flush=True)
    t = threading.Thread(target=copy, daemon=True)
    t.start()
    return t


def fault_plan(args) -> list[tuple[float, str]]:
    """(seconds on the fault clock, 'cut' | 'restore' | 'kill'), in order."""
    todo = []
    if args.cut_at_s is not None:
        todo += [(args.cut_at_s, "cut"), (args.cut_at_s + args.cut_for_s, "restore")]
    if args.kill_host is not None:
        todo.append((args.kill_at_s, "kill"))
    return sorted(todo)


def inject(lab: netns.Lab, what: str, args, say: Callable[[str], None], clock: Clock, now: float) -> dict:
    """Make one fault happen; the record of it."""
    if what == "kill":
        n = netns.kill_all(lab.hosts[args.kill_host].netns)
        say(f"{clock.elapsed():.1f} s (fault clock {now:.1f} s): SIGKILLed host {args.kill_host}'s {n} processes")
    else:
        netns.set_links(lab, up=what == "restore")
        say(f"{clock.elapsed():.1f} s (fault clock {now:.1f} s): "
            f"{'links restored' if what == 'restore' else 'every link cut'}")
    return {"fault": what, "clock_s": round(now, 3), "elapsed_s": round(clock.elapsed(), 3)}


def supervise(lab: netns.Lab, procs: list[subprocess.Popen], args, clock: Clock,
              say: Callable[[str], None]) -> tuple[list[int | None], list[dict]]:
    """Wait for the hosts, injecting the faults on time; (exit codes, None for a host still running at
    the timeout; the faults as they happened, seconds on the fault clock)."""
    events, todo = [], fault_plan(args)
    codes: list[int | None] = [None] * len(procs)
    while any(c is None for c in codes) and clock.elapsed() < args.timeout_s:
        now = clock.now()
        while todo and now is not None and todo[0][0] <= now:
            events.append(inject(lab, todo.pop(0)[1], args, say, clock, now))
        for i, p in enumerate(procs):
            if codes[i] is None and (rc := p.poll()) is not None:
                codes[i] = 128 - rc if rc < 0 else rc
                say(f"{clock.elapsed():.1f} s: host {i} ({lab.hosts[i].name}) exited {codes[i]}")
        time.sleep(0.1)
    return codes, events


def lab_code(codes: list[int | None]) -> int:
    """The lab's exit code from its hosts'.

    >>> lab_code([0, 0]), lab_code([1, 137]), lab_code([0, 75]), lab_code([0, None])
    (0, 1, 75, 124)
    """
    if any(c is None for c in codes):
        return EXIT_TIMEOUT
    return next((c for c in codes if c), 0)
