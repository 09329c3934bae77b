"""Counting a layer's collectives and timing its steps, for the compatibility cases."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.distributed as dist
from torch import nn

from bench.rundir import NOISY_IQR_OVER_MEDIAN
from bench.run.steptimer import percentile
from bench.tools.compatmatrix.harness import Ctx, new_layer
from bench.tools.bn_microbench import time_calls_us

COLLECTIVES = ("all_reduce", "all_gather", "all_gather_single", "all_gather_into_tensor", "all_to_all",
               "all_to_all_single", "broadcast", "reduce", "reduce_scatter", "reduce_scatter_tensor",
               "gather", "scatter", "barrier")
WARMUP = 3  # untimed steps before the speed ratio's timed ones


class CountCollectives:
    """Counts calls of torch.distributed collectives by name while active.

    It patches the attributes of torch.distributed, so it sees code that calls ``dist.NAME(...)``
    at call time (not code that bound the function at import)::

        with CountCollectives() as counter:
            dist.all_reduce(t)
        counter.take()  # -> {"all_reduce": 1}, and the count starts again from zero
    """

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._originals = {n: getattr(dist, n) for n in COLLECTIVES if hasattr(dist, n)}

    def __enter__(self) -> CountCollectives:
        for name, original in self._originals.items():
            setattr(dist, name, self._counted(name, original))
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._originals.items():
            setattr(dist, name, original)

    def _counted(self, name: str, original: Callable) -> Callable:
        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return original(*args, **kwargs)
        return counted

    def take(self) -> dict[str, int]:
        """The counts so far; counting starts again from zero."""
        taken, self.calls = self.calls, {}
        return taken


class Speed(NamedTuple):
    ratio: float  # median step time over the float32 contiguous eager step's
    noisy: bool  # either set of step times has IQR / median above NOISY_IQR_OVER_MEDIAN


def _noisy(samples: list[float]) -> bool:
    spread = percentile(samples, 75) - percentile(samples, 25)
    return spread / percentile(samples, 50) > NOISY_IQR_OVER_MEDIAN


def step_time_ratio(ctx: Ctx, layer: nn.Module, x: torch.Tensor, dy: torch.Tensor,
                    autocast: torch.dtype | None = None) -> Speed | None:
    """Median forward+backward time of `layer` on `x` over that of a fresh float32 contiguous eager
    layer of the same variant on the same shape, and whether either set of times is noisy; None
    when ctx.reps is 0.

    The two alternate call by call, so a machine that slows down part-way slows both alike. x and
    dy are on the device already.
    """
    if ctx.reps == 0:
        return None
    base = new_layer(ctx)
    base_x = x.detach().float().contiguous()

    def step(lyr: nn.Module, inp: torch.Tensor, dtype: torch.dtype | None) -> Callable[[int], None]:
        leaf = inp.detach().requires_grad_()

        def run(_: int) -> None:
            with torch.autocast(inp.device.type, dtype=dtype, enabled=dtype is not None):
                y = lyr(leaf)
            y.backward(dy.to(y.dtype))
        return run

    case_step, base_step = step(layer, x, autocast), step(base, base_x, None)
    times: dict[str, list[float]] = {"case": [], "base": []}
    for i in range(WARMUP + ctx.reps):
        for name, fn in (("base", base_step), ("case", case_step)):
            t = time_calls_us(fn, ctx.device, 1, 0)[0]
            if i >= WARMUP:
                times[name].append(t)
    ratio = percentile(times["case"], 50) / percentile(times["base"], 50)
    return Speed(ratio, _noisy(times["case"]) or _noisy(times["base"]))
