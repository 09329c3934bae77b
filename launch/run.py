"""``python -m launch.run``: starts bench.train under torchrun after checking its flags for the whole
world first.

The command only wires; the code is launch.torchrun_job.
"""
from __future__ import annotations

import sys

from launch import torchrun_job


def main(argv: list[str] | None = None) -> int:
    return torchrun_job.main(argv)


if __name__ == "__main__":
    sys.exit(main())
