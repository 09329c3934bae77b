"""Markdown, CSVs and plots for an experiment matrix (many seeds / world sizes / batches).

All numbers come from analysis/stats.py; this module only lays them out and draws.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.labels import COLUMN_HEADERS  # noqa: E402
from analysis.mdtable import fmt_number, to_markdown  # noqa: E402
from analysis.plotting import legend_outside, save  # noqa: E402
from analysis.stats import (  # noqa: E402
    CONFIG_KEY, PAIR_KEY, SCALING_LINE_KEY, accuracy_vs_per_rank_batch, group_stats, pairwise, scaling_table,
)

CSV_NAMES = {"groups": "sweep_groups.csv", "pairwise": "sweep_pairwise.csv",
             "scaling": "sweep_scaling.csv", "accuracy": "sweep_accuracy_vs_batch.csv"}
PNG_NAMES = {"scaling": "sweep_scaling.png", "accuracy": "sweep_accuracy_vs_batch.png",
             "bars": "sweep_variants.png"}

INTERVALS_MD = (
    "Intervals are 95 % Student-t intervals over seeds (mean ± t₀.₉₇₅,ₙ₋₁·s/√n). Differences "
    "between variants (b − a) use Welch's t interval with Welch–Satterthwaite df; ratios "
    "(throughput, step time, memory, speedup) use a delta-method interval on the log scale with "
    "Welch–Satterthwaite df. 'within noise' means the interval contains 0 (difference) or 1 "
    "(ratio). Only runs with status 'complete' enter; configurations are never pooled.")


def _varying(df: pd.DataFrame, cols, keep=("variant",)) -> list[str]:
    """Columns among `cols` that take more than one value in df, plus `keep`."""
    return [c for c in cols if c in keep or df[c].nunique(dropna=False) > 1]


def _label(row: dict, cols) -> str:
    return ", ".join(str(row[c]) if c == "variant" else f"{c}={row[c]}" for c in cols)


def _interval(mean: pd.Series, lo: pd.Series, hi: pd.Series, fmt: str) -> list[str]:
    """'mean [low, high]' per row through mdtable.fmt_number (`fmt` '.Nf'), the mean alone without
    an interval, '–' without a mean."""
    out = []
    for m, a, b in zip(mean, lo, hi):
        if pd.isna(a):
            out.append(fmt_number(m, fmt))
        else:
            out.append(f"{fmt_number(m, fmt)} [{fmt_number(a, fmt)}, {fmt_number(b, fmt)}]")
    return out


def _errorbar(ax, x, mean, lo, hi, **kw) -> None:
    yerr = [(mean - lo).fillna(0).clip(lower=0), (hi - mean).fillna(0).clip(lower=0)]
    ax.errorbar(x, mean, yerr=yerr, marker="o", capsize=3, **kw)


def _plot_lines(df: pd.DataFrame, x: str, metric: str, scale: float, label_cols: list[str],
                xlabel: str, ylabel: str, title: str, path: Path, log2_x: bool = False) -> None:
    """One line per label group: `metric` mean with its 95 % CI as error bars, against `x`."""
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    for _, line in df.groupby(label_cols, dropna=False, sort=True):
        line = line.sort_values(x)
        _errorbar(ax, line[x], scale * line[f"{metric}_mean"], scale * line[f"{metric}_ci95_low"],
                  scale * line[f"{metric}_ci95_high"], label=_label(line.iloc[0].to_dict(), label_cols))
    if log2_x:
        ax.set_xscale("log", base=2)
    else:
        ax.set_xticks(sorted(df[x].unique()))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend_outside(fig)
    save(fig, path, dpi=120)


def _plot_scaling(scaling: pd.DataFrame, path: Path) -> None:
    _plot_lines(scaling, "world_size", "examples_per_s", 1.0, _varying(scaling, SCALING_LINE_KEY),
                "world size (ranks)", "examples/s (global)",
                "Throughput vs world size (fixed per-rank batch), 95 % CI", path)


def _plot_accuracy(acc: pd.DataFrame, path: Path) -> None:
    label_cols = [c for c in _varying(acc, CONFIG_KEY) if c not in ("per_rank_batch", "global_batch")]
    _plot_lines(acc, "per_rank_batch", "test_acc", 100.0, label_cols, "per-rank batch (examples)",
                "test accuracy (%)", "Test accuracy vs per-rank batch, 95 % CI", path, log2_x=True)


def _plot_bars(groups: pd.DataFrame, path: Path) -> None:
    label_cols = [c for c in _varying(groups, CONFIG_KEY) if c != "global_batch"]
    labels = [_label(r, label_cols) for r in groups.to_dict("records")]
    variants = list(dict.fromkeys(groups["variant"]))
    colors = [f"C{variants.index(v) % 10}" for v in groups["variant"]]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.6 * len(groups) + 4), 4.5), layout="constrained")
    for ax, metric, scale, ylabel in ((axes[0], "test_acc", 100, "test accuracy (%)"),
                                      (axes[1], "examples_per_s", 1, "examples/s (global)")):
        mean = scale * groups[f"{metric}_mean"]
        lo, hi = scale * groups[f"{metric}_ci95_low"], scale * groups[f"{metric}_ci95_high"]
        yerr = [(mean - lo).fillna(0).clip(lower=0), (hi - mean).fillna(0).clip(lower=0)]
        ax.bar(range(len(groups)), mean, yerr=yerr, capsize=3, color=colors)
        ax.set_xticks(range(len(groups)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(ylabel)
    fig.suptitle("Per configuration, 95 % CI (no error bar = 1 seed)")
    save(fig, path, dpi=120)


def _has_something_to_say(groups: pd.DataFrame) -> bool:
    return groups["n_seeds"].max() > 1 or groups.loc[groups["n_seeds"] > 0, "world_size"].nunique() > 1


def sweep_section(runs_df: pd.DataFrame, out_dir: str | Path) -> str:
    """Markdown section for a sweep; writes sweep_*.csv and sweep_*.png into out_dir.

    Returns '' (and writes nothing) when every configuration has at most one complete run and
    there is a single world size: there is no spread or scaling to report. Image links in the
    markdown are relative to out_dir.
    """
    groups = group_stats(runs_df)
    if groups.empty or not _has_something_to_say(groups):
        return ""
    for m in ("test_acc", "examples_per_s"):
        if f"{m}_mean" not in groups.columns:
            raise KeyError(f"runs table lacks metric column {m!r}")
    pairs = pairwise(runs_df)
    scaling = scaling_table(groups)
    acc = accuracy_vs_per_rank_batch(groups)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in (("groups", groups), ("pairwise", pairs), ("scaling", scaling),
                        ("accuracy", acc)):
        table.to_csv(out_dir / CSV_NAMES[name], index=False)
    done = groups[groups["n_seeds"] > 0]
    _plot_scaling(scaling, out_dir / PNG_NAMES["scaling"])
    _plot_accuracy(acc, out_dir / PNG_NAMES["accuracy"])
    _plot_bars(done, out_dir / PNG_NAMES["bars"])

    n_excluded = int(groups["n_incomplete"].sum())
    md = ["## Sweep statistics", "", INTERVALS_MD,
          f"{len(groups)} configurations, {int(groups['n_seeds'].sum())} complete runs, "
          f"runs excluded (status not complete): {n_excluded}.", ""]

    cols = _varying(groups, CONFIG_KEY)
    view = groups[cols + ["n_seeds", "n_incomplete"]].copy()
    view["test acc (%)"] = _interval(100 * groups["test_acc_mean"], 100 * groups["test_acc_ci95_low"],
                                     100 * groups["test_acc_ci95_high"], ".2f")
    view["examples/s (global)"] = _interval(groups["examples_per_s_mean"],
                                            groups["examples_per_s_ci95_low"],
                                            groups["examples_per_s_ci95_high"], ".0f")
    view["note"] = groups["note"]
    md += ["### Configurations (mean [95 % CI])", "", to_markdown(view.rename(columns=COLUMN_HEADERS)), "",
           f"![test accuracy and examples/s per configuration]({PNG_NAMES['bars']})", ""]

    if not pairs.empty:
        pcols = _varying(pairs, list(PAIR_KEY), keep=())
        shown = pairs[pairs["metric"].isin(["test_acc", "examples_per_s", "step_ms_p50"])].copy()
        shown["estimate [95 % CI]"] = [
            "–" if pd.isna(e) else
            (f"{e:.3f}× [{lo:.3f}, {hi:.3f}]" if c == "ratio" else
             f"{100 * e:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]" if m.endswith("_acc") else
             f"{e:+.4f} [{lo:+.4f}, {hi:+.4f}]")
            for e, lo, hi, c, m in zip(shown["estimate"], shown["ci95_low"], shown["ci95_high"],
                                       shown["comparison"], shown["metric"])]
        md += ["### Variant comparisons (b − a, or b / a for ratios)", "",
               to_markdown(shown[pcols + ["metric", "variant_a", "variant_b", "n_a", "n_b",
                                          "estimate [95 % CI]", "verdict"]].rename(columns=COLUMN_HEADERS)), ""]

    if scaling["world_size"].nunique() > 1:
        scols = _varying(scaling, SCALING_LINE_KEY)
        sview = scaling[scols + ["world_size", "n_seeds", "examples_per_s_mean"]].copy()
        sview["speedup"] = _interval(scaling["speedup"], scaling["speedup_ci95_low"],
                                     scaling["speedup_ci95_high"], ".2f")
        sview["efficiency"] = _interval(scaling["efficiency"], scaling["efficiency_ci95_low"],
                                        scaling["efficiency_ci95_high"], ".2f")
        sview["note"] = scaling["note"]
        md += ["### Weak scaling (fixed per-rank batch; examples/s, global)", "",
               to_markdown(sview.rename(columns=COLUMN_HEADERS), ".0f"), "",
               f"![examples/s vs world size]({PNG_NAMES['scaling']})", ""]

    acols = _varying(acc, CONFIG_KEY)
    aview = acc[acols + ["effective_bn_batch", "n_seeds"]].copy()
    aview["test acc (%)"] = _interval(100 * acc["test_acc_mean"], 100 * acc["test_acc_ci95_low"],
                                      100 * acc["test_acc_ci95_high"], ".2f")
    md += ["### Test accuracy vs batch (effective BN batch = examples per BN statistic)", "",
           to_markdown(aview.rename(columns=COLUMN_HEADERS), ".4g"), "",
           f"![test accuracy vs per-rank batch]({PNG_NAMES['accuracy']})", ""]
    return "\n".join(md)
