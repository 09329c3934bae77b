"""The interleaved timing phase in words: Findings' speed sentences, the A/A control line, the
fastest variant by median step, the busy-machine flag, the mean-versus-median note, and the report's
"Interleaved timing" table. The numbers come from analysis.stats.interleaved and analysis.stats.slow_steps."""
from __future__ import annotations

import pandas as pd

from analysis.render.mdtable import fmt_number, to_markdown
from analysis.stats.interleaved import Speed
from analysis.stats.round_bootstrap import MAX_NOISE_FLOOR
from analysis.stats.slow_steps import mean_median_gaps
from bench.rundir import MEAN_MEDIAN_GAP, SLOW_STEP_OVER_MEDIAN

PHASE = "interleaved timing"


def _rounds(run) -> str:
    """'200 rounds of 1 step', '20 rounds of 10 steps'."""
    k = int(run.steps_per_round)
    return f"{int(run.rounds)} rounds of {k} step{'s' if k != 1 else ''}"


def _ci(lo: float, hi: float) -> str:
    return "" if pd.isna(lo) else f" [{lo:.2f}, {hi:.2f}]"


def control_line(speed: Speed, timing_run: str) -> str:
    """'A/A control (nn vs nn): 1.00× [0.98, 1.03] (...), noise floor 3.0%: ...'."""
    run = speed.row(timing_run)
    c = speed.comps[(speed.comps["timing_run"] == timing_run) & speed.comps["control"].astype(bool)]
    if c.empty:
        return f"A/A control ({run.baseline} vs {run.baseline}): not timed, so no speed verdict can be trusted."
    c = c.iloc[0]
    head = (f"A/A control ({run.baseline} vs {run.baseline}): {c.step_ms_ratio:.2f}×{_ci(c.ci95_low, c.ci95_high)}"
            f" ({PHASE}, {_rounds(run)})")
    if c.verdict == "no interval":
        return f"{head}: too few rounds for an interval, so no speed verdict is given."
    floor = f"noise floor {c.noise_floor:.1%}"
    if c.verdict == "within noise":
        return (f"{head}, within noise ({floor}): two separately built copies of one computation, timed in "
                "the same rounds, differ by no more than that, so a variant is called faster or slower only "
                "beyond it.")
    return (f"{head}, outside noise ({floor}): over the {MAX_NOISE_FLOOR:.0%} bound, so this machine invented a "
            "difference between identical copies in this very run; it was too noisy to tell the variants "
            "apart, and no speed verdict is given.")


def speed_clause(comp, baseline: str) -> str:
    """'1.84× nn's median step [1.80, 1.88] (0.54× the examples/s), slower (interleaved timing)'."""
    text = (f"{comp.step_ms_ratio:.2f}× {baseline}'s median step{_ci(comp.ci95_low, comp.ci95_high)} "
            f"({1 / comp.step_ms_ratio:.2f}× the examples/s)")
    if comp.verdict == "too noisy to tell":
        return f"{text}: this machine was too noisy to tell (see the A/A control) ({PHASE})"
    return f"{text}, {comp.verdict} ({PHASE})"


def timed_sentence(comp, baseline: str) -> str:
    return f"**{comp.variant}** against {baseline} ({PHASE} only): {speed_clause(comp, baseline)}."


def fastest_line(speed: Speed, timing_run: str) -> str:
    a = speed.arms[(speed.arms["timing_run"] == timing_run) & (speed.arms["copy"] == 0)]
    best = a.loc[a["median_ms"].idxmin()]
    return (f"Fastest ({PHASE}, median step): **{best.variant}**, {fmt_number(best.median_ms, '.3g')} ms a step, "
            f"{fmt_number(best.examples_per_s)} examples/s.")


def busy_line(speed: Speed, timing_run: str) -> str | None:
    s = speed.load[speed.load["timing_run"] == timing_run]
    if s.empty or not bool(s.iloc[0].busy):
        return None
    s = s.iloc[0]
    return (f"Busy machine: other processes held a median {s.other_cpu_share_median:.0%} (up to "
            f"{s.other_cpu_share_max:.0%}) of the {int(s.cpus)} CPUs while the timing ran (1-minute load average up "
            f"to {s.loadavg_1m_max:.1f}). Interleaving spreads that load over every variant alike and the A/A "
            "control shows what it left; the Runs table's examples/s, measured one run after another, carry it whole.")


def gap_lines(runs: pd.DataFrame, steps: pd.DataFrame) -> list[str]:
    """A sentence per run whose mean throughput and median-step throughput differ by > 10 %."""
    out = []
    for g in mean_median_gaps(runs, steps).itertuples(index=False):
        if not g.flagged:
            continue
        where = "" if g.first_slow is None else (
            f": {g.slow_steps} of {g.steps} steps took over {SLOW_STEP_OVER_MEDIAN:g}× its "
            f"{fmt_number(g.median_ms, '.3g')} ms median, from epoch {g.first_slow[0]} step {g.first_slow[1]} to "
            f"epoch {g.last_slow[0]} step {g.last_slow[1]}, the slowest {fmt_number(g.slow_ms_max, '.3g')} ms")
        out.append(f"**{g.run}**: its mean throughput in the Runs table, {fmt_number(g.examples_per_s)} examples/s, "
                   f"is {abs(g.gap):.0%} {'below' if g.gap < 0 else 'above'} the {fmt_number(g.median_examples_per_s)} "
                   f"examples/s of its median step (more than {MEAN_MEDIAN_GAP:.0%} apart){where}.")
    return out


def timing_section(speed: Speed) -> str:
    """'## Interleaved timing': per timing run, its arms' medians and ratios, the control, the load."""
    if speed.runs.empty:
        return ""
    md = ["## Interleaved timing", "",
          "Every variant timed in one job, in rounds of shuffled order; the baseline twice (A/A control). "
          "Step times in ms (the slowest rank's); ratios are median step over the baseline's, 95 % interval "
          "over rounds (docs/statistics.md).", ""]
    for run in speed.runs.itertuples(index=False):
        arms = speed.arms[speed.arms["timing_run"] == run.timing_run]
        comps = speed.comps[speed.comps["timing_run"] == run.timing_run].set_index(["variant", "copy"])
        rows = []
        for a in arms.itertuples(index=False):
            c = comps.loc[(a.variant, a.copy)] if (a.variant, a.copy) in comps.index else None
            rows.append({"arm": a.variant + ("′ (A/A control)" if a.copy else ""), "median ms": a.median_ms,
                         "IQR/median": a.iqr_over_median, "examples/s (median step)": a.examples_per_s,
                         "ratio": 1.0 if c is None else c.step_ms_ratio,
                         "95 % interval": "baseline" if c is None else _ci(c.ci95_low, c.ci95_high).strip(),
                         "verdict": "" if c is None else c.verdict})
        md += [f"**{run.timing_run}** ({_rounds(run)} per arm):", "",
               to_markdown(pd.DataFrame(rows), {"ratio": ".3f", "IQR/median": ".2f"}), ""]
        if (b := busy_line(speed, run.timing_run)) is not None:
            md += [b, ""]
    return "\n".join(md)
