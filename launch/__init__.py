"""Launchers: `run` (torchrun with the flags checked first), `compare`, `sweep`, multi-node, Slurm,
the TensorBoard viewer and the GPU checks.

Rule: the top of the stack. It may import `bench` and `analysis`; nothing imports it.
"""
from bench.quiet import quiet_foreign_logs

quiet_foreign_logs()  # before any profiler starts: no kineto lines on stderr

