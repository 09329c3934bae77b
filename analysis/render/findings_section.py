"""The report's first section, Findings: one plain sentence per comparison, then the fastest
variant and what to distrust. The numbers come from analysis.stats.findings; this module writes them."""
from __future__ import annotations

import pandas as pd

from analysis.render.mdtable import fmt_number
from analysis.stats.findings import BASELINE, comparisons, configurations, left_out
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


def comparison_sentence(r) -> str:
    """One comparison row (analysis.stats.findings.comparisons) as a sentence.

    e.g. '**sync** against nn (3 runs each): 0.82× the examples/s [0.79, 0.85], slower;
    +0.4 points of test accuracy [-0.3, +1.1], within noise.'; with one run each and their steps,
    '...; 2.01× the median step time [1.95, 2.08], slower (within-run timing only).' ends it.
    """
    speed = _clause(r.examples_per_s_ratio, "{:.2f}× the examples/s", "examples/s n/a",
                    r.examples_per_s_ratio_ci95_low, r.examples_per_s_ratio_ci95_high, ".2f",
                    r.examples_per_s_verdict, r.examples_per_s_holm)
    accuracy = _clause(r.test_acc_diff_pts, "{:+.1f} points of test accuracy", "test accuracy n/a",
                       r.test_acc_diff_pts_ci95_low, r.test_acc_diff_pts_ci95_high, "+.1f", r.test_acc_verdict,
                       r.test_acc_holm)
    return f"**{r.variant}** against {BASELINE} {_how_many(r)}: {speed}; {accuracy}{_step_clause(r)}."


def _holm(comps: pd.DataFrame) -> list[str]:
    """How many verdicts over seeds the sentences hold, uncorrected, and how many survive Holm."""
    marks = pd.concat([comps["examples_per_s_holm"], comps["test_acc_holm"]]).dropna()
    if marks.empty:
        return []
    n, kept = len(marks), int(marks.astype(bool).sum())
    return [f"The {n} verdicts over seeds here are each at 95 % taken alone, uncorrected for multiple "
            f"comparisons: {kept} of {n} {'survives' if kept == 1 else 'survive'} Holm's correction over all "
            f"{n} (family-wise error 5 %); one that does not is marked *{NOT_AFTER_HOLM}*. The sweep "
            "section's *survives Holm* column corrects over all of its comparisons.", ""]


def _fastest(c) -> str:
    if c.fastest is None or pd.isna(c.fastest):
        return "No run timed any step here, so there is no examples/s to rank."
    how = f"mean of {_runs(c.fastest_runs)}" if c.fastest_runs > 1 else "1 run"
    if len(c.variants) == 1:
        return f"Only **{c.fastest}** completed here: {fmt_number(c.fastest_examples_per_s)} examples/s ({how})."
    return f"Fastest: **{c.fastest}**, {fmt_number(c.fastest_examples_per_s)} examples/s ({how})."


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


def findings_section(runs: pd.DataFrame, steps: pd.DataFrame) -> str:
    """'## Findings' with a paragraph per configuration (its comparisons against nn, the fastest
    variant, a noise caveat), then the runs left out. `steps` is analysis.load.run_dirs.load_step_times."""
    md = ["## Findings", ""]
    configs = configurations(runs, steps)
    if configs.empty:
        return "\n".join(md + ["No run completed, so there is nothing to compare.", "", *_left_out(left_out(runs))])
    comps = comparisons(runs, steps)
    md += [f"Each variant against {BASELINE} at the same configuration: throughput as a ratio of "
           "examples/s, test accuracy as a difference in percentage points. With two or more runs a "
           "side, the 95 % interval over seeds follows (Welch for differences, log delta method for "
           "ratios) and the verdict says whether it excludes no change. With one run a side, the ratio "
           "of median step times gets a 95 % interval from the two runs' own steps (block bootstrap): "
           "within-run timing only, blind to run-to-run noise (docs/statistics.md).", "", *_holm(comps)]
    for c in configs.itertuples(index=False):
        md += [f"**{c.configuration}** ({_runs(c.runs)}):", ""]
        mine = comps[comps["configuration"] == c.configuration]
        if not c.has_baseline:
            md += [f"- No {BASELINE} run here, so nothing is compared against {BASELINE}."]
        md += [f"- {comparison_sentence(r)}" for r in mine.itertuples(index=False)]
        md += [f"- {_fastest(c)}"] + ([f"- {_noisy(c)}"] if c.noisy_runs else []) + [""]
    return "\n".join(md + _left_out(left_out(runs)))
