"""``--results-file PATH``: one JSON line per finished run appended to a file many runs share, the
way timm's ``--results-file`` collects a sweep: what trained (model, variant, recipe, batches), how
it ended (status, top-1, loss), how fast (examples/s), and where its run directory is.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from bench import rundir

FIELDS = ("run_name", "status", "model", "variant", "world_size", "global_batch", "per_rank_batch", "epochs_done",
          "seed", "train_loss", "train_acc", "test_acc", "test_acc5", "examples_per_s", "step_ms_p50", "mode", "amp",
          "bn_emulate_ranks", "data")


def line(plan, summary: dict) -> str:
    """The JSON line of one run: FIELDS from its summary, its recipe and its run directory.

    Strict JSON, as every file bnbench writes: a missing or non-finite number is null."""
    record = {k: summary.get(k) for k in FIELDS}
    record.update(plan.recipe.record(), image_size=plan.data.input_shape[1], run_dir=str(plan.run_dir))
    return json.dumps(rundir.finite_or_null(record), sort_keys=True, allow_nan=False)


def append(path: str | None, plan, summary: dict, is_main: bool) -> None:
    """Rank 0 appends the run's line to ``path`` (nothing when ``path`` is None), in one write so that
    runs sharing the file never interleave within a line."""
    if path is None or not is_main:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, (line(plan, summary) + "\n").encode())
    finally:
        os.close(fd)
