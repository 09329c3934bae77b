"""Loading: run directories, traces, micro-benchmark and compatibility CSVs, the at-scale model's
input files, and the published reference rows → tidy DataFrames.

Rule: reads files and imports only the run-directory format and usage errors (`bench.rundir`,
`bench.errors`), pandas, numpy, msgspec, this package, and the events table's vocabulary that the
trace loader fills (`analysis.transform.events`: the kept categories and each event's step).
"""
