"""All-reduce and all-gather timed the way nccl-tests times them; also the shapes a synchronised BN issues.

    torchrun --standalone --nproc_per_node=2 -m bench.collectives --out collectives.csv
    torchrun --standalone --nproc_per_node=2 -m bench.collectives --sizes 4,1K,64K --bn-models lenet --out c.csv
    python -m bench.collectives --backend nccl --out floor.csv     # one rank: the per-call floor

Conventions of nccl-tests (its doc/PERFORMANCE.md):

- ``bytes`` is the size S of the whole result: the all-reduce buffer, and for all-gather the gathered
  output (world size × each rank's input). A size that does not split into whole float32 elements
  per rank is rounded down (at least one element per rank); ``bytes`` is the size actually moved.
- ``algbw_gbps = S / t`` and ``busbw_gbps = algbw × 2(n−1)/n`` for all-reduce, ``× (n−1)/n`` for
  all-gather, so a bus bandwidth can be compared with a link's whatever the rank count n.
- ``--warmup`` untimed calls, a barrier, then ``--iters`` back-to-back timed calls. Each call is
  timed on its own (CUDA events on the calling stream; the host clock on CPU, where gloo returns
  only when the collective is done); a call's time is the mean over ranks, as nccl-tests averages
  its per-rank times. Rows give the median and quartiles over calls, and the mean (nccl-tests' number).

Besides the power-of-two sizes (4 B to 64 MiB by default) it times, for every distinct channel count
C of each network in ``--bn-models``, the two collectives ``bench.syncnorm`` issues per BN layer:
an all-gather of W × 3 × C floats (forward) and an all-reduce of 2 × C floats (backward). Channel
counts come from building the networks on the meta device with a recording norm factory.
"""
from __future__ import annotations

import argparse
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as tdist

from bench import rundir
from bench.argcheck import non_negative_int, out_file, positive_int
from bench.errors import EXIT_USAGE, RaisingParser, UsageError
from bench.run import dist
from bench.run.steptimer import percentile

BN_MODELS = ("lenet", "resnet18", "resnet50")
UNITS = {"": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
         "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}
DEFAULT_SIZES = [4 << k for k in range(25)]  # 4 B ... 64 MiB
ELEMENT = 4  # float32, what the BN statistics travel as
PEER_EXIT_DELAY_S = 2.0  # on bad input only rank 0 prints; the others wait so torchrun lets it


def bus_factor(collective: str, n: int) -> float:
    """nccl-tests' busbw / algbw: 2(n−1)/n for all-reduce, (n−1)/n for all-gather."""
    return {"all_reduce": 2.0, "all_gather": 1.0}[collective] * (n - 1) / n


def parse_size(text: str) -> int:
    """'4' -> 4, '64K' -> 65536, '1MiB' -> 1048576; UsageError for anything else."""
    t = text.strip().upper()
    digits = t.rstrip("KMGIB")
    unit = t[len(digits):]
    if not digits.isdigit() or unit not in UNITS or int(digits) * UNITS[unit] <= 0:
        raise UsageError(f"--sizes: {text!r} is not a positive size (e.g. 4, 64K, 1M)")
    return int(digits) * UNITS[unit]


def bn_channels(model: str) -> list[int]:
    """Channel count of every BN layer of `model`, in construction order (53 for resnet50)."""
    from torch import nn

    seen: list[int] = []

    def record(channels: int, *_dims: int) -> nn.Module:
        seen.append(channels)
        return nn.Identity()

    with torch.device("meta"):  # the layers' shapes only; no memory, no initialisation cost
        if model == "resnet50":
            import torchvision
            torchvision.models.resnet50(norm_layer=record)
        else:
            from bench.nets import build_model
            build_model(model, record)
    return seen


def _timer(device: torch.device) -> Callable[[Callable[[], object], int], list[float]]:
    def timed_cpu(call, iters):
        out = []
        for _ in range(iters):
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) * 1e6)
        return out

    def timed_cuda(call, iters):
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(iters)]
        for start, end in events:
            start.record()
            call()
            end.record()
        torch.cuda.synchronize(device)
        return [s.elapsed_time(e) * 1e3 for s, e in events]

    return timed_cuda if device.type == "cuda" else timed_cpu


def measure(collective: str, per_rank: int, info: dist.DistInfo, warmup: int, iters: int) -> list[float]:
    """Per-call times (µs), each the mean over ranks, of `iters` calls moving `per_rank` floats per rank."""
    n = info.world_size
    if collective == "all_reduce":
        buf = torch.ones(per_rank, device=info.device)
        call = lambda: tdist.all_reduce(buf)  # noqa: E731
    else:
        src = torch.ones(per_rank, device=info.device)
        out = torch.empty(per_rank * n, device=info.device)
        gather = getattr(tdist, "all_gather_single", None) or tdist.all_gather_into_tensor  # newer name first
        call = lambda: gather(out, src)  # noqa: E731
    for _ in range(warmup):
        call()
    if info.device.type == "cuda":
        torch.cuda.synchronize(info.device)
    tdist.barrier()
    mine = torch.tensor(_timer(info.device)(call, iters), dtype=torch.float64, device=info.device)
    tdist.all_reduce(mine)  # summed over ranks, then averaged
    return (mine / n).tolist()


def plan(sizes: list[int], bn_models: list[str], collectives: list[str], n: int) -> list[dict]:
    """What to time: (collective, per-rank floats) with the row's labels, sweep sizes first."""
    jobs = []
    for size in sizes:
        for c in collectives:
            per_rank = max(1, size // ELEMENT // (n if c == "all_gather" else 1))
            jobs.append({"collective": c, "shape": "sweep", "model": "", "channels": 0, "layers": 0,
                         "per_rank": per_rank})
    for model in bn_models:
        for channels, layers in sorted(Counter(bn_channels(model)).items()):
            for c, shape, per_rank in (("all_gather", "bn_fwd", 3 * channels),
                                       ("all_reduce", "bn_bwd", 2 * channels)):
                if c in collectives:
                    jobs.append({"collective": c, "shape": shape, "model": model, "channels": channels,
                                 "layers": layers, "per_rank": per_rank})
    return jobs


def row(job: dict, samples: list[float], info: dist.DistInfo, hosts: int, device_name: str, warmup: int) -> dict:
    n, c = info.world_size, job["collective"]
    count = job["per_rank"] * (n if c == "all_gather" else 1)
    nbytes = count * ELEMENT
    med, q1, q3 = (percentile(samples, q) for q in (50, 25, 75))
    algbw = nbytes / (med * 1e3)  # bytes/µs = MB/s; /1e3 -> GB/s (1e9 bytes, as nccl-tests)
    return {"backend": info.backend, "world_size": n, "hosts": hosts, "device": device_name,
            "collective": c, "shape": job["shape"], "model": job["model"], "channels": job["channels"],
            "layers": job["layers"], "dtype": "float32", "count": count, "bytes": nbytes,
            "warmup": warmup, "iters": len(samples), "time_us_median": med, "time_us_q1": q1,
            "time_us_q3": q3, "time_us_mean": sum(samples) / len(samples),
            "iqr_over_median": (q3 - q1) / med, "algbw_gbps": algbw, "busbw_gbps": algbw * bus_factor(c, n)}


def _hosts(info: dist.DistInfo) -> int:
    names: list[str | None] = [None] * info.world_size
    tdist.all_gather_object(names, socket.gethostname())
    return len(set(names))


def run(args: argparse.Namespace, info: dist.DistInfo) -> list[dict]:
    hosts = _hosts(info)
    device_name = torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else "cpu"
    say = print if info.is_main else (lambda *a, **k: None)
    say(f"{info.backend} collectives on {info.world_size} rank(s), {hosts} host(s), {device_name}; "
        f"{args.warmup} warm-up + {args.iters} timed calls each; times in microseconds (us)")
    say(f"{'collective':<11} {'shape':<7} {'model':<9} {'bytes':>10} {'median_us':>11} {'iqr_us':>9} "
        f"{'algbw_GB/s':>11} {'busbw_GB/s':>11}", flush=True)
    rows = []
    for job in plan(args.sizes, args.bn_models, args.collectives, info.world_size):
        r = row(job, measure(job["collective"], job["per_rank"], info, args.warmup, args.iters),
                info, hosts, device_name, args.warmup)
        rows.append(r)
        say(f"{r['collective']:<11} {r['shape']:<7} {r['model']:<9} {r['bytes']:>10} {r['time_us_median']:>11.1f} "
            f"{r['time_us_q3'] - r['time_us_q1']:>9.1f} {r['algbw_gbps']:>11.4f} {r['busbw_gbps']:>11.4f}", flush=True)
        if info.is_main:  # after every row, so a run cut short still leaves what it measured
            rundir.write_csv(args.out, rundir.COLLECTIVES_COLUMNS, rows)
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = RaisingParser(prog="bench.collectives", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default=None, help="comma-separated sizes (4,64K,1M); default 4 B to 64 MiB, ×2")
    p.add_argument("--min-bytes", default="4", help="smallest default size")
    p.add_argument("--max-bytes", default="64M", help="largest default size")
    p.add_argument("--collectives", default="all_reduce,all_gather",
                   help="comma-separated collectives to time (default all_reduce,all_gather)")
    p.add_argument("--bn-models", default=",".join(BN_MODELS), help="networks whose BN shapes to time; '' for none")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed calls per size first (default 5)")
    p.add_argument("--iters", type=positive_int, default=20, help="timed calls per size (default 20)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when visible, else CPU")
    p.add_argument("--backend", choices=("auto", "nccl", "gloo"), default="auto",
                   help="process-group backend; auto: nccl on CUDA, gloo on CPU")
    p.add_argument("--out", type=out_file, required=True, help="CSV path")
    a = p.parse_args(argv)
    a.out = Path(a.out)
    lo, hi = parse_size(a.min_bytes), parse_size(a.max_bytes)
    a.sizes = ([parse_size(s) for s in a.sizes.split(",") if s.strip()] if a.sizes is not None
               else [s for s in DEFAULT_SIZES if lo <= s <= hi] or [lo])
    a.collectives = [c for c in a.collectives.split(",") if c]
    a.bn_models = [m for m in a.bn_models.split(",") if m]
    if not a.collectives or any(c not in rundir.COLLECTIVES for c in a.collectives):
        raise UsageError(f"--collectives: choose from {', '.join(rundir.COLLECTIVES)} (got {a.collectives or 'none'})")
    if bad := [m for m in a.bn_models if m not in BN_MODELS]:
        raise UsageError(f"--bn-models: {', '.join(bad)} unknown; choose from {', '.join(BN_MODELS)}")
    if not (a.sizes or a.bn_models):
        raise UsageError("nothing to time: give --sizes or --bn-models")
    return a


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        info = dist.setup(args.device, args.backend, group_of_one=True)
    except UsageError as e:
        if dist.read_env()[0] == 0:
            print(f"bench.collectives: error: {e}", file=sys.stderr)
        else:
            time.sleep(PEER_EXIT_DELAY_S)
        return EXIT_USAGE
    try:
        run(args, info)
    finally:
        dist.teardown()
    if info.is_main:
        print(f"wrote {args.out}")
    return 0
