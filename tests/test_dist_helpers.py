"""The multi-process test harness itself (tests/dist_helpers.py): a rank that never joins a
collective, or raises, fails the caller within seconds instead of hanging the test session."""

from __future__ import annotations

import time

import pytest
import torch
import torch.distributed as dist

from tests.dist_helpers import run_workers


def hang_or_fail(rank: int, world_size: int, mode: str) -> None:
    """Worker: rank 1 never joins rank 0's all-reduce (it sleeps, or raises)."""
    if rank == 1:
        if mode == "raise":
            raise ArithmeticError("planted failure")
        time.sleep(60)
    dist.all_reduce(torch.ones(1))


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("sleep", TimeoutError, "ranks \\[0, 1\\] of 2 did not finish"),
        ("raise", RuntimeError, "planted"),
    ],
)
def test_run_workers_fails_fast_instead_of_hanging(mode, error, message):
    start = time.monotonic()
    with pytest.raises(error, match=message):
        run_workers(hang_or_fail, 2, mode, timeout_s=3)
    assert time.monotonic() - start < 15
