#!/bin/sh
# TensorBoard (scalars + PyTorch Profiler tab) over run directories, on 127.0.0.1 only.
#   launch/view.sh RUNS... [--port N]      (see launch/tensorboard_view.py, docs/traces.md)
repo=$(cd "$(dirname "$0")/.." && pwd)
launcher=launch/view.sh
. "$repo/launch/python.sh"  # $PYTHON, else the repository's .venv, else python3
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m launch.view "$@"
