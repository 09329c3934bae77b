"""BN cost per layer from a job's events (pure transforms): how long each BN layer takes forward and
backward, its share of the step, the bytes it must move and the bandwidth that achieves, against a
copy measured on the same device.

Where the times come from (per rank and ``ProfilerStep#N``; analysis.transform.categories finds the layers):

- forward: the layer's ``bn/<layer>`` range. On a GPU rank, the kernels (and memcpy / memset) launched
  inside it, their durations summed; on a CPU-only rank, the range's own duration.
- backward: the autograd nodes whose sequence number is that of a forward op inside the range. On a
  GPU rank, the kernels launched inside those nodes; on a CPU-only rank, the nodes' durations.

Bytes a layer must move, with ``E`` input elements of ``b`` bytes (the first tensor input of the
first op inside the range, as ``record_shapes`` records it): forward ``3·E·b`` (read x for the
statistics, read it again and write y), backward ``5·E·b`` (read dy and x for the two sums, read them
again and write dx) — the fewest passes the arithmetic allows, counted in docs/fused.md. GB/s is
those bytes over the time; ``x_copy`` is a copy's GB/s (bench.micro, same device) over it: how many
times longer the layer takes than a copy-speed kernel moving its minimum traffic would.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.transform.categories import AUTOGRAD_NODE, bn_layer_of, containing
from analysis.transform.events import GPU_CATS, LAUNCH_CATS, map_names, step_windows

# kineto's dtype names -> (the name tables print, bytes per element)
DTYPES: dict[str, tuple[str, int]] = {
    "float": ("float32", 4), "c10::BFloat16": ("bfloat16", 2), "c10::Half": ("float16", 2),
    "double": ("float64", 8), "BFloat16": ("bfloat16", 2), "Half": ("float16", 2),
}

FWD_PASSES, BWD_PASSES = 3, 5  # docs/fused.md, "Why the floor is 1.5× a copy forward and 4× …"
KEYS = ["rank", "step", "layer"]
TIME_COLUMNS = [*KEYS, "position", "time_source", "fwd_us", "bwd_us", "wall_us", "shape", "dtype"]
TABLE_COLUMNS = ["position", "layer", "shape", "dtype", "time_source", "fwd_us", "bwd_us", "step_share",
                 "fwd_bytes", "bwd_bytes", "fwd_gb_per_s", "bwd_gb_per_s", "copy_gb_per_s", "copy_shape",
                 "fwd_x_copy", "bwd_x_copy"]


def _ranges(events: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    e = events.loc[mask]
    return pd.DataFrame({"rank": e["rank"].to_numpy(), "tid": e["tid"].to_numpy(),
                         "start_us": e["ts_us"].to_numpy(), "end_us": (e["ts_us"] + e["dur_us"]).to_numpy()})


def _passes(events: pd.DataFrame, fwd: np.ndarray, bwd: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(pass, mask, layer of each event): the ``bn/<layer>`` ranges (forward) and the engine's wrapper
    ranges of matched autograd nodes (backward; the node's own range nests inside its wrapper)."""
    names = events["name"]
    is_range = map_names(names, lambda n: n.startswith("bn/")).astype(bool) & (fwd != None)  # noqa: E711
    wrapper = map_names(names, lambda n: n.startswith(AUTOGRAD_NODE)).astype(bool) & (bwd != None)  # noqa: E711
    return [("fwd", is_range, fwd), ("bwd", wrapper, bwd)]


def _gpu_times(events: pd.DataFrame, fwd: np.ndarray, bwd: np.ndarray) -> pd.DataFrame:
    """(rank, step, layer, pass, dur_us) of every GPU activity launched inside a layer's range or node."""
    launch = events["cat"].isin(LAUNCH_CATS).to_numpy()
    rank, tid, ts, corr = (events[c].to_numpy()[launch] for c in ("rank", "tid", "ts_us", "correlation"))
    rows = []
    for kind, mask, layers in _passes(events, fwd, bwd):
        where = containing(rank, tid, ts, _ranges(events, mask).reset_index(drop=True))
        hit = where >= 0
        rows.append(pd.DataFrame({"rank": rank[hit], "correlation": corr[hit], "layer": layers[mask][where[hit]],
                                  "pass": kind}))
    launched = pd.concat(rows, ignore_index=True).drop_duplicates(["rank", "correlation"])
    gpu = events.loc[events["cat"].isin(GPU_CATS), ["rank", "correlation", "step", "dur_us"]]
    out = gpu.merge(launched, on=["rank", "correlation"], how="inner")
    return out[["rank", "step", "layer", "pass", "dur_us"]]


def _cpu_times(events: pd.DataFrame, fwd: np.ndarray, bwd: np.ndarray) -> pd.DataFrame:
    """(rank, step, layer, pass, dur_us) of every bn/ range (forward) and matched engine node (backward)."""
    parts = [events.loc[m, ["rank", "step", "dur_us"]].assign(layer=layers[m], **{"pass": kind})
             for kind, m, layers in _passes(events, fwd, bwd)]
    return pd.concat(parts, ignore_index=True)[["rank", "step", "layer", "pass", "dur_us"]]


def _input_shapes(events: pd.DataFrame, fwd: np.ndarray) -> pd.DataFrame:
    """(rank, layer, shape, dtype, position): the first ≥1-d tensor input of the first op inside each
    layer's range; position is the layer's order of first appearance on its rank."""
    inside = (fwd != None) & events["in_shape"].astype(str).ne("").to_numpy()  # noqa: E711
    ops = events.loc[inside, ["rank", "ts_us", "in_shape", "in_dtype"]].assign(layer=fwd[inside])
    first = ops.sort_values("ts_us").drop_duplicates(["rank", "layer"])
    first = first.assign(position=first.groupby("rank").cumcount())
    return pd.DataFrame({"rank": first["rank"].to_numpy(), "layer": first["layer"].to_numpy(),
                         "shape": first["in_shape"].astype(str).to_numpy(),
                         "dtype": first["in_dtype"].astype(str).to_numpy(), "position": first["position"].to_numpy()})


def layer_times(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (rank, step, BN layer) with TIME_COLUMNS; empty without ``bn/`` ranges.

    Example: a step [0, 100) whose range ``bn/bn1`` launches a 6 us kernel and whose matched backward
    node launches a 10 us one gives ``fwd_us == 6``, ``bwd_us == 10``, ``wall_us == 100``.
    """
    fwd, bwd = bn_layer_of(events)
    if not (fwd != None).any():  # noqa: E711
        return pd.DataFrame(columns=TIME_COLUMNS)
    gpu_ranks = set(pd.unique(events.loc[events["cat"].isin(GPU_CATS), "rank"]))
    rank = events["rank"].to_numpy()
    on_gpu = np.isin(rank, list(gpu_ranks))
    parts = [_gpu_times(events[on_gpu], fwd[on_gpu], bwd[on_gpu]).assign(time_source="gpu"),
             _cpu_times(events[~on_gpu], fwd[~on_gpu], bwd[~on_gpu]).assign(time_source="cpu")]
    t = pd.concat(parts, ignore_index=True).dropna(subset=["step"])
    wide = t.pivot_table(index=[*KEYS, "time_source"], columns="pass", values="dur_us", aggfunc="sum",
                         fill_value=0.0).reindex(columns=["fwd", "bwd"], fill_value=0.0)
    wide = wide.rename(columns={"fwd": "fwd_us", "bwd": "bwd_us"}).reset_index()
    wide["step"] = wide["step"].astype(np.int64)
    walls = step_windows(events)[["rank", "step", "wall_us"]]
    out = wide.merge(walls, on=["rank", "step"], how="left").merge(_input_shapes(events, fwd),
                                                                  on=["rank", "layer"], how="left")
    return out.sort_values(["rank", "step", "position"], ignore_index=True)[TIME_COLUMNS]


def copy_bandwidth(micro: pd.DataFrame) -> pd.DataFrame:
    """bench.micro's copy rows (analysis.load.micro_csv.load_micro): shape, dtype, gb_per_s (median over rows)."""
    copies = micro[micro["variant"] == "copy"]
    return copies.groupby(["shape", "dtype"], as_index=False)["gb_per_s"].median()


def _copy_for(shape: str, dtype: str, copies: pd.DataFrame) -> tuple[float, str]:
    """The copy of the same shape and dtype, else the largest copy measured in that dtype."""
    same = copies[(copies["shape"] == shape) & (copies["dtype"] == dtype)]
    if len(same):
        return float(same["gb_per_s"].iloc[0]), shape
    kind = copies[copies["dtype"] == dtype]
    if kind.empty:
        return float("nan"), ""
    sizes = kind["shape"].map(lambda s: int(np.prod([int(d) for d in s.split("x")])))
    row = kind.loc[sizes.idxmax()]
    return float(row["gb_per_s"]), str(row["shape"])


def layer_table(times: pd.DataFrame, micro: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per BN layer (TABLE_COLUMNS): medians over ranks and steps, bytes, GB/s, × a copy.

    ``step_share`` is the median over (rank, step) of (fwd + bwd) / the step's wall time.

    >>> t = pd.DataFrame({"rank": 0, "step": [1, 2], "layer": "bn1", "position": 0, "time_source": "gpu",
    ...                   "fwd_us": [6.0, 6.0], "bwd_us": [10.0, 10.0], "wall_us": [100.0, 100.0],
    ...                   "shape": "1000x10", "dtype": "float"})
    >>> layer_table(t)[["fwd_bytes", "fwd_gb_per_s", "step_share"]].values.tolist()
    [[120000.0, 20.0, 0.16]]
    """
    if times.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    t = times.assign(_share=(times["fwd_us"] + times["bwd_us"]) / times["wall_us"])
    g = t.groupby("layer", sort=False)
    out = g.agg(position=("position", "min"), shape=("shape", "first"), dtype=("dtype", "first"),
                time_source=("time_source", "first"), fwd_us=("fwd_us", "median"), bwd_us=("bwd_us", "median"),
                step_share=("_share", "median")).reset_index()
    elems = out["shape"].map(lambda s: float(np.prod([int(d) for d in str(s).split("x")])) if s == s and s else np.nan)
    size = out["dtype"].map(lambda d: DTYPES.get(d, (d, np.nan))[1])
    out["dtype"] = out["dtype"].map(lambda d: DTYPES.get(d, (d, 0))[0])
    out["fwd_bytes"], out["bwd_bytes"] = FWD_PASSES * elems * size, BWD_PASSES * elems * size
    out["fwd_gb_per_s"] = out["fwd_bytes"] / (out["fwd_us"] * 1e3)
    out["bwd_gb_per_s"] = out["bwd_bytes"] / (out["bwd_us"] * 1e3)
    copies = copy_bandwidth(micro) if micro is not None else pd.DataFrame(columns=["shape", "dtype", "gb_per_s"])
    found = [_copy_for(s, d, copies) for s, d in zip(out["shape"], out["dtype"])]
    out["copy_gb_per_s"] = [f[0] for f in found]
    out["copy_shape"] = [f[1] for f in found]
    out["fwd_x_copy"] = out["copy_gb_per_s"] / out["fwd_gb_per_s"]
    out["bwd_x_copy"] = out["copy_gb_per_s"] / out["bwd_gb_per_s"]
    return out.sort_values("position", ignore_index=True)[TABLE_COLUMNS]
