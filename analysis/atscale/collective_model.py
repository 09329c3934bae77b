"""What one all-reduce or all-gather costs on n ranks: a latency–bandwidth model (pure functions).

A cost model is a table of candidate (algorithm, protocol) rows, each valid for a byte range, with

    base_us           fixed cost of a call (launch, set-up)
    intra_hop_us      latency of one step between ranks of one node
    inter_hop_us      latency of one step between nodes (NaN for a one-level model)
    intra_busbw_gbps  bus bandwidth inside a node (nccl-tests' busbw)
    inter_busbw_gbps  bus bandwidth between nodes

A collective of S bytes (nccl-tests' S: the all-reduce buffer, the all-gather output) on n ranks
packed onto nodes of p ranks (m = ceil(n/p) nodes) costs, per row, the latency of its steps plus
its bytes over the slowest level's bandwidth, and the model takes the cheapest row, as NCCL's tuner
does (NVIDIA/nccl src/graph/tuning.cc, whose step structure this follows):

    ring all-reduce   base + (2(n−1) − 2(m−1))·intra_hop + 2(m−1)·inter_hop + S·2(n−1)/n / busbw
    ring all-gather   base + ((n−1) − (m−1))·intra_hop + (m−1)·inter_hop + S·(n−1)/n / busbw
    tree all-reduce   base + 2·((q−1)·intra_hop + ⌈log₂ m⌉·inter_hop) + 2·S / busbw   (q = ranks per node)
    nvls all-reduce   base + intra_hop + S·2(n−1)/n / busbw      (NVLink SHARP: the switch reduces; one node)
    ring broadcast    as the ring all-gather's steps, with S / busbw (nccl-tests' broadcast busbw = algbw),
                      priced with the all-gather rows (bench.collectives times no broadcast)

where busbw is the intra-node one inside a node and min(intra, inter) once the ranks span nodes
(the hierarchical case). A one-level model (a fit to measurements from one host) has no node size:
every step is an intra step. One rank costs nothing: the BN layers skip collectives there.

Fits to a ``bench.collectives`` CSV use the ring rows: per collective and per byte range
(:data:`FIT_EDGES`), the linear least-squares fit, with non-negative coefficients and relative errors,
of ``time = base + steps(n)·hop + S·factor(n)/busbw``. Base and hop can only be told apart with
more than one world size in the data (a one-rank CSV gives the base alone); with one, the whole
fixed latency is put on the hop, so it grows with the ranks (the pessimistic reading), and the
model says so in its notes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import nnls

PARAM_COLUMNS = ("collective", "algorithm", "protocol", "min_bytes", "max_bytes", "base_us", "intra_hop_us",
                 "inter_hop_us", "intra_busbw_gbps", "inter_busbw_gbps")
ALGORITHMS = ("ring", "tree", "nvls")
# Byte-range edges of a fit: NCCL switches protocol (LL, LL128, Simple) around tens of KiB and a few
# MiB; a piecewise fit lets each range have its own latency and bandwidth.
FIT_EDGES = (0, 64 << 10, 4 << 20, math.inf)


@dataclass(frozen=True)
class CostModel:
    """A named cost table; ``gpus_per_node`` None means one level (nothing ever spans nodes)."""
    name: str
    backend: str
    params: pd.DataFrame
    gpus_per_node: int | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default=())


def steps(collective: str, algorithm: str, n: int, per_node: int | None) -> tuple[int, int]:
    """(intra steps, inter steps) of one call on n ranks.

    >>> steps("all_reduce", "ring", 16, 8), steps("all_gather", "ring", 4, None), steps("all_reduce", "tree", 32, 8)
    ((28, 2), (3, 0), (14, 4))
    """
    m = math.ceil(n / per_node) if per_node else 1
    if algorithm == "nvls":
        return 1, 0
    if algorithm == "tree":
        q = min(n, per_node) if per_node else n
        return 2 * (q - 1), 2 * math.ceil(math.log2(m)) if m > 1 else 0
    total, inter = (2 * (n - 1), 2 * (m - 1)) if collective == "all_reduce" else (n - 1, m - 1)  # gather, broadcast
    return total - inter, inter


def bytes_factor(collective: str, algorithm: str, n: int) -> float:
    """Bytes over the bus per byte of S: 2(n−1)/n ring all-reduce, (n−1)/n all-gather, 2 tree."""
    if algorithm == "tree":
        return 2.0
    if collective == "broadcast":
        return 1.0
    return (2.0 if collective == "all_reduce" else 1.0) * (n - 1) / n


def candidate_times(model: CostModel, collective: str, n: int, nbytes: float) -> pd.DataFrame:
    """Every applicable row of the model with its time for this call, in µs (column ``time_us``)."""
    p = model.params
    priced_as = "all_gather" if collective == "broadcast" else collective
    rows = p[((p["collective"] == priced_as) | (p["collective"] == "any"))
             & (p["min_bytes"] <= nbytes) & (nbytes < p["max_bytes"])]
    if priced_as == "all_gather":
        rows = rows[rows["algorithm"] == "ring"]  # NCCL gathers in rings (PAT aside: see docs/scale.md)
    spans = bool(model.gpus_per_node) and n > model.gpus_per_node
    if spans:
        rows = rows[rows["algorithm"] != "nvls"]  # NVLink SHARP reduces inside one NVSwitch domain
    times = []
    for r in rows.itertuples(index=False):
        intra, inter = steps(collective, r.algorithm, n, model.gpus_per_node)
        bw = min(r.intra_busbw_gbps, r.inter_busbw_gbps) if spans else r.intra_busbw_gbps
        hop_inter = r.inter_hop_us if inter else 0.0
        times.append(r.base_us + intra * r.intra_hop_us + inter * hop_inter
                     + nbytes * bytes_factor(collective, r.algorithm, n) / (bw * 1e3))
    return rows.assign(time_us=times)


def collective_us(model: CostModel, collective: str, n: int, nbytes: float) -> float:
    """Predicted time of one call (µs): the cheapest applicable row; 0 on one rank."""
    if n <= 1:
        return 0.0
    t = candidate_times(model, collective, n, nbytes)["time_us"]
    if t.empty or t.isna().all():
        raise ValueError(f"cost model {model.name!r} has no row for {collective} of {nbytes:.0f} bytes")
    return float(t.min())


def _fit_range(points: pd.DataFrame, collective: str, base: float | None) -> tuple[float, float, float]:
    """(base_us, hop_us, busbw_gbps) for the measured points of one collective and byte range;
    `base` None fits it too (points at several world sizes tell it from the hops)."""
    n = points["world_size"].to_numpy()
    s = points["bytes"].to_numpy(dtype=float)
    t = points["time_us_median"].to_numpy(dtype=float)
    hops = np.array([sum(steps(collective, "ring", k, None)) for k in n], dtype=float)
    load = s * np.array([bytes_factor(collective, "ring", k) for k in n]) / 1e3  # (GB/s)⁻¹ → µs
    columns = [hops, load] if base is not None else [np.ones_like(t), hops, load]
    target = t - base if base is not None else t
    coef, _ = nnls(np.column_stack(columns) / t[:, None], target / t)  # relative errors
    fitted_base, hop, inv_bw = (base, *coef) if base is not None else coef
    return float(fitted_base), float(hop), (1.0 / inv_bw if inv_bw > 0 else math.inf)


def _ranges(sizes: np.ndarray) -> list[tuple[float, float]]:
    """FIT_EDGES ranges, each holding at least two measured sizes: a sparser one joins the next up.

    >>> _ranges(np.array([4.0, 8.0, 1e5, 2e5, 1e7]))
    [(0, 65536), (65536, inf)]
    """
    out: list[tuple[float, float]] = []
    start = FIT_EDGES[0]
    for hi in FIT_EDGES[1:]:
        if len(np.unique(sizes[(sizes >= start) & (sizes < hi)])) >= 2:
            out.append((start, hi))
            start = hi
    if start < math.inf:  # the top range had too few sizes of its own
        out = out[:-1] + [(out[-1][0] if out else FIT_EDGES[0], math.inf)]
    return out


def _floor(part: pd.DataFrame, several_sizes: bool) -> float | None:
    """The fixed cost of a call: the median one-rank time of small messages (the latency floor);
    None when the world sizes measured can tell it apart themselves; 0 when nothing can."""
    one = part[part["world_size"] == 1]
    if not one.empty:
        small = one[one["bytes"] < FIT_EDGES[1]]
        return float((small if not small.empty else one)["time_us_median"].median())
    return None if several_sizes else 0.0


def fit(measured: pd.DataFrame, name: str, backend: str) -> CostModel:
    """A one-level ring model fitted to bench.collectives rows (columns world_size, collective,
    bytes, time_us_median). Rows of one rank (the per-call floor) give the base latency."""
    several = measured.loc[measured["world_size"] > 1, "world_size"].nunique() > 1
    rows, floors = [], set()
    for collective, part in measured.groupby("collective"):
        base = _floor(part, several)
        floors.add(base is not None and base > 0)
        multi = part[part["world_size"] > 1]
        for lo, hi in _ranges(multi["bytes"].to_numpy(dtype=float)):
            pts = multi[(multi["bytes"] >= lo) & (multi["bytes"] < hi)]
            if pts.empty:
                continue
            b, hop, bw = _fit_range(pts, collective, base)
            rows.append({"collective": collective, "algorithm": "ring", "protocol": f"fit {lo:.0f}+",
                         "min_bytes": lo, "max_bytes": hi, "base_us": b, "intra_hop_us": hop,
                         "inter_hop_us": math.nan, "intra_busbw_gbps": bw, "inter_busbw_gbps": math.nan})
    if not rows:
        raise ValueError(f"{name}: no measurement on more than one rank to fit a collective's cost to")
    sizes = sorted(measured["world_size"].unique())
    notes = [f"fitted to {len(measured)} measurements of {backend} at world size(s) {', '.join(map(str, sizes))}; "
             "one level: every rank is as close as the measured ones were"]
    if not several and not any(floors):
        notes.append("one world size measured: the fixed latency of a call is put on its steps, so it "
                     "grows with the ranks (pessimistic); add a one-rank CSV to separate the two")
    params = pd.DataFrame(rows, columns=list(PARAM_COLUMNS))
    return CostModel(name, backend, params, None, "measured", tuple(notes))


def preset_model(name: str, preset: dict, source_file: str, gpus_per_node: int | None = None) -> CostModel:
    """A preset as written in `source_file` (analysis.load.scale_files.read_preset) as a cost model;
    `gpus_per_node` overrides the preset's node size."""
    params = pd.DataFrame(preset["rows"]).assign(min_bytes=0.0, max_bytes=math.inf)
    per_node = gpus_per_node or int(preset["gpus_per_node"])
    notes = (f"preset {name}: {preset['description']}; {per_node} GPUs per node"
             + (" (set by --gpus-per-node)" if gpus_per_node else ""),
             f"parameters from {', '.join(preset['sources'])} (cited in {source_file})")
    return CostModel(name, preset["backend"], params[list(PARAM_COLUMNS)], per_node, source_file, notes)
