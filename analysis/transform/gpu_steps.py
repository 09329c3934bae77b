"""Per-step GPU/CPU time tables from a job's events (pure transforms); ``python -m analysis.kernels``
writes them.

Definitions (times in microseconds, per rank and ``ProfilerStep#N`` window):

- ``wall_us``: the step window. ``gpu_busy_us``: union of all kernel, memcpy and memset intervals
  (any stream, launched in any step) clipped to the window; ``idle_us = wall_us - gpu_busy_us``.
- ``kernels``: kernels whose launching ``cuda_runtime`` call lies in the step (by correlation);
  ``driver_kernels``: those launched through the driver API (``cuLaunchKernel``, used by cuBLASLt and
  cuDNN), not in ``kernels``; ``nccl_kernels``: kernels named ``*nccl*`` of either kind.
- ``cpu_us``: per CPU thread, the union of its ``cpu_op`` events and categorised ``record_function``
  ranges clipped to the window, summed over threads (so it can exceed ``wall_us``).
- ``comm_us``: union of NCCL kernels and CPU-side collectives (``gloo:*``, ``c10d::*``,
  ``record_param_comms``, ...) clipped to the window; ``overlap_us``: time in which that
  communication and non-communication GPU work both run.
- ``<category>_time_us``: the step's time by category (see :mod:`analysis.transform.categories`); each instant goes
  to the first category in :data:`~analysis.transform.categories.CATEGORIES` order that is active, so the
  columns add up to ``gpu_busy_us`` (``time_source == "gpu"``), or to ``cpu_us`` on a CPU-only rank
  (``time_source == "cpu"``). GPU columns are NaN on a CPU-only rank.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.transform.categories import CATEGORIES, NCCL, classify
from analysis.transform.events import GPU_CATS, map_names, step_windows
from analysis.transform.timespans import busy_per_window

STEP_KEYS = ["rank", "step"]


def _intervals(events: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    e = events.loc[mask]
    return pd.DataFrame({"rank": e["rank"].to_numpy(), "tid": e["tid"].to_numpy(),
                         "start_us": e["ts_us"].to_numpy(),
                         "end_us": (e["ts_us"] + e["dur_us"]).to_numpy()})


def _by_precedence(events: pd.DataFrame, code: np.ndarray, mask: np.ndarray,
                   windows: pd.DataFrame, by: str | None) -> dict[str, np.ndarray]:
    """Time per category where each instant goes to the first active category in CATEGORIES order.

    ``code`` is the index of each event's category in CATEGORIES (-1 for none).
    """
    out, before = {}, np.zeros(len(windows))
    for k, name in enumerate(CATEGORIES):
        prefix = mask & (code >= 0) & (code <= k)
        upto = busy_per_window(_intervals(events, prefix), windows, by=by)
        out[name] = upto - before
        before = upto
    return out


def _launch_counts(events: pd.DataFrame, kernel: np.ndarray, windows: pd.DataFrame,
                   launch_cat: str) -> pd.Series:
    launches = events.loc[events["cat"].to_numpy() == launch_cat, ["rank", "correlation"]]
    keys = pd.MultiIndex.from_frame(launches)
    k = events.loc[kernel, ["rank", "correlation", "step"]]
    k = k[pd.MultiIndex.from_frame(k[["rank", "correlation"]]).isin(keys)]
    counts = k.groupby(STEP_KEYS, observed=True).size()
    index = pd.MultiIndex.from_frame(windows[STEP_KEYS])
    return counts.reindex(index, fill_value=0)


def step_table(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Steps and categories tables for one job's events.

    Returns ``(steps, categories)``: ``steps`` has one row per (rank, step) with the columns in the
    module docstring; ``categories`` is tidy: rank, step, category, source ("gpu"/"cpu"),
    time_us, events.

    Example: one step [0, 10) with kernels at [1, 4) and [2, 6) on two streams gives
    ``gpu_busy_us == 5`` and ``idle_us == 5``.
    """
    windows = step_windows(events).reset_index(drop=True)
    code = classify(events).cat.codes.to_numpy()
    is_gpu = events["cat"].isin(GPU_CATS).to_numpy()
    is_cpu = ~is_gpu & (code >= 0)
    kernel = (events["cat"] == "kernel").to_numpy()
    nccl = kernel & map_names(events["name"], lambda n: bool(NCCL.search(n))).astype(bool)
    has_gpu = windows["rank"].isin(pd.unique(events.loc[is_gpu, "rank"])).to_numpy()

    steps = windows.copy()
    busy = busy_per_window(_intervals(events, is_gpu), windows)
    steps["gpu_busy_us"] = np.where(has_gpu, busy, np.nan)
    steps["gpu_busy_frac"] = steps["gpu_busy_us"] / steps["wall_us"]
    steps["idle_us"] = steps["wall_us"] - steps["gpu_busy_us"]
    steps["kernels"] = _launch_counts(events, kernel, windows, "cuda_runtime").to_numpy()
    steps["driver_kernels"] = _launch_counts(events, kernel, windows, "cuda_driver").to_numpy()
    k = events.loc[nccl].groupby(STEP_KEYS, observed=True).size()
    steps["nccl_kernels"] = k.reindex(pd.MultiIndex.from_frame(windows[STEP_KEYS]),
                                      fill_value=0).to_numpy()
    steps["cpu_us"] = busy_per_window(_intervals(events, is_cpu), windows, by="tid")

    is_comm = code == CATEGORIES.index("comm")
    comm = is_comm & (is_cpu | kernel)
    steps["comm_us"] = busy_per_window(_intervals(events, comm), windows)
    compute = busy_per_window(_intervals(events, is_gpu & ~is_comm), windows)
    both = busy_per_window(_intervals(events, comm | is_gpu), windows)
    steps["overlap_us"] = np.where(has_gpu, steps["comm_us"] + compute - both, np.nan)

    gpu_time = _by_precedence(events, code, is_gpu, windows, by=None)
    cpu_time = _by_precedence(events, code, is_cpu, windows, by="tid")
    steps["time_source"] = np.where(has_gpu, "gpu", "cpu")
    for name in CATEGORIES:
        steps[f"{name}_time_us"] = np.where(has_gpu, gpu_time[name], cpu_time[name])
    return steps, _categories_long(events, code, is_gpu, is_cpu, windows, gpu_time,
                                   cpu_time, has_gpu)


def _categories_long(events, code, is_gpu, is_cpu, windows, gpu_time, cpu_time,
                     has_gpu) -> pd.DataFrame:
    rows = []
    for source, mask, times in (("gpu", is_gpu, gpu_time), ("cpu", is_cpu, cpu_time)):
        e = events.loc[mask, STEP_KEYS].assign(category=np.asarray(CATEGORIES)[code[mask]])
        counts = e.groupby(STEP_KEYS + ["category"], observed=True).size()
        for name in CATEGORIES:
            part = windows[STEP_KEYS].assign(category=name, source=source, time_us=times[name])
            if source == "gpu":
                part = part[has_gpu]
            idx = pd.MultiIndex.from_frame(part[STEP_KEYS + ["category"]])
            part["events"] = counts.reindex(idx, fill_value=0).to_numpy()
            rows.append(part)
    return pd.concat(rows, ignore_index=True).sort_values(
        STEP_KEYS + ["source", "category"], ignore_index=True)


def add_skew(steps: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Add ``slowest_rank`` and ``skew_us`` (max − min wall over ranks) for each step.

    >>> s = pd.DataFrame({"rank": [0, 1], "step": [3, 3], "wall_us": [5.0, 7.0]})
    >>> add_skew(s)[["slowest_rank", "skew_us"]].to_dict("list")
    {'slowest_rank': [1, 1], 'skew_us': [2.0, 2.0]}
    """
    keys = (by or []) + ["step"]
    g = steps.groupby(keys, observed=True)["wall_us"]
    slowest = steps.loc[g.idxmax(), keys + ["rank"]].rename(columns={"rank": "slowest_rank"})
    out = steps.merge(slowest, on=keys, how="left")
    out["skew_us"] = g.transform("max").to_numpy() - g.transform("min").to_numpy()
    return out


def summarize_steps(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, rank): medians over steps of the step table, for the report.

    Columns: run, rank, steps, wall_us_median, wall_us_iqr, kernels_per_step (runtime launches),
    all_kernels_per_step (runtime + driver launches), gpu_busy_pct,
    bn_share (BN time / busy time of the time source), comm_share (comm_us / wall_us).
    """
    s = steps if "run" in steps else steps.assign(run="")
    busy = s["gpu_busy_us"].where(s["time_source"] == "gpu", s["cpu_us"])
    s = s.assign(_bn=(s["bn_fwd_time_us"] + s["bn_bwd_time_us"]) / busy,
                 _comm=s["comm_us"] / s["wall_us"], _busy=100 * s["gpu_busy_frac"],
                 _k=s["kernels"] + s["driver_kernels"])
    g = s.groupby(["run", "rank"], observed=True)
    return pd.DataFrame({
        "steps": g.size(), "wall_us_median": g["wall_us"].median(),
        "wall_us_iqr": g["wall_us"].quantile(0.75) - g["wall_us"].quantile(0.25),
        "kernels_per_step": g["kernels"].median(), "all_kernels_per_step": g["_k"].median(),
        "gpu_busy_pct": g["_busy"].median(),
        "bn_share": g["_bn"].median(), "comm_share": g["_comm"].median(),
    }).reset_index()


def step_timeline(events: pd.DataFrame, rank: int = 0, step: int | None = None) -> pd.DataFrame:
    """Events of one step of one rank for a timeline picture: lane ("CPU <tid>" / "GPU stream <n>"),
    start_us (from the step's start), dur_us, name, category. ``step=None`` picks the step whose
    wall time is the median. Includes GPU work launched in that step even where it runs later.
    """
    windows = step_windows(events)
    w = windows[windows["rank"] == rank]
    if w.empty:
        return pd.DataFrame(columns=["lane", "start_us", "dur_us", "name", "category"])
    if step is None:
        step = int(w.iloc[(w["wall_us"] - w["wall_us"].median()).abs().argmin()]["step"])
    start = float(w.loc[w["step"] == step, "start_us"].iloc[0])
    e = events[(events["rank"] == rank) & (events["step"] == step)]
    category = classify(e)
    keep = category.notna().to_numpy()
    e, category = e[keep], category[keep]
    gpu = e["cat"].isin(GPU_CATS).to_numpy()
    lane = np.where(gpu, "GPU stream " + e["stream"].astype(str), "CPU " + e["tid"].astype(str))
    return pd.DataFrame({"lane": lane, "start_us": e["ts_us"].to_numpy() - start,
                         "dur_us": e["dur_us"].to_numpy(), "name": e["name"].astype(str).to_numpy(),
                         "category": category.astype(str).to_numpy()})
