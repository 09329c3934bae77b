"""The run-directory format, shared by bench/ (writer) and analysis/ (reader). Imports no torch.

    <out>/<run>/config.json    every resolved option, variant, world size, batches, launcher
                env.json       torch / CUDA / cuDNN / NCCL versions, devices, host, python, git commit
                metrics.csv    one row per epoch (METRICS_COLUMNS)
                step_times.csv raw measured step times of every rank (STEP_TIMES_COLUMNS)
                summary.json   final metrics, throughput, the slowest rank's step-time percentiles,
                               peak memory, status
                bn_params.csv  final BN scale, shift and running statistics per layer and channel
                traces/        one gzip'd kineto Chrome trace per rank (worker name rank<r>) and rank 0's
                               TensorBoard event file of the metrics.csv scalars (bench.run.scalars)
                checkpoint.pt  state at the last epoch end or step checkpoint, for --resume
                               (bench.run.checkpoint)
    <out>/skipped.csv          variants a launcher was asked for but did not start (SKIPPED_COLUMNS:
                               variant, reason); written by launch.compare, header only when none

Every file is written atomically (temp file, fsync, rename): a reader sees the old file or the new
one, never half of one. JSON is strict (RFC 8259): a number that is missing or undefined (NaN, ±inf)
is written as null, so browsers and other languages read every file.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

CONFIG, ENV, METRICS, STEP_TIMES, SUMMARY, TRACES, BN_PARAMS = (
    "config.json", "env.json", "metrics.csv", "step_times.csv", "summary.json", "traces", "bn_params.csv")
CHECKPOINT = "checkpoint.pt"
SKIPPED = "skipped.csv"
SKIPPED_COLUMNS = ("variant", "reason")
STEP_TIMES_COLUMNS = ("rank", "epoch", "step", "step_ms")
METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "test_acc", "examples_per_s", "epoch_s")
BN_PARAMS_COLUMNS = ("layer", "channel", "weight", "bias", "running_mean", "running_var")
# summary.json's "status". A finished run (complete, or diverged: a result, and a re-run would diverge
# again) is never resumed or re-run; "running" is also what a killed run leaves behind; "interrupted"
# is a run stopped on request (SIGTERM, SIGUSR1) after writing a checkpoint: --resume continues it.
STATUSES = ("running", "complete", "diverged", "failed", "interrupted")
FINISHED = ("complete", "diverged")
# The BN variants a run can name (config.json's "variant"), and which of them synchronise statistics
# across ranks; bench.bn builds them, analysis groups by them.
VARIANTS = ("scratch", "nn", "sync", "scratch-sync")
SYNCHRONISING = ("sync", "scratch-sync")
VARIANT_NAMES = {"scratch": "from-scratch BN (textbook)", "nn": "nn.BatchNorm1d/2d",
                 "sync": "nn.SyncBatchNorm", "scratch-sync": "from-scratch cross-rank BN"}
# A set of timings whose IQR over median exceeds this is flagged noisy (torch.utils.benchmark's rule).
NOISY_IQR_OVER_MEDIAN = 0.10


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that a crash at any moment leaves the old file or the new one.

    Temp file in the same directory, fsync, rename over the target, fsync the directory (so the
    rename itself survives a power cut). A killed writer leaves at most a hidden `.<name>.*.tmp`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; runs are meant to be shared
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` via a temp file in the same folder, fsync, rename."""
    atomic_write_bytes(path, text.encode())


def finite_or_null(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, ±inf), at any depth, replaced by None.

    >>> finite_or_null({"examples_per_s": float("nan"), "p": [1.5, float("inf")]})
    {'examples_per_s': None, 'p': [1.5, None]}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Mapping[str, Any]) -> None:
    """Strict JSON: non-finite numbers become null (`finite_or_null`); allow_nan=False makes any that
    slip past (a type the conversion does not know) fail here rather than in a reader."""
    text = json.dumps(finite_or_null(obj), indent=2, sort_keys=True, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


def write_csv(path: str | os.PathLike, columns: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def write_skipped(out: str | os.PathLike, skipped: Iterable[tuple[str, str]]) -> Path:
    """Record (variant, reason) for each variant asked for but not run, as `<out>/skipped.csv`.

    Written even when nothing was skipped, so a rerun into the same folder replaces an older record.
    """
    path = Path(out) / SKIPPED
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, SKIPPED_COLUMNS, (dict(zip(SKIPPED_COLUMNS, s)) for s in skipped))
    return path


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def default_run_name(model: str, variant: str, world_size: int, global_batch: int, seed: int,
                     mode: str = "eager", amp: str = "none", bn_group_size: int | None = None,
                     bn_emulate_ranks: int = 1) -> str:
    """A name that is the same for the same configuration, so sweeps can find finished cells.

    >>> default_run_name("lenet", "nn", 2, 256, 0)
    'lenet-nn-ws2-b256-s0'
    >>> default_run_name("lenet", "nn", 1, 256, 0, bn_emulate_ranks=32)
    'lenet-nn-ws1-b256-e32-s0'
    """
    name = f"{model}-{variant}-ws{world_size}-b{global_batch}"
    if bn_group_size and bn_group_size != world_size:
        name += f"-g{bn_group_size}"
    if bn_emulate_ranks > 1:
        name += f"-e{bn_emulate_ranks}"
    if mode != "eager":
        name += f"-{mode}"
    if amp != "none":
        name += f"-{amp}"
    return f"{name}-s{seed}"


def is_run_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / CONFIG).is_file()


def find_run_dirs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Run directories among `paths` and their descendants, sorted and without duplicates."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if is_run_dir(p):
            found.add(p)
        elif p.is_dir():
            found.update(c.parent for c in p.rglob(CONFIG))
    return sorted(found)
