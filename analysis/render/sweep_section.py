"""Markdown and CSVs for an experiment matrix (many seeds / world sizes / batches); plots in sweep_figures.

All numbers come from analysis.stats.seed_groups, analysis.stats.variant_pairs and analysis.stats.weak_scaling (re-exported by
analysis.stats); this module only lays them out.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.render import sweep_figures
from analysis.render.comparison_views import SHOWN_METRICS, comparisons_view
from analysis.render.labels import COLUMN_HEADERS
from analysis.render.mdtable import NOT_MEASURED, fmt_number, to_markdown
from analysis.render.sweep_figures import varying
from analysis.stats.seed_groups import CONFIG_KEY, group_stats
from analysis.stats.step_times import run_median_cis, slowest_rank_samples
from analysis.stats.variant_pairs import PAIR_KEY, WITHIN_RUN, pairwise
from analysis.stats.weak_scaling import SCALING_LINE_KEY, accuracy_vs_per_rank_batch, scaling_table

CSV_NAMES = {"groups": "sweep_groups.csv", "pairwise": "sweep_pairwise.csv",
             "scaling": "sweep_scaling.csv", "accuracy": "sweep_accuracy_vs_batch.csv"}
PNG_NAMES = {"scaling": "sweep_scaling.png", "accuracy": "sweep_accuracy_vs_batch.png",
             "bars": "sweep_variants.png"}

INTERVALS_MD = (
    "Intervals are 95 % Student-t intervals over seeds, each built in its metric's own range: "
    "accuracy on the logit scale (so it stays within 0–100 %), examples/s, step times, loss and memory "
    "on the log scale around the mean (so they stay above zero). Differences between variants (b − a) "
    "use Welch's t interval with Welch–Satterthwaite df (accuracy differences kept within ±100 points); "
    "ratios (throughput, step time, memory, speedup) use a delta-method interval on the log scale with "
    "Welch–Satterthwaite df. 'within noise' means the interval contains 0 (difference) or 1 (ratio). "
    "Only runs with status 'complete' enter; configurations are never pooled. Where both runs of a "
    "step-time comparison are single seeds, the interval is a block bootstrap of their measured steps, "
    "marked 'within run': it covers the noise within those two runs only, not run-to-run noise. "
    "Every estimator and its assumptions: docs/statistics.md.")
POWER_MD = (
    "*smallest resolvable*: the smallest true difference a Welch t test at 5 % (two-sided) finds with "
    "80 % power at the spread observed, with the seeds run (accuracy in points, ratios in percent).")


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


def _step_cells(groups: pd.DataFrame, within: pd.DataFrame) -> list[str]:
    """p50 step ms [95 % CI]: over seeds, or within the one run for a one-seed configuration."""
    over_seeds = _interval(groups["step_ms_p50_mean"], groups["step_ms_p50_ci95_low"],
                           groups["step_ms_p50_ci95_high"], ".3g")
    by_run = within.set_index("run") if len(within) else None
    cells = []
    for cell, n, run in zip(over_seeds, groups["n_seeds"], groups["runs"]):
        if n == 1 and by_run is not None and run in by_run.index and pd.notna(by_run.loc[run, "step_ms_p50_ci95_low"]):
            r = by_run.loc[run]
            cell = (f"{r['step_ms_p50']:.3g} [{r['step_ms_p50_ci95_low']:.3g}, "
                    f"{r['step_ms_p50_ci95_high']:.3g}] within run")
        cells.append(cell)
    return cells


def _comparisons_md(pairs: pd.DataFrame, resolve) -> list[str]:
    shown = pairs[pairs["metric"].isin(SHOWN_METRICS)]
    family = shown[shown["holm_p"].notna()]
    n_sig = int((family["p_value"] < 0.05).sum())
    n_holm = int(family["holm_significant"].sum()) if len(family) else 0
    md = ["### Variant comparisons (b − a, or b / a for ratios)", "",
          f"**{len(family)} comparisons** in this table have an interval over seeds: {n_sig} of them are "
          f"significant at 95 % taken one at a time, and {n_holm} {'survives' if n_holm == 1 else 'survive'} "
          f"Holm's correction for all "
          f"{len(family)} as one family (family-wise error 5 %). The interval and verdict shown are the "
          "uncorrected ones; *survives Holm* gives the adjusted p (p̃). Within-run comparisons have no p "
          "value and are not in the family.", "", POWER_MD]
    if resolve:
        md += [f"*seeds needed per variant*: to resolve {', '.join(map(str, resolve))} at that spread "
               "with the same test and power (docs/statistics.md)."]
    view = comparisons_view(shown, varying(shown, list(PAIR_KEY), keep=()))
    return md + ["", to_markdown(view.rename(columns=COLUMN_HEADERS)), ""]


def sweep_section(runs_df: pd.DataFrame, out_dir: str | Path, resolve=(), steps: pd.DataFrame | None = None) -> str:
    """Markdown section for a sweep; writes sweep_*.csv and sweep_*.png into out_dir.

    `resolve`: analysis.stats.power.ResolveTarget values for the seeds-needed column. `steps`: the
    runs' step times (analysis.load.run_dirs.load_step_times), for within-run intervals of one-seed runs.
    Returns '' (and writes nothing) when every configuration has at most one complete run, there is
    a single world size and no one-seed pair has step times to compare: nothing to report.
    Image links in the markdown are relative to out_dir.
    """
    groups = group_stats(runs_df)
    if groups.empty:
        return ""
    samples = slowest_rank_samples(steps) if steps is not None and len(steps) else {}
    pairs = pairwise(runs_df, family=[m for m in SHOWN_METRICS if m in runs_df.columns],
                     resolve=tuple(resolve), step_samples=samples)
    several = groups["n_seeds"].max() > 1 or groups.loc[groups["n_seeds"] > 0, "world_size"].nunique() > 1
    if not several and not (pairs["interval"] == WITHIN_RUN).any():
        return ""
    for m in ("test_acc", "examples_per_s"):
        if f"{m}_mean" not in groups.columns:
            raise KeyError(f"runs table lacks metric column {m!r}")
    scaling = scaling_table(groups)
    acc = accuracy_vs_per_rank_batch(groups)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in (("groups", groups), ("pairwise", pairs), ("scaling", scaling), ("accuracy", acc)):
        table.to_csv(out_dir / CSV_NAMES[name], index=False)
    done = groups[groups["n_seeds"] > 0]
    sweep_figures.plot_scaling(scaling, out_dir / PNG_NAMES["scaling"])
    accuracy = acc["test_acc_mean"].notna().any()  # synthetic data has random labels: none measured
    if accuracy:
        sweep_figures.plot_accuracy(acc, out_dir / PNG_NAMES["accuracy"])
    sweep_figures.plot_bars(done, out_dir / PNG_NAMES["bars"])

    md = ["## Sweep statistics", "", INTERVALS_MD,
          f"{len(groups)} configurations, {int(groups['n_seeds'].sum())} complete runs, "
          f"runs excluded (status not complete): {int(groups['n_incomplete'].sum())}.", ""]
    md += _configurations_md(groups, steps if samples else None)
    if not pairs.empty:
        md += _comparisons_md(pairs, resolve)
    if scaling["world_size"].nunique() > 1:
        md += _scaling_md(scaling)
    return "\n".join(md + (_accuracy_md(acc) if accuracy else []))


def _configurations_md(groups: pd.DataFrame, steps: pd.DataFrame | None) -> list[str]:
    view = groups[varying(groups, CONFIG_KEY) + ["n_seeds", "n_incomplete"]].copy()
    view["test acc (%)"] = _interval(100 * groups["test_acc_mean"], 100 * groups["test_acc_ci95_low"],
                                     100 * groups["test_acc_ci95_high"], ".2f")
    if groups["test_acc_mean"].isna().all():
        view["test acc (%)"] = NOT_MEASURED
    view["examples/s (global)"] = _interval(groups["examples_per_s_mean"], groups["examples_per_s_ci95_low"],
                                            groups["examples_per_s_ci95_high"], ".0f")
    if "step_ms_p50_mean" in groups.columns:
        view["p50 step ms"] = _step_cells(groups, run_median_cis(steps) if steps is not None else pd.DataFrame())
    view["note"] = groups["note"]
    return ["### Configurations (mean [95 % CI])", "", to_markdown(view.rename(columns=COLUMN_HEADERS)), "",
            f"![test accuracy and examples/s per configuration]({PNG_NAMES['bars']})", ""]


def _scaling_md(scaling: pd.DataFrame) -> list[str]:
    view = scaling[varying(scaling, SCALING_LINE_KEY) + ["world_size", "n_seeds", "examples_per_s_mean"]].copy()
    view["speedup"] = _interval(scaling["speedup"], scaling["speedup_ci95_low"], scaling["speedup_ci95_high"], ".2f")
    view["efficiency"] = _interval(scaling["efficiency"], scaling["efficiency_ci95_low"],
                                   scaling["efficiency_ci95_high"], ".2f")
    view["note"] = scaling["note"]
    return ["### Weak scaling (fixed per-rank batch; examples/s, global)", "",
            to_markdown(view.rename(columns=COLUMN_HEADERS), ".0f"), "",
            f"![examples/s vs world size]({PNG_NAMES['scaling']})", ""]


def _accuracy_md(acc: pd.DataFrame) -> list[str]:
    view = acc[varying(acc, CONFIG_KEY) + ["effective_bn_batch", "n_seeds"]].copy()
    view["test acc (%)"] = _interval(100 * acc["test_acc_mean"], 100 * acc["test_acc_ci95_low"],
                                     100 * acc["test_acc_ci95_high"], ".2f")
    return ["### Test accuracy vs batch (effective BN batch = examples per BN statistic)", "",
            to_markdown(view.rename(columns=COLUMN_HEADERS), ".4g"), "",
            f"![test accuracy vs per-rank batch]({PNG_NAMES['accuracy']})", ""]
