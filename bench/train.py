"""``python -m bench.train`` and ``torchrun -m bench.train``: trains one network with one BN variant
and writes a run directory.

The command only wires; the code is bench.run.runner.
"""
from __future__ import annotations

import sys

from bench.run import runner


def main(argv: list[str] | None = None) -> int:
    return runner.main(argv)


if __name__ == "__main__":
    sys.exit(main())
