"""Each training step's loss and predictions, kept on the device until the epoch ends.

The loop needs every step's loss (epoch mean, divergence check) and predictions (training accuracy),
but reading them per step would synchronise and computing on them per step would add kernels to the
timed loop. Eager and compiled steps return fresh tensors, so the stash only keeps references (a
`detach`: no kernel) and stacks them when asked, once per check or epoch. A CUDA-graph step returns the
same static tensors on every call, overwritten by the next replay, so there the stash copies the
loss and the logits' argmax into preallocated per-step slots: two kernels a step, in stream order.
"""
from __future__ import annotations

import torch


class StepOutputs:
    """`put(i, loss, logits)` after step i; `losses(lo, hi)` and `preds(n)` read them back on the device.

    `copy=True` is for steps whose outputs are overwritten by the next call (graph mode).
    """

    def __init__(self, steps: int, per_rank_batch: int, device: torch.device, copy: bool):
        self.copy = copy
        self._loss_refs: list[torch.Tensor] = []
        self._logit_refs: list[torch.Tensor] = []
        if copy:
            self._loss = torch.empty(steps, device=device)
            self._pred = torch.empty(steps, per_rank_batch, dtype=torch.int64, device=device)
            # Per-step views made once: indexing inside the timed loop would dispatch a select per step.
            self._loss_slots, self._pred_slots = self._loss.unbind(0), self._pred.unbind(0)

    def new_epoch(self) -> None:
        self._loss_refs, self._logit_refs = [], []

    def put(self, i: int, loss: torch.Tensor, logits: torch.Tensor) -> None:
        if self.copy:
            self._loss_slots[i].copy_(loss.detach())
            torch.argmax(logits.detach(), dim=1, out=self._pred_slots[i])
        else:
            self._loss_refs.append(loss.detach())
            self._logit_refs.append(logits.detach())

    def losses(self, lo: int, hi: int) -> torch.Tensor:
        """Float32 losses of steps lo..hi-1 of this epoch (1-D, on the device)."""
        if self.copy:
            return self._loss[lo:hi]
        return torch.stack(self._loss_refs[lo:hi]).float()

    def preds(self, n: int) -> torch.Tensor:
        """Predicted classes of the first n steps of this epoch, shape (n, per_rank_batch)."""
        if self.copy:
            return self._pred[:n]
        return torch.stack(self._logit_refs[:n]).argmax(-1)
