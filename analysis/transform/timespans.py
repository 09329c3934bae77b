"""Measure of a union of time intervals inside windows — the one piece of interval arithmetic.

Busy time is always a union, so overlapping kernels on two streams (or a queue of launches) are never
counted twice, and it is clipped to each window, so a kernel that runs past the end of its step adds to
the next step's busy time, not to its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def union_in_windows(starts: np.ndarray, ends: np.ndarray,
                     win_starts: np.ndarray, win_ends: np.ndarray) -> np.ndarray:
    """Length of (union of [starts, ends)) ∩ [win_start, win_end) for each window.

    >>> union_in_windows(np.array([0., 5., 8.]), np.array([10., 7., 20.]),
    ...                  np.array([0., 15.]), np.array([15., 30.])).tolist()
    [15.0, 5.0]
    """
    win_starts = np.asarray(win_starts, dtype=np.float64)
    if len(starts) == 0:
        return np.zeros(len(win_starts))
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts, np.float64)[order], np.asarray(ends, np.float64)[order]
    reach = np.maximum.accumulate(e)
    new = np.empty(len(s), dtype=bool)
    new[0] = True
    new[1:] = s[1:] > reach[:-1]
    merged_start = s[new]
    last = np.r_[np.flatnonzero(new)[1:] - 1, len(s) - 1]
    merged_end = reach[last]
    covered = np.r_[0.0, np.cumsum(merged_end - merged_start)]

    def covered_before(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(merged_start, t, side="right")
        tail = np.where(i > 0, np.maximum(merged_end[np.maximum(i - 1, 0)] - t, 0.0), 0.0)
        return covered[i] - tail

    return covered_before(np.asarray(win_ends, np.float64)) - covered_before(win_starts)


def busy_per_window(intervals: pd.DataFrame, windows: pd.DataFrame,
                    by: str | None = None) -> np.ndarray:
    """Union length of ``intervals`` (rank, start_us, end_us[, by]) in each window (rank, start_us,
    end_us) of the same rank. With ``by`` (e.g. ``"tid"``) the union is taken per value of that
    column and the lengths summed: a thread's busy time, added over threads.

    >>> iv = pd.DataFrame({"rank": [0, 0, 1], "start_us": [0., 2., 0.], "end_us": [4., 6., 1.]})
    >>> w = pd.DataFrame({"rank": [0, 1], "start_us": [0., 0.], "end_us": [10., 10.]})
    >>> busy_per_window(iv, w).tolist()
    [6.0, 1.0]
    """
    out = np.zeros(len(windows))
    if intervals.empty or windows.empty:
        return out
    groups = dict(tuple(intervals.groupby("rank", sort=False)))
    w_rank = windows["rank"].to_numpy()
    for rank, iv in groups.items():
        sel = np.flatnonzero(w_rank == rank)
        if not len(sel):
            continue
        ws, we = windows["start_us"].to_numpy()[sel], windows["end_us"].to_numpy()[sel]
        parts = [iv] if by is None else [g for _, g in iv.groupby(by, sort=False)]
        for part in parts:
            out[sel] += union_in_windows(part["start_us"].to_numpy(), part["end_us"].to_numpy(),
                                         ws, we)
    return out
