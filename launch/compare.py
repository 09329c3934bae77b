"""``python -m launch.compare``: runs every BN variant one after another with the launcher this machine
calls for, then the report.

The command only wires; the code is launch.variant_compare.
"""
from __future__ import annotations

import sys

from launch import variant_compare


def main(argv: list[str] | None = None) -> int:
    return variant_compare.main(argv)


if __name__ == "__main__":
    sys.exit(main())
