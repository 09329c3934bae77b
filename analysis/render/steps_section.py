"""Markdown and a plot for per-rank step times: the report's "Step times by rank" section.

Numbers come from analysis.stats.step_times; this module only lays them out and draws.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.render.mdtable import fmt_number, to_markdown  # noqa: E402
from analysis.stats.step_times import (NOISY_IQR_OVER_MEDIAN, rank_stats, run_median_cis, run_stats,  # noqa: E402
                                       with_hosts)

STEPS_PNG = "step_times_by_rank.png"
STEPS_CSV = "step_times_by_rank.csv"
MEDIAN_CI_CSV = "step_times_median_ci.csv"
MAX_BOXES = 24  # one box per (run, rank); past this the plot is unreadable and is left out
MAX_NOISY_LISTED = 8  # the noisiest run-rank pairs are named; the rest are counted


def plot_steps(steps: pd.DataFrame, path: Path, labels: Mapping[str, str] | None = None,
               hosts: Mapping[tuple, str] | None = None) -> None:
    """One horizontal box per (run, rank): median, quartiles, whiskers at 1.5 IQR, outliers; a rank's
    host beside it where `hosts` ((run, rank) → host) names one."""
    labels, hosts = labels or {}, hosts or {}
    groups = list(steps.groupby(["run", "rank"], sort=True)["step_ms"])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(groups) + 1.2))
    ax.boxplot([g.to_numpy() for _, g in groups], orientation="horizontal", showfliers=True,
               flierprops={"markersize": 2})
    names = [f"{labels.get(run, run)} · rank {rank}" + (f" on {hosts[run, rank]}" if hosts.get((run, rank)) else "")
             for (run, rank), _ in groups]
    ax.set_yticks(range(1, len(groups) + 1), names,
                  fontsize=7)
    ax.invert_yaxis()
    # A few extreme steps (a neighbour, a page fault) would squash every box into a corner: the axis
    # ends past the largest 99th percentile and the caption counts what lies beyond it.
    right = 1.15 * max(g.quantile(0.99) for _, g in groups)
    beyond = int(sum((g > right).sum() for _, g in groups))
    ax.set_xlim(left=0, right=right)
    ax.set_xlabel("step time (ms)" + (f"; {beyond} step(s) beyond the axis, in the CSV" if beyond else ""))
    ax.set_title("Measured step times per rank")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(runs: pd.DataFrame, labels: Mapping[str, str], cis: pd.DataFrame) -> pd.DataFrame:
    view = pd.DataFrame({"run": [labels.get(r, r) for r in runs["run"]]})
    if runs["world_size"].nunique() > 1:
        view["ranks"] = runs["world_size"].to_numpy()
    by_run = cis.set_index("run")
    ci = ["–" if pd.isna(by_run.loc[r, "step_ms_p50_ci95_low"]) else
          f"[{fmt_number(by_run.loc[r, 'step_ms_p50_ci95_low'])}, {fmt_number(by_run.loc[r, 'step_ms_p50_ci95_high'])}]"
          for r in runs["run"]]
    return view.assign(**{
        "steps/rank": runs["steps_per_rank"].to_numpy(), "slowest rank": runs["slowest_rank"].to_numpy(),
        "p50 (ms)": runs["step_ms_p50"].to_numpy(), "p50 95 % CI (ms, within run)": ci,
        "p90 (ms)": runs["step_ms_p90"].to_numpy(),
        "IQR/median (%)": 100 * runs["iqr_over_median"].to_numpy(), "noisy ranks": runs["noisy_ranks"].to_numpy(),
        "slowest/fastest p50": runs["slowest_over_fastest_p50"].to_numpy()})


def steps_section(steps: pd.DataFrame, out_dir: Path, labels: Mapping[str, str] | None = None,
                  hosts: pd.DataFrame | None = None) -> str:
    """Per-run table (the slowest rank's numbers and the rank skew), noise warnings, the box plot;
    writes every rank's statistics, with its host where `hosts` (analysis.load.run_dirs.load_rank_hosts) has
    it, to step_times_by_rank.csv. Empty when no run stored step times. Runs are named by `labels`
    (run name → label) where given; a run on several hosts names the slowest rank's."""
    if steps.empty:
        return ""
    labels = labels or {}
    ranks = with_hosts(rank_stats(steps), hosts if hosts is not None else pd.DataFrame())
    host_of = {(r.run, r.rank): r.host for r in ranks.itertuples(index=False)
               if ranks.loc[ranks["run"] == r.run, "host"].nunique() > 1}  # multi-host runs only
    ranks.to_csv(out_dir / STEPS_CSV, index=False)
    cis = run_median_cis(steps)
    cis.to_csv(out_dir / MEDIAN_CI_CSV, index=False)
    per_run = run_stats(ranks)
    view = _table(per_run, labels, cis)
    if host_of:
        view.insert(list(view.columns).index("slowest rank") + 1, "its host",
                    [host_of.get((r, k), "") for r, k in zip(per_run["run"], per_run["slowest_rank"])])
    md = ["## Step times by rank", "",
          "Every rank's measured steps (milliseconds; warm-up and profiled steps excluded). The row gives "
          "the slowest rank's median, p90 and IQR/median; *slowest/fastest p50* is that median over the "
          "fastest rank's. Under DDP every step ends in the same gradient all-reduce, so a faster rank's "
          "wait for the slowest is inside its own step and the ratio stays near 1 even with a straggler; "
          "a ratio well above 1 means the ranks' clocks or step boundaries disagree. Which rank computes "
          "and which waits shows in the kernel section's communication share per rank. Every rank's "
          f"numbers are in `{STEPS_CSV}`.", "",
          "*p50 95 % CI (ms, within run)* is a circular block bootstrap of that rank's steps in time order, "
          "with blocks as long as their autocorrelation asks (Politis–White), so correlated steps are not "
          "counted as independent. It covers the noise within the run only: another run on the same "
          "machine (process placement, clock state, a neighbour, another seed) can differ by more. With "
          f"two or more seeds, use the sweep section's interval over seeds. Block lengths: `{MEDIAN_CI_CSV}`; "
          "method: docs/statistics.md.", "",
          to_markdown(view), ""]
    noisy = ranks[ranks["noisy"]]
    if len(noisy):
        md += [f"**Noisy:** IQR/median above {NOISY_IQR_OVER_MEDIAN:.0%} — treat these medians with care "
               "(shared machine, clock changes, a neighbour, or too few steps):", ""]
        worst = noisy.sort_values("iqr_over_median", ascending=False)
        md += [f"- {labels.get(r.run, r.run)} rank {r.rank}: IQR/median {r.iqr_over_median:.1%} over {r.steps} steps"
               for r in worst.head(MAX_NOISY_LISTED).itertuples(index=False)]
        if len(worst) > MAX_NOISY_LISTED:
            md += [f"- … and {len(worst) - MAX_NOISY_LISTED} more of {len(ranks)} run-rank pairs "
                   f"(`noisy` in `{STEPS_CSV}`)"]
        md += [""]
    if len(ranks) <= MAX_BOXES:
        plot_steps(steps, out_dir / STEPS_PNG, labels, host_of)
        md += [f"![step times by rank]({STEPS_PNG})", ""]
    else:
        md += [f"({len(ranks)} run-rank pairs: too many for one plot; see `{STEPS_CSV}`.)", ""]
    return "\n".join(md)
