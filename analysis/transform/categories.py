"""What each traced event is doing: one category per CPU op and per GPU activity.

All rules live in :data:`RULES`, in precedence order (first match wins). Each rule gives a regex for
GPU kernel names and one for CPU op / ``record_function`` names (case-insensitive ``re.search``).

GPU activity is classified in this order:

1. ``gpu_memcpy`` / ``gpu_memset`` events are ``memcpy``; NCCL kernels are ``comm``.
2. Launch context: a kernel launched (its ``cuda_runtime``/``cuda_driver`` call, matched by
   correlation) inside a CPU range of category comm, bn_bwd, bn_fwd or optimizer on the same thread
   takes that category (in that precedence). This is how from-scratch BN is found: the training code
   wraps every BN forward in ``record_function("bn/<layer>")``, so the mean/var/elementwise kernels it
   launches count as ``bn_fwd``.
3. Otherwise the kernel-name rules.

BN backward: an autograd node (``autograd::engine::evaluate_function: ...``) is ``bn_bwd`` when its
name says batch-norm backward, or when its ``Sequence number`` equals that of a forward op run inside
a ``bn/`` range (the autograd engine gives a node the sequence number of the forward op that made
it). Kernels launched inside such a node are ``bn_bwd`` by rule 2.

CPU ops (``cpu_op``) that match no rule are ``other``; ``record_function`` ranges
(``user_annotation``) that match no rule are wrappers (``train_step``, ``DistributedDataParallel.forward``)
and get no category, so they add no CPU time of their own.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis.transform.events import CPU_CATS, GPU_CATS, LAUNCH_CATS, map_names

# (category, kernel-name regex, CPU-op-name regex); first match wins.
RULES: list[tuple[str, str, str]] = [
    ("comm", r"nccl",
     r"^(gloo|nccl|mpi|ucc):|^c10d::|record_param_comms|^(all_reduce|all_gather|broadcast|"
     r"reduce_scatter|all_to_all)"),
    ("memcpy", r"^memcpy|^memset", r"^aten::(copy_|to|_to_copy)$"),
    ("bn_bwd", r"bn_bw|batch_?norm.*backward|welford.*backward",
     r"batch_?norm.*backward"),
    ("bn_fwd", r"bn_fw|batch_?norm|welford", r"^bn/|batch_?norm"),
    ("optimizer", r"multi_tensor_apply|sgd|adam|adagrad|lamb|_foreach",
     r"^Optimizer\.|_foreach_|^aten::(sgd|adam)"),
    ("conv", r"conv|fprop|dgrad|wgrad|nchwToNhwc|nhwcToNchw|scalePackedTensor|cudnn",
     r"conv"),
    ("gemm", r"gemm|gemv|cublas|cutlass|splitKreduce|scal_kernel",
     r"^aten::(addmm|mm|bmm|matmul|linear|baddbmm)$"),
    ("reduction", r"reduce|softmax|nll_loss|cub::|scan|norm|moments|_sum|mean",
     r"^aten::(sum|mean|var|std|max|min|amax|amin|norm|softmax|_softmax|log_softmax|"
     r"_log_softmax|nll_loss.*|cross_entropy_loss|var_mean|std_mean)$"),
    ("elementwise", r"elementwise|sigmoid|relu|gelu|tanh|activation|pool|copy|fill|gather|index|"
     r"cat|scatter|permute", r"^aten::"),
]
OTHER = "other"
CATEGORIES = [name for name, _, _ in RULES] + [OTHER]
# GPU kernels take these categories from the CPU range they were launched in, in this precedence.
CONTEXT_CATEGORIES = ["comm", "bn_bwd", "bn_fwd", "optimizer"]
AUTOGRAD_NODE = "autograd::engine::evaluate_function"
NODE_NAME = re.compile(r"^\w+Backward\d*$")  # an autograd node's own range: DivBackward0, ...
BN_RANGE = re.compile(r"^bn/")
NCCL = re.compile(r"nccl", re.IGNORECASE)

_KERNEL_RULES = [(c, re.compile(k, re.IGNORECASE)) for c, k, _ in RULES]
_CPU_RULES = [(c, re.compile(p, re.IGNORECASE)) for c, _, p in RULES]


def category_of_kernel_name(name: str) -> str:
    """``'void cudnn::bn_fw_tr_1C11_kernel_NCHW<...>'`` → ``'bn_fwd'``; unmatched → ``'other'``."""
    return next((c for c, rx in _KERNEL_RULES if rx.search(name)), OTHER)


def category_of_cpu_name(name: str) -> str | None:
    """``'gloo:all_gather'`` → ``'comm'``, ``'bn/bn1'`` → ``'bn_fwd'``; unmatched → None."""
    if name.startswith(AUTOGRAD_NODE):
        name = name.split(":", 3)[-1].strip()  # the node's own name, e.g. "NativeBatchNormBackward0"
    return next((c for c, rx in _CPU_RULES if rx.search(name)), None)


def inside(rank: np.ndarray, tid: np.ndarray, ts: np.ndarray, ranges: pd.DataFrame) -> np.ndarray:
    """For each point (rank, tid, ts): does a range of ``ranges`` (rank, tid, start_us, end_us) hold it?

    >>> r = pd.DataFrame({"rank": [0], "tid": [7], "start_us": [10.0], "end_us": [20.0]})
    >>> inside(np.array([0, 0, 0]), np.array([7, 7, 8]), np.array([15.0, 25.0, 15.0]), r).tolist()
    [True, False, False]
    """
    out = np.zeros(len(ts), dtype=bool)
    for (r, t), g in ranges.groupby(["rank", "tid"], sort=False):
        sel = np.flatnonzero((rank == r) & (tid == t))
        if not len(sel):
            continue
        g = g.sort_values("start_us")
        starts = g["start_us"].to_numpy()
        reach = np.maximum.accumulate(g["end_us"].to_numpy())  # nested ranges: furthest end so far
        i = np.searchsorted(starts, ts[sel], side="right") - 1
        out[sel] = (i >= 0) & (ts[sel] < reach[np.maximum(i, 0)])
    return out


def _ranges(events: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    e = events.loc[mask, ["rank", "tid", "ts_us", "dur_us"]]
    return pd.DataFrame({"rank": e["rank"].to_numpy(), "tid": e["tid"].to_numpy(),
                         "start_us": e["ts_us"].to_numpy(),
                         "end_us": (e["ts_us"] + e["dur_us"]).to_numpy()})


def classify_cpu(events: pd.DataFrame) -> np.ndarray:
    """Category of each CPU event (object array; None for non-CPU events and unmatched wrappers)."""
    cat = events["cat"].to_numpy()
    is_cpu = events["cat"].isin(CPU_CATS).to_numpy()
    names = events["name"]
    out = np.full(len(events), None, dtype=object)
    out[is_cpu] = map_names(names[is_cpu], category_of_cpu_name)
    step_ranges = map_names(names, lambda n: n.startswith("ProfilerStep#")).astype(bool)
    out[step_ranges] = None
    unmatched_op = is_cpu & (cat == "cpu_op") & pd.isna(out)
    out[unmatched_op] = OTHER
    out[_bn_backward_nodes(events, is_cpu)] = "bn_bwd"
    return out


def containing(rank: np.ndarray, tid: np.ndarray, ts: np.ndarray, ranges: pd.DataFrame) -> np.ndarray:
    """For each point, the row position in ``ranges`` of the range on its (rank, tid) that holds it, or -1.
    Ranges of one thread must not nest (BN layers' ranges do not).

    >>> r = pd.DataFrame({"rank": [0, 0], "tid": [7, 7], "start_us": [10.0, 30.0], "end_us": [20.0, 40.0]})
    >>> containing(np.array([0, 0, 0]), np.array([7, 7, 7]), np.array([15.0, 25.0, 35.0]), r).tolist()
    [0, -1, 1]
    """
    out = np.full(len(ts), -1, dtype=np.int64)
    for (r, t), g in ranges.groupby(["rank", "tid"], sort=False):
        sel = np.flatnonzero((rank == r) & (tid == t))
        if not len(sel):
            continue
        g = g.sort_values("start_us")
        i = np.searchsorted(g["start_us"].to_numpy(), ts[sel], side="right") - 1
        hit = (i >= 0) & (ts[sel] < g["end_us"].to_numpy()[np.maximum(i, 0)])
        out[sel[hit]] = np.asarray(g.index)[i[hit]]
    return out


def bn_layer_of(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(forward, backward): object arrays naming, for each event, the BN layer it works for, else None.

    forward: CPU events inside a ``bn/<layer>`` range (the range itself included) → ``<layer>``.
    backward: autograd nodes (the engine's wrapper and the node's own range) whose sequence number is
    that of a forward op inside ``bn/<layer>`` → ``<layer>``. GPU work follows its launch (analysis.transform.bn_layers).
    """
    names = events["name"]
    is_cpu = events["cat"].isin(CPU_CATS).to_numpy()
    bn_range = is_cpu & map_names(names, lambda n: bool(BN_RANGE.match(n))).astype(bool)
    fwd = np.full(len(events), None, dtype=object)
    bwd = np.full(len(events), None, dtype=object)
    if not bn_range.any():
        return fwd, bwd
    rank, tid, ts = (events[c].to_numpy() for c in ("rank", "tid", "ts_us"))
    ranges = _ranges(events, bn_range).reset_index(drop=True)
    layers = np.asarray([n[len("bn/"):] for n in names[bn_range].astype(str)], dtype=object)
    where = np.full(len(events), -1, dtype=np.int64)
    where[is_cpu] = containing(rank[is_cpu], tid[is_cpu], ts[is_cpu], ranges)
    fwd[where >= 0] = layers[where[where >= 0]]
    # The engine's wrapper range and the node's own range (e.g. "DivBackward0") share its number.
    is_node = map_names(names, lambda n: n.startswith(AUTOGRAD_NODE) or bool(NODE_NAME.match(n))).astype(bool)
    seq = events["seq"].to_numpy()
    made = is_cpu & (seq >= 0) & ~is_node & (where >= 0)
    layer_of_seq = pd.Series(fwd[made], index=pd.MultiIndex.from_arrays([rank[made], seq[made]]))
    layer_of_seq = layer_of_seq[~layer_of_seq.index.duplicated()]
    node = is_cpu & (seq >= 0) & is_node
    bwd[node] = layer_of_seq.reindex(pd.MultiIndex.from_arrays([rank[node], seq[node]])).to_numpy()
    bwd[pd.isna(bwd)] = None
    return fwd, bwd


def _bn_backward_nodes(events: pd.DataFrame, is_cpu: np.ndarray) -> np.ndarray:
    """Autograd nodes whose sequence number is that of a forward op run inside a ``bn/`` range."""
    return bn_layer_of(events)[1] != None  # noqa: E711 -- elementwise on an object array


def classify(events: pd.DataFrame) -> pd.Series:
    """Category of every event as a categorical Series (NaN for launches and wrapper ranges)."""
    cpu_category = classify_cpu(events)
    out = cpu_category.copy()
    is_gpu = events["cat"].isin(GPU_CATS).to_numpy()
    if is_gpu.any():
        out[is_gpu] = _classify_gpu(events, is_gpu, cpu_category)
    return pd.Series(pd.Categorical(out, categories=CATEGORIES), index=events.index)


def _classify_gpu(events: pd.DataFrame, is_gpu: np.ndarray, cpu_category: np.ndarray) -> np.ndarray:
    gpu = events.loc[is_gpu, ["rank", "cat", "name", "correlation"]]
    by_name = map_names(gpu["name"], category_of_kernel_name)
    result = by_name.copy()
    decided = (gpu["cat"].to_numpy() != "kernel") | (by_name == "comm")
    result[gpu["cat"].to_numpy() != "kernel"] = "memcpy"

    is_launch = events["cat"].isin(LAUNCH_CATS).to_numpy()
    launches = events.loc[is_launch, ["rank", "correlation", "tid", "ts_us"]]
    launches = launches.drop_duplicates(["rank", "correlation"])
    at = gpu[["rank", "correlation"]].merge(launches, on=["rank", "correlation"], how="left")
    has_launch = at["ts_us"].notna().to_numpy()
    l_rank, l_tid = at["rank"].to_numpy(), at["tid"].fillna(-1).to_numpy(np.int64)
    l_ts = at["ts_us"].fillna(-np.inf).to_numpy()
    for category in CONTEXT_CATEGORIES:
        todo = ~decided & has_launch
        if not todo.any():
            break
        ranges = _ranges(events, cpu_category == category)
        if ranges.empty:
            continue
        hit = np.zeros(len(gpu), dtype=bool)
        hit[todo] = inside(l_rank[todo], l_tid[todo], l_ts[todo], ranges)
        result[hit] = category
        decided |= hit
    return result
