"""The micro-benchmark's report section: a markdown table and a bar chart of time over a copy's
(``python -m analysis.micro_table`` writes it alone)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.render.figures import legend_outside, save  # noqa: E402
from analysis.render.mdtable import to_markdown  # noqa: E402
from analysis.transform.micro_rows import mark_fastest, micro_table  # noqa: E402
from bench.rundir import NOISY_IQR_OVER_MEDIAN as NOISY  # noqa: E402

TABLE_COLUMNS = ["shape_name", "shape", "dtype", "impl", "forward_us", "forward_gb_per_s", "forward_x_copy",
                 "forward_backward_us", "forward_backward_gb_per_s", "forward_backward_x_copy", "fastest"]


def plot_ratios(table: pd.DataFrame, path: Path) -> None:
    """Bars of time / copy time per impl, grouped by shape; one panel per (dtype, pass); log scale."""
    impls = [i for i in table["impl"].unique() if i != "copy"]
    panels = [(d, op) for d in table["dtype"].unique() for op in ("forward", "forward_backward")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.8 * len(panels)), squeeze=False, layout="constrained")
    for ax, (dtype, op) in zip(axes[:, 0], panels):
        sub = table[table["dtype"] == dtype]
        shapes = list(sub["case"].unique())
        width = 0.8 / max(len(impls), 1)
        for k, impl in enumerate(impls):
            vals = sub[sub["impl"] == impl].set_index("case").reindex(shapes)[f"{op}_x_copy"]
            ax.bar([i + k * width for i in range(len(shapes))], vals, width, label=impl)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks([i + width * (len(impls) - 1) / 2 for i in range(len(shapes))], shapes,
                      rotation=30 if len(shapes) > 6 else 0, ha="right" if len(shapes) > 6 else "center")
        ax.set_ylabel("time / copy time")
        ax.set_title(f"{op.replace('_', '+')}, {dtype} (1 = a copy of the tensor)")
    legend_outside(fig, title="implementation")
    save(fig, path, dpi=120)


def _columns(table: pd.DataFrame) -> list[str]:
    """TABLE_COLUMNS, with the memory format after the dtype where any input was channels_last."""
    if (table["memory_format"] == "contiguous").all():
        return TABLE_COLUMNS
    return [*TABLE_COLUMNS[:3], "memory_format", *TABLE_COLUMNS[3:]]


def micro_section(df: pd.DataFrame, fig_dir: Path) -> str:
    """Markdown: how it was measured, the table, the chart (written into `fig_dir`)."""
    table = mark_fastest(micro_table(df))
    fig_dir.mkdir(parents=True, exist_ok=True)
    plot_ratios(table, fig_dir / "micro_ratio_to_copy.png")
    device = ", ".join(sorted(df["device"].astype(str).unique()))
    noisy = int((df["iqr_over_median"] > NOISY).sum())
    lines = [f"### BN layer micro-benchmark ({device})", "",
             f"Median time per call in microseconds (us) over {int(df['reps'].min())}+ timed calls; GB/s counts "
             "the bytes that must move (forward: read x, write y; forward+backward: also read dy, write dx); "
             "x_copy is the time over a copy of the same tensor; fastest names the passes in which an "
             "implementation is the quickest of its shape and dtype.", "",
             to_markdown(table[_columns(table)], ".3g"), "",
             "![BN time over copy time](micro_ratio_to_copy.png)"]
    if noisy:
        lines += ["", f"Warning: {noisy} of {len(df)} measurements have IQR/median above {NOISY:.0%}."]
    return "\n".join(lines) + "\n"
