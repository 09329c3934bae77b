"""How busy the machine is besides this job: the load average, and the CPU time other processes took.

A sample reads /proc/stat (every CPU's busy time) and /proc/<pid>/stat of the job's own processes on
this host; the busy time of the rest, over the interval since the previous sample, as a share of all
the machine's CPUs, is `other_cpu_share` (0: nothing else ran, 1: other processes held every CPU).
Where /proc is missing (not Linux) the share is None and the load average alone is recorded.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (idle and iowait are not busy)


def _machine_busy_ticks() -> int | None:
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:]]
    return sum(values[i] for i in _BUSY_FIELDS if i < len(values))


def _process_ticks(pid: int) -> int:
    """utime + stime of one process (its threads included); 0 when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return int(fields[11]) + int(fields[12])


class LoadSampler:
    """Samples the load of the machine around a job whose processes on this host are `pids`."""

    def __init__(self, pids: list[int]):
        self.pids = list(pids)
        self.cpus = os.cpu_count() or 1
        self.host = socket.gethostname()
        self._last = self._read()

    def _read(self) -> tuple[float, int | None, int]:
        return time.monotonic(), _machine_busy_ticks(), sum(_process_ticks(p) for p in self.pids)

    def restart(self) -> None:
        """Start the next interval now (what ran before is not counted)."""
        self._last = self._read()

    def sample(self, when: str, round_: int | None = None) -> dict:
        """One load.csv row (bench.rundir.LOAD_COLUMNS) for the interval since the previous sample."""
        (t0, busy0, own0), now = self._last, self._read()
        self._last = now
        t1, busy1, own1 = now
        share = None
        elapsed_ticks = (t1 - t0) * os.sysconf("SC_CLK_TCK") * self.cpus
        if busy0 is not None and busy1 is not None and elapsed_ticks > 0:
            share = max(0.0, min(1.0, ((busy1 - busy0) - (own1 - own0)) / elapsed_ticks))
        return {"when": when, "round": round_, "host": self.host, "cpus": self.cpus,
                "loadavg_1m": os.getloadavg()[0], "other_cpu_share": share}
