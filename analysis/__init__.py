"""Analysis: run directories and profiler traces → tidy tables → the report.

Rule: never imports torch. It reads runs only through their torch-free format: it may import
pandas, numpy, scipy, matplotlib, msgspec, markdown, `bench.rundir` and `bench.errors`, and nothing
else of `bench` (tests/test_architecture.py checks this). A machine without torch can build reports.

Rooms: `load` (files → DataFrames), `transform` and `stats` (pure), `atscale` (the at-scale model,
pure), `render` (markdown and figures, never loads); the modules at this level are the commands
(`python -m analysis.report`, `.kernels`, `.scale`, `.compat_table`, `.micro_table`), which wire them.
"""
