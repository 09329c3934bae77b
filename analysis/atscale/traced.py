"""What the traces of a multi-rank run tell the at-scale model: how much of its communication is
exposed, and how many collective calls a step makes. Pure: the traces come loaded
(:mod:`analysis.load.trace_dirs`)."""
from __future__ import annotations

import math

import pandas as pd

from analysis.atscale.workloads import calls_per_step
from analysis.transform.gpu_steps import step_table

TRACED_COLUMNS = ("path", "exposed_frac", "calls_per_step", "trace_note")


def traced_steps(traces: list) -> pd.DataFrame:
    """The per-step table (analysis.transform.gpu_steps.step_table) of every traced job of one run;
    raises ValueError for traces it cannot read."""
    return pd.concat([step_table(r.traces.events)[0] for r in traces])


def trace_facts(traces: list, steps: pd.DataFrame) -> tuple[float, float, str]:
    """(exposed_frac, collective calls per step, note) of one run from its loaded traces and their
    step table: the median over traced steps of (comm − overlap) / comm, and of the process-group
    calls a step makes.

    >>> steps = pd.DataFrame({"comm_us": [10.0, 10.0, 0.0], "overlap_us": [4.0, 2.0, 0.0]})
    >>> trace_facts([], steps)
    (0.7, nan, '2 traced steps')
    """
    calls = float(pd.concat([calls_per_step(r.traces.events) for r in traces]).median()) if traces else math.nan
    steps = steps[(steps["comm_us"] > 0) & steps["overlap_us"].notna()]
    if steps.empty:
        return math.nan, calls, "CPU-only trace: overlap not measurable"
    frac = ((steps["comm_us"] - steps["overlap_us"]) / steps["comm_us"]).clip(0, 1)
    return float(frac.median()), calls, f"{len(steps)} traced steps"


def traced_table(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (path, exposed_frac, calls_per_step, trace_note) as a table with TRACED_COLUMNS."""
    return pd.DataFrame(rows, columns=list(TRACED_COLUMNS), dtype=object).astype(
        {"exposed_frac": float, "calls_per_step": float})
