"""Compile every fused batch-norm kernel for a GPU architecture, no GPU needed.

    PYTHONPATH=. python -m devtools.fused_compile_check [--arch 90]

The CPU tests run the kernels under Triton's interpreter, which accepts code the compiler rejects
(types that change inside a loop, say) and says nothing about the machine code. This builds each
kernel, in float32 and bfloat16 and with every block configuration the autotuner may pick, down
to a cubin for sm_<arch> with the ptxas that ships with triton, and counts the global memory
instructions in the PTX. Arguments are assumed 16-byte aligned and sizes multiples of 16, as
Triton's JIT specialises them for (256, 64, 56, 56). Prints one line per build and exits 1 if
a build fails or a streaming kernel lost its 128-bit loads (ld.global.v4).
"""

from __future__ import annotations

import re
import sys
import time

from bench.argcheck import positive_int
from bench.errors import OneLineParser, UsageError, cli

ACTIVATIONS = {"x_ptr", "y_ptr", "dy_ptr", "dx_ptr"}  # in the input's dtype; other pointers fp32
FLOATS = {"eps", "momentum"}
ALIGNED_INTS = {"N", "C", "S", "M", "n_per", "m_per", "stride_k", "stride_p"}
ROW_BLOCK_C = 64  # the channel block of a 64-channel input in the rows layout


def _signature(jit, constexprs: dict, dtype: str) -> tuple[dict, dict]:
    """Triton types of the kernel's arguments, and the alignment hints the JIT would give."""
    sig, attrs = {}, {}
    for i, name in enumerate(jit.arg_names):
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = f"*{dtype}" if name in ACTIVATIONS else "*fp32"
        else:
            sig[name] = "fp32" if name in FLOATS else "i32"
        if sig[name].startswith("*") or name in ALIGNED_INTS:
            attrs[(i,)] = [["tt.divisibility", 16]]
    return sig, attrs


def builds() -> list[tuple[str, object, dict, dict, bool]]:
    """(dtype, jit function, constexprs, options, streaming) for every build to try."""
    from bench.bn.fused import kernels_fwd as fk
    from bench.bn.fused import kernels_bwd as bk

    out = []
    for dtype in ("fp32", "bf16"):
        for kernel in (fk.stats_planes, fk.normalize_planes, bk.grad_sums_planes,
                       bk.grad_input_planes, fk.stats_rows, fk.normalize_rows,
                       bk.grad_sums_rows, bk.grad_input_rows):
            rows = "TILE" in kernel.configs[0].kwargs
            for cfg in kernel.configs:
                consts = {**cfg.kwargs, **({"BLOCK_C": ROW_BLOCK_C} if rows else {})}
                out.append((dtype, kernel.fn, consts, {"num_warps": cfg.num_warps}, True))
    partial = {"BLOCK_P": 128, "BLOCK_C": 16}
    out.append(("fp32", fk.combine, {**partial, "UPDATE_RUNNING": True}, {}, False))
    out.append(("fp32", bk.sum_partials, partial, {}, False))
    return out


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="devtools.fused_compile_check", description=__doc__.split("\n")[0])
    p.add_argument("--arch", type=positive_int, default=90, help="compute capability, e.g. 90 for H100/H200")
    a = p.parse_args(argv)
    return cli("devtools.fused_compile_check", lambda: _run(a.arch))


def _run(arch: int) -> int:
    if not 50 <= arch <= 999:
        raise UsageError(f"--arch {arch} is not a compute capability: give major and minor digits, "
                         f"e.g. 80 (A100), 90 (H100, H200) or 100 (B200)")
    try:
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError as exc:
        raise UsageError(f"triton is not importable ({exc})") from None
    from bench.bn.fused import tuning

    if tuning.INTERPRETED:
        raise UsageError("unset TRITON_INTERPRET: the interpreter compiles nothing")
    target, failed = GPUTarget("cuda", arch, 32), 0
    print(f"{'kernel':<18} {'dtype':<5} {'blocks':<30} {'warps':>5} {'compile_s':>9} "
          f"{'ld.v4':>5} {'ld.1':>4} {'st.v4':>5} {'shared_B':>8}")
    for dtype, jit, consts, options, streaming in builds():
        sig, attrs = _signature(jit, consts, dtype)
        blocks = ",".join(f"{k}={v}" for k, v in consts.items())
        start = time.perf_counter()
        try:
            kernel = triton.compile(ASTSource(jit, sig, consts, attrs), target=target,
                                    options=options)
        except Exception as exc:  # noqa: BLE001 - report every kernel, then fail
            print(f"{jit.__name__:<18} {dtype:<5} {blocks:<30} FAILED: {exc}".splitlines()[0])
            failed += 1
            continue
        ptx = kernel.asm["ptx"]
        v4 = len(re.findall(r"ld\.global[.a-z0-9]*\.v4", ptx))
        scalar = len(re.findall(r"ld\.global(?:\.[a-z]+)*\.(?:b|f|u)(?:16|32) ", ptx))
        stores = len(re.findall(r"st\.global[.a-z0-9]*\.v4", ptx))
        print(f"{jit.__name__:<18} {dtype:<5} {blocks:<30} {options.get('num_warps', 4):>5} "
              f"{time.perf_counter() - start:>9.1f} {v4:>5} {scalar:>4} {stores:>5} "
              f"{kernel.metadata.shared:>8}", flush=True)
        if streaming and v4 == 0:
            print(f"  {jit.__name__}: no 128-bit global loads")
            failed += 1
    print(f"{failed} problem(s) for sm_{arch}")
    return int(failed > 0)


if __name__ == "__main__":
    sys.exit(main())
