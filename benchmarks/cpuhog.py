"""A bounded, bursty background CPU load for benchmarks/verdicts.py --load.

One process per CPU, each alternating busy bursts and idle gaps of random length (0.05-1 s), the
kind of neighbour that makes one minute differ from the next. Every hog exits by itself after
`max_s` seconds or as soon as its parent is gone, so it never outlives the script that started it,
even when that script is killed; `Hog` stops them on exit, Ctrl-C included.
"""
from __future__ import annotations

import os
import subprocess
import sys

_CODE = """
import os, random, sys, time
parent, max_s, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rng, end = random.Random(seed), time.monotonic() + max_s
while time.monotonic() < end and os.getppid() == parent:
    stop = time.monotonic() + rng.uniform(0.05, 1.0)
    while time.monotonic() < stop:
        sum(range(1000))
    time.sleep(rng.uniform(0.05, 1.0))
"""


class Hog:
    """`with Hog(n, max_s, seed):` runs n hog processes for at most max_s seconds."""

    def __init__(self, processes: int | None = None, max_s: float = 1800.0, seed: int = 0):
        self.n, self.max_s, self.seed = processes or os.cpu_count() or 1, max_s, seed
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Hog":
        for i in range(self.n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", _CODE, str(os.getpid()), str(self.max_s),
                                                str(self.seed + i)]))
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
