"""Workloads for the step model: what each world-size-1 run says about one training step (pure).

One workload per (model, variant, per-rank batch, mode, amp) among the world-size-1 runs:

    compute_ms    median over its runs (seeds) of the measured median step
    channels      the channel count of every BN layer (bn_params.csv: one row per layer and channel)
    grad_bytes    bytes of gradient DDP all-reduces (summary.json; NaN when an older run lacks it)
    exposed_frac  share of DDP's all-reduce not hidden behind backward: the median of
                  (comm_us − overlap_us) / comm_us over the traced steps of multi-rank local-BN runs
                  of the same model, per-rank batch and backend; 1.0 (no overlap) without such a trace
    guard_every   steps between the harness's divergence checks (config, else bench.train's default)

Every assumption taken for lack of data comes back as a sentence, for the report to print.
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.atscale.collective_model import CostModel
from analysis.atscale.step_model import GUARD_EVERY, WORKLOAD_KEY
from bench.errors import UsageError
from bench.rundir import SYNCHRONISING

WORKLOAD_COLUMNS = (*WORKLOAD_KEY, "backend", "compute_ms", "runs", "channels", "bn_layers", "grad_bytes",
                    "exposed_frac", "exposed_source", "guard_every")


def calls_per_step(events: pd.DataFrame) -> pd.Series:
    """Process-group calls (``c10d::`` ops: one per collective, whatever the backend) per traced
    (rank, step) of one job's events table.

    >>> ev = pd.DataFrame({"rank": [0, 0, 0, 1], "step": [3, 3, 4, 3], "cat": ["cpu_op"] * 4,
    ...                    "name": ["c10d::allreduce_", "c10d::broadcast_", "c10d::allreduce_", "aten::add"]})
    >>> calls_per_step(ev).tolist()
    [2, 1, 0]
    """
    steps = events.loc[events["step"] >= 0, ["rank", "step"]].drop_duplicates()
    is_call = (events["cat"] == "cpu_op") & events["name"].astype(str).str.startswith("c10d::") & (events["step"] >= 0)
    counts = events.loc[is_call].groupby(["rank", "step"]).size()
    return counts.reindex(pd.MultiIndex.from_frame(steps.sort_values(["rank", "step"])), fill_value=0)


def _exposure(runs: pd.DataFrame, traced: pd.DataFrame) -> dict[tuple, tuple[float, str]]:
    """(model, per_rank_batch, backend) -> (exposed_frac, where it came from), from the traces of
    multi-rank local-BN runs (a synchronising run's communication holds its BN collectives too)."""
    e = traced.merge(runs[["path", "model", "variant", "per_rank_batch", "backend", "world_size"]], on="path")
    e = e[~e["variant"].isin(SYNCHRONISING)]
    out = {}
    for key, g in e.groupby(["model", "per_rank_batch", "backend"]):
        known = g["exposed_frac"].dropna()
        if known.empty:
            out[key] = (math.nan, "; ".join(sorted(set(g["trace_note"]))))
        else:
            out[key] = (float(known.median()), f"traces of {len(known)} multi-rank local-BN run(s) at world size "
                        f"{', '.join(map(str, sorted(g.loc[known.index, 'world_size'].unique())))}")
    return out


def workloads(runs: pd.DataFrame, layers: pd.DataFrame, traced: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The workload table (WORKLOAD_COLUMNS) and the assumptions it rests on, as sentences."""
    ws1 = runs[runs["world_size"] == 1]
    if ws1.empty:
        raise UsageError("no complete world-size-1 run among the inputs: the model starts from one "
                         "(add e.g. `python -m bench.train --variant nn` with the same per-rank batch)")
    channels = {path: g["channels"].astype(int).tolist() for path, g in layers.groupby("path", sort=False)}
    exposure = _exposure(runs, traced)
    rows, notes = [], []
    for key, g in ws1.groupby(WORKLOAD_KEY + ["backend"], sort=True):
        w = dict(zip(WORKLOAD_KEY + ["backend"], key))
        chans = next((channels[p] for p in g["path"] if p in channels), None)
        if chans is None:
            notes.append(f"{', '.join(g['run'])}: no bn_params.csv, so its BN layers are unknown; left out")
            continue
        grad = float(g["grad_bytes"].median()) if g["grad_bytes"].notna().any() else math.nan
        if math.isnan(grad):
            notes.append(f"{', '.join(g['run'])}: no grad_bytes in summary.json (an older run): DDP's gradient "
                         "all-reduce is left out of its prediction (taken as 0)")
        frac, source = exposure.get((w["model"], w["per_rank_batch"], w["backend"]), (math.nan, "no multi-rank trace"))
        if math.isnan(frac):
            notes.append(f"{w['model']} at per-rank batch {w['per_rank_batch']} on {w['backend']}: {source}, so DDP's "
                         "gradient all-reduce is assumed fully exposed (overlap 0)")
            frac, source = 1.0, f"assumed 1 (overlap 0): {source}"
        every = g["check_finite_every"].iloc[0] if "check_finite_every" in g else math.nan
        if not every or math.isnan(every):  # 0 or unrecorded: bench.train's default for the device
            every = GUARD_EVERY.get(g["device_type"].iloc[0], GUARD_EVERY["cuda"])
        rows.append({**w, "compute_ms": float(g["step_ms"].median()), "runs": len(g), "channels": tuple(chans),
                     "bn_layers": len(chans), "grad_bytes": grad, "exposed_frac": frac, "exposed_source": source,
                     "guard_every": float(every)})
    table = pd.DataFrame(rows, columns=list(WORKLOAD_COLUMNS))
    if table.empty:
        raise UsageError("no world-size-1 run with its BN layers recorded (bn_params.csv)")
    return table, notes


def backend_mismatch(runs: pd.DataFrame, cost: CostModel) -> list[str]:
    """Runs whose backend is not the cost model's: a prediction would mix two machines' numbers."""
    bad = runs[runs["backend"] != cost.backend]
    return [f"{r} ({b})" for r, b in zip(bad["run"], bad["backend"])]
