"""Markdown and plots for individual runs: the runs table, training curves, BN parameters.

Numbers come from analysis.load.run_dirs; this module only lays them out and draws. Runs are named by short
labels (analysis.render.labels); the table of run directories maps each label to its directory.
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.render.figures import legend_outside, line_style, save  # noqa: E402
from analysis.render.labels import COLUMN_HEADERS, run_labels  # noqa: E402
from analysis.render.mdtable import NOT_MEASURED, fmt_number, to_markdown  # noqa: E402
from analysis.stats.findings import COINCIDE_FRACTION, curve_gaps, curves_coincide  # noqa: E402
from bench import rundir  # noqa: E402

SUMMARY_COLUMNS = (
    "run", "variant", "world_size", "per_rank_batch", "global_batch", "epochs", "seed", "mode", "amp",
    "train_loss", "train_acc", "test_acc", "examples_per_s", "examples_per_s_per_rank",
    "step_ms_p50", "step_ms_p90", "peak_mem_bytes", "data_wait_share", "device", "status", "data",
    "image_size", "channels_last", "steps",
)
# Configuration columns of the runs table: shown as columns where they differ between runs, and
# in one sentence above the table where every run shares them. The BN group is left to the run
# labels and the BN implementation column: it follows from the variant and the world size.
CONFIG_HEADERS = {c: COLUMN_HEADERS.get(c, c) for c in (
    "model", "world_size", "per_rank_batch", "global_batch", "epochs", "seed", "mode", "amp", "lr",
    "bn_emulate_ranks", "limit_train", "data", "image_size", "channels_last", "steps", "device", "launcher",
    "backend")}
# Metric columns with their header (unit included) and the factor from the stored unit.
# Fixed decimals where rows are compared digit by digit; significant digits elsewhere.
METRIC_FORMATS = {"train loss": ".4f", "train acc (%)": ".2f", "test acc (%)": ".2f"}
METRIC_HEADERS = {
    "train_loss": ("train loss", 1.0), "train_acc": ("train acc (%)", 100.0),
    "test_acc": ("test acc (%)", 100.0), "examples_per_s": ("examples/s", 1.0),
    "examples_per_s_per_rank": ("examples/s/rank", 1.0), "step_ms_p50": ("step p50 (ms)", 1.0),
    "step_ms_p90": ("step p90 (ms)", 1.0), "peak_mem_bytes": ("peak mem (MiB)", 2.0**-20),
    "data_wait_share": ("input wait (% of step)", 100.0),
}
ACCURACY = ("train_acc", "test_acc")  # not measured on synthetic data: shown as n/a, never as 0
CURVES_PNG = "training_curves.png"
BN_PNG = "bn1_scale_shift.png"
MAX_BN_TABLE_RUNS, MAX_BN_TABLE_CHANNELS = 6, 32  # past these the table is too wide: the plot stays


def summary_table(runs: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The report's summary.csv: one row per run (source 'measured'), the `reference` rows after them."""
    measured = runs[list(SUMMARY_COLUMNS)].assign(source="measured")
    return pd.concat([measured, reference], ignore_index=True)[["source", *SUMMARY_COLUMNS]]


def _metrics_view(df: pd.DataFrame, first: dict[str, list], runs: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """`first` columns, then every metric in its display unit; metrics no row has are left out and
    returned by header. In a table of `runs`, an accuracy a run did not measure reads n/a."""
    view = pd.DataFrame(first)
    absent = []
    for col, (header, factor) in METRIC_HEADERS.items():
        if col not in df.columns:
            continue
        values = pd.to_numeric(df[col], errors="coerce").to_numpy() * factor
        if pd.isna(values).all():
            absent.append(header)
        elif runs and col in ACCURACY and pd.isna(values).any():
            view[header] = [NOT_MEASURED if pd.isna(v) else fmt_number(v) for v in values]
        else:
            view[header] = values
    return view, absent


def _config_value(column: str, value) -> object:
    if column in ("limit_train", "steps") and value == 0:
        return "all" if column == "limit_train" else "one pass"
    return value


def _shared_sentence(runs: pd.DataFrame, shared: list[str]) -> str:
    """'Common to all 4 runs: model lenet, ranks 2, ...' for the columns every run shares."""
    parts = []
    for c in shared:
        v = _config_value(c, runs[c].iloc[0])
        if v is None or (isinstance(v, float) and pd.isna(v)):
            continue
        number = isinstance(v, numbers.Real) and not isinstance(v, bool)
        parts.append(f"{CONFIG_HEADERS[c]} {fmt_number(v) if number else v}")
    return f"Common to all {len(runs)} runs: {', '.join(parts)}." if parts else ""


def not_run_section(skipped: pd.DataFrame) -> str:
    """Variants asked for and not started, with the reason (analysis.load.run_dirs.load_skipped); '' when none.

    The folder each record came from is shown only when the report spans several.
    """
    if skipped.empty:
        return ""
    cols = ["variant", "reason"] + (["path"] if skipped["path"].nunique() > 1 else [])
    return "\n".join(["## Not run", "",
                      "Variants the launcher was asked for but did not start, and why.", "",
                      to_markdown(skipped[cols].drop_duplicates()), ""])


def runs_section(runs: pd.DataFrame, labels: Mapping[str, str] | None = None) -> str:
    """Completed runs (configuration columns that differ, then metrics), runs that did not complete
    (apart), and each run's directory and BN implementation. Runs are named by `labels` (run name ->
    label; default analysis.render.labels.run_labels)."""
    labels = labels or run_labels(runs)
    done = runs[runs["status"] == rundir.COMPLETE]
    other = runs[runs["status"] != "complete"]
    config = [c for c in CONFIG_HEADERS if c in runs.columns]
    varying = [c for c in config if runs[c].nunique(dropna=False) > 1]
    md = ["## Runs", "", _shared_sentence(runs, [c for c in config if c not in varying]), "",
          "Throughput is global examples/s over the timed steps (warm-up and profiled steps excluded), "
          "set by the slowest rank; step times are that rank's. Input wait is the input pipeline's share "
          "of those steps: the time the host waited for its next batch (the longest-waiting rank's), which "
          "is part of the step time. Accuracy reads n/a where it is not measured (synthetic data has "
          "random labels).", ""]
    if len(done):
        first = {"run": [labels[r] for r in done["run"]],
                 **{CONFIG_HEADERS[c]: [_config_value(c, v) for v in done[c]] for c in varying}}
        view, absent = _metrics_view(done, first)
        md += [to_markdown(view, METRIC_FORMATS), ""]
        if absent:
            md += [f"Not measured in these runs: {', '.join(absent)}.", ""]
    else:
        md += ["No complete runs.", ""]
    if len(other):
        md += ["### Runs that did not complete (not in any statistic)", "",
               to_markdown(pd.DataFrame({"run": [labels[r] for r in other["run"]],
                                         "status": other["status"].to_numpy(),
                                         "epochs done": other["epochs_done"].to_numpy(),
                                         "failure": other["failure"].to_numpy()})), ""]
    md += ["### Run directories and their BN implementation", "",
           to_markdown(pd.DataFrame({"run": [labels[r] for r in runs["run"]], "directory": runs["run"].to_numpy(),
                                     "BN implementation": runs["bn_description"].to_numpy()})), ""]
    return "\n".join(md)


def reference_section(reference: pd.DataFrame) -> str:
    """The published reference numbers (analysis.load.reference), shown after the runs."""
    view, _ = _metrics_view(reference, {"source": reference["source"].to_numpy(),
                                        "variant": reference["variant"].to_numpy()}, runs=False)
    return "\n".join([
        "### Reference numbers (not measured here)", "", to_markdown(view, METRIC_FORMATS), "",
        "The textbook's numbers are from one run on an unnamed GPU; the H200 rows were measured "
        "with the textbook's loop and with a GPU-resident eager loop (the bar for this suite's loop).", ""])


def plot_curves(metrics: pd.DataFrame, labels: Mapping[str, str], coincide: bool, path: Path) -> None:
    """Loss, train accuracy and test accuracy per epoch, one line per run (the textbook's figure).

    Each run has its own line style and open marker, so runs that coincide still show."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True, layout="constrained")
    for i, (run, m) in enumerate(metrics.groupby("run", sort=True)):
        for ax, col, scale in zip(axes, ("train_loss", "train_acc", "test_acc"), (1, 100, 100)):
            ax.plot(m["epoch"], scale * pd.to_numeric(m[col], errors="coerce"), label=labels.get(run, run),
                    **line_style(i))
    epochs = sorted(metrics["epoch"].unique())
    for ax, title in zip(axes, ("train loss", "train accuracy (%)", "test accuracy (%)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(epochs) <= 12:  # every epoch a tick; never 0.96 … 1.04 around a one-epoch run
            ax.set_xticks(epochs)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    if coincide:
        fig.suptitle(f"All {metrics['run'].nunique()} runs coincide: their lines lie on top of each other")
    legend_outside(fig)
    save(fig, path)


def plot_bn1(bn: pd.DataFrame, labels: Mapping[str, str], path: Path) -> None:
    """Scale (γ) and shift (β) of the first BN layer per channel, one group of bars per run."""
    first = bn[bn["layer"] == bn["layer"].iloc[0]]
    runs = list(dict.fromkeys(first["run"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5), layout="constrained")
    width = 0.8 / max(len(runs), 1)
    for i, run in enumerate(runs):
        r = first[first["run"] == run]
        for ax, col in zip(axes, ("weight", "bias")):
            ax.bar(r["channel"] + (i - (len(runs) - 1) / 2) * width, r[col], width=width,
                   label=labels.get(run, run), color=f"C{i % 10}")
    for ax, title in zip(axes, ("scale γ (weight)", "shift β (bias)")):
        ax.set_title(f"{first['layer'].iloc[0]}: {title}")
        ax.set_xlabel("channel")
        ax.axhline(0, color="black", lw=0.5)
        if first["channel"].nunique() <= MAX_BN_TABLE_CHANNELS:  # a tick per channel; ResNet-50's 64 crowd
            ax.set_xticks(sorted(first["channel"].unique()))
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    legend_outside(fig)
    save(fig, path)


def _gaps_text(metrics: pd.DataFrame) -> str:
    """'the largest gap between runs at any epoch is 0.0004 in train loss, 0.05 points of ...'"""
    words = {"train_loss": ("{} in train loss", 1), "train_acc": ("{} points of train accuracy", 100),
             "test_acc": ("{} points of test accuracy", 100)}
    parts = [words[c][0].format(fmt_number(gap * words[c][1], ".2g")) for c, (gap, _) in curve_gaps(metrics).items()]
    return "the largest gap between runs at any epoch is " + ", ".join(parts)


def curves_section(metrics: pd.DataFrame, bn: pd.DataFrame, labels: Mapping[str, str], out_dir: Path) -> str:
    md = []
    if len(metrics):
        coincide = curves_coincide(metrics)
        plot_curves(metrics, labels, coincide, out_dir / CURVES_PNG)
        md += ["## Training curves", ""]
        if coincide:
            md += [f"**The curves of all {metrics['run'].nunique()} runs coincide**: {_gaps_text(metrics)}, "
                   f"less than {COINCIDE_FRACTION:.0%} of each plot's range, so their lines lie on top of each "
                   "other (each run has its own line style and marker).", ""]
        md += [f"![training curves]({CURVES_PNG})", ""]
    if len(bn):
        md += [bn_section(bn, labels, out_dir)]
    return "\n".join(md)


def bn_section(bn: pd.DataFrame, labels: Mapping[str, str], out_dir: Path) -> str:
    plot_bn1(bn, labels, out_dir / BN_PNG)
    first = bn[bn["layer"] == bn["layer"].iloc[0]]
    md = [f"## First BN layer ({first['layer'].iloc[0]}): learned scale and shift", ""]
    runs = list(dict.fromkeys(first["run"]))
    if len(runs) <= MAX_BN_TABLE_RUNS and first["channel"].nunique() <= MAX_BN_TABLE_CHANNELS:
        wide = pd.DataFrame({"channel": sorted(first["channel"].unique())})
        for sym, col in (("γ", "weight"), ("β", "bias")):
            for run in runs:
                wide[f"{sym} {labels.get(run, run)}"] = first[first["run"] == run].set_index("channel")[col] \
                    .reindex(wide["channel"]).to_numpy()
        md += [to_markdown(wide, ".3f"), ""]
    else:
        md += ["Every channel of every layer is in each run's `bn_params.csv`.", ""]
    return "\n".join(md + [f"![first BN layer]({BN_PNG})", ""])
