"""The report's small-batch section: test accuracy against examples per BN statistic, one line per
variant with 95 % intervals, the drop at 2 against 32 with its interval, the published anchor beside
(numbers from analysis.stats.small_batch)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.render.mdtable import fmt_number, to_markdown  # noqa: E402
from analysis.render.figures import legend_outside, save  # noqa: E402
from analysis.stats.small_batch import ANCHOR, ANCHOR_SOURCE, X, curve, drops  # noqa: E402
from bench.rundir import BATCH_FREE  # noqa: E402

PNG, CSV = "small_batch.png", "small_batch.csv"
EXPLAIN = (
    "One global batch on one device; a local BN variant on K emulated ranks normalises each 1/K slice "
    "with its own statistics (bench.bn.emulate), so the x axis is the examples one statistic sees. "
    "Statistics over the whole batch (sync) and none at all (gn) do not depend on the split: each is one "
    "configuration, drawn flat across it. Intervals: 95 % Student-t over seeds (logit scale); "
    "differences: Welch's t.")


def plot(curve_df: pd.DataFrame, path: Path) -> None:
    """Accuracy (%) against examples per statistic (log 2, largest left), one line per variant."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for (model, variant), line in curve_df.groupby(["model", "variant"], sort=True):
        line = line.sort_values(X)
        mean = 100 * line["test_acc_mean"].astype(float)
        lo, hi = 100 * line["test_acc_ci95_low"].astype(float), 100 * line["test_acc_ci95_high"].astype(float)
        style = "--" if line["flat"].astype(bool).all() else "-"
        ax.errorbar(line[X].astype(float), mean, yerr=[(mean - lo).fillna(0).clip(lower=0),
                                                       (hi - mean).fillna(0).clip(lower=0)],
                    marker="o", capsize=3, linestyle=style, label=f"{model} {variant}")
    ax.set_xscale("log", base=2)
    ax.invert_xaxis()
    ax.set_xticks(sorted(curve_df[X].astype(float).unique()), [f"{x:g}" for x in sorted(curve_df[X].unique())])
    ax.set_xlabel("examples per BN statistic")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy vs examples per BN statistic, 95 % CI")
    legend_outside(fig)
    save(fig, path, dpi=120)


def _sentences(d: pd.DataFrame) -> list[str]:
    out = []
    for r in d.to_dict("records"):
        ci = (f" [{fmt_number(r['diff_ci95_low'], '.1f')}, {fmt_number(r['diff_ci95_high'], '.1f')}]"
              if pd.notna(r["diff_ci95_low"]) else " (one seed: no interval)")
        out.append(f"- {r['model']}: {r['b']} − {r['a']} examples per statistic: "
                   f"{fmt_number(r['diff_pts'], '.1f')} points{ci} ({r['n_b']} and {r['n_a']} seeds).")
    return out


def _x_label(variant: str, x: float, flat: bool) -> str:
    """The table's examples-per-statistic cell: a flat line is one configuration, not a point at x.

    >>> _x_label("nn", 32, False), _x_label("sync", 256, True), _x_label("gn", 256, True)
    ('32', 'all 256', 'none (per example)')
    """
    if not flat:
        return f"{x:g}"
    return "none (per example)" if variant in BATCH_FREE else f"all {x:g}"


def small_batch_section(groups: pd.DataFrame, out_dir: str | Path) -> str:
    """Markdown for the small-batch cliff, figure and CSV into ``out_dir``; "" when the runs hold no
    local variant at two or more emulated rank counts."""
    c = curve(groups)
    if c.empty:
        return ""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    c.to_csv(out_dir / CSV, index=False)
    plot(c, out_dir / PNG)
    view = c.assign(acc=[f"{fmt_number(100 * m, '.1f')} [{fmt_number(100 * lo, '.1f')}, {fmt_number(100 * hi, '.1f')}]"
                         for m, lo, hi in zip(c["test_acc_mean"], c["test_acc_ci95_low"], c["test_acc_ci95_high"])])
    view = view[~view["flat"].astype(bool) | (view[X] == view[X].max())]
    view = view.assign(**{X: [_x_label(v, x, f) for v, x, f in zip(view["variant"], view[X], view["flat"])]})
    table = view[["model", "variant", X, "n_seeds", "acc"]].rename(
        columns={X: "examples per statistic", "n_seeds": "seeds", "acc": "test acc (%) [95 % CI]"})
    anchor = ANCHOR.rename(columns={"images_per_gpu": "images per GPU", "bn_top1_error_pct": "BN top-1 error (%)",
                                    "gn_top1_error_pct": "GN top-1 error (%)"})
    return "\n".join(["## Small batches: accuracy against examples per BN statistic", "", EXPLAIN, "",
                      *_sentences(drops(c)), "", to_markdown(table, ".3g"), "",
                      f"![test accuracy vs examples per BN statistic]({PNG})", "",
                      f"The published anchor ({ANCHOR_SOURCE}):", "", to_markdown(anchor, ".3g"), ""])
