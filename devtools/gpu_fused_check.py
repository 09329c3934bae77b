"""GPU check of the fused batch norm on ResNet-50's layer-1 BN input (256, 64, 56, 56).

    PYTHONPATH=. python -m devtools.gpu_fused_check OUT.csv [--reps 30] [--warmup 5]

For float32 and bfloat16, contiguous and channels_last, it first checks the compiled kernels
against nn.BatchNorm2d on the same batch (output, input gradient, parameter gradients, running
statistics, output memory format), then times a copy of the input, nn.BatchNorm2d and
FusedBatchNorm, forward and forward+backward in training mode, with bench.micro's timer (CUDA
events, untimed warm-up calls first -- the autotuner times its candidates in the first call per
shape and dtype -- then median and quartiles of the timed calls, inputs rotated so each call
reads from device memory). It prints one table with each time's ratio to the copy, the blocks the
autotuner chose, and whether docs/fused.md's targets hold:

    fused forward <= 2.0x a copy; fused forward+backward <= 5x; both faster than nn.BatchNorm2d.

Writes OUT.csv (one row per measurement). Without a CUDA device it prints why and exits 0; when
the kernels cannot run on the device (e.g. triton missing) it prints the reason and exits 2.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import nn

from bench import rundir
from bench.argcheck import out_file, positive_int
from bench.errors import OneLineParser, UsageError, cli
from bench.tools.bn_microbench import n_buffers, summarise, time_calls_us

SHAPE = (256, 64, 56, 56)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
TARGETS = {"forward": 2.0, "forward_backward": 5.0}  # times a copy, docs/fused.md
COLUMNS = ("shape", "dtype", "layout", "impl", "op", "reps", "time_us_median", "time_us_q1",
           "time_us_q3", "iqr_over_median", "ratio_to_copy", "gb_per_s")
# agreement with nn.BatchNorm2d in units of the output's own rounding
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2}


def check_against_nn(dtype_name: str, layout: str, device: torch.device) -> list[str]:
    """One training step of both layers on the same batch; a line per quantity that disagrees."""
    from bench.bn.fused import FusedBatchNorm

    gen = torch.Generator().manual_seed(0)
    x = (3 + 2 * torch.randn(SHAPE, generator=gen)).to(device, DTYPES[dtype_name])
    x = x.contiguous(memory_format=LAYOUTS[layout])
    dy = torch.randn(SHAPE, generator=gen).to(device, DTYPES[dtype_name])
    results = []
    for layer in (nn.BatchNorm2d(SHAPE[1]), FusedBatchNorm(SHAPE[1], 4)):
        layer = layer.to(device).train()
        leaf = x.detach().requires_grad_()
        y = layer(leaf)
        grads = torch.autograd.grad(y, [leaf, layer.weight, layer.bias], dy)
        results.append({"y": y, "dx": grads[0], "dweight": grads[1], "dbias": grads[2],
                        "running_mean": layer.running_mean, "running_var": layer.running_var})
    problems = []
    for key, want in results[0].items():
        got = results[1][key]
        scale = want.float().abs().max().clamp(min=1.0)
        err = ((got.float() - want.float()).abs().max() / scale).item()
        if not err <= TOLERANCE[dtype_name]:
            problems.append(f"{key}: max |fused - nn| / max |nn| = {err:.2e}")
    if not results[1]["y"].is_contiguous(memory_format=LAYOUTS[layout]):
        problems.append(f"y is not {layout}")
    return problems


def time_one(dtype_name: str, layout: str, device: torch.device, reps: int,
             warmup: int) -> list[dict]:
    """Rows for copy, nn and fused (forward, forward_backward) of one dtype and layout."""
    from bench.bn.fused import FusedBatchNorm

    dtype, fmt = DTYPES[dtype_name], LAYOUTS[layout]
    gen = torch.Generator().manual_seed(1)
    nbytes = math.prod(SHAPE) * torch.tensor([], dtype=dtype).element_size()
    k = n_buffers(nbytes, device)
    xs = [torch.randn(SHAPE, generator=gen).to(device, dtype).contiguous(memory_format=fmt)
          for _ in range(k)]
    dys = [torch.randn(SHAPE, generator=gen).to(device, dtype).contiguous(memory_format=fmt)
           for _ in range(k)]
    dst = torch.empty_like(xs[0])
    copy = time_calls_us(lambda i: dst.copy_(xs[i % k]), device, reps, warmup)
    samples = {("copy", "copy"): copy}
    for impl, layer in (("nn", nn.BatchNorm2d(SHAPE[1])), ("fused", FusedBatchNorm(SHAPE[1], 4))):
        layer = layer.to(device).train()
        params = list(layer.parameters())
        leaves = [x.detach().requires_grad_() for x in xs]

        def forward(i: int) -> None:
            layer(xs[i % k])

        def forward_backward(i: int) -> None:
            y = layer(leaves[i % k])
            torch.autograd.grad(y, [leaves[i % k], *params], dys[i % k])

        samples[(impl, "forward")] = time_calls_us(forward, device, reps, warmup)
        samples[(impl, "forward_backward")] = time_calls_us(forward_backward, device, reps, warmup)
    copy_us = summarise(samples[("copy", "copy")])["time_us_median"]
    rows = []
    for (impl, op), times in samples.items():
        s = summarise(times)
        moved = (4 if op == "forward_backward" else 2) * nbytes  # as bench.micro counts bytes
        rows.append({"shape": "x".join(map(str, SHAPE)), "dtype": dtype_name, "layout": layout,
                     "impl": impl, "op": op, **s, "ratio_to_copy": s["time_us_median"] / copy_us,
                     "gb_per_s": moved / (s["time_us_median"] * 1e3)})
    return rows


def verdicts(rows: list[dict]) -> list[str]:
    """One line per (dtype, layout, op): the fused time against its target and against nn."""
    lines = []
    by_key = {(r["dtype"], r["layout"], r["impl"], r["op"]): r for r in rows}
    for (dtype, layout, impl, op), r in by_key.items():
        if impl != "fused":
            continue
        nn_row = by_key[(dtype, layout, "nn", op)]
        ok = r["ratio_to_copy"] <= TARGETS[op] and r["time_us_median"] < nn_row["time_us_median"]
        lines.append(f"{'PASS' if ok else 'FAIL'} {dtype:<9} {layout:<13} {op:<17} "
                     f"{r['ratio_to_copy']:.2f}x copy (target <= {TARGETS[op]}x), "
                     f"nn {nn_row['ratio_to_copy']:.2f}x")
    return lines


def autotuned_blocks() -> list[str]:
    """The config each autotuned kernel settled on (the last shape and dtype it ran)."""
    from bench.bn.fused import kernels_bwd, kernels_fwd

    lines = []
    for module in (kernels_fwd, kernels_bwd):
        for name in sorted(vars(module)):
            best = getattr(getattr(module, name), "best_config", None)
            if best is not None:
                lines.append(f"  {name}: {best}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="devtools.gpu_fused_check", description=__doc__.split("\n")[0])
    p.add_argument("out", type=out_file, help="CSV to write")
    p.add_argument("--reps", type=positive_int, default=30, help="timed calls per measurement (>= 30)")
    p.add_argument("--warmup", type=positive_int, default=5, help="untimed calls first (>= 1)")
    a = p.parse_args(argv)
    if a.reps < 30 or a.warmup < 1:
        p.error("--reps must be >= 30 and --warmup >= 1")
    return cli("devtools.gpu_fused_check", lambda: _run(Path(a.out), a.reps, a.warmup))


def _run(out: Path, reps: int, warmup: int) -> int:
    if not torch.cuda.is_available():
        print("devtools.gpu_fused_check: skipped: no CUDA device")
        return 0
    from bench.bn.fused import unavailable_reason

    device = torch.device("cuda")
    reason = unavailable_reason(device)
    if reason is not None:
        raise UsageError(reason)
    rows, failures = [], 0
    print(f"fused batch norm on {torch.cuda.get_device_name(device)}, shape {SHAPE}; "
          f"times in microseconds (us), median of {reps}")
    print(f"{'dtype':<9} {'layout':<13} {'impl':<6} {'op':<17} {'median_us':>10} {'iqr_us':>8} "
          f"{'GB/s':>8} {'x_copy':>7}")
    for dtype_name in DTYPES:
        for layout in LAYOUTS:
            problems = check_against_nn(dtype_name, layout, device)
            for line in problems:
                print(f"MISMATCH {dtype_name} {layout}: {line}")
            failures += bool(problems)
            new = time_one(dtype_name, layout, device, reps, warmup)
            for r in new:
                print(f"{dtype_name:<9} {layout:<13} {r['impl']:<6} {r['op']:<17} "
                      f"{r['time_us_median']:>10.1f} {r['time_us_q3'] - r['time_us_q1']:>8.1f} "
                      f"{r['gb_per_s']:>8.1f} {r['ratio_to_copy']:>7.2f}", flush=True)
            rows += new
            out.parent.mkdir(parents=True, exist_ok=True)
            rundir.write_csv(out, COLUMNS, rows)  # after each, so a cut-short run keeps rows
    lines = verdicts(rows)
    print("\n".join(lines))
    print("autotuned blocks:\n" + "\n".join(autotuned_blocks()))
    print(f"wrote {out}")
    return int(failures > 0 or any(line.startswith("FAIL") for line in lines))


if __name__ == "__main__":
    sys.exit(main())
