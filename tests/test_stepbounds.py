"""Preemption: a stop signal in the middle of an epoch, a checkpoint at a step boundary, and a resumed
run that ends bit-identical to one never interrupted (CPU, fixed seed) — one process, two ranks, and
through the launcher. The signals are sent from inside a chosen step (tests/preempt_worker.py), so
every run stops at a known step."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import torch

import bench.run.job
import bench.run.runner
from bench import rundir
from bench.errors import EXIT_FAILED, EXIT_INTERRUPTED
from bench.run import stepbounds as preempt
from tests.preempt_worker import signal_at
from tests.procs import env
from tests.reliab_util import TINY, launch_run_cmd, read_rows, torchrun_cmd, wait_for

FLAGS = [*TINY, "--limit-train", "256", "--epochs", "2", "--variant", "scratch"]  # 256 / 64: 4 steps per epoch
STOP_AT = 6  # the 6th step of the run: epoch 2, step index 1, so 2 of its 4 steps are done


def summary(run) -> dict:
    return json.loads((run / rundir.SUMMARY).read_text())


def position(run) -> tuple[int, int]:
    ckpt = torch.load(run / rundir.CHECKPOINT, weights_only=True)
    return ckpt["epochs_done"], ckpt["steps_done"]


def assert_same_outcome(run, reference) -> None:
    """metrics.csv's outcome columns, the final parameters and buffers, and bn_params.csv: bit for bit."""
    assert read_rows(run / rundir.METRICS) == read_rows(reference / rundir.METRICS)
    assert len(read_rows(run / rundir.METRICS)) == 2
    mine, ref = (torch.load(r / rundir.CHECKPOINT, weights_only=True)["model"] for r in (run, reference))
    assert mine.keys() == ref.keys()
    assert [k for k in ref if not torch.equal(mine[k], ref[k])] == []
    assert (run / rundir.BN_PARAMS).read_text() == (reference / rundir.BN_PARAMS).read_text()


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, data_dir):
    """An uninterrupted one-process run, in this process (its signal handlers restored after)."""
    out = tmp_path_factory.mktemp("preempt")
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        assert bench.run.runner.main([*FLAGS, "--data-dir", str(data_dir), "--out", str(out), "--run-name",
                                     "whole"]) == 0
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    return out, [*FLAGS, "--data-dir", str(data_dir), "--out", str(out)]


def test_sigterm_mid_epoch_then_resume_equals_uninterrupted(one_process, monkeypatch, capsys, keep_process_state):
    out, flags = one_process
    cut = out / "cut"
    # Checks only at epoch ends: one process still stops at the very next step boundary.
    with monkeypatch.context() as m:
        m.setattr(bench.run.job, "make_step", signal_at(STOP_AT, signal.SIGTERM))
        rc = bench.run.runner.main([*flags, "--run-name", "cut", "--checkpoint-every-steps", "3",
                                   "--check-finite-every", "100"])
    s = summary(cut)
    assert rc == EXIT_INTERRUPTED
    assert (s["status"], s["resumable"], s["stop_signal"]) == ("interrupted", True, "SIGTERM")
    assert (s["epochs_done"], s["steps_done"]) == (1, 2) == position(cut)
    assert s["failure"] == f"stopped by SIGTERM in epoch 2 after 2 of 4 steps, checkpoint written; continue " \
                          f"with --resume {cut}"
    assert len(read_rows(cut / rundir.METRICS)) == 1
    assert s["failure"] in capsys.readouterr().out
    # disarmed after the run: a later SIGTERM is the process's again, not a stop request nobody reads
    assert not isinstance(getattr(signal.getsignal(signal.SIGTERM), "__self__", None), preempt.StopRequest)

    assert bench.run.runner.main([*flags, "--resume", str(cut)]) == 0
    s = summary(cut)
    assert s["status"] == "complete" and s["epochs_done"] == 2 and s["resumed_from_epoch"] == 1
    assert_same_outcome(cut, out / "whole")
    # every timed step is recorded once: epoch 1's, then epoch 2's from both attempts
    steps = read_rows(cut / rundir.STEP_TIMES, ("epoch", "step"))
    assert len(steps) == len(set(steps)) == s["measured_steps"]


def test_crash_resumes_from_the_last_step_checkpoint(one_process, monkeypatch, keep_process_state):
    """A rank that dies in step 8 leaves the checkpoint of step 6 (every 3 steps): epoch 2, 2 steps."""
    out, flags = one_process
    run = out / "crash"

    def crash():
        raise RuntimeError("boom: injected")
    with monkeypatch.context() as m:
        m.setattr(bench.run.job, "make_step", signal_at(8, 0, action=crash))
        assert bench.run.runner.main([*flags, "--run-name", "crash", "--checkpoint-every-steps", "3"]) == EXIT_FAILED
    assert summary(run)["status"] == "failed" and summary(run)["resumable"] is True
    assert position(run) == (1, 2)
    assert bench.run.runner.main([*flags, "--resume", str(run)]) == 0
    assert_same_outcome(run, out / "whole")


def test_two_ranks_agree_to_stop_and_resume_bit_identical(tmp_path, data_dir):
    """Only rank 1 gets SIGUSR1, in step 6; with a check every 3 steps both ranks stop after the next
    check (step 7: epoch 2, 3 of 4 steps done). The launcher runs the reference and the resumed attempt."""
    flags = [*FLAGS, "--data-dir", str(data_dir), "--out", str(tmp_path), "--pg-timeout-s", "60"]
    e = env(OMP_NUM_THREADS="1")
    whole = subprocess.run(launch_run_cmd(*flags, "--run-name", "whole"), env=e, capture_output=True, text=True,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]
    cut = tmp_path / "cut"
    p = subprocess.run(torchrun_cmd(str(STOP_AT), "1", "SIGUSR1", *flags, "--run-name", "cut",
                                    "--check-finite-every", "3", module="tests.preempt_worker"),
                       env=e, capture_output=True, text=True, timeout=300)
    s = summary(cut)
    assert (s["status"], s["stop_signal"], s["world_size"]) == ("interrupted", "SIGUSR1", 2), p.stderr[-3000:]
    assert (s["epochs_done"], s["steps_done"]) == (1, 3) == position(cut)
    assert p.stderr.count(f"exitcode  : {EXIT_INTERRUPTED}") >= 1  # torchrun names the ranks' code
    resumed = subprocess.run(launch_run_cmd(*flags, "--resume", str(cut)), env=e, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {cut} after epoch 1, step 3" in resumed.stdout
    assert summary(cut)["status"] == "complete"
    assert_same_outcome(cut, tmp_path / "whole")


def test_launcher_passes_sigusr1_on_and_exits_interrupted(tmp_path, data_dir):
    """A signal to the launcher's process group (a terminal, or a scheduler signalling the task's group)
    reaches torchrun once, through the launcher, and the ranks as the very signal sent: the job stops
    with a checkpoint, records SIGUSR1 and the launcher exits 75."""
    run = tmp_path / "sig"
    job = subprocess.Popen(launch_run_cmd(*TINY, "--epochs", "100", "--variant", "scratch", "--data-dir",
                                          str(data_dir), "--out", str(tmp_path), "--run-name", "sig",
                                          "--checkpoint-every-steps", "4", "--pg-timeout-s", "60"),
                           env=env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)  # its own process group: the signal reaches all of it
    try:
        wait_for(lambda: (run / rundir.CHECKPOINT).exists(), 240, job)
        os.killpg(job.pid, signal.SIGUSR1)
        log, _ = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    s = summary(run)
    assert job.returncode == EXIT_INTERRUPTED, log[-3000:]
    assert (s["status"], s["resumable"], s["stop_signal"]) == ("interrupted", True, "SIGUSR1")
    assert (s["epochs_done"], s["steps_done"]) == position(run) and s["epochs_done"] < 100
