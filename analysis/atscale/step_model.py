"""The step model of ``analysis.scale``: a training step at W ranks from its world-size-1 parts (pure).

    step(W) = compute + Σ_layers [all_gather(G, G·f·4 B) + all_reduce(G, 2·C·4 B)]
              + e · all_reduce(W, grads) + broadcast(W, buffers) + all_reduce(W, 8 B) / g

- ``compute``: the world-size-1 run's median step (weak scaling: the per-rank batch stays fixed, so
  each rank's arithmetic does not change with W).
- One term per synchronised BN layer of C channels, on its group of G ranks (G = W for a whole-world
  sync, K for groups of K, and nothing for local BN): the forward all-gather of every rank's
  statistics — f = 3·C floats for ``scratch-sync`` (count, mean, variance; bench/syncnorm.py),
  2·C + 1 for ``sync`` (mean, invstd, count; torch.nn.SyncBatchNorm) — and the backward all-reduce of
  (Σdy, Σdy·x̂), 2·C floats. Both sit on the critical path: nothing overlaps them.
- DDP's gradient all-reduce, in DDP's buckets (1 MiB first, then 25 MiB), times ``e``, the share of
  it the traces show exposed (comm − overlap over comm); without a GPU trace e = 1 (no overlap).
  DDP also broadcasts rank 0's buffers before every forward (``broadcast_buffers``, on by default),
  on the critical path, one call per dtype: the BN running statistics (2·C floats a layer) and, for
  ``nn`` and ``sync``, each layer's int64 ``num_batches_tracked``. Both go in ``ddp_ms``.
- The harness's own collective: bench.train's divergence guard all-reduces 16 bytes every g steps
  (``--check-finite-every``; 1 on CPU, 50 on CUDA by default), in ``harness_ms``.

Each collective's time comes from a :class:`~analysis.atscale.collective_model.CostModel`. Tables are tidy:
a ``bn_scope`` column ("local", "world", "groups of K") names each line of a prediction.
"""
from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

from analysis.atscale.collective_model import CostModel, collective_us
from bench.rundir import DIVERGENCE_CHECK_EVERY, SYNCHRONISING

FLOAT_BYTES = 4
# Floats each rank sends forward per BN layer of C channels: (per-channel count, constant).
BN_FWD_FLOATS = {"scratch-sync": (3, 0), "sync": (2, 1)}
BN_BWD_FLOATS_PER_CHANNEL = 2
DDP_FIRST_BUCKET_BYTES = 1 << 20  # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES
DDP_BUCKET_BYTES = 25 << 20       # DistributedDataParallel's default bucket_cap_mb
# BN layers that keep an int64 num_batches_tracked buffer (nn.BatchNorm, nn.SyncBatchNorm): DDP
# broadcasts it apart from the float buffers (one coalesced call per dtype).
COUNTER_VARIANTS = ("nn", "sync")
INT64_BYTES = 8
GUARD_BYTES = 16                  # bench/run/divergence.py: (first bad step, stop request) as 2 float64, MIN
GUARD_EVERY = DIVERGENCE_CHECK_EVERY  # steps between the divergence guard's all-reduces, by device type
WORLD = "world"
WORKLOAD_KEY = ["model", "variant", "per_rank_batch", "mode", "amp"]
PREDICTION_COLUMNS = ("model", "variant", "per_rank_batch", "bn_scope", "world_size", "bn_group_size",
                      "global_batch", "compute_ms", "bn_comm_ms", "ddp_ms", "harness_ms", "step_ms", "examples_per_s",
                      "scaling_efficiency", "sync_bn_overhead", "calls_per_step", "cost_model")
FIT_COLUMNS = ("compute_factor", "fitted_from", "fitted_step_ms", "residual_ms", "residual", "residual_per_call_ms")
VALIDATION_COLUMNS = ("run", "model", "variant", "per_rank_batch", "world_size", "bn_group_size", "backend",
                      "measured_step_ms", "predicted_step_ms", "compute_ms", "bn_comm_ms", "ddp_ms", "harness_ms",
                      "error", "measured_calls_per_step", "predicted_calls_per_step", *FIT_COLUMNS)


def bn_collectives(variant: str, channels: int, group: int) -> list[tuple[str, int]]:
    """(collective, bytes) that one BN layer issues per training step on a group of `group` ranks.

    >>> bn_collectives("scratch-sync", 6, 2)
    [('all_gather', 144), ('all_reduce', 48)]
    >>> bn_collectives("nn", 6, 2), bn_collectives("sync", 6, 1)
    ([], [])
    """
    if variant not in SYNCHRONISING or group <= 1:
        return []
    per_channel, extra = BN_FWD_FLOATS[variant]
    return [("all_gather", group * (per_channel * channels + extra) * FLOAT_BYTES),
            ("all_reduce", BN_BWD_FLOATS_PER_CHANNEL * channels * FLOAT_BYTES)]


def bn_comm_us(cost: CostModel, variant: str, channels: Iterable[int], group: int) -> float:
    return sum(collective_us(cost, c, group, nbytes)
               for ch in channels for c, nbytes in bn_collectives(variant, ch, group))


def ddp_buckets(grad_bytes: float) -> list[float]:
    """Sizes of DDP's gradient buckets: [1 MiB, 25 MiB, ..., rest] (one bucket when small).

    >>> ddp_buckets(180_000), [b / 2**20 for b in ddp_buckets(60 * 2**20)]
    ([180000], [1.0, 25.0, 25.0, 9.0])
    """
    if not grad_bytes or math.isnan(grad_bytes):
        return []
    out, left = [min(grad_bytes, DDP_FIRST_BUCKET_BYTES)], grad_bytes - DDP_FIRST_BUCKET_BYTES
    while left > 0:
        out.append(min(left, DDP_BUCKET_BYTES))
        left -= DDP_BUCKET_BYTES
    return out


def buffer_broadcasts(variant: str, channels: Iterable[int]) -> list[int]:
    """Bytes of each broadcast DDP makes of the BN buffers before a forward (one per dtype).

    >>> buffer_broadcasts("nn", [6, 16]), buffer_broadcasts("scratch-sync", [6, 16]), buffer_broadcasts("nn", [])
    ([176, 16], [176], [])
    """
    channels = list(channels)
    floats = [2 * FLOAT_BYTES * sum(channels)] if channels else []
    return floats + ([INT64_BYTES * len(channels)] if channels and variant in COUNTER_VARIANTS else [])


def ddp_us(cost: CostModel, world: int, w: pd.Series) -> float:
    """The exposed share of the gradient all-reduce, plus the broadcasts of the BN buffers."""
    grads = sum(collective_us(cost, "all_reduce", world, b) for b in ddp_buckets(w["grad_bytes"]))
    buffers = sum(collective_us(cost, "broadcast", world, b) for b in buffer_broadcasts(w["variant"], w["channels"]))
    return w["exposed_frac"] * grads + buffers


def calls_per_step(w: pd.Series, world: int, group: int) -> float:
    """Collective calls one step makes: two per synchronised BN layer, DDP's buckets and its buffer
    broadcasts, and the guard's share (a call every g steps)."""
    bn = sum(len(bn_collectives(w["variant"], c, group)) for c in w["channels"])
    if world <= 1:
        return float(bn)
    ddp = len(ddp_buckets(w["grad_bytes"])) + len(buffer_broadcasts(w["variant"], w["channels"]))
    return bn + ddp + 1 / w["guard_every"]


def scope_group(variant: str, scope: str | int, world: int) -> int:
    """Ranks that share BN statistics: 1 for local BN, the world, or min(K, world)."""
    if variant not in SYNCHRONISING:
        return 1
    return world if scope == WORLD else min(int(scope), world)


def scope_label(variant: str, scope: str | int) -> str:
    if variant not in SYNCHRONISING or scope == 1:
        return "local"
    return WORLD if scope == WORLD else f"groups of {scope}"


def point(w: pd.Series, cost: CostModel, world: int, group: int) -> dict:
    """The step model at one world size and BN group size for workload row `w`."""
    compute = float(w["compute_ms"])
    bn = bn_comm_us(cost, w["variant"], w["channels"], group) / 1e3
    ddp = ddp_us(cost, world, w) / 1e3 if world > 1 else 0.0
    harness = collective_us(cost, "all_reduce", world, GUARD_BYTES) / w["guard_every"] / 1e3
    step = compute + bn + ddp + harness
    return {"compute_ms": compute, "bn_comm_ms": bn, "ddp_ms": ddp, "harness_ms": harness, "step_ms": step,
            "examples_per_s": world * w["per_rank_batch"] / (step / 1e3),
            "scaling_efficiency": compute / step, "sync_bn_overhead": bn / (step - bn),
            "calls_per_step": calls_per_step(w, world, group)}


def predict(workloads: pd.DataFrame, cost: CostModel, world_sizes: Iterable[int],
            scopes: Iterable[str | int] = (WORLD,)) -> pd.DataFrame:
    """One row per (workload, BN scope, world size) with PREDICTION_COLUMNS; local variants get
    one scope, "local". Scaling efficiency is examples/s over W × the world-size-1 examples/s."""
    rows = []
    for _, w in workloads.iterrows():
        line_scopes = list(dict.fromkeys(scopes)) if w["variant"] in SYNCHRONISING else [1]
        for scope in line_scopes:
            for world in sorted(set(world_sizes)):
                group = scope_group(w["variant"], scope, world)
                rows.append({**{k: w[k] for k in ("model", "variant", "per_rank_batch")},
                             "bn_scope": scope_label(w["variant"], scope), "world_size": world,
                             "bn_group_size": group, "global_batch": world * w["per_rank_batch"],
                             **point(w, cost, world, group), "cost_model": cost.name})
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))


def validate(runs: pd.DataFrame, workloads: pd.DataFrame, cost: CostModel) -> pd.DataFrame:
    """Each measured run above world size 1 beside the model's prediction from its world-size-1
    workload (same model, variant, per-rank batch, mode, amp). ``error`` = predicted / measured − 1;
    beside it the collective calls a step makes, counted in the run's trace (``calls_per_step``,
    NaN without one) and in the model. Runs without a world-size-1 counterpart are left out."""
    index = workloads.set_index(WORKLOAD_KEY)
    rows = []
    for _, r in runs[runs["world_size"] > 1].iterrows():
        key = tuple(r[k] for k in WORKLOAD_KEY)
        if key not in index.index:
            continue
        w = pd.concat([index.loc[[key]].iloc[0], pd.Series(dict(zip(WORKLOAD_KEY, key)))])
        group = int(r["bn_group_size"]) if r["variant"] in SYNCHRONISING else 1
        p = point(w, cost, int(r["world_size"]), group)
        rows.append({**{k: r[k] for k in ("run", "model", "variant", "per_rank_batch", "world_size", "backend")},
                     "bn_group_size": group, "measured_step_ms": r["step_ms"], "predicted_step_ms": p["step_ms"],
                     **{k: p[k] for k in ("compute_ms", "bn_comm_ms", "ddp_ms", "harness_ms")},
                     "error": p["step_ms"] / r["step_ms"] - 1,
                     "measured_calls_per_step": r.get("calls_per_step", math.nan),
                     "predicted_calls_per_step": p["calls_per_step"]})
    return fit_left_out(pd.DataFrame(rows, columns=[c for c in VALIDATION_COLUMNS if c not in FIT_COLUMNS]))


def fit_left_out(v: pd.DataFrame) -> pd.DataFrame:
    """The reverse direction: what the model leaves out, fitted from the measured runs themselves.

    Runs at one (model, per-rank batch, world size, backend) share one left-out term: a factor on
    the world-size-1 compute (ranks sharing cores or memory bandwidth, stragglers). It is fitted from
    that group's local-BN runs, which have no BN collective to get wrong — the median of (measured −
    DDP − harness) / compute — or, when the group has none, by least squares over all its runs. ``residual`` =
    (measured − fitted) / measured is then what the BN collectives' model does not explain, and
    ``residual_per_call_ms`` that time per collective call of the step (on a shared CPU, ranks wait
    for each other at every call: the straggler cost the model leaves out).
    """
    out = v.copy()
    for col in FIT_COLUMNS:
        out[col] = pd.Series(dtype=object if col == "fitted_from" else float)
    for _, g in out.groupby(["model", "per_rank_batch", "world_size", "backend"], sort=False):
        local = g[~g["variant"].isin(SYNCHRONISING)]
        if not local.empty:
            rest = local["ddp_ms"] + local["harness_ms"]
            factor = float(((local["measured_step_ms"] - rest) / local["compute_ms"]).median())
            source = "local-BN runs"
        else:
            y = g["measured_step_ms"] - g["bn_comm_ms"] - g["ddp_ms"] - g["harness_ms"]
            factor = float((g["compute_ms"] * y).sum() / (g["compute_ms"] ** 2).sum())
            source = "all runs (least squares)"
        fitted = factor * g["compute_ms"] + g["bn_comm_ms"] + g["ddp_ms"] + g["harness_ms"]
        out.loc[g.index, "compute_factor"] = factor
        out.loc[g.index, "fitted_from"] = source
        out.loc[g.index, "fitted_step_ms"] = fitted
        out.loc[g.index, "residual_ms"] = g["measured_step_ms"] - fitted
        out.loc[g.index, "residual"] = (g["measured_step_ms"] - fitted) / g["measured_step_ms"]
        out.loc[g.index, "residual_per_call_ms"] = (g["measured_step_ms"] - fitted) / g["predicted_calls_per_step"]
    return out[list(VALIDATION_COLUMNS)]
