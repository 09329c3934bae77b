"""A non-finite loss stops the run at that step on every rank and says so in summary.json."""
from __future__ import annotations

import json
import math
import subprocess

import pytest
import torch
import torch.nn.functional as F

from bench.run.datasets.fashion_mnist import load
from bench.nets import build_model
from bench.bn import make_norm
from tests.procs import env
from tests.reliab_util import TINY, torchrun_cmd

LR = "1e36"  # large enough that the loss overflows within the first epoch
BLOWUP_LR = "1e9"  # the loss grows by orders of magnitude but stays finite (batch norm keeps it so)


def first_bad_step(data_dir, lr: float, factor: float | None = None, batch: int = 64) -> tuple[int, float]:
    """An independent plain loop (one rank, no DDP): the first step whose loss is non-finite or, with
    `factor`, above factor × the first step's loss; and that loss."""
    d = load(data_dir, torch.device("cpu"), limit_train=512, limit_test=200)
    torch.manual_seed(0)
    net = build_model("lenet", lambda c, dims: make_norm("nn", c, dims))
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    steps = len(d.train_x) // batch
    order = torch.randperm(len(d.train_x), generator=torch.Generator().manual_seed(0))[: steps * batch]
    bound = math.inf
    for i, idx in enumerate(order.view(steps, batch)):
        loss = F.cross_entropy(net(d.train_x[idx]), d.train_y[idx])
        if i == 0 and factor:
            bound = factor * loss.item()
        if not math.isfinite(loss.item()) or loss.item() > bound:
            return i, loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    raise AssertionError("the reference loop never diverged: raise LR")


@pytest.mark.parametrize("every", [1, 5])
def test_nonfinite_run_stops_at_the_step(every, tmp_path, data_dir, keep_process_state):
    from bench.errors import EXIT_DIVERGED
    from bench.run.runner import main
    out = tmp_path / "runs"
    rc = main(TINY + ["--data-dir", str(data_dir), "--out", str(out), "--run-name", "d", "--epochs", "2",
                      "--lr", LR, "--check-finite-every", str(every), "--diverge-above", "off"])
    expected, _ = first_bad_step(data_dir, float(LR))
    s = json.loads((out / "d" / "summary.json").read_text())
    assert rc == EXIT_DIVERGED != 0
    assert s["status"] == "diverged"
    assert (s["diverged_epoch"], s["diverged_step"]) == (1, expected)  # exact even when checked every 5
    assert s["diverged_loss"] in ("nan", "inf", "-inf") and s["diverged_bound"] is None
    assert s["failure"] == f"loss {s['diverged_loss']} at epoch 1, step {expected}"
    assert s["epochs_done"] == 0 and not (out / "d" / "checkpoint.pt").exists()


def test_finite_blowup_is_divergence_by_default(tmp_path, data_dir, keep_process_state):
    """lr 1e9: every loss stays finite, yet the run diverges where a loss first exceeds 100 × the first."""
    from bench.errors import EXIT_DIVERGED
    from bench.run.divergence import DEFAULT_BOUND
    from bench.run.runner import main
    out = tmp_path / "runs"
    rc = main(TINY + ["--data-dir", str(data_dir), "--out", str(out), "--run-name", "b", "--epochs", "2",
                      "--lr", BLOWUP_LR])
    factor = float(DEFAULT_BOUND.removesuffix("x"))
    expected, loss = first_bad_step(data_dir, float(BLOWUP_LR), factor)
    s = json.loads((out / "b" / "summary.json").read_text())
    assert rc == EXIT_DIVERGED
    assert math.isfinite(loss)  # the finite check alone would have let this run finish
    assert (s["status"], s["diverged_epoch"], s["diverged_step"], s["diverged_rank"]) == ("diverged", 1, expected, 0)
    assert float(s["diverged_loss"]) == pytest.approx(loss, rel=1e-6) and float(s["diverged_loss"]) > \
        s["diverged_bound"]
    assert s["failure"] == (f"loss {s['diverged_loss']} above {s['diverged_bound']:.6g} (--diverge-above "
                            f"{DEFAULT_BOUND}) at epoch 1, step {expected}")


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
