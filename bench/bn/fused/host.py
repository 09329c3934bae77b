"""Host side of the fused batch norm: layouts, grids and launches of the Triton kernels.

Imported only once triton is known to be importable (bench.bn.fused checks). Every function takes
and returns torch tensors; statistics are float32 tensors of shape (4, C) holding per channel
``count, mean, M2, invstd``. Nothing here synchronises with the host: counts come from shapes, so
the calls can be captured in a CUDA graph once the autotuner has picked its blocks (first call per
shape and dtype, which times the candidates and therefore must run outside capture).
"""

from __future__ import annotations

import functools

import torch
import triton

from bench.bn.fused import kernels_fwd as fk
from bench.bn.fused import kernels_bwd as bk
from bench.bn.fused import tuning as ft

__all__ = ["combine", "grad_input", "grad_sums", "in_layout", "local_partials", "normalize"]


def _layout(x: torch.Tensor) -> str | None:
    """'rows' for memory (N*H*W, C) with C contiguous, 'planes' for (N, C, H*W), else None."""
    if x.dim() == 2:
        return "rows" if x.is_contiguous() else None
    if x.shape[2] * x.shape[3] == 1 and (
        x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
    ):
        return "rows"  # both layouts are the same memory; rows reads it along C
    if x.is_contiguous():
        return "planes"
    if x.is_contiguous(memory_format=torch.channels_last):
        return "rows"
    return None


def in_layout(t: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    """t itself when a kernel can read it (and it is laid out as `like`), else a dense copy.

    Without `like`: channels_last stays channels_last, anything else not dense becomes contiguous.
    With `like` (the gradient of an output, against its input): the input's layout.
    """
    want = _layout(like if like is not None else t)
    if want is not None and _layout(t) == want:
        return t
    if want == "rows" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    return t.contiguous()


def _dims(x: torch.Tensor) -> tuple[str, int, int, int]:
    """(layout, N, C, S) of a tensor in_layout accepted; rows report N*S rows and S = 1."""
    layout = _layout(x)
    n, c = x.shape[0], x.shape[1]
    s = x.numel() // max(n * c, 1) if x.dim() == 4 else 1
    return (layout, n * s, c, 1) if layout == "rows" else (layout, n, c, s)


@functools.cache
def _target_programs(device: torch.device) -> int:
    """Programs the reduction passes aim at.

    On a GPU four per SM: with 4-8 warps each that is 16-32 warps per SM, each thread holding a
    tile's 16-32 elements in flight, well above what HBM latency needs; more programs would only
    lengthen the partials' combination. In the interpreter a handful, so that tests still combine
    several partials per channel.
    """
    if ft.INTERPRETED or device.type != "cuda":
        return 4
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


def _block_c(c: int) -> int:
    return ft.block_c(c)


def _split(length: int, splits: int, granule: int) -> tuple[int, int]:
    """(per_program, programs): `length` in about `splits` runs, each a multiple of granule."""
    per = triton.cdiv(triton.cdiv(length, max(splits, 1)), granule) * granule
    return per, triton.cdiv(length, per)


def _reduction_grid(x: torch.Tensor) -> tuple[str, int, int, int, int, int]:
    """(layout, N or M, C, S, per_program, programs) of the two reduction passes."""
    layout, n, c, s = _dims(x)
    target = _target_programs(x.device)
    # no program gets less than MIN_PROGRAM_ELEMENTS: more partials would only cost traffic
    if layout == "planes":
        splits = min(triton.cdiv(target, c), max(1, n * s // ft.MIN_PROGRAM_ELEMENTS))
        per, programs = _split(n, splits, ft.plane_granule(n, c, s))
    else:
        bc = _block_c(c)
        splits = min(triton.cdiv(target, triton.cdiv(c, bc)),
                     max(1, n * bc // ft.MIN_PROGRAM_ELEMENTS))
        per, programs = _split(n, splits, ft.row_granule(n, c, bc))
    return layout, n, c, s, per, programs


def _reduce(planes, rows, x: torch.Tensor, tensors: tuple, k: int) -> torch.Tensor:
    """(k, P, C) float32 partials of a reduction pass over non-empty x: the pass's kernel for x's
    layout (`planes` or `rows`) called with `tensors`, the partials and the sizes of the split."""
    layout, n, c, s, per, programs = _reduction_grid(x)
    part = torch.empty((k, programs, c), device=x.device, dtype=torch.float32)
    if layout == "planes":
        planes[(c, programs)](*tensors, part, n, c, s, per, programs)
    else:
        bc = _block_c(c)
        rows[(programs, triton.cdiv(c, bc))](*tensors, part, n, c, per, programs, BLOCK_C=bc)
    return part


def _stream(planes, rows, x: torch.Tensor, tensors: tuple) -> None:
    """Launch an elementwise pass over non-empty x: the pass's kernel for x's layout (`planes` or
    `rows`) called with `tensors` and the sizes, a program per tile of the autotuner's blocks."""
    layout, n, c, s = _dims(x)
    if layout == "planes":
        planes[lambda meta: (c, triton.cdiv(n, meta["BLOCK_N"]))](*tensors, n, c, s)
    else:
        bc = _block_c(c)
        grid = lambda meta: (triton.cdiv(n, meta["TILE"] // bc), triton.cdiv(c, bc))  # noqa: E731
        rows[grid](*tensors, n, c, BLOCK_C=bc)


def local_partials(x: torch.Tensor) -> torch.Tensor:
    """(3, P, C) float32: (count, mean, M2) of each program's share of x (one of zeros if empty)."""
    if x.numel() == 0:
        return x.new_zeros((3, 1, x.shape[1]), dtype=torch.float32)
    return _reduce(fk.stats_planes, fk.stats_rows, x, (x,), 3)


def combine(part: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
            eps: float, momentum: float) -> torch.Tensor:
    """(4, C) float32 count, mean, M2, invstd from (3, P, C) triples (any strides with a unit C
    stride); moves the running statistics in place when they are given."""
    _, p, c = part.shape
    assert part.stride(2) == 1, "combine reads channels contiguously"
    out = torch.empty((4, c), device=part.device, dtype=torch.float32)
    update = running_mean is not None
    bc = ft.block_c(c, ft.PARTIAL_BLOCK_C)
    fk.combine[(triton.cdiv(c, bc),)](
        part, part.stride(0), part.stride(1), p, c, out,
        running_mean if update else out, running_var if update else out, eps, momentum,
        UPDATE_RUNNING=update, BLOCK_P=ft.BLOCK_P, BLOCK_C=bc)  # fmt: skip
    return out


def normalize(x: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor) -> torch.Tensor:
    """y = (x - mean) * invstd * weight + bias in x's dtype and memory format."""
    y = torch.empty_like(x)
    if x.numel() == 0:
        return y
    _stream(fk.normalize_planes, fk.normalize_rows, x, (x, y, mean, invstd, weight, bias))
    return y


def grad_sums(x: torch.Tensor, dy: torch.Tensor, mean: torch.Tensor,
              invstd: torch.Tensor) -> torch.Tensor:
    """(4, C) float32: sum(dy), sum(dy * xhat) over x's samples, then the same two rows again
    (rows 2-3 are the ones to all-reduce; rows 0-1 stay this rank's)."""
    c = x.shape[1]
    if x.numel() == 0:
        return torch.zeros((4, c), device=x.device, dtype=torch.float32)
    part = _reduce(bk.grad_sums_planes, bk.grad_sums_rows, x, (x, dy, mean), 2)
    out = torch.empty((4, c), device=x.device, dtype=torch.float32)
    bc = ft.block_c(c, ft.PARTIAL_BLOCK_C)
    bk.sum_partials[(triton.cdiv(c, bc),)](part, part.shape[1], c, invstd, out,
                                           BLOCK_P=ft.BLOCK_P, BLOCK_C=bc)
    return out


def grad_input(x: torch.Tensor, dy: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor,
               weight: torch.Tensor, sums: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """dx = weight * invstd * (dy - sums[0] / count - xhat * sums[1] / count), laid out as x."""
    dx = torch.empty_like(x)
    if x.numel() == 0:
        return dx
    _stream(bk.grad_input_planes, bk.grad_input_rows, x,
            (x, dy, dx, mean, invstd, weight, sums, count))
    return dx
