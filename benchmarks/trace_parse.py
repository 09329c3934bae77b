"""Throughput of the trace loader and of the whole ``python -m analysis.kernels`` command.

    python benchmarks/trace_parse.py [--mb 120] [--source FIXTURE.json.gz]

Builds a synthetic job of two ranks in a temp dir by repeating a real fixture trace end to end (each
copy shifted in time, with fresh correlation ids, sequence numbers and ProfilerStep numbers) until the
uncompressed JSON reaches ``--mb``, then reports MB/s of uncompressed trace JSON for

- parse: bytes → kept event columns (``analysis.load.trace_files.parse_trace``), one file, one core;
- load: ``load_traces`` (read + parse + DataFrame + step assignment);
- command: ``analysis.kernels.main`` end to end (load, tables, CSVs).

Targets: parse ≥ 50 MB/s, command ≥ 25 MB/s.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # a script run from anywhere: the project's packages come from its root

from analysis.kernels import main as kernels_main  # noqa: E402
from analysis.load.trace_files import load_traces, parse_trace  # noqa: E402
from bench.argcheck import input_files  # noqa: E402
from bench.errors import OneLineParser, UsageError, cli  # noqa: E402

FIXTURE = REPO / "tests" / "data" / "traces" / "external" / "a100_ddp_ws2" / "rank0.json.gz"


def replicate(doc: dict, target_bytes: int) -> bytes:
    """The trace with its events repeated until the JSON is about ``target_bytes`` long."""
    events = [e for e in doc["traceEvents"] if e.get("ph") != "M"]
    meta = [e for e in doc["traceEvents"] if e.get("ph") == "M"]
    ts = [e["ts"] for e in events if "ts" in e]
    span = max(ts) - min(ts) + 1000.0
    max_corr = max((e.get("args", {}).get("correlation", 0) for e in events), default=0) + 1
    max_seq = max((e.get("args", {}).get("Sequence number", 0) for e in events), default=0) + 1
    one_copy = len(json.dumps(events))
    copies = max(1, round(target_bytes / one_copy))
    out = list(meta)
    for k in range(copies):
        for e in events:
            e = dict(e, ts=e["ts"] + k * span)
            args = e.get("args")
            if isinstance(args, dict):
                args = dict(args)
                if "correlation" in args:
                    args["correlation"] += k * max_corr
                if "Sequence number" in args:
                    args["Sequence number"] += k * max_seq
                e["args"] = args
            if e.get("name", "").startswith("ProfilerStep#"):
                e["name"] = f"ProfilerStep#{int(e['name'].split('#')[1]) + k * 1000}"
            out.append(e)
    return json.dumps(dict(doc, traceEvents=out)).encode()


class Timer:
    """Wall and CPU (this process) time of a block; on a shared CI box the CPU figure is the
    one-core rate, the wall figure what a user waits."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, n_bytes: int) -> str:
        return f"{n_bytes / 1e6 / self.wall:6.1f} MB/s wall, {n_bytes / 1e6 / self.cpu:6.1f} MB/s CPU"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="benchmarks/trace_parse.py", description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, default=120.0, help="uncompressed size of the job (MB)")
    p.add_argument("--source", type=Path, default=FIXTURE, help="gzip'd kineto trace to replicate "
                   "(default: the A100 DDP fixture in tests/data)")
    args = p.parse_args(argv)
    return cli("benchmarks/trace_parse.py", lambda: _run(args.mb, args.source))


def _run(mb: float, source: Path) -> int:
    if not mb > 0:
        raise UsageError(f"--mb must be a positive size in MB (got {mb}), e.g. --mb 120")
    input_files("--source", [source])
    doc = json.loads(gzip.decompress(source.read_bytes()))
    with tempfile.TemporaryDirectory() as tmp:
        traces = Path(tmp) / "bench_run" / "traces"
        traces.mkdir(parents=True)
        total = 0
        for rank in (0, 1):
            d = dict(doc, distributedInfo={**doc.get("distributedInfo", {}), "rank": rank,
                                           "world_size": 2})
            data = replicate(d, int(mb * 1e6 / 2))
            (traces / f"rank{rank}.pt.trace.json").write_bytes(data)
            total += len(data)
        print(f"synthetic job: 2 ranks, {total / 1e6:.1f} MB of trace JSON")

        data = (traces / "rank0.pt.trace.json").read_bytes()
        with Timer() as t:
            parse_trace(data, traces / "rank0.pt.trace.json")
        print(f"parse    {t.rates(len(data))}  (one file, in memory)")

        with Timer() as t:
            ts = load_traces(traces)
        print(f"load     {t.rates(total)}  ({len(ts.events):,} events kept)")

        with Timer() as t:
            kernels_main([str(traces.parent), "-o", str(Path(tmp) / "out")])
        print(f"command  {t.rates(total)}  (python -m analysis.kernels, end to end)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
