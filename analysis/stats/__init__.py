"""Statistics over runs and seeds: intervals, the block bootstrap of a run's steps, groups of seeds,
pairwise variant comparisons, Holm's correction, power, weak scaling, the report's findings.

Rule: pure; imports neither `analysis.load` nor `analysis.render`. Estimators and their
assumptions: docs/statistics.md.
"""
