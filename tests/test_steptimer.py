"""Step timing: marks at step boundaries, durations read once, percentiles, the paused collector."""
from __future__ import annotations

import gc
import time

import pytest
import torch

from bench.run import step as step_mod
from bench.run import job as job_mod
from bench.run import runner
from bench.run.config import TrainConfig
from bench.run.steptimer import StepTimer, gc_paused, percentile


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


def test_gc_paused_keeps_the_collector_off_inside_and_restores_it():
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("a failing step")
    assert gc.isenabled()  # restored on the way out of an exception too
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_train_steps_run_with_the_collector_paused(tmp_path, data_dir, monkeypatch):
    seen = []
    real = step_mod.make_step

    def spying_make_step(*a, **k):
        inner = real(*a, **k)
        run = inner.run
        inner.run = lambda x, y: seen.append(gc.isenabled()) or run(x, y)
        return inner

    monkeypatch.setattr(job_mod, "make_step", spying_make_step)
    runner.train(TrainConfig(variant="nn", epochs=2, batch_size=64, limit_train=640, limit_test=64,
                                profile=False, device="cpu", data_dir=str(data_dir), out=str(tmp_path)))
    assert len(seen) == 20 and not any(seen)
    assert gc.isenabled()


def test_untimed_first_steps_carry_over_when_the_profiler_window_outlasts_an_epoch(tmp_path, data_dir):
    # 4 steps an epoch; the profiler's 7 window steps and 5 warm-up steps are the attempt's first 12
    # steps, so only epoch 4 is timed: the window's end (and its trace export) in epoch 2 is not.
    cfg = TrainConfig(variant="nn", epochs=4, batch_size=256, limit_train=1024, limit_test=64, profile=True,
                      warmup_steps=5, device="cpu", data_dir=str(data_dir), out=str(tmp_path))
    summary = runner.train(cfg)
    rows = (tmp_path / summary["run_name"] / "step_times.csv").read_text().splitlines()[1:]
    assert summary["measured_steps"] == 4 * 4 - (7 + 5)
    assert sorted({int(r.split(",")[1]) for r in rows}) == [4]  # the epoch column
