"""One training step (forward, loss, backward, optimizer) in three execution modes.

    eager    the textbook's step, op by op
    compile  the model wrapped in torch.compile; loss, backward and optimizer stay eager
    graph    the whole step captured once in a CUDA graph and replayed; each batch is copied into
             static input tensors first

`make_step(model, opt, mode, amp, example)` returns a `Step`: call it with a batch, get
`(loss, logits)`. In graph mode both are the graph's static outputs, overwritten by the next call,
so read them (in stream order, as train.py's per-step stash does) before calling again.

`--amp bf16` runs forward and loss under autocast to bfloat16 in every mode (`--amp fp16` to float16,
with a gradient scaler, eager and compile only); parameters, gradients
and BN running statistics stay float32. Graph mode turns autocast's weight-cast cache off: cached
casts would be made during capture and never refreshed after the optimizer changes the weights.
"""
from __future__ import annotations

import contextlib
import time
from functools import partial
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from bench.errors import UsageError

MODES = ("eager", "compile", "graph")
AMPS = ("none", "bf16", "fp16")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture (cuDNN/cuBLAS pick their kernels)


def check_mode(mode: str, amp: str, variant: str, world_size: int, device: torch.device,
               excluded_steps: int) -> None:
    """UsageError for every mode/amp combination that cannot run; call before any process group exists.

    `excluded_steps` is how many first-epoch steps train.py leaves out of the timing.
    """
    if mode not in MODES:
        raise UsageError(f"unknown --mode {mode!r}: choose one of {', '.join(MODES)}")
    if amp not in AMPS:
        raise UsageError(f"unknown --amp {amp!r}: choose one of {', '.join(AMPS)}")
    if mode == "compile" and excluded_steps < 1:
        raise UsageError("--mode compile compiles during the first step, which would then be timed: "
                         "keep --warmup-steps >= 1 (or the profiler on)")
    if mode != "graph":
        return
    if amp == "fp16":
        raise UsageError("--amp fp16 scales the loss and skips steps whose gradients overflow, a host decision "
                         "a CUDA graph cannot hold: use --amp bf16 or --mode eager/compile")
    if device.type != "cuda":
        raise UsageError("--mode graph captures CUDA graphs and needs a CUDA device: "
                         "use --mode eager or --mode compile on CPU")
    if variant == "sync":
        raise UsageError("--mode graph cannot capture nn.SyncBatchNorm: its forward filters the per-rank "
                         "counts with a boolean mask, a device-to-host read that capture forbids; "
                         "use --variant scratch-sync or --mode eager/compile")
    if world_size > 1:
        raise UsageError("--mode graph runs one process only: capturing DDP's bucketed all-reduce needs "
                         "NCCL-side set-up this benchmark does not do; use --mode eager/compile under "
                         "torchrun, or one process")


def autocast(device: torch.device, amp: str, cache: bool = True) -> contextlib.AbstractContextManager:
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp], cache_enabled=cache)


@dataclass
class Step:
    """A training step: `step(x, y) -> (loss, logits)`; setup times say what it cost to build."""
    mode: str
    amp: str
    run: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    compile_s: float | None = None        # compile mode: wall time of the first (compiling) call
    graph_capture_s: float | None = None  # graph mode: warm-up + capture wall time
    _calls: int = field(default=0, repr=False)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._calls += 1
        if self.mode == "compile" and self._calls == 1:
            # The one host synchronisation: only the first step, which the caller leaves untimed.
            t0 = time.perf_counter()
            out = self.run(x, y)
            _synchronize(x.device)
            self.compile_s = time.perf_counter() - t0
            return out
        return self.run(x, y)

    def setup_times(self) -> dict:
        return {"compile_s": self.compile_s, "graph_capture_s": self.graph_capture_s}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _eager_step(model: torch.nn.Module, opt: torch.optim.Optimizer, device: torch.device, amp: str,
                cache: bool = True, label_smoothing: float = 0.0):
    loss_fn = F.cross_entropy if not label_smoothing else partial(F.cross_entropy, label_smoothing=label_smoothing)
    # fp16 gradients underflow without loss scaling; the scaler skips a step whose gradients overflow
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def run(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(device, amp, cache):
            logits = model(x)
            loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        return loss, logits
    return run


def make_step(model: torch.nn.Module, opt: torch.optim.Optimizer, mode: str, amp: str,
              example: tuple[torch.Tensor, torch.Tensor], label_smoothing: float = 0.0) -> Step:
    """A step of `mode` for `model` (possibly DDP-wrapped) and `opt`.

    `example` is one batch of the shape every call will have; graph mode warms up and captures on it
    and then restores parameters, buffers and optimizer state, so the step changes nothing before
    its first call: k calls equal k eager steps, running statistics included.
    """
    device = example[0].device
    if mode == "eager":
        return Step(mode, amp, _eager_step(model, opt, device, amp, label_smoothing=label_smoothing))
    if mode == "compile":
        return Step(mode, amp, _eager_step(torch.compile(model), opt, device, amp, label_smoothing=label_smoothing))
    if mode == "graph":
        t0 = time.perf_counter()
        run = _capture(model, opt, amp, example, label_smoothing)
        return Step(mode, amp, run, graph_capture_s=time.perf_counter() - t0)
    raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")


def _optimizer_state_tensors(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]


def _capture(model: torch.nn.Module, opt: torch.optim.Optimizer, amp: str,
             example: tuple[torch.Tensor, torch.Tensor], label_smoothing: float = 0.0):
    device = example[0].device
    if device.type != "cuda":
        raise ValueError("graph mode needs CUDA tensors")
    if _optimizer_state_tensors(opt):
        raise ValueError("graph mode restores only parameters and buffers after warm-up: build the step "
                         "before the optimizer has state")
    static_x, static_y = example[0].clone(), example[1].clone()
    eager = _eager_step(model, opt, device, amp, cache=False, label_smoothing=label_smoothing)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARMUP_STEPS):
            eager(static_x, static_y)
    torch.cuda.current_stream(device).wait_stream(side)
    if _optimizer_state_tensors(opt):
        # A stateful optimizer (momentum, Adam) would be captured in its first-step branch.
        raise ValueError("graph mode supports stateless optimizers only (SGD without momentum)")
    with torch.no_grad():
        for k, v in model.state_dict().items():
            v.copy_(saved[k])  # undo the warm-up: parameters, running stats, num_batches_tracked
    torch.cuda.synchronize(device)

    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)  # backward inside capture allocates .grad from the graph's pool
    with torch.cuda.graph(graph):
        static_loss, static_logits = eager(static_x, static_y)

    def run(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        static_x.copy_(x, non_blocking=True)
        static_y.copy_(y, non_blocking=True)
        graph.replay()
        return static_loss, static_logits
    return run
