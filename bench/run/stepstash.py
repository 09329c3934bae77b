"""Each training step's loss and predictions, kept on the device until the epoch ends.

The loop needs every step's loss (epoch mean, divergence check) and predictions (training accuracy),
but reading them per step would synchronise and computing on them per step would add kernels to the
timed loop. Eager and compiled steps return fresh tensors, so the stash only keeps references (a
`detach`: no kernel) and stacks them when asked, once per check or epoch. A CUDA-graph step returns the
same static tensors on every call, overwritten by the next replay, so there the stash copies the
loss and the logits' argmax into preallocated per-step slots: two kernels a step, in stream order.

An epoch resumed in its middle (bench.run.checkpoint) starts from the losses and predictions of the
steps the interrupted attempt ran (`done`): reads span them and the new steps alike, value for value,
so the epoch's loss and accuracy come out as if nothing had happened.
"""
from __future__ import annotations

import torch


class StepOutputs:
    """`put(i, loss, logits)` after step i; `losses(lo, hi)` and `preds(n)` read them back on the device.

    `copy=True` is for steps whose outputs are overwritten by the next call (graph mode).
    """

    def __init__(self, steps: int, per_rank_batch: int, device: torch.device, copy: bool):
        self.copy = copy
        self._device = device
        self._loss_refs: list[torch.Tensor] = []
        self._logit_refs: list[torch.Tensor] = []
        self._start = 0  # steps restored from an interrupted attempt; put() continues after them
        self._done_loss = self._done_pred = None
        if copy:
            self._loss = torch.empty(steps, device=device)
            self._pred = torch.empty(steps, per_rank_batch, dtype=torch.int64, device=device)
            # Per-step views made once: indexing inside the timed loop would dispatch a select per step.
            self._loss_slots, self._pred_slots = self._loss.unbind(0), self._pred.unbind(0)

    def new_epoch(self, done: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Start an epoch; `done` = (losses, predictions) of its first steps, run by an earlier attempt."""
        self._loss_refs, self._logit_refs = [], []
        self._start, self._done_loss, self._done_pred = 0, None, None
        if done is None:
            return
        loss, pred = (t.to(self._device) for t in done)
        self._start = len(loss)
        if self.copy:
            self._loss[:self._start].copy_(loss)
            self._pred[:self._start].copy_(pred)
        else:
            self._done_loss, self._done_pred = loss, pred

    def done(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(losses, predictions) of the first n steps on the host, for a step checkpoint."""
        return self.losses(0, n).cpu(), self.preds(n).cpu()

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
        s = self._start
        fresh = torch.stack(self._loss_refs[max(lo, s) - s:hi - s]).float() if hi > s else None
        if lo >= s:
            return fresh
        done = self._done_loss[lo:min(hi, s)]
        return done if fresh is None else torch.cat([done, fresh])

    def preds(self, n: int) -> torch.Tensor:
        """Predicted classes of the first n steps of this epoch, shape (n, per_rank_batch)."""
        if self.copy:
            return self._pred[:n]
        s = self._start
        fresh = torch.stack(self._logit_refs[:n - s]).argmax(-1) if n > s else None
        if s == 0:
            return fresh
        done = self._done_pred[:min(n, s)]
        return done if fresh is None else torch.cat([done, fresh])
