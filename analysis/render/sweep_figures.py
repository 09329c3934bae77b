"""The sweep section's plots: scaling and accuracy lines, and per-configuration bars, with 95 % CIs.

Numbers come from analysis.stats.seed_groups / analysis.stats.weak_scaling; this module only draws.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.render.figures import legend_outside, save  # noqa: E402
from analysis.stats.seed_groups import CONFIG_KEY  # noqa: E402
from analysis.stats.weak_scaling import SCALING_LINE_KEY  # noqa: E402


def varying(df: pd.DataFrame, cols, keep=("variant",)) -> list[str]:
    """Columns among `cols` that take more than one value in df, plus `keep`."""
    return [c for c in cols if c in keep or df[c].nunique(dropna=False) > 1]


def label(row: dict, cols) -> str:
    return ", ".join(str(row[c]) if c == "variant" else f"{c}={row[c]}" for c in cols)


def _yerr(mean: pd.Series, lo: pd.Series, hi: pd.Series) -> list[pd.Series]:
    return [(mean - lo).fillna(0).clip(lower=0), (hi - mean).fillna(0).clip(lower=0)]


def _plot_lines(df: pd.DataFrame, x: str, metric: str, scale: float, label_cols: list[str],
                xlabel: str, ylabel: str, title: str, path: Path, log2_x: bool = False) -> None:
    """One line per label group: `metric` mean with its 95 % CI as error bars, against `x`."""
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    for _, line in df.groupby(label_cols, dropna=False, sort=True):
        line = line.sort_values(x)
        mean = scale * line[f"{metric}_mean"]
        ax.errorbar(line[x], mean, yerr=_yerr(mean, scale * line[f"{metric}_ci95_low"],
                                              scale * line[f"{metric}_ci95_high"]),
                    marker="o", capsize=3, label=label(line.iloc[0].to_dict(), label_cols))
    if log2_x:
        ax.set_xscale("log", base=2)
    else:
        ax.set_xticks(sorted(df[x].unique()))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend_outside(fig)
    save(fig, path, dpi=120)


def plot_scaling(scaling: pd.DataFrame, path: Path) -> None:
    _plot_lines(scaling, "world_size", "examples_per_s", 1.0, varying(scaling, SCALING_LINE_KEY),
                "world size (ranks)", "examples/s (global)",
                "Throughput vs world size (fixed per-rank batch), 95 % CI", path)


def plot_accuracy(acc: pd.DataFrame, path: Path) -> None:
    label_cols = [c for c in varying(acc, CONFIG_KEY) if c not in ("per_rank_batch", "global_batch")]
    _plot_lines(acc, "per_rank_batch", "test_acc", 100.0, label_cols, "per-rank batch (examples)",
                "test accuracy (%)", "Test accuracy vs per-rank batch, 95 % CI", path, log2_x=True)


def plot_bars(groups: pd.DataFrame, path: Path) -> None:
    label_cols = [c for c in varying(groups, CONFIG_KEY) if c != "global_batch"]
    labels = [label(r, label_cols) for r in groups.to_dict("records")]
    variants = list(dict.fromkeys(groups["variant"]))
    colors = [f"C{variants.index(v) % 10}" for v in groups["variant"]]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.6 * len(groups) + 4), 4.5), layout="constrained")
    for ax, metric, scale, ylabel in ((axes[0], "test_acc", 100, "test accuracy (%)"),
                                      (axes[1], "examples_per_s", 1, "examples/s (global)")):
        mean = scale * groups[f"{metric}_mean"]
        yerr = _yerr(mean, scale * groups[f"{metric}_ci95_low"], scale * groups[f"{metric}_ci95_high"])
        ax.bar(range(len(groups)), mean, yerr=yerr, capsize=3, color=colors)
        ax.set_xticks(range(len(groups)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(ylabel)
    fig.suptitle("Per configuration, 95 % CI (no error bar = 1 seed)")
    save(fig, path, dpi=120)
