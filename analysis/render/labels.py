"""Short labels for runs, so tables and legends name a run in a few characters, not its directory;
and the headers tables print for the columns of analysis' tidy frames.

A label is the run's variant (with its BN scope where that is not the variant's own, as
analysis.stats.pair_label writes it) plus a token for each configuration column that differs between
the runs of one report; a run whose label is still shared falls back to its directory name. Pure: a
runs table in (analysis.load.run_dirs.load_runs), a dict out.
"""
from __future__ import annotations

import pandas as pd

from analysis.stats.seed_groups import pair_label

# Column → table header: words a reader knows, units where the column has one.
COLUMN_HEADERS: dict[str, str] = {
    "world_size": "ranks", "per_rank_batch": "batch/rank", "global_batch": "global batch",
    "bn_group_size": "BN group", "bn_scope": "BN scope", "bn_emulate_ranks": "emulated ranks",
    "limit_train": "train images", "n_seeds": "runs", "n_incomplete": "not complete",
    "examples_per_s_mean": "examples/s (mean)", "effective_bn_batch": "effective BN batch",
    "variant_a": "a", "variant_b": "b", "n_a": "runs a", "n_b": "runs b",
    "image_size": "image size (px)", "steps": "steps/epoch", "data": "data", "channels_last": "channels_last",
}

# Configuration columns that can tell runs apart, each with the token its value gets in a label.
LABEL_TOKENS: dict[str, str] = {
    "model": "{}", "world_size": "ws{}", "per_rank_batch": "b{}", "bn_emulate_ranks": "e{}", "mode": "{}",
    "amp": "{}", "lr": "lr{}", "epochs": "ep{}",
    "limit_train": "n{}", "data": "{}", "image_size": "{}px", "steps": "st{}", "device": "{}", "seed": "s{}",
}


def _token(fmt: str, value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return fmt.format(value)


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """Run name → short label: the variant, then tokens for the columns that vary across `runs`.

    >>> runs = pd.DataFrame({"run": ["lenet-nn-ws2-b64-s0", "lenet-nn-ws2-b64-s1",
    ...                               "lenet-sync-ws2-b64-s0"], "variant": ["nn", "nn", "sync"],
    ...                      "bn_group_size": [1, 1, 2], "world_size": 2, "seed": [0, 1, 0]})
    >>> run_labels(runs)
    {'lenet-nn-ws2-b64-s0': 'nn s0', 'lenet-nn-ws2-b64-s1': 'nn s1', 'lenet-sync-ws2-b64-s0': 'sync s0'}
    """
    varying = [c for c in LABEL_TOKENS if c in runs.columns and runs[c].nunique(dropna=False) > 1]
    labels = {}
    for row in runs.to_dict("records"):
        variant = pair_label(row["variant"], row["bn_group_size"], row["world_size"])
        tokens = [variant] + [_token(LABEL_TOKENS[c], row[c]) for c in varying]
        labels[row["run"]] = " ".join(tokens)
    counts = pd.Series(list(labels.values())).value_counts()
    return {run: run if counts[label] > 1 else label for run, label in labels.items()}
