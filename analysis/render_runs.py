"""Markdown and plots for individual runs: the summary table, training curves, BN parameters.

Numbers come from analysis.runs; this module only lays them out and draws.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.mdtable import to_markdown  # noqa: E402
from analysis.runs import REFERENCE_ROWS  # noqa: E402

SUMMARY_COLUMNS = (
    "run", "variant", "world_size", "per_rank_batch", "global_batch", "epochs", "seed", "mode", "amp",
    "train_loss", "train_acc", "test_acc", "examples_per_s", "examples_per_s_per_rank",
    "step_ms_p50", "step_ms_p90", "peak_mem_bytes", "device", "status",
)
CURVES_PNG = "training_curves.png"
BN_PNG = "bn1_scale_shift.png"


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The report's summary.csv: one row per run (source 'measured'), reference rows after them."""
    measured = runs[list(SUMMARY_COLUMNS)].assign(source="measured")
    return pd.concat([measured, REFERENCE_ROWS], ignore_index=True)[["source", *SUMMARY_COLUMNS]]


def _fmt_runs(df: pd.DataFrame) -> pd.DataFrame:
    view = df.copy()
    view["peak MiB"] = view.pop("peak_mem_bytes") / 2**20
    return view.rename(columns={"examples_per_s": "examples/s", "examples_per_s_per_rank": "examples/s per rank",
                                "step_ms_p50": "step ms p50", "step_ms_p90": "step ms p90"})


def not_run_section(skipped: pd.DataFrame) -> str:
    """Variants asked for and not started, with the reason (analysis.runs.load_skipped); '' when none.

    The folder each record came from is shown only when the report spans several.
    """
    if skipped.empty:
        return ""
    cols = ["variant", "reason"] + (["path"] if skipped["path"].nunique() > 1 else [])
    return "\n".join(["## Not run", "",
                      "Variants the launcher was asked for but did not start, and why.", "",
                      to_markdown(skipped[cols].drop_duplicates()), ""])


def runs_section(runs: pd.DataFrame) -> str:
    """Completed runs, runs that did not complete (apart), where each BN implementation ran."""
    done = runs[runs["status"] == "complete"]
    other = runs[runs["status"] != "complete"]
    cols = [c for c in SUMMARY_COLUMNS if c not in ("status", "mode", "amp") or runs[c].nunique() > 1]
    md = ["## Runs", "",
          "Throughput is global examples/s over the timed steps (warm-up and profiled steps excluded), "
          "set by the slowest rank; step times are that rank's, in milliseconds.", ""]
    if len(done):
        md += [to_markdown(_fmt_runs(done[cols]), ".4g"), ""]
    else:
        md += ["No complete runs.", ""]
    if len(other):
        md += ["### Runs that did not complete (not in any statistic)", "",
               to_markdown(other[["run", "status", "epochs_done", "failure"]]), ""]
    md += ["### Which BN implementation ran where", "",
           to_markdown(runs[["run", "variant", "world_size", "launcher", "backend", "device",
                             "bn_description"]]), "",
           "### Reference numbers (not measured here)", "",
           to_markdown(REFERENCE_ROWS, ".4g"),
           "", "The textbook's numbers are from one run on an unnamed GPU; the H200 rows were measured "
           "with the textbook's loop and with a GPU-resident eager loop (the bar for this suite's loop).", ""]
    return "\n".join(md)


def plot_curves(metrics: pd.DataFrame, path: Path) -> None:
    """Loss, train accuracy and test accuracy per epoch, one line per run (the textbook's figure)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)
    for (run, variant), m in metrics.groupby(["run", "variant"], sort=True):
        for ax, col in zip(axes, ("train_loss", "train_acc", "test_acc")):
            ax.plot(m["epoch"], m[col], marker=".", label=run)
    for ax, title in zip(axes, ("train loss", "train accuracy", "test accuracy")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bn1(bn: pd.DataFrame, path: Path) -> None:
    """Scale (γ) and shift (β) of the first BN layer per channel, one group of bars per run."""
    first = bn[bn["layer"] == bn["layer"].iloc[0]]
    runs = list(dict.fromkeys(first["run"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    width = 0.8 / max(len(runs), 1)
    for i, run in enumerate(runs):
        r = first[first["run"] == run]
        for ax, col in zip(axes, ("weight", "bias")):
            ax.bar(r["channel"] + i * width, r[col], width=width, label=run)
    for ax, title in zip(axes, ("scale γ (weight)", "shift β (bias)")):
        ax.set_title(f"{first['layer'].iloc[0]}: {title}")
        ax.set_xlabel("channel")
        ax.axhline(0, color="black", lw=0.5)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves_section(metrics: pd.DataFrame, bn: pd.DataFrame, out_dir: Path) -> str:
    md = []
    if len(metrics):
        plot_curves(metrics, out_dir / CURVES_PNG)
        md += ["## Training curves", "", f"![training curves]({CURVES_PNG})", ""]
    if len(bn):
        plot_bn1(bn, out_dir / BN_PNG)
        first = bn[bn["layer"] == bn["layer"].iloc[0]]
        wide = first.pivot_table(index="channel", columns="run", values=["weight", "bias"])
        wide.columns = [f"{v} {run}" for v, run in wide.columns]
        md += [f"## First BN layer ({first['layer'].iloc[0]}): learned scale and shift", "",
               to_markdown(wide.reset_index(), ".3f"), "", f"![first BN layer]({BN_PNG})", ""]
    return "\n".join(md)
