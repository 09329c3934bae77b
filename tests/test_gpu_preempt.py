"""CUDA-only: preemption and divergence on the device path (written for a GPU machine; skipped here).

On CUDA the divergence check (and with it the stop agreement) falls every 50 steps, so these check
what the CPU suite cannot: one process still stops at the very next step boundary, the `100x` bound
works as a device tensor, and a mid-epoch resume in eager and graph mode (outputs copied into
per-step slots) ends bit-identical to an uninterrupted run under --deterministic.
"""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

import bench.run.job
import bench.run.runner
from bench import rundir
from bench.errors import EXIT_DIVERGED, EXIT_FAILED, EXIT_INTERRUPTED
from bench.run.datasets import fashion_mnist as fmnist
from tests.preempt_worker import signal_at
from tests.reliab_util import read_rows

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--limit-train", "2048", "--limit-test", "1000", "--batch-size", "128", "--no-profile", "--epochs", "2",
         "--variant", "nn", "--device", "cuda", "--deterministic"]  # 16 steps per epoch


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    local = REPO / ".gpu" / "data"
    return str(fmnist.prepare(local if local.is_dir() else tmp_path_factory.mktemp("fmnist")))


def _same(run: Path, ref: Path) -> None:
    assert read_rows(run / rundir.METRICS) == read_rows(ref / rundir.METRICS)
    a, b = (torch.load(r / rundir.CHECKPOINT, weights_only=True)["model"] for r in (run, ref))
    assert [k for k in b if not torch.equal(a[k], b[k])] == []


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_one_process_stops_at_the_next_step_and_resumes_exactly(mode, tmp_path, data_dir, monkeypatch,
                                                                keep_process_state):
    flags = [*FLAGS, "--mode", mode, "--data-dir", data_dir, "--out", str(tmp_path)]
    main = bench.run.runner.main
    assert main([*flags, "--run-name", "whole"]) == 0
    with monkeypatch.context() as m:
        m.setattr(bench.run.job, "make_step", signal_at(21, signal.SIGUSR1))
        assert main([*flags, "--run-name", "cut", "--checkpoint-every-steps", "7"]) == EXIT_INTERRUPTED
    s = json.loads((tmp_path / "cut" / rundir.SUMMARY).read_text())
    assert (s["status"], s["stop_signal"], s["epochs_done"]) == ("interrupted", "SIGUSR1", 1)
    assert s["steps_done"] == 21 - 16  # the step it was signalled in, long before the next check (step 50)
    assert main([*flags, "--resume", str(tmp_path / "cut")]) == 0
    _same(tmp_path / "cut", tmp_path / "whole")

    def crash():
        raise RuntimeError("boom: injected")
    with monkeypatch.context() as m:
        m.setattr(bench.run.job, "make_step", signal_at(25, 0, action=crash))
        assert main([*flags, "--run-name", "crash", "--checkpoint-every-steps", "7"]) == EXIT_FAILED
    assert main([*flags, "--resume", str(tmp_path / "crash")]) == 0
    _same(tmp_path / "crash", tmp_path / "whole")


def test_finite_blowup_diverges_on_cuda(tmp_path, data_dir, keep_process_state):
    rc = bench.run.runner.main([*FLAGS, "--lr", "1e9", "--data-dir", data_dir, "--out", str(tmp_path),
                               "--run-name", "b"])
    s = json.loads((tmp_path / "b" / rundir.SUMMARY).read_text())
    assert rc == EXIT_DIVERGED and s["status"] == "diverged" and s["diverged_bound"] is not None
    assert float(s["diverged_loss"]) > s["diverged_bound"] and s["diverged_epoch"] == 1
