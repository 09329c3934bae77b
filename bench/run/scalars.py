"""Per-epoch scalars for TensorBoard, written by rank 0 next to the run's traces.

The event file goes into ``<run>/traces/``, the folder the profiler plugin reads, so TensorBoard
shows the loss and accuracy curves and the profile of a run under one run name. Tags are the
columns of metrics.csv (``train_loss``, ``train_acc``, ``test_acc``, ``examples_per_s``,
``epoch_s``), the step is the epoch number (1-based, as in metrics.csv).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

from bench.rundir import METRICS_COLUMNS

SCALARS = tuple(c for c in METRICS_COLUMNS if c != "epoch")


class EpochScalars:
    """``log(row)`` once per epoch with the metrics.csv row; a no-op where ``log_dir`` is None
    (ranks other than 0)."""

    def __init__(self, log_dir: Path | None):
        self._writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # only rank 0 pays for the import

            self._writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, row: Mapping[str, float | None]) -> None:
        if self._writer is None:
            return
        for tag in SCALARS:
            if row.get(tag) is None:  # not measured in this run (accuracy on synthetic data)
                continue
            value = float(row[tag])
            if math.isfinite(value):  # a diverged loss is in metrics.csv; a NaN point only breaks the plot
                self._writer.add_scalar(tag, value, global_step=int(row["epoch"]))
        self._writer.flush()  # a TensorBoard watching a live run sees each epoch as it ends

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
