"""Backward Triton kernels of the fused batch norm; layouts and tuning as in bench.bn.fused.kernels_fwd.

With xhat = (x - mean) * invstd over the N samples of a channel::

    dbias   = sum(dy)                 dweight = sum(dy * xhat)
    dx      = weight * invstd * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N)

``grad_sums_*`` read dy and x once and leave per-program partial sums (2, P, C); ``sum_partials``
adds them up (and scales the second by invstd); ``grad_input_*`` read dy and x again and write dx.
The partial sums are plain float32 sums: unlike the variance they involve no cancellation
(x - mean is formed before multiplying), and each program accumulates elementwise across its
tiles, reducing the tile only once at the end.
"""

from __future__ import annotations

import triton
import triton.language as tl

from bench.bn.fused.tiles import channel_block, load_f32, partials_tile, plane_starts, plane_tile
from bench.bn.fused.tuning import PLANES, ROWS


@triton.autotune(**PLANES)
@triton.jit
def grad_sums_planes(x_ptr, dy_ptr, mean_ptr, part_ptr, N, C, S, n_per, P,
                     BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr):
    """part[:, p, c] = (sum(dy), sum(dy * (x - mean))) over images [p*n_per, (p+1)*n_per)."""
    c = tl.program_id(0)
    p = tl.program_id(1)
    n_lo = p * n_per
    n_hi = tl.minimum(n_lo + n_per, N)
    mean = tl.load(mean_ptr + c)
    acc_dy = tl.zeros([BLOCK_N, BLOCK_S], dtype=tl.float32)
    acc_dyx = tl.zeros([BLOCK_N, BLOCK_S], dtype=tl.float32)
    for n0 in range(n_lo, n_hi, BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N)
        starts = plane_starts(rows, c, C, S)
        for s0 in range(0, S, BLOCK_S):
            cols, mask = plane_tile(rows, n_hi, s0, S, BLOCK_S)
            x = load_f32(x_ptr + starts, cols, mask)
            dy = load_f32(dy_ptr + starts, cols, mask)
            acc_dy += dy
            acc_dyx += dy * (x - mean)  # masked: dy = 0
    tl.store(part_ptr + p * C + c, tl.sum(acc_dy))
    tl.store(part_ptr + (P + p) * C + c, tl.sum(acc_dyx))


@triton.autotune(**ROWS)
@triton.jit
def grad_sums_rows(x_ptr, dy_ptr, mean_ptr, part_ptr, M, C, m_per, P,
                   BLOCK_C: tl.constexpr, TILE: tl.constexpr):
    """part[:, p, c] = (sum(dy), sum(dy * (x - mean))) over rows [p*m_per, (p+1)*m_per)."""
    BLOCK_M: tl.constexpr = TILE // BLOCK_C
    p = tl.program_id(0)
    cols, col_ok = channel_block(1, C, BLOCK_C)
    m_lo = p * m_per
    m_hi = tl.minimum(m_lo + m_per, M)
    mean = tl.load(mean_ptr + cols, mask=col_ok, other=0.0)
    acc_dy = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    acc_dyx = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    for m0 in range(m_lo, m_hi, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        mask = (rows < m_hi)[:, None] & col_ok[None, :]
        offs = rows.to(tl.int64)[:, None] * C + cols[None, :]
        x = load_f32(x_ptr, offs, mask)
        dy = load_f32(dy_ptr, offs, mask)
        acc_dy += dy
        acc_dyx += dy * (x - mean[None, :])  # masked: dy = 0
    out = part_ptr + p * C + cols
    tl.store(out, tl.sum(acc_dy, axis=0), mask=col_ok)
    tl.store(out + P * C, tl.sum(acc_dyx, axis=0), mask=col_ok)


@triton.jit
def sum_partials(part_ptr, P, C, invstd_ptr, out_ptr,
                 BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """out (4, C) = (sum(dy), sum(dy * xhat)) twice: rows 0-1 stay local, 2-3 get all-reduced."""
    cols, col_ok = channel_block(0, C, BLOCK_C)
    acc_dy = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    acc_dyx = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    for p0 in range(0, P, BLOCK_P):
        ptrs, mask = partials_tile(part_ptr, p0, P, C, cols, col_ok, BLOCK_P)
        acc_dy += tl.load(ptrs, mask=mask, other=0.0)
        acc_dyx += tl.load(ptrs + P * C, mask=mask, other=0.0)
    sum_dy = tl.sum(acc_dy, axis=0)
    sum_dy_xhat = tl.sum(acc_dyx, axis=0) * tl.load(invstd_ptr + cols, mask=col_ok, other=0.0)
    for k in tl.static_range(2):
        tl.store(out_ptr + 2 * k * C + cols, sum_dy, mask=col_ok)
        tl.store(out_ptr + (2 * k + 1) * C + cols, sum_dy_xhat, mask=col_ok)


@triton.autotune(**PLANES)
@triton.jit
def grad_input_planes(x_ptr, dy_ptr, dx_ptr, mean_ptr, invstd_ptr, w_ptr, sums_ptr, count_ptr,
                      N, C, S, BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr):
    """dx for BLOCK_N images of one channel; sums (2, C) are the sums over every sample."""
    c = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mean = tl.load(mean_ptr + c)
    invstd = tl.load(invstd_ptr + c)
    count = tl.maximum(tl.load(count_ptr + c), 1.0)
    scale = invstd * tl.load(w_ptr + c).to(tl.float32)
    mean_dy = tl.load(sums_ptr + c) / count
    # xhat * sum(dy * xhat) / N = (x - mean) * k
    k = invstd * tl.load(sums_ptr + C + c) / count
    starts = plane_starts(rows, c, C, S)
    for s0 in range(0, S, BLOCK_S):
        cols, mask = plane_tile(rows, N, s0, S, BLOCK_S)
        x = load_f32(x_ptr + starts, cols, mask)
        dy = load_f32(dy_ptr + starts, cols, mask)
        dx = scale * (dy - mean_dy - (x - mean) * k)
        tl.store(dx_ptr + starts + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.autotune(**ROWS)
@triton.jit
def grad_input_rows(x_ptr, dy_ptr, dx_ptr, mean_ptr, invstd_ptr, w_ptr, sums_ptr, count_ptr,
                    M, C, BLOCK_C: tl.constexpr, TILE: tl.constexpr):
    """dx for a (TILE // BLOCK_C, BLOCK_C) tile; sums (2, C) are the sums over every sample."""
    BLOCK_M: tl.constexpr = TILE // BLOCK_C
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols, col_ok = channel_block(1, C, BLOCK_C)
    mean = tl.load(mean_ptr + cols, mask=col_ok, other=0.0)
    invstd = tl.load(invstd_ptr + cols, mask=col_ok, other=0.0)
    count = tl.maximum(tl.load(count_ptr + cols, mask=col_ok, other=1.0), 1.0)
    scale = invstd * load_f32(w_ptr, cols, col_ok)
    mean_dy = tl.load(sums_ptr + cols, mask=col_ok, other=0.0) / count
    k = invstd * tl.load(sums_ptr + C + cols, mask=col_ok, other=0.0) / count
    mask = (rows < M)[:, None] & col_ok[None, :]
    offs = rows.to(tl.int64)[:, None] * C + cols[None, :]
    x = load_f32(x_ptr, offs, mask)
    dy = load_f32(dy_ptr, offs, mask)
    dx = scale[None, :] * (dy - mean_dy[None, :] - (x - mean[None, :]) * k[None, :])
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
