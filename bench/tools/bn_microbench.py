"""BN layer micro-benchmark: forward and forward+backward of each variant against a plain copy.

    python -m bench.micro                      # all shapes, float32 and bfloat16, eager and compiled
    python -m bench.micro --device cpu --batch 8 --no-compile --out micro.csv
    python -m bench.micro --shapes resnet50     # ResNet-50's 12 BN inputs, both memory formats

For every shape and dtype it times a copy of the input (the memory-bandwidth ceiling), then each
variant's forward and forward+backward in training mode, eager and under torch.compile. Timing:
CUDA events around each call (host clock on CPU), `--warmup` untimed calls first, then `--reps`
timed calls; median and interquartile range. When one input fits in the L2 cache, calls rotate
over enough copies of it (≥ 256 MB in all, at most 64) that each call reads from device memory.

Compulsory bytes, counting each tensor once at the input's dtype: copy and forward 2·N elements
(read x, write y); forward+backward 4·N (also read dy, write dx). analysis.transform.bn_layers counts the
passes batch norm needs instead (3 and 5), so its GB/s are 1.5× and 2× these for the same time.
Parameters are C values, negligible. GB/s = those bytes / median time; `ratio_to_copy` = median time / the copy's median
time. Layers keep float32 parameters and running statistics (as under autocast): with a bfloat16
input, nn.BatchNorm and fused return bfloat16 while the scratch BN's float32 weight promotes its
output to float32. The synchronising variants are left out: in one process they have no one to
synchronise with. `fused` (Triton kernels, docs/fused.md) has eager rows only, since torch.compile
runs the layer as the kernels it already is; where its kernels cannot run (no triton; CPU without
TRITON_INTERPRET=1, where they are slow and for tests only) it is skipped with the reason printed.

Writes `<out>` (one row per measurement, columns COLUMNS) and `<out stem>_samples.csv` (every timed call).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch

from bench import rundir
from bench.bn import make_norm, unavailable_reason
from bench.argcheck import non_negative_int, out_file, positive_int
from bench.errors import OneLineParser, UsageError, cli
from bench.run.config import comma_list
from bench.run.dist import resolve_device
from bench.run.steptimer import percentile
from bench.tools.microbench_shapes import MEMORY_FORMATS, SHAPES, Case, cases, shape_or_model

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
VARIANTS = ("scratch", "nn", "fused", "gn")  # the local ones: in one process the synchronising ones have no peers
EAGER_ONLY = {"fused": "torch.compile does not trace the fused layer, which is its kernels already"}
COLUMNS = ("device", "shape_name", "shape", "dtype", "variant", "compiled", "op", "reps",
           "time_us_median", "time_us_q1", "time_us_q3", "iqr_over_median", "bytes_min",
           "gb_per_s", "ratio_to_copy", "memory_format")
COMPILE = {"both": (False, True), "no": (False,), "only": (True,)}
ROTATE_BYTES = 256 << 20
NOISY = rundir.NOISY_IQR_OVER_MEDIAN


def time_calls_us(fn: Callable[[int], object], device: torch.device, reps: int, warmup: int) -> list[float]:
    """Time `fn(i)` for i = 0..reps-1 after `warmup` untimed calls; microseconds per call."""
    for i in range(warmup):
        fn(i)
    if device.type != "cuda":
        out = []
        for i in range(reps):
            t0 = time.perf_counter()
            fn(i)
            out.append((time.perf_counter() - t0) * 1e6)
        return out
    torch.cuda.synchronize(device)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for i, (start, end) in enumerate(events):
        start.record()
        fn(i)
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) * 1e3 for start, end in events]


def n_buffers(nbytes: int, device: torch.device) -> int:
    """Copies of an input to rotate over so that successive calls do not hit in the cache."""
    if device.type != "cuda":
        return 1
    return max(1, min(64, math.ceil(ROTATE_BYTES / max(nbytes, 1))))


def summarise(samples_us: list[float]) -> dict:
    med = percentile(samples_us, 50)
    q1, q3 = percentile(samples_us, 25), percentile(samples_us, 75)
    return {"reps": len(samples_us), "time_us_median": med, "time_us_q1": q1, "time_us_q3": q3,
            "iqr_over_median": (q3 - q1) / med if med > 0 else float("nan")}


def bench_shape(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, variants: tuple[str, ...],
                compiled_modes: tuple[bool, ...], reps: int, warmup: int,
                memory_format: str = "contiguous") -> list[tuple[str, bool, str, list[float]]]:
    """(variant, compiled, op, samples_us) for the copy and every variant of one shape, dtype and format."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    nbytes = math.prod(shape) * torch.tensor([], dtype=dtype).element_size()
    k = n_buffers(nbytes, device)
    fmt = FORMATS[memory_format]
    xs = [torch.randn(shape, generator=gen).to(device, dtype).contiguous(memory_format=fmt) for _ in range(k)]
    dys = [torch.randn(shape, generator=gen).to(device, dtype).contiguous(memory_format=fmt) for _ in range(k)]
    dst = torch.empty_like(xs[0])
    out = [("copy", False, "copy", time_calls_us(lambda i: dst.copy_(xs[i % k]), device, reps, warmup))]
    dst = None  # the copy's output is freed before the variants allocate theirs
    for variant in variants:
        for compiled in [c for c in compiled_modes if not (c and variant in EAGER_ONLY)]:
            torch.manual_seed(0)
            bn = make_norm(variant, shape[1], len(shape)).to(device).train()
            if compiled:
                # Dynamo caches per code object, shared by every layer of a class: without a reset the
                # cache limit is reached over many shapes and later layers silently run eager.
                torch._dynamo.reset()
            layer = torch.compile(bn, dynamic=False) if compiled else bn
            params = list(bn.parameters())
            leaves = [x.detach().requires_grad_() for x in xs]
            out_dtype = layer(xs[0]).dtype  # scratch promotes bfloat16 input to its float32 weight's dtype
            dys_out = [d.to(out_dtype).contiguous(memory_format=fmt) for d in dys]

            def forward(i: int) -> None:
                layer(xs[i % k])

            def forward_backward(i: int) -> None:
                y = layer(leaves[i % k])
                torch.autograd.grad(y, [leaves[i % k], *params], dys_out[i % k])

            out.append((variant, compiled, "forward", time_calls_us(forward, device, reps, warmup)))
            out.append((variant, compiled, "forward_backward",
                        time_calls_us(forward_backward, device, reps, warmup)))
    return out


def rows_for(case: Case, dtype_name: str, device: torch.device,
             results: list[tuple[str, bool, str, list[float]]]) -> list[dict]:
    shape_name, shape = case.shape_name, case.shape
    elems = math.prod(shape)
    size = torch.tensor([], dtype=DTYPES[dtype_name]).element_size()
    copy_us = percentile(results[0][3], 50)
    rows = []
    for variant, compiled, op, samples in results:
        s = summarise(samples)
        nbytes = (4 if op == "forward_backward" else 2) * elems * size
        rows.append({"device": str(device), "shape_name": shape_name, "shape": "x".join(map(str, shape)),
                     "dtype": dtype_name, "variant": variant, "compiled": compiled, "op": op, **s,
                     "bytes_min": nbytes, "gb_per_s": nbytes / (s["time_us_median"] * 1e3),
                     "ratio_to_copy": s["time_us_median"] / copy_us, "memory_format": case.memory_format})
    return rows


def format_row(r: dict) -> str:
    label = r["variant"] + ("+compile" if r["compiled"] else "")
    flag = "  noisy" if r["iqr_over_median"] > NOISY else ""
    shape = r["shape"] + (" cl" if r["memory_format"] == "channels_last" else "")
    return (f"{shape:<20} {r['dtype']:<9} {label:<16} {r['op']:<17} {r['time_us_median']:>11.1f} "
            f"{r['time_us_q3'] - r['time_us_q1']:>9.1f} {r['gb_per_s']:>8.1f} {r['ratio_to_copy']:>7.2f}{flag}")


HEADER = (f"{'shape':<20} {'dtype':<9} {'variant':<16} {'op':<17} {'median_us':>11} {'iqr_us':>9} "
          f"{'GB/s':>8} {'x_copy':>7}")


def runnable(variants: tuple[str, ...], device: torch.device,
             compiled_modes: tuple[bool, ...]) -> tuple[str, ...]:
    """The variants that can run here, each skipped one printed with the reason; UsageError if none.

    >>> runnable(("nn", "fused"), torch.device("cpu"), (True,))
    skipped fused: torch.compile does not trace the fused layer, which is its kernels already (eager rows only)
    ('nn',)
    """
    kept = []
    for variant in variants:
        if variant in EAGER_ONLY and False not in compiled_modes:
            why = f"{EAGER_ONLY[variant]} (eager rows only)"
        else:
            why = unavailable_reason(variant, device)
        if why is None:
            kept.append(variant)
        else:
            print(f"skipped {variant}: {why}", flush=True)
    if not kept:
        raise UsageError(f"none of --variants {','.join(variants)} can run here (reasons above)")
    return tuple(kept)


SAMPLE_COLUMNS = ("shape_name", "shape", "memory_format", "dtype", "variant", "compiled", "op", "rep", "time_us")


def run(todo: list[Case], dtypes: list[str], variants: tuple[str, ...], device: torch.device,
        compiled_modes: tuple[bool, ...], reps: int, warmup: int, out: Path | None) -> list[dict]:
    """Benchmark every (case, dtype); print rows as they come; rewrite the CSVs after each shape."""
    variants = runnable(variants, device, compiled_modes)
    rows, samples = [], []
    print(f"BN micro-benchmark on {device}; times in microseconds (us) per call, median of {reps}")
    print(HEADER, flush=True)
    for case in todo:
        for dtype_name in dtypes:
            results = bench_shape(case.shape, DTYPES[dtype_name], device, variants, compiled_modes, reps, warmup,
                                  case.memory_format)
            new = rows_for(case, dtype_name, device, results)
            for r in new:
                print(format_row(r), flush=True)
            rows += new
            samples += [{"shape_name": case.shape_name, "shape": new[0]["shape"], "memory_format": case.memory_format,
                         "dtype": dtype_name, "variant": v, "compiled": c, "op": op, "rep": i, "time_us": t}
                        for v, c, op, ts in results for i, t in enumerate(ts)]
            if out is not None:  # after every shape, so a run cut short still leaves its rows
                rundir.write_csv(out, COLUMNS, rows)
                rundir.write_csv(out.with_name(out.stem + "_samples.csv"), SAMPLE_COLUMNS, samples)
    noisy = sum(r["iqr_over_median"] > NOISY for r in rows)
    if noisy:
        print(f"warning: {noisy} of {len(rows)} measurements have IQR/median > {NOISY:.0%}")
    return rows


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="bench.micro", description="BN forward / forward+backward vs a copy.")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when visible, else CPU")
    p.add_argument("--shapes", type=comma_list(shape_or_model), default=list(SHAPES),
                   help=f"comma-separated BN input shapes (default: {','.join(SHAPES)}); a network's name "
                        f"(resnet50, regnet_y_400mf, ...; python -m bench.nets): every distinct BN input of it "
                        f"at --image-size; resnet50 at batch 64 and 256 unless --batch is given")
    p.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                   help="network shapes: N×N images (default 224; lenet 28×28 always)")
    p.add_argument("--dtypes", type=comma_list(str, tuple(DTYPES)), default=list(DTYPES),
                   help="comma-separated input dtypes (default float32,bfloat16)")
    p.add_argument("--variants", type=comma_list(str, VARIANTS), default=list(VARIANTS),
                   help="comma-separated BN variants (default scratch,nn,fused; fused where its kernels "
                   "run: see python -m bench.variants)")
    p.add_argument("--batch", type=comma_list(positive_int), default=None, metavar="N[,N...]",
                   help="N of every shape, comma-separated for several (default 256; resnet50: 64,256)")
    p.add_argument("--memory-formats", type=comma_list(str, MEMORY_FORMATS), default=None, help="comma-separated: "
                   "contiguous, channels_last (4-d shapes only; default contiguous, and both for resnet50)")
    p.add_argument("--compile", choices=tuple(COMPILE), default="both",
                   help="eager and torch.compile rows (both), eager only (no), compiled only (only)")
    p.add_argument("--no-compile", dest="compile", action="store_const", const="no", help="= --compile no")
    p.add_argument("--reps", type=positive_int, default=30, help="timed calls per measurement (>= 20)")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed calls first (compiling ones among them)")
    p.add_argument("--out", default="micro.csv", type=out_file, help="CSV path; '' writes none")
    return p


def main(argv: list[str] | None = None) -> int:
    return cli("bench.micro", lambda: _run(build_parser().parse_args(argv)))


def _run(a) -> int:
    if a.reps < 20 or a.warmup < 1 or min(a.batch or [2]) < 2:
        raise UsageError("--reps must be >= 20, --warmup >= 1 and --batch >= 2")
    device = resolve_device(a.device, 0)
    out = Path(a.out) if a.out else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    try:
        todo = cases(a.shapes, a.batch, a.memory_formats, a.image_size)
    except ValueError as e:  # a network that cannot take --image-size
        raise UsageError(f"--shapes: {e}") from None
    run(todo, a.dtypes, tuple(a.variants), device, COMPILE[a.compile], a.reps, a.warmup, out)
    if out is not None:
        print(f"wrote {out}")
    return 0
