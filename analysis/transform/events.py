"""The events table's category groups and the pure transforms every trace analysis builds on.

The table is the one :func:`analysis.load.trace_files.load_traces` returns (kineto trace events, one row per
complete event, with ``rank``, ``cat``, ``name``, ``ts_us``, ``dur_us``, ``correlation``, ...). The
functions here read only its columns: no files, no plotting. The loader calls
:func:`assign_steps` to fill its ``step`` column; :mod:`analysis.transform.gpu_steps` and
:mod:`analysis.transform.categories` use the rest.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
LAUNCH_CATS = ("cuda_runtime", "cuda_driver")
CPU_CATS = ("cpu_op", "user_annotation")
STEP_NAME = re.compile(r"^ProfilerStep#(\d+)$")


def map_names(names: pd.Series, fn) -> np.ndarray:
    """``fn`` applied once per distinct name, spread over the rows (object array).

    >>> map_names(pd.Series(["a", "bb", "a"], dtype="category"), len).tolist()
    [1, 2, 1]
    """
    codes = names if isinstance(names.dtype, pd.CategoricalDtype) else names.astype("category")
    lookup = np.array([fn(str(n)) for n in codes.cat.categories] + [None], dtype=object)
    return lookup[codes.cat.codes.to_numpy()]


def _step_number(name: str) -> float:
    m = STEP_NAME.match(name)
    return float(m.group(1)) if m else np.nan


def step_windows(events: pd.DataFrame) -> pd.DataFrame:
    """The ``ProfilerStep#N`` ranges: one row per (rank, step) with start_us, end_us, wall_us.

    >>> ev = pd.DataFrame({"rank": [0, 0], "cat": ["user_annotation"] * 2,
    ...                    "name": ["ProfilerStep#3", "aten::add"], "ts_us": [10.0, 12.0],
    ...                    "dur_us": [5.0, 1.0]})
    >>> step_windows(ev).to_dict("records")
    [{'rank': 0, 'step': 3, 'start_us': 10.0, 'end_us': 15.0, 'wall_us': 5.0}]
    """
    step_no = map_names(events["name"], _step_number).astype(np.float64)
    is_step = events["cat"].isin(CPU_CATS).to_numpy() & ~np.isnan(step_no)
    s = events.loc[is_step, ["rank", "ts_us", "dur_us"]].copy()
    s["step"] = step_no[is_step].astype(np.int64)
    s = s.drop_duplicates(["rank", "step"]).sort_values(["rank", "ts_us"], ignore_index=True)
    return pd.DataFrame({"rank": s["rank"].to_numpy(), "step": s["step"].to_numpy(),
                         "start_us": s["ts_us"].to_numpy(),
                         "end_us": (s["ts_us"] + s["dur_us"]).to_numpy(),
                         "wall_us": s["dur_us"].to_numpy()})


def _step_at(windows: pd.DataFrame, rank: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Step number of the window (same rank) holding each ts; -1 where none does."""
    out = np.full(len(ts), -1, dtype=np.int64)
    for r, w in windows.groupby("rank", sort=False):
        sel = np.flatnonzero(rank == r)
        starts, ends = w["start_us"].to_numpy(), w["end_us"].to_numpy()
        i = np.searchsorted(starts, ts[sel], side="right") - 1
        ok = (i >= 0) & (ts[sel] < ends[np.maximum(i, 0)])
        out[sel[ok]] = w["step"].to_numpy()[i[ok]]
    return out


def assign_steps(events: pd.DataFrame) -> pd.Series:
    """Step of each event: CPU events by their start, GPU activity by its launch's correlation."""
    windows = step_windows(events)
    rank = events["rank"].to_numpy()
    step = _step_at(windows, rank, events["ts_us"].to_numpy())
    is_gpu = events["cat"].isin(GPU_CATS).to_numpy()
    is_launch = events["cat"].isin(LAUNCH_CATS).to_numpy() & (events["correlation"].to_numpy() >= 0)
    if is_gpu.any():
        launches = pd.DataFrame({"rank": rank[is_launch],
                                 "correlation": events["correlation"].to_numpy()[is_launch],
                                 "step": step[is_launch]}).drop_duplicates(["rank", "correlation"])
        gpu = pd.DataFrame({"rank": rank[is_gpu],
                            "correlation": events["correlation"].to_numpy()[is_gpu]})
        matched = gpu.merge(launches, on=["rank", "correlation"], how="left")["step"]
        step[is_gpu] = matched.fillna(-1).to_numpy(dtype=np.int64)
    return pd.Series(step, index=events.index, dtype="Int64").mask(step < 0)
