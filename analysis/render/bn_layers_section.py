"""The report's per-layer BN cost: a table per run and a bar chart, from analysis.transform.bn_layers.

analysis.render.kernels_section calls :func:`bn_layer_section` with the runs whose traces it loaded; the
section is empty when no trace holds ``bn/<layer>`` ranges (compiled runs drop them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.render.figures import legend_outside, save  # noqa: E402
from analysis.render.mdtable import fmt_number, to_markdown  # noqa: E402
from analysis.transform.bn_layers import layer_table, layer_times  # noqa: E402
from bench.rundir import BATCH_FREE  # noqa: E402

PNG = "bn_layers.png"
HEADERS = {"layer": "layer", "shape": "input", "dtype": "dtype", "fwd_us": "fwd (us)", "bwd_us": "bwd (us)",
           "step_share": "share of step (%)", "fwd_bytes": "fwd MB", "bwd_bytes": "bwd MB",
           "fwd_gb_per_s": "fwd GB/s", "bwd_gb_per_s": "bwd GB/s",
           "fwd_x_copy": "fwd × copy", "bwd_x_copy": "bwd × copy"}
EXPLAIN = (
    "Per BN layer, in network order: medians over ranks and profiled steps. Forward is the `bn/<layer>` "
    "range (on a GPU: the kernels launched in it; on a CPU-only rank: the range itself), backward the "
    "autograd nodes its forward ops made (matched by sequence number). The share is the layer's forward "
    "plus backward time over the step's wall time. MB and GB/s count the fewest bytes the arithmetic allows "
    "(forward 3 passes over the input: read x twice, write y; backward 5: read dy and x twice, write dx; "
    "`docs/fused.md` counts them), so it is comparable across implementations. "
    "× copy is a copy's GB/s on the same device (bench.micro) over the layer's: 1 would be a kernel that "
    "moves its minimum traffic at copy speed.")
NO_MICRO = ("The × copy columns need a bench.micro CSV measured on the same device (its copy rows): "
            "pass `--micro micro.csv` to analysis.report or analysis.kernels.")


def tables(runs: list, labels: Mapping[str, str], micro: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """Run label -> its per-layer table (analysis.transform.bn_layers.layer_table); runs without BN ranges left out.
    A run whose layers are not batch norm (bench.rundir.BATCH_FREE: gn) says so in ``attrs["noun"]``."""
    out = {}
    for run in runs:
        table = layer_table(layer_times(run.traces.events), micro)
        if len(table):
            table.attrs["noun"] = "norm layers" if run.meta.get("variant") in BATCH_FREE else "BN layers"
            out[labels.get(run.name, run.name)] = table
    return out


def plot_layers(by_run: Mapping[str, pd.DataFrame], path: Path) -> None:
    """Horizontal bars of forward and backward time per layer, one panel per run, layers top to bottom."""
    n_layers = max(len(t) for t in by_run.values())
    fig, axes = plt.subplots(1, len(by_run), figsize=(4.5 * len(by_run) + 2, 0.17 * n_layers + 1.6),
                             squeeze=False, sharey=True, layout="constrained")
    for ax, (label, t) in zip(axes[0], by_run.items()):
        y = range(len(t))
        ax.barh(y, t["fwd_us"] / 1e3, color="tab:blue", label="forward")
        ax.barh(y, t["bwd_us"] / 1e3, left=t["fwd_us"] / 1e3, color="tab:orange", label="backward")
        ax.set_yticks(list(y), t["layer"], fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel("time per step, median (ms)")
        ax.set_title(label, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    legend_outside(fig, title="pass")
    save(fig, path)


def _sentence(label: str, t: pd.DataFrame) -> str:
    fwd_ms, bwd_ms = t["fwd_us"].sum() / 1e3, t["bwd_us"].sum() / 1e3
    where = "GPU kernel time" if (t["time_source"] == "gpu").all() else "CPU time (no GPU in the trace)"
    text = (f"**{label}**: {len(t)} {t.attrs.get('noun', 'BN layers')}, {fmt_number(fwd_ms)} ms forward + {fmt_number(bwd_ms)} ms "
            f"backward per step ({where}), {fmt_number(100 * t['step_share'].sum(), '.3g')} % of the step")
    if t["fwd_gb_per_s"].notna().any():
        text += (f"; median layer {fmt_number(t['fwd_gb_per_s'].median(), '.3g')} GB/s forward, "
                 f"{fmt_number(t['bwd_gb_per_s'].median(), '.3g')} GB/s backward")
    if t["fwd_x_copy"].notna().any():
        fwd_x, bwd_x = (fmt_number(t[c].median(), ".3g") for c in ("fwd_x_copy", "bwd_x_copy"))
        text += f", {fwd_x}× and {bwd_x}× a copy's time"
    return text + "."


def bn_layer_section(runs: list, out_dir: Path, labels: Mapping[str, str] | None = None,
                     micro: pd.DataFrame | None = None) -> str:
    """Markdown for the per-layer BN cost of ``runs`` (analysis.load.trace_dirs.Run), figure into ``out_dir``;
    "" when none of them has ``bn/<layer>`` ranges."""
    by_run = tables(runs, labels or {}, micro)
    if not by_run:
        return ""
    plot_layers(by_run, Path(out_dir) / PNG)
    has_copy = any(t["copy_gb_per_s"].notna().any() for t in by_run.values())
    columns = [c for c in HEADERS if has_copy or not c.endswith("x_copy")]
    lines = ["### BN cost per layer", "", EXPLAIN, ""]
    if not has_copy:
        lines += [NO_MICRO, ""]
    elif any((t["copy_shape"] != t["shape"]).any() for t in by_run.values()):
        lines += ["Where bench.micro measured no copy of a layer's own shape and dtype, the largest copy of "
                  "that dtype stands in (its shape is in `bn_layers.csv` of analysis.kernels).", ""]
    for label, t in by_run.items():
        view = t.assign(step_share=100 * t["step_share"], fwd_bytes=t["fwd_bytes"] / 1e6,
                        bwd_bytes=t["bwd_bytes"] / 1e6)[columns].rename(columns=HEADERS)
        lines += [_sentence(label, t), "", to_markdown(view, ".3g"), ""]
    return "\n".join(lines + [f"![BN time per layer, forward and backward]({PNG})", ""])
