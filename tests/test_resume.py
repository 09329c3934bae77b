"""A run killed after an epoch and resumed ends with the same metrics as one never interrupted."""
from __future__ import annotations

import json
import os
import signal
import subprocess

from tests.procs import env
from tests.reliab_util import TINY, read_rows, torchrun_cmd, train_cmd, wait_for, worker_pid

EPOCHS = "3"


def _ckpt_epochs(run) -> int:
    import torch
    return torch.load(run / "checkpoint.pt", weights_only=True)["epochs_done"]


def test_killed_single_process_run_resumes_identically(tmp_path, data_dir, keep_process_state):
    from bench.run.runner import main
    flags = TINY + ["--data-dir", str(data_dir), "--out", str(tmp_path), "--epochs", EPOCHS, "--variant", "scratch"]
    assert main(flags + ["--run-name", "whole"]) == 0

    job = subprocess.Popen(train_cmd(*flags, "--run-name", "cut"), env=env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    run = tmp_path / "cut"
    try:
        wait_for(lambda: (run / "checkpoint.pt").exists(), 180, job, poll_s=0.01)
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == -signal.SIGKILL
    assert json.loads((run / "summary.json").read_text())["status"] == "running"  # what a crash leaves
    done = _ckpt_epochs(run)
    assert 1 <= done < int(EPOCHS)

    assert main(flags + ["--resume", str(run)]) == 0
    s = json.loads((run / "summary.json").read_text())
    assert s["status"] == "complete" and s["resumed_from_epoch"] == done and s["epochs_done"] == int(EPOCHS)
    assert read_rows(run / "metrics.csv") == read_rows(tmp_path / "whole" / "metrics.csv")
    assert len(read_rows(run / "metrics.csv")) == int(EPOCHS)


def test_torchrun_restart_resumes_from_checkpoint(tmp_path, data_dir):
    """torchrun --max-restarts=1: kill rank 1 after an epoch; the restarted job continues, not restarts."""
    flags = [*TINY, "--data-dir", str(data_dir), "--out", str(tmp_path), "--epochs", EPOCHS,
             "--variant", "scratch", "--pg-timeout-s", "30"]
    whole = subprocess.run(torchrun_cmd(*flags, "--run-name", "whole"), env=env(), capture_output=True,
                           text=True, timeout=240)
    assert whole.returncode == 0, whole.stderr[-2000:]

    run = tmp_path / "cut"
    job = subprocess.Popen(torchrun_cmd(*flags, "--run-name", "cut", max_restarts=1), env=env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (run / "checkpoint.pt").exists(), 180, job, poll_s=0.01)
        pid = worker_pid(job.pid, 1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        log, _ = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, log[-3000:]
    s = json.loads((run / "summary.json").read_text())
    assert s["status"] == "complete" and s["restart_count"] == 1
    assert 1 <= s["resumed_from_epoch"] < int(EPOCHS), s
    assert f"resuming {run} after epoch {s['resumed_from_epoch']}" in log
    assert read_rows(run / "metrics.csv") == read_rows(tmp_path / "whole" / "metrics.csv")
