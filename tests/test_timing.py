"""Step timing: marks at step boundaries, durations read once, percentiles."""
from __future__ import annotations

import time

import pytest
import torch

from bench.timing import StepTimer, percentile


def test_cpu_marks_give_one_duration_per_step_and_start_over():
    t = StepTimer(torch.device("cpu"))
    t.mark()
    for pause in (0.01, 0.03):
        time.sleep(pause)
        t.mark()
    ms = t.read_ms()
    assert len(ms) == 2 and 9 <= ms[0] < ms[1] and ms[1] >= 29
    assert t.read_ms() == []  # read starts over
    t.mark(); t.mark()
    assert len(t.read_ms()) == 1


def test_percentile_interpolates_like_numpy():
    values = [5.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 90) == pytest.approx(4.4)  # numpy.percentile([1,2,3,5], 90, 'linear')
    assert percentile([], 50) != percentile([], 50)  # NaN for no values
