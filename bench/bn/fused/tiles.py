"""Tile pieces the fused batch norm's kernels share (bench.bn.fused.kernels_fwd, kernels_bwd).

Each is a ``@triton.jit`` function called from a kernel, which Triton inlines into the kernel: one
place for the addressing and the statistics arithmetic that several kernels repeat, at no cost on
the GPU. Tuple results come back as tuples; block sizes travel as ``tl.constexpr``.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def load_f32(ptr, offs, mask):
    """ptr[offs] in float32, 0 where masked (statistics are float32 whatever the input's dtype)."""
    return tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def channel_block(axis: tl.constexpr, C, BLOCK_C: tl.constexpr):
    """(channels, which exist) of the program's block along grid axis `axis`."""
    cols = tl.program_id(axis) * BLOCK_C + tl.arange(0, BLOCK_C)
    return cols, cols < C


@triton.jit
def plane_starts(rows, c, C, S):
    """(rows, 1) offsets of channel c's planes in images `rows` of an (N, C, S) tensor."""
    return rows.to(tl.int64)[:, None] * C * S + c * S


@triton.jit
def plane_tile(rows, n_end, s0, S, BLOCK_S: tl.constexpr):
    """(pixel offsets within the plane, mask) of the tile of `rows` and pixels s0 + [0, BLOCK_S);
    rows at or past n_end are masked."""
    cols = s0 + tl.arange(0, BLOCK_S)
    return cols[None, :], (rows < n_end)[:, None] & (cols < S)[None, :]


@triton.jit
def partials_tile(part_ptr, p0, P, stride_p, cols, col_ok, BLOCK_P: tl.constexpr):
    """(pointers, mask) of partials p0 + [0, BLOCK_P) of channels `cols` in the first plane of a
    (K, P, C) tensor with a unit channel stride; the caller adds k planes' stride for plane k."""
    ps = p0 + tl.arange(0, BLOCK_P)
    mask = (ps < P)[:, None] & col_ok[None, :]
    return part_ptr + ps[:, None] * stride_p + cols[None, :], mask


@triton.jit
def fold_tile(x, mask, t_cnt, cnt, mean, m2, AXIS: tl.constexpr):
    """The running (count, mean, M2) with the tile x (shifted, 0 where masked) folded in.

    The tile's own mean and M2 come first, M2 from squared deviations about its mean while the
    tile sits in registers; then Chan's pairwise formula merges the two triples. `t_cnt` counts
    the unmasked elements; AXIS is None for a scalar triple (the whole tile is one channel's) or
    0 for one per column (the tile's means then broadcast along its rows).
    """
    t_mean = tl.sum(x, axis=AXIS) / t_cnt
    d = tl.where(mask, x - t_mean, 0.0)
    t_m2 = tl.sum(d * d, axis=AXIS)
    total = cnt + t_cnt
    delta = t_mean - mean
    frac = t_cnt / total
    return total, mean + delta * frac, m2 + t_m2 + delta * delta * cnt * frac
