"""Quiet by default: the profiler library's own log lines stay off unless the user asks. Imports no torch.

PyTorch's profiler library (kineto) writes to stderr below Python, past any logging setting:
``USDT: ... profiler_start`` and ``profiler_stop`` on every profiled run, ``ERROR: ...
gpuGetDeviceCount failed with code 35`` on a machine without a GPU, and its stages on a GPU. Its
own switch, ``KINETO_LOG_LEVEL``, is read when the profiler first starts (not at ``import torch``),
and above its highest level (5, USDT) it prints nothing. Every command package (bench.run,
bench.tools, launch) calls :func:`quiet_foreign_logs` when imported; launched runs inherit the
setting. A value the user sets is kept: ``KINETO_LOG_LEVEL=0`` shows all of kineto's lines.
"""
from __future__ import annotations

import os

KINETO_SILENT = "6"  # one above kineto's highest level, USDT (5)


def quiet_foreign_logs() -> None:
    """Silence kineto's log lines in this process and the ones it starts, unless the user chose a level."""
    os.environ.setdefault("KINETO_LOG_LEVEL", KINETO_SILENT)
