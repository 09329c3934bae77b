"""Step timing without per-step host synchronisation, and without garbage-collector pauses.

On CUDA, one event is recorded at every step boundary and the events are read once, at epoch end,
after a single synchronize. On CPU the work is synchronous, so a host clock at the boundaries is exact.

Python's cyclic garbage collector runs a full collection when enough long-lived objects have
accumulated; with torch, torchvision and TensorBoard imported that is 300,000+ objects and takes
100-270 ms on the 2-core CPU box — landing inside one timed step (measured: one such step in every
10-epoch CPU run, in epoch 6). `gc_paused()` collects first and keeps the collector out of the timed
steps, as `timeit` does; the loops re-enable it between epochs.
"""
from __future__ import annotations

import contextlib
import gc
import time
from typing import Iterator

import torch


class StepTimer:
    """Marks step boundaries; `read_ms()` returns the step durations since the last read.

    CUDA events are created once and reused every epoch, so a mark in the timed loop costs one
    `cudaEventRecord` and no allocation.
    """

    def __init__(self, device: torch.device):
        self._cuda = device.type == "cuda"
        self._events: list = []  # reusable CUDA events
        self._marks: list = []   # host clock readings (CPU)
        self._n = 0

    def mark(self) -> None:
        """Record a step boundary (call before the first step and after every step)."""
        if self._cuda:
            if self._n == len(self._events):
                self._events.append(torch.cuda.Event(enable_timing=True))
            self._events[self._n].record()
        else:
            self._marks.append(time.perf_counter())
        self._n += 1

    def read_ms(self) -> list[float]:
        """Durations between consecutive marks in ms; starts over. Synchronises once on CUDA."""
        n, self._n = self._n, 0
        if n < 2:
            self._marks = []
            return []
        if self._cuda:
            ev = self._events[:n]
            ev[-1].synchronize()
            return [a.elapsed_time(b) for a, b in zip(ev, ev[1:])]
        marks, self._marks = self._marks, []
        return [(b - a) * 1e3 for a, b in zip(marks, marks[1:])]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Collect garbage now, then keep the cyclic collector off until the block ends."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
