"""Pure transforms of loaded tables: a job's trace events (categories, step windows, GPU busy time,
BN layers) and the rows of the micro-benchmark and compatibility CSVs → tidy DataFrames.

Rule: no I/O, no drawing; imports neither `analysis.load` nor `analysis.render`.
"""
