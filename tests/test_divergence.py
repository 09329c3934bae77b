"""A non-finite loss stops the run at that step on every rank and says so in summary.json."""
from __future__ import annotations

import json
import math
import subprocess

import pytest
import torch
import torch.nn.functional as F

from bench.run.data import load
from bench.nets import build_model
from bench.bn import make_norm
from tests.procs import env
from tests.reliab_util import TINY, torchrun_cmd

LR = "1e36"  # large enough that the loss overflows within the first epoch


def first_nonfinite_step(data_dir, lr: float, world_size: int = 1, batch: int = 64) -> int:
    """An independent plain loop (one rank's view, no DDP needed for world size 1)."""
    d = load(data_dir, torch.device("cpu"), limit_train=512, limit_test=200)
    torch.manual_seed(0)
    net = build_model("lenet", lambda c, dims: make_norm("nn", c, dims))
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    steps = len(d.train_x) // batch
    order = torch.randperm(len(d.train_x), generator=torch.Generator().manual_seed(0))[: steps * batch]
    for i, idx in enumerate(order.view(steps, batch)):
        loss = F.cross_entropy(net(d.train_x[idx]), d.train_y[idx])
        if not math.isfinite(loss.item()):
            return i
        opt.zero_grad()
        loss.backward()
        opt.step()
    raise AssertionError("the reference loop never diverged: raise LR")


@pytest.mark.parametrize("every", [1, 5])
def test_diverged_run_stops_at_the_step(every, tmp_path, data_dir, keep_process_state):
    from bench.errors import EXIT_DIVERGED
    from bench.run.train import main
    out = tmp_path / "runs"
    rc = main(TINY + ["--data-dir", str(data_dir), "--out", str(out), "--run-name", "d", "--epochs", "2",
                      "--lr", LR, "--check-finite-every", str(every)])
    expected = first_nonfinite_step(data_dir, float(LR))
    s = json.loads((out / "d" / "summary.json").read_text())
    assert rc == EXIT_DIVERGED != 0
    assert s["status"] == "diverged"
    assert (s["diverged_epoch"], s["diverged_step"]) == (1, expected)  # exact even when checked every 5
    assert s["diverged_loss"] in ("nan", "inf", "-inf")
    assert s["failure"] == f"loss {s['diverged_loss']} at epoch 1, step {expected}"
    assert s["epochs_done"] == 0 and not (out / "d" / "checkpoint.pt").exists()


def test_diverged_two_ranks_stop_together(tmp_path, data_dir):
    out = tmp_path / "runs"
    p = subprocess.run(torchrun_cmd(*TINY, "--data-dir", str(data_dir), "--out", str(out), "--run-name", "d2",
                                    "--variant", "scratch", "--epochs", "2", "--lr", LR, "--pg-timeout-s", "60"),
                       env=env(), capture_output=True, text=True, timeout=240)
    s = json.loads((out / "d2" / "summary.json").read_text())
    assert p.returncode != 0, p.stdout[-2000:]
    assert s["status"] == "diverged" and s["diverged_epoch"] == 1 and s["world_size"] == 2
    assert "stopping every rank" in p.stdout
    # Both ranks left the loop together: a rank stopping alone would leave the other in a collective
    # until --pg-timeout-s, and the launcher would report a failure instead of exit code 3.
    assert "exitcode  : 3" in p.stderr
