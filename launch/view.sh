#!/bin/sh
# TensorBoard (scalars + PyTorch Profiler tab) over run directories, on 127.0.0.1 only.
#   launch/view.sh RUNS... [--port N]      (see launch/tensorboard_view.py, docs/traces.md)
repo=$(cd "$(dirname "$0")/.." && pwd)
py="${PYTHON:-$repo/.venv/bin/python}"  # PYTHON=... picks another interpreter
[ -x "$py" ] || py=python3
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m launch.view "$@"
