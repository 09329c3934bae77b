"""What bench.train's timed loop asks the device to run per step, against bench.overhead's bare loop.

Eager LeNet training on a GPU is bound by kernel launches, so every op the harness adds per step
is in its examples/s. Timings on this CPU box cannot resolve a 3 % budget; op counts are exact. Each
loop is run twice with different step counts and the per-step op counts are the difference, so
set-up, evaluation and checkpointing (the same in both runs) cancel.
"""
from __future__ import annotations

import collections
import contextlib
import io

import torch

from bench.tools import overhead_measure as overhead
from bench.run.config import TrainConfig
from bench.run.runner import train
from tests.oplog import OpLog

BATCH, FEW, MANY = 64, 4, 8


def _per_step(run) -> dict[str, float]:
    run(FEW)  # one-time initialisation (lazy imports, first-call caches) out of the counts
    counts = []
    for steps in (FEW, MANY):
        with OpLog() as log:
            run(steps)
        counts.append(log.ops)
    few, many = counts
    return {op: (many[op] - few[op]) / (MANY - FEW) for op in few.keys() | many.keys() if many[op] != few[op]}


def _cfg(data_dir, out, steps: int) -> TrainConfig:
    # Divergence checks only at the epoch's end, as on CUDA (every 50 steps) for runs this short.
    return TrainConfig(variant="nn", epochs=1, batch_size=BATCH, limit_train=BATCH * steps, limit_test=BATCH,
                       profile=False, warmup_steps=1, check_finite_every=1000, device="cpu",
                       data_dir=str(data_dir), out=str(out), overwrite=True)


def test_harness_adds_only_two_detaches_per_step_to_a_bare_loop(data_dir, tmp_path):
    def harness(steps):
        with contextlib.redirect_stdout(io.StringIO()):
            train(_cfg(data_dir, tmp_path, steps))

    def bare(steps):
        overhead.bare_loop(_cfg(data_dir, tmp_path, steps), torch.device("cpu"), skip=1)

    h, b = _per_step(harness), _per_step(bare)
    assert h.get("native_batch_norm") == b.get("native_batch_norm") == 4  # the same four BN layers ran
    extra = collections.Counter({op: h.get(op, 0) - b.get(op, 0) for op in h.keys() | b.keys()})
    added = {op: n for op, n in extra.items() if n > 0}
    # The stash keeps each step's loss and logits by reference: two views, no kernel.
    assert added == {"detach": 2}, f"ops the harness adds per step: {added}; all differences: {dict(extra)}"
