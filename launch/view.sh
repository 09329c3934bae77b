#!/bin/sh
# TensorBoard (scalars + PyTorch Profiler tab) over run directories, on 127.0.0.1 only.
#   launch/view.sh RUNS... [--port N]      (see analysis/view.py, docs/viewing.md)
repo=$(cd "$(dirname "$0")/.." && pwd)
py="$repo/.venv/bin/python"
[ -x "$py" ] || py=python3
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m analysis.view "$@"
