"""The report's first section, Findings: one plain sentence per comparison, then the fastest
variant and what to distrust. The numbers come from analysis.stats.findings; this module writes them."""
from __future__ import annotations

import pandas as pd

from analysis.render.mdtable import fmt_number
from analysis.render.timing_section import (
    PHASE, busy_line, control_line, fastest_line, gap_lines, speed_clause, timed_sentence,
)
from analysis.stats.findings import (
    NAMED_KEY, BASELINE, comparisons, configuration_name, configurations, left_out,
)
from analysis.stats.findings_speed import holm_without
from analysis.stats.interleaved import Speed
from analysis.stats.round_bootstrap import MAX_NOISE_FLOOR
from analysis.stats.step_times import NOISY_IQR_OVER_MEDIAN
from analysis.stats.variant_pairs import WITHIN_RUN_NOTE

NO_INTERVAL = "one run each: no interval"
NOT_AFTER_HOLM = "not after Holm"


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _how_many(r) -> str:
    """'(one run each: no interval)', '(3 runs each)', or '(nn 3 runs, sync 1 run: no interval)'."""
    a, b = r.n_baseline, r.n_variant
    if a == b == 1:  # the step-time interval, if any, is within run: none over seeds either way
        return f"({NO_INTERVAL}{'' if pd.isna(r.step_ms_ratio) else ' over seeds'})"
    counts = f"{_runs(a)} each" if a == b else f"{BASELINE} {_runs(a)}, {r.variant} {_runs(b)}"
    return f"({counts}{': no interval' if min(a, b) < 2 else ''})"


def _interval(low: float, high: float, spec: str) -> str:
    return "" if pd.isna(low) else f" [{format(low, spec)}, {format(high, spec)}]"


def _clause(value, text: str, missing: str, lo, hi, spec: str, verdict: str, holm=None) -> str:
    """'0.82× the examples/s [0.79, 0.85], slower', or `missing` when the value is NaN; a verdict
    that does not survive Holm (holm False) is marked so."""
    if pd.isna(value):
        return missing
    clause = text.format(value) + _interval(lo, hi, spec)
    if verdict in ("no interval", "n/a"):
        return clause
    failed_holm = holm is not None and not pd.isna(holm) and not holm  # None / NaN: outside the family
    return clause + f", {verdict}" + (f" ({NOT_AFTER_HOLM})" if failed_holm and verdict != "within noise" else "")


def _step_clause(r) -> str:
    """'; 2.01× the median step time [1.95, 2.08], slower (within-run timing only)', or '' without
    a within-run interval (analysis.stats.variant_pairs' block bootstrap of the two runs' slowest-rank steps)."""
    if pd.isna(r.step_ms_ratio):
        return ""
    ratio, lo, hi = (fmt_number(x, ".2f") for x in (r.step_ms_ratio, r.step_ms_ratio_ci95_low,
                                                      r.step_ms_ratio_ci95_high))
    verdict = "" if r.step_ms_verdict == "n/a" else f", {r.step_ms_verdict}"
    return f"; {ratio}× the median step time [{lo}, {hi}]{verdict}{WITHIN_RUN_NOTE}"


def comparison_sentence(r, speed: str | None = None) -> str:
    """One comparison row (analysis.stats.findings.comparisons) as a sentence.

    e.g. '**sync** against nn (3 runs each): 0.82× the examples/s [0.79, 0.85], slower;
    +0.4 points of test accuracy [-0.3, +1.1], within noise.'; with one run each and their steps,
    '...; 2.01× the median step time [1.95, 2.08], slower (within-run timing only).' ends it.
    """
    if speed is not None:  # the interleaved timing phase's clause replaces the runs' own speed figures
        return f"**{r.variant}** against {BASELINE}: {speed}; {_accuracy(r)} {_how_many(r)}."
    speed = _clause(r.examples_per_s_ratio, "{:.2f}× the examples/s", "examples/s n/a",
                    r.examples_per_s_ratio_ci95_low, r.examples_per_s_ratio_ci95_high, ".2f",
                    r.examples_per_s_verdict, r.examples_per_s_holm)
    return f"**{r.variant}** against {BASELINE} {_how_many(r)}: {speed}; {_accuracy(r)}{_step_clause(r)}."


def _accuracy(r) -> str:
    return _clause(r.test_acc_diff_pts, "{:+.1f} points of test accuracy", "test accuracy n/a",
                   r.test_acc_diff_pts_ci95_low, r.test_acc_diff_pts_ci95_high, "+.1f", r.test_acc_verdict,
                   r.test_acc_holm)


def _holm(comps: pd.DataFrame) -> list[str]:
    """How many verdicts over seeds the sentences hold, uncorrected, and how many survive Holm."""
    marks = pd.concat([comps["examples_per_s_holm"], comps["test_acc_holm"]]).dropna()
    if marks.empty:
        return []
    n, kept = len(marks), int(marks.astype(bool).sum())
    verdicts = f"{n} verdicts over seeds here are each" if n != 1 else "1 verdict over seeds here is"
    return [f"The {verdicts} at 95 % taken alone, uncorrected for multiple "
            f"comparisons: {kept} of {n} {'survives' if kept == 1 else 'survive'} Holm's correction over all "
            f"{n} (family-wise error 5 %); one that does not is marked *{NOT_AFTER_HOLM}*. The sweep "
            "section's *survives Holm* column corrects over all of its comparisons.", ""]


def _fastest(c) -> str:
    """The fastest variant by its runs' median step (analysis.stats.findings_speed.fastest_by_median_step)."""
    if c.fastest is None or pd.isna(c.fastest):
        return "No run timed any step here, so there is no median step to rank."
    how = (f"the median over {_runs(c.fastest_runs)} of each run's median step" if c.fastest_runs > 1
           else "its run's median step")
    at = (f"{fmt_number(c.fastest_examples_per_s)} examples/s at {fmt_number(c.fastest_step_ms, '.3g')} ms a step "
          f"({how}, the slowest rank's; not mean throughput)")
    if len(c.variants) == 1:
        return f"Only **{c.fastest}** completed here: {at}."
    return f"Fastest: **{c.fastest}**, {at}."


def _noisy(c) -> str:
    if not c.noisy_runs:
        return ""
    return (f"Caveat: the step times of {c.noisy_runs} of {_runs(c.runs_with_steps)} here were noisy "
            f"(IQR/median above {NOISY_IQR_OVER_MEDIAN:.0%} on at least one rank; see *Step times by "
            "rank*), so a repeat could move these examples/s by more than the figures above suggest.")


def _left_out(out: pd.DataFrame) -> list[str]:
    if out.empty:
        return []
    named = ", ".join(f"{r.run} ({r.status})" for r in out.itertuples(index=False))
    return [f"Left out of every comparison, as they did not complete: {named}.", ""]


def findings_section(runs: pd.DataFrame, steps: pd.DataFrame, speed: Speed | None = None) -> str:
    """'## Findings' with a paragraph per configuration (its comparisons against nn, the fastest
    variant, a noise caveat), then the runs left out. `steps` is analysis.load.run_dirs.load_step_times;
    `speed` (analysis.stats.interleaved.Speed of the timing runs), where a configuration has a timing
    phase, gives its speed sentences, the A/A control and the fastest variant."""
    md = ["## Findings", ""]
    speed = speed if speed is not None else Speed.of(None)
    configs = configurations(runs, steps)
    if configs.empty and speed.runs.empty:
        return "\n".join(md + ["No run completed, so there is nothing to compare.", "", *_left_out(left_out(runs))])
    timing_of = {c.configuration: speed.match(c._asdict()) if BASELINE in set(speed.runs["baseline"]) else None
                 for c in configs.itertuples(index=False)}
    comps = comparisons(runs, steps)
    replaced = {(c, v) for c, v in zip(comps["configuration"], comps["variant"])
                if timing_of.get(c) and speed.comparison(timing_of[c], v) is not None}
    comps = holm_without(comps, replaced)  # speed verdicts the timing phase gave are not Holm's to count
    md += [] if configs.empty else [f"Each variant against {BASELINE} at the same configuration: throughput as a ratio of "
           "examples/s, test accuracy as a difference in percentage points. With two or more runs a "
           "side, the 95 % interval over seeds follows (Welch for differences, log delta method for "
           "ratios) and the verdict says whether it excludes no change. With one run a side, the ratio "
           "of median step times gets a 95 % interval from the two runs' own steps (block bootstrap): "
           "within-run timing only, blind to run-to-run noise (docs/statistics.md).", "", *_holm(comps)]
    md += [TIMING_INTRO, ""] if not speed.runs.empty else []
    matched = set()
    for c in configs.itertuples(index=False):
        t = timing_of[c.configuration]
        matched.add(t)
        md += [f"**{c.configuration}** ({_runs(c.runs)}):", ""]
        mine = comps[comps["configuration"] == c.configuration]
        if not c.has_baseline:
            md += [f"- No {BASELINE} run here, so nothing is compared against {BASELINE}."]
        md += [f"- {line}" for line in _sentences(mine, speed, t)]
        md += [f"- {fastest_line(speed, t) if t else _fastest(c)}"] + ([f"- {_noisy(c)}"] if c.noisy_runs else [])
        md += [f"- {b}" for b in ([busy_line(speed, t)] if t else []) if b] + [""]
    md += _timed_only(speed, matched)
    if gaps := gap_lines(runs[runs["status"] == "complete"], steps):
        md += ["Mean throughput against the median step:", "", *(f"- {g}" for g in gaps), ""]
    return "\n".join(md + _left_out(left_out(runs)))


TIMING_INTRO = ("Where an interleaved timing phase ran (bench.timing: every variant in one job, in rounds of "
                "shuffled order), speed comes from it: the ratio of median step times with a 95 % interval "
                "that resamples whole rounds. The A/A control (the baseline timed twice) sets the run's noise "
                "floor: a variant is faster or slower only when its interval clears it, and no verdict is "
                f"given when the floor exceeds {MAX_NOISE_FLOOR:.0%}. Examples/s there are the global batch over "
                "the median step.")


def _sentences(mine: pd.DataFrame, speed: Speed, t: str | None) -> list[str]:
    """The comparison sentences of one configuration; with its timing run `t`, speed from that run,
    the A/A control first, and timed variants without a complete training run after."""
    if t is None:
        return [comparison_sentence(r) for r in mine.itertuples(index=False)]
    out = [control_line(speed, t)]
    for r in mine.itertuples(index=False):
        comp = speed.comparison(t, r.variant)
        out.append(comparison_sentence(r, None if comp is None else speed_clause(comp, BASELINE)))
    told = set(mine["variant"])
    out += [timed_sentence(c, BASELINE) for c in speed.comps[(speed.comps["timing_run"] == t)
                                                              & ~speed.comps["control"].astype(bool)].itertuples()
            if c.variant not in told]
    return out


def _timed_only(speed: Speed, matched: set) -> list[str]:
    """A paragraph per timing run no configuration of complete runs took up."""
    md = []
    for run in speed.runs.itertuples(index=False):
        if run.timing_run in matched:
            continue
        name = configuration_name(run._asdict(), list(NAMED_KEY))
        md += [f"**{name}** ({PHASE} only, {run.timing_run}):", "", f"- {control_line(speed, run.timing_run)}"]
        comps = speed.comps[(speed.comps["timing_run"] == run.timing_run) & ~speed.comps["control"].astype(bool)]
        md += [f"- {timed_sentence(c, run.baseline)}" for c in comps.itertuples()]
        md += [f"- {fastest_line(speed, run.timing_run)}"]
        md += [f"- {b}" for b in [busy_line(speed, run.timing_run)] if b] + [""]
    return md
