"""The PyTorch profiler on every rank, over a short window early in training.

Schedule: `wait` steps, `warmup` steps, `active` recorded steps, once. The trace goes to
`<run>/traces/` as one gzip'd Chrome trace per rank (worker name `rank<r>`), readable by TensorBoard's
profiler plugin, Perfetto and analysis.kernels. After the window the profiler is stopped, so the
measured steps carry no profiler cost, and the `bn/<layer>` labels are switched off with it.
"""
from __future__ import annotations

import gc
import socket
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from bench.nets import set_bn_labels

WAIT, WARMUP, ACTIVE = 1, 2, 4
WINDOW_STEPS = WAIT + WARMUP + ACTIVE  # steps the profiler touches; the run leaves them untimed


class StepProfiler:
    """Call `step()` after every training step; the first WINDOW_STEPS steps are the window."""

    def __init__(self, trace_dir: Path | None, rank: int, model: torch.nn.Module, device: torch.device):
        self._model = model
        self._steps = 0
        self._prof = None
        if trace_dir is None:
            return
        activities = [ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self._prof = profile(
            activities=activities,
            schedule=schedule(wait=WAIT, warmup=WARMUP, active=ACTIVE, repeat=1),
            on_trace_ready=tensorboard_trace_handler(str(trace_dir), worker_name=f"rank{rank}",
                                                     use_gzip=True),
            record_shapes=True,
        )
        set_bn_labels(model, True)
        self._prof.start()

    def step(self) -> None:
        if self._prof is None:
            return
        self._steps += 1
        self._prof.step()
        if self._steps == WAIT + WARMUP:  # recording: the trace keeps metadata added now
            self._prof.add_metadata("hostname", socket.gethostname())  # a multi-host job's rank's host
        if self._steps >= WINDOW_STEPS:
            self.stop()

    def stop(self) -> None:
        """End the window (writes the trace if any step was recorded)."""
        if self._prof is not None:
            self._prof.stop()
            self._prof = None
            set_bn_labels(self._model, False)
            # The profiler's objects hold reference cycles. The timed steps run with the collector
            # paused, so without this they can live until interpreter shutdown and be torn down there,
            # after parts of libtorch; a 2-rank CI run once aborted at exit ("terminate called without
            # an active exception") right after a window that ended one step before the run did.
            gc.collect()
