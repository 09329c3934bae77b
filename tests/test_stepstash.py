"""bench.run.stepstash: what the timed loop dispatches per step, and that the stashed values are the steps'."""
from __future__ import annotations

import pytest
import torch

from bench.run.stepstash import StepOutputs
from tests.oplog import OpLog


def _steps(n: int, batch: int, classes: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand((), generator=g) * 3, torch.randn(batch, classes, generator=g)) for _ in range(n)]


def test_fresh_outputs_cost_no_kernel_per_step():
    steps = _steps(5, 4)
    out = StepOutputs(5, 4, torch.device("cpu"), copy=False)
    with OpLog() as log:
        for i, (loss, logits) in enumerate(steps):
            out.put(i, loss, logits)
    assert set(log.ops) == {"detach"}, log.ops  # views only: nothing a device would have to run
    assert torch.equal(out.losses(0, 5), torch.stack([l for l, _ in steps]))
    assert torch.equal(out.preds(5), torch.stack([z.argmax(1) for _, z in steps]))
    assert torch.equal(out.losses(2, 4), torch.stack([steps[2][0], steps[3][0]]))


def test_overwritten_outputs_are_copied_per_step():
    """Graph mode: one pair of static tensors rewritten in place by every step."""
    steps = _steps(4, 3, seed=1)
    static_loss, static_logits = torch.empty(()), torch.empty(3, 10)
    out = StepOutputs(4, 3, torch.device("cpu"), copy=True)
    with OpLog() as log:
        for i, (loss, logits) in enumerate(steps):
            static_loss.copy_(loss)
            static_logits.copy_(logits)
            out.put(i, static_loss, static_logits)
    assert {"copy_", "argmax"} <= set(log.ops)
    assert torch.equal(out.losses(0, 4), torch.stack([l for l, _ in steps]))
    assert torch.equal(out.preds(4), torch.stack([z.argmax(1) for _, z in steps]))


def test_a_new_epoch_starts_over():
    first, second = _steps(3, 2, seed=2), _steps(3, 2, seed=3)
    out = StepOutputs(3, 2, torch.device("cpu"), copy=False)
    for epoch in (first, second):
        out.new_epoch()
        for i, (loss, logits) in enumerate(epoch):
            out.put(i, loss, logits)
    assert torch.equal(out.losses(0, 3), torch.stack([l for l, _ in second]))


def test_bf16_losses_read_back_as_float32():
    out = StepOutputs(2, 1, torch.device("cpu"), copy=False)
    for i in range(2):
        out.put(i, torch.tensor(1.5, dtype=torch.bfloat16), torch.zeros(1, 10, dtype=torch.bfloat16))
    assert out.losses(0, 2).dtype == torch.float32 and out.losses(0, 2).tolist() == [1.5, 1.5]


@pytest.mark.parametrize("copy", [False, True])
def test_an_epoch_resumed_mid_way_reads_like_one_never_cut(copy):
    """The first 3 of 6 steps come back from a checkpoint (`done`); every read spanning them and the
    new steps equals the same reads of an uninterrupted epoch, value for value."""
    steps = _steps(6, 4, seed=4)
    whole = StepOutputs(6, 4, torch.device("cpu"), copy=copy)
    for i, (loss, logits) in enumerate(steps):
        whole.put(i, loss.clone(), logits.clone())
    done = whole.done(3)
    assert torch.equal(done[0], torch.stack([l for l, _ in steps[:3]]))
    resumed = StepOutputs(6, 4, torch.device("cpu"), copy=copy)
    resumed.new_epoch(done)
    for i in range(3, 6):
        resumed.put(i, steps[i][0].clone(), steps[i][1].clone())
    for lo, hi in ((0, 6), (0, 2), (2, 5), (3, 6), (4, 5)):
        assert torch.equal(resumed.losses(lo, hi), whole.losses(lo, hi)), (lo, hi)
    for n in (2, 3, 5, 6):
        assert torch.equal(resumed.preds(n), whole.preds(n)), n
    assert resumed.losses(0, 6).sum() == whole.losses(0, 6).sum()  # the epoch's mean, bit for bit
