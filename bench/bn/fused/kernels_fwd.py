"""Forward Triton kernels of the fused batch norm (host side: bench.bn.fused.host).

Two layouts cover every supported input, so that each load reads contiguous memory:

planes  (N, C, S) with S = H*W contiguous: NCHW-contiguous 4-D input. A program owns one channel
        and walks (BLOCK_N, BLOCK_S) tiles of it: images along the tile's rows, pixels along its
        columns.
rows    (M, C) with C contiguous: 2-D (N, C) input (M = N) and channels_last 4-D input
        (M = N*H*W). A program owns BLOCK_C channels and walks (TILE // BLOCK_C, BLOCK_C) tiles.

Statistics are reduced in two levels. Each tile gives its own (count, mean, M2) -- mean from its
sum, M2 from squared deviations about that mean, both while the tile sits in registers -- and the
program folds tiles into its running triple with Chan's pairwise formula::

    n = n_a + n_b,  d = mean_b - mean_a,  mean = mean_a + d * n_b / n,
    M2 = M2_a + M2_b + d^2 * n_a * n_b / n

Only differences of nearby means are formed, never E[x^2] - E[x]^2, and a program works on
x - shift with shift one of its own samples, so that tile sums and its running mean hold numbers
of the size of the spread: an offset of 1000 costs nothing in float32. The per-program triples
("partials", a (3, P, C) float32 tensor) are then combined per channel by ``combine``, which is
also the kernel that merges the per-rank triples of the cross-rank variant.

Block sizes: bench.bn.fused.tuning.
"""

from __future__ import annotations

import triton
import triton.language as tl

from bench.bn.fused.tiles import (channel_block, fold_tile, load_f32, partials_tile, plane_starts,
                                  plane_tile)
from bench.bn.fused.tuning import PLANES, ROWS


@triton.autotune(**PLANES)
@triton.jit
def stats_planes(x_ptr, part_ptr, N, C, S, n_per, P,
                 BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr):
    """part[:, p, c] = (count, mean, M2) of channel c over images [p*n_per, (p+1)*n_per)."""
    c = tl.program_id(0)
    p = tl.program_id(1)
    n_lo = p * n_per
    n_hi = tl.minimum(n_lo + n_per, N)
    # shift by one of the program's own samples: tile sums and the running mean then hold
    # deviations of the order of the spread, not of the offset, so float32 keeps their digits
    shift = tl.load(x_ptr + n_lo.to(tl.int64) * C * S + c * S, mask=n_lo < N, other=0.0)
    shift = shift.to(tl.float32)
    cnt = 0.0
    mean = 0.0  # of x - shift
    m2 = 0.0
    for n0 in range(n_lo, n_hi, BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N)
        base = x_ptr + plane_starts(rows, c, C, S)
        t_rows = tl.minimum(n_hi - n0, BLOCK_N)
        for s0 in range(0, S, BLOCK_S):
            cols, mask = plane_tile(rows, n_hi, s0, S, BLOCK_S)
            x = tl.where(mask, load_f32(base, cols, mask) - shift, 0.0)
            t_cnt = (t_rows * tl.minimum(S - s0, BLOCK_S)).to(tl.float32)
            cnt, mean, m2 = fold_tile(x, mask, t_cnt, cnt, mean, m2, None)
    tl.store(part_ptr + p * C + c, cnt)
    tl.store(part_ptr + (P + p) * C + c, mean + shift)
    tl.store(part_ptr + (2 * P + p) * C + c, m2)


@triton.autotune(**ROWS)
@triton.jit
def stats_rows(x_ptr, part_ptr, M, C, m_per, P, BLOCK_C: tl.constexpr, TILE: tl.constexpr):
    """part[:, p, c] = (count, mean, M2) of channel c over rows [p*m_per, (p+1)*m_per)."""
    BLOCK_M: tl.constexpr = TILE // BLOCK_C
    p = tl.program_id(0)
    cols, col_ok = channel_block(1, C, BLOCK_C)
    m_lo = p * m_per
    m_hi = tl.minimum(m_lo + m_per, M)
    # shift by the program's first row (see stats_planes)
    shift = tl.load(x_ptr + m_lo.to(tl.int64) * C + cols, mask=col_ok & (m_lo < M), other=0.0)
    shift = shift.to(tl.float32)
    cnt = 0.0
    mean = tl.zeros([BLOCK_C], dtype=tl.float32)  # of x - shift
    m2 = tl.zeros([BLOCK_C], dtype=tl.float32)
    for m0 in range(m_lo, m_hi, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        mask = (rows < m_hi)[:, None] & col_ok[None, :]
        x = load_f32(x_ptr, rows.to(tl.int64)[:, None] * C + cols[None, :], mask)
        x = tl.where(mask, x - shift[None, :], 0.0)
        t_cnt = tl.minimum(m_hi - m0, BLOCK_M).to(tl.float32)
        cnt, mean, m2 = fold_tile(x, mask, t_cnt, cnt, mean, m2, 0)
    out = part_ptr + p * C + cols
    tl.store(out, tl.zeros([BLOCK_C], dtype=tl.float32) + cnt, mask=col_ok)
    tl.store(out + P * C, mean + shift, mask=col_ok)
    tl.store(out + 2 * P * C, m2, mask=col_ok)


@triton.jit
def combine(part_ptr, stride_k, stride_p, P, C, out_ptr, rmean_ptr, rvar_ptr, eps, momentum,
            UPDATE_RUNNING: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """The combination of P (count, mean, M2) triples per channel (all at once, as Chan et al.).

    part[k, p, c] lives at part_ptr + k*stride_k + p*stride_p + c. Writes out (4, C): count, mean,
    M2 and invstd = 1/sqrt(M2/count + eps); with UPDATE_RUNNING also moves the running statistics
    (unbiased variance M2/(count-1)) by momentum, in place. Not autotuned: it must run once.
    """
    cols, col_ok = channel_block(0, C, BLOCK_C)
    # pass 1: the count-weighted mean, good to float32 rounding of sums of n_i * mean_i
    acc_n = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    acc_n_mean = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    for p0 in range(0, P, BLOCK_P):
        ptrs, mask = partials_tile(part_ptr, p0, P, stride_p, cols, col_ok, BLOCK_P)
        n_i = tl.load(ptrs, mask=mask, other=0.0)
        acc_n += n_i
        acc_n_mean += n_i * tl.load(ptrs + stride_k, mask=mask, other=0.0)
    cnt = tl.sum(acc_n, axis=0)
    ref = tl.sum(acc_n_mean, axis=0) / tl.maximum(cnt, 1.0)
    # pass 2: deviations from that mean are small, so their sums keep every digit:
    # mean = ref + sum(n_i * d_i) / n and M2 = sum(M2_i) + sum(n_i * d_i^2) - n * (mean - ref)^2
    acc_dev = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    acc_dev2 = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    acc_m2 = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    for p0 in range(0, P, BLOCK_P):
        ptrs, mask = partials_tile(part_ptr, p0, P, stride_p, cols, col_ok, BLOCK_P)
        n_i = tl.load(ptrs, mask=mask, other=0.0)
        d_i = tl.where(mask, tl.load(ptrs + stride_k, mask=mask, other=0.0) - ref[None, :], 0.0)
        acc_dev += n_i * d_i
        acc_dev2 += n_i * d_i * d_i
        acc_m2 += tl.load(ptrs + 2 * stride_k, mask=mask, other=0.0)
    correction = tl.sum(acc_dev, axis=0) / tl.maximum(cnt, 1.0)
    mean = ref + correction
    m2 = tl.sum(acc_m2, axis=0) + tl.sum(acc_dev2, axis=0) - cnt * correction * correction
    m2 = tl.maximum(m2, 0.0)
    invstd = 1.0 / tl.sqrt_rn(m2 / tl.maximum(cnt, 1.0) + eps)
    tl.store(out_ptr + cols, cnt, mask=col_ok)
    tl.store(out_ptr + C + cols, mean, mask=col_ok)
    tl.store(out_ptr + 2 * C + cols, m2, mask=col_ok)
    tl.store(out_ptr + 3 * C + cols, invstd, mask=col_ok)
    if UPDATE_RUNNING:
        # a batch of one sample has no unbiased variance; keep it finite as scratch-sync does
        var_unbiased = m2 / tl.maximum(cnt - 1.0, 1.0)
        rm = tl.load(rmean_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        rv = tl.load(rvar_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        rm = (1.0 - momentum) * rm + momentum * mean
        rv = (1.0 - momentum) * rv + momentum * var_unbiased
        tl.store(rmean_ptr + cols, rm.to(rmean_ptr.dtype.element_ty), mask=col_ok)
        tl.store(rvar_ptr + cols, rv.to(rvar_ptr.dtype.element_ty), mask=col_ok)


@triton.autotune(**PLANES)
@triton.jit
def normalize_planes(x_ptr, y_ptr, mean_ptr, invstd_ptr, w_ptr, b_ptr, N, C, S,
                     BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr):
    """y = (x - mean) * (invstd * weight) + bias for BLOCK_N images of one channel."""
    c = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mean = tl.load(mean_ptr + c)
    scale = tl.load(invstd_ptr + c) * tl.load(w_ptr + c).to(tl.float32)
    shift = tl.load(b_ptr + c).to(tl.float32)
    starts = plane_starts(rows, c, C, S)
    for s0 in range(0, S, BLOCK_S):
        cols, mask = plane_tile(rows, N, s0, S, BLOCK_S)
        x = load_f32(x_ptr + starts, cols, mask)
        # centre first: x - mean is exact for nearby values, x * scale + shift would cancel
        y = (x - mean) * scale + shift
        tl.store(y_ptr + starts + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.autotune(**ROWS)
@triton.jit
def normalize_rows(x_ptr, y_ptr, mean_ptr, invstd_ptr, w_ptr, b_ptr, M, C,
                   BLOCK_C: tl.constexpr, TILE: tl.constexpr):
    """y = (x - mean) * (invstd * weight) + bias for a (TILE // BLOCK_C, BLOCK_C) tile."""
    BLOCK_M: tl.constexpr = TILE // BLOCK_C
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols, col_ok = channel_block(1, C, BLOCK_C)
    mean = tl.load(mean_ptr + cols, mask=col_ok, other=0.0)
    scale = tl.load(invstd_ptr + cols, mask=col_ok, other=0.0)
    scale = scale * load_f32(w_ptr, cols, col_ok)
    shift = load_f32(b_ptr, cols, col_ok)
    mask = (rows < M)[:, None] & col_ok[None, :]
    offs = rows.to(tl.int64)[:, None] * C + cols[None, :]
    x = load_f32(x_ptr, offs, mask)
    y = (x - mean[None, :]) * scale[None, :] + shift[None, :]
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
