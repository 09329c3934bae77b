"""Seed statistics for experiment matrices, in one import: what each part does lives in its module.

    analysis.intervals     interval arithmetic in each metric's space, Welch and ratio contrasts, p values
    analysis.groups        runs grouped by configuration: group_stats, metric specs, labels
    analysis.pairs         pairwise variant comparisons: verdicts, Holm marks, power columns
    analysis.multiplicity  Holm's correction
    analysis.power         smallest resolvable difference, seeds needed, --resolve targets
    analysis.scaling       weak scaling and accuracy against batch
    analysis.blockboot     within-run block-bootstrap interval of a run's median step time

Every estimator, its assumptions and a worked example: docs/statistics.md.
"""
from __future__ import annotations

from analysis.groups import (
    COMPLETE, CONFIG_KEY, DEFAULT_METRICS, LOCAL_VARIANTS, METRIC_SPECS, ONE_SEED_NOTE, SYNC_VARIANTS,
    TWO_SEEDS_NOTE, VARIANT_ORDER, MetricSpec, bn_scope, group_stats, metric_spec, pair_label,
)
from analysis.pairs import PAIR_KEY, PAIRWISE_COLUMNS, compare_variants, pairwise, verdict
from analysis.scaling import (
    SCALING_KEY, SCALING_LINE_KEY, accuracy_vs_per_rank_batch, effective_bn_batch, scaling_table,
)

__all__ = [
    "COMPLETE", "CONFIG_KEY", "DEFAULT_METRICS", "LOCAL_VARIANTS", "METRIC_SPECS", "ONE_SEED_NOTE",
    "SYNC_VARIANTS", "TWO_SEEDS_NOTE", "VARIANT_ORDER", "MetricSpec", "bn_scope", "group_stats",
    "metric_spec", "pair_label", "PAIR_KEY", "PAIRWISE_COLUMNS", "compare_variants", "pairwise", "verdict",
    "SCALING_KEY", "SCALING_LINE_KEY", "accuracy_vs_per_rank_batch", "effective_bn_batch", "scaling_table",
]
