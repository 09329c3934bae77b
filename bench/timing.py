"""Step timing without per-step host synchronisation.

On CUDA, one event is recorded at every step boundary and the events are read once, at epoch end,
after a single synchronize. On CPU the work is synchronous, so a host clock at the boundaries is exact.
"""
from __future__ import annotations

import time

import torch


class StepTimer:
    def __init__(self, device: torch.device):
        self._cuda = device.type == "cuda"
        self._marks: list = []

    def mark(self) -> None:
        """Record a step boundary (call before the first step and after every step)."""
        if self._cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self._marks.append(ev)
        else:
            self._marks.append(time.perf_counter())

    def read_ms(self) -> list[float]:
        """Durations between consecutive marks in ms; clears the marks. Synchronises once on CUDA."""
        marks, self._marks = self._marks, []
        if len(marks) < 2:
            return []
        if self._cuda:
            marks[-1].synchronize()
            return [a.elapsed_time(b) for a, b in zip(marks, marks[1:])]
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
