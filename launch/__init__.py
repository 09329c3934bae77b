"""Launchers: comparison, sweeps, multi-node."""
