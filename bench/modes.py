"""``python -m bench.modes``: compares eager, compiled and CUDA-graph steps side by side.

The command only wires; the code is bench.tools.mode_compare.
"""
from __future__ import annotations

import sys

from bench.tools import mode_compare


def main(argv: list[str] | None = None) -> int:
    return mode_compare.main(argv)


if __name__ == "__main__":
    sys.exit(main())
