"""``python -m bench.variants``: lists the BN variants and whether each runs on this machine.

The command only wires; the code is bench.tools.variant_list.
"""
from __future__ import annotations

import sys

from bench.tools import variant_list


def main(argv: list[str] | None = None) -> int:
    return variant_list.main(argv)


if __name__ == "__main__":
    sys.exit(main())
