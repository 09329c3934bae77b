"""Stop a diverging run at the step where its loss first stops being finite, on every rank at once.

The loop keeps each step's loss on the device (it does already, for the epoch's mean; see
bench.run.outputs). Every `every` steps, and at the last step of each epoch, the first non-finite entry
since the previous check is found on the device, reduced with MIN over ranks (one tiny
collective), and read by the host: one synchronisation per check instead of one per step. On CPU
the read costs nothing, so the default there is every step (the run stops at the very step); on
CUDA every 50 steps (the run stops at most 49 steps late, but records the exact first step).
"""
from __future__ import annotations

import torch
import torch.distributed as tdist

from bench.rundir import DIVERGENCE_CHECK_EVERY
from bench.run.outputs import StepOutputs

_NONE = torch.iinfo(torch.int64).max


class DivergenceGuard:
    def __init__(self, device: torch.device, every: int = 0):
        self.every = every or DIVERGENCE_CHECK_EVERY["cuda" if device.type == "cuda" else "cpu"]
        self._device = device
        self._checked = 0  # steps of the current epoch already checked

    def new_epoch(self) -> None:
        self._checked = 0

    def first_bad_step(self, outputs: StepOutputs, step: int, steps: int) -> int | None:
        """After step `step` (0-based) of `steps`: the first step of this epoch whose loss, on any rank,
        was NaN or ±inf, or None. Returns None without work when no check is due; every rank must call
        it at every step (the check is collective)."""
        if (step + 1) % self.every and step + 1 != steps:
            return None
        seen = outputs.losses(self._checked, step + 1)
        bad = ~torch.isfinite(seen)
        idx = torch.arange(self._checked, step + 1, device=seen.device)
        first = torch.where(bad, idx, torch.full_like(idx, _NONE)).min()
        if tdist.is_initialized():
            tdist.all_reduce(first, op=tdist.ReduceOp.MIN)
        self._checked = step + 1
        value = int(first.item())
        return None if value == _NONE else value
