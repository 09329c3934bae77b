"""Launchers: `run` (torchrun with the flags checked first), `compare`, `sweep`, multi-node, Slurm,
the TensorBoard viewer and the GPU checks.

Rule: the top of the stack. It may import `bench` and `analysis`; nothing imports it.
"""
