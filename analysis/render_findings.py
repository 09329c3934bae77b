"""The report's first section, Findings: one plain sentence per comparison, then the fastest
variant and what to distrust. The numbers come from analysis.findings; this module writes them."""
from __future__ import annotations

import pandas as pd

from analysis.findings import BASELINE, comparisons, configurations, left_out
from analysis.mdtable import fmt_number
from analysis.steptimes import NOISY_IQR_OVER_MEDIAN

NO_INTERVAL = "one run each: no interval"


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _how_many(r) -> str:
    """'(one run each: no interval)', '(3 runs each)', or '(nn 3 runs, sync 1 run: no interval)'."""
    a, b = r.n_baseline, r.n_variant
    if a == b == 1:
        return f"({NO_INTERVAL})"
    counts = f"{_runs(a)} each" if a == b else f"{BASELINE} {_runs(a)}, {r.variant} {_runs(b)}"
    return f"({counts}{': no interval' if min(a, b) < 2 else ''})"


def _interval(low: float, high: float, spec: str) -> str:
    return "" if pd.isna(low) else f" [{format(low, spec)}, {format(high, spec)}]"


def _clause(value, text: str, missing: str, lo, hi, spec: str, verdict: str) -> str:
    """'0.82× the examples/s [0.79, 0.85], slower', or `missing` when the value is NaN."""
    if pd.isna(value):
        return missing
    clause = text.format(value) + _interval(lo, hi, spec)
    return clause + (f", {verdict}" if verdict not in ("no interval", "n/a") else "")


def comparison_sentence(r) -> str:
    """One comparison row (analysis.findings.comparisons) as a sentence.

    e.g. '**sync** against nn (3 runs each): 0.82× the examples/s [0.79, 0.85], slower;
    +0.4 points of test accuracy [-0.3, +1.1], within noise.'
    """
    speed = _clause(r.examples_per_s_ratio, "{:.2f}× the examples/s", "examples/s n/a",
                    r.examples_per_s_ratio_ci95_low, r.examples_per_s_ratio_ci95_high, ".2f",
                    r.examples_per_s_verdict)
    accuracy = _clause(r.test_acc_diff_pts, "{:+.1f} points of test accuracy", "test accuracy n/a",
                       r.test_acc_diff_pts_ci95_low, r.test_acc_diff_pts_ci95_high, "+.1f", r.test_acc_verdict)
    return f"**{r.variant}** against {BASELINE} {_how_many(r)}: {speed}; {accuracy}."


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
    variant, a noise caveat), then the runs left out. `steps` is analysis.runs.load_step_times."""
    md = ["## Findings", ""]
    configs = configurations(runs, steps)
    if configs.empty:
        return "\n".join(md + ["No run completed, so there is nothing to compare.", "", *_left_out(left_out(runs))])
    comps = comparisons(runs)
    md += [f"Each variant against {BASELINE} at the same configuration: throughput as a ratio of "
           "examples/s, test accuracy as a difference in percentage points. With two or more runs a "
           "side, the 95 % interval over seeds follows (Welch for differences, log delta method for "
           "ratios) and the verdict says whether it excludes no change.", ""]
    for c in configs.itertuples(index=False):
        md += [f"**{c.configuration}** ({_runs(c.runs)}):", ""]
        mine = comps[comps["configuration"] == c.configuration]
        if not c.has_baseline:
            md += [f"- No {BASELINE} run here, so nothing is compared against {BASELINE}."]
        md += [f"- {comparison_sentence(r)}" for r in mine.itertuples(index=False)]
        md += [f"- {_fastest(c)}"] + ([f"- {_noisy(c)}"] if c.noisy_runs else []) + [""]
    return "\n".join(md + _left_out(left_out(runs)))
