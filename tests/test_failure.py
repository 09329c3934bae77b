"""A rank that fails ends the job within a bounded time, and summary.json says which and why."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch

import bench.run.loop
import bench.run.runner
from tests.procs import env
from tests.reliab_util import TINY, torchrun_cmd, wait_for, worker_pid


def _fail_on_call(n: int, exc: BaseException):
    calls = {"n": 0}
    real = bench.run.loop.evaluate

    def evaluate(*a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return real(*a, **k)
    return evaluate


@pytest.mark.parametrize("exc,fail_on_eval,reason_start", [
    (RuntimeError("boom: injected"), 2, "RuntimeError: boom: injected"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), 1, "out of memory: CUDA out"),
])
def test_exception_is_recorded(exc, fail_on_eval, reason_start, tmp_path, data_dir, monkeypatch, capsys,
                               keep_process_state):
    monkeypatch.setattr(bench.run.loop, "evaluate", _fail_on_call(fail_on_eval, exc))
    out = tmp_path / "runs"
    rc = bench.run.runner.main(TINY + ["--data-dir", str(data_dir), "--out", str(out), "--run-name", "f",
                                  "--epochs", "3"])
    s = json.loads((out / "f" / "summary.json").read_text())
    assert rc == 1
    assert s["status"] == "failed" and s["failed_rank"] == 0 and s["reported_by_rank"] == 0
    assert s["reason"].startswith(reason_start)
    assert s["failure"] == f"rank 0 (reported by rank 0): {s['reason']}"
    assert s["epochs_done"] == fail_on_eval - 1  # epochs finished before the failing evaluation
    assert s["resumable"] == (fail_on_eval > 1) == (out / "f" / "checkpoint.pt").exists()
    assert "Traceback" in capsys.readouterr().err  # a failure of this rank keeps its traceback


PG_TIMEOUT_S = 30


@pytest.mark.parametrize("victim", [1, 0])
def test_killed_rank_ends_job_and_is_named(victim, tmp_path, data_dir):
    out = tmp_path / "runs"
    run = out / "k"
    job = subprocess.Popen(torchrun_cmd(*TINY, "--data-dir", str(data_dir), "--out", str(out), "--run-name", "k",
                                        "--variant", "scratch", "--epochs", "6",
                                        "--pg-timeout-s", str(PG_TIMEOUT_S)),
                           env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (run / "checkpoint.pt").exists(), 180, job)  # mid-training: epoch 1 is saved
        pid = worker_pid(job.pid, victim)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        log, _ = job.communicate(timeout=PG_TIMEOUT_S + 60)
        ended_after_s = time.monotonic() - killed_at
    finally:
        if job.poll() is None:
            job.kill()
    s = json.loads((run / "summary.json").read_text())
    assert job.returncode != 0
    assert ended_after_s < PG_TIMEOUT_S + 60
    assert s["status"] == "failed", (s, log[-3000:])
    assert s["failed_rank"] == victim and s["dead_ranks"] == [victim]
    assert s["reported_by_rank"] == 1 - victim  # the survivor wrote it
    assert s["failure"].startswith(f"rank {victim} died (reported by rank {1 - victim})")
    assert s["resumable"] is True and s["epochs_done"] >= 1


def test_report_lists_failed_runs_apart(tmp_path, data_dir, monkeypatch, capsys, keep_process_state):
    from analysis.render.labels import run_labels
    from analysis.render.runs_section import runs_section
    from analysis.load.run_dirs import load_runs
    flags = TINY + ["--data-dir", str(data_dir), "--out", str(tmp_path), "--epochs", "1"]
    assert bench.run.runner.main(flags + ["--run-name", "good"]) == 0
    monkeypatch.setattr(bench.run.loop, "evaluate", _fail_on_call(1, RuntimeError("boom: injected")))
    assert bench.run.runner.main(flags + ["--run-name", "broken"]) == 1

    runs = load_runs([tmp_path])
    md = runs_section(runs, run_labels(runs))
    complete_part, _, apart = md.partition("### Runs that did not complete")
    assert "| good" in complete_part and "broken" not in complete_part
    assert "| broken" in apart and "| failed" in apart and "boom: injected" in apart
    assert "| good" not in apart.split("###")[0]
