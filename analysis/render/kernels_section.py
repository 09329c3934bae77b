"""Figures and the markdown section on kernels and GPU time, drawn from the tables of
:mod:`analysis.transform.gpu_steps`. The report calls :func:`kernel_section`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd

from analysis.render.bn_layers_section import bn_layer_section  # noqa: E402
from analysis.render.figures import legend_outside, save  # noqa: E402
from analysis.render.mdtable import to_markdown  # noqa: E402
from analysis.transform.categories import CATEGORIES  # noqa: E402
from analysis.transform.gpu_steps import add_skew, step_table, step_timeline, summarize_steps  # noqa: E402

COLORS = dict(zip(CATEGORIES + ["idle"], plt.get_cmap("tab20").colors[::2] + ((0.9,) * 3,)))


def category_ms_per_run(steps: pd.DataFrame) -> pd.DataFrame:
    """Median over (rank, step) of each category's time and of the idle rest, in ms; one row per
    run. On GPU runs idle = wall − GPU busy; on CPU-only runs, wall − CPU busy (floored at 0).

    >>> s = pd.DataFrame({"run": ["a"], "wall_us": [10e3], "time_source": ["gpu"],
    ...                   "gpu_busy_us": [4e3], "cpu_us": [9e3],
    ...                   **{f"{c}_time_us": [4e3 if c == "conv" else 0.0] for c in CATEGORIES}})
    >>> category_ms_per_run(s).loc["a", ["conv", "idle"]].tolist()
    [4.0, 6.0]
    """
    busy = steps["gpu_busy_us"].where(steps["time_source"] == "gpu", steps["cpu_us"])
    ms = pd.DataFrame({c: steps[f"{c}_time_us"] / 1e3 for c in CATEGORIES})
    ms["idle"] = ((steps["wall_us"] - busy) / 1e3).clip(lower=0)
    ms["run"] = steps["run"].to_numpy()
    return ms.groupby("run", sort=False).median()


def _bar(ax, series: pd.Series, ylabel: str) -> None:
    ax.set_ylabel(ylabel)
    if series.notna().sum() == 0 or not (series.fillna(0) > 0).any():
        ax.text(0.5, 0.5, "no GPU kernels\n(CPU-only traces)", ha="center", va="center",
                transform=ax.transAxes, color="gray")
        ax.set_xticks([])
        return
    ax.bar(series.index.astype(str), series.to_numpy(), color="tab:blue")
    ax.tick_params(axis="x", rotation=30)


def plot_overview(steps: pd.DataFrame, path: Path) -> None:
    """Stacked step time by category, kernels per step and GPU busy % — one bar per run."""
    cat_ms = category_ms_per_run(steps)
    summary = summarize_steps(steps).groupby("run").median(numeric_only=True).loc[cat_ms.index]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), layout="constrained")
    bottom = pd.Series(0.0, index=cat_ms.index)
    for c in cat_ms.columns:
        if (cat_ms[c] > 0).any():
            axes[0].bar(cat_ms.index, cat_ms[c], bottom=bottom, label=c, color=COLORS[c])
            bottom += cat_ms[c]
    cpu_only = summary["gpu_busy_pct"].isna().all()
    axes[0].set_ylabel("CPU op time per step, median (ms)" if cpu_only else "step time, median (ms)")
    axes[0].tick_params(axis="x", rotation=30)
    _bar(axes[1], summary["all_kernels_per_step"], "kernels per step (median)")
    _bar(axes[2], summary["gpu_busy_pct"], "GPU busy (% of step wall, median)")
    legend_outside(fig, *axes[0].get_legend_handles_labels(), title="category")
    save(fig, path)


def plot_timeline(timeline: pd.DataFrame, title: str, path: Path) -> None:
    """One step: a lane per CPU thread and per GPU stream, boxes coloured by category."""
    lanes = sorted(timeline["lane"].unique(), key=lambda s: (s.startswith("GPU"), s))
    fig, ax = plt.subplots(figsize=(14, 0.6 * len(lanes) + 2.0), layout="constrained")
    for i, lane in enumerate(lanes):
        part = timeline[timeline["lane"] == lane]
        for category, g in part.groupby("category"):
            ax.broken_barh(list(zip(g["start_us"] / 1e3, g["dur_us"] / 1e3)), (i - 0.4, 0.8),
                           color=COLORS.get(category, "k"), label=category)
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_xlabel("time from step start (ms)")
    ax.set_title(title)
    legend_outside(fig, where="below", ncol=8)
    save(fig, path)


SUMMARY_HEADERS = {
    "rank": "rank", "steps": "steps", "wall_us_median": "wall (us)", "wall_us_iqr": "wall IQR (us)",
    "kernels_per_step": "kernels/step", "all_kernels_per_step": "all kernels/step",
    "gpu_busy_pct": "GPU busy (%)", "bn_share": "BN share (%)", "comm_share": "comm share (%)",
    "skew_us_median": "skew (us)",
}


def _summary_view(summary: pd.DataFrame) -> pd.DataFrame:
    """The per-(run, rank) medians with shares in percent and units in the headers."""
    view = summary.assign(bn_share=100 * summary["bn_share"], comm_share=100 * summary["comm_share"])
    return view.rename(columns=SUMMARY_HEADERS)[["run", *SUMMARY_HEADERS.values()]]


def kernel_section(runs: list, out_dir: Path, labels: Mapping[str, str] | None = None,
                   micro: pd.DataFrame | None = None) -> str:
    """Markdown for the report's kernel section, with PNGs saved in ``out_dir``; "" without traced
    runs (analysis.load.trace_dirs.Run, from load_traced_runs). Runs are named by `labels` (run
    directory name → label) where given; `micro` (bench.micro's rows, analysis.load.micro_csv.load_micro)
    gives the per-layer BN table its copy bandwidth."""
    if not runs:
        return ""
    labels = labels or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts, lines = [], ["## Kernels and GPU time", ""]
    for run in runs:
        steps, _ = step_table(run.traces.events)
        parts.append(steps.assign(run=labels.get(run.name, run.name)))
        lines.append(f"- **{labels.get(run.name, run.name)}**: {run.traces.describe_ranks()}")
    steps = add_skew(pd.concat(parts, ignore_index=True), by=["run"])
    plot_overview(steps, out_dir / "kernels_overview.png")
    summary = summarize_steps(steps)
    skew = steps.groupby("run", sort=False)["skew_us"].median().rename("skew_us_median")
    summary = summary.merge(skew, on="run", how="left")
    lines += ["", "Per-step medians; times in microseconds (us). Kernels per step counts "
              "`cuda_runtime` launches (*all kernels/step* adds driver-API launches). GPU busy is "
              "the union of kernel/memcpy/memset time clipped to the step, so it cannot pass 100 %. "
              "BN share is BN time over busy time; comm share is communication time over wall time. "
              "The stacked bars split GPU busy time by category (idle = the rest of the step); for a "
              "CPU-only run they split CPU thread time, summed over threads, which can pass the wall time.",
              "", to_markdown(_summary_view(summary), ".3g"), "",
              "![step time by category, kernels per step, GPU busy](kernels_overview.png)", ""]
    for run in runs:
        rank = min(run.traces.ranks)
        timeline = step_timeline(run.traces.events, rank=rank)
        if timeline.empty:
            continue
        png = f"timeline_{run.name}.png"
        plot_timeline(timeline, f"{labels.get(run.name, run.name)}, rank {rank}: one step (median wall time)",
                      out_dir / png)
        lines += [f"![one step of {labels.get(run.name, run.name)}]({png})", ""]
    return "\n".join(lines + [bn_layer_section(runs, out_dir, labels, micro)])
