"""Load directories of kineto Chrome traces into one tidy events DataFrame.

One file per rank, as ``tensorboard_trace_handler`` writes them (``*.pt.trace.json[.gz]``), or any
``*.json[.gz]`` that holds a kineto trace; other files in the folder (TensorBoard event files that
bench.run.scalars writes next to the traces) are not read. Finding the folders of a set of runs is
:mod:`analysis.load.trace_dirs`; the category groups and the pure transforms over this table (step
windows, per-name lookups) are :mod:`analysis.transform.events`. Only complete ("X") events of the categories
the analysis uses are kept, with these columns:

    rank, cat, name, ts_us, dur_us, pid, tid, stream, correlation, seq, step, file, in_shape, in_dtype

``ts_us`` is aligned to one origin across ranks (the earliest event of the job = 0). ``stream`` is the
CUDA stream (the tid of GPU events), -1 for CPU events. ``correlation`` links a GPU activity to its
launching ``cuda_runtime``/``cuda_driver`` call (-1 when absent); ``seq`` is the autograd sequence number
of CPU ops (-1 when absent). ``step`` is the N of the ``ProfilerStep#N`` window holding the event (for
GPU activity: holding its launch), <NA> outside every step. ``in_shape`` / ``in_dtype``: a CPU op's first
tensor input as record_shapes writes it (:mod:`analysis.load.op_inputs`), e.g. ``"8x64x56x56"`` / ``"float"``.

Decoding uses a typed msgspec decoder that names only the fields read: on this suite's 2-core CI box it
parses 60-90 MB/s of trace JSON, against ~17 MB/s for the stdlib json module.
"""

from __future__ import annotations

import gzip
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from analysis.load.op_inputs import first_input
from analysis.transform.events import CPU_CATS, GPU_CATS, LAUNCH_CATS, assign_steps

KEPT_CATS = frozenset(CPU_CATS + LAUNCH_CATS + GPU_CATS)
# Older kineto releases spelled the categories differently.
CAT_ALIASES = {"Operator": "cpu_op", "Runtime": "cuda_runtime", "Kernel": "kernel",
               "Memcpy": "gpu_memcpy", "Memset": "gpu_memset"}
_READ_CATS = KEPT_CATS | frozenset(CAT_ALIASES)
EVENT_COLUMNS = ["rank", "cat", "name", "ts_us", "dur_us", "pid", "tid", "stream",
                 "correlation", "seq", "step", "file", "in_shape", "in_dtype"]
RANK_IN_FILE_NAME = re.compile(r"rank[-_]?(\d+)", re.IGNORECASE)
TRACE_SUFFIXES = (".json", ".json.gz")


# gc=False: millions of small structs need no cycle tracking, and tracking them makes the
# collector run over and over during a decode.
class _Args(msgspec.Struct, gc=False):
    correlation: int = -1
    seq: int = msgspec.field(name="Sequence number", default=-1)
    dims: msgspec.Raw = msgspec.field(name="Input Dims", default=msgspec.Raw())
    types: msgspec.Raw = msgspec.field(name="Input type", default=msgspec.Raw())


class _Event(msgspec.Struct, gc=False):
    ph: str = ""
    cat: str = ""
    name: str = ""
    ts: float = 0.0
    dur: float = 0.0
    pid: int | str = 0
    tid: int | str = 0
    args: _Args | None = None


class _DistributedInfo(msgspec.Struct):
    rank: int | None = None
    world_size: int | None = None
    backend: str | None = None


class _Trace(msgspec.Struct):
    traceEvents: list[_Event]
    distributedInfo: _DistributedInfo | None = None
    baseTimeNanoseconds: int | None = None


_DECODER = msgspec.json.Decoder(_Trace)


@dataclass(frozen=True)
class TraceSet:
    """A job's traces: the events of every readable file plus what is known about its ranks.

    ``files`` has one row per rank: rank, world_size, backend, file, n_events.
    """

    events: pd.DataFrame
    files: pd.DataFrame
    world_size: int | None
    skipped: list[Path] = field(default_factory=list)

    @property
    def ranks(self) -> list[int]:
        return sorted(int(r) for r in self.files["rank"])

    @property
    def missing_ranks(self) -> list[int]:
        """Ranks of the job's world size that have no trace file (sampled or lost ranks)."""
        if self.world_size is None:
            return []
        return sorted(set(range(self.world_size)) - set(self.ranks))

    def describe_ranks(self) -> str:
        """E.g. ``'ranks 0, 1 of 128 present (126 missing)'``."""
        present = ", ".join(str(r) for r in self.ranks)
        if self.world_size is None:
            return f"ranks {present} present (world size unknown)"
        missing = len(self.missing_ranks)
        tail = f" ({missing} missing)" if missing else ""
        return f"ranks {present} of {self.world_size} present{tail}"


def find_trace_files(trace_dir: Path) -> list[Path]:
    """Every ``*.json`` / ``*.json.gz`` file directly in ``trace_dir``, sorted by name."""
    return sorted(p for p in Path(trace_dir).iterdir()
                  if p.is_file() and p.name.endswith(TRACE_SUFFIXES))


def read_trace_bytes(path: Path) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


@dataclass(frozen=True)
class _RawTrace:
    path: Path
    rank: int | None
    world_size: int | None
    backend: str | None
    base_ns: int | None
    columns: dict[str, list]


def parse_trace(data: bytes, path: Path) -> _RawTrace:
    """Decode one trace's JSON into column lists of the kept events. Raises on a non-trace."""
    trace = _DECODER.decode(data)
    kept = [e for e in trace.traceEvents
            if e.cat in _READ_CATS and e.ph == "X" and type(e.pid) is int and type(e.tid) is int]
    no_args = _Args()
    args = [e.args or no_args for e in kept]
    inputs = [first_input(a.dims, a.types) if e.cat in ("cpu_op", "Operator") else ("", "") for e, a in zip(kept, args)]
    columns = dict(cat=[e.cat for e in kept], name=[e.name for e in kept], ts_us=[e.ts for e in kept],
                   dur_us=[e.dur for e in kept], pid=[e.pid for e in kept], tid=[e.tid for e in kept],
                   correlation=[a.correlation for a in args], seq=[a.seq for a in args],
                   in_shape=[i[0] for i in inputs], in_dtype=[i[1] for i in inputs])
    info = trace.distributedInfo or _DistributedInfo()
    return _RawTrace(path, info.rank, info.world_size, info.backend, trace.baseTimeNanoseconds, columns)


def rank_from_file_name(path: Path) -> int | None:
    """``'rank3'``, ``'rank-3'``, ``'rank_3'`` anywhere in the name → 3; otherwise None."""
    m = RANK_IN_FILE_NAME.search(Path(path).name)
    return int(m.group(1)) if m else None


def _read_readable(paths: list[Path]) -> tuple[list[_RawTrace], list[Path]]:
    raws, skipped = [], []
    for path in paths:
        try:
            raws.append(parse_trace(read_trace_bytes(path), path))
        except (OSError, EOFError, ValueError, zlib.error, msgspec.DecodeError) as err:
            # gzip.BadGzipFile is an OSError; msgspec.ValidationError is a DecodeError.
            warnings.warn(f"skipping unreadable trace file {path}: {err}", stacklevel=3)
            skipped.append(path)
    return raws, skipped


def _assign_ranks(raws: list[_RawTrace]) -> list[int]:
    ranks = []
    for raw in raws:
        rank = raw.rank if raw.rank is not None else rank_from_file_name(raw.path)
        if rank is None:
            if len(raws) > 1:
                raise ValueError(f"cannot tell the rank of {raw.path}: no distributedInfo.rank "
                                 "and no 'rank<N>' in the file name")
            rank = 0
        ranks.append(rank)
    owner: dict[int, Path] = {}
    for rank, raw in zip(ranks, raws):
        if rank in owner:
            raise ValueError(f"two trace files claim rank {rank}: {owner[rank]} and {raw.path}")
        owner[rank] = raw.path
    return ranks


def _file_frame(raw: _RawTrace, rank: int) -> pd.DataFrame:
    c = raw.columns
    return pd.DataFrame({
        "rank": np.full(len(c["cat"]), rank, dtype=np.int32),
        "cat": pd.Categorical(np.array(c["cat"], dtype=object)).rename_categories(
            lambda cat: CAT_ALIASES.get(cat, cat)),
        "name": pd.Categorical(np.array(c["name"], dtype=object)),
        "ts_us": np.asarray(c["ts_us"], dtype=np.float64),
        "dur_us": np.asarray(c["dur_us"], dtype=np.float64),
        "pid": np.asarray(c["pid"], dtype=np.int64),
        "tid": np.asarray(c["tid"], dtype=np.int64),
        "correlation": np.asarray(c["correlation"], dtype=np.int64),
        "seq": np.asarray(c["seq"], dtype=np.int64),
        **{k: pd.Categorical(np.array(c[k], dtype=object)) for k in ("in_shape", "in_dtype")},
    })


def _align_offsets_us(raws: list[_RawTrace], frames: list[pd.DataFrame]) -> list[float]:
    """Per-file shift putting every file on one clock whose zero is the job's first event.

    kineto writes ``ts`` relative to ``baseTimeNanoseconds``; files without it hold absolute times.
    The base difference is taken in integer nanoseconds so no precision is lost.
    """
    bases = [r.base_ns for r in raws]
    use_base = all(b is not None for b in bases)
    min_base = min(bases) if use_base else 0
    shifts = [((b - min_base) / 1000.0 if use_base else 0.0) for b in bases]
    starts = [f["ts_us"].min() + s for f, s in zip(frames, shifts) if len(f)]
    origin = min(starts) if starts else 0.0
    return [s - origin for s in shifts]


def load_traces(trace_dir: Path | str) -> TraceSet:
    """Read every trace file in ``trace_dir`` into a :class:`TraceSet`.

    A file's rank is ``distributedInfo.rank``, else ``rank<N>`` in its name, else 0 when it is the
    only file. Unreadable files are skipped with a warning naming them; an empty directory, or one
    where no file could be read, is an error; two files of one rank are an error.
    """
    trace_dir = Path(trace_dir)
    paths = find_trace_files(trace_dir)
    if not paths:
        raise ValueError(f"no trace files (*.json, *.json.gz) in {trace_dir}")
    raws, skipped = _read_readable(paths)
    if not raws:
        raise ValueError(f"none of the {len(paths)} trace files in {trace_dir} could be read")
    ranks = _assign_ranks(raws)
    frames = [_file_frame(raw, rank) for raw, rank in zip(raws, ranks)]
    for frame, shift, raw in zip(frames, _align_offsets_us(raws, frames), raws):
        frame["ts_us"] += shift
        frame["file"] = pd.Categorical.from_codes(np.zeros(len(frame), np.int8),
                                                  categories=[raw.path.name])
    events = pd.concat(frames, ignore_index=True)
    for col in ("cat", "name", "file", "in_shape", "in_dtype"):  # concat of differing categoricals: object
        events[col] = events[col].astype("category")
    events = _finish_events(events)
    files = pd.DataFrame({
        "rank": ranks, "world_size": [r.world_size for r in raws],
        "backend": [r.backend for r in raws], "file": [str(r.path) for r in raws],
        "n_events": [len(f) for f in frames],
    }).sort_values("rank", ignore_index=True)
    sizes = [r.world_size for r in raws if r.world_size is not None]
    return TraceSet(events, files, max(sizes) if sizes else None, skipped)


def _finish_events(events: pd.DataFrame) -> pd.DataFrame:
    is_gpu = events["cat"].isin(GPU_CATS).to_numpy()
    events["stream"] = np.where(is_gpu, events["tid"].to_numpy(), -1)
    events["step"] = assign_steps(events)
    return events[EVENT_COLUMNS]
