"""What a report says first: each variant against nn, which variant was fastest, what to distrust.

Pure DataFrame -> DataFrame transforms over a runs table (analysis.load.run_dirs.load_runs) and its step
times (analysis.load.run_dirs.load_step_times); the statistics are analysis.stats.variant_pairs.pairwise's,
never re-derived. The sentences are written by analysis.render.findings_section.

A comparison is a variant against `BASELINE` within one configuration: runs that agree on every
column of analysis.stats.PAIR_KEY (model, world size, per-rank batch, mode, amp, and the rest of the
configuration but the variant). Only complete runs enter; the others are listed by `left_out`.
"""
from __future__ import annotations

import pandas as pd

from analysis.stats.findings_speed import fastest_by_median_step
from analysis.stats.seed_groups import COMPLETE, VARIANT_ORDER, pair_label
from analysis.stats.step_times import rank_stats, run_stats, slowest_rank_samples
from analysis.stats.variant_pairs import PAIR_KEY, WITHIN_RUN, WITHIN_RUN_METRIC, pairwise

BASELINE = "nn"
METRICS = ("examples_per_s", "test_acc")
# The columns a configuration is named by; the rest of PAIR_KEY is named only where it varies, but
# for the global batch, which follows from the world size and the per-rank batch.
NAMED_KEY = ("model", "world_size", "per_rank_batch", "mode", "amp")
IMPLIED = ("global_batch",)
CURVE_COLUMNS = ("train_loss", "train_acc", "test_acc")
# Runs' curves "coincide" when, for every metric and epoch, they are closer than this fraction of the
# metric's plotted range: then no reader can tell the lines apart at the size the report draws them
# (its markers are 6-17 px across in axes about 300 px high: 2 % of the range lies inside a marker).
COINCIDE_FRACTION = 0.02

COMPARISON_COLUMNS = (
    "configuration", "variant", "n_baseline", "n_variant",
    "examples_per_s_ratio", "examples_per_s_ratio_ci95_low", "examples_per_s_ratio_ci95_high",
    "examples_per_s_verdict",
    "test_acc_diff_pts", "test_acc_diff_pts_ci95_low", "test_acc_diff_pts_ci95_high", "test_acc_verdict",
    "examples_per_s_holm", "test_acc_holm", "examples_per_s_p", "test_acc_p",
    "step_ms_ratio", "step_ms_ratio_ci95_low", "step_ms_ratio_ci95_high", "step_ms_verdict",
)
# fastest: the variant whose runs' median step (each run's slowest rank; the median over its runs) is
# shortest, with the examples/s of that step (global batch / median step), how many runs and the step.
CONFIGURATION_COLUMNS = ("configuration", *PAIR_KEY, "variants", "runs", "has_baseline", "fastest",
                         "fastest_examples_per_s", "fastest_runs", "fastest_step_ms", "noisy_runs",
                         "runs_with_steps")


def _complete(runs: pd.DataFrame) -> pd.DataFrame:
    """Complete runs with metrics as numbers: a metric a run could not measure (null) is NaN, never 0."""
    done = runs[runs["status"] == COMPLETE].copy()
    for m in (*METRICS, *(c for c in (WITHIN_RUN_METRIC,) if c in done.columns)):
        done[m] = pd.to_numeric(done[m], errors="coerce")
    done["label"] = [pair_label(v, g, w) for v, g, w in
                     zip(done["variant"], done["bn_group_size"], done["world_size"])]
    return done


def _naming(done: pd.DataFrame) -> list[str]:
    """NAMED_KEY plus the other PAIR_KEY columns that differ between the complete runs."""
    others = [c for c in PAIR_KEY if c not in NAMED_KEY + IMPLIED]
    return [*NAMED_KEY, *(c for c in others if done[c].nunique(dropna=False) > 1)]


def configuration_name(row: dict, columns: list[str]) -> str:
    """'lenet, 2 ranks × 32 per rank, eager, no AMP' (+ ', epochs 2' for other columns named).

    >>> configuration_name({"model": "lenet", "world_size": 1, "per_rank_batch": 256, "mode": "eager",
    ...                     "amp": "bf16", "lr": 0.5}, [*NAMED_KEY, "lr"])
    'lenet, 1 rank × 256 per rank, eager, bf16 autocast, lr 0.5'
    """
    ws = int(row["world_size"])
    parts = [str(row["model"]), f"{ws} rank{'s' if ws != 1 else ''} × {int(row['per_rank_batch'])} per rank",
             str(row["mode"]), "no AMP" if row["amp"] == "none" else f"{row['amp']} autocast"]
    parts += [_named(c, row[c]) for c in columns if c not in NAMED_KEY]
    return ", ".join(parts)


def _named(column: str, value) -> str:
    """A configuration column in words: 'channels_last', 'one pass per epoch', '32² images', 'lr 0.5'."""
    if column == "channels_last":
        return "channels_last" if value else "contiguous"
    if column == "steps":
        return f"{int(value)} steps per epoch" if value else "one pass per epoch"
    if column == "image_size":
        return f"{int(value)}² images"
    return f"{column} {value}"


def _variant_order(label: str) -> tuple[int, str]:
    v = label.split(" (")[0]
    return (VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER), label)


def _word(verdict: str, estimate: float, null: float, above: str, below: str) -> str:
    """The verdict in one word, from stats' verdict (which decides) and the estimate (which way)."""
    if pd.isna(estimate):
        return "n/a"
    if "within noise" in verdict:
        return "within noise"
    if "no interval" in verdict:
        return "no interval"
    return above if estimate > null else below


def comparisons(runs: pd.DataFrame, steps: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (configuration, variant) with a BASELINE run in the same configuration.

    examples_per_s_ratio = variant / nn (95 % interval: stats' log delta method); test_acc_diff_pts
    = 100 · (variant − nn) in percentage points (Welch). Intervals are NaN with fewer than two runs
    a side, and a metric no run measured is NaN. Verdicts: faster / slower / within noise /
    no interval / n/a, and more accurate / less accurate / ... for accuracy. *_holm: whether the
    verdict survives Holm over every examples/s and accuracy verdict with a p value here (None
    outside that family). step_ms_ratio: with one run a side and `steps` (load_step_times), the
    median step time ratio with its within-run interval (analysis.stats.variant_pairs); NaN otherwise.

        variant  examples_per_s  test_acc  ->  variant  examples_per_s_ratio  test_acc_diff_pts
        nn       1000            0.80          scratch  0.5                   -2.0
        scratch  500             0.78
    """
    done = _complete(runs)
    labels = sorted(set(done["label"]) - {BASELINE}, key=_variant_order)
    if BASELINE not in set(done["label"]) or not labels:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    timed = steps is not None and len(steps) and WITHIN_RUN_METRIC in done.columns
    samples = slowest_rank_samples(steps) if timed else {}
    pw = pairwise(done, metrics=(*METRICS, WITHIN_RUN_METRIC) if samples else METRICS,
                  pairs=[(BASELINE, lab) for lab in labels], family=METRICS, step_samples=samples)
    naming = _naming(done)
    rows = [_comparison(dict(zip(PAIR_KEY, key)), key[-1], g.set_index("metric"), naming)
            for key, g in pw.groupby([*PAIR_KEY, "variant_b"], dropna=False, sort=False)]
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def _comparison(key: dict, variant: str, by_metric: pd.DataFrame, naming: list[str]) -> dict:
    """One comparisons() row from pairwise's rows of one (configuration, variant), by metric."""
    eps, acc = by_metric.loc["examples_per_s"], by_metric.loc["test_acc"]
    step = by_metric.loc[WITHIN_RUN_METRIC] if WITHIN_RUN_METRIC in by_metric.index else None
    within = step is not None and step["interval"] == WITHIN_RUN
    nan = float("nan")
    return {
        "configuration": configuration_name(key, naming), "variant": variant,
        "n_baseline": int(eps["n_a"]), "n_variant": int(eps["n_b"]),
        "examples_per_s_ratio": eps["estimate"], "examples_per_s_ratio_ci95_low": eps["ci95_low"],
        "examples_per_s_ratio_ci95_high": eps["ci95_high"],
        "examples_per_s_verdict": _word(eps["verdict"], eps["estimate"], 1.0, "faster", "slower"),
        "test_acc_diff_pts": 100 * acc["estimate"], "test_acc_diff_pts_ci95_low": 100 * acc["ci95_low"],
        "test_acc_diff_pts_ci95_high": 100 * acc["ci95_high"],
        "test_acc_verdict": _word(acc["verdict"], acc["estimate"], 0.0, "more accurate", "less accurate"),
        "examples_per_s_holm": eps["holm_significant"], "test_acc_holm": acc["holm_significant"],
        "examples_per_s_p": eps["p_value"], "test_acc_p": acc["p_value"],
        "step_ms_ratio": step["estimate"] if within else nan,
        "step_ms_ratio_ci95_low": step["ci95_low"] if within else nan,
        "step_ms_ratio_ci95_high": step["ci95_high"] if within else nan,
        "step_ms_verdict": _word(step["verdict"], step["estimate"], 1.0, "slower", "faster") if within else "n/a",
    }


def noisy_runs(steps: pd.DataFrame) -> pd.DataFrame:
    """Per run with step times: noisy_ranks (IQR/median over analysis.stats.step_times' threshold) and ranks.

    >>> s = pd.DataFrame({"run": "r", "variant": "nn", "world_size": 1, "rank": 0,
    ...                   "step_ms": [1.0, 2.0, 3.0, 4.0]})
    >>> noisy_runs(s).to_dict("records")
    [{'run': 'r', 'noisy_ranks': 1, 'ranks': 1}]
    """
    per_run = run_stats(rank_stats(steps))
    out = per_run[["run", "noisy_ranks"]].copy()
    out["ranks"] = per_run["world_size"].astype(int)
    return out.reset_index(drop=True)


def configurations(runs: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration with a complete run: its variants, whether BASELINE ran, the
    fastest variant by the median step of its runs (`fastest_by_median_step`: a few slow steps move
    mean examples/s, not a median; analysis.stats.findings_speed) and how many of its runs had noisy steps."""
    done = _complete(runs)
    if done.empty:
        return pd.DataFrame(columns=list(CONFIGURATION_COLUMNS))
    naming = _naming(done)
    noisy = noisy_runs(steps).set_index("run")["noisy_ranks"]
    rows = []
    for key, cfg in done.groupby(list(PAIR_KEY), dropna=False, sort=True):
        row = dict(zip(PAIR_KEY, key))
        fastest, eps, n, ms = fastest_by_median_step(cfg)
        in_steps = cfg["run"][cfg["run"].isin(noisy.index)]
        rows.append({
            "configuration": configuration_name(row, naming), **row,
            "variants": sorted(set(cfg["label"]), key=_variant_order), "runs": len(cfg),
            "has_baseline": BASELINE in set(cfg["label"]),
            "fastest": fastest, "fastest_examples_per_s": eps, "fastest_runs": n, "fastest_step_ms": ms,
            "noisy_runs": int((noisy[in_steps] > 0).sum()), "runs_with_steps": len(in_steps),
        })
    return pd.DataFrame(rows, columns=list(CONFIGURATION_COLUMNS))


def left_out(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that did not complete (diverged, failed, still running): run, variant, status, failure."""
    return runs.loc[runs["status"] != COMPLETE, ["run", "variant", "status", "failure"]].reset_index(drop=True)


def curve_gaps(metrics: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per curve metric: (largest gap between runs at any epoch, the metric's range over all runs and
    epochs). Metrics no run measured are left out; a metric measured in some runs but not in others
    at an epoch has an infinite gap.

    >>> m = pd.DataFrame({"run": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2], "train_loss": [0.7, 0.5, 0.7, 0.501],
    ...                   "train_acc": 0.8, "test_acc": float("nan")})
    >>> {k: tuple(round(x, 6) for x in v) for k, v in curve_gaps(m).items()}
    {'train_loss': (0.001, 0.2), 'train_acc': (0.0, 0.0)}
    """
    gaps = {}
    for col in CURVE_COLUMNS:
        values = pd.to_numeric(metrics[col], errors="coerce")
        if values.isna().all():
            continue
        missing = values.isna().groupby(metrics["epoch"])
        by_epoch = values.groupby(metrics["epoch"])
        partly = (missing.any() & ~missing.all()).any()  # measured in one run, not in another
        gap = float("inf") if partly else float((by_epoch.max() - by_epoch.min()).fillna(0).max())
        gaps[col] = (gap, float(values.max() - values.min()))
    return gaps


def curves_coincide(metrics: pd.DataFrame, fraction: float = COINCIDE_FRACTION) -> bool:
    """True when two or more runs have the same epochs and, for train loss, train accuracy and test
    accuracy, every epoch's gap between runs is within `fraction` of the metric's range (or the
    values are equal): lines that lie on top of each other in the report's plot.

    >>> m = pd.DataFrame({"run": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2], "train_loss": [0.7, 0.5, 0.7, 0.501],
    ...                   "train_acc": 0.8, "test_acc": float("nan")})
    >>> curves_coincide(m), curves_coincide(m.assign(train_acc=[0.8, 0.9, 0.8, 0.85]))
    (True, False)
    """
    if metrics["run"].nunique() < 2:
        return False
    epochs = metrics.groupby("run")["epoch"].apply(lambda e: tuple(sorted(e)))
    if epochs.nunique() > 1:
        return False
    return all(gap <= fraction * span for gap, span in curve_gaps(metrics).values())
