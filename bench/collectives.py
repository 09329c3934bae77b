"""``torchrun ... -m bench.collectives``: times all-reduce and all-gather, and BN's own collectives.

The command only wires; the code is bench.tools.collective_bench.
"""
from __future__ import annotations

import sys

from bench.tools import collective_bench


def main(argv: list[str] | None = None) -> int:
    return collective_bench.main(argv)


if __name__ == "__main__":
    sys.exit(main())
