"""``python -m launch.sweep``: runs an experiment matrix, one bench.train run directory per cell; re-
running resumes it.

The command only wires; the code is launch.sweep_runner.
"""
from __future__ import annotations

import sys

from launch import sweep_runner


def main(argv: list[str] | None = None) -> int:
    return sweep_runner.main(argv)


if __name__ == "__main__":
    sys.exit(main())
