"""LeNet trained by bench.train with `fused` / `fused-sync` equals the reference variants step for
step, the Triton kernels run by the interpreter (TRITON_INTERPRET=1 in the runs' environment).

Five tiny runs of the same configuration (global batch 64, 2 epochs of one step, seed 0) start
together: `fused-sync` and `scratch-sync` on 2 gloo ranks, and `fused`, `nn` and `scratch` in one
process. The runs see the same global batches and the same initial weights, so where the BN
arithmetic agrees the trajectories agree, and the final state after the last step carries
every step's differences: all parameters and buffers (checkpoint.pt) and the BN layers'
bn_params.csv; and with one step an epoch, metrics.csv holds each step's own loss.

Tolerance, 1e-5 absolute and relative: the variants sum in different orders (tiles merged with
Chan's formula; autograd's reductions), and float32 rounding (unit 6e-8) through two steps left
them at most 8e-7 apart in the runs that set this tolerance. A variant that got the statistics
wrong is far outside it: `nn` on the same 2 ranks, local statistics instead of the global batch's,
ends 3e-2 away from `scratch-sync` (parameters) and 1e-2 (running statistics).

Running variance: `fused`, `nn` and the cross-rank variants keep the unbiased batch variance, the
textbook's `scratch` the biased one. With momentum 0.1 from 1, after k steps of n samples per
channel each, r_unbiased - 0.9^k = (r_biased - 0.9^k) * n / (n - 1); for LeNet's 2-D layers
(n = 64) that is a 1.6 % difference, well outside the tolerance, so the comparison with `scratch`
goes through the formula.
"""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

from bench import rundir
from tests.procs import REPO, env, free_port

BATCH, STEPS = 64, 2  # one step an epoch: metrics.csv's loss is each step's
ARGS = ("--epochs", str(STEPS), "--batch-size", str(BATCH), "--limit-train", str(BATCH),
        "--limit-test", "64", "--eval-batch", "64", "--no-profile")
RUNS = {  # variant -> world size
    "fused-sync": 2, "fused": 1, "scratch-sync": 2, "nn": 1, "scratch": 1}
TOL = dict(rtol=1e-5, atol=1e-5)
# samples per channel and step of LeNet's BN layers at batch 64: 28x28 input, 5x5 convolutions,
# 2x2 pooling -> bn1 sees 24x24 planes, bn2 8x8, bn3 and bn4 one value per image
SAMPLES = {"bn1": BATCH * 24 * 24, "bn2": BATCH * 8 * 8, "bn3": BATCH, "bn4": BATCH}


def _start(variant: str, world: int, data_dir, out) -> list[subprocess.Popen]:
    """The run's processes: one, or one per rank with the variables torchrun would export (its
    agent process, seconds of start-up on a 2-core machine, adds nothing to the run)."""
    extra = {"OMP_NUM_THREADS": "1"}  # the same float sums in every run
    if variant.startswith("fused"):
        extra["TRITON_INTERPRET"] = "1"
    cmd = [sys.executable, "-m", "bench.train", "--variant", variant, *ARGS,
           "--data-dir", str(data_dir), "--out", str(out / "runs")]
    port = str(free_port())
    ranks = [{"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
              "MASTER_PORT": port} if world > 1 else {} for r in range(world)]
    return [subprocess.Popen(cmd, stdout=open(out / f"{variant}.rank{r}.log", "w"), stderr=subprocess.STDOUT,
                             env=env(**extra, **rank), cwd=REPO) for r, rank in enumerate(ranks)]


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory) -> dict:
    pytest.importorskip("triton", reason="the fused kernels need triton")
    out = tmp_path_factory.mktemp("fused-train")
    jobs = {v: _start(v, w, data_dir, out) for v, w in RUNS.items()}  # interpreted ones first
    try:
        for variant, procs in jobs.items():
            for r, proc in enumerate(procs):
                rc = proc.wait(timeout=400)
                log = (out / f"{variant}.rank{r}.log").read_text()
                assert rc == 0, f"{variant} rank {r}: exit {rc}\n{log[-3000:]}"
    finally:
        for proc in (p for procs in jobs.values() for p in procs):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    return {v: out / "runs" / rundir.default_run_name("lenet", v, w, BATCH, 0) for v, w in RUNS.items()}


def _state(run_dir) -> dict[str, torch.Tensor]:
    model = torch.load(run_dir / rundir.CHECKPOINT, weights_only=False, map_location="cpu")["model"]
    return {k: v for k, v in model.items() if v.is_floating_point()}  # nn's step counter aside


def _bn(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / rundir.BN_PARAMS).set_index(["layer", "channel"]).sort_index()


def _assert_same_training(a, b, skip_running_var: bool = False) -> None:
    state_a, state_b = _state(a), _state(b)
    assert state_a.keys() == state_b.keys() and len(state_a) == 26  # LeNet: 10 weights, 16 BN tensors
    for key, value in state_a.items():
        if not (skip_running_var and key.endswith("running_var")):
            torch.testing.assert_close(value, state_b[key], **TOL, msg=lambda m, k=key: f"{k}: {m}")
    bn_a, bn_b = _bn(a), _bn(b)
    columns = ["weight", "bias", "running_mean"] + ([] if skip_running_var else ["running_var"])
    pd.testing.assert_frame_equal(bn_a[columns], bn_b[columns], check_exact=False, **TOL)
    loss_a = pd.read_csv(a / rundir.METRICS)["train_loss"]
    loss_b = pd.read_csv(b / rundir.METRICS)["train_loss"]
    assert len(loss_a) == len(loss_b) == STEPS  # each step's loss, compared step by step
    pd.testing.assert_series_equal(loss_a, loss_b, check_exact=False, **TOL)


def test_two_rank_fused_sync_equals_scratch_sync(runs):
    _assert_same_training(runs["fused-sync"], runs["scratch-sync"])
    config = rundir.read_json(runs["fused-sync"] / rundir.CONFIG)
    assert config["bn_group_size"] == 2 and "synchronised over 2 of 2 ranks" in config["bn_description"]
    # the BN layers learned: the equality is not that of two untouched initialisations
    bn = _bn(runs["fused-sync"])
    assert (bn["weight"] - 1).abs().max() > 1e3 * TOL["atol"]


def test_one_process_fused_equals_nn(runs):
    _assert_same_training(runs["fused"], runs["nn"])


def test_one_process_fused_equals_scratch_up_to_the_unbiased_running_variance(runs):
    _assert_same_training(runs["fused"], runs["scratch"], skip_running_var=True)
    fused, scratch = _bn(runs["fused"])["running_var"], _bn(runs["scratch"])["running_var"]
    start = 0.9 ** STEPS  # what is left of the initial 1
    n = pd.Series(fused.index.get_level_values("layer").map(SAMPLES), index=fused.index)
    expected = start + (scratch - start) * n / (n - 1)
    pd.testing.assert_series_equal(fused, expected, check_exact=False, check_names=False, **TOL)
    # the correction is not negligible where a channel has 64 samples a step
    two_d = fused.index.get_level_values("layer").isin(["bn3", "bn4"])
    assert ((fused - scratch)[two_d].abs() > 10 * TOL["atol"]).any()
