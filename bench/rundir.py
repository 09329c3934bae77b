"""The run-directory format, shared by bench/ (writer) and analysis/ (reader). Imports no torch.

    <out>/<run>/config.json    every resolved option, variant, world size, batches, launcher
                env.json       torch / CUDA / cuDNN / NCCL versions, devices, host, python, git commit;
                               `ranks`: every rank's hostname and address, `hosts`: how many hosts
                metrics.csv    one row per epoch (METRICS_COLUMNS)
                step_times.csv raw measured step times of every rank (STEP_TIMES_COLUMNS)
                summary.json   final metrics, throughput, the slowest rank's step-time percentiles,
                               peak memory, status
                bn_params.csv  final BN scale, shift and running statistics per layer and channel
                traces/        one gzip'd kineto Chrome trace per rank (worker name rank<r>) and rank 0's
                               TensorBoard event file of the metrics.csv scalars (bench.run.scalars)
                checkpoint.pt  state at the last epoch end or step checkpoint, for --resume (bench.run.checkpoint)
    <out>/timing-<config>/     an interleaved timing phase (python -m bench.timing): config.json (its
                               "kind" is TIMING_KIND), env.json, summary.json, timing.csv (every rank's
                               steps, TIMING_COLUMNS) and load.csv (the machine's load, LOAD_COLUMNS)
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
CHECKPOINT, SKIPPED = "checkpoint.pt", "skipped.csv"
SKIPPED_COLUMNS = ("variant", "reason")
STEP_TIMES_COLUMNS = ("rank", "epoch", "step", "step_ms")
# train_acc and test_acc are empty where accuracy is not measured (synthetic data: random labels);
# data_wait_s: host seconds the slowest rank waited for its batches over the epoch's timed steps.
# test_acc5: top-5 test accuracy, empty with 5 classes or fewer (and where test_acc is).
METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "test_acc", "examples_per_s", "epoch_s", "data_wait_s",
                   "test_acc5")
BN_PARAMS_COLUMNS = ("layer", "channel", "weight", "bias", "running_mean", "running_var")
# summary.json's "status". A finished run (complete, or diverged: a result, and a re-run would diverge
# again) is never resumed or re-run; "running" is also what a killed run leaves behind; "interrupted"
# is a run stopped on request (SIGTERM, SIGUSR1) after writing a checkpoint: --resume continues it.
STATUSES = RUNNING, COMPLETE, DIVERGED, FAILED, INTERRUPTED = (
    "running", "complete", "diverged", "failed", "interrupted")
FINISHED = (COMPLETE, DIVERGED)
# The BN variants a run can name (config.json's "variant"), and which of them synchronise statistics
# across ranks; bench.bn builds them, analysis groups by them.
VARIANTS = ("scratch", "nn", "sync", "scratch-sync", "fused", "fused-sync", "gn")
SYNCHRONISING = ("sync", "scratch-sync", "fused-sync")
VARIANT_NAMES = {"scratch": "from-scratch BN (textbook)", "nn": "nn.BatchNorm1d/2d", "sync": "nn.SyncBatchNorm",
                 "scratch-sync": "from-scratch cross-rank BN", "fused": "fused Triton BN",
                 "fused-sync": "fused Triton cross-rank BN", "gn": "nn.GroupNorm (no batch statistics)"}
# The variants that are not batch norm: no running statistics, nothing depends on the batch.
BATCH_FREE = ("gn",)
# The variants that run Triton kernels: only where bench.bn.fused.unavailable_reason allows.
TRITON_VARIANTS = ("fused", "fused-sync")
# Steps between divergence checks by device type when --check-finite-every is not given: each check
# is one 16-byte all-reduce (MIN of 2 float64) and, on CUDA, one host synchronisation (bench.run.divergence).
DIVERGENCE_CHECK_EVERY = {"cpu": 1, "cuda": 50}
# The interleaved timing phase (bench.timing): config.json's "kind", its files and columns. Each
# (variant, copy) is an arm; copy 1 of the baseline (the first variant) is the A/A control.
TIMING_KIND, TIMING, LOAD = "timing", "timing.csv", "load.csv"
TIMING_COLUMNS = ("round", "position", "variant", "copy", "rank", "step", "ms", "host")
# `when`: start, round (after round `round`), end; other_cpu_share: the busy CPU time of processes other
# than the job's over the interval before the sample, as a share of all the machine's CPUs.
LOAD_COLUMNS = ("when", "round", "host", "cpus", "loadavg_1m", "other_cpu_share")
# The report flags a busy machine when other processes held more than this share of its CPUs.
BUSY_OTHER_CPU_SHARE = 0.25
# Mean throughput and the median-step figure differing by more than this is called out in Findings,
# naming the slow steps: those over SLOW_STEP_OVER_MEDIAN × the run's median step.
MEAN_MEDIAN_GAP = 0.10
SLOW_STEP_OVER_MEDIAN = 1.5
# A set of timings whose IQR over median exceeds this is flagged noisy (torch.utils.benchmark's rule).
NOISY_IQR_OVER_MEDIAN = 0.10
# bench.collectives' CSV, which analysis.scale fits its collective cost model to: one row per
# (collective, shape, size); `shape` is "sweep" (power-of-two sizes) or the BN layer's "bn_fwd" /
# "bn_bwd" collective for `channels` channels, of which `model` has `layers` layers.
COLLECTIVES = ("all_reduce", "all_gather")
COLLECTIVES_COLUMNS = (
    "backend", "world_size", "hosts", "device", "collective", "shape", "model", "channels", "layers",
    "dtype", "count", "bytes", "warmup", "iters", "time_us_median", "time_us_q1", "time_us_q3",
    "time_us_mean", "iqr_over_median", "algbw_gbps", "busbw_gbps")

# The compatibility matrix (python -m bench.compat): one row per (variant, case), written to
# COMPAT_CSV. Each case: what passing means, and the pytorch/pytorch issues that motivated it
# (docs/compatibility.md links them). Statuses: pass, fail (first error line or the measured
# difference), n/a (the reason), timeout (no result within the case's own time limit).
COMPAT_CSV = "compat.csv"
COMPAT_STATUSES = ("pass", "fail", "n/a", "timeout")
COMPAT_COLUMNS = ("variant", "case", "status", "detail", "step_time_ratio", "step_time_noisy", "case_s",
                  "ranks", "device", "backend", "torch")
COMPAT_ISSUE_URL = "https://github.com/pytorch/pytorch/issues/{}"
COMPAT_CASES = {
    "fp32": ("forward and backward in float32 equal float64 batch norm", ()),
    "bf16-autocast": ("bfloat16 input under bf16 autocast, within bfloat16 rounding", (20634, 96203)),
    "fp16-autocast": ("float16 input under fp16 autocast, within float16 rounding", (20634, 96203)),
    "channels-last": ("channels_last input gives a channels_last output, same numbers", (50548, 88021)),
    "compile": ("torch.compile (default mode) gives the same numbers", (161302,)),
    "compile-fullgraph": ("torch.compile(fullgraph=True) compiles and gives the same numbers", (156680,)),
    "cuda-graph": ("CUDA graph capture and replay, running statistics included", (78549, 78656)),
    "eval-no-collective": ("eval mode issues no collective (counted) and uses the running statistics",
                           (48988,)),
    "uneven-batches": ("per-rank batches of 5 and 11 give every rank the 16 samples' statistics",
                       (22192,)),
    "empty-rank": ("a rank with no samples ends with the other rank's statistics (local BN: an empty "
                   "batch leaves the running statistics as they were)", (36530,)),
    "skipped-call": ("a rank that skips a BN call ends in an error within the process-group timeout, "
                     "not a hang", (44957,)),
    "convert-subclass": ("convert_sync_batchnorm keeps or refuses a subclass, never changes it",
                         (187298, 22569)),
    "no-process-group": ("one process, no process group: trains as local batch norm", (63662,)),
    "deterministic": ("under --deterministic two identical runs are bitwise equal", (53691,)),
}


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


DATA_TOKENS = {"synthetic": "syn", "imagefolder": "img"}  # run-name token of a data source (+ image size)


def default_run_name(model: str, variant: str, world_size: int, global_batch: int, seed: int,
                     mode: str = "eager", amp: str = "none", bn_group_size: int | None = None,
                     bn_emulate_ranks: int = 1, data: str = "fashion-mnist", image_size: int | None = None,
                     channels_last: bool = False, steps: int | None = None) -> str:
    """A name that is the same for the same configuration, so sweeps can find finished cells.

    >>> default_run_name("lenet", "nn", 2, 256, 0)
    'lenet-nn-ws2-b256-s0'
    >>> default_run_name("lenet", "nn", 1, 256, 0, bn_emulate_ranks=32)
    'lenet-nn-ws1-b256-e32-s0'
    >>> default_run_name("resnet50", "nn", 1, 64, 0, amp="bf16", data="synthetic", image_size=224,
    ...                  channels_last=True, steps=100)
    'resnet50-nn-ws1-b64-syn224-cl-st100-bf16-s0'
    """
    name = f"{model}-{variant}-ws{world_size}-b{global_batch}"
    if data in DATA_TOKENS or image_size:  # Fashion-MNIST with --image-size: padded to that side
        name += f"-{DATA_TOKENS.get(data, 'pad')}{image_size}"
    if channels_last:
        name += "-cl"
    if steps:
        name += f"-st{steps}"
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
