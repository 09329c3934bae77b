"""The figure and the markdown of the report's "At scale (predicted)" section (rendering only).

Numbers come from :mod:`analysis.atscale.step_model`; this module lays them out and draws.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.render.figures import legend_outside, save  # noqa: E402
from analysis.render.mdtable import to_markdown  # noqa: E402

PNG = "scale.png"
LINE_KEY = ["model", "variant", "per_rank_batch", "bn_scope"]
TABLE_WORLD_SIZES = (1, 2, 8, 64, 512, 4096)


def line_label(row: dict) -> str:
    return f"{row['model']} {row['variant']} b{row['per_rank_batch']}, {row['bn_scope']}"


def plot(prediction: pd.DataFrame, path: Path) -> None:
    """Predicted examples/s, scaling efficiency and sync-BN overhead against world size."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.6), layout="constrained")
    panels = (("examples_per_s", "examples/s (global, predicted)", True),
              ("scaling_efficiency", "scaling efficiency (predicted)", False),
              ("sync_bn_overhead", "sync-BN overhead: BN collectives / rest of step", True))
    for i, (_, line) in enumerate(prediction.groupby(LINE_KEY, sort=True)):
        line = line.sort_values("world_size")
        style = {"color": f"C{i % 10}", "marker": "o", "markersize": 3, "label": line_label(line.iloc[0].to_dict())}
        for ax, (col, _, log_y) in zip(axes, panels):
            if col == "sync_bn_overhead" and not (line[col] > 0).any():
                continue
            # a log axis has no 0: one rank's zero overhead is left out rather than drawn off the axis
            ax.plot(line["world_size"], line[col].where(line[col] > 0) if log_y else line[col], **style)
    for ax, (_, ylabel, log_y) in zip(axes, panels):
        ax.set_xscale("log", base=2)
        if not ax.lines:  # only local BN predicted: no sync-BN overhead to draw
            ax.text(0.5, 0.5, "no synchronised BN among these lines", transform=ax.transAxes, ha="center")
        elif log_y:
            ax.set_yscale("log")
        ax.set_xlabel("world size (ranks), fixed per-rank batch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    legend_outside(fig, where="below", ncol=3)
    fig.suptitle("MODEL, not measurement: predicted from world-size-1 runs and a collective cost model")
    save(fig, path)


def _ms(v: float) -> str:
    """12.3, 456, 24,700: three significant digits without exponents."""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def findings(prediction: pd.DataFrame) -> list[str]:
    """One sentence per synchronised workload: its step at the largest world size, per BN scope."""
    out = []
    top = prediction["world_size"].max()
    at_top = prediction[prediction["world_size"] == top]
    for (model, variant, batch), g in at_top.groupby(["model", "variant", "per_rank_batch"], sort=True):
        if not (g["bn_comm_ms"] > 0).any():
            continue
        parts = [f"{r.bn_scope}: {_ms(r.step_ms)} ms a step, BN collectives {_ms(r.bn_comm_ms)} ms "
                 f"(+{100 * r.sync_bn_overhead:,.0f} %), scaling efficiency {r.scaling_efficiency:.2g}"
                 for r in g.sort_values("bn_comm_ms").itertuples()]
        out.append(f"- **{model} {variant}, per-rank batch {batch}, at {top:,} ranks** — " + "; ".join(parts) + ".")
    return out


def _prediction_table(prediction: pd.DataFrame) -> str:
    w = prediction["world_size"].astype(int)
    shown = prediction[w.isin(TABLE_WORLD_SIZES) | ((w & (w - 1)) != 0)]  # and every size asked for by name
    cols = ["variant", "per_rank_batch", "bn_scope", "world_size", "bn_group_size", "bn_comm_ms", "ddp_ms",
            "step_ms", "examples_per_s", "scaling_efficiency", "sync_bn_overhead"]
    return to_markdown(shown.sort_values([*LINE_KEY, "world_size"])[cols], ".3g")


def _validation_part(validation: pd.DataFrame) -> list[str]:
    if validation.empty:
        return ["No measured run above world size 1 has a world-size-1 counterpart among the inputs: "
                "nothing to check the model against.", ""]
    cols = ["run", "measured_step_ms", "predicted_step_ms", "error", "measured_calls_per_step",
            "predicted_calls_per_step", "compute_factor", "residual", "residual_per_call_ms"]
    worst = validation.loc[validation["error"].abs().idxmax()]
    return [f"The model's largest error here is {100 * worst['error']:+.0f} % ({worst['run']}). "
            "`error` = predicted / measured − 1 for the plain prediction. The reverse fit lets the measured "
            "runs supply what the model leaves out — one factor on the world-size-1 compute per (model, "
            "per-rank batch, world size), fitted from the local-BN runs (`compute_factor`) — and "
            "`residual` = (measured − fitted) / measured is what then stays unexplained: for a "
            "synchronised run, the error of the BN collectives' cost; `residual_per_call_ms` spreads it over "
            "the step's collective calls (ranks waiting for each other at every call on a shared machine). "
            "`calls_per_step` counts the collective calls a step makes, in the run's trace and in the model.", "",
            to_markdown(validation[cols], ".3g"), ""]


def scale_section(prediction: pd.DataFrame, validation: pd.DataFrame, workloads: pd.DataFrame,
                  cost_notes: list[str], notes: list[str], inputs: list[str], out_dir: str | Path) -> str:
    """Markdown for "At scale (predicted)"; draws scale.png into out_dir (image link relative to it)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot(prediction, out_dir / PNG)
    compute = ", ".join(f"{r.model} {r.variant} b{r.per_rank_batch}: {r.compute_ms:.3g} ms "
                        + (f"({r.runs} run(s))" if r.runs else "(stated in a workload file)")
                        for r in workloads.itertuples())
    lines = ["## At scale (predicted)", "",
             "**This section is a model, not a measurement.** It predicts a training step at world sizes up "
             "to 4,096 ranks (fixed per-rank batch) as the world-size-1 compute, plus each synchronised BN "
             "layer's forward all-gather and backward all-reduce on its group, plus the exposed part of "
             "DDP's gradient all-reduce, each collective costed by a latency–bandwidth model "
             "(equations and limits: docs/scale.md).", "",
             "**Inputs.** " + "; ".join(inputs) + f". World-size-1 compute per step: {compute}.", "",
             *findings(prediction), "",
             f"![predicted examples/s, scaling efficiency and sync-BN overhead]({PNG})", "",
             "Times in milliseconds (ms), a step; compute is the world-size-1 value above at every W; "
             "`sync_bn_overhead` = BN collectives / the rest of the step; "
             "`scaling_efficiency` = examples/s / (W × world-size-1 examples/s). All columns, and every "
             "world size, in scale_prediction.csv.", "",
             _prediction_table(prediction), "",
             "### Checked against measured runs", "", *_validation_part(validation),
             "### Assumptions", "", *[f"- {n}" for n in [*cost_notes, *notes]], ""]
    return "\n".join(lines)
