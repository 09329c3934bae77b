"""Stop a diverging run at the step where its loss first goes bad, on every rank at once; and let the
ranks agree, in the same collective, to stop for a preemption (bench.run.stepbounds).

A step's loss is bad when it is NaN or ±inf, or above the bound set by `--diverge-above`:
`100x` (the default) is 100 times this rank's loss at the run's first step, a number is an absolute
bound, `off` leaves only the finite check. With batch norm a huge learning rate can inflate the loss
by nine orders of magnitude without making it NaN, so the finite check alone lets such a run finish
as `complete`. A classifier starts near ln(classes) (2.3 for 10, 6.9 for 1000); a loss 100 times
that means confident wrong answers throughout, which healthy training never reaches, while noisy
steps stay far below it.

The loop keeps each step's loss on the device (it does already, for the epoch's mean; see
bench.run.stepstash). Every `every` steps, and at the last step of each epoch, the first bad entry
since the previous check is found on the device, reduced with MIN over ranks (one tiny collective,
which also carries the ranks' stop requests), and read by the host: one synchronisation per check
instead of one per step. The bound of a `100x` rule is a device tensor computed from the first
step's loss at the first check, so it costs no synchronisation either. On CPU the read costs
nothing, so the default there is every step (the run stops at the very step); on CUDA every 50 steps
(the run stops at most 49 steps late, but records the exact first step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from bench.rundir import DIVERGENCE_CHECK_EVERY
from bench.run.stepstash import StepOutputs

DEFAULT_BOUND = "100x"


@dataclass(frozen=True)
class Bound:
    """A parsed --diverge-above: `factor` × the first step's loss, else `absolute` (inf: no bound)."""
    factor: float | None
    absolute: float


def parse_bound(text: str) -> Bound:
    """'100x' -> 100 × the first loss; '1e4' -> 1e4; 'off' -> no bound. ValueError otherwise.

    >>> parse_bound("100x"), parse_bound("50").absolute, parse_bound("off").absolute
    (Bound(factor=100.0, absolute=inf), 50.0, inf)
    """
    t = text.strip().lower()
    if t == "off":
        return Bound(None, math.inf)
    try:
        value = float(t[:-1] if t.endswith("x") else t)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ValueError(f"expected a positive number, a multiple such as 100x, or off; got {text!r}")
    return Bound(value, math.inf) if t.endswith("x") else Bound(None, value)


@dataclass(frozen=True)
class Verdict:
    """What a step boundary found, the same on every rank."""
    bad_step: int | None = None  # first step of the epoch whose loss went bad on some rank
    stop_signal: int = 0         # a signal number when some rank was asked to stop, else 0


class DivergenceGuard:
    def __init__(self, device: torch.device, every: int = 0, rule: str = DEFAULT_BOUND):
        self.every = every or DIVERGENCE_CHECK_EVERY["cuda" if device.type == "cuda" else "cpu"]
        self.rule = parse_bound(rule)
        self._device = device
        self._checked = 0  # steps of the current epoch already checked
        self._first_loss: torch.Tensor | None = None  # this rank's loss at the run's first step
        self._bound = None if self.rule.factor else torch.tensor(self.rule.absolute, device=device)
        self._vec = torch.zeros(2, dtype=torch.float64, device=device)  # (first bad step, -signal)

    @property
    def payload_bytes(self) -> int:
        """Bytes each check all-reduces on several ranks (analysis.scale charges them)."""
        return self._vec.numel() * self._vec.element_size()

    def new_epoch(self, first_step: int = 0) -> None:
        self._checked = first_step

    def state(self) -> dict:
        """For a checkpoint: this rank's first-step loss (host read: call where a sync is fine)."""
        return {"first_loss": None if self._first_loss is None else self._first_loss.item()}

    def load_state(self, state: dict) -> None:
        if state.get("first_loss") is not None:
            self._set_first_loss(torch.tensor(state["first_loss"], dtype=torch.float32, device=self._device))

    def _set_first_loss(self, loss: torch.Tensor) -> None:
        self._first_loss = loss.detach().float().clone()
        if self.rule.factor:
            self._bound = self._first_loss * self.rule.factor

    def check(self, outputs: StepOutputs, step: int, steps: int, stop_signal: int = 0,
              force: bool = False) -> Verdict:
        """After step `step` (0-based) of `steps`: the first step of this epoch whose loss, on any rank,
        was NaN, ±inf or above the bound, and the stop request of any rank (`stop_signal`: this
        rank's, 0 for none). Returns Verdict() without work when no check is due (`force` makes one
        due); every rank must call it at every step with the same `force` (the check is collective).
        """
        if not force and (step + 1) % self.every and step + 1 != steps:
            return Verdict()
        seen = outputs.losses(self._checked, step + 1)
        if self._first_loss is None:  # the run's first check: its first entry is the run's first step
            self._set_first_loss(seen[0])
        bad = ~torch.isfinite(seen) | (seen > self._bound)
        idx = torch.arange(self._checked, step + 1, device=seen.device, dtype=torch.float64)
        first = torch.where(bad, idx, torch.full_like(idx, math.inf)).min()
        self._checked = step + 1
        if not tdist.is_initialized():
            first_v = first.item()
            return Verdict(None if first_v == math.inf else int(first_v), stop_signal)
        self._vec[0].copy_(first)
        self._vec[1].fill_(-float(stop_signal))  # MIN over ranks: any request wins
        tdist.all_reduce(self._vec, op=tdist.ReduceOp.MIN)
        first_v, signal_v = self._vec.tolist()
        return Verdict(None if first_v == math.inf else int(first_v), int(-signal_v))

    def describe(self, outputs: StepOutputs, bad_step: int) -> dict:
        """Collective, once, after a divergence: which rank's loss went bad at `bad_step`, its value
        (as text: 'nan', 'inf' or the number) and that rank's bound (None when unbounded)."""
        mine = torch.stack([outputs.losses(bad_step, bad_step + 1)[0].double(),
                            self._bound.double().reshape(())])
        ranks = [mine]
        if tdist.is_initialized():
            ranks = [torch.empty_like(mine) for _ in range(tdist.get_world_size())]
            tdist.all_gather(ranks, mine)
        values = [r.tolist() for r in ranks]
        rank = next((r for r, (loss, bound) in enumerate(values) if not math.isfinite(loss) or loss > bound), 0)
        loss, bound = values[rank]
        return {"diverged_rank": rank, "diverged_loss": repr(loss),
                "diverged_bound": bound if math.isfinite(bound) else None}
