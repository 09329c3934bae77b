"""Analysis: run directories and profiler traces → tidy tables → the report.

Rule: never imports torch. It reads runs only through their torch-free format: it may import
pandas, numpy, scipy, matplotlib, msgspec, markdown, `bench.rundir` and `bench.errors`, and nothing
else of `bench` (tests/test_architecture.py checks this). A machine without torch can build reports.
"""
