"""``python -m launch.view``: opens runs in TensorBoard: each run's curves and its profile under one
run name.

The command only wires; the code is launch.tensorboard_view.
"""
from __future__ import annotations

import sys

from launch import tensorboard_view


def main(argv: list[str] | None = None) -> int:
    return tensorboard_view.main(argv)


if __name__ == "__main__":
    sys.exit(main())
